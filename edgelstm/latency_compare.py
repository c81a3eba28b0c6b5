"""``edgelstm profile --compare``: several ``profile --json`` files side by side.

One column per file (a board, an engine, a build), one row per figure, and each
file's p50 as a multiple of the first file's, so results gathered on a Raspberry Pi 3,
a Pi 5 and a laptop read as one table. Only the files' own figures are shown; nothing
is re-measured.
"""

from __future__ import annotations

from pathlib import Path

from edgelstm.core.errors import UserError
from edgelstm.latency import read_baseline
from edgelstm.reports import format_table
from edgelstm.core.metrics import finite_number

#: The cell width: machine and CPU names are long; the rest is short.
MAX_CELL = 34


def _us(value) -> str:
    return f"{value:,.1f}" if finite_number(value) else "-"


def _mib(value) -> str:
    return f"{value / 2**20:,.1f}" if finite_number(value) and value > 0 else "-"


def summary(data: dict) -> dict:
    """The figures one column shows, from one profile JSON (missing ones as None)."""
    lat, mach = data["latency"], data.get("machine") or {}
    versions = mach.get("versions") or {}
    engine = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "edgelstm") or None
    return {
        "machine": mach.get("machine"),
        "cpu": mach.get("cpu"),
        "cores": mach.get("cores"),
        "python": mach.get("python"),
        "edgelstm": versions.get("edgelstm"),
        "engine": engine,
        "artifact": Path(str(data.get("artifact") or "")).name or None,
        "format": " ".join(str(v) for v in (data.get("format"), data.get("quantize")) if v) or None,
        "backend": data.get("backend"),
        "streams x threads": f"{data.get('streams', '?')} x {data.get('threads', '?')}",
        "steps": data.get("steps"),
        "p50 us": lat.get("p50_us"),
        "p90 us": lat.get("p90_us"),
        "p99 us": lat.get("p99_us"),
        "max us": lat.get("max_us"),
        "steps/s": lat.get("steps_per_s"),
        "load ms": data.get("load_ms"),
        "peak RSS MiB": (data.get("memory") or {}).get("peak_rss_bytes"),
    }


def read_profiles(paths: list[Path]) -> list[dict]:
    if len(paths) < 2:
        raise UserError("--compare needs at least two `edgelstm profile --json` files")
    profiles = []
    for path in paths:
        data = read_baseline(path)
        if not finite_number(data["latency"].get("p50_us")) or data["latency"]["p50_us"] <= 0:
            raise UserError(f"{path}: its latency has no usable p50_us")
        profiles.append({"file": str(path), **summary(data)})
    first = profiles[0]["p50 us"]
    for row in profiles:
        row["p50 vs first"] = row["p50 us"] / first
    return profiles


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("p50 us", "p90 us", "p99 us", "max us", "load ms"):
        return _us(value)
    if key == "steps/s":
        return f"{value:,.0f}" if finite_number(value) else "-"
    if key == "peak RSS MiB":
        return _mib(value)
    if key == "p50 vs first":
        return f"{value:.2f}x"
    text = str(value)
    if len(text) <= MAX_CELL:
        return text
    keep = (MAX_CELL - 3) // 2  # both ends: file names differ at the end (.int8.tflite)
    return text[:keep] + "..." + text[-(MAX_CELL - 3 - keep):]


def format_comparison(profiles: list[dict]) -> list[str]:
    """A text table: figures down, files across."""
    keys = [k for k in profiles[0] if k != "file"]
    header = ["", *(Path(p["file"]).name for p in profiles)]
    rows = [header] + [[k, *(_cell(k, p.get(k)) for p in profiles)] for k in keys]
    return format_table(rows, right_align=True)  # labels left, figures under their file's name
