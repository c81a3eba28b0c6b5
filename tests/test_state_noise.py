"""edgelstm.state_noise: the float model's sensitivity to state errors, on models whose
answer is known to ignore, or to hinge on, small state differences."""

import numpy as np

from edgelstm.core.spec import LayerSpec, ModelSpec
from edgelstm.state_noise import noise_agreement


def _model(recurrent: float, kernel: float) -> ModelSpec:
    """linear SimpleRNN(1) h' = kernel x + recurrent h, then softmax([h, -h]): the class
    is the sign of h."""
    return ModelSpec(1, [
        LayerSpec("simple_rnn", 1, {"kernel": np.array([[kernel]], np.float32),
                                    "recurrent_kernel": np.array([[recurrent]], np.float32),
                                    "bias": np.zeros(1, np.float32)}, activation="linear",
                  return_sequences=False),
        LayerSpec("dense", 2, {"kernel": np.array([[1.0, -1.0]], np.float32), "bias": np.zeros(2, np.float32)},
                  activation="softmax")], task="classification")


def _up_then_down(n=40, steps=60):
    """+1 for half the stream, -1 for the other half, then a small +-0.05 last step: the
    sum (the final h of an integrator) is +-0.05 while |h| peaked at 30."""
    rng = np.random.default_rng(3)
    half = steps // 2
    xs = np.concatenate([np.ones((n, half, 1)), -np.ones((n, half - 1, 1)),
                         rng.choice([-0.05, 0.05], (n, 1, 1))], axis=1)
    return xs.astype(np.float32)


def test_a_state_the_next_step_ignores_never_changes_the_answer():
    # recurrent weight 0: h' depends on x only, so noise added to h is forgotten.
    assert noise_agreement(_model(recurrent=0.0, kernel=1.0), _up_then_down(), relative=1.0) == 1.0


def test_an_integrator_ending_near_zero_flips_under_noise():
    spec, xs = _model(recurrent=1.0, kernel=1.0), _up_then_down()
    assert noise_agreement(spec, xs, relative=0.0) == 1.0
    # noise of 1% of |h| (~0.3 near the peak) per step swamps the final +-0.05
    assert noise_agreement(spec, xs, relative=0.01) < 0.9
