"""The ``edgelstm`` command line.

Errors a user can cause print one line ``error: ...`` and exit with status 2. The
lean on-device install (numpy + click + one engine) runs ``run``, ``info`` and
``profile``; commands that need TensorFlow say which extra to install.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import click

from edgelstm import __version__
from edgelstm.errors import UserError, one_line, require_file
from edgelstm.keras_import import KERAS_SUFFIXES, load_model_spec

ARTIFACT_SUFFIXES = (".npz", ".tflite", ".onnx", ".c")
#: artifact suffix -> module with ``inspect(path) -> dict`` (engine-level details)
INSPECTORS = {".tflite": "edgelstm.runtime.tflite_info", ".onnx": "edgelstm.runtime.onnx_info",
              ".c": "edgelstm.runtime.native_backend"}


class UserFacingError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


class Group(click.Group):
    """Turns UserError (and a closed output pipe) into one line, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise UserFacingError(str(exc)) from None
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
            ctx.exit(0)
        except UnicodeDecodeError as exc:
            raise UserFacingError(f"input is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:  # unwritable output, a file where a directory should be, a full disk, ...
            where = f"{exc.filename}: " if exc.filename else ""
            raise UserFacingError(f"{where}{exc.strerror or exc}") from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgelstm")
def cli():
    """Keras LSTM / GRU / SimpleRNN models on small hardware.

    \b
    Typical path:
      edgelstm train --dataset basicmotions -o models/      train (or bring a .keras)
      edgelstm export models/basicmotions_lstm.keras --format tflite --quantize int8 -o out/
      edgelstm run out/basicmotions_lstm.int8.tflite --input sensor.csv
      edgelstm demo                                         all of it on bundled data
    """


def main():
    cli(prog_name="edgelstm")


# -- helpers ---------------------------------------------------------------------------

def _layers_table(layers: list[dict]) -> list[str]:
    rows = [("#", "layer", "kind", "units", "activation", "recurrent", "sequences")]
    for i, cfg in enumerate(layers):
        rows.append((str(i), cfg.get("name", ""), cfg["kind"], str(cfg["units"]), cfg.get("activation", ""),
                     str(cfg.get("recurrent_activation") or ""),
                     str(cfg.get("return_sequences", "")) if cfg["kind"] in ("lstm", "gru", "simple_rnn") else ""))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


# -- info ------------------------------------------------------------------------------

@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info(path: Path, as_json: bool):
    """What a model or artifact contains: layers, parameters, MACs per step, state, memory.

    PATH is a Keras model (.keras/.h5, needs the host extra) or an exported artifact
    (.npz, .tflite, .onnx, .c).
    """
    path = require_file(path)
    suffix = path.suffix.lower()
    data: dict = {"file": str(path), "file_bytes": path.stat().st_size}
    if suffix in KERAS_SUFFIXES or suffix == ".npz":
        spec = load_model_spec(path)
        data.update({"name": spec.name, "task": spec.task, "input_size": spec.input_size,
                     "output_size": spec.output_size, "class_names": spec.class_names,
                     "returns_sequences": spec.returns_sequences, "source_hash": spec.source_hash,
                     "states": [s.__dict__ for s in spec.state_specs()],
                     "layers": [layer.config() for layer in spec.layers], **spec.stats()})
    elif suffix in INSPECTORS:  # readers of their own (struct / protobuf): no engine needed
        import importlib


        try:
            data.update(importlib.import_module(INSPECTORS[suffix]).inspect(path))
        except UserError:
            raise
        except Exception as exc:  # a malformed file can trip the parser anywhere
            raise UserError(f"{path}: cannot read this file ({one_line(exc, with_type=True)})") from None
    else:
        raise UserError(f"{path}: unknown file type {suffix!r} (expected .keras, .h5, .npz, .tflite, .onnx or .c)")
    if as_json:
        _write_json("-", data)
        return
    _print_info(data)


def _print_info(data: dict) -> None:
    desc = data.get("description") or {}
    layers = data.get("layers") or desc.get("layers")
    stats = {k: data[k] for k in ("parameters", "macs_per_step", "state_floats", "weight_bytes_float32") if k in data}
    stats = stats or desc.get("stats") or {}
    click.echo(f"{data['file']}  ({data['file_bytes']:,} bytes)")
    # An artifact's description keeps the sizes under input/output.
    sizes = {f"{io}_size": (desc.get(io) or {}).get("size") for io in ("input", "output")}
    for key in ("name", "model_name", "task", "format", "quantize", "mode", "input_size", "output_size"):
        value = data.get(key, desc.get(key, sizes.get(key)))
        if value is not None:
            click.echo(f"  {key:<22}{value}")
    if not (isinstance(layers, list) and all(isinstance(c, dict) and {"kind", "units"} <= set(c) for c in layers)):
        layers = None  # a damaged description: the rest is still worth showing
    if layers:
        click.echo("")
        for line in _layers_table(layers):
            click.echo("  " + line)
    if not (isinstance(stats, dict) and all(isinstance(stats.get(k), int) for k in
                                             ("parameters", "macs_per_step", "state_floats", "weight_bytes_float32"))):
        stats = {}  # a damaged description: show what is there, below, rather than fail
    if stats:
        click.echo("")
        click.echo(f"  parameters            {stats['parameters']:,}")
        click.echo(f"  MACs per step         {stats['macs_per_step']:,}")
        click.echo(f"  state size (floats)   {stats['state_floats']:,}")
        click.echo(f"  weight memory         {stats['weight_bytes_float32']:,} bytes as float32")
    shown = {"file", "file_bytes", "file_size", "path", "description", "layers", "name", "model_name", "task",
             "format", "quantize", "mode", "input_size", "output_size", "states", *stats}
    rest = {k: v for k, v in data.items() if k not in shown}
    for key, value in rest.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            click.echo(f"  {key}")
            for item in value:
                click.echo("    " + "  ".join(f"{k}={v}" for k, v in item.items()))
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
            value = value if len(value) < 200 else value[:197] + "..."
        click.echo(f"  {key:<22}{value}")


# -- export ----------------------------------------------------------------------------

@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", default="npz", show_default=True,
              help="Target, or several separated by commas: npz (numpy backend), tflite (LiteRT / TFLite "
                   "Micro), onnx (ONNX Runtime), c (C99 NAME.h + NAME.c for microcontrollers; native backend).")
