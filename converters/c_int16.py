"""ModelSpec -> integer-only C99 (``--format c --quantize int16x8``) for cores without an FPU.

Same files and API as ``c_source`` (``NAME.h`` / ``NAME.c`` / ``NAME.c.json``, one
function per layer kind, weights ``static const``, state in a caller-owned struct), but
``NAME_step_q`` contains no floating point at all: Cortex-M0+/M3 run it with integer
instructions only (no ``__aeabi_f*`` / ``__aeabi_d*`` soft-float call, no libm).

Number formats (Qm.n = n fractional bits):

* **Weights**: int8, symmetric, one scale per output row (as the float-activation int8
  C). The row scale, times the scale of the vector it multiplies, becomes a fixed-point
  multiplier ``m * 2^-shift`` (``m`` an int32 in [2^30, 2^31)) per row and per operand
  (``x`` and ``h`` have their own formats), so there is no float even in requantization.
* **Accumulators**: int32 sums of int8 x int16 products, rescaled with a 64-bit
  product; a matrix with a row whose int32 sum could overflow (sum|q| * 32768 >= 2^31,
  e.g. hundreds of inputs of large weights) gets int64 sums (``el_matvec_q16_wide``).
* **Gates and every value inside a layer function**: int32 in Q15.16 (``EL_Q``, 16
  fractional bits, range +-32768).
* **Activations, state and outputs that cross a function boundary** (the layer inputs,
  every ``h`` and ``c`` in the state struct, the model input and output): int16 with a
  power-of-two scale 2^-f, f in [0, 16], so moving between them and Q15.16 is a shift.
  f comes from the known bound of the value when it has one (|tanh|, sigmoid, softsign,
  softmax <= 1, so an LSTM ``h`` or a GRU ``h`` with bounded activations is Q0.15), else
  from calibration: the largest |value| the float reference visits over the calibration
  data, times ``HEADROOM``. A value beyond +-32767 in real units cannot be held: such a
  model is refused at export.
* **sigmoid / tanh**: a 513-entry table of sigmoid(x) - 1/2 for x in [0, 16] (steps of
  1/32, Q16), linearly interpolated (error <= 1.2e-5), symmetric for x < 0;
  tanh(x) = 2 sigmoid(2x) - 1. hard_sigmoid, relu, softsign are exact integer formulas
  (softsign with a 64-bit integer division).
* **softmax** (classifier head): fixed point: e^(z - max) as 2^-t, the integer part of t a
  shift, the fraction from a 65-entry table of 2^(-k/64), interpolated; then an integer
  division by the sum. Outputs are probabilities in Q0.15 (1.0 saturates at 32767).

The float ``NAME_step`` (left out with ``-DNAME_NO_FLOAT_API``, e.g. for a Cortex-M0+
build that must not link soft-float) quantizes the input with ``NAME_INPUT_SCALE``,
calls ``NAME_step_q`` and dequantizes with ``NAME_OUTPUT_SCALE``. Rounding shifts of
negative values assume an arithmetic ``>>``, as gcc, clang and Arm compilers implement it.

State through float (native backend, state files): each int16 state value ``q`` of format
f is the float ``q * 2^-f`` exactly, and back; so a snapshot restores bit-identically.
The description lists ``frac_bits`` per state field.
"""

from __future__ import annotations

import math
import re

import numpy as np

from edgelstm import __version__
from edgelstm.converters import sequences as calibration_data
from edgelstm.core.artifact import StepInterface, describe
from edgelstm.core.errors import UserError
from edgelstm.runtime import reference
from edgelstm.core.metrics import all_finite
from edgelstm.runtime.native_backend import source_hash
from edgelstm.converters import c_source
from edgelstm.converters.c_source import (_description_block, blocked, c_float, gate_bias, gate_rows,
                                         is_c_identifier, padded, quantize_rows)
from edgelstm.core.spec import ModelSpec

#: Calibrated (unbounded) values get this factor over the largest |value| seen: a long
#: stream wanders past what short calibration windows visit (relu state, LSTM c).
HEADROOM = 2.0
#: Fractional bits of the int32 values inside a layer function (gate pre-activations).
EL_Q = 16
#: Bounds of activation outputs (None: unbounded, calibrated).
BOUND = {"tanh": 1.0, "sigmoid": 1.0, "hard_sigmoid": 1.0, "softsign": 1.0, "softmax": 1.0,
         "relu": None, "linear": None}
#: Activation name -> C expression of ``v`` (int32 Q16) giving int32 Q16.
ACTIVATION_Q = {"tanh": "el_tanh_q({v})", "sigmoid": "el_sigmoid_q({v})", "hard_sigmoid": "el_hard_sigmoid_q({v})",
                "relu": "el_relu_q({v})", "linear": "{v}", "softsign": "el_softsign_q({v})"}
SIGMOID_STEP_BITS, SIGMOID_ENTRIES = 11, 513  # x step 2^-5 (in Q16: 2^11), x in [0, 16]
EXP2_ENTRIES = 65


def act(name: str, v: str) -> str:
    return ACTIVATION_Q[name].format(v=v)


# -- numbers -------------------------------------------------------------------------

