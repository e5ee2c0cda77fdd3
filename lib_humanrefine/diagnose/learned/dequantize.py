"""The CLIP tower's INT8 file run with float32 activations: its weights stay INT8 in memory.

The registry file (``clip_encoder.int8.onnx``) was made with onnxruntime's dynamic quantization:
every linear layer is ``DynamicQuantizeLinear(x) -> MatMulInteger(x_q, W_q) -> Cast -> Mul(scale)``
with per-column INT8 weights. The activations are quantized per tensor at run time, and that costs
accuracy: on the development images, grouped cross-validation of the image head gave AUROC 0.73
with INT8 activations (whole image and its mirror averaged) against 0.76–0.77 with the same weights
in float32 (generated images only: 0.60 against 0.63–0.65). So each of those chains is replaced
here by ``FusedMatMul(x, DequantizeLinear(W_q^T, scale, zero_point, axis=0), transB=1)``: the
weights stay the file's INT8 ones (85 MB) and are turned into float32 one matrix at a time while the
model runs, so the products see the same float32 weights ``(W_q - zero_point) x scale`` and float32
activations (embeddings equal to the ones of weights dequantized once at load, cosine 0.9999999).
Each weight matrix is stored transposed, one output column per row: onnxruntime then dequantizes
whole rows that share one scale, as fast as the products read float32 weights (per column of the
untransposed matrix it took about half as long again as the whole model). The nodes it no longer
needs are dropped; the weights are the file's own, so its pinned SHA-256 still says what runs.
Before, the weights were turned into float32 once at load: 345 MB of them, 420–490 MB resident
and a peak near 1.26 GB while loading (``bench`` reports the encoder's memory).

Written by hand on the protobuf wire format rather than with the ``onnx`` package because that
package needs protobuf >= 3.20.2 and A1111 pins 3.20.0; only a few fields of five ONNX messages
(model, graph, node, tensor) are read, and every other field is copied through byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import HumanRefineError

# ONNX field numbers (onnx.proto3): ModelProto.graph; GraphProto.node, .initializer, .output;
# ModelProto.opset_import; OperatorSetIdProto.domain, .version; NodeProto.input, .output, .name,
# .op_type, .attribute, .domain; AttributeProto.name, .i, .type; ValueInfoProto.name; TensorProto.dims,
# .data_type, .name, .raw_data.
MODEL_GRAPH, MODEL_OPSET_IMPORT = 7, 8
OPSET_DOMAIN, OPSET_VERSION = 1, 2
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_OUTPUT = 1, 5, 12
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 1, 2, 3, 4, 5, 7
ATTRIBUTE_NAME, ATTRIBUTE_INT, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT = 1, 3, 20, 2
VALUE_INFO_NAME = 1
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 8, 9
INT8 = 3  # TensorProto.DataType
MICROSOFT = "com.microsoft"  # onnxruntime's own operators (FusedMatMul)
VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class CannotDequantize(HumanRefineError):
    """The encoder file does not have the layout this rewrite knows."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data) -> list[tuple[int, int, memoryview | int]]:
    """(field number, wire type, value) of each field of one message; value is a view of the bytes
    of a length-delimited field (no copy), else the integer (varint) or the raw little-endian bytes."""
    data = memoryview(data)
    out = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire == BYTES:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise CannotDequantize(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, value) -> bytes:
    """One small field, encoded (large payloads go through ``_nested`` without copying)."""
    key = _encode_varint(number << 3 | wire)
    if wire == VARINT:
        return key + _encode_varint(int(value))
    if wire == BYTES:
        return key + _encode_varint(len(value)) + bytes(value)
    return key + bytes(value)


def _nested(number: int, pieces: list) -> list:
    """A length-delimited field as a list of pieces (the key and length, then the payload's pieces
    as they are), so that the model is joined once at the end instead of copied at every level."""
    size = sum(memoryview(p).nbytes for p in pieces)
    return [_encode_varint(number << 3 | BYTES) + _encode_varint(size), *pieces]


def _text(value) -> str:
    return bytes(value).decode()


