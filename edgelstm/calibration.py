"""Where calibration and held-out data come from, in order of preference.

1. ``--calibration-data FILE``: ``.npz`` with ``x`` (N, T, F) [and ``y``], ``.npy``
   (N, T, F), or ``.csv`` (one row per timestep, F numeric columns, a header allowed),
   cut into windows.
2. The data recorded with the model by ``edgelstm train`` (``<model>.calibration.npz``).
3. The bundled dataset the model was trained on (``dataset`` in ``<model>.report.json``).
4. Synthetic standard-normal sequences, with a warning: quantization ranges then
   reflect no real input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm import datasets
from edgelstm.core.errors import UserError, require_file
from edgelstm.core.metrics import all_finite
from edgelstm.converters.sequences import DEFAULT_WINDOW, split_heldout, synthetic_sequences
from edgelstm.core.spec import ModelSpec


@dataclass
class CalibrationData:
    x: np.ndarray  # (N, T, F) float32: what quantization ranges are taken from
    y: np.ndarray | None
    source: str
    synthetic: bool = False
    #: Held-out windows (and targets) for measuring what an export lost; None: use x.
    x_heldout: np.ndarray | None = None
    y_heldout: np.ndarray | None = None

    @property
    def heldout(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.x_heldout is not None:
            return self.x_heldout, self.y_heldout
        return self.x, self.y


def companion(model_path: str | Path, suffix: str) -> Path:
    """``model.keras`` -> ``model<suffix>`` (e.g. ``.report.json``)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + suffix)


def read_report(model_path: str | Path) -> dict | None:
    path = companion(model_path, ".report.json")
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def apply_report(spec: ModelSpec, report: dict | None) -> ModelSpec:
    """Carry what training recorded (task, classes, window, dataset) into the spec."""
    if not report:
        return spec
    spec.task = report.get("task", spec.task)
    spec.class_names = report.get("class_names") or spec.class_names
    spec.seq_len = spec.seq_len or report.get("seq_len")
    spec.meta["dataset"] = report.get("dataset")
    spec.meta["metrics"] = report.get("metrics")
    return spec


def load_file(path: str | Path, input_size: int, window: int | None = None) -> CalibrationData:
    path = require_file(path)
    y = x_test = y_test = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data.files:
                    raise UserError(f"{path}: expected an array named 'x' (N, T, features)")
                x = np.asarray(data["x"], np.float32)
                y = np.asarray(data["y"]) if "y" in data.files else None
                if "x_test" in data.files:
                    x_test = _check_shape(path, np.asarray(data["x_test"], np.float32), input_size)
                    y_test = np.asarray(data["y_test"]) if "y_test" in data.files else None
        elif path.suffix == ".npy":
            x = np.asarray(np.load(path, allow_pickle=False), np.float32)
        elif path.suffix == ".csv":
            x = _csv_windows(path, input_size, window or DEFAULT_WINDOW)
        else:
            raise UserError(f"{path}: calibration data must be .npz, .npy or .csv")
    except UserError:
        raise
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read calibration data ({exc})") from None
    x = _check_shape(path, x, input_size)
    return CalibrationData(x, y, str(path), x_heldout=x_test, y_heldout=y_test)


def _check_shape(path, x: np.ndarray, input_size: int) -> np.ndarray:
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != input_size:
        raise UserError(f"{path}: calibration data has shape {x.shape}, expected (N, T, {input_size})")
    if not all_finite(x):
        raise UserError(f"{path}: calibration data holds NaN or inf")
    return x


def _csv_windows(path: Path, input_size: int, window: int) -> np.ndarray:
    rows = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            cells = [c.strip() for c in line.strip().split(",")]
            if not line.strip():
                continue
            try:
                values = [float(c) for c in cells]
            except ValueError:
                if n == 1:
                    continue  # header
                raise UserError(f"{path}:{n}: non-numeric value") from None
            if len(values) != input_size:
                raise UserError(f"{path}:{n}: {len(values)} columns, the model takes {input_size}")
            rows.append(values)
    data = np.asarray(rows, np.float32)
    if len(data) == 0:
        raise UserError(f"{path}: no data rows")
    n = max(1, len(data) // window)
    return data[: n * window].reshape(n, -1, input_size) if len(data) >= window else data[None]


def resolve(spec: ModelSpec, model_path: str | Path | None = None,
            calibration_file: str | Path | None = None, seq_len: int | None = None) -> CalibrationData:
    """The best calibration / held-out data available for ``spec`` (see module doc);
    the held-out part never overlaps what calibration uses (``split_heldout``)."""
    if calibration_file:
        return _with_heldout(load_file(calibration_file, spec.input_size, seq_len or spec.seq_len))
    if model_path is not None:
        recorded = companion(model_path, ".calibration.npz")
        if recorded.is_file():
            return _with_heldout(load_file(recorded, spec.input_size))
    name = spec.meta.get("dataset")
    if name in datasets.NAMES:
        data = datasets.load(name)
        if data.features == spec.input_size:
            return CalibrationData(data.x_train, data.y_train, f"bundled dataset {name}",
                                   x_heldout=data.x_test, y_heldout=data.y_test)
    return _with_heldout(CalibrationData(synthetic_sequences(spec, steps=seq_len), None,
                                         "synthetic (standard normal after input scaling)", True))


def _with_heldout(data: CalibrationData) -> CalibrationData:
    if data.x_heldout is None:
        data.x, data.y, data.x_heldout, data.y_heldout = split_heldout(data.x, data.y)
    return data
