"""ModelSpec -> portable C99 source: ``NAME.h`` + ``NAME.c`` (+ ``NAME.c.json``).

The generated code is what an embedded engineer would write by hand for one fixed
model: every size a compile-time constant, the weights ``static const`` (flash on a
microcontroller), the recurrent state in a caller-owned ``NAME_state_t`` (any number
of streams, no globals), one function per layer named after the layer with its
equations in a comment, and no dependency beyond ``<stdint.h>``, ``<string.h>`` and
``<math.h>`` (only for ``fmaf`` where the FPU fuses multiply-adds).

Why it is fast (benchmarks/c_step.py holds it against an Eigen peer):

* **Weights laid out for the step loop.** Every recurrent layer computes all its gates
  in one pass over the concatenated input ``[x; h]``. The gate rows are stored in
  blocks of ``ROWS`` (8) output rows, column after column (``w[block][k][row]``), so
  the inner loop is 8 independent multiply-adds on contiguous weights: SIMD lanes on a
  PC, eight s-registers on a Cortex-M4F (one weight load + one MAC per product, the
  input value loaded once per 8 MACs). Each gate is padded to a multiple of 8 rows
  with zero weights, so no loop has a remainder.
* **Own activations.** ``expf``/``tanhf`` of libm are neither vectorizable nor cheap
  on an MCU; ``el_exp`` (Cody-Waite reduction + the Cephes degree-5 polynomial, 2^n
  built from the exponent bits) is branch-free, float-only and within 2e-7 relative
  of the true value; sigmoid and tanh are built on it (tanh with the Cephes odd
  polynomial near 0, so it stays accurate relative to its value there).
* **No double anywhere**: every literal is ``f``-suffixed, so Cortex-M4F/M7/M33 run
  it on their single-precision FPU.

``--quantize int8`` stores the weight matrices as int8 with one float scale per output
row (``el_matvec_q8``); activations and state stay float. ``--quantize int16x8`` is the
integer-only variant for cores without an FPU, written by ``c_int16`` (same API, plus
``NAME_step_q``).

The ``.c`` file carries its own description (the usual artifact JSON) in a trailing
comment, with the sha256 of the header and of the code above it: the native backend
refuses a file edited after export before compiling it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from edgelstm import __version__
from edgelstm.core.artifact import StepInterface, describe, state_name
from edgelstm.core.errors import UserError
from edgelstm.runtime.native_backend import DESCRIPTION_END, DESCRIPTION_MARKER, source_hash
from edgelstm.core.spec import STATE_KINDS, LayerSpec, ModelSpec

QUANTIZATIONS = ("float32", "int8", "int16x8")
#: The weight-matrix kernel per quantization: float weights, or int8 with one scale per row.
MATVEC = {"float32": "el_matvec", "int8": "el_matvec_q8"}
MODES = ("step",)

#: Output rows computed together by the matrix-vector kernel (weights stored [block][k][row]).
ROWS = 8

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while _Bool _Complex _Imaginary".split()
)


# -- names ---------------------------------------------------------------------------

def is_c_identifier(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and name not in _C_KEYWORDS


def c_identifier(text: str) -> str:
    """A C identifier made from ``text`` (a file stem): other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "model"
    if name[0].isdigit() or name in _C_KEYWORDS:
        name = "m_" + name
    return name


# -- numbers -------------------------------------------------------------------------

def c_float(value) -> str:
    """The shortest decimal that reads back as exactly this float32, as a C literal."""
    v = np.float32(value)
    if not np.isfinite(v):
        raise UserError(f"the model holds a non-finite weight ({v}); C source cannot express it")
    return np.format_float_scientific(v, unique=True, trim="-") + "f"


def c_array(name: str, values: np.ndarray, per_line: int = 8) -> str:
    values = np.asarray(values).ravel()
    if values.dtype == np.int8:
        ctype, fmt, per_line = "int8_t", str, 16
    else:
        ctype, fmt = "float", c_float
    lines = []
    for start in range(0, len(values), per_line):
        lines.append("    " + ", ".join(fmt(v) for v in values[start:start + per_line].tolist()) + ",")
    return f"static const {ctype} {name}[{len(values)}] = {{\n" + "\n".join(lines) + "\n};\n"