def frac_bits(max_abs: float, bounded: bool) -> int:
    """f of an int16 value with scale 2^-f holding |value| <= max_abs."""
    if not np.isfinite(max_abs):
        raise UserError("int16x8 calibration saw a non-finite value in the float reference")
    if bounded:
        return 15
    top = max_abs * HEADROOM
    if top > 32767:
        raise UserError(f"int16x8 C holds values up to +-32767, but the model reaches {max_abs:.6g}; "
                        "use --quantize int8 or float32")
    if top <= 2.0 ** -16:
        return 16
    return int(min(16, math.floor(math.log2(32767 / top))))


def multiplier(real: float) -> tuple[int, int]:
    """(m, shift) with real ~= m * 2^-shift, m in [2^30, 2^31), 1 <= shift <= 62; (0, 1) for 0."""
    if real == 0:
        return 0, 1
    mant, exp = math.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    m, shift = int(round(mant * 2 ** 31)), 31 - exp
    if m == 2 ** 31:
        m, shift = 2 ** 30, shift - 1
    if shift > 62:
        return 0, 1
    if shift < 1:
        raise UserError(f"int16x8: a weight scale ({real:.3g}) is too large for a fixed-point multiplier")
    return m, shift


def q16(values: np.ndarray) -> np.ndarray:
    q = np.rint(np.asarray(values, np.float64) * 2 ** EL_Q)
    if np.abs(q).max(initial=0) >= 2 ** 31:
        raise UserError("int16x8: a bias does not fit int32 Q15.16 (|b| >= 32768)")
    return q.astype(np.int64)


def c_ints(name: str, ctype: str, values, per_line: int = 12) -> str:
    values = [int(v) for v in np.asarray(values).ravel().tolist()]
    lines = ["    " + ", ".join(map(str, values[s:s + per_line])) + "," for s in range(0, len(values), per_line)]
    return f"static const {ctype} {name}[{len(values)}] = {{\n" + "\n".join(lines) + "\n};\n"


def sigmoid_table() -> np.ndarray:
    x = np.arange(SIGMOID_ENTRIES, dtype=np.float64) / 32
    return np.rint((1 / (1 + np.exp(-x)) - 0.5) * 2 ** EL_Q).astype(np.int64)


def exp2_table() -> np.ndarray:
    return np.rint(2.0 ** (-np.arange(EXP2_ENTRIES) / (EXP2_ENTRIES - 1)) * 2 ** EL_Q).astype(np.int64)


# -- calibration ---------------------------------------------------------------------

def value_ranges(spec: ModelSpec, xs: np.ndarray) -> dict:
    """Largest |value| the float reference visits over ``xs`` (N, T, F): the input, every
    layer's output and every LSTM cell state (keys ``in``, ``y{i}``, ``c{i}``; a layer's
    h is its output ``y{i}``)."""
    xs = np.asarray(xs, np.float32)
    top = {"in": float(np.abs(xs).max(initial=0))}
    state = reference.zero_state(spec, xs.shape[0])

    def seen(key, v):
        top[key] = max(top.get(key, 0.0), float(np.abs(v).max(initial=0)))

    names = reference.layer_state_names(spec)
    for t in range(xs.shape[1]):
        x = xs[:, t]
        for i, lay in enumerate(spec.layers):
            x, new = reference.LAYERS[lay.kind](lay, x, [state[n] for n in names[i]])
            state.update(zip(names[i], new))
            if lay.kind == "lstm":  # its cell state c has a range of its own
                seen(f"c{i}", new[1])
            seen(f"y{i}", x)
    return top


def output_bounded(lay) -> bool:
    """True when the layer's output (its h for a recurrent layer) is within [-1, 1] by
    construction (zero initial state)."""
    if lay.kind == "affine":
        return False
    if lay.kind == "lstm":
        return BOUND[lay.activation] is not None and BOUND[lay.recurrent_activation] is not None
    if lay.kind == "gru":  # z h + (1 - z) n: a convex mix when z is in [0, 1]
        return BOUND[lay.activation] is not None and lay.recurrent_activation in ("sigmoid", "hard_sigmoid")
    return BOUND[lay.activation] is not None


# -- C building blocks -----------------------------------------------------------------

_MACROS = r"""
#if defined(__GNUC__)
#define EL_INLINE static inline __attribute__((always_inline))
#else
#define EL_INLINE static inline
#endif

#define EL_ROWS 8  /* output rows per weight block: w[block][k][row] */
#define EL_Q 16    /* fractional bits of the int32 values inside a layer (Q15.16) */

/* Per output row: the fixed-point multipliers that turn the int32 sums over x and over h
 * into Q15.16 (real = m * 2^-shift), and the bias in Q15.16. */
typedef struct {
    int32_t mx, mh, bias;
    int8_t sx, sh;
} el_row_t;

"""

