"""Training with the int8 step graph's rounding in the loop (``edgelstm train --quant-aware-epochs N``).

The int8 TFLite step graph (converters/tflite_graph.py, quantized form) rounds every
tensor it computes to 256 levels of that tensor's calibrated range: the input, each
gate's input and recurrent products, their sum, each gate's activation, every product
and sum of the state update, and the states it carries to the next step. Training
against Gaussian noise on the states alone (edgelstm/noisy_state.py) leaves all but the
last out. Here the cell computes its step with each of those tensors *fake-quantized*:
clipped to a running range and rounded to 8 bits in the forward pass, with the
straight-through gradient (1 inside the range, 0 outside) in the backward pass, in the
graph's own operation order.

It fine-tunes a float-trained model (``training.train`` with ``quant_aware_epochs``):
``calibrate`` first settles the ranges with the rounding off. Ranges are per tensor, as
int8 calibrates them: a running minimum and maximum over the steps seen, each decaying
toward 0 by ``RANGE_DECAY`` per step so a range the training has shrunk stops setting
the rounding; the LSTM's incoming cell state on an estimate of its percentiles, the
LOGISTIC / TANH outputs on TFLite's fixed ranges; the integrating state's update (LSTM
``c``, GRU ``h``: the state, its two products, the GRU's ``z`` and ``1 - z``) on 16 bits,
as the export carries it. The input is rounded after the model's
input scaling, which is the same per-tensor rounding as the export's (it quantizes the
raw input) for one feature and an approximation for several. Nothing changes at inference:
``noisy_state.standard_model`` copies the trained weights into the plain Keras layer,
which is what is saved.

Measured on the bundled datasets (docs/quantization.md, section 6), it does not lift int8
agreement with float: int8 already agrees on every training case, and the disagreements
are on held-out ones.
"""

from __future__ import annotations

from edgelstm.noisy_state import RANGE_DECAY

#: Steps (each over a batch) that settle the running ranges before fine-tuning rounds
#: with them: the percentile estimates move by ``QUANTILE_RATE`` of their width per step,
#: so they need some thousands (3 passes over PickupGesture's 50 x 361 steps).
CALIBRATION_STEPS = 4000
#: A percentile range moves by at most this fraction of its width per step: up while more
#: than 100 - p % of the step's values lie beyond it, down otherwise, so it settles on the
#: percentile of all values visited (over steps, as the export calibrates it, not the
#: average of per-step percentiles, which early small states pull in).
QUANTILE_RATE = 1e-2
#: The LSTM cell state's percentile, as the int8 export calibrates it.
CELL_STATE_PERCENTILE = 99.0
#: int8 levels - 1: a range [lo, hi] rounds in steps of (hi - lo) / 255.
INT8_STEPS = 255.0
#: int16 levels - 1: the int8 step graph carries the update of an LSTM's ``c`` and a
#: GRU's ``h`` in int16 (the state, both products, the GRU's ``z`` and ``1 - z``), and the
#: GRU's kernels read an int8 copy of ``h`` (converters/tflite_cell_state.py).
INT16_STEPS = 65535.0
#: Rounding points per cell kind (the int8 graph's tensors, in ``_step_*`` order; the
#: incoming states and the input first).
POINTS = {"LSTM": 2 + 1 + 4 * 3 + 4 + 5, "GRU": 2 + 1 + 6 + 2 + 2 + 3 + 4, "SimpleRNN": 1 + 1 + 3 + 1}