@click.option("--quantize", default="float32", show_default=True,
              help="float32 | dynamic (int8 weights) | int8 (full integer, tflite) | int16x8 (tflite); "
                   "several separated by commas.")
@click.option("--all", "all_variants", is_flag=True,
              help="Every format and quantization available here (combinations a format lacks are skipped).")
@click.option("--mode", type=click.Choice(["step", "sequence"]), default="step", show_default=True,
              help="step: one timestep in, state as explicit inputs/outputs (streaming). "
                   "sequence: a whole window in (for other tools; run/check/profile need step mode).")
@click.option("--seq-len", type=click.IntRange(1), default=None,
              help="Window length for --mode sequence (default: the model's own, if fixed).")
@click.option("--calibration-data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Real sequences for quantization: .npz (x: N,T,F), .npy or .csv. Default: the data "
                   "recorded by `edgelstm train`, else the bundled dataset, else synthetic (warned).")
@click.option("--opset", type=int, default=None, help="ONNX opset (onnx only).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Classifiers: exit 1 and write nothing when the check on write finds a lower class "
                   "agreement with the float model (a fraction, e.g. 0.98).")
@click.option("--max-rmse-change", type=click.FloatRange(-100), default=None,
              help="Regressors: exit 1 and write nothing when the check on write finds the RMSE against "
                   "the held-out targets grew by more than PCT percent.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory to write into.")
@click.option("--name", default=None,
              help="Base file name (default: the model file's name); for c also the C prefix of the API.")
@click.option("--c-array", is_flag=True,
              help="tflite: also write <name>_model_data.h/.cc for TensorFlow Lite Micro (aligned C array, "
                   "MicroMutableOpResolver lines, measured arena size).")
