"""The ``edgelstm`` command line: each command parses its arguments (declared in
``cli_options``), calls one function of the module that does the work, and prints.

Errors a user can cause print one line ``error: ...`` and exit with status 2. The
lean on-device install (numpy + click + one engine) runs ``run``, ``info`` and
``profile``; commands that need TensorFlow say which extra to install.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgelstm import __version__, cli_options as options
from edgelstm.cli_output import Group, epoch_progress, fail, finish, progress_factory, say, warn, warn_range, write_json
from edgelstm.core.errors import require_file


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


@cli.command()
@options.INFO
def info(path: Path, as_json: bool):
    """What a model or artifact contains: layers, parameters, MACs per step, state, memory.

    PATH is a Keras model (.keras/.h5, needs the host extra) or an exported artifact
    (.npz, .tflite, .onnx, .c).
    """
    from edgelstm.info import describe, format_info

    data = describe(path)
    if as_json:
        return write_json("-", data)
    for line in format_info(data):
        click.echo(line)


@cli.command()
@options.EXPORT
def export(model, fmt, quantize, all_variants, mode, seq_len, calibration_data, opset, min_agreement,
           max_rmse_change, output_dir, name, c_array):
    """Export MODEL (.keras, .h5 or .npz spec) to deployable artifacts, verified on write.

    Prints the path of every file written (the artifact and its .json description).
    File names: <name>[.<quantize> unless float32][.sequence].<suffix>.
    """
    from edgelstm.converters.guard import ExportRejected
    from edgelstm.export_variants import export_model, variants

    todo = variants(fmt, quantize, mode, all_variants, note=say)  # a bad combination fails before anything else
    if c_array and not any(f == "tflite" for f, _ in todo):
        raise click.UsageError("--c-array needs --format tflite")
    try:
        for path in export_model(model, todo, output_dir, name, mode=mode, seq_len=seq_len, opset=opset,
                                 calibration_file=calibration_data, min_agreement=min_agreement,
                                 max_rmse_change=max_rmse_change, c_array=c_array, echo=say):
            click.echo(str(path))
    except ExportRejected as exc:
        fail(str(exc))


@cli.command()
@options.RUN
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
    from edgelstm.csv_stream import run_file

    if checkpoint_every is not None and state_file is None:
        raise click.UsageError("--checkpoint-every needs --state-file")
    stats, ranges = run_file(artifact, input_path, output_path, stream_column, backend, threads, on_bad_row,
                             state_file, checkpoint_every, last_only, say=say, warn=warn)
    if stats.skipped:
        say(f"{stats.rows} rows streamed, {stats.skipped} skipped")
    warn_range(ranges)


@cli.command()
@options.PROFILE
def profile(artifact, compare, steps, warmup, streams, threads, backend, window, json_path, max_p99_us, baseline,
            max_regression, metric):
    """Per-step latency of ARTIFACT through the runtime: p50/p90/p99/max, steps/s, memory.

    Exits 1 with a one-line reason when --max-p99-us or --max-regression is broken, so a
    CI job can gate on it (the JSON is written either way). With --compare, the
    arguments are `profile --json` files from several boards, shown as one table.
    """
    from edgelstm import latency

    if compare:
        from edgelstm.latency_compare import format_comparison, read_profiles

        rows = read_profiles(list(artifact))
        return finish({"profiles": rows}, format_comparison(rows), json_path, [])
    if len(artifact) != 1:
        raise click.UsageError("give one ARTIFACT to profile (or --compare A.json B.json ...)")
    if max_regression is not None and baseline is None:
        raise click.UsageError("--max-regression needs --baseline FILE")
    base = latency.read_baseline(baseline) if baseline is not None else None
    result = latency.profile(artifact[0], steps=steps, warmup=warmup, streams=streams, threads=threads,
                             backend=backend, window=window, progress_factory=progress_factory())
    broken = latency.check_budgets(result, max_p99_us, base, max_regression, metric=f"{metric}_us")
    if base is not None:
        result["budget"]["baseline_file"] = str(baseline)
        for warning in latency.baseline_warnings(base, result):
            warn(warning)
    warn_range(result.get("calibrated_range"), "profile's synthetic inputs: ")
    finish(result, latency.format_report(result), json_path, broken)


@cli.command()
@options.CHECK
def check(model, artifact, data, dataset, steps, segments, backend, json_path, max_abs_err, min_agreement,
          plot_path, reset_every, max_replay_ratio):
    """Accuracy of ARTIFACT against MODEL (the Keras model, or an .npz spec) over a long stream.

    Both see the same stream from a zero state; reports max/mean absolute error, its
    growth over the stream, and class agreement for classifiers. Exits 1 with a one-line
    reason when a threshold is broken.
    """
    from edgelstm.check import (check_replay, check_thresholds, format_replay, format_report, plot_errors,
                                require_matplotlib, run_check, validate_reset_every)

    if plot_path is not None:
        require_matplotlib()  # fail before the long part, not after
    validate_reset_every(reset_every)
    report, err = run_check(model, artifact, data=data, dataset=dataset, steps=steps, segments=segments,
                            backend=backend, warn=warn, reset_every=reset_every, replay=max_replay_ratio is not None)
    broken = check_thresholds(report, max_abs_err, min_agreement)
    if max_replay_ratio is not None:
        broken += check_replay(report, max_replay_ratio)
    if plot_path is not None:
        report["plot"] = str(plot_errors(err, report, plot_path))
    finish(report, format_report(report) + format_replay(report), json_path, broken)


@cli.command()
@options.FIRMWARE
def firmware(model, target, quantize, spec_path, build_dir, json_path, max_instructions, max_flash, max_ram):
    """Build MODEL (.keras / .npz, or a generated NAME.c) as Cortex-M firmware, run it under
    QEMU and report correctness, flash, RAM and instructions per step.

    Needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm. Exits 1
    with a one-line reason when an output differs from the reference or a budget is broken.
    """
    from edgelstm import firmware as fw

    fw.require_toolchain()
    if model.suffix == ".c" and spec_path is None:
        require_file(model)  # a missing file is said before a missing --spec
        raise click.UsageError("a .c file needs --spec MODEL (the .keras or .npz it was generated from)")
    spec, model, c_file, quantize = fw.sources(model, spec_path, quantize)
    say(f"building {spec.name} for {target} ({quantize}) and running it under QEMU ...")
    result = fw.measure(spec, target, quantize, model_path=model, c_file=c_file, build_dir=build_dir)
    broken = fw.check_budgets(result, max_instructions, max_flash, max_ram)
    finish(result, fw.format_result(result), json_path, broken)


@cli.command()
@options.TRAIN
def train(dataset, csv_path, target, task, window, output, **config):
    """Train a small LSTM / GRU / SimpleRNN and save a .keras model plus a report."""
    from edgelstm import training
    from edgelstm.keras_import import import_keras

    data = options.training_data(dataset, csv_path, target, task, window)
    import_keras()  # in a lean install: one line naming the extra, before any progress bar
    cfg = training.TrainConfig(**config)  # the options are named as its fields
    epochs = cfg.epochs + cfg.quant_aware_epochs  # the fine-tuning epochs follow on the same bar
    with epoch_progress(f"training {cfg.cell.upper()}({cfg.units}) on {data.name}", epochs) as progress:
        report = training.train(data, cfg, output, progress=progress)
    click.echo(f"held-out metrics: {json.dumps(report['metrics'])}")
    for path in report["paths"]:
        click.echo(path)


@cli.command()
@options.DEMO
def demo(output_dir, epochs, units, json_path):
    """Train an LSTM on bundled smartwatch data, export it to every format, stream the
    held-out data through each export and print one table."""
    from edgelstm.demo import demo_table, run_demo
    from edgelstm.keras_import import import_keras

    import_keras()
    rows = run_demo(output_dir, epochs=epochs, units=units, echo=say)
    click.echo(demo_table(rows))
    if json_path:
        write_json(str(json_path), rows)


@cli.command()
@options.COMPARE
def compare(dataset, csv_path, target, task, window, cells, units, match, seeds, epochs, formats, lengths,
            memory_epochs, output_dir, json_path, plot_path):
    """SimpleRNN vs LSTM vs GRU on your data and this machine: one table, a row per cell.

    Trains each cell as `edgelstm train` does, exports it, and measures structure,
    accuracy over seeds, training stability, step latency, file sizes, int8 loss and
    memory on a built-in delayed-recall task.
    """
    from edgelstm import compare as cmp
    from edgelstm.keras_import import import_keras

    cfg = cmp.CompareConfig(cells=cmp.parse_cells(cells), units=units, match=match, seeds=seeds, epochs=epochs,
                            formats=cmp.parse_formats(formats), lengths=cmp.parse_lengths(lengths),
                            memory_epochs=memory_epochs)
    data = options.training_data(dataset, csv_path, target, task, window)
    if plot_path is not None:
        from edgelstm.check import require_matplotlib

        require_matplotlib()  # fail before the long part, not after
    import_keras()
    result = cmp.run_compare(data, cfg, output_dir, echo=say)
    if plot_path is not None:
        result["plot"] = str(cmp.plot(result, plot_path))
    finish(result, [cmp.format_table(result)], json_path, [])


if __name__ == "__main__":  # `python -m edgelstm.cli`
    main()