#: The matrix-vector kernel: int32 sums (el_matvec_q16), or int64 ones (el_matvec_q16_wide).
_MATVEC = r"""
/* {doc} */
EL_INLINE void {name}(int32_t *z, const int8_t *w, const el_row_t *rows, int blocks,
{pad}const int16_t *x, int nx, const int16_t *h, int nh)
{{
    for (int blk = 0; blk < blocks; ++blk) {{
        {acc} ax[EL_ROWS] = {{0}}, ah[EL_ROWS] = {{0}};
        for (int k = 0; k < nx; ++k, w += EL_ROWS) {{
            const int32_t v = x[k];
            for (int r = 0; r < EL_ROWS; ++r)
                ax[r] += (int32_t)w[r] * v;
        }}
        for (int k = 0; k < nh; ++k, w += EL_ROWS) {{
            const int32_t v = h[k];
            for (int r = 0; r < EL_ROWS; ++r)
                ah[r] += (int32_t)w[r] * v;
        }}
        for (int r = 0; r < EL_ROWS; ++r) {{
            const el_row_t *p = &rows[blk * EL_ROWS + r];
            z[blk * EL_ROWS + r] = el_sat32((int64_t)p->bias + {scale}(ax[r], p->mx, p->sx)
                                            + {scale}(ah[r], p->mh, p->sh));
        }}
    }}
}}
"""



def matvec_kernel(name: str, acc: str, scale: str, doc: str) -> str:
    return _MATVEC.format(name=name, pad=" " * len(f"EL_INLINE void {name}("), acc=acc, scale=scale, doc=doc)


#: Integer building blocks, in dependency order; a file holds the ones it uses (clang
#: warns about an unused static inline function).
_BLOCKS = [
    ("el_sat32", r"""
EL_INLINE int32_t el_sat32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}
"""),
    ("el_sat16", r"""
EL_INLINE int16_t el_sat16(int32_t v)
{
    return (int16_t)(v > INT16_MAX ? INT16_MAX : (v < INT16_MIN ? INT16_MIN : v));
}
"""),
    ("el_round_shift", r"""
/* v * 2^-shift rounded to nearest (shift >= 1; >> of a negative value is arithmetic on
 * gcc, clang and Arm compilers). */
EL_INLINE int64_t el_round_shift(int64_t v, int shift)
{
    return (v + ((int64_t)1 << (shift - 1))) >> shift;
}
"""),
    ("el_scale", r"""
/* acc * m * 2^-shift: one 32x32->64 multiply (SMULL on Cortex-M3). */
EL_INLINE int64_t el_scale(int32_t acc, int32_t m, int shift)
{
    return el_round_shift((int64_t)acc * m, shift);
}
"""),
    ("el_mul_q", r"""
/* a * b of two Q15.16 values, in Q15.16. */
EL_INLINE int32_t el_mul_q(int32_t a, int32_t b)
{
    return el_sat32(el_round_shift((int64_t)a * b, EL_Q));
}
"""),
    ("el_from_q", r"""
/* int16 with f fractional bits (0 <= f <= 16) <-> Q15.16. */
EL_INLINE int32_t el_from_q(int16_t v, int f)
{
    return (int32_t)v * ((int32_t)1 << (EL_Q - f));
}
"""),
    ("el_to_q", r"""
EL_INLINE int16_t el_to_q(int32_t v, int f)
{
    return el_sat16(f == EL_Q ? v : el_sat32(el_round_shift(v, EL_Q - f)));
}
"""),
    ("el_matvec_q16", matvec_kernel(
        "el_matvec_q16", "int32_t", "el_scale",
        "z[r] = bias[r] + (sum_k w[k][r] x[k]) * mx[r] + (sum_k w[nx + k][r] h[k]) * mh[r], in\n"
        " * Q15.16. int8 weights times int16 values summed in int32 (the exporter checked that no\n"
        " * row can overflow), EL_ROWS independent accumulators over contiguous weights.")),
    ("el_scale64", r"""
/* acc * m * 2^-shift for a 64-bit sum, split at 2^16 so both products fit int64 (|acc| <
 * 2^47 for up to 2^25 inputs, so |hi| < 2^31). The exporter guarantees shift > 16 for the
 * matrices that use it; m == 0 marks a padding row. */
EL_INLINE int64_t el_scale64(int64_t acc, int32_t m, int shift)
{
    if (m == 0)
        return 0;
    const int64_t hi = acc / 65536, lo = acc - hi * 65536; /* acc = hi * 2^16 + lo */
    return el_round_shift(hi * m, shift - 16) + el_round_shift(lo * m, shift);
}
"""),
    ("el_matvec_q16_wide", matvec_kernel(
        "el_matvec_q16_wide", "int64_t", "el_scale64",
        "el_matvec_q16 with int64 sums, for rows whose int32 sum could overflow (the exporter\n"
        " * picks it per matrix: sum|q| * 32768 >= 2^31).")),
]

_SIGMOID = r"""
/* sigmoid(x) - 1/2 for x = k/32, k = 0..512, in Q15.16: interpolated linearly (<= 1.2e-5). */
{table}
/* sigmoid of a Q15.16 value, in Q15.16: the table for |x|, sigmoid(-x) = 1 - sigmoid(x). */
EL_INLINE int32_t el_sigmoid_q(int32_t x)
{{
    const int32_t top = 16 << EL_Q;
    const int32_t a = x >= top ? top : (x <= -top ? top : (x < 0 ? -x : x));
    int32_t half;
    if (a >= top) {{
        half = el_sigmoid_table[{last}];
    }} else {{
        const int32_t k = a >> {step}, frac = a & ((1 << {step}) - 1);
        const int32_t lo = el_sigmoid_table[k], hi = el_sigmoid_table[k + 1];
        half = lo + (((hi - lo) * frac + (1 << ({step} - 1))) >> {step});
    }}
    return (1 << (EL_Q - 1)) + (x < 0 ? -half : half);
}}
"""