def export(model, fmt, quantize, all_variants, mode, seq_len, calibration_data, opset, min_agreement,
           max_rmse_change, output_dir, name, c_array):
    """Export MODEL (.keras, .h5 or .npz spec) to deployable artifacts, verified on write.

    Prints the path of every file written (the artifact and its .json description).
    File names: <name>[.<quantize> unless float32][.sequence].<suffix>.
    """
    from edgelstm.export_guard import ExportRejected
    from edgelstm.export_variants import export_variants, variants

    # an invalid combination fails before anything else is said
    todo = variants(fmt, quantize, mode, all_variants, note=lambda m: click.echo(m, err=True))
    if c_array and not any(f == "tflite" for f, _ in todo):
        raise click.UsageError("--c-array needs --format tflite")
    spec = load_model_spec(model)  # TensorFlow is imported once, here, for every variant
    if min_agreement is not None and spec.task != "classification":
        raise UserError("--min-agreement needs a classifier; use --max-rmse-change for a regressor")
    try:
        for path in export_variants(spec, model, todo, output_dir, name, mode=mode, seq_len=seq_len, opset=opset,
                                    calibration_file=calibration_data, min_agreement=min_agreement,
                                    max_rmse_change=max_rmse_change,
                                    echo=lambda m: click.echo(m, err=True)):
            click.echo(str(path))
            if c_array and path.suffix == ".tflite":
                from edgelstm.tflm_project import write_c_array

                for extra in write_c_array(path):
                    click.echo(str(extra))
    except ExportRejected as exc:
        click.echo(f"FAIL: {exc}", err=True)
        sys.exit(1)


# -- run -------------------------------------------------------------------------------

@cli.command()
@click.argument("artifact", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-i", "--input", "input_path", default="-", show_default=True,
              help="CSV file, one row per timestep (feature columns; header optional), or - for stdin.")
@click.option("-o", "--output", "output_path", default="-", show_default=True,
              help="CSV file for one output row per step, or - for stdout.")
@click.option("--stream-column", default=None,
              help="Column whose distinct values are independent streams, each with its own state "
                   "(interleaved sensors, or one id per sequence). Echoed in the output.")
@click.option("--backend", default="auto", show_default=True,
              help="auto (by file type) | numpy | litert | tflm | onnxruntime | native (.c, compiled here).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Engine threads (default: 1).")
@click.option("--on-bad-row", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="error: stop with the row number (exit 2). skip: report on stderr, keep the state unchanged.")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Restore every stream's state from FILE at start (if it exists) and save it there at the "
                   "end, also after an error; written atomically, so a crash leaves the last good state.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=None,
              help="With --state-file: also save the state every N streamed rows.")
@click.option("--last-only", is_flag=True,
              help="Print only the last output of each stream, at the end (e.g. the answer for a window).")
