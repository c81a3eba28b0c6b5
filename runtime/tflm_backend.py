"""The TFLite Micro backend: the kernels a microcontroller runs, through tflite-micro's Python wrapper.

TFLM addresses inputs and outputs by position only. The positions are mapped to names
through the file's signature (read from the flatbuffer), or, when a file has none,
through the order the converter recorded in the description (``tflite.inputs``).
TFLM graphs have a fixed batch of 1, so several streams run one after another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime as _tflm

from edgelstm.core.errors import UserError, one_line
from edgelstm.runtime.tflite_backend import Edge, TFLiteModelBase
from edgelstm.runtime.tflite_info import tensor_quantization
from edgelstm.runtime.tflm_arena import default_arena_size


class TFLMBackend(TFLiteModelBase):
    name = "tflm"

    def __init__(self, path: str | Path, threads: int | None = None, batch: int = 1,
                 allow_sequence: bool = False, arena_size: int | None = None):
        fb = self._open(path, batch, allow_sequence)
        path = self.path
        arena = arena_size or default_arena_size(fb.data)
        try:
            self.interpreter = _tflm.Interpreter.from_bytes(fb.data, arena_size=arena)
        except Exception as exc:  # RuntimeError / ValueError from the C++ wrapper
            raise UserError(f"{path}: TFLite Micro cannot load the model ({one_line(exc)})") from None
        ins, outs = fb.io_tensors()
        if not fb.signatures:  # names by position, as the converter recorded them
            recorded = self.description.get("tflite") or {}
            rec_in, rec_out = recorded.get("inputs", []), recorded.get("outputs", [])
            if [t.get("position") for t in rec_in] != [t["position"] for t in ins] or \
                    [t.get("position") for t in rec_out] != [t["position"] for t in outs]:
                raise UserError(f"{path}: cannot map the model's inputs and outputs to names")
            ins = [dict(t, name=r["name"]) for t, r in zip(ins, rec_in)]
            outs = [dict(t, name=r["name"]) for t, r in zip(outs, rec_out)]

        def edge(t):  # Edge.index is the TFLM position here
            return Edge(t["name"], t["position"], np.dtype(t["dtype"]), *(tensor_quantization(t) or (0.0, 0)))

        self._inputs = {t["name"]: edge(t) for t in ins}
        self._outputs = {t["name"]: edge(t) for t in outs}
        try:
            io = self.interface
            self._x, self._y = self._inputs[io.input], self._outputs[io.output]
            self._state_in = [(s.name, self._inputs[s.name]) for s in io.states]
            self._state_out = [(s.name, self._outputs[s.output]) for s in io.states]
        except KeyError as exc:
            raise UserError(f"{path}: the model lacks the tensor {exc.args[0]!r} its description names") from None

    def _invoke_one(self, x_row: np.ndarray, state_rows: dict[str, np.ndarray]):
        interp = self.interpreter
        try:
            interp.set_input(self._x.to_engine(x_row), self._x.index)
            for name, edge in self._state_in:
                interp.set_input(edge.to_engine(state_rows[name]), edge.index)
            interp.invoke()
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"TFLite Micro failed on the input ({one_line(exc)})") from None
        return interp

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]):
        if self.mode != "step":
            raise UserError(f"{self.path}: a sequence-mode model has no step function")
        n = x.shape[0]
        y = np.empty((n, self.output_size), np.float32)
        new = {name: np.empty((n, size), np.float32) for name, size in self.state_sizes}
        for b in range(n):
            interp = self._invoke_one(x[b:b + 1], {k: v[b:b + 1] for k, v in state.items()})
            y[b] = self._y.from_engine(interp.get_output(self._y.index))[0]
            for name, edge in self._state_out:
                new[name][b] = edge.from_engine(interp.get_output(edge.index))[0]
        return y, new

    def run_window(self, xs: np.ndarray) -> np.ndarray:
        """Sequence-mode models: (N, T, F) windows -> Keras-shaped outputs."""
        if self.mode != "sequence":
            raise UserError(f"{self.path}: run_window needs a sequence-mode model")
        outs = []
        for window in np.asarray(xs, np.float32):
            interp = self._invoke_one(window[None], {})
            outs.append(self._y.from_engine(interp.get_output(self._y.index))[0])
        return np.stack(outs)
