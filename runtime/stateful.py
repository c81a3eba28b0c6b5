"""StatefulModel: step-by-step inference over one or many streams, on any backend.

A backend is a pure step function over explicit state: ``run(x, state) -> (y,
new_state)`` with ``x`` (batch, features) and each state (batch, units), all float32.
This class owns the state between calls, checks every input before it can touch the
state, and offers snapshots (get/set state) so a stream can be persisted and resumed.
"""

from __future__ import annotations

from math import isfinite
from typing import Callable, Protocol

import numpy as np

from edgelstm.core.errors import UserError, one_line
from edgelstm.core.metrics import LIST_CHECK_MAX, all_finite
from edgelstm.runtime.ranges import RangeMonitor


_F32 = np.dtype(np.float32)


class BadInputError(UserError, ValueError):
    """An input row was refused (wrong width, NaN or inf); the state is unchanged."""


class Backend(Protocol):
    name: str
    description: dict
    input_size: int
    output_size: int
    #: [(state name, size), ...] in the order the step graph carries them.
    state_sizes: list[tuple[str, int]]

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
        """One step. Must not modify ``state``; the arrays it returns belong to the
        caller (they may be kept as a stream's state, so no reuse on the next call)."""


class StatefulModel:
    """A loaded model plus the recurrent state of ``streams`` independent streams."""

    def __init__(self, backend: Backend, streams: int = 1, on_range: Callable[[dict], None] | None = None):
        """``on_range(summary)`` is called once, at the first step of a quantized model
        with an input outside its calibrated range or an output pinned at the end of
        its range (see ``range_summary``); without it, a ``CalibrationRangeWarning``."""
        if streams < 1:
            raise UserError(f"streams must be at least 1, got {streams}")
        self.backend = backend
        self.streams = streams
        self._ranges = RangeMonitor.from_description(backend.description, on_range)
        # Shapes the hot path of check_input accepts without conversion.
        self._row_shape = (backend.input_size,) if streams == 1 else None
        self._batch_shape = (streams, backend.input_size)
        self._list_check = streams * backend.input_size <= LIST_CHECK_MAX
        self._row_checked = False  # the hot path opens after one fully checked step
        self.reset()

    # -- description -------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.backend.input_size

    @property
    def output_size(self) -> int:
        return self.backend.output_size

    @property
    def description(self) -> dict:
        return self.backend.description

    @property
    def state_sizes(self) -> list[tuple[str, int]]:
        return list(self.backend.state_sizes)

    def range_summary(self) -> dict | None:
        """Rows stepped so far, and how many had inputs outside the calibrated input range
        or outputs pinned at the ends of the calibrated output range; None for a model
        without calibrated ranges (float32, dynamic)."""
        return self._ranges.summary() if self._ranges is not None else None

    # -- state -------------------------------------------------------------------
    def reset(self, stream: int | None = None) -> None:
        """Zero the state of every stream, or of one stream."""
        if stream is None:
            self._state = {n: np.zeros((self.streams, s), np.float32) for n, s in self.backend.state_sizes}
        else:
            for value in self._state.values():
                value[stream] = 0.0

    def get_state(self) -> dict[str, np.ndarray]:
        """A copy of the state: {name: (streams, units) float32}."""
        return {n: v.copy() for n, v in self._state.items()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the state (e.g. from a snapshot); shapes must match exactly."""
        new = {}
        for name, size in self.backend.state_sizes:
            if name not in state:
                raise UserError(f"state snapshot lacks {name!r}")
            value = np.asarray(state[name], np.float32)
            if value.shape != (self.streams, size):
                raise UserError(
                    f"state {name!r} has shape {value.shape}, expected {(self.streams, size)}"
                )
            if not all_finite(value):
                raise UserError(f"state {name!r} holds NaN or inf")
            new[name] = value.copy()
        self._state = new

    # -- inference ---------------------------------------------------------------
    def check_input(self, x) -> np.ndarray:
        """x as a (streams, features) float32 array, or BadInputError."""
        if type(x) is np.ndarray and x.dtype is _F32:  # the hot path: no conversion
            if x.shape == self._row_shape:
                arr = x[None]
            elif x.shape == self._batch_shape:
                arr = x
            else:
                return self._check_any(x)
            # all_finite inlined (a call is ~0.1 us of a ~5 us step), with the choice made once
            if not (isfinite(sum(arr.ravel().tolist())) if self._list_check else np.isfinite(arr).all()):
                raise BadInputError("input holds NaN or inf")
            return arr
        return self._check_any(x)

    def _check_any(self, x) -> np.ndarray:
        try:
            with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: refused below
                arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadInputError("input is not numeric") from None
        if arr.ndim == 0 and self.input_size == 1 and self.streams == 1:  # a bare number, one feature
            arr = arr.reshape(1, 1)
        if arr.ndim == 1 and self.streams == 1:
            arr = arr[None, :]
        if arr.shape != (self.streams, self.input_size):
            raise BadInputError(
                f"input has shape {arr.shape}, expected ({self.streams}, {self.input_size})"
                if arr.ndim != 1 else
                f"input has {arr.shape[0]} values, expected {self.input_size}"
            )
        if not all_finite(arr):
            raise BadInputError("input holds NaN or inf")
        return arr

    def step(self, x) -> np.ndarray:
        """Advance every stream one timestep; returns (streams, outputs).

        A 1-D input is accepted for a single stream and gives a 1-D output. The input is
        checked before anything else: a refused one leaves every state as it was.
        """
        # Hot path, inlined from check_input (each saved call is ~0.1 us of a ~5 us step):
        # one float32 row of a single stream.
        if self._row_checked and type(x) is np.ndarray and x.shape == self._row_shape and x.dtype is _F32:
            if not (isfinite(sum(x.tolist())) if self._list_check else np.isfinite(x).all()):  # all_finite inlined
                raise BadInputError("input holds NaN or inf")
            try:
                y, self._state = self.backend.run(x[None], self._state)
            except UserError:
                raise
            except Exception as exc:
                raise UserError(f"the {self.backend.name} engine failed ({one_line(exc, with_type=True)})") from None
            if self._ranges is not None:
                self._ranges.observe(x[None], y)
            return y[0]  # its shape was checked on the first step (advance); an engine keeps it
        arr = self.check_input(x)
        y, self._state = self.advance(arr, self._state)
        self._row_checked = self.streams == 1
        single = (x.ndim if type(x) is np.ndarray else np.ndim(x)) <= 1
        return y[0] if single and self.streams == 1 else y

    def advance(self, arr: np.ndarray, state: dict[str, np.ndarray]):
        """``backend.run`` on a checked input (see check_input) and an explicit state.

        An engine's own failure (e.g. on a corrupted model) becomes a UserError and
        ``state`` is left as it was. Returns (outputs, new state).
        """
        try:
            y, state = self.backend.run(arr, state)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"the {self.backend.name} engine failed ({one_line(exc, with_type=True)})") from None
        if y.shape != (len(arr), self.backend.output_size):  # a corrupted model can claim any shape
            raise UserError(f"the {self.backend.name} engine returned outputs of shape {y.shape}, "
                            f"expected {(len(arr), self.backend.output_size)}: is the model file damaged?")
        if self._ranges is not None:
            self._ranges.observe(arr, y)
        return y, state

    def run(self, xs) -> np.ndarray:
        """Step through a whole sequence: (T, F) -> (T, O), or (streams, T, F) -> (streams, T, O).

        Continues from the current state (call reset() first for a fresh start).
        """
        xs = np.asarray(xs, np.float32)
        if xs.ndim == 1 and self.streams == 1 and self.input_size == 1:  # (T,) values of one feature
            xs = xs[:, None]
        if xs.ndim == 2 and self.streams == 1:
            return np.stack([self.step(row) for row in xs])
        if xs.ndim != 3:
            raise BadInputError(f"expected (T, F) or (streams, T, F), got shape {xs.shape}")
        return np.stack([self.step(xs[:, t, :]) for t in range(xs.shape[1])], axis=1)
