"""An int16 integrating state inside an int8 TFLite step graph: LSTM ``c``, GRU ``h``.

The full-integer int8 graph the converter writes rounds every tensor to 256 levels, the
recurrent state too, and a state that integrates (``s = gate*s + new``: the LSTM cell
state ``c``, the GRU's ``h``) starts each step from the rounded state of the last, so its
rounding builds up along a stream (docs/quantization.md, sections 1, 12 and 13). TFLite's
own fused integer LSTM kernel keeps ``c`` in int16 for that reason; this module gives the
traced step graph the same. After conversion it retypes the update chain

    LSTM  c_prev --MUL(f, .)--> f*c --ADD(., i*g)--> c_next --TANH--> tanh(c)
    GRU   h_prev --MUL(z, .)--> z*h --ADD(., (1-z)*n)--> h_next --> next layer

to int16 (symmetric, zero point 0, over the largest |value| the int8 calibration gave
any tensor of the chain); the factors of the two products enter them on 16 bits: the
GRU's ``z`` from the int16 LOGISTIC kernel and its ``1 - z`` from an int16 SUB of that
(``complement16``), every other factor (``f``, ``i``, ``g``, ``n``) through a QUANTIZE
of its int8 value (their int16 kernels were measured too, docs/quantization.md section
13: no consistent gain). ``tanh(c)`` runs on the int16 ``c`` and goes back to its int8
tensor through a QUANTIZE; whatever else reads a state (the GRU's recurrent kernels, the
next layer) reads an int8 copy of it. Weights, the gates' pre-activations, the LSTM's
``h``, input and output stay int8, so the file grows by a few tensors and ops, and the
state a runtime carries is LSTM ``h`` int8 / ``c`` int16, GRU ``h`` int16. LiteRT and
TFLite Micro both run int16 MUL / ADD / SUB / TANH / LOGISTIC and int8<->int16 QUANTIZE.

Works on the converted flatbuffer through TensorFlow's generated schema classes, so it
runs where the converter runs (host side, the converter's child process).
"""

from __future__ import annotations

import numpy as np

#: int16 steps of a symmetric range [-m, m]; the int16 TANH's output is on [-1, 1), the
#: LOGISTIC's on [0, 1), both in steps of 1/32768.
INT16_MAX = 32767
TANH_INT16_SCALE = 1.0 / 32768


