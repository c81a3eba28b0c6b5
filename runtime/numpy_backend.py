"""The numpy backend: runs a ``.npz`` spec archive with the reference implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelstm.artifact import describe
from edgelstm.runtime import reference
from edgelstm.spec import ModelSpec


class NumpyBackend:
    name = "numpy"
    suffixes = (".npz",)

    def __init__(self, source: str | Path | ModelSpec, threads: int | None = None, batch: int = 1):
        self.spec = source if isinstance(source, ModelSpec) else ModelSpec.load_npz(source)
        self.description = describe(self.spec, "npz")
        self.input_size = self.spec.input_size
        self.output_size = self.spec.output_size
        self.state_sizes = [(s.name, s.size) for s in self.spec.state_specs()]

    def run(self, x: np.ndarray, state: dict[str, np.ndarray]):
        return reference.step(self.spec, x, state)