_TANH = r"""
/* tanh(x) = 2 sigmoid(2x) - 1, in Q15.16 (|x| >= 8 is +-1 to within 2e-7). */
EL_INLINE int32_t el_tanh_q(int32_t x)
{
    const int32_t top = 8 << EL_Q;
    const int32_t c = x > top ? top : (x < -top ? -top : x);
    return 2 * el_sigmoid_q(2 * c) - (1 << EL_Q);
}
"""

_HELPERS = {
    "hard_sigmoid": r"""
/* Keras 3: relu6(x + 3) / 6, in Q15.16 (1/6 as 43691 * 2^-18). */
EL_INLINE int32_t el_hard_sigmoid_q(int32_t x)
{
    const int64_t y = (int64_t)x + (3 << EL_Q);
    const int64_t c = y < 0 ? 0 : (y > (6 << EL_Q) ? (6 << EL_Q) : y);
    return (int32_t)el_round_shift(c * 43691, 18);
}
""",
    "relu": r"""
EL_INLINE int32_t el_relu_q(int32_t x)
{
    return x > 0 ? x : 0;
}
""",
    "softsign": r"""
/* x / (1 + |x|), in Q15.16: a 64-bit integer division. */
EL_INLINE int32_t el_softsign_q(int32_t x)
{
    const int64_t a = x < 0 ? -(int64_t)x : (int64_t)x;
    return (int32_t)(((int64_t)x * (1 << EL_Q)) / ((1 << EL_Q) + a));
}
""",
}

_SOFTMAX = r"""
/* 2^(-k/64), k = 0..64, in Q15.16. */
{table}
/* e^x for x <= 0 in Q15.16: x log2(e) = -(n + f), 2^-f from the table (interpolated), 2^-n
 * a shift. */
EL_INLINE int32_t el_exp_neg_q(int32_t x)
{{
    const int64_t t = -el_round_shift((int64_t)x * 94548, EL_Q); /* log2(e) in Q16: 94548 */
    if (t >= ((int64_t)31 << EL_Q))
        return 0;
    const int32_t n = (int32_t)(t >> EL_Q), f = (int32_t)(t & ((1 << EL_Q) - 1));
    const int32_t k = f >> 10, frac = f & 1023;
    const int32_t lo = el_exp2_table[k], hi = el_exp2_table[k + 1];
    const int32_t m = lo + (((hi - lo) * frac + 512) >> 10);
    return n == 0 ? m : (int32_t)el_round_shift(m, n);
}}

/* softmax of n Q15.16 logits, into Q15.16 probabilities (shifted by the largest logit). */
EL_INLINE void el_softmax_q(const int32_t *z, int32_t *y, int n)
{{
    int32_t top = z[0];
    int64_t sum = 0;
    for (int k = 1; k < n; ++k)
        top = z[k] > top ? z[k] : top;
    for (int k = 0; k < n; ++k) {{
        y[k] = el_exp_neg_q(el_sat32((int64_t)z[k] - top));
        sum += y[k];
    }}
    for (int k = 0; k < n; ++k)
        y[k] = (int32_t)((((int64_t)y[k] << EL_Q) + sum / 2) / sum);
}}
"""


# -- layers --------------------------------------------------------------------------