def quantize_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weights, float32 scale per row): symmetric, the largest |w| of a row -> 127."""
    scale = (np.abs(rows).max(axis=1) / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(rows / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale


def padded(units: int) -> int:
    return -(-units // ROWS) * ROWS


def blocked(rows: np.ndarray) -> np.ndarray:
    """(R, K) weight rows, R a multiple of ROWS -> flat [block][k][row] for el_matvec."""
    r, k = rows.shape
    return np.ascontiguousarray(rows.reshape(r // ROWS, ROWS, k).transpose(0, 2, 1)).ravel()


def gate_rows(kernel: np.ndarray, units: int, gates: list[int]) -> np.ndarray:
    """The rows of the given gate blocks of a Keras (K, G*U) kernel, each gate padded to
    a multiple of ROWS rows with zeros: (len(gates) * padded(U), K)."""
    pad = padded(units)
    out = np.zeros((len(gates) * pad, kernel.shape[0]), np.float32)
    for n, g in enumerate(gates):
        out[n * pad:n * pad + units] = kernel[:, g * units:(g + 1) * units].T
    return out


def gate_bias(bias: np.ndarray, units: int, gates: list[int]) -> np.ndarray:
    pad = padded(units)
    out = np.zeros(len(gates) * pad, np.float32)
    for n, g in enumerate(gates):
        out[n * pad:n * pad + units] = bias[g * units:(g + 1) * units]
    return out


# -- activations ---------------------------------------------------------------------

#: Activation name -> C expression of ``v`` (float), built on the helpers below.
ACTIVATION_C = {
    "tanh": "el_tanh({v})",
    "sigmoid": "el_sigmoid({v})",
    "hard_sigmoid": "el_hard_sigmoid({v})",
    "relu": "el_relu({v})",
    "linear": "{v}",
    "softsign": "el_softsign({v})",
}

_MACROS = r"""
#if defined(__GNUC__)
#define EL_INLINE static inline __attribute__((always_inline))
#else
#define EL_INLINE static inline
#endif

/* A fused multiply-add where the FPU has one (FP_FAST_FMAF, e.g. x86 with FMA, Cortex-M4F/M7),
 * a multiply and an add elsewhere: never a slow software fmaf. */
#if defined(FP_FAST_FMAF)
#define EL_MAC(acc, w, v) ((acc) = fmaf((w), (v), (acc)))
#else
#define EL_MAC(acc, w, v) ((acc) += (w) * (v))
#endif

#define EL_ROWS 8 /* output rows per weight block: w[block][k][row] */

/* acc[r] += w[r] * v for the EL_ROWS rows of a block, written out: constant indices keep the
 * accumulators in registers at -O2 too (GCC unrolls such loops itself only at -O3). */
#define EL_MAC_ROWS(acc, w, v)                                                   \
    do {                                                                         \
        EL_MAC((acc)[0], (w)[0], (v)); EL_MAC((acc)[1], (w)[1], (v));            \
        EL_MAC((acc)[2], (w)[2], (v)); EL_MAC((acc)[3], (w)[3], (v));            \
        EL_MAC((acc)[4], (w)[4], (v)); EL_MAC((acc)[5], (w)[5], (v));            \
        EL_MAC((acc)[6], (w)[6], (v)); EL_MAC((acc)[7], (w)[7], (v));            \
    } while (0)

"""

_SELECT = r"""
/* cond ? a : b by bit masks. GCC keeps ?: on a float comparison as a branch, which stops
 * a loop over the activations from vectorizing; this select vectorizes everywhere. */
EL_INLINE float el_select(int cond, float a, float b)
{
    union { float f; uint32_t u; } ua, ub;
    const uint32_t take_a = 0u - (uint32_t)cond;
    ua.f = a;
    ub.f = b;
    ua.u = (ua.u & take_a) | (ub.u & ~take_a);
    return ua.f;
}

"""

_MATVEC = r"""
/* acc[r] += sum_k w[k][r] * v[k]. On a SIMD core the EL_ROWS accumulators are one vector
 * register, and one chain of dependent multiply-adds would wait on the FMA latency (~4
 * cycles): four chains over k mod 4 keep the unit busy. On an MCU FPU one set of EL_ROWS
 * accumulators is what the registers hold. */