class _Rounder:
    """Fake-quantizes tensors at numbered points, updating each point's running range."""

    def __init__(self, ops, ranges, on=1.0):
        self.ops, self.ranges, self.on = ops, ranges, on
        self.seen: list = []
        self.count = 0

    def __call__(self, v, percentile: float | None = None, fixed: tuple | None = None,
                 steps: float = INT8_STEPS):
        """``v`` rounded in ``steps`` steps of its running [min, max]; with ``percentile`` (p in (50, 100)) on a
        running estimate of its [100 - p, p] percentiles, clipped beyond them, as the
        export calibrates that tensor (``converters.tflite.CALIBRATION_PERCENTILES``); with
        ``fixed`` on that range (what TFLite's int8 LOGISTIC and TANH output)."""
        ops = self.ops
        k = self.count
        self.count += 1
        frozen = ops.stop_gradient(v)
        old_lo, old_hi = self.ranges[k, 0], self.ranges[k, 1]
        if fixed is not None:
            lo, hi = ops.convert_to_tensor(fixed[0], v.dtype), ops.convert_to_tensor(fixed[1], v.dtype)
        elif percentile is None:
            lo = ops.minimum(old_lo * RANGE_DECAY, ops.min(frozen))
            hi = ops.maximum(old_hi * RANGE_DECAY, ops.max(frozen))
        else:  # an online quantile estimate over every value visited, steps and batch alike
            scale = ops.maximum(old_hi - old_lo, ops.max(ops.abs(frozen)))
            tail = 1.0 - percentile / 100.0
            above = ops.mean(ops.cast(frozen > old_hi, v.dtype))
            below = ops.mean(ops.cast(frozen < old_lo, v.dtype))
            hi = old_hi + QUANTILE_RATE * scale * (above - tail)
            lo = old_lo - QUANTILE_RATE * scale * (below - tail)
        # int8 ranges always hold 0 (its zero point is an integer level)
        lo, hi = ops.minimum(lo, 0.0), ops.maximum(hi, 0.0)
        self.seen.append(ops.stack([lo, hi]))
        step = ops.maximum((hi - lo) / steps, 1e-12)
        clipped = ops.clip(v, lo, hi)
        rounded = ops.round((clipped - lo) / step) * step + lo
        through = clipped + ops.stop_gradient(rounded - clipped)
        # on = 0 (``calibrate``): ranges tracked, nothing rounded; a percentile range clips
        # even then, as the export's calibration clips that tensor before it runs the graph
        # (converters.tflite.clip_to_percentiles), so the ranges after it see clipped values.
        base = v if percentile is None else clipped
        return base + self.on * (through - base)

    def update(self):
        if self.count != len(self.seen) or self.count != self.ranges.shape[0]:
            raise RuntimeError(f"{self.count} rounding points for {self.ranges.shape[0]} ranges")
        self.ranges.assign(self.ops.stack(self.seen))


#: TFLite's int8 LOGISTIC and TANH kernels output on these fixed ranges (scale 1/256 and
#: 1/128), whatever the input's.
FIXED_OUTPUT = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def activated(q, fn, v, steps: float = INT8_STEPS):
    """``fn(v)`` rounded as the int8 graph rounds that activation's output (``steps``:
    INT16_STEPS where the graph runs its int16 kernel)."""
    return q(fn(v), fixed=FIXED_OUTPUT.get(getattr(fn, "__name__", "")), steps=steps)


def _columns(m, g: int, units: int):
    return m[..., g * units:(g + 1) * units]


def _step_lstm(cell, q, x, states):
    ops, u = cell._ops, cell.units
    # The runtime hands every state to the graph as float and the graph quantizes it at
    # its input's scale: a second rounding after the previous step's output rounding.
    wide = INT16_STEPS  # c's update chain (converters/tflite_cell_state.py)
    h, c = q(states[0]), q(states[1], CELL_STATE_PERCENTILE, steps=wide)
    x = q(x)
    pre = []
    for g in range(4):
        xs = q(ops.matmul(x, _columns(cell.kernel, g, u)) + _columns(cell.bias, g, u))
        hs = q(ops.matmul(h, _columns(cell.recurrent_kernel, g, u)))
        pre.append(q(xs + hs))
    gate, act = cell.recurrent_activation, cell.activation
    i, f, g_, o = (activated(q, fn, v) for fn, v in zip((gate, gate, act, gate), pre))
    c = q(q(f * c, steps=wide) + q(i * g_, steps=wide), steps=wide)
    h = q(o * activated(q, act, c))
    return h, [h, c]