class QLayer:
    """What one layer contributes to the int16x8 file: weights, formats, its function."""

    def __init__(self, lay, index: int, width: int, f_in: int, f_out: int, f_c: int | None = None):
        self.layer, self.i, self.width, self.units = lay, index, width, lay.units
        self.pad = padded(lay.units)
        self.f_in, self.f_out, self.f_c = f_in, f_out, f_c
        self.fn = f"layer{index}_{lay.kind}"
        self.weights: list[str] = []  # C definitions
        self.flash = 0
        self.defines = [f"#define L{index}_IN {width}", f"#define L{index}_UNITS {self.units}",
                        f"#define L{index}_PAD {self.pad}", f"#define L{index}_IN_FRAC {f_in}  /* input: Q.{f_in} */",
                        f"#define L{index}_OUT_FRAC {f_out}  /* output / h: Q.{f_out} */"]
        if f_c is not None:
            self.defines.append(f"#define L{index}_C_FRAC {f_c}  /* c: Q.{f_c} */")

    def matrix(self, suffix: str, rows: np.ndarray, bias: np.ndarray | None, nx: int, f_x: int,
               f_h: int | None = None) -> str:
        """int8 rows (R, K) (the first nx columns multiply a vector of format f_x, the rest
        one of format f_h) + their el_row_t table; returns (kernel, its C arguments
        ``w, rows``): int32 sums, or int64 ones where a row's int32 sum could overflow."""
        q, scale = quantize_rows(rows)
        mags = np.abs(q.astype(np.int64))
        # int32 sums unless a row's sum could overflow them: sum|q| * 32768 >= 2^31
        wide = any(cols.size and int(cols.sum(axis=1).max()) * 32768 >= 2 ** 31
                   for cols in (mags[:, :nx], mags[:, nx:]))
        bias_q = q16(bias if bias is not None else np.zeros(len(rows)))
        lines, shifts = [], []
        for r in range(len(rows)):
            mx, sx = multiplier(float(scale[r]) * 2.0 ** (EL_Q - f_x))
            mh, sh = multiplier(float(scale[r]) * 2.0 ** (EL_Q - f_h)) if f_h is not None else (0, 1)
            lines.append(f"    {{{mx}, {mh}, {int(bias_q[r])}, {sx}, {sh}}},")
            shifts += [shift for m, shift in ((mx, sx), (mh, sh)) if m]
        w_name, rows_name = f"layer{self.i}_{suffix}", f"layer{self.i}_{suffix}_rows"
        self.weights.append(c_ints(w_name, "int8_t", blocked(q), per_line=16))
        self.weights.append(f"static const el_row_t {rows_name}[{len(rows)}] = {{\n" + "\n".join(lines) + "\n};\n")
        self.flash += q.size + len(rows) * 16  # sizeof(el_row_t): 3 int32 + 2 int8, padded to 16
        if wide and min(shifts, default=62) <= 16:  # el_scale64 splits the sum at 2^16
            raise UserError(f"layer {self.i} ({self.layer.kind}): weights too large for int16x8 C's 64-bit sums; "
                            "use --quantize int8 or float32")
        return ("el_matvec_q16_wide" if wide else "el_matvec_q16"), f"{w_name}, {rows_name}"

    @property
    def title(self) -> str:
        lay = self.layer
        acts = lay.activation + (f" / {lay.recurrent_activation}" if lay.kind in ("lstm", "gru") else "")
        extra = f", reset_after={lay.reset_after}" if lay.kind == "gru" else ""
        formats = f"in Q.{self.f_in}, out Q.{self.f_out}" + (f", c Q.{self.f_c}" if self.f_c is not None else "")
        return f"layer {self.i}: {lay.kind} {lay.name!r}, {self.width} -> {self.units}, {acts}{extra}; {formats}"


def lstm(layer: QLayer) -> str:
    lay, i = layer.layer, layer.i
    rows = np.concatenate([lay.weights["kernel"], lay.weights["recurrent_kernel"]], axis=0)
    order = [0, 1, 2, 3]
    bias = gate_bias(lay.weights["bias"], lay.units, order) if lay.use_bias else None
    kw, w = layer.matrix("w", gate_rows(rows, lay.units, order), bias, layer.width, layer.f_in, layer.f_out)
    g, a = lay.recurrent_activation, lay.activation
    return f"""
/* {layer.title}
 *   [i f g o] = W [x; h] + b      all four gates in one pass over [x; h], Q15.16
 *   i = {g}(i)   f = {g}(f)   o = {g}(o)   g = {a}(g)
 *   c = f * c + i * g             c kept as int16 Q.L{i}_C_FRAC
 *   h = o * {a}(c)                h kept as int16 Q.L{i}_OUT_FRAC
 */
static void {layer.fn}(const int16_t x[L{i}_IN], int16_t h[L{i}_UNITS], int16_t c[L{i}_UNITS])
{{
    int32_t z[4 * L{i}_PAD];
    const int32_t *zi = z, *zf = z + L{i}_PAD, *zg = z + 2 * L{i}_PAD, *zo = z + 3 * L{i}_PAD;
    {kw}(z, {w}, 4 * L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k) {{
        const int32_t gi = {act(g, "zi[k]")}, gf = {act(g, "zf[k]")};
        const int32_t gg = {act(a, "zg[k]")}, go = {act(g, "zo[k]")};
        const int32_t cn = el_sat32((int64_t)el_mul_q(gf, el_from_q(c[k], L{i}_C_FRAC)) + el_mul_q(gi, gg));
        c[k] = el_to_q(cn, L{i}_C_FRAC);
        h[k] = el_to_q(el_mul_q(go, {act(a, "cn")}), L{i}_OUT_FRAC);
    }}
}}
"""


def gru(layer: QLayer) -> str:
    """GRU as C: reset_after (the Keras default, reset gate after the recurrent product)
    and the original cell (reset gate on h before it) are two different functions."""
    return c_source.gru_variant(layer, _gru_reset_after, _gru_reset_before)


#: 1.0 in the Q15.16 gate values of the generated C.
_ONE = "(1 << EL_Q)"


