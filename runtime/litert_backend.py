"""The LiteRT backend: ``.tflite`` step models on ai-edge-litert (or tflite-runtime).

Tensors are found by signature name (the ``StepInterface`` of the description), never
by position: the converter reorders them. Quantized inputs and states are quantized
here and outputs dequantized, so callers pass and receive float32. ``batch`` streams
run as one invocation: the batch dimension of every input is resized to ``batch``
(the step graphs are row-wise, so each stream gets exactly what it gets alone).

A sequence-mode artifact (a fixed window of T steps) cannot be stepped; opening one
raises UserError unless ``allow_sequence=True``, which enables ``run_window``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.core.errors import UserError, one_line
from edgelstm.runtime.native_stderr import quiet_native_stderr
from edgelstm.runtime.tflite_backend import Edge, TFLiteModelBase
from edgelstm.runtime.tflite_info import TFLiteFile


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError as first:
        try:  # frozen at 2.14 and broken with numpy 2 (docs/toolchain.md): accept only if it works
            from tflite_runtime.interpreter import Interpreter
            return Interpreter
        except Exception:
            raise ImportError(f"ai-edge-litert is not installed ({first})") from None


_Interpreter = _interpreter_class()


class LiteRTBackend(TFLiteModelBase):
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, batch: int = 1,
                 allow_sequence: bool = False):
        fb = self._open(path, batch, allow_sequence)
        path = self.path
        try:
            with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate", every time
                self.interpreter = _Interpreter(model_content=fb.data, num_threads=threads)
        except Exception as exc:  # the engine raises ValueError/RuntimeError on bad models
            raise UserError(f"{path}: LiteRT cannot load the model ({one_line(exc)})") from None
        self._map_tensors(fb)
        if self.mode == "step" and self.batch != 1:
            for t in fb.io_tensors()[0]:
                self.interpreter.resize_tensor_input(t["index"], [self.batch] + list(t["shape"][1:]), strict=False)
        try:
            with quiet_native_stderr():
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise UserError(f"{path}: LiteRT cannot prepare the model for {self.batch} streams "
                            f"({one_line(exc)})") from None
        self._state_out = [(s.name, self._outputs[s.output]) for s in self.interface.states]
        self._state_in = [(s.name, self._inputs[s.name]) for s in self.interface.states]
        # All-float32 I/O needs no conversion: run() then passes arrays straight to the
        # engine (the Edge conversions cost ~0.7 us of a ~5 us LSTM(64) step; see
        # benchmarks/step_latency.py).
        edges = [self._x, self._y] + [e for _, e in self._state_in + self._state_out]
        self._float_io = all(e.dtype == np.float32 and not e.quantized for e in edges)
        self._state_in_idx = [(n, e.index) for n, e in self._state_in]
        self._state_out_idx = [(n, e.index) for n, e in self._state_out]

    def _map_tensors(self, fb: TFLiteFile) -> None:
        """Signature name -> engine tensor (index, dtype, quantization)."""
        details = {d["index"]: d for d in self.interpreter.get_input_details()}
        details.update({d["index"]: d for d in self.interpreter.get_output_details()})
        ins, outs = fb.io_tensors()

        def edges(tensors):
            out = {}
            for t in tensors:
                d = details.get(t["index"])
                if d is None:
                    raise UserError(f"{self.path}: engine lacks tensor {t['name']!r}")
                scale, zp = d.get("quantization", (0.0, 0))
                out[t["name"]] = Edge(t["name"], d["index"], d["dtype"], scale, zp)
            return out

        self._inputs, self._outputs = edges(ins), edges(outs)
        io = self.interface
        need_in = [io.input] + [s.name for s in io.states]
        need_out = [io.output] + [s.output for s in io.states]
        missing = [n for n in need_in if n not in self._inputs] + [n for n in need_out if n not in self._outputs]
        if missing:
            raise UserError(f"{self.path}: the model lacks the tensors {', '.join(missing)} its description names")
        self._x, self._y = self._inputs[io.input], self._outputs[io.output]

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]):
        if self.mode != "step":
            raise UserError(f"{self.path}: a sequence-mode model has no step function")
        interp = self.interpreter
        if self._float_io and x.dtype == np.float32 and x.flags.c_contiguous:
            set_tensor, get_tensor = interp.set_tensor, interp.get_tensor
            try:
                set_tensor(self._x.index, x)
                for name, index in self._state_in_idx:
                    set_tensor(index, state[name])
                interp.invoke()
            except ValueError as exc:  # shape or type mismatch reported by the engine
                raise UserError(f"LiteRT refused the input ({one_line(exc)})") from None
            # get_tensor returns copies: they are the caller's to keep.
            return get_tensor(self._y.index), {name: get_tensor(index) for name, index in self._state_out_idx}
        try:
            interp.set_tensor(self._x.index, self._x.to_engine(x))
            for name, edge in self._state_in:
                interp.set_tensor(edge.index, edge.to_engine(state[name]))
            interp.invoke()
        except ValueError as exc:  # shape or type mismatch reported by the engine
            raise UserError(f"LiteRT refused the input ({one_line(exc)})") from None
        y = self._y.from_engine(interp.get_tensor(self._y.index))
        return y, {name: edge.from_engine(interp.get_tensor(edge.index)) for name, edge in self._state_out}

    def run_window(self, xs: np.ndarray) -> np.ndarray:
        """Sequence-mode models: (N, T, F) windows -> Keras-shaped outputs, one window per call."""
        if self.mode != "sequence":
            raise UserError(f"{self.path}: run_window needs a sequence-mode model")
        xs = np.asarray(xs, np.float32)
        outs = []
        for window in xs:
            self.interpreter.set_tensor(self._x.index, self._x.to_engine(window[None]))
            self.interpreter.invoke()
            outs.append(self._y.from_engine(self.interpreter.get_tensor(self._y.index))[0])
        return np.stack(outs)
