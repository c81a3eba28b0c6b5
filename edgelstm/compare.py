"""``edgelstm compare``: SimpleRNN vs LSTM vs GRU, measured instead of asserted.

Popular write-ups compare the three cells in adjectives (memory "limited / strong /
moderate", gates "none / 3 / 2", cost "low / high / lower than LSTM", ...). This module
turns each adjective into a figure on the user's data and machine:

============================ ==============================================================
article's row                measured here as
============================ ==============================================================
gates, complexity            gates, parameters, MACs per step, state floats (ModelSpec)
performance                  held-out accuracy (or RMSE), mean and sd over ``seeds`` runs
training stability           seconds per epoch, sd of the final training loss over seeds,
                             runs that diverged (non-finite loss, or final loss above the
                             first epoch's)
computational cost           median step latency through the runtime (LiteRT float; the
                             ``native`` C backend and Cortex-M4 instructions per step when
                             this installation has them)
cost on the device           file size per format / quantization, accuracy lost by int8
memory over long spans       accuracy on a built-in delayed-recall task at several lengths
============================ ==============================================================

Every cell is trained with :func:`edgelstm.training.train` (what ``edgelstm train``
runs) and exported with :func:`edgelstm.converters.export`. Sizes, latency and the int8
loss come from the first seed's model; accuracy and the training figures from all seeds.
"""

from __future__ import annotations

import importlib
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelstm import datasets, reports
from edgelstm.core.errors import UserError, one_line
from edgelstm.core.spec import RECURRENT_KINDS, ModelSpec

#: Cells in the article's order.
CELLS = ("simple_rnn", "lstm", "gru")
CELL_LABELS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
#: Exports made of every cell; tflite/float32 is always among them (the latency column runs it).
DEFAULT_FORMATS = ("tflite/float32", "tflite/int8", "onnx/float32")
LATENCY_FORMAT = ("tflite", "float32")
#: Delayed-recall lengths (steps between the symbol and the question).
DEFAULT_LENGTHS = (10, 50, 200)
#: Delayed recall: symbols to remember (chance = 1 / RECALL_SYMBOLS), sequences to learn
#: from and to score on, and the batch size (larger than `train`'s 8: 512 sequences).
RECALL_SYMBOLS = 4
RECALL_TRAIN, RECALL_TEST = 512, 256
RECALL_BATCH = 16
#: Timed steps per latency figure (the median is reported).
LATENCY_STEPS = 300
#: Arm cross compiler the Cortex-M figure needs (Debian: gcc-arm-none-eabi).
ARM_GCC = "arm-none-eabi-gcc"


@dataclass
class CompareConfig:
    cells: tuple[str, ...] = CELLS
    units: int = 16
    #: "units": every cell gets ``units``; "params": every cell gets the units whose
    #: parameter count comes closest to an LSTM's with ``units``.
    match: str = "units"
    seeds: int = 3
    epochs: int = 20
    formats: tuple[tuple[str, str], ...] = tuple(tuple(f.split("/")) for f in DEFAULT_FORMATS)  # type: ignore
    lengths: tuple[int, ...] = DEFAULT_LENGTHS
    memory_epochs: int = 10


# -- parsing the command line's lists ---------------------------------------------------

def parse_cells(text: str) -> tuple[str, ...]:
    cells = tuple(c.strip().lower() for c in text.split(",") if c.strip())
    for cell in cells:
        if cell not in RECURRENT_KINDS:
            raise UserError(f"unknown cell {cell!r}; choose from {', '.join(RECURRENT_KINDS)}")
    if not cells or len(set(cells)) != len(cells):
        raise UserError(f"--cells needs distinct cells from {', '.join(RECURRENT_KINDS)}")
    return cells


