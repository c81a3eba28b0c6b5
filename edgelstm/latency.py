"""``edgelstm profile``: per-step latency of an artifact through the runtime, for CI.

Each timed step is one ``StatefulModel.step`` call (input checks, every stream of the
batch, state bookkeeping): what an application pays per new sample. Needs only the
runtime and numpy, so it runs in the lean on-device install.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edgelstm import __version__
from edgelstm.core.errors import UserError

PERCENTILES = (50, 90, 99)
#: Distributions whose versions matter for a latency figure, per backend.
ENGINE_PACKAGES = {
    "numpy": ("numpy",),
    "litert": ("numpy", "ai-edge-litert", "tflite-runtime"),
    "tflm": ("numpy", "tflite-micro"),
    "onnxruntime": ("numpy", "onnxruntime"),
}
#: Latency metrics a baseline comparison may use.
METRICS = ("p50_us", "p90_us", "p99_us", "mean_us")
#: Steps between progress-bar updates (updates are outside the timed region).
PROGRESS_CHUNK = 500


def summarize(ns: np.ndarray) -> dict:
    """Latency figures (µs) and throughput of per-call durations in nanoseconds."""
    us = np.asarray(ns, np.float64) / 1e3
    out = {f"p{p}_us": float(np.percentile(us, p)) for p in PERCENTILES}
    out.update(max_us=float(us.max()), mean_us=float(us.mean()), min_us=float(us.min()))
    total_s = us.sum() / 1e6
    out["steps_per_s"] = float(len(us) / total_s) if total_s > 0 else float("inf")
    return out


def peak_rss_bytes() -> int | None:
    """The process' peak resident set size (bytes), or None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes, Linux: kB


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(backend: str) -> dict:
    versions = {"edgelstm": __version__}
    for dist in ENGINE_PACKAGES.get(backend, ("numpy",)):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if backend == "native":  # the engine is the C compiler that built the library
        from edgelstm.runtime.native_backend import compiler_version

        try:
            versions["cc"] = compiler_version()
        except UserError:
            pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _inputs(model, steps: int, streams: int, seed: int = 0) -> np.ndarray:
    """Typical raw inputs: standard normal after the model's own input scaling, undone."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, streams, model.input_size)).astype(np.float32)
    scaling = model.description.get("input_scaling")
    if scaling:
        scale = np.asarray(scaling["scale"], np.float32)
        x = (x - np.asarray(scaling["offset"], np.float32)) / np.where(scale == 0, 1, scale)
    return x.astype(np.float32)


def time_steps(model, xs: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Nanoseconds of each ``model.step(xs[t])`` call."""
    clock = time.perf_counter_ns
    step = model.step
    times = np.empty(len(xs), np.int64)
    for start in range(0, len(xs), PROGRESS_CHUNK):
        for t in range(start, min(start + PROGRESS_CHUNK, len(xs))):
            x = xs[t]
            t0 = clock()
            step(x)
            times[t] = clock() - t0
        if progress is not None:
            progress(min(PROGRESS_CHUNK, len(xs) - start))
    return times


