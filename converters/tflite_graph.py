"""ModelSpec -> TensorFlow functions from primitive ops, ready for the TFLite converter.

Each layer kind is one function in ``LAYERS``; it mirrors ``runtime/reference.py``
line for line (same gate order, same operation order) so that float32 TFLite agrees
with the reference to rounding. Two graph shapes:

- step: the input (1, F) and every recurrent state (1, units) in; the output and every
  state's next value out (tensor names from ``artifact.StepInterface``).
- sequence: the input (1, T, F) in, the T steps unrolled from a zero state; the output
  is (1, T, out) when the model returns sequences, else (1, out).

Gates get one FULLY_CONNECTED each (rather than one wide layer and a SPLIT): int8 and
int16x8 then give every gate pre-activation its own scale, which matters because the
forget-gate and candidate ranges differ a lot.

Quantized graphs (``quantized=True``) compute the same function with fewer rounding
points, because every intermediate tensor of an integer graph is rounded to 8 (or 16)
bits:

- the input scaling (affine layer) is folded into the first weight layer after it
  (``W' = diag(scale) W``, ``b' = b + offset W``): no int8 MUL and ADD on the input,
  and the raw input feeds the FULLY_CONNECTED directly. For int16x8, where the input's
  mean lies far from zero (``CENTRE_MIN_OFFSET``), only the scale is folded and the mean
  is subtracted first (``Centre``): folded into the bias, the mean makes every rounded
  weight multiply the raw value instead of its deviation. (int8 keeps it folded: there
  the centred input's own int8 rounding cost about what the centring saved.);
- a gate's bias rides in the input FULLY_CONNECTED (``FC(x, W, b) + FC(h, U)``), where
  it is an exact int32 added to the int32 accumulator, instead of a separate int8 ADD.

The float32 graph keeps the reference's exact operation order (it must match it to
rounding), so these rewrites apply to quantized exports only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edgelstm.core.artifact import StepInterface
from edgelstm.core.spec import ModelSpec


def _tf():
    import tensorflow as tf

    return tf


@dataclass
class Trace:
    """What the layer functions of one graph being traced share.

    ``constants``: the weight constants made so far, so the T unrolled steps of a
    sequence graph share one copy of every weight instead of T copies.
    ``fuse_bias``: trace the quantized form (see the module docstring).
    """

    fuse_bias: bool = False
    constants: dict = field(default_factory=dict)

    def _cached(self, cache_key, value):
        """One tf constant per key; ``value()`` computes its array the first time."""
        if cache_key not in self.constants:
            self.constants[cache_key] = _tf().constant(np.ascontiguousarray(value()))
        return self.constants[cache_key]

    def const(self, layer, key: str, part: slice | int | None = None, column: slice | None = None,
              transpose: bool = False):
        def value():
            v = layer.weights[key]
            if part is not None:
                v = v[part]
            if column is not None:
                v = v[..., column]
            return v.T if transpose else v

        return self._cached((id(layer), key, repr(part), repr(column), transpose), value)

    def summed_bias(self, layer, g: int):
        """Gate ``g``'s input and recurrent biases (a reset_after GRU's rows 0 and 1) as one."""
        cols = slice(g * layer.units, (g + 1) * layer.units)
        return self._cached((id(layer), "summed_bias", g),
                            lambda: layer.weights["bias"][0, cols] + layer.weights["bias"][1, cols])

    def kernel(self, layer, key: str, column: slice | None = None):
        """A (out, in) kernel: FULLY_CONNECTED's own layout, so no TRANSPOSE gets folded into
        a private copy of the weights for every use (T copies in a sequence graph)."""
        return self.const(layer, key, column=column, transpose=True)

    def gate_weights(self, layer, gates: int):
        """(kernel, recurrent kernel) column blocks per gate, as shared tf constants."""
        u = layer.units
        return [(self.kernel(layer, "kernel", slice(g * u, (g + 1) * u)),
                 self.kernel(layer, "recurrent_kernel", slice(g * u, (g + 1) * u)))
                for g in range(gates)]

    def gate_pre(self, layer, x, h, w, u, bias_columns: slice | None):
        """x W + h U (+ b) for one gate: bias in the input FC when tracing a quantized graph."""
        bias = self.const(layer, "bias", column=bias_columns) if layer.use_bias and bias_columns is not None else None
        if self.fuse_bias:
            return _fc(x, w, bias) + _fc(h, u)
        pre = _fc(x, w) + _fc(h, u)
        return pre + bias if bias is not None else pre


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


def _fc(v, w, b=None):
    tf = _tf()
    out = tf.matmul(v, w, transpose_b=True)
    return out + b if b is not None else out


def lstm(t: Trace, layer, x, state):
    act, gate = _activation(layer.activation), _activation(layer.recurrent_activation)
    h, c = state
    units = layer.units
    z = [t.gate_pre(layer, x, h, w, u, slice(g * units, (g + 1) * units))
         for g, (w, u) in enumerate(t.gate_weights(layer, 4))]
    zi, zf, zc, zo = z
    i = gate(zi)
    f = gate(zf)
    c = f * c + i * act(zc)
    o = gate(zo)
    h = o * act(c)
    return h, (h, c)


def gru(t: Trace, layer, x, state):
    act, gate = _activation(layer.activation), _activation(layer.recurrent_activation)
    (h,) = state
    u = layer.units
    blocks = t.gate_weights(layer, 3)
    # reset_after keeps input and recurrent biases apart: bias rows 0 and 1.
    b_x = (0 if layer.reset_after else None) if layer.use_bias else False
    b_h = 1 if layer.use_bias and layer.reset_after else False

    def part(row, g):
        return None if row is False else t.const(layer, "bias", row, slice(g * u, (g + 1) * u))

    if layer.reset_after:
        # z and r: both biases summed in the input FC. Kept apart they are two constants
        # that training keeps bit-identical whenever the kernel computes their (equal)
        # gradients exactly alike (Keras with recurrent_dropout), and the converter merges
        # identical constants into one bias tensor quantized on one FC's scale, wrong for
        # the other (int16x8 PickupGesture GRU trained so: 50-58 % agreement with float).
        summed = (lambda g: t.summed_bias(layer, g)) if layer.use_bias else (lambda g: None)
        xz, xr = (_fc(x, blocks[g][0], summed(g)) for g in range(2))
        xh = _fc(x, blocks[2][0], part(b_x, 2))
        hz, hr = (_fc(h, blocks[g][1]) for g in range(2))
        hh = _fc(h, blocks[2][1], part(b_h, 2))
        z = gate(xz + hz)
        r = gate(xr + hr)
        candidate = act(xh + r * hh)
    else:
        xz, xr, xh = (_fc(x, blocks[g][0], part(b_x, g)) for g in range(3))
        hz, hr = (_fc(h, blocks[g][1]) for g in range(2))
        z = gate(xz + hz)
        r = gate(xr + hr)
        candidate = act(xh + _fc(r * h, blocks[2][1]))
    h = z * h + (1.0 - z) * candidate
    return h, (h,)


def simple_rnn(t: Trace, layer, x, state):
    (h,) = state
    z = t.gate_pre(layer, x, h, t.kernel(layer, "kernel"), t.kernel(layer, "recurrent_kernel"), slice(None))
    h = _activation(layer.activation)(z)
    return h, (h,)


def dense(t: Trace, layer, x, state):
    bias = t.const(layer, "bias") if layer.use_bias else None
    return _activation(layer.activation)(_fc(x, t.kernel(layer, "kernel"), bias)), ()


def affine(t: Trace, layer, x, state):
    return x * t.const(layer, "scale") + t.const(layer, "offset"), ()


@dataclass
class Centre:
    """What is left of an affine input layer in a quantized graph whose input mean is
    far from zero: ``x - mean`` (its scale went into the next kernel). ``bound``: the
    clip that keeps the TFLite converter from folding the subtraction into the next
    FULLY_CONNECTED (it fuses an ADD or SUB of a constant into a following FC, not a
    MINIMUM); it lies ``CENTRE_BOUND_SIGMAS`` standard deviations out, far beyond any
    calibrated range, so it never clips."""

    weights: dict
    kind: str = "centre"


def centre(t: Trace, layer: Centre, x, state):
    return _tf().minimum(x + t.const(layer, "shift"), t.const(layer, "bound")), ()


#: layer kind -> f(trace, layer, x, state tuple) -> (output, new state tuple)
LAYERS = {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn, "dense": dense, "affine": affine}
#: ... and what a quantized graph traces besides the spec's own kinds (``fold_input_scaling``).
TRACED = {**LAYERS, "centre": centre}

#: Centre the input before the first kernel (when asked: int16x8) where some feature's
#: mean lies more than this many standard deviations from zero (|offset| of the affine
#: layer). Folding the offset into the bias makes the kernel multiply the raw input, so
#: each int8 weight's rounding error scales with |x| rather than with |x - mean|:
#: InternalBleeding16 (mean 5.5 sd from zero), int16x8 LSTM, RMSE change +7.8 % folded,
#: -0.3 % centred (docs/quantization.md, section 11).
CENTRE_MIN_OFFSET = 1.0
CENTRE_BOUND_SIGMAS = 1e3


def fold_input_scaling(spec: ModelSpec, centre: bool = False) -> list:
    """The layers to trace for a quantized graph: an affine layer followed by a weight
    layer (recurrent or dense) becomes an identity and its scale and offset move into
    that layer's input kernel and input bias. Same function, two fewer integer ops. When
    ``centre`` is set and some |offset| exceeds ``CENTRE_MIN_OFFSET`` (an input mean that
    many standard deviations from zero) the affine layer becomes a ``Centre`` (subtract
    the mean) and only the scale moves into the kernel.

    Returns a list parallel to ``spec.layers`` (indexes, hence state names, unchanged);
    entries are new LayerSpec objects where weights changed, ``Centre`` where the mean
    stays, ``None`` for a folded layer (traced as nothing: its input goes on unchanged).
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
        if centre and np.abs(offset).max() > CENTRE_MIN_OFFSET and (scale != 0).all():
            # x * scale + offset = (x + offset / scale) * scale: subtract the mean here,
            # the scale rides in the kernel.
            layers[i] = Centre({"shift": (offset / scale).astype(np.float32),
                                "bound": (CENTRE_BOUND_SIGMAS / np.abs(scale)).astype(np.float32)})
            layers[i + 1] = replace(nxt, weights=weights)
            continue
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