def parse_formats(text: str) -> tuple[tuple[str, str], ...]:
    """``tflite/int8,onnx`` -> (("tflite", "int8"), ("onnx", "float32")), each one checked."""
    from edgelstm.converters import exporter

    out = [LATENCY_FORMAT]
    for item in (t.strip() for t in text.split(",") if t.strip()):
        fmt, _, quantize = item.partition("/")
        quantize = quantize or "float32"
        try:
            module = exporter(fmt)
        except ImportError as exc:
            raise UserError(f"--formats {item}: exporter not installed ({exc})") from None
        if quantize not in module.QUANTIZATIONS:
            raise UserError(f"--formats {item}: {fmt} offers {', '.join(module.QUANTIZATIONS)}")
        if (fmt, quantize) not in out:
            out.append((fmt, quantize))
    return tuple(out)


def parse_lengths(text: str) -> tuple[int, ...]:
    try:
        lengths = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--lengths {text!r}: expected comma-separated step counts, e.g. 10,50,200") from None
    if any(n < 2 for n in lengths):
        raise UserError("--lengths: every length must be at least 2 steps")
    return lengths


# -- the delayed-recall task -------------------------------------------------------------

def delayed_recall(n: int, length: int, symbols: int = RECALL_SYMBOLS, seed: int = 0):
    """Sequences (n, length, symbols + 1) and labels (n,): remember the first step.

    Step 0 shows one of ``symbols`` symbols (one-hot); every later step shows nothing in
    those channels and standard-normal noise in the last one. The label is the symbol,
    asked for after the last step, so a model must carry it ``length - 1`` steps through
    noise. Chance is ``1 / symbols``.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, symbols, n)
    x = np.zeros((n, length, symbols + 1), np.float32)
    x[np.arange(n), 0, labels] = 1.0
    x[:, 1:, symbols] = rng.standard_normal((n, length - 1))
    return x, labels


def recall_dataset(length: int, seed: int = 0) -> datasets.Dataset:
    # Train and test sets from different seeds: no sequence is scored that was learned.
    x_tr, y_tr = delayed_recall(RECALL_TRAIN, length, seed=2 * seed + 1)
    x_te, y_te = delayed_recall(RECALL_TEST, length, seed=2 * seed + 2)
    return datasets.Dataset(
        name=f"recall{length}", task="classification", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        class_names=[chr(ord("A") + k) for k in range(RECALL_SYMBOLS)],
        feature_names=[f"symbol_{k}" for k in range(RECALL_SYMBOLS)] + ["noise"],
        description=f"delayed recall: the symbol of step 0, asked after {length} steps of noise")


# -- figures ------------------------------------------------------------------------------

def diverged(losses) -> bool:
    """Training diverged: a non-finite loss, or a final loss above the first epoch's."""
    losses = [float(v) for v in losses]
    return not losses or not all(math.isfinite(v) for v in losses) or losses[-1] > losses[0]


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value); NaN stays NaN."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else 0.0)


def cell_figures(spec: ModelSpec) -> dict:
    """Structure figures of a model: gates, parameters, MACs, state; all from its weights.

    ``gates`` counts a cell's gates, not its weight blocks: the kernel holds one block per
    gate plus one for the candidate state (LSTM i, f, o + c; GRU z, r + h; SimpleRNN h).
    """
    layer = next(lay for lay in spec.layers if lay.recurrent)
    blocks = layer.weights["kernel"].shape[1] // layer.units
    return {
        "cell": layer.kind,
        "units": layer.units,
        "gates": blocks - 1,
        "cell_parameters": sum(int(w.size) for w in layer.weights.values()),
        **spec.stats(),
    }


def _keras_parameters(data: datasets.Dataset, cfg) -> int:
    from edgelstm import training

    return int(training.build_model(data, cfg).count_params())


def match_units(data: datasets.Dataset, cells, units: int, base) -> tuple[dict, int]:
    """Per cell, the units whose whole-model parameter count (Keras ``count_params``) is
    closest to an LSTM's with ``units``; returns ({cell: units}, that budget)."""
    from dataclasses import replace

    count = {}

    def params(cell, u):
        if (cell, u) not in count:
            count[cell, u] = _keras_parameters(data, replace(base, cell=cell, units=u))
        return count[cell, u]

    budget = params("lstm", units)
    chosen = {}
    for cell in cells:
        lo, hi = 1, units
        while params(cell, hi) < budget:  # a SimpleRNN needs 2x to 4x an LSTM's units
            lo, hi = hi, 2 * hi
        while lo < hi:  # smallest u with params(u) >= budget: counts grow with u
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if params(cell, mid) < budget else (lo, mid)
        chosen[cell] = min((u for u in (lo - 1, lo) if u >= 1), key=lambda u: abs(params(cell, u) - budget))
    return chosen, budget