#if defined(__SSE2__) || defined(__ARM_NEON) || defined(__AVX__)
EL_INLINE void el_accumulate(float acc[EL_ROWS], const float *w, const float *v, int n)
{
    float a1[EL_ROWS], a2[EL_ROWS], a3[EL_ROWS];
    for (int r = 0; r < EL_ROWS; ++r)
        a1[r] = a2[r] = a3[r] = 0.0f;
    const int quads = n - n % 4;
    for (int k = 0; k < quads; k += 4, w += 4 * EL_ROWS) {
        const float v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];
        EL_MAC_ROWS(acc, w, v0);
        EL_MAC_ROWS(a1, w + EL_ROWS, v1);
        EL_MAC_ROWS(a2, w + 2 * EL_ROWS, v2);
        EL_MAC_ROWS(a3, w + 3 * EL_ROWS, v3);
    }
    for (int k = quads; k < n; ++k, w += EL_ROWS)
        EL_MAC_ROWS(acc, w, v[k]);
    for (int r = 0; r < EL_ROWS; ++r)
        acc[r] += (a1[r] + a2[r]) + a3[r];
}
#else
EL_INLINE void el_accumulate(float acc[EL_ROWS], const float *w, const float *v, int n)
{
    for (int k = 0; k < n; ++k, w += EL_ROWS)
        EL_MAC_ROWS(acc, w, v[k]);
}
#endif

/* z[r] = b[r] + sum_k w[k][r] * x[k] + sum_k w[nx + k][r] * h[k], EL_ROWS rows per block.
 * The rows of a block are independent accumulators over contiguous weights: SIMD lanes on a
 * PC, eight FPU registers on a Cortex-M4F (one load and one MAC per product). b may be 0. */
EL_INLINE void el_matvec(float *z, const float *w, const float *b, int blocks,
                         const float *x, int nx, const float *h, int nh)
{
    for (int blk = 0; blk < blocks; ++blk, w += (nx + nh) * EL_ROWS) {
        float acc[EL_ROWS];
        for (int r = 0; r < EL_ROWS; ++r)
            acc[r] = b ? b[blk * EL_ROWS + r] : 0.0f;
        el_accumulate(acc, w, x, nx);
        el_accumulate(acc, w + nx * EL_ROWS, h, nh);
        for (int r = 0; r < EL_ROWS; ++r)
            z[blk * EL_ROWS + r] = acc[r];
    }
}
"""

_MATVEC_Q8 = r"""
/* int8 weights with one scale per output row (a quarter of the flash of float):
 * z[r] = b[r] + scale[r] * sum_k q[k][r] * v[k], with [x; h] as v and the same block layout
 * as el_matvec; activations stay float. b may be 0. */
EL_INLINE void el_matvec_q8(float *z, const int8_t *w, const float *scale, const float *b, int blocks,
                            const float *x, int nx, const float *h, int nh)
{
    for (int blk = 0; blk < blocks; ++blk) {
        float acc[EL_ROWS];
        for (int r = 0; r < EL_ROWS; ++r)
            acc[r] = 0.0f;
        for (int k = 0; k < nx; ++k, w += EL_ROWS) {
            const float v = x[k];
            for (int r = 0; r < EL_ROWS; ++r)
                EL_MAC(acc[r], (float)w[r], v);
        }
        for (int k = 0; k < nh; ++k, w += EL_ROWS) {
            const float v = h[k];
            for (int r = 0; r < EL_ROWS; ++r)
                EL_MAC(acc[r], (float)w[r], v);
        }
        for (int r = 0; r < EL_ROWS; ++r) {
            const int row = blk * EL_ROWS + r;
            z[row] = acc[r] * scale[row] + (b ? b[row] : 0.0f);
        }
    }
}
"""

_EXP = r"""
/* e^x for float, branch-free so loops over it vectorize: x = n ln2 + r with |r| <= ln2/2
 * (ln2 split in two so n ln2 is exact), e^r from the Cephes expf polynomial, 2^n from the
 * exponent bits. Within 2e-7 relative of e^x; x is clamped to [-87, 88] (no inf, no
 * denormals): sigmoid and tanh saturate long before. */
EL_INLINE float el_exp(float x)
{
    x = el_select(x < -87.0f, -87.0f, x);
    x = el_select(x > 88.0f, 88.0f, x);
    const float t = x * 1.44269504089f + 0.5f;
    int32_t n = (int32_t)t;
    n -= (float)n > t; /* floor(t): n = round(x / ln2) */
    const float fn = (float)n;
    const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = (int32_t)((uint32_t)(n + 127) << 23);
    return p * scale.f;
}
"""

_HELPERS = {
    "sigmoid": r"""
/* 1 / (1 + e^-x) */
EL_INLINE float el_sigmoid(float x)
{
    return 1.0f / (1.0f + el_exp(-x));
}
""",
    "tanh": r"""
