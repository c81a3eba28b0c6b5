"""What an ``.onnx`` file contains, read without the ``onnx`` package.

The device has numpy and onnxruntime, not ``onnx``; an ONNX model is a protobuf
``ModelProto``, and the few fields ``edgelstm info`` and the backend need (opsets,
node op types, graph inputs/outputs, metadata_props) are read here with a small reader
of the protobuf wire format. It also validates a file before onnxruntime sees it, so a
truncated or foreign file is a one-line error rather than an engine exception.

Field numbers are those of ``onnx/onnx.proto`` (stable since IR version 3).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgelstm.core.artifact import read_sidecar
from edgelstm.core.errors import UserError

#: Key of the edgelstm description in ``metadata_props`` (converters/onnx.py writes it).
METADATA_KEY = "edgelstm"
#: Protobuf messages are limited to 2 GiB; an ONNX file with inline weights cannot be larger.
MAX_FILE_BYTES = 2**31 - 1
STANDARD_DOMAINS = ("", "ai.onnx")
CONTRIB_WARNING = ("this model uses ONNX Runtime contrib ops ({ops}); it runs on onnxruntime and may "
                   "not load in other ONNX engines")

# TensorProto.DataType
DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
          8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
          16: "bfloat16"}

# Field numbers (onnx.proto).
_MODEL_IR_VERSION, _MODEL_PRODUCER, _MODEL_PRODUCER_VERSION, _MODEL_GRAPH = 1, 2, 3, 7
_MODEL_OPSET, _MODEL_METADATA = 8, 14
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_NODE_OP_TYPE, _NODE_DOMAIN = 4, 7


class _WireError(ValueError):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint too long")


def _fields(buf: memoryview):
    """(field number, value) pairs of one message; value is an int or a memoryview."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise _WireError("truncated field")
        yield number, value


def _text(value) -> str:
    if not isinstance(value, memoryview):
        raise _WireError("expected a string field")
    return bytes(value).decode("utf-8", errors="replace")


def _message(value) -> memoryview:
    if not isinstance(value, memoryview):
        raise _WireError("expected a message field")
    return value


def _value_info(buf: memoryview) -> dict:
    name, dtype, shape = "", None, None
    for number, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:  # TypeProto
            for n2, tensor in _fields(_message(value)):
                if n2 != 1:  # tensor_type
                    continue
                shape = []
                for n3, v3 in _fields(_message(tensor)):
                    if n3 == 1:
                        dtype = DTYPES.get(v3, f"type{v3}")
                    elif n3 == 2:  # TensorShapeProto
                        for n4, dim in _fields(_message(v3)):
                            if n4 != 1:
                                continue
                            size = None
                            for n5, v5 in _fields(_message(dim)):
                                size = v5 if n5 == 1 else _text(v5) if n5 == 2 else size
                            shape.append(size)
    return {"name": name, "dtype": dtype, "shape": shape}


def parse(data: bytes | memoryview) -> dict:
    """The fields edgelstm uses of a serialized ModelProto; ValueError if it is not one."""
    buf = memoryview(data)
    model = {"ir_version": None, "producer": "", "opsets": {}, "metadata": {}, "nodes": [],
             "inputs": [], "outputs": [], "initializers": 0}
    graph = None
    for number, value in _fields(buf):
        if number == _MODEL_IR_VERSION:
            model["ir_version"] = value
        elif number == _MODEL_PRODUCER:
            model["producer"] = _text(value)
        elif number == _MODEL_PRODUCER_VERSION:
            model["producer"] = (model["producer"] + " " + _text(value)).strip()
        elif number == _MODEL_GRAPH:
            graph = _message(value)
        elif number == _MODEL_OPSET:
            domain, version = "", None
            for n2, v2 in _fields(_message(value)):
                domain = _text(v2) if n2 == 1 else domain
                version = v2 if n2 == 2 else version
            model["opsets"][domain] = version
        elif number == _MODEL_METADATA:
            entry = dict((n2, _text(v2)) for n2, v2 in _fields(_message(value)))
            model["metadata"][entry.get(1, "")] = entry.get(2, "")
    if graph is None or model["ir_version"] is None:
        raise _WireError("no graph or IR version: not an ONNX ModelProto")
    for number, value in _fields(graph):
        if number == _GRAPH_NODE:
            op, domain = "", ""
            for n2, v2 in _fields(_message(value)):
                op = _text(v2) if n2 == _NODE_OP_TYPE else op
                domain = _text(v2) if n2 == _NODE_DOMAIN else domain
            model["nodes"].append((domain, op))
        elif number == _GRAPH_INITIALIZER:
            model["initializers"] += 1
        elif number == _GRAPH_INPUT:
            model["inputs"].append(_value_info(_message(value)))
        elif number == _GRAPH_OUTPUT:
            model["outputs"].append(_value_info(_message(value)))
    return model


def read(path: str | Path) -> tuple[bytes, dict]:
    """The bytes of an ONNX file and its parsed fields, or a one-line UserError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    if size == 0:
        raise UserError(f"{path}: empty file, not an ONNX model")
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size} bytes is over the 2 GiB protobuf limit of an ONNX model")
    data = path.read_bytes()
    try:
        model = parse(data)
    except (_WireError, UnicodeError) as exc:
        raise UserError(f"{path}: not a valid ONNX model ({exc}; truncated or not ONNX?)") from None
    return data, model


def description(path: str | Path, model: dict) -> dict | None:
    """The edgelstm description: from metadata_props, else from the JSON beside the file."""
    text = model["metadata"].get(METADATA_KEY)
    if text:
        try:
            desc = json.loads(text)
        except ValueError:
            desc = None
        if isinstance(desc, dict):
            return desc
    return read_sidecar(path)


def inspect(path: str | Path) -> dict:
    """What ``edgelstm info`` shows for an .onnx file."""
    path = Path(path)
    data, model = read(path)
    ops: dict[str, int] = {}
    contrib = set()
    for domain, op in model["nodes"]:
        label = op if domain in STANDARD_DOMAINS else f"{domain}.{op}"
        ops[label] = ops.get(label, 0) + 1
        if domain not in STANDARD_DOMAINS:
            contrib.add(label)
    standard = [v for d, v in model["opsets"].items() if d in STANDARD_DOMAINS]
    info = {
        "path": str(path),
        "format": "onnx",
        "file_size": len(data),
        "ir_version": model["ir_version"],
        "producer": model["producer"],
        "opset": standard[0] if standard else None,
        "opsets": {d or "ai.onnx": v for d, v in model["opsets"].items()},
        "ops": dict(sorted(ops.items())),
        "nodes": len(model["nodes"]),
        "initializers": model["initializers"],
        "contrib_ops": sorted(contrib),
        "inputs": model["inputs"],
        "outputs": model["outputs"],
        "description": description(path, model),
    }
    if contrib:
        info["warning"] = CONTRIB_WARNING.format(ops=", ".join(sorted(contrib)))
    return info
