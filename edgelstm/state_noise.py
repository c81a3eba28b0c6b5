"""How much a float model's answers depend on small errors in its recurrent state.

Quantization rounds the state at every step. Whether that changes the answer depends on
the model as much as on the quantizer: a model whose dynamics amplify small state
differences over a long stream flips its class under any rounding, however the ranges
are chosen. ``noise_agreement`` measures that on the float model alone (numpy
reference, no export): Gaussian noise is added to every state after every step and the
final class is compared with the noise-free run. Used by
``benchmarks/quantization_accuracy.py`` and docs/quantization.md (section 4).
"""

from __future__ import annotations

import numpy as np

from edgelstm.core.metrics import predicted_class
from edgelstm.runtime import reference
from edgelstm.core.spec import ModelSpec

#: Noise standard deviation as a fraction of each state's range: 0.4 % is about half an
#: int8 step (the range spread over 255 steps), what int8 rounding adds per step.
INT8_LIKE = 0.004


def noise_agreement(spec: ModelSpec, sequences: np.ndarray, relative: float = INT8_LIKE,
                    seed: int = 0) -> float:
    """Fraction of ``sequences`` (N, T, F) whose final class is unchanged when every
    state gets Gaussian noise of ``relative`` times its range after every step.

    A state's range is the largest |value| it holds at that step over the batch (for
    bounded states such as a tanh ``h`` about 1; an LSTM ``c`` can reach 100+). A
    diverging float run (NaN / inf) counts as a changed answer.
    """
    sequences = np.asarray(sequences, np.float32)
    want, _ = reference.run_sequence(spec, sequences)
    rng = np.random.default_rng(seed)
    state = reference.zero_state(spec, len(sequences))
    y = None
    for t in range(sequences.shape[1]):
        y, state = reference.step(spec, sequences[:, t], state)
        state = {name: (v + rng.normal(0.0, relative * float(np.abs(v).max(initial=0.0)), v.shape)).astype(np.float32)
                 for name, v in state.items()}
    finite = np.isfinite(y).all(axis=-1)
    same = predicted_class(y) == predicted_class(want[:, -1])
    return float(np.mean(same & finite))
