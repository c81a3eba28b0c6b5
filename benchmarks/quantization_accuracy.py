"""File size and accuracy of the TFLite and ONNX quantization modes, on the bundled datasets.

    python benchmarks/quantization_accuracy.py [--epochs 40] [--units 32] [--out DIR]

Trains LSTM / GRU / SimpleRNN on BasicMotions (classification) and on the airline
series (forecasting), exports each as TFLite float32 / dynamic / int8 / int16x8 step
models (calibrated on the training windows) and as ONNX float32 / dynamic step models,
streams every held-out case from a fresh state through LiteRT (TFLite) or ONNX Runtime
(ONNX), and as C source float32 / int8 through the native backend (its size: the weight
bytes in flash), and prints a markdown table (size ratios are against the same format's float32):

- BasicMotions: agreement of the predicted class with the float numpy reference at the
  last step, and test accuracy.
- airline: RMSE of the next-month forecast, and its change against the float reference.

Targets (issue 3): int16x8 >= 99% agreement and <= 2% RMSE change; int8 >= 97% and <= 10%.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from edgelstm import converters, datasets  # noqa: E402
from edgelstm.accuracy import compare_artifact  # noqa: E402
from edgelstm.artifact import read_sidecar  # noqa: E402
from edgelstm.keras_import import spec_from_path  # noqa: E402
from edgelstm.training import TrainConfig, train  # noqa: E402

#: (format, quantization, runtime backend), in table order.
EXPORTS = [("tflite", q, "litert") for q in ("float32", "dynamic", "int8", "int16x8")]
EXPORTS += [("onnx", q, "onnxruntime") for q in ("float32", "dynamic")]
EXPORTS += [("c", q, "native") for q in ("float32", "int8")]
CELLS = ("lstm", "gru", "simple_rnn")


def run(epochs: int, units: int, out: Path, formats: tuple[str, ...] | None = None) -> list[dict]:
    rows = []
    for name in ("basicmotions", "airline"):
        data = datasets.load(name)
        for cell in CELLS:
            t0 = time.time()
            report = train(data, TrainConfig(cell=cell, units=units, epochs=epochs), out / name)
            spec = spec_from_path(report["paths"][0])
            print(f"{name}/{cell}: trained in {time.time() - t0:.0f} s, {report['metrics']}", file=sys.stderr)
            float_size = {}
            for fmt, q, backend in EXPORTS:
                if formats and fmt not in formats:
                    continue
                opts = converters.ExportOptions(quantize=q, basename=f"{name}_{cell}_{q}" if fmt == "c" else
                                                f"{name}_{cell}.{q}",
                                                calibration=data.x_train)
                opts.heldout, opts.heldout_targets = data.x_test, data.y_test
                path = converters.export(spec, fmt, out / name, opts)[0]
                # C source is text: what a board stores is the weight arrays (flash).
                size = read_sidecar(path)["c"]["flash_bytes"] if fmt == "c" else path.stat().st_size
                float_size.setdefault(fmt, size)
                r = compare_artifact(spec, path, data.x_test, targets=data.y_test, backend=backend)
                rows.append({"dataset": name, "cell": cell, "format": fmt, "quantize": q, "bytes": size,
                             "ratio": size / float_size[fmt], **r})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | cell | format | quantize | file size | vs float32 | agreement with float | accuracy"
        " | RMSE (float -> export) | RMSE change |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "agreement" in r:
            agree = f"{100 * r['agreement']:.1f}%"
            acc = f"{100 * r['accuracy']:.1f}% (float {100 * r['accuracy_reference']:.1f}%)"
            rmse = change = "-"
        else:
            agree = acc = "-"
            rmse = f"{r['rmse_reference']:.4f} -> {r['rmse']:.4f}"
            change = f"{100 * r['rmse_change']:+.2f}%"
        lines.append(f"| {r['dataset']} | {r['cell']} | {r['format']} | {r['quantize']} | {r['bytes']:,} B | "
                     f"{r['ratio']:.2f}x | {agree} | {acc} | {rmse} | {change} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="keep the models here (default: a temp dir)")
    parser.add_argument("--formats", default=None, help="comma-separated subset, e.g. c (default: all)")
    args = parser.parse_args()
    formats = tuple(args.formats.split(",")) if args.formats else None
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = run(args.epochs, args.units, args.out, formats)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            rows = run(args.epochs, args.units, Path(tmp), formats)
    print(table(rows))


if __name__ == "__main__":
    main()