def run(artifact, input_path, output_path, stream_column, backend, threads, on_bad_row, state_file,
        checkpoint_every, last_only):
    """Stream CSV rows through ARTIFACT step by step, keeping state between rows.

    Rows are comma-, semicolon- or tab-separated (taken from the first line). With
    --on-bad-row skip, a skipped row gets an output row with empty values, so output
    row k answers input row k. An --output file appears only when the run succeeds
    (written to a temporary file, then renamed). With --state-file, a stream split
    over several runs gives exactly the outputs of one uninterrupted run; the file
    records how many rows its state has seen.
    """
    from edgelstm.csv_stream import RunStats, stream_csv
    from edgelstm.runtime import load, state_file as states
    from edgelstm.runtime.streams import StreamRouter

    if checkpoint_every is not None and state_file is None:
        raise click.UsageError("--checkpoint-every needs --state-file")
    if output_path != "-" and not Path(output_path).parent.is_dir():
        raise UserError(f"{output_path}: its directory {Path(output_path).parent} does not exist")
    if state_file is not None and not state_file.parent.is_dir():  # find out now, not after the stream
        raise UserError(f"{state_file}: its directory {state_file.parent} does not exist")
    model = load(artifact, backend=backend, threads=threads, on_range=lambda summary: None)  # said at the end
    router = StreamRouter(model)
    rows_before = 0
    if state_file is not None and state_file.exists():
        saved = states.load(state_file, model.state_sizes, model.description)
        router.states, rows_before = saved.streams, saved.rows
        click.echo(f"restored {len(saved.streams)} stream(s) from {state_file} ({saved.rows} rows seen)", err=True)
    stats = RunStats()

    def save_state():
        with _sigterm_deferred():  # a stop request mid-save would throw away the save
            states.save(state_file, router.states, model.state_sizes, model.description, rows_before + stats.rows)

    def checkpoint(stats):
        if stats.rows % checkpoint_every == 0:
            save_state()

    if state_file is not None:
        _stop_on_sigterm()
    src = _open_text(input_path, "r")
    # A file output is written beside its destination and renamed into place only when
    # the run succeeds: an error never leaves a partial file that looks complete.
    # (a device or pipe such as /dev/null or a FIFO is written directly)
    direct = output_path == "-" or (Path(output_path).exists() and not Path(output_path).is_file())
    partial = None if direct else str(Path(output_path).with_name(f".{Path(output_path).name}.partial"))
    done = False
    try:
        dst = _open_text(partial or output_path, "w")
        try:
            try:
                stream_csv(model, src, dst, stream_column=stream_column, on_bad_row=on_bad_row,
                           flush_each_row=input_path == "-", router=router, stats=stats,
                           after_row=checkpoint if checkpoint_every else None, last_only=last_only,
                           warn=lambda msg: click.echo(f"warning: {msg}", err=True))
                done = True
            finally:
                # Every stream's state is as of its last good row here, even after a refused
                # row or an engine error: the router only stores a state once its step succeeded.
                if state_file is not None:
                    save_state()
        finally:
            if dst is sys.stdout:
                dst.flush()
            else:
                dst.close()
                if partial is not None and done:
                    Path(partial).replace(output_path)
                elif partial is not None:
                    Path(partial).unlink(missing_ok=True)
    finally:
        if src is not sys.stdin:
            src.close()
    if stats.skipped:
        click.echo(f"{stats.rows} rows streamed, {stats.skipped} skipped", err=True)
    _warn_range(model.range_summary())