def _step_gru(cell, q, x, states):
    ops, u = cell._ops, cell.units
    (h,) = states if isinstance(states, (list, tuple)) else (states,)
    wide = INT16_STEPS  # h's update chain, z and 1 - z (converters/tflite_cell_state.py)
    h = q(h, steps=wide)
    h8, x = q(h), q(x)  # the kernels read an int8 copy of the int16 state
    # z and r: both biases in the input product, as the graph sums them (converters/tflite_graph.py)
    xz, xr = (q(ops.matmul(x, _columns(cell.kernel, g, u)) + _columns(cell.bias[0] + cell.bias[1], g, u))
              for g in range(2))
    xh = q(ops.matmul(x, _columns(cell.kernel, 2, u)) + _columns(cell.bias[0], 2, u))
    hz, hr = (q(ops.matmul(h8, _columns(cell.recurrent_kernel, g, u))) for g in range(2))
    hh = q(ops.matmul(h8, _columns(cell.recurrent_kernel, 2, u)) + _columns(cell.bias[1], 2, u))
    gate, act = cell.recurrent_activation, cell.activation
    z = activated(q, gate, q(xz + hz), wide)
    r = activated(q, gate, q(xr + hr))
    candidate = activated(q, act, q(xh + q(r * hh)))
    h = q(q(z * h, steps=wide) + q(q(1.0 - z, steps=wide) * candidate, steps=wide), steps=wide)
    return h, [h]


def _step_simple(cell, q, x, states):
    ops = cell._ops
    (h,) = states if isinstance(states, (list, tuple)) else (states,)
    h, x = q(h), q(x)
    z = q(q(ops.matmul(x, cell.kernel) + cell.bias) + q(ops.matmul(h, cell.recurrent_kernel)))
    h = activated(q, cell.activation, z)
    return h, [h]


STEPS = {"LSTM": _step_lstm, "GRU": _step_gru, "SimpleRNN": _step_simple}


def quant_aware_cell(keras, kind: str, **cell_args):
    """A Keras cell of ``kind`` ("LSTM", "GRU", "SimpleRNN") that, while training, computes
    its step with every tensor of the int8 step graph fake-quantized (module docstring);
    at inference it is the plain cell."""
    base = getattr(keras.layers, f"{kind}Cell")
    if kind == "GRU" and not cell_args.get("reset_after", True):
        raise ValueError("quantization-aware training supports the GRU with reset_after=True (the Keras default)")

    class QuantAwareCell(base):
        _ops = keras.ops

        def build(self, input_shape):
            super().build(input_shape)
            # Not trainable, not saved: standard_model copies only the cell's own weights.
            self.quant_range = self.add_weight(shape=(POINTS[kind], 2), initializer="zeros", trainable=False,
                                               name="quant_range")
            self.quant_on = self.add_weight(shape=(), initializer="zeros", trainable=False, name="quant_on")

        def call(self, inputs, states, training=False):
            if not training:
                return super().call(inputs, states, training=training)
            q = _Rounder(self._ops, self.quant_range, self.quant_on)
            output, new_states = STEPS[kind](self, q, inputs, states)
            q.update()
            if not isinstance(states, (list, tuple)) and kind != "LSTM":
                return output, new_states[0]
            return output, new_states

    return QuantAwareCell(**cell_args)


def _cells(model):
    return [layer.cell for layer in model.layers if hasattr(getattr(layer, "cell", None), "quant_on")]


def calibrate(model, x, batch_size: int) -> None:
    """Settle the running ranges of every quantization-aware cell of ``model`` on ``x``
    (training-mode passes with the rounding off, no weight update, at least
    ``CALIBRATION_STEPS`` steps), then turn the rounding on."""
    cells = _cells(model)
    for cell in cells:
        cell.quant_on.assign(0.0)
    import tensorflow as tf  # the training side runs Keras on TensorFlow

    forward = tf.function(lambda batch: model(batch, training=True))  # one graph, not eager steps
    steps_per_pass = -(-len(x) // batch_size) * x.shape[1]
    for _ in range(max(1, -(-CALIBRATION_STEPS // steps_per_pass))):
        for start in range(0, len(x), batch_size):
            forward(tf.constant(x[start:start + batch_size], tf.float32))
    for cell in cells:
        cell.quant_on.assign(1.0)
