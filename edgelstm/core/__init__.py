"""edgelstm.core: the contract every other layer shares, and nothing else.

``spec`` (the framework-neutral ModelSpec), ``artifact`` (what an exported file says
about itself, and its step interface), ``errors`` (the user-facing error types) and
``metrics`` (class choice and finiteness). It imports only numpy and the standard
library, so the runtime on a board can depend on it.

Layers, each importing only the ones below it (enforced by ``tests/test_layers.py``
with the contracts in ``.importlinter``)::

    edgelstm.cli                 click, argument parsing, printing
    host tools                   check, latency, demo, compare, firmware, training, ...
    edgelstm.converters          ModelSpec -> artifacts, verified through the runtime
    edgelstm.runtime             stateful inference; no TensorFlow, Keras, onnx or click
    edgelstm.core                this package
"""