def step_latency(path: Path, rows: np.ndarray, backend: str) -> dict:
    """Median µs per step through the runtime, or ``{"na": why}``."""
    from edgelstm.demo import time_per_step

    try:
        return {"us_per_step": time_per_step(path, rows, LATENCY_STEPS, backend=backend), "backend": backend}
    except UserError as exc:
        return {"na": str(exc), "backend": backend}


def c_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def native_latency(spec: ModelSpec, data: datasets.Dataset, out_dir: Path, name: str) -> dict:
    """The ``native`` C backend's step latency, where this build has it and can compile."""
    from edgelstm import runtime
    from edgelstm.converters import EXPORTERS, ExportOptions, export

    if "native" not in runtime.BACKENDS or "c" not in EXPORTERS:
        return {"na": "no native backend in this build"}
    if c_compiler() is None:
        return {"na": "no C compiler (install gcc or clang, or set CC)"}
    try:
        options = ExportOptions(basename=name, calibration=data.x_train, heldout=data.x_test,
                                heldout_targets=data.y_test)
        source = next(p for p in export(spec, "c", out_dir / "c", options) if p.suffix == ".c")
        return step_latency(source, data.x_test[0], "native")
    except UserError as exc:
        return {"na": str(exc)}
    except Exception as exc:  # a compiler or native-code failure costs this column, not the run
        return {"na": f"native backend failed: {one_line(exc, with_type=True)}"}


def cortex_m4(spec: ModelSpec) -> dict:
    """Instructions per step on an emulated Cortex-M4, where the firmware tools exist."""
    try:
        measure = importlib.import_module("edgelstm.firmware").measure
    except (ImportError, AttributeError):
        return {"na": "no edgelstm.firmware.measure in this build"}
    if shutil.which(ARM_GCC) is None:
        return {"na": "no Arm toolchain (apt install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"}
    try:
        figures = dict(measure(spec, target="cortex-m4", quantize="float32"))
        if figures.get("passed") is False:  # a count of a step that computes the wrong answer means nothing
            return {"na": f"firmware output differs from the reference (max error {figures.get('max_abs_err')})",
                    "measured": figures}
        return figures
    except UserError as exc:
        return {"na": str(exc)}
    except Exception as exc:  # an emulator or toolchain failure costs this column, not the run
        return {"na": f"firmware measurement failed: {one_line(exc, with_type=True)}"}


def export_figures(spec: ModelSpec, data: datasets.Dataset, formats, out_dir: Path, name: str) -> dict:
    """Export to every (format, quantization); per export its file size and, over the
    whole held-out set, its accuracy (or RMSE) next to the float reference's."""
    from edgelstm.converters.accuracy import compare_artifact
    from edgelstm.converters import ExportOptions, export

    out = {}
    for fmt, quantize in formats:
        key = f"{fmt}/{quantize}"
        options = ExportOptions(quantize=quantize, basename=f"{name}.{quantize}", calibration=data.x_train,
                                heldout=data.x_test, heldout_targets=data.y_test)
        try:
            path = export(spec, fmt, out_dir / fmt, options)[0]
            figures = compare_artifact(spec, path, data.x_test, data.y_test)
        except UserError as exc:
            out[key] = {"na": str(exc)}
            continue
        out[key] = {"path": str(path), "bytes": path.stat().st_size, **figures}
    return out


def quality_key(task: str) -> str:
    return "accuracy" if task == "classification" else "rmse"


