"""ModelSpec -> ``.npz`` spec archive (config + float32 weights), run by the numpy backend."""

from __future__ import annotations

from pathlib import Path

from edgelstm.core.artifact import describe

QUANTIZATIONS = ("float32",)
MODES = ("step",)


def export(spec, out_dir: Path, options, warn) -> tuple[list[Path], dict]:
    path = spec.save_npz(out_dir / f"{options.basename}.npz")
    return [path], describe(spec, "npz")
