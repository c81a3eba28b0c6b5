"""The generated C step against an Eigen peer, and the native backend against LiteRT.

For LSTM 8->32, LSTM 8->64, LSTM 64->64 and GRU 8->64 (seeded weights, tanh/sigmoid),
the ``NAME_step`` that ``edgelstm export --format c`` writes is timed in a C++ harness
beside a peer written here with Eigen (``libeigen3-dev``): fixed-size ``Eigen::Map``
matrix-vector products over the same weights (Keras' layout, used as is) and Eigen's
vectorized ``tanh`` / ``logistic``, which is how the fastest C++ RNN libraries step.
Both are compiled in the same run with ``-O3 -march=native``; the generated C is also
timed as the plain portable ``-O2`` build. Ratios (generated / Eigen) are what to read:
the goal is <= 1.0x. Each figure is the fastest of several rounds of many steps.

Last, the whole ``StatefulModel.step`` from Python on the native backend (input check,
one ctypes call, state bookkeeping) against the same on LiteRT float (needs the host
extra to export the .tflite), for LSTM 8->64.

    python benchmarks/c_step.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = [("lstm", 8, 32), ("lstm", 8, 64), ("lstm", 64, 64), ("gru", 8, 64)]
FAST = ["-O3", "-march=native"]
PORTABLE = ["-O2"]
EIGEN = "/usr/include/eigen3"

HARNESS = r"""
#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
extern "C" {
#include "NAME.h"
}
#include "peer_weights.h"

using Eigen::Map;
typedef Eigen::Matrix<float, NG * NU, NF> MatW;   // Keras kernel (NF, G*NU) row-major == (G*NU, NF) column-major
typedef Eigen::Matrix<float, NG * NU, NU> MatU;
typedef Eigen::Matrix<float, NG * NU, 1> VecG;
typedef Eigen::Matrix<float, NU, 1> VecU;
typedef Eigen::Matrix<float, NF, 1> VecF;

struct Peer {
    Map<const MatW> W{kernel};
    Map<const MatU> R{recurrent};
    Map<const VecG> b{bias};
#if IS_GRU
    Map<const VecG> bh{bias_h};
#endif
    VecU h = VecU::Zero(), c = VecU::Zero();
    VecG z;
    void step(const float *in) {
        Map<const VecF> x(in);
#if IS_GRU   // reset_after=True: z, r, n = act(W_n x + b_n + r * (U_n h + b_hn))
        VecG zx, zh;
        zx.noalias() = W * x;
        zx += b;
        zh.noalias() = R * h;
        zh += bh;
        auto zz = (zx.segment<NU>(0) + zh.segment<NU>(0)).array().logistic();
        auto rr = (zx.segment<NU>(NU) + zh.segment<NU>(NU)).array().logistic();
        VecU zg = zz, n = (zx.segment<NU>(2 * NU).array() + rr * zh.segment<NU>(2 * NU).array()).tanh();
        h = (zg.array() * h.array() + (1.0f - zg.array()) * n.array()).matrix();
#else
        z.noalias() = W * x;
        z.noalias() += R * h;
        z += b;
        auto i = z.segment<NU>(0).array().logistic();
        auto f = z.segment<NU>(NU).array().logistic();
        auto g = z.segment<NU>(2 * NU).array().tanh();
        auto o = z.segment<NU>(3 * NU).array().logistic();
        c = (f * c.array() + i * g).matrix();
        h = (o * c.array().tanh()).matrix();
#endif
    }
};

static float inputs[16][NF];

