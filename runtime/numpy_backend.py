"""The numpy backend: runs a ``.npz`` spec archive with the reference implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.core.artifact import StepInterface, describe
from edgelstm.runtime import reference
from edgelstm.core.spec import ModelSpec


class NumpyBackend:
    name = "numpy"
    suffixes = (".npz",)

    def __init__(self, source: str | Path | ModelSpec, threads: int | None = None, batch: int = 1):
        self.spec = source if isinstance(source, ModelSpec) else ModelSpec.load_npz(source)
        self.description = describe(self.spec, "npz")
        io = self.interface = StepInterface.from_spec(self.spec)
        self.input_size, self.output_size, self.state_sizes = io.input_size, io.output_size, io.state_sizes
        self._names = reference.layer_state_names(self.spec)  # once, not on every step

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]):
        return reference.step(self.spec, x, state, self._names)