def _gru_reset_after(layer: QLayer, kernel: np.ndarray, recurrent: np.ndarray, both: np.ndarray) -> str:
    lay, i, u, nx, fx, fh = layer.layer, layer.i, layer.layer.units, layer.width, layer.f_in, layer.f_out
    g, a, one = lay.recurrent_activation, lay.activation, _ONE
    bx, bh = (lay.weights["bias"][0], lay.weights["bias"][1]) if lay.use_bias else (None, None)
    kw_zr, w_zr = layer.matrix("w_zr", gate_rows(both, u, [0, 1]),
                               gate_bias(bx + bh, u, [0, 1]) if lay.use_bias else None, nx, fx, fh)
    kw_xh, w_xh = layer.matrix("w_xh", gate_rows(kernel, u, [2]),
                               gate_bias(bx, u, [2]) if lay.use_bias else None, nx, fx)
    kw_hh, w_hh = layer.matrix("w_hh", gate_rows(recurrent, u, [2]),
                               gate_bias(bh, u, [2]) if lay.use_bias else None, u, fh)
    return f"""
/* {layer.title}
 *   [z r] = W_zr [x; h] + b_zr    update and reset gates in one pass over [x; h], Q15.16
 *   z = {g}(z)   r = {g}(r)
 *   n = {a}(W_h x + b_xh + r * (U_h h + b_hh))    reset applied after the product
 *   h = z * h + (1 - z) * n       h kept as int16 Q.L{i}_OUT_FRAC
 */
static void {layer.fn}(const int16_t x[L{i}_IN], int16_t h[L{i}_UNITS])
{{
    int32_t zr[2 * L{i}_PAD], xn[L{i}_PAD], hn[L{i}_PAD];
    const int32_t *z = zr, *r = zr + L{i}_PAD;
    {kw_zr}(zr, {w_zr}, 2 * L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    {kw_xh}(xn, {w_xh}, L{i}_PAD / EL_ROWS, x, L{i}_IN, 0, 0);
    {kw_hh}(hn, {w_hh}, L{i}_PAD / EL_ROWS, h, L{i}_UNITS, 0, 0);
    for (int k = 0; k < L{i}_UNITS; ++k) {{
        const int32_t gz = {act(g, "z[k]")}, gr = {act(g, "r[k]")};
        const int32_t n = {act(a, "el_sat32((int64_t)xn[k] + el_mul_q(gr, hn[k]))")};
        const int32_t hk = el_from_q(h[k], L{i}_OUT_FRAC);
        h[k] = el_to_q(el_sat32((int64_t)el_mul_q(gz, hk) + el_mul_q({one} - gz, n)), L{i}_OUT_FRAC);
    }}
}}
"""


def _gru_reset_before(layer: QLayer, both: np.ndarray) -> str:
    lay, i, u, nx, fx, fh = layer.layer, layer.i, layer.layer.units, layer.width, layer.f_in, layer.f_out
    g, a, one = lay.recurrent_activation, lay.activation, _ONE
    b = lay.weights["bias"] if lay.use_bias else None
    kw_zr, w_zr = layer.matrix("w_zr", gate_rows(both, u, [0, 1]),
                               gate_bias(b, u, [0, 1]) if b is not None else None, nx, fx, fh)
    kw_n, w_n = layer.matrix("w_n", gate_rows(both, u, [2]), gate_bias(b, u, [2]) if b is not None else None,
                             nx, fx, fh)
    return f"""
/* {layer.title}
 *   [z r] = W_zr [x; h] + b_zr    update and reset gates in one pass over [x; h], Q15.16
 *   z = {g}(z)   r = {g}(r)
 *   n = {a}(W_n [x; r * h] + b_n)    reset applied to h before the product (r * h as int16)
 *   h = z * h + (1 - z) * n       h kept as int16 Q.L{i}_OUT_FRAC
 */
static void {layer.fn}(const int16_t x[L{i}_IN], int16_t h[L{i}_UNITS])
{{
    int32_t zr[2 * L{i}_PAD], n[L{i}_PAD];
    int16_t rh[L{i}_UNITS];
    int32_t *z = zr, *r = zr + L{i}_PAD;
    {kw_zr}(zr, {w_zr}, 2 * L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k) {{
        z[k] = {act(g, "z[k]")};
        r[k] = {act(g, "r[k]")};
        rh[k] = el_to_q(el_mul_q(r[k], el_from_q(h[k], L{i}_OUT_FRAC)), L{i}_OUT_FRAC);
    }}
    {kw_n}(n, {w_n}, L{i}_PAD / EL_ROWS, x, L{i}_IN, rh, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k) {{
        const int32_t hk = el_from_q(h[k], L{i}_OUT_FRAC);
        h[k] = el_to_q(el_sat32((int64_t)el_mul_q(z[k], hk) + el_mul_q({one} - z[k], {act(a, "n[k]")})),
                       L{i}_OUT_FRAC);
    }}
}}
"""


def simple_rnn(layer: QLayer) -> str:
    lay, i = layer.layer, layer.i
    rows = np.concatenate([lay.weights["kernel"], lay.weights["recurrent_kernel"]], axis=0)
    bias = gate_bias(lay.weights["bias"], lay.units, [0]) if lay.use_bias else None
    kw, w = layer.matrix("w", gate_rows(rows, lay.units, [0]), bias, layer.width, layer.f_in, layer.f_out)
    return f"""
/* {layer.title}
 *   h = {lay.activation}(W [x; h] + b)     h kept as int16 Q.L{i}_OUT_FRAC
 */
static void {layer.fn}(const int16_t x[L{i}_IN], int16_t h[L{i}_UNITS])
{{
    int32_t z[L{i}_PAD];
    {kw}(z, {w}, L{i}_PAD / EL_ROWS, x, L{i}_IN, h, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k)
        h[k] = el_to_q({act(lay.activation, "z[k]")}, L{i}_OUT_FRAC);
}}
"""