def _stop_on_sigterm() -> None:
    """SIGTERM (`systemctl stop`, a reboot) ends `run` as Ctrl-C does: through the
    ``finally`` that saves the state file, so a service resumes where it stopped."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


@contextlib.contextmanager
def _sigterm_deferred():
    import signal

    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to defer
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _open_text(path: str, mode: str):
    if path == "-":
        return sys.stdin if mode == "r" else sys.stdout
    try:
        return open(path, mode, newline="")
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror.lower() if exc.strerror else exc}") from None


# -- profile ---------------------------------------------------------------------------

def _progress_factory():
    """click.progressbar on a terminal; nothing in logs (CI) where a bar is only noise."""
    if not sys.stderr.isatty():
        return None
    return lambda length, label: click.progressbar(length=length, label=label, file=sys.stderr)


def _strict_json(value):
    """``value`` with every NaN / inf float as null: strict JSON, which every parser reads
    (Python's bare ``NaN`` is not JSON). The human report says what the figure was."""
    if getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def _write_json(path: str, data: dict) -> None:
    text = json.dumps(_strict_json(data), indent=2, default=str, allow_nan=False) + "\n"
    if path == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None

def _finish(data: dict, lines: list[str], json_path: str | None, broken: list[str]) -> None:
    """Write the JSON, print the human report (unless the JSON goes to stdout), and exit 1
    with one ``FAIL:`` line when a budget or threshold was broken."""
    if json_path:
        _write_json(json_path, data)
    if json_path != "-":
        for line in lines:
            click.echo(line)
    if broken:
        click.echo("FAIL: " + "; ".join(broken), err=True)
        sys.exit(1)



@cli.command()
@click.argument("artifact", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--compare", is_flag=True,
              help="Profile nothing: show the given `profile --json` files side by side (boards, engines).")
@click.option("--steps", type=click.IntRange(10), default=2000, show_default=True, help="Timed steps.")
@click.option("--warmup", type=click.IntRange(0), default=100, show_default=True, help="Untimed steps first.")
@click.option("--streams", type=click.IntRange(1), default=1, show_default=True,
              help="Streams stepped together in each call (one batch).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Engine threads (default: 1).")
@click.option("--backend", default="auto", show_default=True,
              help="auto (by file type) | numpy | litert | tflm | onnxruntime | native (.c, compiled here).")
@click.option("--window", type=click.IntRange(1), default=None,
              help="Also time the naive alternative: re-run the last T samples from a fresh state for "
                   "every new sample; prints its cost per sample as a multiple of one step.")
@click.option("--json", "json_path", default=None, help="Write every figure to FILE as JSON (- for stdout).")
@click.option("--max-p99-us", type=click.FloatRange(0, min_open=True), default=None,
              help="Exit 1 when the p99 step latency exceeds this many microseconds.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A previous `profile --json` file to compare with.")
@click.option("--max-regression", type=click.FloatRange(0), default=None,
              help="With --baseline: exit 1 when --metric is more than PCT percent slower than the baseline.")
@click.option("--metric", type=click.Choice(["p50", "p90", "p99", "mean"]), default="p50", show_default=True,
              help="Latency figure compared with the baseline (p50 is the steadiest on shared CI machines).")
def profile(artifact, compare, steps, warmup, streams, threads, backend, window, json_path, max_p99_us, baseline,
            max_regression, metric):
    """Per-step latency of ARTIFACT through the runtime: p50/p90/p99/max, steps/s, memory.

    Exits 1 with a one-line reason when --max-p99-us or --max-regression is broken, so a
    CI job can gate on it (the JSON is written either way). With --compare, the
    arguments are `profile --json` files from several boards, shown as one table.
    """
    from edgelstm.latency import check_budgets, format_report, profile as run_profile, read_baseline, same_model

    if compare:
        from edgelstm.latency_compare import format_comparison, read_profiles

        rows = read_profiles(list(artifact))
        _finish({"profiles": rows}, format_comparison(rows), json_path, [])
        return
    if len(artifact) != 1:
        raise click.UsageError("give one ARTIFACT to profile (or --compare A.json B.json ...)")
    artifact = artifact[0]

    if max_regression is not None and baseline is None:
        raise click.UsageError("--max-regression needs --baseline FILE")
    base = read_baseline(baseline) if baseline is not None else None
    result = run_profile(artifact, steps=steps, warmup=warmup, streams=streams, threads=threads,
                         backend=backend, window=window, progress_factory=_progress_factory())
    broken = check_budgets(result, max_p99_us, base, max_regression, metric=f"{metric}_us")
    if base is not None:
        result["budget"]["baseline_file"] = str(baseline)
        if not same_model(base, result):
            click.echo(f"warning: the baseline measured another model ({base.get('model_name')}, "
                       f"{base.get('format')} {base.get('quantize')}) than {artifact} ({result['model_name']}, "
                       f"{result['format']} {result['quantize']}): the comparison is between different models",
                       err=True)
        base_cpu = (base.get("machine") or {}).get("cpu")
        if base_cpu and base_cpu != result["machine"]["cpu"]:
            click.echo(f"warning: the baseline was measured on another CPU ({base_cpu}); "
                       "regenerate it on this runner for a fair comparison", err=True)
    _warn_range(result.get("calibrated_range"), "profile's synthetic inputs: ")
    _finish(result, format_report(result), json_path, broken)


def _warn_range(summary: dict | None, prefix: str = "") -> None:
    """One stderr line when a quantized model saw inputs outside its calibrated range."""
    from edgelstm.runtime.ranges import range_line

    if summary and (summary["inputs_outside"] or summary["outputs_pinned"]):
        click.echo(f"warning: {prefix}{range_line(summary)}", err=True)


# -- check -----------------------------------------------------------------------------

@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("artifact", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inputs: a CSV (one row per timestep, feature columns, header optional) streamed in order, "
                   "or .npz/.npy sequences laid end to end. Default: the data recorded with MODEL by "
                   "`edgelstm train`, else its bundled dataset.")
@click.option("--dataset", default=None,
              help="A bundled dataset's held-out sequences: basicmotions | airline | toy | pickupgesture | acsf1 | "
                   "bleeding.")
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True,
              help="Stream length; shorter data is repeated end to end, the state carrying across.")
