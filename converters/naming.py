"""Default file names of exports, one rule for every tool that writes several variants
of a model side by side (``edgelstm export``, the demo):
``<stem>[.<quantize>][.sequence]<suffix>``, the quantization left out for float32
(``model.tflite``, ``model.int8.tflite``). A C export's name is also the prefix of its
C API, so there the parts are joined into an identifier (``model_int8.c``).
"""

from __future__ import annotations


def artifact_basename(stem: str, quantize: str, mode: str = "step", fmt: str | None = None) -> str:
    """The file name of one (format, quantization, mode) variant of ``stem``, without suffix."""
    parts = [stem]
    if quantize != "float32":
        parts.append(quantize)
    if mode != "step":
        parts.append(mode)
    if fmt == "c":  # the name of a C export is also its C prefix: make it an identifier
        from edgelstm.converters.c_source import c_identifier

        return c_identifier("_".join(parts))
    return ".".join(parts)