def dense(layer: QLayer) -> str:
    lay, i = layer.layer, layer.i
    bias = gate_bias(lay.weights["bias"], lay.units, [0]) if lay.use_bias else None
    kw, w = layer.matrix("w", gate_rows(lay.weights["kernel"], lay.units, [0]), bias, layer.width, layer.f_in)
    head = f"""
/* {layer.title} (applied to every step)
 *   y = {lay.activation}(W x + b)     y as int16 Q.L{i}_OUT_FRAC
 */
static void {layer.fn}(const int16_t x[L{i}_IN], int16_t y[L{i}_UNITS])
{{
    int32_t z[L{i}_PAD];
    {kw}(z, {w}, L{i}_PAD / EL_ROWS, x, L{i}_IN, 0, 0);
"""
    if lay.activation == "softmax":
        return head + f"""    el_softmax_q(z, z, L{i}_UNITS);
    for (int k = 0; k < L{i}_UNITS; ++k)
        y[k] = el_to_q(z[k], L{i}_OUT_FRAC);
}}
"""
    return head + f"""    for (int k = 0; k < L{i}_UNITS; ++k)
        y[k] = el_to_q({act(lay.activation, "z[k]")}, L{i}_OUT_FRAC);
}}
"""


def affine(layer: QLayer) -> str:
    i = layer.i
    scale, offset = layer.layer.weights["scale"], layer.layer.weights["offset"]
    offset_q = q16(offset)
    lines = []
    for k in range(layer.units):
        m, s = multiplier(float(scale[k]) * 2.0 ** (EL_Q - layer.f_in))
        lines.append(f"    {{{m}, 0, {int(offset_q[k])}, {s}, 1}},")
    name = f"layer{i}_rows"
    layer.weights.append(f"static const el_row_t {name}[{layer.units}] = {{\n" + "\n".join(lines) + "\n};\n")
    layer.flash += 16 * layer.units
    return f"""
/* {layer.title}
 *   y = x * scale + offset      per feature (scale as a fixed-point multiplier, offset Q15.16)
 */
static void {layer.fn}(const int16_t x[L{i}_IN], int16_t y[L{i}_UNITS])
{{
    for (int k = 0; k < L{i}_UNITS; ++k)
        y[k] = el_to_q(el_sat32((int64_t){name}[k].bias + el_scale(x[k], {name}[k].mx, {name}[k].sx)),
                       L{i}_OUT_FRAC);
}}
"""


#: Layer kind -> the function that writes its integer-only C function.
LAYER_WRITERS = {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn, "dense": dense, "affine": affine}


# -- the two files -------------------------------------------------------------------

def _helpers(spec: ModelSpec, functions: str) -> str:
    """The building blocks ``functions`` (the layers' C) use, and only those (clang warns
    about unused static functions)."""
    used = set()
    for lay in spec.layers:
        if lay.kind != "affine":
            used.add(lay.activation)
            if lay.kind in ("lstm", "gru"):
                used.add(lay.recurrent_activation)
    blocks = list(_BLOCKS)
    if used & {"sigmoid", "tanh"}:
        blocks.append(("el_sigmoid_q", _SIGMOID.format(
            table=c_ints("el_sigmoid_table", "uint16_t", sigmoid_table()), last=SIGMOID_ENTRIES - 1,
            step=SIGMOID_STEP_BITS)))
    blocks.append(("el_tanh_q", _TANH))
    blocks += [(f"el_{name}_q", text) for name, text in _HELPERS.items()]
    blocks.append(("el_softmax_q", _SOFTMAX.format(table=c_ints("el_exp2_table", "int32_t", exp2_table()))))
    # A block is needed when code after it (the layers, or a needed block) calls it.
    needed, text = [], functions
    for name, block in reversed(blocks):
        if re.search(rf"\b{name}\(", text):
            needed.append(block)
            text += block
    return _MACROS + "".join("\n" + block.strip("\n") + "\n" for block in reversed(needed))


def _calibration_sequences(spec: ModelSpec, data) -> tuple[np.ndarray, bool]:
    if data is None:
        return calibration_data.synthetic_sequences(spec), True
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[-1] != spec.input_size or not all_finite(data):
        raise UserError(f"calibration data must be finite (sequences, steps, {spec.input_size}), not {data.shape}")
    return data, False


