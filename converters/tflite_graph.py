"""ModelSpec -> TensorFlow functions from primitive ops, ready for the TFLite converter.

Each layer kind is one function in ``LAYERS``; it mirrors ``runtime/reference.py``
line for line (same gate order, same operation order) so that float32 TFLite agrees
with the reference to rounding. Two graph shapes:

- step: ``x`` (1, F) and every state ``l{i}_h`` / ``l{i}_c`` (1, units) in; ``y`` and
  ``<state>_next`` out.
- sequence: ``x`` (1, T, F) in, the T steps unrolled from a zero state; ``y`` is
  (1, T, out) when the model returns sequences, else (1, out).

Gates get one FULLY_CONNECTED each (rather than one wide layer and a SPLIT): int8 and
int16x8 then give every gate pre-activation its own scale, which matters because the
forget-gate and candidate ranges differ a lot.

Quantized graphs (``quantized=True``) compute the same function with fewer rounding
points, because every intermediate tensor of an integer graph is rounded to 8 (or 16)
bits:

- the input scaling (affine layer) is folded into the first weight layer after it
  (``W' = diag(scale) W``, ``b' = b + offset W``): no int8 MUL and ADD on the input,
  and the raw input feeds the FULLY_CONNECTED directly;
- a gate's bias rides in the input FULLY_CONNECTED (``FC(x, W, b) + FC(h, U)``), where
  it is an exact int32 added to the int32 accumulator, instead of a separate int8 ADD.

The float32 graph keeps the reference's exact operation order (it must match it to
rounding), so these rewrites apply to quantized exports only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgelstm.spec import ModelSpec

INPUT_NAME, OUTPUT_NAME, STATE_SUFFIX = "x", "y", "_next"


def _tf():
    import tensorflow as tf

    return tf


#: Weight constants of the graph being traced, so the T unrolled steps of a sequence
#: graph share one copy of every weight instead of T copies.
_CONSTANTS: dict = {}


def _const(layer, key: str, part: slice | int | None = None, column: slice | None = None,
           transpose: bool = False):
    cache_key = (id(layer), key, repr(part), repr(column), transpose)
    if cache_key not in _CONSTANTS:
        value = layer.weights[key]
        if part is not None:
            value = value[part]
        if column is not None:
            value = value[..., column]
        if transpose:
            value = value.T
        _CONSTANTS[cache_key] = _tf().constant(np.ascontiguousarray(value))
    return _CONSTANTS[cache_key]


def _kernel(layer, key: str, column: slice | None = None):
    """A (out, in) kernel: FULLY_CONNECTED's own layout, so no TRANSPOSE gets folded into
    a private copy of the weights for every use (T copies in a sequence graph)."""
    return _const(layer, key, column=column, transpose=True)


def _activation(name: str):
    tf = _tf()
    return {
        "tanh": tf.tanh,
        "sigmoid": tf.sigmoid,
        # Keras 3 hard_sigmoid: relu6(x + 3) / 6 (RELU6 runs everywhere, int8 included).
        "hard_sigmoid": lambda v: tf.nn.relu6(v + 3.0) * (1.0 / 6.0),
        "relu": tf.nn.relu,
        "linear": lambda v: v,
        "softsign": lambda v: v / (1.0 + tf.abs(v)),
        "softmax": tf.nn.softmax,
    }[name]


def _gate_weights(layer, gates: int):
    """(kernel, recurrent kernel) column blocks per gate, as shared tf constants."""
    u = layer.units
    return [(_kernel(layer, "kernel", slice(g * u, (g + 1) * u)),
             _kernel(layer, "recurrent_kernel", slice(g * u, (g + 1) * u)))
            for g in range(gates)]


def _fc(v, w, b=None):
    tf = _tf()
    out = tf.matmul(v, w, transpose_b=True)
    return out + b if b is not None else out


#: Set by ``step_function`` / ``sequence_function`` while tracing a quantized graph.
_FUSE_BIAS = False


def _gate_pre(layer, x, h, w, u, bias_columns: slice | None):
    """x W + h U (+ b) for one gate: bias in the input FC when tracing a quantized graph."""
    bias = _const(layer, "bias", column=bias_columns) if layer.use_bias and bias_columns is not None else None
    if _FUSE_BIAS:
        return _fc(x, w, bias) + _fc(h, u)
    pre = _fc(x, w) + _fc(h, u)
    return pre + bias if bias is not None else pre


def lstm(layer, x, state):
    act, gate = _activation(layer.activation), _activation(layer.recurrent_activation)
    h, c = state
    units = layer.units
    z = [_gate_pre(layer, x, h, w, u, slice(g * units, (g + 1) * units))
         for g, (w, u) in enumerate(_gate_weights(layer, 4))]
    zi, zf, zc, zo = z
    i = gate(zi)
    f = gate(zf)
    c = f * c + i * act(zc)
    o = gate(zo)
    h = o * act(c)
    return h, (h, c)


def gru(layer, x, state):
    act, gate = _activation(layer.activation), _activation(layer.recurrent_activation)
    (h,) = state
    u = layer.units
    blocks = _gate_weights(layer, 3)
    # reset_after keeps input and recurrent biases apart: bias rows 0 and 1.
    b_x = (0 if layer.reset_after else None) if layer.use_bias else False
    b_h = 1 if layer.use_bias and layer.reset_after else False

    def part(row, g):
        return None if row is False else _const(layer, "bias", row, slice(g * u, (g + 1) * u))

    xz, xr, xh = (_fc(x, blocks[g][0], part(b_x, g)) for g in range(3))
    if layer.reset_after:
        hz, hr, hh = (_fc(h, blocks[g][1], part(b_h, g)) for g in range(3))
        z = gate(xz + hz)
        r = gate(xr + hr)
        candidate = act(xh + r * hh)
    else:
        hz, hr = (_fc(h, blocks[g][1]) for g in range(2))
        z = gate(xz + hz)
        r = gate(xr + hr)
        candidate = act(xh + _fc(r * h, blocks[2][1]))
    h = z * h + (1.0 - z) * candidate
    return h, (h,)


def simple_rnn(layer, x, state):
    (h,) = state
    z = _gate_pre(layer, x, h, _kernel(layer, "kernel"), _kernel(layer, "recurrent_kernel"),
                  slice(None))
    h = _activation(layer.activation)(z)
    return h, (h,)


def dense(layer, x, state):
    bias = _const(layer, "bias") if layer.use_bias else None
    return _activation(layer.activation)(_fc(x, _kernel(layer, "kernel"), bias)), ()


def affine(layer, x, state):
    return x * _const(layer, "scale") + _const(layer, "offset"), ()


#: layer kind -> f(layer, x, state tuple) -> (output, new state tuple)
LAYERS = {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn, "dense": dense, "affine": affine}


def identity(layer, x, state):
    return x, ()


def fold_input_scaling(spec: ModelSpec) -> list:
    """The layers to trace for a quantized graph: an affine layer followed by a weight
    layer (recurrent or dense) becomes an identity and its scale and offset move into
    that layer's input kernel and input bias. Same function, two fewer integer ops.

    Returns a list parallel to ``spec.layers`` (indexes, hence state names, unchanged);
    entries are new LayerSpec objects where weights changed, ``None`` for a folded layer.
    """
    layers = list(spec.layers)
    for i in range(len(layers) - 1):
        first, nxt = layers[i], layers[i + 1]
        if first is None or first.kind != "affine" or nxt.kind not in ("lstm", "gru", "simple_rnn", "dense"):
            continue
        scale = first.weights["scale"].astype(np.float64)
        offset = first.weights["offset"].astype(np.float64)
        kernel = nxt.weights["kernel"].astype(np.float64)
        weights = dict(nxt.weights)
        weights["kernel"] = (scale[:, None] * kernel).astype(np.float32)
        shift = offset @ kernel  # what the offset adds to the input projection
        if nxt.use_bias:
            bias = nxt.weights["bias"].astype(np.float64).copy()
            if nxt.kind == "gru" and nxt.reset_after:
                bias[0] += shift  # row 0: the input-side bias
            else:
                bias += shift
        elif nxt.kind == "gru" and nxt.reset_after:
            bias = np.stack([shift, np.zeros_like(shift)])
        else:
            bias = shift
        weights["bias"] = bias.astype(np.float32)
        layers[i] = None
        layers[i + 1] = replace(nxt, weights=weights, use_bias=True)
    return layers


def step(spec: ModelSpec, x, states: dict, layers: list | None = None):
    """One timestep over tf tensors; ``states`` maps state names to tensors.

    ``layers`` (from ``fold_input_scaling``) replaces ``spec.layers`` when given.
    """
    new = {}
    for i, layer in enumerate(spec.layers if layers is None else layers):
        if layer is None:
            continue
        names = [s.name for s in spec.state_specs() if s.layer == i]
        x, out = LAYERS[layer.kind](layer, x, tuple(states[n] for n in names))
        new.update(zip(names, out))
    return x, new


def step_function(spec: ModelSpec, quantized: bool = False):
    """The step graph as a concrete function with named, fixed-shape (batch 1) inputs.

    ``quantized``: trace the integer-friendly form (see the module docstring)."""
    tf = _tf()
    states = spec.state_specs()
    signature = [tf.TensorSpec((1, spec.input_size), tf.float32, name=INPUT_NAME)]
    signature += [tf.TensorSpec((1, s.size), tf.float32, name=s.name) for s in states]
    layers = fold_input_scaling(spec) if quantized else None

    def fn(x, *state_values):
        y, new = step(spec, x, dict(zip([s.name for s in states], state_values)), layers)
        out = {OUTPUT_NAME: tf.identity(y)}
        out.update({s.name + STATE_SUFFIX: tf.identity(new[s.name]) for s in states})
        return out

    return _concrete(fn, signature, quantized)


def sequence_function(spec: ModelSpec, seq_len: int, quantized: bool = False):
    """The window graph: (1, T, F) in, T unrolled steps from a zero state."""
    tf = _tf()
    signature = [tf.TensorSpec((1, seq_len, spec.input_size), tf.float32, name=INPUT_NAME)]
    layers = fold_input_scaling(spec) if quantized else None

    def fn(x):
        states = {s.name: tf.constant(np.zeros((1, s.size), np.float32)) for s in spec.state_specs()}
        ys = []
        for t, xt in enumerate(tf.unstack(x, axis=1)):
            y, states = step(spec, xt, states, layers)
            ys.append(y)
        y = tf.stack(ys, axis=1) if spec.returns_sequences else ys[-1]
        return {OUTPUT_NAME: tf.identity(y)}

    return _concrete(fn, signature, quantized)


def _concrete(fn, signature, quantized: bool = False):
    """(concrete function, its owning module): the converter needs both to emit a signature."""
    global _FUSE_BIAS
    tf = _tf()
    module = tf.Module()
    module.run = tf.function(fn, input_signature=signature, autograph=False)
    _CONSTANTS.clear()
    _FUSE_BIAS = quantized
    try:
        return module.run.get_concrete_function(), module
    finally:
        _CONSTANTS.clear()
        _FUSE_BIAS = False