def time_windows(model, xs: np.ndarray, window: int, samples: int,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Nanoseconds per new sample of the naive alternative to stepping: for every
    sample, start from a fresh state and re-run the last ``window`` samples."""
    clock = time.perf_counter_ns
    times = np.empty(samples, np.int64)
    for s in range(samples):
        rows = xs[s:s + window]
        t0 = clock()
        model.reset()
        for x in rows:
            model.step(x)
        times[s] = clock() - t0
        if progress is not None:
            progress(1)
    return times


def profile(artifact: str | Path, steps: int = 2000, warmup: int = 100, streams: int = 1,
            threads: int | None = None, backend: str = "auto", window: int | None = None,
            window_samples: int | None = None, progress_factory=None) -> dict:
    """Everything ``edgelstm profile`` reports, as one JSON-ready dict.

    ``progress_factory(length, label)`` returns a context manager with ``update(n)``
    (click.progressbar), or None for no progress display.
    """
    from edgelstm.runtime import load

    artifact = Path(artifact)
    rss_before = current_rss_bytes()
    t_load = time.perf_counter()
    model = load(artifact, backend=backend, streams=streams, threads=threads, on_range=lambda summary: None)
    load_ms = (time.perf_counter() - t_load) * 1e3
    rss_loaded = current_rss_bytes()
    backend_name = model.backend.name
    window_samples = window_samples or (max(20, min(200, steps // max(window or 1, 1))) if window else 0)
    n_rows = warmup + steps + (window_samples + (window or 0) if window else 0)
    xs = _inputs(model, n_rows, streams)
    if streams == 1:
        xs = xs[:, 0, :]

    for x in xs[:warmup]:
        model.step(x)
    with _progress(progress_factory, steps, "profiling") as bar:
        step_ns = time_steps(model, xs[warmup:warmup + steps], bar.update)
    result = {
        "artifact": str(artifact),
        "file_bytes": artifact.stat().st_size,
        "format": model.description.get("format"),
        "quantize": model.description.get("quantize"),
        "model_name": model.description.get("model_name"),
        "spec_hash": model.description.get("spec_hash"),  # lets a baseline say which model it measured
        "backend": backend_name,
        "streams": streams,
        "threads": threads or 1,
        "steps": steps,
        "warmup": warmup,
        "latency": summarize(step_ns),
        "load_ms": load_ms,
        "memory": {"rss_before_load_bytes": rss_before, "rss_after_load_bytes": rss_loaded,
                   "peak_rss_bytes": None},
        "machine": machine_info(backend_name),
    }
    result["latency"]["stream_steps_per_s"] = result["latency"]["steps_per_s"] * streams
    if window:
        result["window"] = _window_cost(model, xs[warmup + steps:], window, window_samples,
                                        result["latency"]["p50_us"], progress_factory)
    result["memory"]["peak_rss_bytes"] = peak_rss_bytes()
    # quantized models: how many of these (synthetic) rows fell outside the calibrated ranges
    result["calibrated_range"] = model.range_summary()
    return result


def _window_cost(model, xs: np.ndarray, window: int, samples: int, step_p50_us: float, progress_factory) -> dict:
    """The naive alternative to streaming: re-run the last ``window`` samples from a fresh
    state for every new sample; its cost per sample against one step's."""
    with _progress(progress_factory, samples, f"re-running {window}-step windows") as bar:
        win = summarize(time_windows(model, xs, window, samples, bar.update))
    return {
        "window": window,
        "samples": samples,
        "per_sample": win,
        # p50 against p50: both distributions have long tails from the machine
        "ratio_p50": win["p50_us"] / step_p50_us,
        "method": "per new sample: reset the state and step the model through the last T samples",
    }


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _progress(factory, length: int, label: str):
    return factory(length, label) if factory is not None else _NoBar()


# -- budgets ---------------------------------------------------------------------------

def read_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a profile JSON ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("latency"), dict):
        raise UserError(f"{path}: not an `edgelstm profile --json` file (no 'latency' section)")
    return data


def same_model(baseline: dict, result: dict) -> bool:
    """Whether a baseline was measured on the same model, format and quantization.
    Compared by the weights' hash where both record it (older baselines: by name)."""
    keys = ("spec_hash", "format", "quantize") if baseline.get("spec_hash") else ("model_name", "format", "quantize")
    return all(baseline.get(k) == result.get(k) for k in keys)


def baseline_warnings(baseline: dict, result: dict) -> list[str]:
    """Why a comparison with ``baseline`` may not be fair: another model, another CPU."""
    out = []
    if not same_model(baseline, result):
        out.append(f"the baseline measured another model ({baseline.get('model_name')}, {baseline.get('format')} "
                   f"{baseline.get('quantize')}) than {result['artifact']} ({result['model_name']}, "
                   f"{result['format']} {result['quantize']}): the comparison is between different models")
    base_cpu = (baseline.get("machine") or {}).get("cpu")
    if base_cpu and base_cpu != result["machine"]["cpu"]:
        out.append(f"the baseline was measured on another CPU ({base_cpu}); "
                   "regenerate it on this runner for a fair comparison")
    return out