def generate(spec: ModelSpec, name: str, calibration=None, synthetic: bool = False,
             **extra) -> tuple[str, str, dict]:
    """(header text, source text, description) of ``spec`` as integer-only C named ``name``;
    value formats from the float reference run over ``calibration`` (N, T, F)."""
    if not is_c_identifier(name):
        raise UserError(f"--name {name!r} is not a C identifier (letters, digits and _, not starting with a digit)")
    for i, lay in enumerate(spec.layers):
        if lay.kind not in LAYER_WRITERS:
            raise UserError(f"layer {i} ({lay.kind}): the int16x8 C exporter cannot express this layer kind")
    xs, was_synthetic = _calibration_sequences(spec, calibration)
    top = value_ranges(spec, xs)
    f_in = frac_bits(top["in"], False)
    layers, width, f_x = [], spec.input_size, f_in
    for i, lay in enumerate(spec.layers):
        f_out = frac_bits(top[f"y{i}"], output_bounded(lay))
        f_c = frac_bits(top[f"c{i}"], False) if lay.kind == "lstm" else None
        layers.append(QLayer(lay, i, width, f_x, f_out, f_c))
        width, f_x = lay.units, f_out
    functions = [LAYER_WRITERS[layer.layer.kind](layer) for layer in layers]
    f_outputs = layers[-1].f_out
    flash = sum(layer.flash for layer in layers)
    states = StepInterface.from_spec(spec).states
    frac = {s.name: (layers[s.layer].f_c if s.kind == "c" else layers[s.layer].f_out) for s in states}
    stats = spec.stats()
    summary = c_source._summary(spec, layers, "int16x8")
    usage = (f" *     {name}_step_q(&s, in, out);  one timestep, integers only: int16 in / out\n"
             f" *     {name}_step(&s, in, out);    the same with float in / out (not with -D{name}_NO_FLOAT_API)\n")
    header = c_source._header(spec, name, summary, states, stats, flash, "int16_t", frac, usage,
                              _api(name, f_in, f_outputs))
    source = _source(spec, name, summary, layers, functions)
    desc = describe(spec, "c", "int16x8", **extra)
    in_step, out_step = 2.0 ** -f_in, 2.0 ** -f_outputs
    desc["calibration"] = {"sequences": int(len(xs)), "synthetic": bool(synthetic or was_synthetic),
                           "input_range": [-32768 * in_step, 32767 * in_step],
                           "output_range": [-32768 * out_step, 32767 * out_step]}
    desc["c"] = {
        "name": name,
        "header": f"{name}.h",
        "flash_bytes": flash,
        "state_bytes": 2 * stats["state_floats"],
        "state_fields": [{"name": s.name, "size": s.size, "dtype": "int16", "frac_bits": frac[s.name]}
                         for s in states],
        "input_frac_bits": f_in,
        "output_frac_bits": f_outputs,
        "source_sha256": source_hash(header, source),
    }
    return header, source + _description_block(desc), desc


def _api(name: str, f_in: int, f_out: int) -> str:
    """What int16x8 adds to NAME.h: the scales, the integer step, the float helpers."""
    return f"""void {name}_step_q({name}_state_t *s, const int16_t in[{name}_INPUTS], int16_t out[{name}_OUTPUTS]);

/* real = q * scale: symmetric int16, a power of two (input Q.{f_in}, output Q.{f_out}) */
#define {name}_INPUT_SCALE   {c_float(2.0 ** -f_in)}
#define {name}_OUTPUT_SCALE  {c_float(2.0 ** -f_out)}

#ifndef {name}_NO_FLOAT_API
void {name}_step({name}_state_t *s, const float in[{name}_INPUTS], float out[{name}_OUTPUTS]);

/* float -> int16 input: rounded to nearest, saturated (NaN -> 0). */
static inline int16_t {name}_quantize_input(float x)
{{
    const float q = x / {name}_INPUT_SCALE;
    if (q != q)
        return 0;
    if (q >= 32767.0f)
        return INT16_MAX;
    if (q <= -32768.0f)
        return INT16_MIN;
    return (int16_t)(q >= 0.0f ? q + 0.5f : q - 0.5f);
}}

static inline float {name}_dequantize_output(int16_t q)
{{
    return (float)q * {name}_OUTPUT_SCALE;
}}
#endif
"""


def _source(spec, name, summary, layers, functions) -> str:
    comment = "\n".join(f" * {line}" if line else " *" for line in summary)
    defines = "\n".join(d for layer in layers for d in layer.defines)
    weights = "".join(w for layer in layers for w in layer.weights)
    return f"""/* {name}.c - generated by edgelstm {__version__}; do not edit.
 *
{comment}
 *
 * Portable C99, integer only in {name}_step_q (no float, no double, no libm): int8 weights,
 * int16 activations and state, int32 sums, 64-bit products for rescaling. No malloc, no
 * globals holding state.
 */
#include "{name}.h"

#include <string.h>
{_helpers(spec, "".join(functions))}
/* -- sizes and value formats (Q.f: real = q * 2^-f) ------------------------------------ */
{defines}

/* -- weights: gate rows in blocks of EL_ROWS, stored [block][k][row]; per-row scales ---- */
{"".join(weights)}
/* -- layers ------------------------------------------------------------------------- */
{"".join(functions)}
/* -- API ---------------------------------------------------------------------------- */
void {name}_reset({name}_state_t *s)
{{
    memset(s, 0, sizeof *s);
}}

void {name}_step_q({name}_state_t *s, const int16_t in[{name}_INPUTS], int16_t out[{name}_OUTPUTS])
{{
{c_source.step_body(name, layers, "int16_t")}
}}

#ifndef {name}_NO_FLOAT_API
void {name}_step({name}_state_t *s, const float in[{name}_INPUTS], float out[{name}_OUTPUTS])
{{
    int16_t qin[{name}_INPUTS], qout[{name}_OUTPUTS];
    for (int k = 0; k < {name}_INPUTS; ++k)
        qin[k] = {name}_quantize_input(in[k]);
    {name}_step_q(s, qin, qout);
    for (int k = 0; k < {name}_OUTPUTS; ++k)
        out[k] = {name}_dequantize_output(qout[k]);
}}
#endif
"""
