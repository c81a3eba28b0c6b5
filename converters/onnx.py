"""ModelSpec -> ONNX, with the standard ``LSTM`` / ``GRU`` / ``RNN`` operators.

Built node by node with ``onnx.helper`` from the spec (no tf2onnx: it turns Keras 3
recurrent layers into ``Loop`` graphs, see docs/toolchain.md). One small function per layer
kind, found through ``LAYERS``.

Inside the graph every tensor between layers is time-major ``[T, batch, features]``,
the layout of the ONNX recurrent ops: ``T`` is 1 in step mode, and the ``Y_h`` output of
a recurrent op (``[num_directions=1, batch, hidden]``) is then already the next layer's
``X`` (``[seq=1, batch, input]``). Dense and affine layers broadcast over the leading
axis, so step and sequence graphs share every layer function.

``import onnx`` below is the top-level onnx package: absolute imports make the name of
this module (``edgelstm.converters.onnx``) irrelevant.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelstm.core.artifact import StepInterface, describe
from edgelstm.core.errors import MissingExtraError, UserError
from edgelstm.core.spec import LayerSpec, ModelSpec

QUANTIZATIONS = ("float32", "dynamic")
MODES = ("step", "sequence")

#: Opset 17: every op used here has had its current meaning since opset 14 (LSTM/GRU/RNN-14;
#: Squeeze/Unsqueeze take axes as an input since 13; newer versions only add types such as
#: bfloat16), and 17 (IR version 8) loads in every onnxruntime since 1.12 (2022), including
#: the older releases still found on boards; newer opsets would only narrow that.
DEFAULT_OPSET = 17
#: Below 13, Squeeze/Unsqueeze take ``axes`` as an attribute; this builder emits inputs.
MIN_OPSET = 13
#: The newest opset tested (onnx 1.23 + onnxruntime 1.32 check and run 13..28), capped by
#: what the installed onnx package knows (its checker validates the model).
MAX_OPSET = min(28, onnx.defs.onnx_opset_version())

#: Key of the edgelstm description in the model's ``metadata_props``.
METADATA_KEY = "edgelstm"
CONTRIB_NOTE = ("uses ONNX Runtime contrib ops (com.microsoft domain, e.g. DynamicQuantizeLSTM); "
                "it runs on onnxruntime and may not load in other ONNX engines")

#: Keras 3 activation -> (ONNX recurrent-op activation name, alpha, beta); alpha/beta None
#: when the function takes none. hard_sigmoid in Keras 3 is relu6(x + 3) / 6, i.e.
#: clip(x / 6 + 0.5, 0, 1); linear is Affine(1, 0).
RNN_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "softsign": ("Softsign", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "linear": ("Affine", 1.0, 0.0),
}
#: Dense-layer activation -> ONNX op (softmax over the last axis).
DENSE_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}
#: Keras fused-gate block order -> ONNX block order (indices into the Keras blocks).
GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (0, 1, 2), "simple_rnn": (0,)}  # LSTM i,f,c,o -> i,o,f,c
ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}


@dataclass
class _Graph:
    """Nodes, initializers and graph I/O collected while walking the layers."""

    mode: str
    interface: StepInterface
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    _consts: dict = field(default_factory=dict)

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def axes(self, *axes: int) -> str:
        """A shared int64 axes initializer for Squeeze/Unsqueeze."""
        key = "axes_" + "_".join(str(a) for a in axes)
        if key not in self._consts:
            self._consts[key] = self.const(key, np.array(axes, np.int64))
        return self._consts[key]

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))


def _gates(w: np.ndarray, kind: str) -> np.ndarray:
    """Keras (in, gates*U) or (gates*U,) -> ONNX block order along the gates axis."""
    blocks = np.split(w, len(GATE_ORDER[kind]), axis=-1)
    return np.concatenate([blocks[k] for k in GATE_ORDER[kind]], axis=-1)


def _activations(names: list[str]) -> dict:
    """The activations / activation_alpha / activation_beta attributes of a recurrent op."""
    acts, alphas, betas = [], [], []
    for name in names:
        onnx_name, alpha, beta = RNN_ACTIVATIONS[name]
        acts.append(onnx_name)
        if alpha is not None:
            alphas.append(alpha)
            betas.append(beta)
    attrs = {"activations": acts}
    if alphas:
        # Consumed in the order of the activations that take parameters (ONNX spec).
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    return attrs


def _recurrent(g: _Graph, i: int, layer: LayerSpec, x: str, activations: list[str], **attrs) -> str:
    """Shared by lstm/gru/simple_rnn: W, R, B in ONNX layout, state I/O, the op itself."""
    kind, units = layer.kind, layer.units
    prefix = f"layer{i}_{kind}"  # node and weight names; the graph I/O is named by StepInterface
    w = g.const(f"{prefix}_W", _gates(layer.weights["kernel"], kind).T[None])  # [1, G*U, in]
    r = g.const(f"{prefix}_R", _gates(layer.weights["recurrent_kernel"], kind).T[None])  # [1, G*U, U]
    b = ""
    if layer.use_bias:
        bias = layer.weights["bias"]
        if kind == "gru" and layer.reset_after:
            wb, rb = bias[0], bias[1]  # input bias, recurrent bias (inside r * (...))
        else:
            wb, rb = bias, np.zeros_like(bias)
        b = g.const(f"{prefix}_B", np.concatenate([_gates(wb, kind), _gates(rb, kind)])[None])

    state_in, state_out = [], []
    if g.mode == "step":
        for s in g.interface.layer_states(i):  # h, then c for LSTM
            g.inputs.append(helper.make_tensor_value_info(s.name, TensorProto.FLOAT, ["batch", units]))
            g.outputs.append(helper.make_tensor_value_info(s.output, TensorProto.FLOAT, ["batch", units]))
            g.node("Unsqueeze", [s.name, g.axes(0)], [f"{prefix}_initial_{s.kind}"], f"{prefix}_unsqueeze_{s.kind}")
            state_in.append(f"{prefix}_initial_{s.kind}")
            state_out.append(s.output)
    # Inputs: X, W, R, B, sequence_lens, initial_h[, initial_c]; sequence mode starts from
    # zero state (initial_h omitted means zeros).
    inputs = [x, w, r, b, ""] + state_in
    while inputs and inputs[-1] == "":
        inputs.pop()
    y_seq = f"{prefix}_Y" if g.mode == "sequence" and layer.return_sequences else ""
    outputs = [y_seq, f"{prefix}_Y_h"] + ([f"{prefix}_Y_c"] if kind == "lstm" else [])
    g.node(ONNX_OP[kind], inputs, outputs, prefix, hidden_size=units, direction="forward",
           **_activations(activations), **attrs)
    for s, out in zip(("h", "c"), state_out):  # the op's Y_h, Y_c outputs
        g.node("Squeeze", [f"{prefix}_Y_{s}", g.axes(0)], [out], f"{prefix}_squeeze_{s}")
    if y_seq:
        # Y: [T, num_directions=1, batch, U] -> [T, batch, U]
        g.node("Squeeze", [y_seq, g.axes(1)], [f"{prefix}_out"], f"{prefix}_squeeze_Y")
        return f"{prefix}_out"
    # Y_h: [1, batch, U], i.e. a one-step sequence for whatever follows.
    return f"{prefix}_Y_h"


def lstm(g: _Graph, i: int, layer: LayerSpec, x: str) -> str:
    # ONNX activations (f, g, h): f for the gates, g for the candidate, h for the output.
    act, gate = layer.activation, layer.recurrent_activation
    return _recurrent(g, i, layer, x, [gate, act, act], input_forget=0)


def gru(g: _Graph, i: int, layer: LayerSpec, x: str) -> str:
    # reset_after=True (Keras default) applies the reset gate after the recurrent matmul
    # and its bias: ONNX linear_before_reset=1. reset_after=False: before, with Rb = 0.
    return _recurrent(g, i, layer, x, [layer.recurrent_activation, layer.activation],
                      linear_before_reset=int(bool(layer.reset_after)))


def simple_rnn(g: _Graph, i: int, layer: LayerSpec, x: str) -> str:
    return _recurrent(g, i, layer, x, [layer.activation])


def dense(g: _Graph, i: int, layer: LayerSpec, x: str) -> str:
    prefix = f"layer{i}_dense"
    out = f"{prefix}_matmul"
    g.node("MatMul", [x, g.const(f"{prefix}_kernel", layer.weights["kernel"])], [out], out)
    if layer.use_bias:
        g.node("Add", [out, g.const(f"{prefix}_bias", layer.weights["bias"])], [f"{prefix}_add"], f"{prefix}_add")
        out = f"{prefix}_add"
    if layer.activation != "linear":
        op = DENSE_OPS[layer.activation]
        attrs = {"axis": -1} if op == "Softmax" else {}
        g.node(op, [out], [f"{prefix}_{op.lower()}"], f"{prefix}_{op.lower()}", **attrs)
        out = f"{prefix}_{op.lower()}"
    return out


def affine(g: _Graph, i: int, layer: LayerSpec, x: str) -> str:
    prefix = f"layer{i}_affine"
    g.node("Mul", [x, g.const(f"{prefix}_scale", layer.weights["scale"])], [f"{prefix}_mul"], f"{prefix}_mul")
    g.node("Add", [f"{prefix}_mul", g.const(f"{prefix}_offset", layer.weights["offset"])], [f"{prefix}_add"],
           f"{prefix}_add")
    return f"{prefix}_add"


LAYERS = {"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn, "dense": dense, "affine": affine}


def check_opset(opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise UserError(f"--opset {opset} is not supported by the ONNX exporter; choose {MIN_OPSET}..{MAX_OPSET} "
                        f"(default {DEFAULT_OPSET})")
    return int(opset)


def build_model(spec: ModelSpec, mode: str = "step", opset: int = DEFAULT_OPSET,
                description: dict | None = None) -> onnx.ModelProto:
    """The float32 ONNX model of ``spec`` (step or sequence graph)."""
    if mode not in MODES:
        raise UserError(f"unknown ONNX mode {mode!r}; choose from {', '.join(MODES)}")
    opset = check_opset(opset)
    io = StepInterface.from_spec(spec, mode)
    g = _Graph(mode, io)
    out_shape = ["batch", io.output_size]
    if mode == "step":
        g.inputs.append(helper.make_tensor_value_info(io.input, TensorProto.FLOAT, ["batch", io.input_size]))
        g.node("Unsqueeze", [io.input, g.axes(0)], ["x_time_major"], "x_time_major")
    else:
        g.inputs.append(helper.make_tensor_value_info(io.input, TensorProto.FLOAT, ["batch", "seq", io.input_size]))
        g.node("Transpose", [io.input], ["x_time_major"], "x_time_major", perm=[1, 0, 2])
        if spec.returns_sequences:
            out_shape = ["batch", "seq", io.output_size]
    x = "x_time_major"
    for i, layer in enumerate(spec.layers):
        x = LAYERS[layer.kind](g, i, layer, x)
    if len(out_shape) == 3:
        g.node("Transpose", [x], [io.output], "y_batch_major", perm=[1, 0, 2])
    else:
        # Step mode, or a sequence model whose last recurrent layer returns only Y_h.
        g.node("Squeeze", [x, g.axes(0)], [io.output], "y_squeeze")
    g.outputs.insert(0, helper.make_tensor_value_info(io.output, TensorProto.FLOAT, out_shape))

    graph = helper.make_graph(g.nodes, spec.name or "model", g.inputs, g.outputs, g.initializers)
    opset_ids = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opset_ids, producer_name="edgelstm",
                              producer_version=str((description or {}).get("edgelstm_version", "")))
    # The oldest IR version that carries this opset, so older onnxruntime builds load it
    # (onnx's default is its newest IR version).
    model.ir_version = helper.find_min_ir_version_for(opset_ids)
    model.doc_string = f"edgelstm {mode} model {spec.name!r}"
    if description is not None:
        set_description(model, description)
    return model


def set_description(model: onnx.ModelProto, description: dict) -> None:
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: json.dumps(description, sort_keys=True)})


def check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug in this exporter, not a user error
        raise RuntimeError(f"the exported ONNX model does not pass onnx.checker: {exc}") from exc


def export(spec: ModelSpec, out_dir: Path, options, warn) -> tuple[list[Path], dict]:
    opset = check_opset(options.opset)
    mode, quantize = options.mode, options.quantize
    seq_len = (options.seq_len or spec.seq_len) if mode == "sequence" else None
    path = Path(out_dir) / f"{options.basename}.onnx"

    float_desc = describe(spec, "onnx", "float32", mode, seq_len, opset=opset, contrib_ops=False)
    model = build_model(spec, mode, opset, float_desc)
    check(model)
    if quantize == "float32":
        onnx.save_model(model, path)
        return [path], float_desc

    model = _quantize_dynamic(model)
    ops = sorted({n.op_type for n in model.graph.node})
    desc = describe(spec, "onnx", quantize, mode, seq_len, opset=opset,
                    contrib_ops=any(n.domain not in ("", "ai.onnx") for n in model.graph.node),
                    onnx_ops=ops)
    if desc["contrib_ops"]:
        desc["engine_note"] = CONTRIB_NOTE
    if any(op.startswith("DynamicQuantize") for op in ops):
        # One scale per call for the whole batch: streams stepped together share it.
        desc["batch_note"] = ("activations are quantized with one scale per call over the whole batch, so a "
                              "stream's output can differ slightly (within the quantization error) when other "
                              "streams are stepped with it")
    kept = sorted({ONNX_OP[layer.kind] for layer in spec.layers if layer.kind in ("gru", "simple_rnn")})
    if kept:
        desc["quantize_note"] = (f"{', '.join(kept)}: onnxruntime has no dynamically quantized kernel, "
                                 "kept in float32 (only LSTM and MatMul weights are int8)")
        warn(f"note: {desc['quantize_note']}")
    set_description(model, desc)
    check(model)
    onnx.save_model(model, path)
    return [path], desc


def _quantize_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """int8 weights (7-bit range), activations quantized on the fly (ONNX Runtime's advice for RNNs).

    LSTM becomes the contrib op DynamicQuantizeLSTM and MatMul becomes
    MatMulInteger / DynamicQuantizeMatMul; GRU and RNN have no quantized kernel in
    onnxruntime and stay float.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise MissingExtraError("onnxruntime", "onnxruntime", "--quantize dynamic") from None
    with tempfile.TemporaryDirectory(prefix="edgelstm-onnx-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "dynamic.onnx"
        onnx.save_model(model, src)
        # The quantizer logs an advice to run shape-inference pre-processing on the root
        # logger; our graphs carry every shape already.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            # reduce_range: 7-bit weights. On x86 CPUs without VNNI (AVX2, AVX-512
            # before Cascade Lake) onnxruntime's u8 x s8 kernel adds pairs of products
            # in int16 and saturates with full 8-bit weights: the same file then answers
            # differently per host, and the verification measured on one host does not
            # hold on another (the test zoo's LSTM: max error 0.023 on an AVX2 host, under
            # 0.01 on a VNNI host; 0.0003 with 7 bits). The cost, measured on trained
            # LSTMs (docs/quantization.md, section 8): up to 3 held-out ACSF1 cases in 100.
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, reduce_range=True)
        finally:
            logging.disable(previous)
        quantized = onnx.load_model(dst)
    quantized.producer_name, quantized.producer_version = model.producer_name, model.producer_version
    # The oldest IR version for the (possibly raised) standard opset, as for float models.
    standard = [o for o in quantized.opset_import if o.domain in ("", "ai.onnx")]
    quantized.ir_version = helper.find_min_ir_version_for(standard)
    return quantized