@dataclass
class Node:
    raw: bytes
    op_type: str = ""
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _node(raw: bytes) -> Node:
    node = Node(raw)
    for number, _wire, value in _fields(raw):
        if number == NODE_INPUT:
            node.inputs.append(_text(value))
        elif number == NODE_OUTPUT:
            node.outputs.append(_text(value))
        elif number == NODE_NAME:
            node.name = _text(value)
        elif number == NODE_OP_TYPE:
            node.op_type = _text(value)
    return node


def _transposed_int8(raw, name: str) -> list:
    """An INT8 matrix initializer (raw data) as a new TensorProto, transposed, in pieces."""
    dims, data_type, data = [], None, None
    for number, wire, value in _fields(raw):
        if number == TENSOR_DIMS and wire == VARINT:
            dims.append(value)
        elif number == TENSOR_DATA_TYPE:
            data_type = value
        elif number == TENSOR_RAW_DATA:
            data = value
    if data_type != INT8 or data is None or len(dims) != 2 or dims[0] * dims[1] != len(data):
        raise CannotDequantize(f"weight {name!r} is not an INT8 matrix")
    transposed = np.ascontiguousarray(np.frombuffer(data, np.int8).reshape(dims).T)
    head = b"".join(
        [_field(TENSOR_DIMS, VARINT, d) for d in transposed.shape]
        + [_field(TENSOR_DATA_TYPE, VARINT, INT8), _field(TENSOR_NAME, BYTES, name.encode())]
    )
    return [head, *_nested(TENSOR_RAW_DATA, [memoryview(transposed).cast("B")])]


def _node_bytes(
    op_type: str, name: str, inputs: list[str], output: str, domain: str = "", **int_attributes: int
) -> bytes:
    """A NodeProto with these inputs, one output and integer attributes."""
    attributes = [
        _field(ATTRIBUTE_NAME, BYTES, key.encode())
        + _field(ATTRIBUTE_INT, VARINT, value)
        + _field(ATTRIBUTE_TYPE, VARINT, ATTRIBUTE_TYPE_INT)
        for key, value in int_attributes.items()
    ]
    return b"".join(
        [_field(NODE_INPUT, BYTES, i.encode()) for i in inputs]
        + [
            _field(NODE_OUTPUT, BYTES, output.encode()),
            _field(NODE_NAME, BYTES, name.encode()),
            _field(NODE_OP_TYPE, BYTES, op_type.encode()),
        ]
        + [_field(NODE_ATTRIBUTE, BYTES, a) for a in attributes]
        + ([_field(NODE_DOMAIN, BYTES, domain.encode())] if domain else [])
    )


def float_model(int8_model) -> tuple[list, int]:
    """The model with every dynamically quantized MatMul in float32 on its INT8 weights dequantized
    as it runs; (the model as pieces of bytes, MatMuls rewritten). The pieces are views of
    ``int8_model`` where they can be (write them out, or ``b"".join`` them, while it is alive).

    CannotDequantize (one line) when the bytes are not such a model."""
    try:
        return _rewrite(int8_model)
    except (IndexError, UnicodeDecodeError, ValueError) as exc:  # truncated or not protobuf at all
        raise CannotDequantize(
            f"the encoder file is not an ONNX model this rewrite reads ({exc.__class__.__name__})"
        ) from None