def step(t: Trace, io: StepInterface, layers: list, x, states: dict):
    """One timestep over tf tensors; ``states`` maps state names to tensors.

    ``layers``: ``spec.layers``, or ``fold_input_scaling(spec)`` for a quantized graph."""
    new = {}
    for i, layer in enumerate(layers):
        if layer is None:
            continue
        names = [s.name for s in io.layer_states(i)]
        x, out = TRACED[layer.kind](t, layer, x, tuple(states[n] for n in names))
        new.update(zip(names, out))
    return x, new


def step_function(spec: ModelSpec, quantized: bool = False, centre: bool = False):
    """The step graph as a concrete function with named, fixed-shape (batch 1) inputs.

    ``quantized``: trace the integer-friendly form (see the module docstring);
    ``centre``: in it, subtract an input mean far from zero (``fold_input_scaling``)."""
    tf = _tf()
    io = StepInterface.from_spec(spec)
    signature = [tf.TensorSpec((1, io.input_size), tf.float32, name=io.input)]
    signature += [tf.TensorSpec((1, s.size), tf.float32, name=s.name) for s in io.states]
    layers = fold_input_scaling(spec, centre) if quantized else spec.layers
    t = Trace(fuse_bias=quantized)

    def fn(x, *state_values):
        y, new = step(t, io, layers, x, dict(zip([s.name for s in io.states], state_values)))
        out = {io.output: tf.identity(y)}
        out.update({s.output: tf.identity(new[s.name]) for s in io.states})
        return out

    return _concrete(fn, signature, t)


def sequence_function(spec: ModelSpec, seq_len: int, quantized: bool = False, centre: bool = False):
    """The window graph: (1, T, F) in, T unrolled steps from a zero state."""
    tf = _tf()
    io = StepInterface.from_spec(spec, "sequence")
    signature = [tf.TensorSpec((1, seq_len, io.input_size), tf.float32, name=io.input)]
    layers = fold_input_scaling(spec, centre) if quantized else spec.layers
    t = Trace(fuse_bias=quantized)

    def fn(x):
        states = {s.name: tf.constant(np.zeros((1, s.size), np.float32)) for s in io.states}
        ys = []
        for xt in tf.unstack(x, axis=1):
            y, states = step(t, io, layers, xt, states)
            ys.append(y)
        y = tf.stack(ys, axis=1) if spec.returns_sequences else ys[-1]
        return {io.output: tf.identity(y)}

    return _concrete(fn, signature, t)


def _concrete(fn, signature, t: Trace):
    """(concrete function, its owning module): the converter needs both to emit a signature."""
    tf = _tf()
    module = tf.Module()
    module.run = tf.function(fn, input_signature=signature, autograph=False)
    try:
        return module.run.get_concrete_function(), module
    finally:
        t.constants.clear()  # the traced graph holds its own copies
