"""edgelstm: Keras recurrent models (LSTM, GRU, SimpleRNN) on small hardware.

This module imports nothing heavy: ``import edgelstm.runtime`` must work on a board
that has only numpy and one inference engine installed.
"""

__version__ = "0.1.0"
