"""Training against int8-sized noise in the recurrent state (``edgelstm train --state-noise K``).

A full-integer int8 step graph rounds every state it carries to the next step to one of
255 levels of that tensor's calibrated range. The float models trained on the long
bundled streams change their answer under noise that small (docs/quantization.md,
section 4), so their int8 exports disagree with them. Here the cell is trained with
that noise: after every step, each state the cell hands to the next step gets Gaussian
noise of standard deviation ``K * range / 127`` (one int8 step per unit of K), where
``range`` is a running maximum of that state's |value| over the batches seen (per
tensor, as int8 quantizes it). Nothing changes at inference: ``standard_model`` copies
the trained weights into the plain Keras LSTM / GRU / SimpleRNN, which is what is saved,
so export, ``keras_import`` and safe-mode loading see an ordinary model.
"""

from __future__ import annotations

#: Per step, the running maximum of |state| decays by this factor before it is compared
#: with the current batch's: a range the training has shrunk stops setting the noise
#: after some 10,000 steps (about 7 PickupGesture epochs of 4 batches x 361 steps).
RANGE_DECAY = 0.9999
#: int8 levels on each side of zero: the rounding step of a symmetric range is range / 127.
INT8_LEVELS = 127
#: |c| an LSTM cell state may reach before ``cell_state_penalty`` acts: tanh(4) = 0.9993,
#: so beyond it ``h = o * tanh(c)`` hardly changes and the range only coarsens int8 steps.
CELL_STATE_BOUND = 4.0
#: Cell variables that are training bookkeeping (this module's and quant_aware's): not
#: copied into the saved model.
TRAINING_ONLY = ("state_range", "quant_range", "quant_on")


def _penalised(ops, c, weight: float):
    """``c`` unchanged, with the gradient of ``weight * mean(relu(|c| - bound)^2)`` (over
    batch and units, summed over steps) added in the backward pass: a loss term on every
    step's cell state without returning the states from the RNN loop."""
    @ops.custom_gradient
    def identity(c):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            count = ops.cast(ops.size(c), c.dtype)
            return upstream + weight * 2.0 * ops.relu(ops.abs(c) - CELL_STATE_BOUND) * ops.sign(c) / count
        return ops.copy(c), grad
    return identity(c)


def noisy_cell(keras, kind: str, state_noise: float, cell_state_penalty: float = 0.0, **cell_args):
    """A Keras cell of ``kind`` ("LSTM", "GRU", "SimpleRNN") whose carried states get
    int8-sized Gaussian noise while training (and only then); an LSTM's cell state also
    the gradient of ``cell_state_penalty`` (``_penalised``)."""
    ops = keras.ops
    base = getattr(keras.layers, f"{kind}Cell")

    class NoisyStateCell(base):
        def build(self, input_shape):
            super().build(input_shape)
            count = len(self.state_size) if isinstance(self.state_size, (list, tuple)) else 1
            # Not trainable, not saved: standard_model copies only the cell's own weights.
            self.state_range = self.add_weight(shape=(count,), initializer="zeros", trainable=False,
                                               name="state_range")

        def call(self, inputs, states, training=False):
            output, new_states = super().call(inputs, states, training=training)
            if not training:
                return output, new_states
            nested = isinstance(new_states, (list, tuple))
            carried = list(new_states) if nested else [new_states]
            if cell_state_penalty > 0 and kind == "LSTM":  # states (h, c)
                carried[1] = _penalised(ops, carried[1], cell_state_penalty)
            seen = ops.stack([ops.max(ops.abs(ops.stop_gradient(s))) for s in carried])
            span = ops.maximum(self.state_range * RANGE_DECAY, seen)
            self.state_range.assign(span)
            if state_noise <= 0:
                return output, (carried if nested else carried[0])
            noisy = [s + keras.random.normal(ops.shape(s), stddev=1.0, seed=self.seed_generator)
                     * (state_noise * span[k] / INT8_LEVELS) for k, s in enumerate(carried)]
            return output, (noisy if nested else noisy[0])

    return NoisyStateCell(**cell_args)


def copy_weights(source_model, target_model) -> None:
    """Every layer's own weights from ``source_model`` into ``target_model``, by layer name
    and in order; training bookkeeping (``TRAINING_ONLY``) on either side is left out."""
    for layer in target_model.layers:
        source = source_model.get_layer(layer.name)
        weights = [w for w in source.weights if not w.path.endswith(TRAINING_ONLY)]
        targets = [w for w in layer.weights if not w.path.endswith(TRAINING_ONLY)]
        if len(weights) != len(targets):
            raise RuntimeError(f"layer {layer.name}: {len(weights)} trained weights for {len(targets)}")
        for target, value in zip(targets, weights):
            target.assign(value)


def standard_model(keras, trained, build):
    """The model ``build()`` returns (the same architecture with standard recurrent layers),
    holding ``trained``'s weights, layer by layer by name (``copy_weights``: training
    bookkeeping is left behind)."""
    plain = build()
    copy_weights(trained, plain)
    # The optimizer's moments too (same trainable variables, same order), so a model
    # loaded with compile=True resumes training where it stopped, without a warning.
    if plain.optimizer is not None and trained.optimizer is not None and trained.optimizer.built:
        plain.optimizer.build(plain.trainable_variables)
        for target, value in zip(plain.optimizer.variables, trained.optimizer.variables):
            if tuple(target.shape) == tuple(value.shape):
                target.assign(value)
    return plain
