"""How reports look: the one text-table layout every command prints, and strict JSON.

``demo``, ``compare``, ``profile --compare`` and ``info`` print tables through
``format_table``, so they line up the same way. JSON reports go through ``json_text``,
which every parser reads (no bare ``NaN``).
"""

from __future__ import annotations

import json
import math


def format_table(rows: list[list], rule: bool = True, right_align: bool = False) -> list[str]:
    """``rows[0]`` is the header; columns two spaces apart, padded to their widest cell.

    ``rule``: a line of dashes under the header. ``right_align``: every column but the
    first right-aligned (figures under their heading; the first holds labels).
    """
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    text = ["  ".join(c.rjust(w) if right_align and k else c.ljust(w)
                      for k, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    if rule:
        text.insert(1, "  ".join("-" * w for w in widths))
    return text


def strict_json(value):
    """``value`` with every NaN / inf float as null: strict JSON, which every parser reads
    (Python's bare ``NaN`` is not JSON). The human report says what the figure was."""
    if getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def json_text(data) -> str:
    """An indented strict-JSON document, newline-terminated."""
    return json.dumps(strict_json(data), indent=2, default=str, allow_nan=False) + "\n"
