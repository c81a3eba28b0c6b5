"""Small real datasets bundled inside the package (no downloads). See README.md here.

``load(name)`` returns a :class:`Dataset` of windows ``(N, T, F)`` float32 with
targets: class indices for classification, values for forecasting.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from edgelstm.errors import UserError

NAMES = ("basicmotions", "airline", "toy")


@dataclass
class Dataset:
    name: str
    task: str  # "classification" or "regression"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] | None = None
    feature_names: list[str] = field(default_factory=list)
    description: str = ""
    #: Regression: which input feature is the target's own history (for naive baselines).
    target_index: int | None = 0

    @property
    def features(self) -> int:
        return self.x_train.shape[-1]

    @property
    def seq_len(self) -> int:
        return self.x_train.shape[1]


def load(name: str) -> Dataset:
    key = name.lower().replace("-", "").replace("_", "")
    loaders = {"basicmotions": basicmotions, "airline": airline, "toy": toy}
    if key not in loaders:
        raise UserError(f"unknown dataset {name!r}; bundled datasets: {', '.join(NAMES)}")
    return loaders[key]()


def _data_file(name: str):
    return resources.files("edgelstm.datasets.data").joinpath(name)


def _read_ts(name: str) -> tuple[np.ndarray, list[str], list[str]]:
    """A multivariate .ts file (UEA/UCR format): (cases, T, dims) and labels."""
    with gzip.open(_data_file(name).open("rb"), "rt") as fh:
        lines = fh.read().splitlines()
    class_names: list[str] = []
    cases, labels = [], []
    in_data = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@classlabel"):
                class_names = line.split()[2:]
            in_data = line.lower() == "@data"
            continue
        *dims, label = line.split(":")
        cases.append([[float(v) for v in d.split(",")] for d in dims])
        labels.append(label)
    x = np.asarray(cases, np.float32).transpose(0, 2, 1)  # (cases, T, dims)
    return x, labels, class_names


def basicmotions() -> Dataset:
    x_tr, l_tr, names = _read_ts("BasicMotions_TRAIN.ts.gz")
    x_te, l_te, _ = _read_ts("BasicMotions_TEST.ts.gz")
    index = {n: i for i, n in enumerate(names)}
    return Dataset(
        name="basicmotions",
        task="classification",
        x_train=x_tr, y_train=np.array([index[v] for v in l_tr]),
        x_test=x_te, y_test=np.array([index[v] for v in l_te]),
        class_names=names,
        feature_names=["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"],
        description="smartwatch accelerometer + gyroscope, 10 Hz x 10 s, 4 activities (UEA BasicMotions)",
    )


def airline_series() -> np.ndarray:
    with _data_file("airline.csv").open("r") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([float(r["Passengers"]) for r in rows], np.float32)


def windows(series: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows of ``seq_len`` values and the value that follows each."""
    x = np.stack([series[i:i + seq_len] for i in range(len(series) - seq_len)])
    return x[..., None].astype(np.float32), series[seq_len:].astype(np.float32)[:, None]


def airline(seq_len: int = 24) -> Dataset:
    """Monthly airline passengers 1949-1960 as month-on-month growth in percent
    (100 * log difference), which is stationary enough that a small network need not
    extrapolate beyond the levels it saw in training. The last 24 months are held out."""
    series = 100.0 * np.diff(np.log(airline_series().astype(np.float64)))
    x, y = windows(series.astype(np.float32), seq_len)
    n_test = 24
    return Dataset(
        name="airline", task="regression",
        x_train=x[:-n_test], y_train=y[:-n_test], x_test=x[-n_test:], y_test=y[-n_test:],
        feature_names=["growth_pct"],
        description="monthly international airline passengers 1949-1960, as growth in % "
                    f"(100 * log difference); predict next month's growth from the last {seq_len}",
    )


def toy() -> Dataset:
    """The seed example: [[1,2,3],[2,3,4],[3,4,5]] -> [4,5,6], as a longer counting series."""
    series = np.arange(1, 41, dtype=np.float32)
    x, y = windows(series, 3)
    return Dataset(
        name="toy", task="regression",
        x_train=x[::2], y_train=y[::2], x_test=x[1::2], y_test=y[1::2],
        feature_names=["value"],
        description="counting sequence: 3 values in, the next value out ([1,2,3] -> 4)",
    )
