"""What the LiteRT and TFLM backends share: the file, its description, the step
interface, and the float <-> engine conversion of each input and output (``Edge``).

The flatbuffer itself is read by ``tflite_info`` (once per backend: ``_open`` hands the
parsed ``TFLiteFile`` to the engine-specific constructor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.core.artifact import StepInterface, read_sidecar
from edgelstm.core.errors import UserError
from edgelstm.runtime.tflite_info import TFLiteFile


def quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zero_point, info.min, info.max).astype(dtype)


def load_description(path: Path, fb: TFLiteFile) -> dict:
    """The embedded description, else the sidecar; UserError when neither exists."""
    desc = fb.description() or read_sidecar(path)
    if not desc or desc.get("format") != "tflite":
        raise UserError(f"{path}: not an edgelstm TFLite artifact (no embedded description "
                        f"and no {path.name}.json beside it)")
    return desc


class TFLiteModelBase:
    """What the LiteRT and TFLM backends share: the file, its description, the step interface."""

    name = "tflite"
    suffixes = (".tflite",)

    def _open(self, path, batch: int, allow_sequence: bool) -> TFLiteFile:
        self.path = Path(path)
        fb = TFLiteFile.read(self.path)
        self.description = load_description(self.path, fb)
        io = self.interface = StepInterface.from_description(self.description, self.path, allow_sequence)
        self.mode, self.input_size, self.output_size, self.state_sizes = (
            io.mode, io.input_size, io.output_size, io.state_sizes)
        self.batch = int(batch)
        if self.batch < 1:
            raise UserError(f"batch must be at least 1, got {batch}")
        return fb


class Edge:
    """One engine tensor seen from the float side: quantize in, dequantize out."""

    __slots__ = ("name", "index", "dtype", "scale", "zero_point", "quantized")

    def __init__(self, name: str, index: int, dtype, scale: float, zero_point: int):
        self.name, self.index, self.dtype = name, index, np.dtype(dtype)
        self.scale, self.zero_point = float(scale), int(zero_point)
        self.quantized = self.dtype != np.float32 and self.scale != 0.0

    def to_engine(self, x: np.ndarray) -> np.ndarray:
        if self.quantized:
            return quantize(x, self.dtype, self.scale, self.zero_point)
        return x if x.dtype == self.dtype and x.flags.c_contiguous else np.ascontiguousarray(x, self.dtype)

    def from_engine(self, v: np.ndarray) -> np.ndarray:
        if self.quantized:
            return (v.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        # LiteRT's get_tensor and TFLM's get_output already return copies.
        return v if v.dtype == np.float32 else v.astype(np.float32)