def widen_cell_state(data: bytes) -> tuple[bytes, int]:
    """(new flatbuffer, number of integrating-state chains widened) for a converted int8 graph.

    A chain starts at every graph input that a MUL takes and whose product is summed by
    an ADD with another product into the next state (``update_step``), and follows that
    state into the next step's MUL (sequence mode unrolls the steps)."""
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
        self.optional: set[int] = set()  # ids of new ops to drop when nothing reads their output
        self.wide_gates: dict[int, int] = {}  # id(gate op) -> its int16 output

    def code(self, op) -> int:
        oc = self.model.operatorCodes[op.opcodeIndex]
        return max(oc.builtinCode, oc.deprecatedBuiltinCode)

    def users(self, tensor: int, code: int) -> list:
        return [op for op in self.consumers.get(tensor, []) if self.code(op) == code]

    def update_step(self, s_prev: int):
        """(MUL gate*s, ADD, MUL new) of the state update ``gate*s_prev + new`` that reads
        ``s_prev`` (LSTM: ``f*c + i*g``; GRU: ``z*h + (1-z)*n``), or None. The sum is the
        next state: a graph output (step mode) or what TANH reads (LSTM)."""
        ops = self.s.BuiltinOperator
        outputs = {int(o) for o in self.sg.outputs}
        for mul_keep in self.users(s_prev, ops.MUL):
            adds = self.users(int(mul_keep.outputs[0]), ops.ADD)
            if len(adds) != 1:
                continue
            s_next = int(adds[0].outputs[0])
            other = [int(i) for i in adds[0].inputs if int(i) != int(mul_keep.outputs[0])]
            mul_new = self.producer.get(other[0]) if len(other) == 1 else None
            is_state = s_next in outputs or self.users(s_next, ops.TANH)
            if is_state and mul_new is not None and self.code(mul_new) == ops.MUL:
                return mul_keep, adds[0], mul_new
        return None

    def widen_chain(self, s: int) -> int:
        """Widen every step of the chain that starts at tensor ``s``; 1 if there was one."""
        steps = []
        while self.tensors[s].type == self.s.TensorType.INT8:
            found = self.update_step(s)
            if found is None:
                break
            steps.append((s, found))
            s = int(found[1].outputs[0])
        if not steps:
            return 0
        states = [s_prev for s_prev, _ in steps] + [s]
        chain = states + [int(found[0].outputs[0]) for _, found in steps]
        scale = max(self.max_abs(t) for t in chain) / INT16_MAX
        update_ops = {id(op) for _, found in steps for op in found[:2]}
        for t in states:  # readers outside the update, while t still has its int8 range
            self.serve_readers(t, update_ops)
        for t in chain:
            self.retype(t, scale)
        for _, found in steps:
            self.widen_step(*found)
        return 1

    def serve_readers(self, state: int, update_ops: set) -> None:
        """What else reads a state keeps working once it is int16: TANH runs on the int16
        state (LSTM ``tanh(c)``); anything else (a FULLY_CONNECTED: GRU ``h U``, the next
        layer) reads an int8 copy, one QUANTIZE, with the range calibration gave the state."""
        ops = self.s.BuiltinOperator
        readers = [op for op in self.consumers.get(state, []) if id(op) not in update_ops]
        narrow = None
        for op in readers:
            if self.code(op) == ops.TANH:
                self.widen_tanh(op)
                continue
            if narrow is None:
                narrow = self.new_tensor(state, None)
                copy = self.quantize_op(state, narrow)
                producer = self.producer.get(state)
                if producer is not None:
                    self.after.setdefault(id(producer), []).append(copy)
                else:  # a graph input: before the first op that reads it
                    first = next(o for o in self.sg.operators if id(o) in {id(r) for r in readers})
                    self.before.setdefault(id(first), []).append(copy)
            op.inputs = np.array([narrow if int(i) == state else int(i) for i in op.inputs], np.int32)

    def widen_step(self, mul_keep, add, mul_new) -> None:
        new = int(mul_new.outputs[0])
        self.retype(new, self.max_abs(new) / INT16_MAX)
        for mul in (mul_keep, mul_new):  # what the int16 products multiply, on 16 bits
            mul.inputs = np.array([self.operand16(int(i), mul) for i in mul.inputs], np.int32)
        add.builtinOptions.potScaleInt16 = False  # general int16 scales, not powers of two

    def operand16(self, tensor: int, consumer) -> int:
        """``tensor`` on 16 bits for ``consumer``: a GRU's ``1 - z`` as an int16 SUB and its
        ``z`` from the int16 LOGISTIC kernel (``complement16``), anything else through a
        QUANTIZE of its int8 value."""
        if self.tensors[tensor].type != self.s.TensorType.INT8:
            return tensor
        op = self.producer.get(tensor)
        z_gate = self.complemented_gate(op)
        if z_gate is not None:
            return self.complement16(op, self.gate16(z_gate))
        if op is not None and any(self.complemented_gate(r) is op for r in self.consumers.get(tensor, [])):
            return self.gate16(op)
        return self.as_int16(tensor, consumer)

    def complemented_gate(self, op):
        """The LOGISTIC gate ``z`` if ``op`` is ``SUB(1, z)`` read by one op, else None."""
        ops = self.s.BuiltinOperator
        if op is None or self.code(op) != ops.SUB or len(self.consumers.get(int(op.outputs[0]), [])) != 1:
            return None
        one, z = (int(i) for i in op.inputs)
        gate = self.producer.get(z)
        if gate is None or self.code(gate) != ops.LOGISTIC or not self.is_one(one):
            return None
        return gate

    def gate16(self, gate) -> int:
        """Run a LOGISTIC gate on its int16 kernel (output on [0, 1) in 1/32768) from its
        int8 pre-activation; its int16 result, once per gate. The int8 output tensor
        stays, from a QUANTIZE that ``finish`` drops when nothing reads it."""
        if id(gate) in self.wide_gates:
            return self.wide_gates[id(gate)]
        narrow = int(gate.outputs[0])
        wide = self.new_tensor(narrow, TANH_INT16_SCALE)
        gate.inputs = np.array([self.as_int16(int(gate.inputs[0]), gate)], np.int32)
        gate.outputs = np.array([wide], np.int32)
        copy = self.quantize_op(wide, narrow)
        self.after.setdefault(id(gate), []).append(copy)
        self.optional.add(id(copy))
        self.wide_gates[id(gate)] = wide
        return wide

    def complement16(self, sub, z: int) -> int:
        """GRU ``1 - z`` as an int16 SUB of the int16 ``z``, on z's own scale: the two
        weights of ``z*h + (1-z)*n`` then sum to 1 within 1/32768. In int8 the converter
        gives the SUB its own calibrated scale (about 1/128), so a slow unit's ``1 - z``
        (z near 1) rounds by up to 20 % of itself, the same way every step: h settles that
        far off n, a leak (or gain) that builds up along the stream."""
        one = self.new_tensor(int(sub.inputs[0]), 1.0 / INT16_MAX)
        buffer = self.s.BufferT()
        buffer.data = np.frombuffer(np.int16(INT16_MAX).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        self.tensors[one].buffer = len(self.model.buffers) - 1
        sub.inputs = np.array([one, z], np.int32)
        self.retype(int(sub.outputs[0]), TANH_INT16_SCALE)
        sub.builtinOptions.potScaleInt16 = False
        return int(sub.outputs[0])

    def is_one(self, tensor: int) -> bool:
        """Is ``tensor`` a scalar int8 constant equal to 1 within its step?"""
        t = self.tensors[tensor]
        data = self.model.buffers[t.buffer].data if t.buffer else None
        if data is None or len(data) != 1 or t.type != self.s.TensorType.INT8:
            return False
        scale, zero = float(t.quantization.scale[0]), int(t.quantization.zeroPoint[0])
        return abs((int(np.asarray(data).view(np.int8)[0]) - zero) * scale - 1.0) <= scale / 2

    def widen_tanh(self, tanh) -> None:
        """TANH reads the int16 state; its int16 result goes back to its int8 tensor."""
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

    def new_tensor(self, like: int, scale: float | None) -> int:
        """A tensor shaped like ``like``: int16 on ``scale``, or (None) an int8 copy of
        ``like``'s own type and quantization."""
        old, t = self.tensors[like], self.s.TensorT()
        t.shape, t.buffer = np.array(old.shape, np.int32), 0
        t.quantization = self.s.QuantizationParametersT()
        if scale is None:
            t.type, t.name = old.type, (old.name or b"") + b"_int8"
            t.quantization.scale = list(old.quantization.scale)
            t.quantization.zeroPoint = list(old.quantization.zeroPoint)
        else:
            t.type, t.name = self.s.TensorType.INT16, (old.name or b"") + b"_int16"
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
        read = {int(i) for op in ordered for i in op.inputs} | {int(o) for o in self.sg.outputs}
        self.sg.operators = [op for op in ordered if id(op) not in self.optional or int(op.outputs[0]) in read]
