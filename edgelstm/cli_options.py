"""The options and arguments of every ``edgelstm`` command, by command.

Part of the command line (``cli.py`` holds the commands; this module only declares
what each one accepts, so ``cli.py`` reads as: parse, call one function, print). The
only module besides ``cli.py`` that imports click.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgelstm.datasets import NAMES as DATASET_NAMES
from edgelstm.demo import DEMO_EPOCHS


def stacked(*decorators):
    """One decorator applying ``decorators`` as if written one above the other, in this
    order (the order ``--help`` lists them in)."""
    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command
    return apply


# -- shared by several commands --------------------------------------------------------

JSON_REPORT = click.option("--json", "json_path", default=None,
                           help="Write every figure to FILE as JSON (- for stdout).")
BACKEND = click.option("--backend", default="auto", show_default=True,
                       help="auto (by file type) | numpy | litert | tflm | onnxruntime | native (.c, compiled here).")
THREADS = click.option("--threads", type=click.IntRange(1), default=None, help="Engine threads (default: 1).")
#: --dataset NAME | --csv FILE (--target, --task, --window): what `train` and `compare` learn from
DATA = (
    click.option("--dataset", default=None,
                 help="Bundled dataset: " + " | ".join(DATASET_NAMES) + "."),
    click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Learn from a CSV instead: one row per timestep, with a header."),
    click.option("--target", default=None, help="CSV: the column to predict (next value, or the window's label)."),
    click.option("--task", type=click.Choice(["regression", "classification"]), default="regression",
                 show_default=True, help="CSV: forecast the target's next value, or classify each window."),
    click.option("--window", type=click.IntRange(2), default=24, show_default=True, help="CSV: window length."),
)


def training_data(dataset, csv_path, target, task, window):
    """The dataset the DATA options name."""
    from edgelstm import datasets, training

    if (dataset is None) == (csv_path is None):
        raise click.UsageError("give exactly one of --dataset NAME or --csv FILE")
    if csv_path is None:
        return datasets.load(dataset)
    if not target:
        raise click.UsageError("--csv needs --target COLUMN")
    return training.dataset_from_csv(csv_path, target, window, task)


# -- one stack per command -------------------------------------------------------------

INFO = stacked(
    click.argument("path", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--json", "as_json", is_flag=True, help="Print everything as JSON."),
)

EXPORT = stacked(
    click.argument("model", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--format", "fmt", default="npz", show_default=True,
                 help="Target, or several separated by commas: npz (numpy backend), tflite (LiteRT / TFLite "
                      "Micro), onnx (ONNX Runtime), c (C99 NAME.h + NAME.c for microcontrollers; native backend)."),
    click.option("--quantize", default="float32", show_default=True,
                 help="float32 | dynamic (int8 weights) | int8 (full integer, tflite) | int16x8 (tflite); "
                      "several separated by commas."),
    click.option("--all", "all_variants", is_flag=True,
                 help="Every format and quantization available here (combinations a format lacks are skipped)."),
    click.option("--mode", type=click.Choice(["step", "sequence"]), default="step", show_default=True,
                 help="step: one timestep in, state as explicit inputs/outputs (streaming). "
                      "sequence: a whole window in (for other tools; run/check/profile need step mode)."),
    click.option("--seq-len", type=click.IntRange(1), default=None,
                 help="Window length for --mode sequence (default: the model's own, if fixed)."),
    click.option("--calibration-data", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Real sequences for quantization: .npz (x: N,T,F), .npy or .csv. Default: the data "
                      "recorded by `edgelstm train`, else the bundled dataset, else synthetic (warned)."),
    click.option("--opset", type=int, default=None, help="ONNX opset (onnx only)."),
    click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
                 help="Classifiers: exit 1 and write nothing when the check on write finds a lower class "
                      "agreement with the float model (a fraction, e.g. 0.98)."),
    click.option("--max-rmse-change", type=click.FloatRange(-100), default=None,
                 help="Regressors: exit 1 and write nothing when the check on write finds the RMSE against "
                      "the held-out targets grew by more than PCT percent."),
    click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                 show_default=True, help="Directory to write into."),
    click.option("--name", default=None,
                 help="Base file name (default: the model file's name); for c also the C prefix of the API."),
    click.option("--c-array", is_flag=True,
                 help="tflite: also write <name>_model_data.h/.cc for TensorFlow Lite Micro (aligned C array, "
                      "MicroMutableOpResolver lines, measured arena size)."),
)

RUN = stacked(
    click.argument("artifact", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("-i", "--input", "input_path", default="-", show_default=True,
                 help="CSV file, one row per timestep (feature columns; header optional), or - for stdin."),
    click.option("-o", "--output", "output_path", default="-", show_default=True,
                 help="CSV file for one output row per step, or - for stdout."),
    click.option("--stream-column", default=None,
                 help="Column whose distinct values are independent streams, each with its own state "
                      "(interleaved sensors, or one id per sequence). Echoed in the output."),
    BACKEND,
    THREADS,
    click.option("--on-bad-row", type=click.Choice(["error", "skip"]), default="error", show_default=True,
                 help="error: stop with the row number (exit 2). skip: report on stderr, keep the state unchanged."),
    click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Restore every stream's state from FILE at start (if it exists) and save it there at the "
                      "end, also after an error; written atomically, so a crash leaves the last good state."),
    click.option("--checkpoint-every", type=click.IntRange(1), default=None,
                 help="With --state-file: also save the state every N streamed rows."),
    click.option("--last-only", is_flag=True,
                 help="Print only the last output of each stream, at the end (e.g. the answer for a window)."),
)

PROFILE = stacked(
    click.argument("artifact", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--compare", is_flag=True,
                 help="Profile nothing: show the given `profile --json` files side by side (boards, engines)."),
    click.option("--steps", type=click.IntRange(10), default=2000, show_default=True, help="Timed steps."),
    click.option("--warmup", type=click.IntRange(0), default=100, show_default=True, help="Untimed steps first."),
    click.option("--streams", type=click.IntRange(1), default=1, show_default=True,
                 help="Streams stepped together in each call (one batch)."),
    THREADS,
    BACKEND,
    click.option("--window", type=click.IntRange(1), default=None,
                 help="Also time the naive alternative: re-run the last T samples from a fresh state for "
                      "every new sample; prints its cost per sample as a multiple of one step."),
    JSON_REPORT,
    click.option("--max-p99-us", type=click.FloatRange(0, min_open=True), default=None,
                 help="Exit 1 when the p99 step latency exceeds this many microseconds."),
    click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="A previous `profile --json` file to compare with."),
    click.option("--max-regression", type=click.FloatRange(0), default=None,
                 help="With --baseline: exit 1 when --metric is more than PCT percent slower than the baseline."),
    click.option("--metric", type=click.Choice(["p50", "p90", "p99", "mean"]), default="p50", show_default=True,
                 help="Latency figure compared with the baseline (p50 is the steadiest on shared CI machines)."),
)

CHECK = stacked(
    click.argument("model", type=click.Path(dir_okay=False, path_type=Path)),
    click.argument("artifact", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Inputs: a CSV (one row per timestep, feature columns, header optional) streamed in order, "
                      "or .npz/.npy sequences laid end to end. Default: the data recorded with MODEL by "
                      "`edgelstm train`, else its bundled dataset."),
    click.option("--dataset", default=None,
                 help="A bundled dataset's held-out sequences: " + " | ".join(DATASET_NAMES) + "."),
    click.option("--steps", type=click.IntRange(1), default=2000, show_default=True,
                 help="Stream length; shorter data is repeated end to end, the state carrying across."),
    click.option("--segments", type=click.IntRange(1), default=10, show_default=True,
                 help="Stream segments for the error-growth (drift) figures."),
    BACKEND,
    JSON_REPORT,
    click.option("--max-abs-err", type=click.FloatRange(0), default=None,
                 help="Exit 1 when any output of any step differs from the reference by more."),
    click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
                 help="Classifiers: exit 1 when the fraction of steps whose predicted class matches the "
                      "reference is lower."),
    click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Write a PNG of the error over stream position, one line per output (needs the plot extra)."),
    click.option("--reset-every", default=None, metavar="N|window",
                 help="Start both from a zero state again every N steps ('window': the model's own window "
                      "length), the way a windowed model is used. Default: one unbroken stream."),
    click.option("--max-replay-ratio", type=click.FloatRange(0), default=None,
                 help="Play the --steps stream twice end to end, state carried across, and exit 1 when the "
                      "second pass's mean error exceeds RATIO x the first (drift; the project's target is 1.2)."),
)

FIRMWARE = stacked(
    click.argument("model", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--target", type=click.Choice(["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m3"]),
                 default="cortex-m4", show_default=True,
                 help="Core, emulated by QEMU: cortex-m4 (mps2-an386, M4F), cortex-m7 (mps2-an500), "
                      "cortex-m33 (mps2-an505), cortex-m3 (mps2-an385, no FPU)."),
    click.option("--quantize", type=click.Choice(["float32", "int8", "int16x8"]), default=None,
                 help="C export quantization (default: float32; for a .c file, what its .c.json records)."),
    click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="With a generated .c file: the model (.keras or .npz) it was generated from, "
                      "whose numpy reference the firmware must reproduce."),
    click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Keep the generated sources, ELF and QEMU log here (default: a temporary directory)."),
    JSON_REPORT,
    click.option("--max-instructions", type=click.FloatRange(0, min_open=True), default=None,
                 help="Exit 1 when one step takes more instructions."),
    click.option("--max-flash", type=click.IntRange(1), default=None,
                 help="Exit 1 when the model's code + weights take more bytes of flash."),
    click.option("--max-ram", type=click.IntRange(1), default=None,
                 help="Exit 1 when the model's RAM (state + step stack + static data) is larger, in bytes."),
)

TRAIN = stacked(
    *DATA,
    click.option("--cell", type=click.Choice(["lstm", "gru", "simple_rnn"]), default="lstm", show_default=True,
                 help="Recurrent cell."),
    click.option("--units", type=click.IntRange(1), default=32, show_default=True, help="Units per recurrent layer."),
    click.option("--layers", type=click.IntRange(1), default=1, show_default=True, help="Stacked recurrent layers."),
    click.option("--epochs", type=click.IntRange(1), default=40, show_default=True, help="Training epochs."),
    click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
                 help="Windows per gradient step."),
    click.option("--lr", "learning_rate", type=float, default=3e-3, show_default=True,
                 help="Adam learning rate (gradients clipped at norm 1)."),
    click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
                 help="Keep the learning rate, or decay it to 0 along a cosine over the run."),
    click.option("--recurrent-dropout", type=click.FloatRange(0.0, 0.9), default=0.0, show_default=True,
                 help="Fraction of the recurrent state dropped per training step (slower; regularises)."),
    click.option("--state-noise", type=click.FloatRange(0.0), default=0.0, show_default=True,
                 help="Train against noise of K int8 steps in every carried state, so quantized exports agree "
                      "more (README: Quantization accuracy; slower). The saved model is the plain layer. 0: off."),
    click.option("--cell-state-penalty", type=click.FloatRange(0.0), default=0.0, show_default=True,
                 help="LSTM: loss weight on every step's cell state beyond |c| = 4, so int8 steps of c stay "
                      "fine. 0: off."),
    click.option("--quant-aware-epochs", type=click.IntRange(0), default=0, show_default=True,
                 help="After --epochs, fine-tune this many epochs at a tenth of --lr with every tensor of the "
                      "int8 step graph rounded to 8 bits (quantization-aware; slower). The saved model is the "
                      "plain layer. 0: off."),
    click.option("--seed", type=int, default=0, show_default=True, help="Random seed (weights, shuffling)."),
    click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("models"), show_default=True,
                 help="Directory (or .keras path) to write the model, report and calibration data to."),
)

DEMO = stacked(
    click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
                 default=Path("edgelstm-demo"), show_default=True, help="Where models and exports go."),
    click.option("--epochs", type=click.IntRange(1), default=DEMO_EPOCHS, show_default=True, help="Training epochs."),
    click.option("--units", type=click.IntRange(1), default=32, show_default=True, help="LSTM units."),
    click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Also write the table as JSON."),
)

COMPARE = stacked(
    *DATA,
    click.option("--cells", default="simple_rnn,lstm,gru", show_default=True,
                 help="Cells to compare, comma-separated."),
    click.option("--units", type=click.IntRange(1), default=16, show_default=True,
                 help="Units per cell (with --match params: the LSTM whose parameter count every cell gets)."),
    click.option("--match", type=click.Choice(["units", "params"]), default="units", show_default=True,
                 help="units: every cell gets --units. params: every cell gets an LSTM(--units)'s parameter budget."),
    click.option("--seeds", type=click.IntRange(1), default=3, show_default=True,
                 help="Training runs per cell (seeds 0..K-1): accuracy and loss spread over them."),
    click.option("--epochs", type=click.IntRange(1), default=20, show_default=True, help="Training epochs per run."),
    click.option("--formats", default="tflite/float32,tflite/int8,onnx/float32",
                 show_default=True, help="Exports to size, FORMAT[/QUANTIZE] comma-separated; tflite/float32 is "
                                         "always made (the latency column runs it)."),
    click.option("--lengths", default="10,50,200", show_default=True,
                 help="Delayed-recall task lengths in steps (empty: skip the task)."),
    click.option("--memory-epochs", type=click.IntRange(1), default=10, show_default=True,
                 help="Training epochs per delayed-recall model."),
    click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Keep the trained models and exports here (default: a temporary directory, removed)."),
    JSON_REPORT,
    click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Write a PNG: accuracy against step latency, and against delayed-recall length."),
)
