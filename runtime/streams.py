"""Many independent streams (sensors, sequences) through one loaded model.

Each stream id owns its recurrent state; rows of different streams may interleave in
any order. The model's backend is a pure step function, so the router just swaps the
right state in for each row: no copies of the model, one engine for all streams.
"""

from __future__ import annotations

import numpy as np

from edgelstm.runtime.stateful import StatefulModel


class StreamRouter:
    def __init__(self, model: StatefulModel):
        if model.streams != 1:
            raise ValueError("StreamRouter steps one row at a time: load the model with streams=1")
        self.model = model
        self.states: dict[str, dict[str, np.ndarray]] = {}

    def _fresh(self) -> dict[str, np.ndarray]:
        return {n: np.zeros((1, s), np.float32) for n, s in self.model.state_sizes}

    def step(self, stream: str, x) -> np.ndarray:
        """One row of ``stream``; a refused row (BadInputError) leaves every state as it was."""
        arr = self.model.check_input(x)
        state = self.states.get(stream)
        if state is None:
            state = self._fresh()
        y, new_state = self.model.advance(arr, state)
        self.states[stream] = new_state
        return y[0]

    def reset(self, stream: str | None = None) -> None:
        if stream is None:
            self.states.clear()
        else:
            self.states.pop(stream, None)
