"""The ONNX Runtime backend: steps an edgelstm step-mode ``.onnx`` artifact.

The step graph takes ``x`` (batch, features) and every recurrent state as named inputs
and returns ``y`` and the next states; the batch dimension is dynamic, so one session
serves any number of streams. Tensors are mapped by the names in the artifact's
description, never by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgelstm.core.artifact import StepInterface
from edgelstm.core.errors import UserError, one_line
from edgelstm.runtime import onnx_info


class OnnxRuntimeBackend:
    name = "onnxruntime"
    suffixes = (".onnx",)

    def __init__(self, path: str | Path, threads: int | None = None, batch: int = 1):
        path = Path(path)
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, got {threads}")
        data, model = onnx_info.read(path)
        desc = onnx_info.description(path, model)
        if desc is None:
            raise UserError(f"{path}: no edgelstm description (metadata_props {onnx_info.METADATA_KEY!r} or "
                            f"{path.name}.json); export the model with edgelstm")
        io = self.interface = StepInterface.from_description(desc, path)
        self.input_size, self.output_size, self.state_sizes = io.input_size, io.output_size, io.state_sizes

        options = ort.SessionOptions()
        # Small recurrent steps do not gain from more threads; one thread keeps latency
        # steady and leaves the other cores to the application.
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"{path}: onnxruntime cannot load this model ({one_line(exc)})") from None

        self.description = desc
        self._state_names = [s.name for s in io.states]
        self._output_names = [io.output] + [s.output for s in io.states]
        self._feed_names = [io.input] + self._state_names
        graph_in = {i.name for i in self.session.get_inputs()}
        graph_out = {o.name for o in self.session.get_outputs()}
        missing = [n for n in self._feed_names if n not in graph_in]
        missing += [n for n in self._output_names if n not in graph_out]
        if missing:
            raise UserError(f"{path}: the graph lacks tensors its description names: {', '.join(missing)}")
        self._bind(max(int(batch), 1))

    def _bind(self, batch: int) -> None:
        """Bind every graph input and output to a preallocated buffer for ``batch`` streams.

        With IO binding a step costs the engine call plus small copies: measured ~9 us
        against ~15 us for ``session.run`` on an LSTM(64) step (its Python wrapper validates
        the feed and builds output arrays on every call); see benchmarks/step_latency.py.
        """
        io = self.session.io_binding()
        sizes = [self.input_size] + [size for _, size in self.state_sizes]
        self._in_bufs = [np.zeros((batch, size), np.float32) for size in sizes]
        for name, buf in zip(self._feed_names, self._in_bufs):
            io.bind_cpu_input(name, buf)  # zero-copy: the engine reads buf in place
        sizes[0] = self.output_size
        self._out_bufs = [np.zeros((batch, size), np.float32) for size in sizes]
        for name, buf in zip(self._output_names, self._out_bufs):
            io.bind_output(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
        self._io, self._batch = io, batch
        self._pairs = list(zip(self._in_bufs[1:], self._state_names))
        self._state_outs = list(zip(self._state_names, self._out_bufs[1:]))

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]):
        """One step of every stream; a pure function: neither ``x`` nor ``state`` is kept
        or modified, and the returned arrays are the caller's."""
        if x.shape[0] != self._batch:
            self._bind(x.shape[0])
        try:
            np.copyto(self._in_bufs[0], x)
            for buf, name in self._pairs:
                np.copyto(buf, state[name])
        except (ValueError, TypeError) as exc:
            raise UserError(f"onnxruntime backend: bad input or state ({one_line(exc)})") from None
        try:
            self.session.run_with_iobinding(self._io)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"onnxruntime: {one_line(exc)}") from None
        return self._out_bufs[0].copy(), {name: buf.copy() for name, buf in self._state_outs}