@click.option("--segments", type=click.IntRange(1), default=10, show_default=True,
              help="Stream segments for the error-growth (drift) figures.")
@click.option("--backend", default="auto", show_default=True,
              help="auto (by file type) | numpy | litert | tflm | onnxruntime | native (.c, compiled here).")
@click.option("--json", "json_path", default=None, help="Write every figure to FILE as JSON (- for stdout).")
@click.option("--max-abs-err", type=click.FloatRange(0), default=None,
              help="Exit 1 when any output of any step differs from the reference by more.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Classifiers: exit 1 when the fraction of steps whose predicted class matches the "
                   "reference is lower.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG of the error over stream position, one line per output (needs the plot extra).")
@click.option("--reset-every", default=None, metavar="N|window",
              help="Start both from a zero state again every N steps ('window': the model's own window "
                   "length), the way a windowed model is used. Default: one unbroken stream.")
@click.option("--max-replay-ratio", type=click.FloatRange(0), default=None,
              help="Play the --steps stream twice end to end, state carried across, and exit 1 when the "
                   "second pass's mean error exceeds RATIO x the first (drift; the project's target is 1.2).")
def check(model, artifact, data, dataset, steps, segments, backend, json_path, max_abs_err, min_agreement,
          plot_path, reset_every, max_replay_ratio):
    """Accuracy of ARTIFACT against MODEL (the Keras model, or an .npz spec) over a long stream.

    Both see the same stream from a zero state; reports max/mean absolute error, its
    growth over the stream, and class agreement for classifiers. Exits 1 with a one-line
    reason when a threshold is broken.
    """
    from edgelstm.check import (check_replay, check_thresholds, format_replay, format_report, plot_errors,
                                require_matplotlib, run_check)

    if plot_path is not None:
        require_matplotlib()  # fail before the long part, not after
    if reset_every is not None and reset_every != "window" and not (reset_every.isdigit() and int(reset_every) > 0):
        raise UserError(f"--reset-every takes a positive number of steps or 'window', not {reset_every!r}")
    report, err = run_check(model, artifact, data=data, dataset=dataset, steps=steps, segments=segments,
                            backend=backend, warn=lambda m: click.echo(f"warning: {m}", err=True),
                            reset_every=reset_every, replay=max_replay_ratio is not None)
    broken = check_thresholds(report, max_abs_err, min_agreement)
    if max_replay_ratio is not None:
        broken += check_replay(report, max_replay_ratio)
    if plot_path is not None:
        report["plot"] = str(plot_errors(err, report, plot_path))
    _finish(report, format_report(report) + format_replay(report), json_path, broken)


# -- firmware ----------------------------------------------------------------------------

@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m3"]),
              default="cortex-m4", show_default=True,
              help="Core, emulated by QEMU: cortex-m4 (mps2-an386, M4F), cortex-m7 (mps2-an500), "
                   "cortex-m33 (mps2-an505), cortex-m3 (mps2-an385, no FPU).")
@click.option("--quantize", type=click.Choice(["float32", "int8", "int16x8"]), default=None,
              help="C export quantization (default: float32; for a .c file, what its .c.json records).")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With a generated .c file: the model (.keras or .npz) it was generated from, "
                   "whose numpy reference the firmware must reproduce.")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the generated sources, ELF and QEMU log here (default: a temporary directory).")
@click.option("--json", "json_path", default=None, help="Write every figure to FILE as JSON (- for stdout).")
@click.option("--max-instructions", type=click.FloatRange(0, min_open=True), default=None,
              help="Exit 1 when one step takes more instructions.")
@click.option("--max-flash", type=click.IntRange(1), default=None,
              help="Exit 1 when the model's code + weights take more bytes of flash.")
@click.option("--max-ram", type=click.IntRange(1), default=None,
              help="Exit 1 when the model's RAM (state + step stack + static data) is larger, in bytes.")