def _rewrite(int8_model) -> tuple[list, int]:
    model = _fields(int8_model)
    graphs = [value for number, wire, value in model if number == MODEL_GRAPH and wire == BYTES]
    if len(graphs) != 1:
        raise CannotDequantize("the encoder file has no single graph")
    graph = _fields(graphs[0])
    nodes = [_node(value) for number, _w, value in graph if number == GRAPH_NODE]
    tensors = {}  # initializer name -> its bytes, in file order
    for number, _w, value in graph:
        if number == GRAPH_INITIALIZER:
            for n2, _w2, v2 in _fields(value):
                if n2 == TENSOR_NAME:
                    tensors[_text(v2)] = value
    outputs = set()
    for number, _w, value in graph:
        if number == GRAPH_OUTPUT:
            outputs.update(_text(v) for n2, _w2, v in _fields(value) if n2 == VALUE_INFO_NAME)
    producer = {o: n for n in nodes for o in n.outputs}
    consumers: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)

    replaced: dict[int, Node | None] = {}  # id(node) -> its float replacement, or None: drop it
    dequantized: dict[str, Node] = {}  # INT8 weight -> the node that turns it into float32 as the model runs
    new_tensors = []  # the weights transposed
    for n in nodes:
        if n.op_type != "MatMulInteger":
            continue
        try:
            x_q, w_q, _x_zero, w_zero = n.inputs
            quantize = producer[x_q]
            (cast,) = consumers[n.outputs[0]]
            (scale_mul,) = consumers[cast.outputs[0]]
            scales = next(i for i in scale_mul.inputs if i != cast.outputs[0])
            w_scale = next(i for i in producer[scales].inputs if i in tensors)
        except (KeyError, ValueError, StopIteration):
            raise CannotDequantize(f"MatMulInteger {n.name!r} is not a dynamic-quantization chain") from None
        if quantize.op_type != "DynamicQuantizeLinear" or cast.op_type != "Cast" or scale_mul.op_type != "Mul":
            raise CannotDequantize(f"MatMulInteger {n.name!r} is not a dynamic-quantization chain")
        if not {w_q, w_zero, w_scale} <= tensors.keys():
            raise CannotDequantize(f"MatMulInteger {n.name!r} has weights that are not initializers")
        transposed, float_name = f"{w_q}_transposed", f"{w_q}_transposed_float32"
        if w_q not in dequantized:
            new_tensors.append(_transposed_int8(tensors[w_q], transposed))
            inputs = [transposed, w_scale, w_zero]
            dequantized[w_q] = _node(_node_bytes("DequantizeLinear", f"{w_q}_dequantize", inputs, float_name, axis=0))
        matmul = _node_bytes(
            "FusedMatMul", f"{n.name}_float32", [quantize.inputs[0], float_name], scale_mul.outputs[0], MICROSOFT,
            transB=1,
        )  # fmt: skip
        replaced[id(n)] = _node(matmul)
        replaced[id(cast)] = replaced[id(scale_mul)] = None
    if not replaced:
        raise CannotDequantize("the encoder file has no quantized MatMul")

    # each weight's DequantizeLinear first (nodes are sorted topologically by onnxruntime anyway)
    kept = list(dequantized.values()) + [m for m in (replaced.get(id(n), n) for n in nodes) if m is not None]
    while True:  # drop nodes whose outputs nothing uses any more (the quantizers, the scale products)
        used = outputs | {i for n in kept for i in n.inputs}
        alive = [n for n in kept if any(o in used for o in n.outputs)]
        if len(alive) == len(kept):
            break
        kept = alive

    # Field order does not matter in protobuf: every other field as it was, then the nodes, the
    # initializers still used and the transposed weights; the model also imports onnxruntime's operators.
    graph_out: list = []
    for number, wire, value in graph:
        if number in (GRAPH_NODE, GRAPH_INITIALIZER):
            continue
        graph_out.extend(_nested(number, [value]) if wire == BYTES else [_field(number, wire, value)])
    graph_out.extend(_field(GRAPH_NODE, BYTES, n.raw) for n in kept)
    for name, tensor in tensors.items():
        if name in used:
            graph_out.extend(_nested(GRAPH_INITIALIZER, [tensor]))
    for tensor in new_tensors:
        graph_out.extend(_nested(GRAPH_INITIALIZER, tensor))
    model_out: list = []
    for number, wire, value in model:
        if number == MODEL_GRAPH:
            model_out.extend(_nested(MODEL_GRAPH, graph_out))
        elif wire == BYTES:
            model_out.extend(_nested(number, [value]))
        else:
            model_out.append(_field(number, wire, value))
    imported = {
        _text(v) for number, _w, value in model if number == MODEL_OPSET_IMPORT for n2, _w2, v in _fields(value)
        if n2 == OPSET_DOMAIN
    }  # fmt: skip
    if MICROSOFT not in imported:
        opset = _field(OPSET_DOMAIN, BYTES, MICROSOFT.encode()) + _field(OPSET_VERSION, VARINT, 1)
        model_out.append(_field(MODEL_OPSET_IMPORT, BYTES, opset))
    return model_out, sum(node is not None for node in replaced.values())