def _train_cell(data, cfg: CompareConfig, cell: str, units: int, work: Path, echo, counter) -> dict:
    from edgelstm import training
    from edgelstm.calibration import apply_report
    from edgelstm.keras_import import spec_from_path

    key = quality_key(data.task)
    runs = []
    for seed in range(cfg.seeds):
        counter[0] += 1
        t0 = time.perf_counter()
        train_cfg = training.TrainConfig(cell=cell, units=units, epochs=cfg.epochs, seed=seed)
        report = training.train(data, train_cfg, work / f"seed{seed}" / f"{data.name}_{cell}.keras")
        runs.append(report)
        echo(f"[{counter[0]}/{counter[1]}] {CELL_LABELS[cell]}({units}) seed {seed}: {cfg.epochs} epochs in "
             f"{time.perf_counter() - t0:.1f} s, final loss {report['final_train_loss']:.4g}, "
             f"held-out {key} {report['metrics'][key]:.4g}")
    model_path = Path(runs[0]["paths"][0])
    spec = apply_report(spec_from_path(model_path), runs[0])
    quality = mean_sd([r["metrics"][key] for r in runs])
    final = mean_sd([r["final_train_loss"] for r in runs])
    return {
        "structure": cell_figures(spec),
        "model": str(model_path),
        key: {"mean": quality[0], "sd": quality[1], "per_seed": [r["metrics"][key] for r in runs]},
        "metrics_per_seed": [r["metrics"] for r in runs],
        "training": {
            # The median epoch: the first one also traces the graph.
            "seconds_per_epoch": float(np.median([s for r in runs for s in r["epoch_seconds"]])),
            "final_loss_mean": final[0], "final_loss_sd": final[1],
            "diverged": sum(diverged(r["loss_history"]) for r in runs), "runs": len(runs),
            "loss_history_per_seed": [r["loss_history"] for r in runs],
            "epoch_seconds_per_seed": [r["epoch_seconds"] for r in runs],
        },
    }, spec


def memory_task(cells_units: dict, cfg: CompareConfig, work: Path, echo, counter) -> dict:
    """Delayed-recall accuracy per cell and length (one seed: the figure is a trend)."""
    from edgelstm import training

    out = {"chance": 1.0 / RECALL_SYMBOLS, "symbols": RECALL_SYMBOLS, "train_sequences": RECALL_TRAIN,
           "test_sequences": RECALL_TEST, "epochs": cfg.memory_epochs, "lengths": list(cfg.lengths),
           "accuracy": {cell: {} for cell in cells_units}}
    for length in cfg.lengths:
        data = recall_dataset(length)
        for cell, units in cells_units.items():
            counter[0] += 1
            t0 = time.perf_counter()
            train_cfg = training.TrainConfig(cell=cell, units=units, epochs=cfg.memory_epochs,
                                             batch_size=RECALL_BATCH)
            report = training.train(data, train_cfg, work / "memory" / f"recall{length}_{cell}.keras")
            acc = report["metrics"]["accuracy"]
            out["accuracy"][cell][str(length)] = acc
            echo(f"[{counter[0]}/{counter[1]}] delayed recall, {length} steps, {CELL_LABELS[cell]}({units}): "
                 f"accuracy {acc:.3f} (chance {out['chance']:.2f}, {time.perf_counter() - t0:.1f} s)")
    return out