def firmware(model, target, quantize, spec_path, build_dir, json_path, max_instructions, max_flash, max_ram):
    """Build MODEL (.keras / .npz, or a generated NAME.c) as Cortex-M firmware, run it under
    QEMU and report correctness, flash, RAM and instructions per step.

    Needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm. Exits 1
    with a one-line reason when an output differs from the reference or a budget is broken.
    """
    from edgelstm import firmware as fw

    fw.require_toolchain()
    c_file = None
    if model.suffix == ".c":
        c_file = require_file(model)
        if spec_path is None:
            raise click.UsageError("a .c file needs --spec MODEL (the .keras or .npz it was generated from)")
        quantize = quantize or fw.recorded_quantization(c_file)
        model = spec_path
    spec = load_model_spec(model)
    quantize = quantize or "float32"
    click.echo(f"building {spec.name} for {target} ({quantize}) and running it under QEMU ...", err=True)
    result = fw.measure(spec, target, quantize, model_path=model, c_file=c_file, build_dir=build_dir)
    broken = fw.check_budgets(result, max_instructions, max_flash, max_ram)
    _finish(result, fw.format_result(result), json_path, broken)


# -- train -----------------------------------------------------------------------------

def _data_options(command):
    """--dataset NAME | --csv FILE (--target, --task, --window): what `train` and `compare` learn from."""
    options = [
        click.option("--dataset", default=None,
                     help="Bundled dataset: basicmotions | airline | toy | pickupgesture | acsf1 | bleeding."),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Learn from a CSV instead: one row per timestep, with a header."),
        click.option("--target", default=None, help="CSV: the column to predict (next value, or the window's label)."),
        click.option("--task", type=click.Choice(["regression", "classification"]), default="regression",
                     show_default=True, help="CSV: forecast the target's next value, or classify each window."),
        click.option("--window", type=click.IntRange(2), default=24, show_default=True, help="CSV: window length."),
    ]
    for option in reversed(options):  # as if stacked as decorators, in this order
        command = option(command)
    return command


def _training_data(dataset, csv_path, target, task, window):
    from edgelstm import datasets, training

    if (dataset is None) == (csv_path is None):
        raise click.UsageError("give exactly one of --dataset NAME or --csv FILE")
    if csv_path is None:
        return datasets.load(dataset)
    if not target:
        raise click.UsageError("--csv needs --target COLUMN")
    return training.dataset_from_csv(csv_path, target, window, task)


@cli.command()
@_data_options
@click.option("--cell", type=click.Choice(["lstm", "gru", "simple_rnn"]), default="lstm", show_default=True,
              help="Recurrent cell.")
@click.option("--units", type=click.IntRange(1), default=32, show_default=True, help="Units per recurrent layer.")
@click.option("--layers", type=click.IntRange(1), default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Windows per gradient step.")
@click.option("--lr", type=float, default=3e-3, show_default=True,
              help="Adam learning rate (gradients clipped at norm 1).")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="Keep the learning rate, or decay it to 0 along a cosine over the run.")
@click.option("--recurrent-dropout", type=click.FloatRange(0.0, 0.9), default=0.0, show_default=True,
              help="Fraction of the recurrent state dropped per training step (slower; regularises).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (weights, shuffling).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("models"), show_default=True,
              help="Directory (or .keras path) to write the model, report and calibration data to.")
def train(dataset, csv_path, target, task, window, cell, units, layers, epochs, batch_size, lr, lr_schedule,
          recurrent_dropout, seed, output):
    """Train a small LSTM / GRU / SimpleRNN and save a .keras model plus a report."""
    from edgelstm import training
    from edgelstm.keras_import import import_keras

    data = _training_data(dataset, csv_path, target, task, window)
    import_keras()  # in a lean install: one line naming the extra, before any progress bar
    cfg = training.TrainConfig(cell=cell, units=units, layers=layers, epochs=epochs, batch_size=batch_size,
                               learning_rate=lr, seed=seed, lr_schedule=lr_schedule,
                               recurrent_dropout=recurrent_dropout)
    label = f"training {cell.upper()}({units}) on {data.name}"
    if sys.stderr.isatty():
        with click.progressbar(length=epochs, label=label, file=sys.stderr, item_show_func=lambda s: s) as bar:
            report = training.train(data, cfg, output, progress=bar.update)
    else:  # a log (CI, a pipe): one line per epoch, where a bar would print nothing until the end
        done = iter(range(1, epochs + 1))
        click.echo(label, err=True)
        report = training.train(data, cfg, output, progress=lambda n, item: click.echo(
            f"  epoch {next(done)}/{epochs}" + (f"  {item}" if item else ""), err=True))
    click.echo(f"held-out metrics: {json.dumps(report['metrics'])}")
    for path in report["paths"]:
        click.echo(path)


