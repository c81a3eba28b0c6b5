"""What a ``.tflite`` file holds, read without TensorFlow (for ``edgelstm info``, the converter
and the backends; what the backends share beyond the file is ``tflite_backend``).

The TFLite file is a flatbuffer (schema: ``tensorflow/lite/schema/schema.fbs``). The
few tables the runtime needs (operator codes, tensors, quantization, signatures,
metadata) are read here with ``struct`` alone, so an engine-only board needs no schema
package and the reader cannot disagree with the engine about what it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path

from edgelstm.core.errors import UserError, one_line
from edgelstm.runtime.tflm_arena import ARENA_LIMIT

#: The name of the metadata entry that holds the edgelstm description (JSON, UTF-8).
METADATA_NAME = "edgelstm"
FILE_IDENTIFIER = b"TFL3"

TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64",
}
# BuiltinOperator codes used in the step graphs edgelstm builds, plus the ones a
# graph must not contain (WHILE, CUSTOM for Flex). Unknown codes print as numbers.
BUILTIN_OPS = {
    0: "ADD", 2: "CONCATENATION", 3: "CONV_2D", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED",
    14: "LOGISTIC", 18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE", 25: "SOFTMAX",
    28: "TANH", 32: "CUSTOM", 41: "SUB", 42: "DIV", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM",
    45: "STRIDED_SLICE", 49: "SPLIT", 55: "MAXIMUM", 57: "MINIMUM", 83: "PACK",
    88: "UNPACK", 101: "ABS", 102: "SPLIT_V", 114: "QUANTIZE", 119: "WHILE",
    126: "BATCH_MATMUL",
}


class _Table:
    """A flatbuffer table: ``field(i)`` gives the absolute offset of field i, or None."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def field(self, i: int):
        slot = 4 + 2 * i
        if slot >= self.vt_len:
            return None
        off = struct.unpack_from("<H", self.buf, self.vt + slot)[0]
        return self.pos + off if off else None

    def scalar(self, i: int, fmt: str, default=0):
        at = self.field(i)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at is not None else default

    def _indirect(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, i: int):
        at = self.field(i)
        return _Table(self.buf, self._indirect(at)) if at is not None else None

    def _vector(self, i: int):
        at = self.field(i)
        if at is None:
            return None, 0
        start = self._indirect(at)
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def tables(self, i: int) -> list:
        start, n = self._vector(i)
        return [] if start is None else [_Table(self.buf, self._indirect(start + 4 * k)) for k in range(n)]

    def scalars(self, i: int, fmt: str) -> list:
        start, n = self._vector(i)
        return [] if start is None else list(struct.unpack_from(f"<{n}{fmt}", self.buf, start))

    def bytes(self, i: int) -> bytes:
        start, n = self._vector(i)
        return b"" if start is None else self.buf[start:start + n]

    def string(self, i: int) -> str:
        return self.bytes(i).decode("utf-8", "replace")


def check_bytes(data: bytes, origin: str) -> None:
    """Refuse what is not a TFLite flatbuffer before a native engine sees it."""
    if len(data) <= 8 or data[4:8] != FILE_IDENTIFIER:
        raise UserError(f"{origin}: not a TFLite model (no TFL3 flatbuffer identifier)")


class TFLiteFile:
    """The parts of a TFLite model edgelstm uses, parsed from its bytes."""

    def __init__(self, data: bytes, origin: str = "model"):
        check_bytes(data, origin)
        self.data = data
        try:
            self._parse()
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise UserError(f"{origin}: corrupt TFLite flatbuffer ({exc})") from None

    @classmethod
    def read(cls, path: str | Path) -> TFLiteFile:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None
        return cls(data, str(path))

    def _parse(self) -> None:
        buf = self.data
        model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        self.version = model.scalar(0, "I")
        self.buffers = model.tables(4)
        self.ops_codes = []
        for code in model.tables(1):
            builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
            name = code.string(1) if builtin == 32 else BUILTIN_OPS.get(builtin, f"BUILTIN_{builtin}")
            self.ops_codes.append(name)
        subgraphs = model.tables(2)
        self.subgraph_count = len(subgraphs)
        main = subgraphs[0]
        self.tensors = [self._tensor(t) for t in main.tables(0)]
        self.inputs = main.scalars(1, "i")
        self.outputs = main.scalars(2, "i")
        self.operators = [self.ops_codes[op.scalar(0, "I")] for op in main.tables(3)]
        self.operator_inputs = [op.scalars(1, "i") for op in main.tables(3)]
        # Every subgraph's operators count (a WHILE body lives in another subgraph).
        self.all_operators = [self.ops_codes[op.scalar(0, "I")] for sg in subgraphs for op in sg.tables(3)]
        self.metadata = {}
        for entry in model.tables(6):
            self.metadata[entry.string(0)] = self.buffer_bytes(entry.scalar(1, "I"))
        self.signatures = {}
        for sig in model.tables(7):
            self.signatures[sig.string(2)] = {
                "inputs": {m.string(0): m.scalar(1, "I") for m in sig.tables(0)},
                "outputs": {m.string(0): m.scalar(1, "I") for m in sig.tables(1)},
                "subgraph": sig.scalar(4, "I"),
            }

    def _tensor(self, t: _Table) -> dict:
        q = t.table(4)
        scales = q.scalars(2, "f") if q is not None else []
        zps = q.scalars(3, "q") if q is not None else []
        return {
            "name": t.string(3),
            "buffer": t.scalar(2, "I"),
            "shape": t.scalars(0, "i"),
            "dtype": TENSOR_TYPES.get(t.scalar(1, "b"), str(t.scalar(1, "b"))),
            "scales": scales,
            "zero_points": zps,
        }

    def buffer_bytes(self, index: int) -> bytes:
        """The bytes of buffer ``index`` (a tensor's ``buffer``, a metadata entry's): b"" for none."""
        if index >= len(self.buffers):
            return b""
        b = self.buffers[index]
        offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
        if offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            return self.data[offset:offset + size]
        return b.bytes(0)

    # -- what the runtime needs ------------------------------------------------------
    def description(self) -> dict | None:
        raw = self.metadata.get(METADATA_NAME)
        if not raw:
            return None
        try:
            desc = json.loads(raw.decode("utf-8"))
        except ValueError:
            return None
        return desc if isinstance(desc, dict) else None

    def io_tensors(self) -> tuple[list[dict], list[dict]]:
        """The main subgraph's inputs and outputs named by its signature, in engine order.

        Each entry: name, index (tensor index, for LiteRT), position (in the subgraph's
        input/output list, for TFLM), shape, dtype, scales, zero_points. Two signature
        names can share one tensor (a model whose output *is* its last state), so names
        come from the signature map, not from inverting it. Without a signature, the
        tensor names stand in.
        """
        sig = next((s for s in self.signatures.values() if s["subgraph"] == 0), None)

        def entries(order: list[int], named: dict | None):
            if named is None:
                named = {self.tensors[i]["name"]: i for i in order}
            out = []
            for name, index in named.items():
                if index not in order:
                    raise UserError(f"signature tensor {name!r} is not a subgraph input/output")
                out.append(dict(self.tensors[index], name=name, index=index, position=order.index(index)))
            return sorted(out, key=lambda t: (t["position"], t["name"]))

        return (entries(self.inputs, sig["inputs"] if sig else None),
                entries(self.outputs, sig["outputs"] if sig else None))