/* tanh: the Cephes odd polynomial for |x| < 0.625 (accurate relative to small values),
 * 1 - 2 / (e^2|x| + 1) above, sign restored; both computed, one selected (vectorizes). */
EL_INLINE float el_tanh(float x)
{
    const float a = el_select(x < 0.0f, -x, x);
    const float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const float small = p * z * x + x;
    const float big = 1.0f - 2.0f / (el_exp(2.0f * a) + 1.0f); /* el_exp clamps: 1 for large a */
    return el_select(a < 0.625f, small, el_select(x < 0.0f, -big, big));
}
""",
    "hard_sigmoid": r"""
/* Keras 3: relu6(x + 3) / 6 */
EL_INLINE float el_hard_sigmoid(float x)
{
    const float y = x + 3.0f;
    return el_select(y < 0.0f, 0.0f, el_select(y > 6.0f, 6.0f, y)) / 6.0f;
}
""",
    "relu": r"""
EL_INLINE float el_relu(float x)
{
    return el_select(x > 0.0f, x, 0.0f);
}
""",
    "softsign": r"""
/* x / (1 + |x|) */
EL_INLINE float el_softsign(float x)
{
    return x / (1.0f + el_select(x < 0.0f, -x, x));
}
""",
}


def activation(name: str, v: str) -> str:
    return ACTIVATION_C[name].format(v=v)


# -- layers --------------------------------------------------------------------------

class Layer:
    """What one layer contributes to the file: weights, its function, and its call."""

    def __init__(self, spec_layer: LayerSpec, index: int, width: int, quantize: str = "float32"):
        self.layer = spec_layer
        self.quantize = quantize
        self.matvec = MATVEC[quantize]
        self.i = index
        self.width = width  # input features
        self.units = spec_layer.units
        self.pad = padded(spec_layer.units)
        self.fn = f"layer{index}_{spec_layer.kind}"
        self.weights: list[tuple[str, np.ndarray]] = []  # (C name, flat float32 or int8 values)
        self.defines = [f"#define L{index}_IN {width}", f"#define L{index}_UNITS {self.units}",
                        f"#define L{index}_PAD {self.pad}"]

    def add_weights(self, suffix: str, values: np.ndarray) -> str:
        name = f"layer{self.i}_{suffix}"
        values = np.asarray(values)
        self.weights.append((name, (values if values.dtype == np.int8 else values.astype(np.float32)).ravel()))
        return name

    def matrix(self, suffix: str, rows: np.ndarray) -> str:
        """Store (R, K) weight rows for self.matvec; returns its weight argument(s) in C."""
        if self.quantize == "int8":
            q, scale = quantize_rows(rows)
            return f"{self.add_weights(suffix, blocked(q))}, {self.add_weights(suffix + '_scale', scale)}"
        return self.add_weights(suffix, blocked(rows))

    def bias(self, suffix: str, values: np.ndarray | None) -> str:
        return self.add_weights(suffix, values) if values is not None else "0"

    @property
    def title(self) -> str:
        lay = self.layer
        acts = lay.activation + (f" / {lay.recurrent_activation}" if lay.kind in ("lstm", "gru") else "")
        extra = f", reset_after={lay.reset_after}" if lay.kind == "gru" else ""
        return f"layer {self.i}: {lay.kind} {lay.name!r}, {self.width} -> {self.units}, {acts}{extra}"


def lstm(layer: Layer) -> str:
    lay, i = layer.layer, layer.i
    order = [0, 1, 2, 3]  # Keras: i, f, c, o
    rows = np.concatenate([lay.weights["kernel"], lay.weights["recurrent_kernel"]], axis=0)
    w = layer.matrix("w", gate_rows(rows, lay.units, order))
    b = layer.bias("b", gate_bias(lay.weights["bias"], lay.units, order) if lay.use_bias else None)
    g, a = lay.recurrent_activation, lay.activation
    return f"""
/* {layer.title}
 *   [i f g o] = W [x; h] + b      all four gates in one pass over [x; h]
 *   i = {g}(i)   f = {g}(f)   o = {g}(o)   g = {a}(g)
 *   c = f * c + i * g
 *   h = o * {a}(c)
 */