# -- demo ------------------------------------------------------------------------------

@cli.command()
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("edgelstm-demo"), show_default=True, help="Where models and exports go.")
@click.option("--epochs", type=click.IntRange(1), default=40, show_default=True, help="Training epochs.")
@click.option("--units", type=click.IntRange(1), default=32, show_default=True, help="LSTM units.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table as JSON.")
def demo(output_dir, epochs, units, json_path):
    """Train an LSTM on bundled smartwatch data, export it to every format, stream the
    held-out data through each export and print one table."""
    from edgelstm.demo import format_table, run_demo
    from edgelstm.keras_import import import_keras

    import_keras()
    rows = run_demo(output_dir, epochs=epochs, units=units, echo=lambda m: click.echo(m, err=True))
    click.echo(format_table(rows))
    if json_path:
        _write_json(str(json_path), rows)


# -- compare ---------------------------------------------------------------------------

@cli.command()
@_data_options
@click.option("--cells", default="simple_rnn,lstm,gru", show_default=True, help="Cells to compare, comma-separated.")
@click.option("--units", type=click.IntRange(1), default=16, show_default=True,
              help="Units per cell (with --match params: the LSTM whose parameter count every cell gets).")
@click.option("--match", type=click.Choice(["units", "params"]), default="units", show_default=True,
              help="units: every cell gets --units. params: every cell gets an LSTM(--units)'s parameter budget.")
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True,
              help="Training runs per cell (seeds 0..K-1): accuracy and loss spread over them.")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True, help="Training epochs per run.")
@click.option("--formats", default="tflite/float32,tflite/int8,onnx/float32",
              show_default=True, help="Exports to size, FORMAT[/QUANTIZE] comma-separated; tflite/float32 is "
                                      "always made (the latency column runs it).")
@click.option("--lengths", default="10,50,200", show_default=True,
              help="Delayed-recall task lengths in steps (empty: skip the task).")
@click.option("--memory-epochs", type=click.IntRange(1), default=10, show_default=True,
              help="Training epochs per delayed-recall model.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the trained models and exports here (default: a temporary directory, removed).")
@click.option("--json", "json_path", default=None, help="Write every figure to FILE as JSON (- for stdout).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG: accuracy against step latency, and against delayed-recall length.")
def compare(dataset, csv_path, target, task, window, cells, units, match, seeds, epochs, formats, lengths,
            memory_epochs, output_dir, json_path, plot_path):
    """SimpleRNN vs LSTM vs GRU on your data and this machine: one table, a row per cell.

    Trains each cell as `edgelstm train` does, exports it, and measures structure,
    accuracy over seeds, training stability, step latency, file sizes, int8 loss and
    memory on a built-in delayed-recall task.
    """
    import tempfile

    from edgelstm import compare as cmp
    from edgelstm.keras_import import import_keras

    cfg = cmp.CompareConfig(cells=cmp.parse_cells(cells), units=units, match=match, seeds=seeds, epochs=epochs,
                            formats=cmp.parse_formats(formats), lengths=cmp.parse_lengths(lengths),
                            memory_epochs=memory_epochs)
    data = _training_data(dataset, csv_path, target, task, window)
    if plot_path is not None:
        from edgelstm.check import require_matplotlib

        require_matplotlib()  # fail before the long part, not after
    import_keras()
    with tempfile.TemporaryDirectory(prefix="edgelstm-compare-") as tmp:
        result = cmp.run_compare(data, cfg, output_dir or tmp, echo=lambda m: click.echo(m, err=True))
    if plot_path is not None:
        result["plot"] = str(cmp.plot(result, plot_path))
    _finish(result, [cmp.format_table(result)], json_path, [])


if __name__ == "__main__":  # pragma: no cover
    main()