def check_budgets(result: dict, max_p99_us: float | None = None, baseline: dict | None = None,
                  max_regression_pct: float | None = None, metric: str = "p50_us") -> list[str]:
    """The budgets ``result`` breaks, as short reasons (empty: all kept).

    Also records the comparison in ``result["budget"]`` for the JSON report.
    """
    lat = result["latency"]
    broken = []
    budget: dict = {}
    if max_p99_us is not None:
        budget["max_p99_us"] = max_p99_us
        if not lat["p99_us"] <= max_p99_us:  # NaN / inf fail too
            broken.append(f"p99 {lat['p99_us']:.1f} us exceeds --max-p99-us {max_p99_us:g}")
    if baseline is not None:
        base = baseline["latency"].get(metric)
        if not isinstance(base, (int, float)) or not 0 < base < float("inf"):
            raise UserError(f"the baseline has no usable {metric!r}")
        change = 100.0 * (lat[metric] - base) / base
        budget.update(baseline_metric=metric, baseline_us=base, change_pct=change,
                      max_regression_pct=max_regression_pct)
        if max_regression_pct is not None and not change <= max_regression_pct:
            broken.append(f"{metric.removesuffix('_us')} {lat[metric]:.1f} us is {change:+.1f}% against the "
                          f"baseline's {base:.1f} us (allowed +{max_regression_pct:g}%)")
    budget["ok"] = not broken
    result["budget"] = budget
    return broken


def format_report(result: dict) -> list[str]:
    lat, mem, mach = result["latency"], result["memory"], result["machine"]
    lines = [
        f"{result['artifact']}  ({result['file_bytes']:,} bytes, {result.get('format')} "
        f"{result.get('quantize') or ''})".rstrip(),
        f"  backend {result['backend']}, {result['streams']} stream(s), {result['threads']} thread(s), "
        f"{result['steps']} steps after {result['warmup']} warm-up",
        f"  per step   p50 {lat['p50_us']:.1f} us   p90 {lat['p90_us']:.1f} us   "
        f"p99 {lat['p99_us']:.1f} us   max {lat['max_us']:.1f} us",
        f"  throughput {lat['steps_per_s']:,.0f} steps/s"
        + (f" ({lat['stream_steps_per_s']:,.0f} stream-steps/s)" if result["streams"] > 1 else ""),
    ]
    if mem.get("peak_rss_bytes"):
        lines.append(f"  memory     peak RSS {mem['peak_rss_bytes'] / 2**20:.1f} MiB"
                     + (f" (model load added {(mem['rss_after_load_bytes'] - mem['rss_before_load_bytes']) / 2**20:.1f}"
                        " MiB)" if mem.get("rss_before_load_bytes") and mem.get("rss_after_load_bytes") else ""))
    if "window" in result:
        w = result["window"]
        lines.append(f"  window     re-running a {w['window']}-step window per new sample: "
                     f"p50 {w['per_sample']['p50_us']:.1f} us per sample = {w['ratio_p50']:.1f}x stepping")
    versions = ", ".join(f"{k} {v}" for k, v in mach["versions"].items())
    lines.append(f"  machine    {mach['cpu']}, {mach['cores']} cores, Python {mach['python']}; {versions}")
    budget = result.get("budget") or {}
    if "change_pct" in budget:
        lines.append(f"  baseline   {budget['baseline_metric'].removesuffix('_us')} {budget['baseline_us']:.1f} us "
                     f"-> {lat[budget['baseline_metric']]:.1f} us ({budget['change_pct']:+.1f}%)")
    return lines
