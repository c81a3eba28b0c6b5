"""An int16 LSTM cell state inside an int8 TFLite step graph.

The full-integer int8 graph the converter writes rounds every tensor to 256 levels,
the LSTM cell state ``c`` too, and ``c`` is the one tensor that integrates: each step
starts from the rounded state of the last, so its rounding builds up along a stream
(docs/quantization.md, sections 1 and 12). TFLite's own fused integer LSTM kernel keeps
``c`` in int16 for that reason; this module gives the traced step graph the same: after
conversion it retypes the cell-state chain

    c_prev --MUL(f, .)--> f*c --ADD(., i*g)--> c_next --TANH--> tanh(c)

to int16 (symmetric, zero point 0, over the largest |value| the int8 calibration gave
any tensor of the chain), turns the gates that enter the two MULs (``f``, ``i``, ``g``)
to int16 with a QUANTIZE each, and brings ``tanh(c)`` back to its int8 tensor with one
more QUANTIZE. Everything else stays int8 (weights, gates, ``h``, input, output), so the
file grows by a few tensors and ops, and the state a runtime carries is ``h`` int8, ``c``
int16. LiteRT and TFLite Micro both run int16 MUL / ADD / TANH and int8<->int16 QUANTIZE.

Works on the converted flatbuffer through TensorFlow's generated schema classes, so it
runs where the converter runs (host side, the converter's child process).
"""

from __future__ import annotations

import numpy as np

#: int16 steps of a symmetric range [-m, m]; TANH's int16 output is on [-1, 1) in 1/32768.
INT16_MAX = 32767
TANH_INT16_SCALE = 1.0 / 32768


def widen_cell_state(data: bytes) -> tuple[bytes, int]:
    """(new flatbuffer, number of LSTM cell-state chains widened) for a converted int8 graph.

    A chain starts at every graph input that a MUL takes and whose product is summed by
    an ADD whose result feeds a TANH (the LSTM state update ``f*c + i*g``; a GRU's
    ``z*h + (1-z)*n`` feeds no TANH) and follows the result into the next step's MUL
    (sequence mode unrolls the steps)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = _Graph(schema, model)
    chains = 0
    for start in [int(i) for i in model.subgraphs[0].inputs]:
        chains += graph.widen_chain(start)
    if not chains:
        return data, 0
    graph.finish()
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), chains


class _Graph:
    """The first subgraph, with the edits to make and where to put the new ops."""

    def __init__(self, schema, model):
        self.s, self.model = schema, model
        self.sg = model.subgraphs[0]
        self.tensors = self.sg.tensors
        self.producer = {int(o): op for op in self.sg.operators for o in op.outputs}
        self.consumers: dict[int, list] = {}
        for op in self.sg.operators:
            for i in op.inputs:
                self.consumers.setdefault(int(i), []).append(op)
        self.before: dict[int, list] = {}  # id(op) -> new ops to run before it
        self.after: dict[int, list] = {}

    def code(self, op) -> int:
        oc = self.model.operatorCodes[op.opcodeIndex]
        return max(oc.builtinCode, oc.deprecatedBuiltinCode)

    def users(self, tensor: int, code: int) -> list:
        return [op for op in self.consumers.get(tensor, []) if self.code(op) == code]

    def update_step(self, c_prev: int):
        """(MUL f*c, ADD, TANH, MUL i*g) of the LSTM state update that reads ``c_prev``, or None."""
        ops = self.s.BuiltinOperator
        for mul_fc in self.users(c_prev, ops.MUL):
            adds = self.users(int(mul_fc.outputs[0]), ops.ADD)
            if len(adds) != 1:
                continue
            c_next = int(adds[0].outputs[0])
            tanhs = self.users(c_next, ops.TANH)
            other = [int(i) for i in adds[0].inputs if int(i) != int(mul_fc.outputs[0])]
            mul_ig = self.producer.get(other[0]) if len(other) == 1 else None
            if tanhs and mul_ig is not None and self.code(mul_ig) == ops.MUL:
                return mul_fc, adds[0], tanhs[0], mul_ig
        return None

    def widen_chain(self, c: int) -> int:
        """Widen every step of the chain that starts at tensor ``c``; 1 if there was one."""
        steps = []
        while self.tensors[c].type == self.s.TensorType.INT8:
            found = self.update_step(c)
            if found is None:
                break
            steps.append((c, found))
            c = int(found[1].outputs[0])
        if not steps:
            return 0
        chain = [c_prev for c_prev, _ in steps] + [c]
        chain += [int(found[0].outputs[0]) for _, found in steps]
        scale = max(self.max_abs(t) for t in chain) / INT16_MAX
        for t in chain:
            self.retype(t, scale)
        for _, (mul_fc, add, tanh, mul_ig) in steps:
            self.widen_step(mul_fc, add, tanh, mul_ig)
        return 1

    def widen_step(self, mul_fc, add, tanh, mul_ig) -> None:
        i_g = int(mul_ig.outputs[0])
        self.retype(i_g, self.max_abs(i_g) / INT16_MAX)
        for mul in (mul_fc, mul_ig):  # int8 gates into the int16 products
            mul.inputs = np.array([self.as_int16(int(i), mul) for i in mul.inputs], np.int32)
        add.builtinOptions.potScaleInt16 = False  # general int16 scales, not powers of two
        tanh_c = int(tanh.outputs[0])
        wide = self.new_tensor(tanh_c, TANH_INT16_SCALE)
        tanh.outputs = np.array([wide], np.int32)
        self.after.setdefault(id(tanh), []).append(self.quantize_op(wide, tanh_c))

    def as_int16(self, tensor: int, consumer) -> int:
        if self.tensors[tensor].type != self.s.TensorType.INT8:
            return tensor
        wide = self.new_tensor(tensor, self.max_abs(tensor) / INT16_MAX)
        self.before.setdefault(id(consumer), []).append(self.quantize_op(tensor, wide))
        return wide

    def max_abs(self, tensor: int) -> float:
        q = self.tensors[tensor].quantization
        scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
        return max(abs((-128 - zero) * scale), abs((127 - zero) * scale))

    def retype(self, tensor: int, scale: float) -> None:
        t = self.tensors[tensor]
        t.type = self.s.TensorType.INT16
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]

    def new_tensor(self, like: int, scale: float) -> int:
        t = self.s.TensorT()
        t.shape = np.array(self.tensors[like].shape, np.int32)
        t.type, t.buffer = self.s.TensorType.INT16, 0
        t.name = (self.tensors[like].name or b"") + b"_int16"
        t.quantization = self.s.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        self.tensors.append(t)
        return len(self.tensors) - 1

    def quantize_op(self, source: int, target: int):
        op = self.s.OperatorT()
        op.opcodeIndex = self.opcode(self.s.BuiltinOperator.QUANTIZE)
        op.inputs, op.outputs = np.array([source], np.int32), np.array([target], np.int32)
        op.builtinOptionsType = self.s.BuiltinOptions.QuantizeOptions
        op.builtinOptions = self.s.QuantizeOptionsT()
        return op

    def opcode(self, code: int) -> int:
        for i, oc in enumerate(self.model.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                return i
        oc = self.s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 2
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def finish(self) -> None:
        """Put the new ops in execution order: each QUANTIZE next to the op it serves."""
        ordered = []
        for op in self.sg.operators:
            ordered += self.before.get(id(op), [])
            ordered.append(op)
            ordered += self.after.get(id(op), [])
        self.sg.operators = ordered
