"""The supported layer combinations, as small Keras models with seeded weights.

Every exporter and backend test iterates over ``CASES`` so that "every supported
combination" means the same set everywhere: each cell kind x return_sequences x bias x
stacking x head, each activation and recurrent activation per cell kind, and the
input transforms.

Weights are drawn afresh (seeded) instead of Keras' initialisers so that biases are
non-zero and the recurrent matrices are contractive (spectral radius ~0.5): a 1000-step
stream with linear or relu activations then stays bounded, which keeps an absolute
1e-5 tolerance meaningful.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgelstm.runtime.reference import run_sequence

STREAM_STEPS = 1000
WINDOW_BATCH, WINDOW_STEPS = 6, 24

CELLS = {
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {"reset_after": True}),
    "gru_v1": ("GRU", {"reset_after": False}),
    "rnn": ("SimpleRNN", {}),
}
ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign")


@dataclass(frozen=True)
class Case:
    id: str
    cell: str
    units: tuple = (5,)  # one entry per stacked recurrent layer
    return_sequences: bool = False
    use_bias: bool = True
    head: str = "none"  # none | dense | softmax | timedistributed | denormalize
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    pre: str = "none"  # none | normalization | adapted | rescaling | dropout
    features: int = 3


def _cases() -> list[Case]:
    cases = []
    for cell in CELLS:
        for rs in (False, True):
            for bias in (True, False):
                for units in ((5,), (6, 4)):
                    for head in ("none", "softmax" if not rs else "timedistributed"):
                        cid = f"{cell}-{'seq' if rs else 'last'}-{'bias' if bias else 'nobias'}-{len(units)}x-{head}"
                        cases.append(Case(cid, cell, units, rs, bias, head))
        for act in ACTIVATIONS:
            cases.append(Case(f"{cell}-act_{act}", cell, (5,), False, True, "dense", activation=act))
        if cell != "rnn":
            for act in ACTIVATIONS:
                if act != "sigmoid":
                    cases.append(Case(f"{cell}-ract_{act}", cell, (5,), True, True, "none",
                                      recurrent_activation=act))
    cases.append(Case("lstm-relu-seed", "lstm", (12,), False, True, "dense", activation="relu", features=1))
    cases.append(Case("lstm-normalization", "lstm", (5,), False, True, "dense", pre="normalization"))
    cases.append(Case("gru-rescaling-dense3d", "gru", (5,), True, True, "dense", pre="rescaling"))
    cases.append(Case("rnn-dropout-softmax", "rnn", (6, 5), False, True, "softmax", pre="dropout"))
    # What `edgelstm train` builds for forecasting: adapted input scaling, inverse output scaling.
    cases.append(Case("gru-adapted-denormalize", "gru", (5,), False, True, "denormalize", pre="adapted"))
    return cases


CASES = _cases()
CASE_IDS = [c.id for c in CASES]
BY_ID = {c.id: c for c in CASES}


def _layers(case: Case):
    import keras

    L = keras.layers
    layers = [keras.Input((None, case.features))]
    if case.pre == "normalization":
        layers.append(L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 9.0]))
    elif case.pre == "rescaling":
        layers.append(L.Rescaling(scale=0.5, offset=-0.25))
    elif case.pre == "dropout":
        layers.append(L.Dropout(0.3))
    elif case.pre == "adapted":
        norm = L.Normalization()
        norm.adapt(np.random.default_rng(99).normal([1.0, -2.0, 3.0], [2.0, 0.5, 4.0], (500, 3)).astype(np.float32))
        layers.append(norm)
    cls_name, extra = CELLS[case.cell]
    cls = getattr(L, cls_name)
    for k, units in enumerate(case.units):
        last = k == len(case.units) - 1
        kwargs = dict(extra)
        kwargs.update(units=units, activation=case.activation, use_bias=case.use_bias,
                      return_sequences=case.return_sequences or not last)
        if case.cell != "rnn":
            kwargs["recurrent_activation"] = case.recurrent_activation
        layers.append(cls(**kwargs))
        if case.pre == "dropout":
            layers.append(L.Dropout(0.2))
    if case.head == "dense":
        layers.append(L.Dense(2, activation="relu" if case.return_sequences else "linear"))
    elif case.head == "softmax":
        layers.append(L.Dense(3, activation="softmax"))
    elif case.head == "denormalize":
        layers.append(L.Dense(1))
        layers.append(L.Normalization(invert=True, mean=[5.0], variance=[16.0]))
    elif case.head == "timedistributed":
        layers.append(L.TimeDistributed(L.Dense(2, activation="tanh", use_bias=case.use_bias)))
    return layers


def _seeded_weights(model, seed: int, gentle_gates: bool):
    # Linear recurrent activations leave the gates unbounded; small weights and biases
    # near 0.5 keep them inside (0, 1) so the recurrence stays stable.
    rng = np.random.default_rng(seed)
    k_scale, b_lo, b_hi = (0.25, 0.2, 0.35) if gentle_gates else (1.0, -0.5, 0.5)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            name = w.path.split("/")[-1]
            shape = tuple(w.shape)
            if name in ("mean", "variance", "count"):
                new.append(np.asarray(w))
            elif name == "recurrent_kernel":
                new.append(k_scale * rng.uniform(-0.8, 0.8, shape) / np.sqrt(shape[0]))
            elif name == "kernel":
                new.append(k_scale * rng.uniform(-1.0, 1.0, shape) / np.sqrt(shape[0]))
            else:  # biases
                new.append(rng.uniform(b_lo, b_hi, shape))
        layer.set_weights([np.asarray(v, np.float32) for v in new])


@functools.lru_cache(maxsize=None)
def keras_model(case_id: str):
    """The Keras model of a case (built once per test session)."""
    import keras

    case = BY_ID[case_id]
    model = keras.Sequential(_layers(case), name=case_id.replace("-", "_"))
    _seeded_weights(model, seed=CASE_IDS.index(case_id), gentle_gates=case.recurrent_activation == "linear")
    return model


@functools.lru_cache(maxsize=None)
def spec(case_id: str):
    from edgelstm.keras_import import spec_from_keras

    return spec_from_keras(keras_model(case_id))


def streaming_twin(model):
    """The same model with return_sequences=True on every recurrent layer.

    Keras' own answer for the streaming meaning: its output at step t is the original
    model's output for the prefix of length t+1 (recurrent layers are causal).

    TimeDistributed(Dense) becomes the Dense itself (Dense on a 3-D input is per
    timestep, the same weights): Keras' TimeDistributed maps over time in a way that
    takes ~20 s for 1000 steps. The windows tests still run the original layer.
    """
    import keras

    config = model.get_config()
    for i, layer in enumerate(config["layers"]):
        if layer["class_name"] in ("LSTM", "GRU", "SimpleRNN"):
            layer["config"]["return_sequences"] = True
        if layer["class_name"] == "TimeDistributed":
            config["layers"][i] = layer["config"]["layer"]
    twin = keras.Sequential.from_config(config)
    twin.set_weights(model.get_weights())
    for layer in twin.layers:  # an adapted Normalization derives mean/variance from its weights here
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
    return twin


@functools.lru_cache(maxsize=None)
def inputs(case_id: str):
    """(windows (B, T, F), stream (1, 1000, F)), seeded per case."""
    case = BY_ID[case_id]
    rng = np.random.default_rng(1000 + CASE_IDS.index(case_id))
    windows = rng.uniform(-1, 1, (WINDOW_BATCH, WINDOW_STEPS, case.features)).astype(np.float32)
    stream = rng.uniform(-1, 1, (1, STREAM_STEPS, case.features)).astype(np.float32)
    return windows, stream


@functools.lru_cache(maxsize=None)
def reference_stream(case_id: str) -> np.ndarray:
    """The numpy reference's streaming outputs over the 1000-step stream: (1000, out)."""
    _, stream = inputs(case_id)
    ys, _ = run_sequence(spec(case_id), stream)
    return ys[0]


@functools.lru_cache(maxsize=None)
def keras_stream(case_id: str) -> np.ndarray:
    """Keras' streaming outputs over the 1000-step stream: (1000, out).

    ``predict`` runs the recurrence as a compiled graph (0.3 s) rather than eagerly (3 s).
    """
    _, stream = inputs(case_id)
    return np.asarray(streaming_twin(keras_model(case_id)).predict(stream, verbose=0))[0]
