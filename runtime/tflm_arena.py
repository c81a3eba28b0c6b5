"""How big a tensor arena TFLite Micro gets: one place for the figures every caller uses.

TFLM allocates every tensor of a model inside one arena the caller provides, and fails
(or, on a malformed file, crashes) when it is too small. The backend sizes it from the
model; probes and measurements use one generous ceiling.
"""

from __future__ import annotations

#: The largest arena edgelstm tries (16 MiB): far above what any model it exports needs, so
#: a model that fails in it fails for another reason. Probes and the arena measurement use it.
ARENA_LIMIT = 16 << 20
#: Arena bytes beyond the model size: the step graphs need a few kB of activations;
#: TFLM's own default (10x the model size) is too small for tiny models and wasteful for big ones.
ARENA_HEADROOM = 256 << 10


def default_arena_size(model: bytes) -> int:
    """The arena the TFLM backend runs ``model`` (the flatbuffer bytes) in."""
    return len(model) * 2 + ARENA_HEADROOM
