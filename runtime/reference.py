"""The numpy reference of a ModelSpec: the project's semantic ground truth.

Each cell is written the way the equations are (and the way Keras 3 computes them,
``keras/src/layers/rnn/{lstm,gru,simple_rnn}.py``), one line per gate, so it can be
held against both. Every exporter and backend is tested against this module, and this
module is tested against Keras itself.

Each layer kind is one function in ``LAYERS`` (every exporter has such a table, and
tests/test_layer_tables.py checks they all cover every kind):
``f(layer, x, state tuple) -> (output, new state tuple)``, the states named by
``artifact.state_name``.

Shapes: ``x`` is (batch, features); states are (batch, units); float32 throughout,
as on the device.
"""

from __future__ import annotations

import numpy as np

from edgelstm.core.artifact import state_name
from edgelstm.core.spec import STATE_KINDS, LayerSpec, ModelSpec


def _sigmoid(x):
    # exp of -|x| only, so it never overflows (float32 exp(89) is inf).
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _matmul(x, w):
    """x (batch, n) @ w, computed row by row.

    BLAS picks different kernels (gemv/gemm, blockings) for different batch sizes, so a
    plain ``x @ w`` can round a stream's row differently when other streams ride along.
    A stack of (1, n) products makes every stream bitwise what it would be alone.
    """
    return np.matmul(x[:, None, :], w)[:, 0, :]


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    # Keras 3: relu6(x + 3) / 6 (Keras 2 used 0.2 * x + 0.5; models from Keras 2 that
    # load in Keras 3 compute the Keras 3 formula, and so do we).
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "softmax": _softmax,
}


def lstm(layer: LayerSpec, x, state):
    """One LSTM step. Keras gate order in the fused weights: i, f, c, o."""
    h, c = state
    act = ACTIVATIONS[layer.activation]
    gate = ACTIVATIONS[layer.recurrent_activation]
    z = _matmul(x, layer.weights["kernel"]) + _matmul(h, layer.weights["recurrent_kernel"])
    if layer.use_bias:
        z = z + layer.weights["bias"]
    zi, zf, zc, zo = np.split(z, 4, axis=-1)
    i = gate(zi)
    f = gate(zf)
    c = f * c + i * act(zc)
    o = gate(zo)
    h = o * act(c)
    return h, (h, c)


def gru(layer: LayerSpec, x, state):
    """One GRU step. Keras gate order: z (update), r (reset), h (candidate).

    reset_after=True (Keras default, cuDNN style): the reset gate scales the recurrent
    projection *after* the matmul, and input and recurrent biases are separate.
    reset_after=False (original GRU): the reset gate scales h *before* its matmul.
    """
    (h,) = state
    act = ACTIVATIONS[layer.activation]
    gate = ACTIVATIONS[layer.recurrent_activation]
    W, U = layer.weights["kernel"], layer.weights["recurrent_kernel"]
    units = layer.units
    if layer.use_bias:
        b = layer.weights["bias"]
        b_x, b_h = (b[0], b[1]) if layer.reset_after else (b, 0.0)
    else:
        b_x, b_h = 0.0, 0.0
    xz, xr, xh = np.split(_matmul(x, W) + b_x, 3, axis=-1)
    if layer.reset_after:
        hz, hr, hh = np.split(_matmul(h, U) + b_h, 3, axis=-1)
        z = gate(xz + hz)
        r = gate(xr + hr)
        candidate = act(xh + r * hh)
    else:
        hz, hr = np.split(_matmul(h, U[:, : 2 * units]), 2, axis=-1)
        z = gate(xz + hz)
        r = gate(xr + hr)
        candidate = act(xh + _matmul(r * h, U[:, 2 * units :]))
    h = z * h + (1.0 - z) * candidate
    return h, (h,)


def simple_rnn(layer: LayerSpec, x, state):
    (h,) = state
    act = ACTIVATIONS[layer.activation]
    z = _matmul(x, layer.weights["kernel"]) + _matmul(h, layer.weights["recurrent_kernel"])
    if layer.use_bias:
        z = z + layer.weights["bias"]
    h = act(z)
    return h, (h,)


def dense(layer: LayerSpec, x, state):
    y = _matmul(x, layer.weights["kernel"])
    if layer.use_bias:
        y = y + layer.weights["bias"]
    return ACTIVATIONS[layer.activation](y), ()


def affine(layer: LayerSpec, x, state):
    return x * layer.weights["scale"] + layer.weights["offset"], ()


#: layer kind -> f(layer, x, state tuple) -> (output, new state tuple)
LAYERS = {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn, "dense": dense, "affine": affine}


def layer_state_names(spec: ModelSpec) -> list[tuple[str, ...]]:
    """Per layer, the names of its states in the order its LAYERS function takes them."""
    return [tuple(state_name(i, kind) for kind in STATE_KINDS.get(layer.kind, ()))
            for i, layer in enumerate(spec.layers)]


def zero_state(spec: ModelSpec, batch: int = 1) -> dict[str, np.ndarray]:
    return {s.name: np.zeros((batch, s.size), np.float32) for s in spec.state_specs()}


def step(spec: ModelSpec, x: np.ndarray, state: dict[str, np.ndarray], names: list[tuple[str, ...]] | None = None):
    """Advance every stream one timestep.

    Returns (outputs, new_state). For a model whose last recurrent layer has
    return_sequences=False, the output at step t is what Keras returns for the prefix
    of length t+1: a recurrent layer is causal, so this is the streaming meaning.
    ``names``: ``layer_state_names(spec)``, passed by callers that step many times so
    the names are not rebuilt every step.
    """
    new_state = {}
    for layer, names in zip(spec.layers, names or layer_state_names(spec)):
        x, new = LAYERS[layer.kind](layer, x, [state[n] for n in names])
        new_state.update(zip(names, new))
    return x, new_state


def run_sequence(spec: ModelSpec, xs: np.ndarray, state: dict[str, np.ndarray] | None = None):
    """Run (batch, T, features) through the model step by step.

    Returns (outputs (batch, T, out), final_state): the streaming output at every step.
    """
    xs = np.asarray(xs, np.float32)
    if state is None:
        state = zero_state(spec, xs.shape[0])
    outs, names = [], layer_state_names(spec)
    for t in range(xs.shape[1]):
        y, state = step(spec, xs[:, t, :], state, names)
        outs.append(y)
    return np.stack(outs, axis=1), state


def keras_output(spec: ModelSpec, xs: np.ndarray) -> np.ndarray:
    """What the Keras model returns for a batch of windows (batch, T, features)."""
    ys, _ = run_sequence(spec, xs)
    return ys if spec.returns_sequences else ys[:, -1, :]