template <class Fn> static double time_ns(Fn fn, long steps, int rounds) {
    double best = 1e30;
    for (int r = 0; r < rounds; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        for (long s = 0; s < steps; ++s) fn(inputs[s & 15]);
        auto t1 = std::chrono::steady_clock::now();
        double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / steps;
        if (ns < best) best = ns;
    }
    return best;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 200000;
    for (int k = 0; k < 16; ++k)
        for (int j = 0; j < NF; ++j) inputs[k][j] = (float)((k * 7 + j * 3) % 11) / 5.5f - 1.0f;
    NAME_state_t s;
    NAME_reset(&s);
    float out[NAME_OUTPUTS];
    Peer peer;
    double sink = 0;
    double gen = time_ns([&](const float *x) { NAME_step(&s, x, out); }, steps / 10, 1);  // warm up
    double eig = time_ns([&](const float *x) { peer.step(x); }, steps / 10, 1);
    gen = time_ns([&](const float *x) { NAME_step(&s, x, out); }, steps, 5);
    eig = time_ns([&](const float *x) { peer.step(x); }, steps, 5);
    // Both computed the same function over the same stream: a peer that drifted is no peer.
    NAME_reset(&s);
    Peer check;
    float diff = 0;
    for (int t = 0; t < 200; ++t) {
        NAME_step(&s, inputs[t & 15], out);
        check.step(inputs[t & 15]);
    }
    for (int k = 0; k < NU; ++k) diff = std::max(diff, std::fabs(out[k] - check.h[k]));
    sink += out[0] + peer.h[0];
    printf("{\"generated_ns\": %.2f, \"eigen_ns\": %.2f, \"max_abs_diff\": %.3g, \"sink\": %g}\n",
           gen, eig, diff, sink);
    return 0;
}
"""


def bench_spec(kind: str, features: int, units: int):
    from edgelstm.core.spec import LayerSpec, ModelSpec

    rng = np.random.default_rng(0)
    gates = {"lstm": 4, "gru": 3}[kind]

    def w(*shape, scale=1.0):
        return (scale * rng.uniform(-1, 1, shape) / np.sqrt(shape[0])).astype(np.float32)

    weights = {"kernel": w(features, gates * units), "recurrent_kernel": w(units, gates * units, scale=0.8)}
    weights["bias"] = w(2, gates * units) if kind == "gru" else w(gates * units)
    layer = LayerSpec(kind, units, weights, activation="tanh", recurrent_activation="sigmoid",
                      return_sequences=False, reset_after=True if kind == "gru" else None)
    return ModelSpec(features, [layer], name=f"{kind}_{features}_{units}")


def _array(name: str, values: np.ndarray) -> str:
    body = ",".join(f"{v!r}f" for v in values.ravel().tolist())
    return f"alignas(64) static const float {name}[] = {{{body}}};\n"


def compare_with_eigen(spec, work: Path, cc: str, cxx: str) -> dict:
    from edgelstm.converters.c_source import generate

    layer = spec.layers[0]
    name = spec.name
    header, source, _ = generate(spec, name)
    (work / f"{name}.h").write_text(header)
    (work / f"{name}.c").write_text(source)
    kernel, recurrent = layer.weights["kernel"], layer.weights["recurrent_kernel"]
    bias = layer.weights["bias"]
    peer = _array("kernel", kernel) + _array("recurrent", recurrent)
    if layer.kind == "gru":
        # The peer folds the input bias into z and r by adding the recurrent one there.
        peer += _array("bias", bias[0]) + _array("bias_h", bias[1])
    else:
        peer += _array("bias", bias)
    sizes = (f"constexpr int NF = {spec.input_size}, NU = {layer.units}, NG = {4 if layer.kind == 'lstm' else 3};\n"
             f"#define IS_GRU {int(layer.kind == 'gru')}\n")
    (work / "peer_weights.h").write_text(sizes + peer)
    (work / "harness.cpp").write_text(HARNESS.replace("NAME", name))
    result = {}
    for label, flags in (("fast", FAST), ("portable", PORTABLE)):
        obj, exe = work / f"{name}.{label}.o", work / f"bench.{label}"
        subprocess.run([cc, *flags, "-std=c99", "-c", f"{name}.c", "-o", str(obj)], cwd=work, check=True)
        subprocess.run([cxx, *FAST, "-DNDEBUG", "-std=c++17", "-I", EIGEN, "harness.cpp", str(obj),
                        "-o", str(exe), "-lm"], cwd=work, check=True)
        result[label] = json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
    return {
        "model": f"{layer.kind.upper()} {spec.input_size}->{layer.units}",
        "generated_O3_native_ns": result["fast"]["generated_ns"],
        "generated_O2_ns": result["portable"]["generated_ns"],
        "eigen_O3_native_ns": result["fast"]["eigen_ns"],
        "ratio_O3_native": result["fast"]["generated_ns"] / result["fast"]["eigen_ns"],
        "ratio_O2": result["portable"]["generated_ns"] / result["fast"]["eigen_ns"],
        "max_abs_diff_vs_peer": result["fast"]["max_abs_diff"],
    }


def step_us(model, xs: np.ndarray, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        model.reset()
        t0 = time.perf_counter()
        for x in xs:
            model.step(x)
        best = min(best, (time.perf_counter() - t0) / len(xs) * 1e6)
    return best


def native_vs_litert(work: Path) -> dict:
    from edgelstm import runtime
    from edgelstm.converters import ExportOptions, export

    spec = bench_spec("lstm", 8, 64)
    xs = np.random.default_rng(1).uniform(-1, 1, (3000, 8)).astype(np.float32)
    c_path = export(spec, "c", work / "native", ExportOptions(basename="lstm_8_64"))[0]
    native = runtime.load(c_path, backend="native")
    out = {"model": "LSTM 8->64", "native_step_us": step_us(native, xs)}
    try:
        tfl = export(spec, "tflite", work / "tflite", ExportOptions(basename="lstm_8_64"))[0]
        litert = runtime.load(tfl, backend="litert")
    except Exception as exc:  # no host extra / no LiteRT: report what ran
        out["litert_error"] = str(exc)
        return out
    out["litert_step_us"] = step_us(litert, xs)
    out["ratio_native_vs_litert"] = out["native_step_us"] / out["litert_step_us"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="Also write the figures to this file.")
    args = parser.parse_args()
    cc = os.environ.get("CC") or shutil.which("gcc") or "cc"
    cxx = os.environ.get("CXX") or shutil.which("g++") or "c++"
    if not os.path.isdir(EIGEN):
        sys.exit(f"Eigen is not installed ({EIGEN}): apt install libeigen3-dev")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("EDGELSTM_CACHE_DIR", str(Path(tmp) / "cache"))
        for kind, features, units in MODELS:
            work = Path(tmp) / f"{kind}{features}x{units}"
            work.mkdir()
            row = compare_with_eigen(bench_spec(kind, features, units), work, cc, cxx)
            rows.append(row)
            print(f"{row['model']:<12} generated -O3 -march=native {row['generated_O3_native_ns']:8.1f} ns  "
                  f"Eigen {row['eigen_O3_native_ns']:8.1f} ns  ratio {row['ratio_O3_native']:.2f}x   "
                  f"generated -O2 {row['generated_O2_ns']:8.1f} ns ({row['ratio_O2']:.2f}x)   "
                  f"|diff| {row['max_abs_diff_vs_peer']:.1e}", flush=True)
        runtime_row = native_vs_litert(Path(tmp))
    line = f"StatefulModel.step, {runtime_row['model']}: native {runtime_row['native_step_us']:.2f} us"
    if "litert_step_us" in runtime_row:
        line += (f", LiteRT float {runtime_row['litert_step_us']:.2f} us "
                 f"({runtime_row['ratio_native_vs_litert']:.2f}x)")
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"c_step": rows, "runtime_step": runtime_row}, indent=2) + "\n")


if __name__ == "__main__":
    main()