static void {layer.fn}(const float x[L{i}_IN], float h[L{i}_UNITS], float c[L{i}_UNITS])
{{
    float z[4 * L{i}_PAD];
    float *zi = z, *zf = z + L{i}_PAD, *zg = z + 2 * L{i}_PAD, *zo = z + 3 * L{i}_PAD;
    {layer.matvec}(z, {w}, {b}, 4 * L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    for (int k = 0; k < L{i}_PAD; ++k) {{
        zi[k] = {activation(g, "zi[k]")};
        zf[k] = {activation(g, "zf[k]")};
        zg[k] = {activation(a, "zg[k]")};
        zo[k] = {activation(g, "zo[k]")};
    }}
    for (int k = 0; k < L{i}_UNITS; ++k) {{
        c[k] = zf[k] * c[k] + zi[k] * zg[k];
        h[k] = zo[k] * {activation(a, "c[k]")};
    }}
}}
"""


def gru(layer: Layer) -> str:
    """GRU as C: reset_after (the Keras default, reset gate after the recurrent product)
    and the original cell (reset gate on h before it) are two different functions."""
    return gru_variant(layer, _gru_reset_after, _gru_reset_before)


def gru_variant(layer, reset_after, reset_before) -> str:
    """The C of ``layer`` (a GRU, float or integer) from the writer of its variant:
    ``reset_after(layer, kernel, recurrent, [kernel; recurrent])`` or
    ``reset_before(layer, [kernel; recurrent])``."""
    kernel, recurrent = layer.layer.weights["kernel"], layer.layer.weights["recurrent_kernel"]
    both = np.concatenate([kernel, recurrent], axis=0)
    if layer.layer.reset_after:
        return reset_after(layer, kernel, recurrent, both)
    return reset_before(layer, both)


def _gru_reset_after(layer: Layer, kernel: np.ndarray, recurrent: np.ndarray, both: np.ndarray) -> str:
    lay, i, u = layer.layer, layer.i, layer.units
    g, a = lay.recurrent_activation, lay.activation
    bx, bh = (lay.weights["bias"][0], lay.weights["bias"][1]) if lay.use_bias else (None, None)
    w_zr = layer.matrix("w_zr", gate_rows(both, u, [0, 1]))
    b_zr = layer.bias("b_zr", gate_bias(bx + bh, u, [0, 1]) if lay.use_bias else None)
    w_xh = layer.matrix("w_xh", gate_rows(kernel, u, [2]))
    b_xh = layer.bias("b_xh", gate_bias(bx, u, [2]) if lay.use_bias else None)
    w_hh = layer.matrix("w_hh", gate_rows(recurrent, u, [2]))
    b_hh = layer.bias("b_hh", gate_bias(bh, u, [2]) if lay.use_bias else None)
    return f"""
/* {layer.title}
 *   [z r] = W_zr [x; h] + b_zr    update and reset gates in one pass over [x; h]
 *   z = {g}(z)   r = {g}(r)
 *   n = {a}(W_h x + b_xh + r * (U_h h + b_hh))    reset applied after the product
 *   h = z * h + (1 - z) * n
 */
static void {layer.fn}(const float x[L{i}_IN], float h[L{i}_UNITS])
{{
    float zr[2 * L{i}_PAD], xn[L{i}_PAD], hn[L{i}_PAD];
    float *z = zr, *r = zr + L{i}_PAD;
    {layer.matvec}(zr, {w_zr}, {b_zr}, 2 * L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    {layer.matvec}(xn, {w_xh}, {b_xh}, L{i}_PAD / EL_ROWS, x, L{i}_IN, 0, 0);
    {layer.matvec}(hn, {w_hh}, {b_hh}, L{i}_PAD / EL_ROWS, h, L{i}_UNITS, 0, 0);
    for (int k = 0; k < L{i}_PAD; ++k) {{
        z[k] = {activation(g, "z[k]")};
        r[k] = {activation(g, "r[k]")};
        xn[k] = {activation(a, "xn[k] + r[k] * hn[k]")};
    }}
    for (int k = 0; k < L{i}_UNITS; ++k)
        h[k] = z[k] * h[k] + (1.0f - z[k]) * xn[k];
}}
"""


def _gru_reset_before(layer: Layer, both: np.ndarray) -> str:
    lay, i, u = layer.layer, layer.i, layer.units
    g, a = lay.recurrent_activation, lay.activation
    b = lay.weights["bias"] if lay.use_bias else None
    w_zr = layer.matrix("w_zr", gate_rows(both, u, [0, 1]))
    b_zr = layer.bias("b_zr", gate_bias(b, u, [0, 1]) if b is not None else None)
    w_n = layer.matrix("w_n", gate_rows(both, u, [2]))
    b_n = layer.bias("b_n", gate_bias(b, u, [2]) if b is not None else None)
    return f"""
/* {layer.title}
 *   [z r] = W_zr [x; h] + b_zr    update and reset gates in one pass over [x; h]
 *   z = {g}(z)   r = {g}(r)
 *   n = {a}(W_n [x; r * h] + b_n)    reset applied to h before the product
 *   h = z * h + (1 - z) * n
 */
static void {layer.fn}(const float x[L{i}_IN], float h[L{i}_UNITS])
{{
    float zr[2 * L{i}_PAD], n[L{i}_PAD], rh[L{i}_UNITS];
    float *z = zr, *r = zr + L{i}_PAD;
    {layer.matvec}(zr, {w_zr}, {b_zr}, 2 * L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    for (int k = 0; k < L{i}_PAD; ++k) {{
        z[k] = {activation(g, "z[k]")};
        r[k] = {activation(g, "r[k]")};
    }}
    for (int k = 0; k < L{i}_UNITS; ++k)
        rh[k] = r[k] * h[k];
    {layer.matvec}(n, {w_n}, {b_n}, L{i}_PAD / EL_ROWS, x, L{i}_IN, rh, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k)
        h[k] = z[k] * h[k] + (1.0f - z[k]) * {activation(a, "n[k]")};
}}
"""


def simple_rnn(layer: Layer) -> str:
    lay, i = layer.layer, layer.i
    rows = np.concatenate([lay.weights["kernel"], lay.weights["recurrent_kernel"]], axis=0)
    w = layer.matrix("w", gate_rows(rows, lay.units, [0]))
    b = layer.bias("b", gate_bias(lay.weights["bias"], lay.units, [0]) if lay.use_bias else None)
    return f"""
/* {layer.title}
 *   h = {lay.activation}(W [x; h] + b)
 */
static void {layer.fn}(const float x[L{i}_IN], float h[L{i}_UNITS])
{{
    float z[L{i}_PAD];
    {layer.matvec}(z, {w}, {b}, L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k)
        h[k] = {activation(lay.activation, "z[k]")};
}}
"""


def dense(layer: Layer) -> str:
    lay, i = layer.layer, layer.i
    w = layer.matrix("w", gate_rows(lay.weights["kernel"], lay.units, [0]))
    b = layer.bias("b", gate_bias(lay.weights["bias"], lay.units, [0]) if lay.use_bias else None)
    head = f"""
/* {layer.title} (applied to every step)
 *   y = {lay.activation}(W x + b)
 */
static void {layer.fn}(const float x[L{i}_IN], float y[L{i}_UNITS])
{{
    float z[L{i}_PAD];
    {layer.matvec}(z, {w}, {b}, L{i}_PAD / EL_ROWS, x, L{i}_IN, 0, 0);
"""
    if lay.activation == "softmax":
        return head + f"""    float top = z[0], sum = 0.0f;
    for (int k = 1; k < L{i}_UNITS; ++k)
        top = el_select(z[k] > top, z[k], top);
    for (int k = 0; k < L{i}_UNITS; ++k) {{
        y[k] = el_exp(z[k] - top); /* shifted by the largest: no overflow */
        sum += y[k];
    }}
    for (int k = 0; k < L{i}_UNITS; ++k)
        y[k] /= sum;
}}
"""
    return head + f"""    for (int k = 0; k < L{i}_UNITS; ++k)
        y[k] = {activation(lay.activation, "z[k]")};
}}
"""


def affine(layer: Layer) -> str:
    i = layer.i
    scale = layer.add_weights("scale", layer.layer.weights["scale"])
    offset = layer.add_weights("offset", layer.layer.weights["offset"])
    return f"""
/* {layer.title}
 *   y = x * scale + offset      per feature (input normalization, output scaling)
 */
static void {layer.fn}(const float x[L{i}_IN], float y[L{i}_UNITS])
{{
    for (int k = 0; k < L{i}_UNITS; ++k)
        y[k] = x[k] * {scale}[k] + {offset}[k];
}}
"""


#: Layer kind -> the function that writes its C function (and registers its weights).
LAYER_WRITERS = {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn, "dense": dense, "affine": affine}


# -- the two files -------------------------------------------------------------------

def _activations_used(spec: ModelSpec) -> set[str]:
    used = set()
    for lay in spec.layers:
        if lay.kind == "affine":
            continue
        used.add(lay.activation)
        if lay.kind in ("lstm", "gru"):
            used.add(lay.recurrent_activation)
    return used


def _helpers(spec: ModelSpec, quantize: str) -> str:
    """The building blocks this model uses, and only those (clang warns about unused ones)."""
    used = _activations_used(spec)
    text = _MACROS
    text += _SELECT if used - {"linear"} else ""
    if any(lay.kind != "affine" for lay in spec.layers):
        text += _MATVEC_Q8 if quantize == "int8" else _MATVEC
    text += _EXP if used & {"sigmoid", "tanh", "softmax"} else ""
    for name in ("sigmoid", "tanh", "hard_sigmoid", "relu", "softsign"):
        if name in used:
            text += _HELPERS[name]
    return text


WEIGHTS_NOTE = {"float32": "float32 weights",
                "int8": "int8 weights, one float scale per output row; float activations and state",
                "int16x8": "integer only: int8 weights, one scale per output row; int16 activations and state; "
                           "int32 sums; Q15.16 inside a layer"}


def _summary(spec: ModelSpec, layers: list[Layer], quantize: str) -> list[str]:
    task = spec.task + (f" ({', '.join(map(str, spec.class_names))})" if spec.class_names else "")
    lines = [f"Model {spec.name!r}: {task}, {spec.input_size} inputs -> {spec.output_size} outputs per step",
             f"Quantization: {quantize} ({WEIGHTS_NOTE[quantize]})",
             *[f"  {lay.title}" for lay in layers],
             f"Source model sha256: {spec.source_hash or 'unknown'}",
             f"edgelstm {__version__}, weights sha256: {spec.weights_hash()}"]
    return [line.replace("*/", "* /") for line in lines]


def generate(spec: ModelSpec, name: str, quantize: str = "float32", calibration=None,
             **extra) -> tuple[str, str, dict]:
    """(header text, source text, description) of ``spec`` as C named ``name``;
    ``calibration`` (N, T, F) sets the value formats of int16x8 (the others use none)."""
    if quantize == "int16x8":
        from edgelstm.converters import c_int16

        return c_int16.generate(spec, name, calibration, **extra)
    if not is_c_identifier(name):
        raise UserError(f"--name {name!r} is not a C identifier (letters, digits and _, not starting with a digit)")
    if quantize not in QUANTIZATIONS:
        raise UserError(f"C source export supports {', '.join(QUANTIZATIONS)}, not {quantize!r}")
    layers, width = [], spec.input_size
    for i, lay in enumerate(spec.layers):
        if lay.kind not in LAYER_WRITERS:
            raise UserError(f"layer {i} ({lay.kind}): the C exporter cannot express this layer kind")
        layers.append(Layer(lay, i, width, quantize))
        width = lay.units
    functions = [LAYER_WRITERS[layer.layer.kind](layer) for layer in layers]
    weight_bytes = sum(v.nbytes for layer in layers for _, v in layer.weights)
    states = StepInterface.from_spec(spec).states
    stats = spec.stats()
    summary = _summary(spec, layers, quantize)

    header = _header(spec, name, summary, states, stats, weight_bytes)
    source = _source(spec, name, summary, layers, functions, quantize)
    desc = describe(spec, "c", quantize, **extra)
    desc["c"] = {
        "name": name,
        "header": f"{name}.h",
        "flash_bytes": weight_bytes,
        "state_bytes": 4 * stats["state_floats"],
        "state_fields": [{"name": s.name, "size": s.size, "dtype": "float32"} for s in states],
        "source_sha256": source_hash(header, source),
    }
    return header, source + _description_block(desc), desc


def _description_block(desc: dict) -> str:
    text = json.dumps(desc, indent=1, sort_keys=True).replace("*/", "*\\/")  # JSON reads \/ as /
    return "\n" + DESCRIPTION_MARKER + text + "\n" + DESCRIPTION_END


def _header(spec, name, summary, states, stats, weight_bytes, ctype: str = "float", formats: dict | None = None,
            usage: str = "", api: str = "") -> str:
    """NAME.h: sizes, the state struct (``ctype`` values; ``formats``: state -> its Q.f),
    the API; int16x8 adds ``usage`` lines and its ``api`` (scales, step_q, helpers)."""
    formats = formats or {}
    fields = "\n".join(f"    {ctype} {s.name}[{s.size}]; /* layer {s.layer} {spec.layers[s.layer].kind}: {s.kind}"
                       + (f", real = q * 2^-{formats[s.name]}" if s.name in formats else "") + " */"
                       for s in states) or f"    {ctype} unused; /* this model has no recurrent state */"
    comment = "\n".join(f" * {line}" if line else " *" for line in summary)
    usage = usage or f" *     {name}_step(&s, in, out);    one timestep: {name}_INPUTS floats in, {name}_OUTPUTS out\n"
    step = "" if api else \
        f"void {name}_step({name}_state_t *s, const float in[{name}_INPUTS], float out[{name}_OUTPUTS]);\n"
    return f"""/* {name}.h - generated by edgelstm {__version__}; do not edit.
 *
{comment}
 *
 * Flash: {weight_bytes} bytes of weights. RAM: sizeof({name}_state_t) per stream, no globals.
 *
 *     {name}_state_t s;            one per independent stream
 *     {name}_reset(&s);            zero state: the start of a stream
{usage} */
#ifndef {name.upper()}_H_
#define {name.upper()}_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {name}_INPUTS        {spec.input_size}      /* floats per step in */
#define {name}_OUTPUTS       {spec.output_size}      /* floats per step out */
#define {name}_STATE_FLOATS  {stats['state_floats']}      /* recurrent state values per stream */
#define {name}_MACS_PER_STEP {stats['macs_per_step']}

/* The recurrent state of one stream (h, and c for LSTM, of every recurrent layer). */
typedef struct {{
{fields}
}} {name}_state_t;

void {name}_reset({name}_state_t *s);
{step}{api}
#ifdef __cplusplus
}}
#endif

