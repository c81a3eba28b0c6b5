"""The README's firmware table: every bundled firmware model on every emulated core.

    python benchmarks/firmware_table.py [--json FILE]

For LSTM 8->32 and the BasicMotions model (firmware_examples/models/), in every
quantization the C exporter offers, on the Cortex-M4F / M7 / M33 (float32, int8) and the
Cortex-M3 (int16x8, integer only): flash, RAM, instructions per step and per MAC under
QEMU, and the largest error against the float numpy reference. Needs the Arm toolchain
and QEMU (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm).

Goals (issue 11): float on the M4F <= 3 instructions per MAC, int8 <= 2, int16x8 on the
M3 <= 3; the goal column says where a figure meets or misses one. Baseline, measured in
the same run on the same core: LSTM 8->32 as the naive C an engineer writes first (one
dot product per gate row, newlib's expf/tanhf), built with the same flags; the last
column is its instruction count over the generated code's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from edgelstm import firmware as fw
from edgelstm.converters import exporter
from edgelstm.core.spec import ModelSpec

MODELS = ("lstm8x32", "basicmotions")
RUNS = [("cortex-m4", "float32"), ("cortex-m7", "float32"), ("cortex-m33", "float32"), ("cortex-m4", "int8"),
        ("cortex-m7", "int8"), ("cortex-m33", "int8"), ("cortex-m3", "int16x8")]
GOALS = {"float32": 3.0, "int8": 2.0, "int16x8": 3.0}  # instructions per MAC

NAIVE_H = """#include <stdint.h>
#define naive_INPUTS {F}
#define naive_OUTPUTS {U}
#define naive_STATE_FLOATS {S}
#define naive_MACS_PER_STEP {MACS}
typedef struct {{ float h[{U}]; float c[{U}]; }} naive_state_t;
void naive_reset(naive_state_t *s);
void naive_step(naive_state_t *s, const float in[{F}], float out[{U}]);
"""
NAIVE_C = """#include <math.h>
#include <string.h>
#include "naive.h"
static const float W[{G}][{F}] = {{{W}}};
static const float R[{G}][{U}] = {{{R}}};
static const float B[{G}] = {{{B}}};
static float sigmoid(float x) {{ return 1.0f / (1.0f + expf(-x)); }}
void naive_reset(naive_state_t *s) {{ memset(s, 0, sizeof *s); }}
void naive_step(naive_state_t *s, const float in[{F}], float out[{U}])
{{
    float z[{G}];
    for (int g = 0; g < {G}; g++) {{
        float a = B[g];
        for (int k = 0; k < {F}; k++) a += W[g][k] * in[k];
        for (int k = 0; k < {U}; k++) a += R[g][k] * s->h[k];
        z[g] = a;
    }}
    for (int u = 0; u < {U}; u++) {{
        s->c[u] = sigmoid(z[{U} + u]) * s->c[u] + sigmoid(z[u]) * tanhf(z[2 * {U} + u]);
        s->h[u] = out[u] = sigmoid(z[3 * {U} + u]) * tanhf(s->c[u]);
    }}
}}
"""


def naive_lstm_c(spec, out_dir: Path) -> Path:
    """The baseline: a single-LSTM spec as naive C (gate rows i, f, c, o as Keras stores them)."""
    (layer,) = spec.layers
    F, U = spec.input_size, layer.units

    def rows(a):
        return ", ".join("{" + ", ".join(f"{v:.9e}f" for v in row) + "}" for row in a)

    fields = dict(F=F, U=U, G=4 * U, S=2 * U, MACS=4 * U * (F + U), W=rows(layer.weights["kernel"].T),
                  R=rows(layer.weights["recurrent_kernel"].T),
                  B=", ".join(f"{v:.9e}f" for v in layer.weights["bias"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "naive.h").write_text(NAIVE_H.format(**fields))
    (out_dir / "naive.c").write_text(NAIVE_C.format(**fields))
    return out_dir / "naive.c"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="Also write every figure as JSON.")
    args = parser.parse_args()
    available = exporter("c").QUANTIZATIONS
    rows, missing, naive = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = ModelSpec.load_npz(fw.BUNDLED_MODELS / "lstm8x32.npz")
        c_file = naive_lstm_c(spec, Path(tmp))
        for target in ("cortex-m4", "cortex-m7", "cortex-m33"):
            naive[target] = fw.measure(spec, target, "float32", c_file=c_file)["instructions_per_step"]
    print("| model | core | quantization | flash (B) | RAM (B) | instructions/step | instructions/MAC | "
          "max abs error | goal | naive C / this |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|---:|")
    for name in MODELS:
        path = fw.BUNDLED_MODELS / f"{name}.npz"
        spec = ModelSpec.load_npz(path)
        for target, quantize in RUNS:
            if quantize not in available:
                missing.append(f"{name} {target} {quantize}")
                continue
            r = fw.measure(spec, target, quantize, model_path=path)
            rows.append(r)
            base = naive.get(target) if name == "lstm8x32" and quantize == "float32" else None
            ratio = f"{base / r['instructions_per_step']:.2f}x" if base else ""
            goal = GOALS[quantize] if not (quantize == "float32" and target != "cortex-m4") else None
            verdict = "" if goal is None else ("meets" if r["instructions_per_mac"] <= goal else "misses") + \
                f" <= {goal:g}"
            print(f"| {name} | {r['core']} | {quantize} | {r['flash_bytes']:,} | {r['ram_bytes']:,} | "
                  f"{r['instructions_per_step']:,.0f} | {r['instructions_per_mac']:.2f} | "
                  f"{r['max_abs_err']:.2g} | {verdict} | {ratio} |", flush=True)
    if missing:
        print(f"\nnot measured (the C exporter offers {', '.join(available)}): {'; '.join(missing)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