def run_compare(data: datasets.Dataset, cfg: CompareConfig, work: str | Path | None = None, echo=print) -> dict:
    """Train, export and measure every cell; returns every figure (see module docstring).

    ``work`` keeps the trained models and exports; None: a temporary directory, removed.
    """
    if work is None:
        with tempfile.TemporaryDirectory(prefix="edgelstm-compare-") as tmp:
            return run_compare(data, cfg, tmp, echo)
    from edgelstm import training
    from edgelstm.latency import machine_info

    work = Path(work)
    t_start = time.perf_counter()
    if cfg.match == "params":
        units, budget = match_units(data, cfg.cells, cfg.units, training.TrainConfig(units=cfg.units))
        echo(f"parameter budget {budget:,} (LSTM({cfg.units}) on {data.name}): units "
             + ", ".join(f"{CELL_LABELS[c]} {u}" for c, u in units.items()))
    else:
        units, budget = {cell: cfg.units for cell in cfg.cells}, None
    counter = [0, len(cfg.cells) * (cfg.seeds + len(cfg.lengths))]
    echo(f"comparing {', '.join(CELL_LABELS[c] for c in cfg.cells)} on {data.name} ({len(data.x_train)} train / "
         f"{len(data.x_test)} test windows of {data.seq_len} steps): {counter[1]} models to train")
    rows = {}
    for cell in cfg.cells:
        row, spec = _train_cell(data, cfg, cell, units[cell], work / "models", echo, counter)
        name = f"{data.name}_{cell}"
        row["exports"] = export_figures(spec, data, cfg.formats, work / "exports", name)
        tflite = row["exports"].get("/".join(LATENCY_FORMAT), {})
        row["latency"] = {
            "litert": step_latency(Path(tflite["path"]), data.x_test[0], "litert") if "path" in tflite
            else {"na": tflite.get("na", "no float TFLite export")},
            "native": native_latency(spec, data, work / "exports", name),
        }
        row["cortex_m4"] = cortex_m4(spec)
        row["int8_loss"] = int8_loss(row["exports"], data.task)
        rows[cell] = row
        echo(f"      {CELL_LABELS[cell]}: exported to {len(row['exports'])} formats, "
             f"LiteRT {_fmt_latency(row['latency']['litert'])} per step")
    memory = memory_task(units, cfg, work, echo, counter) if cfg.lengths else None
    return {
        "dataset": {"name": data.name, "task": data.task, "description": data.description,
                    "train_windows": int(len(data.x_train)), "test_windows": int(len(data.x_test)),
                    "seq_len": int(data.seq_len), "features": int(data.features)},
        "config": {"cells": list(cfg.cells), "units": cfg.units, "match": cfg.match, "parameter_budget": budget,
                   "seeds": cfg.seeds, "epochs": cfg.epochs, "formats": ["/".join(f) for f in cfg.formats],
                   "lengths": list(cfg.lengths), "memory_epochs": cfg.memory_epochs,
                   "latency_steps": LATENCY_STEPS},
        "quality_metric": quality_key(data.task),
        "cells": rows,
        "memory_task": memory,
        "machine": machine_info("litert"),
        "seconds": time.perf_counter() - t_start,
    }


def int8_loss(exports: dict, task: str) -> dict:
    """What the int8 export lost against the float reference on the held-out set:
    accuracy in percentage points (classification) or RMSE change in percent."""
    int8 = [(k, v) for k, v in exports.items() if k.endswith("/int8")]
    if not int8:
        return {"na": "no int8 format requested"}
    key, figures = next(((k, v) for k, v in int8 if "na" not in v), int8[0])
    if "na" in figures:
        return {"na": figures["na"]}
    if task == "classification":
        return {"format": key, "points": 100 * (figures["accuracy_reference"] - figures["accuracy"])}
    return {"format": key, "rmse_change_pct": 100 * figures["rmse_change"]}


# -- the table ------------------------------------------------------------------------------

def _na(figure: dict) -> str:
    return f"n/a ({figure['na']})"


def _fmt_latency(figure: dict) -> str:
    return f"{figure['us_per_step']:.1f} us" if "us_per_step" in figure else _na(figure)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f}K"