#endif /* {name.upper()}_H_ */
"""


def step_body(name: str, layers, ctype: str = "float") -> str:
    """The statements of the step function: every layer's call, from ``in`` to ``out``,
    the recurrent ones on their state in ``s``, the others through ``ctype`` buffers."""
    body, buffers = [], []
    x = "in"
    last = len(layers) - 1
    for layer in layers:
        i, kind = layer.i, layer.layer.kind
        if kind in STATE_KINDS:
            state = ", ".join(f"s->{state_name(i, k)}" for k in STATE_KINDS[kind])
            body.append(f"    {layer.fn}({x}, {state});")
            x = f"s->{state_name(i, 'h')}"
            if i == last:
                body.append(f"    memcpy(out, {x}, sizeof({ctype}) * {name}_OUTPUTS);")
        else:
            y = "out" if i == last else f"a{i}"
            if i != last:
                buffers.append(f"    {ctype} a{i}[L{i}_UNITS];")
            body.append(f"    {layer.fn}({x}, {y});")
            x = y
    if not any(layer.layer.kind in STATE_KINDS for layer in layers):
        body.insert(0, "    (void)s; /* no recurrent layer: nothing to carry between steps */")
    return "\n".join(buffers + body)


def _source(spec, name, summary, layers, functions, quantize) -> str:
    comment = "\n".join(f" * {line}" if line else " *" for line in summary)
    defines = "\n".join(d for layer in layers for d in layer.defines)
    weights = "".join(c_array(n, v) for layer in layers for n, v in layer.weights)
    return f"""/* {name}.c - generated by edgelstm {__version__}; do not edit.
 *
{comment}
 *
 * Portable C99: float only (no double), no malloc, no globals holding state.
 */
