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

from edgelstm.core.errors import UserError

#: The names ``load`` takes. pickupgesture, acsf1, bleeding and japanesevowels are the
#: harder ones the quantization benchmark uses: variable-length gestures, long power
#: streams, a physiological signal to forecast, and short multichannel speech features
#: with enough training cases (30 per class) for a model that generalises.
NAMES = ("basicmotions", "airline", "toy", "pickupgesture", "acsf1", "bleeding", "japanesevowels")


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
    loaders = {"basicmotions": basicmotions, "airline": airline, "toy": toy,
               "pickupgesture": pickup_gesture, "pickupgesturewiimotez": pickup_gesture,
               "acsf1": acsf1, "bleeding": bleeding, "internalbleeding16": bleeding,
               "japanesevowels": japanese_vowels}
    if key not in loaders:
        raise UserError(f"unknown dataset {name!r}; bundled datasets: {', '.join(NAMES)}")
    return loaders[key]()


def _data_file(name: str):
    return resources.files("edgelstm.datasets.data").joinpath(name)


def _read_ts(name: str) -> tuple[np.ndarray, list[str], list[str]]:
    """A .ts file (UEA/UCR format): (cases, T, dims) and labels.

    Variable-length cases (``@equalLength false``) are front-padded with each case's
    first value to the longest one: the sensor resting before the recording starts, so
    the end of every case, where a streaming classifier is read, is the real data.
    """
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
        cases.append(np.array([[float(v) for v in d.split(",")] for d in dims], np.float32).T)
        labels.append(label)
    longest = max(len(c) for c in cases)
    x = np.stack([np.concatenate([np.repeat(c[:1], longest - len(c), 0), c]) for c in cases])
    return x, labels, class_names  # (cases, T, dims)


def _classification(name: str, stem: str, **info) -> Dataset:
    x_tr, l_tr, names = _read_ts(f"{stem}_TRAIN.ts.gz")
    x_te, l_te, _ = _read_ts(f"{stem}_TEST.ts.gz")
    if x_te.shape[1] != x_tr.shape[1]:  # variable length: pad both splits to one length
        longest = max(x_tr.shape[1], x_te.shape[1])
        x_tr, x_te = (np.concatenate([np.repeat(x[:, :1], longest - x.shape[1], 1), x], 1) for x in (x_tr, x_te))
    index = {n: i for i, n in enumerate(names)}
    return Dataset(name=name, task="classification",
                   x_train=x_tr, y_train=np.array([index[v] for v in l_tr]),
                   x_test=x_te, y_test=np.array([index[v] for v in l_te]),
                   class_names=names, **info)


def basicmotions() -> Dataset:
    return _classification(
        "basicmotions", "BasicMotions",
        feature_names=["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"],
        description="smartwatch accelerometer + gyroscope, 10 Hz x 10 s, 4 activities (UEA BasicMotions)",
    )


def pickup_gesture() -> Dataset:
    """Wiimote z-acceleration of 10 gestures, 29-361 steps each (front-padded to 361)."""
    return _classification(
        "pickupgesture", "PickupGestureWiimoteZ", feature_names=["acc_z"],
        description="Wiimote z-axis acceleration, 10 gestures, variable length 29-361 steps "
                    "(front-padded with the resting value) (UCR PickupGestureWiimoteZ)",
    )


def acsf1() -> Dataset:
    """Power consumption of 10 appliance types, one day each (365 steps after 4x averaging)."""
    return _classification(
        "acsf1", "ACSF1", feature_names=["power"],
        description="appliance power consumption, 10 appliance types, 365 steps "
                    "(1460 averaged 4 to 1) per recording (UCR ACSF1)",
    )


def japanese_vowels() -> Dataset:
    """9 speakers saying the vowels 'a' and 'e': 12 LPC cepstrum coefficients per frame,
    7-29 frames per utterance (front-padded with the first frame to 29); 270 training
    and 370 test utterances."""
    return _classification(
        "japanesevowels", "JapaneseVowels", feature_names=[f"lpc_{i}" for i in range(1, 13)],
        description="12 LPC cepstrum coefficients per frame of 9 speakers saying 'ae', variable "
                    "length 7-29 frames (front-padded with the first frame) (UCI / UEA JapaneseVowels)",
    )


def bleeding_series() -> np.ndarray:
    with gzip.open(_data_file("InternalBleeding16.csv.gz").open("rb"), "rt") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([float(r["value"]) for r in rows], np.float32)


def bleeding(seq_len: int = 64, horizon: int = 10, stride: int = 8) -> Dataset:
    """Forecast a physiological signal (UCR anomaly archive, InternalBleeding16) ``horizon``
    steps ahead from the last ``seq_len``. Windows start every ``stride`` steps; the first
    4000 values train, the rest (which holds the archive's marked anomaly) is held out."""
    series = bleeding_series()
    split = 4000

    def cut(part: np.ndarray):
        starts = range(0, len(part) - seq_len - horizon + 1, stride)
        x = np.stack([part[s:s + seq_len] for s in starts])[..., None]
        y = np.array([part[s + seq_len + horizon - 1] for s in starts], np.float32)[:, None]
        return x.astype(np.float32), y

    (x_tr, y_tr), (x_te, y_te) = cut(series[:split]), cut(series[split:])
    return Dataset(
        name="bleeding", task="regression", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        feature_names=["value"],
        description=f"physiological signal (UCR anomaly archive InternalBleeding16); forecast the value "
                    f"{horizon} steps ahead from the last {seq_len}",
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