def tensor_quantization(tensor: dict) -> tuple[float, int] | None:
    """(scale, zero point) of a quantized tensor of ``TFLiteFile.tensors`` / ``io_tensors``,
    None for a float one. edgelstm's converter quantizes I/O per tensor (one scale), so
    the first entry is the tensor's."""
    if not tensor["scales"]:
        return None
    return float(tensor["scales"][0]), int(tensor["zero_points"][0]) if tensor["zero_points"] else 0


def forbidden_ops(ops) -> list[str]:
    """Ops neither LiteRT's builtin kernels nor TFLM run: Flex (TF ops) and WHILE loops."""
    return sorted({op for op in ops if op.startswith("Flex") or op == "WHILE"})


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the engine's C++ allocation messages while probing arena sizes."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tflm_arena_size(data: bytes, limit: int = ARENA_LIMIT) -> int | None:
    """The smallest tensor arena (bytes, within 256 B) in which TFLM loads and runs the model.

    None when TFLM is not installed or cannot run the model in ``limit`` bytes.
    """
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError:
        return None
    from edgelstm.runtime.crash_probe import engine_crash

    if engine_crash("tflm", data):  # TFLM segfaults on some malformed files: never in this process
        return None

    def runs(size: int) -> bool:
        try:
            interp = tflm.Interpreter.from_bytes(data, arena_size=size)
            interp.invoke()
            return True
        except Exception:  # the engine reports allocation failures as RuntimeError
            return False

    with _quiet_stderr():
        if not runs(limit):
            return None
        lo, hi = 0, limit
        while hi - lo > 256:
            mid = (lo + hi) // 2
            if runs(mid):
                hi = mid
            else:
                lo = mid
    return hi


def tflm_error(data: bytes) -> str | None:
    """Why TFLM cannot run the model (its first error line), or None when it can."""
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError as exc:
        return f"tflite-micro is not installed ({exc})"
    from edgelstm.runtime.crash_probe import engine_crash

    crash = engine_crash("tflm", data)  # TFLM segfaults on some malformed files: never in this process
    if crash:
        return f"TFLite Micro {crash} on this file"
    try:
        with _quiet_stderr():
            interp = tflm.Interpreter.from_bytes(data, arena_size=ARENA_LIMIT)
            interp.invoke()
    except Exception as exc:
        return one_line(exc)
    return None


def inspect(path: str | Path, tflm_check: bool = True) -> dict:
    """What a ``.tflite`` holds: ops, I/O tensors with types and quantization, TFLM fit."""
    path = Path(path)
    fb = TFLiteFile.read(path)
    ins, outs = fb.io_tensors()

    def io(t):
        entry = {"name": t["name"], "shape": t["shape"], "dtype": t["dtype"]}
        quantization = tensor_quantization(t)
        if quantization:
            entry["scale"], entry["zero_point"] = quantization
        return entry

    ops: dict[str, int] = {}
    for op in fb.all_operators:
        ops[op] = ops.get(op, 0) + 1
    dtypes: dict[str, int] = {}
    for t in fb.tensors:
        dtypes[t["dtype"]] = dtypes.get(t["dtype"], 0) + 1
    info = {
        "file": str(path),
        "file_size": len(fb.data),
        "format": "tflite",
        "subgraphs": fb.subgraph_count,
        "ops": dict(sorted(ops.items())),
        "forbidden_ops": forbidden_ops(ops),
        "tensor_types": dict(sorted(dtypes.items())),
        "inputs": [io(t) for t in ins],
        "outputs": [io(t) for t in outs],
        "description": fb.description(),
    }
    if tflm_check:
        error = tflm_error(fb.data)
        info["tflm"] = {"runs": error is None, "error": error,
                        "arena_bytes": tflm_arena_size(fb.data) if error is None else None}
    return info