#include "{name}.h"

#include <math.h>   /* fmaf, used only where the FPU fuses multiply-add (FP_FAST_FMAF) */
#include <string.h>
{_helpers(spec, quantize)}
/* -- sizes --------------------------------------------------------------------------- */
{defines}

/* -- weights: gate rows in blocks of EL_ROWS, stored [block][k][row] -------------------- */
{weights}
/* -- layers ------------------------------------------------------------------------- */
{"".join(functions)}
/* -- API ---------------------------------------------------------------------------- */
void {name}_reset({name}_state_t *s)
{{
    memset(s, 0, sizeof *s);
}}

void {name}_step({name}_state_t *s, const float in[{name}_INPUTS], float out[{name}_OUTPUTS])
{{
{step_body(name, layers)}
}}
"""


def export(spec: ModelSpec, out_dir: Path, options, warn) -> tuple[list[Path], dict]:
    name = options.basename
    extra = {"synthetic": bool(options.calibration_synthetic)} if options.quantize == "int16x8" else {}
    header, source, desc = generate(spec, name, options.quantize, options.calibration, **extra)
    h_path, c_path = out_dir / f"{name}.h", out_dir / f"{name}.c"
    h_path.write_text(header)
    c_path.write_text(source)
    return [c_path, h_path], desc