def format_table(result: dict) -> str:
    """One row per cell; unavailable figures as ``n/a`` with the reason listed below."""
    key = result["quality_metric"]
    cells = result["cells"]
    formats = result["config"]["formats"]
    memory = result["memory_task"]
    header = ["cell", "units", "gates", "params", "MACs/step", "state", key,
              "s/epoch", "loss sd", "diverged", "LiteRT us/step", "native us/step", "M4 instr/step"]
    header += [f"{f} size" for f in formats]
    header.append("int8 loss")
    if memory:
        header += [f"recall@{n}" for n in memory["lengths"]]
    notes: list[str] = []

    def cell_text(figure: dict, fmt) -> str:
        if "na" in figure:
            note = figure["na"]
            if note not in notes:
                notes.append(note)
            return f"n/a [{notes.index(note) + 1}]"
        return fmt(figure)

    lines = [header]
    for cell, row in cells.items():
        s, t, q = row["structure"], row["training"], row[key]
        line = [CELL_LABELS[cell], str(s["units"]), str(s["gates"]), f"{s['parameters']:,}",
                f"{s['macs_per_step']:,}", str(s["state_floats"]),
                f"{q['mean']:.3f} ± {q['sd']:.3f}", f"{t['seconds_per_epoch']:.2f}",
                f"{t['final_loss_sd']:.3g}", f"{t['diverged']}/{t['runs']}",
                cell_text(row["latency"]["litert"], lambda f: f"{f['us_per_step']:.1f}"),
                cell_text(row["latency"]["native"], lambda f: f"{f['us_per_step']:.1f}"),
                cell_text(row["cortex_m4"], lambda f: f"{f['instructions_per_step']:,.0f}")]
        line += [cell_text(row["exports"][f], lambda f: _kib(f["bytes"])) for f in formats]
        line.append(cell_text(row["int8_loss"], lambda f: f"{f['points']:+.1f} pt" if "points" in f
                              else f"{f['rmse_change_pct']:+.1f}%"))
        if memory:
            line += [f"{memory['accuracy'][cell][str(n)]:.2f}" for n in memory["lengths"]]
        lines.append(line)
    text = reports.format_table(lines, right_align=True)
    cfg, data = result["config"], result["dataset"]
    text.append("")
    text.append(f"{data['name']}: {key} on {data['test_windows']} held-out windows, mean ± sd over {cfg['seeds']} "
                f"seeds, {cfg['epochs']} epochs; s/epoch is the median epoch; loss sd: final training loss "
                f"across seeds; diverged: non-finite or final loss above the first epoch's.")
    text.append("Sizes, latency (median of one stream's steps) and the int8 loss (held-out "
                f"{key}, int8 export vs the float reference) are of seed 0's model.")
    if memory:
        text.append(f"recall@N: delayed recall of 1 of {memory['symbols']} symbols after N steps of noise, "
                    f"accuracy on {memory['test_sequences']} sequences (chance {memory['chance']:.2f}), "
                    f"{memory['epochs']} epochs, seed 0.")
    text += [f"[{i + 1}] {note}" for i, note in enumerate(notes)]
    return "\n".join(text)


# -- the plot -------------------------------------------------------------------------------

def plot(result: dict, path: str | Path) -> Path:
    """Held-out quality against LiteRT step latency, and recall accuracy against length."""
    from edgelstm.check import require_matplotlib, save_png

    plt = require_matplotlib()
    path = Path(path)
    key = result["quality_metric"]
    memory = result["memory_task"]
    fig, axes = plt.subplots(1, 2 if memory else 1, figsize=(11 if memory else 6, 4.5), dpi=100, squeeze=False)
    ax = axes[0][0]
    for cell, row in result["cells"].items():
        lat = row["latency"]["litert"]
        if "us_per_step" not in lat:
            continue
        q = row[key]
        ax.errorbar(lat["us_per_step"], q["mean"], yerr=q["sd"], fmt="o", capsize=4,
                    label=f"{CELL_LABELS[cell]}({row['structure']['units']})")
    ax.set_xlabel("LiteRT float step latency (µs, median)")
    ax.set_ylabel(f"held-out {key} (mean ± sd over {result['config']['seeds']} seeds)")
    ax.set_title(f"{result['dataset']['name']}: {key} against cost", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if memory:
        ax = axes[0][1]
        for cell, accs in memory["accuracy"].items():
            ax.plot(memory["lengths"], [accs[str(n)] for n in memory["lengths"]], marker="o",
                    label=CELL_LABELS[cell])
        ax.axhline(memory["chance"], color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_xscale("log")
        ax.set_xticks(memory["lengths"], [str(n) for n in memory["lengths"]])
        ax.minorticks_off()
        ax.set_xlabel("sequence length (steps from the symbol to the question)")
        ax.set_ylabel("delayed-recall accuracy")
        ax.set_ylim(0, 1.05)
        ax.set_title("memory over long spans", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(plt, fig, path)
