"""The few ONNX protobuf messages and helpers semkit writes graphs with, without the ``onnx``
package (28 MB installed, with ml_dtypes 30 MB: 7% of the base install) — only ``protobuf``,
which onnxruntime already depends on.

The messages are the subset of ``onnx.proto`` (proto2) that graph building and int8 rewriting
touch, with onnx's own field numbers, types and packing, declared in a private descriptor pool
(so they never clash with the real ``onnx`` package in the same process). Fields left out are
kept as unknown fields when a file written by another tool is parsed and re-serialised.
The helpers behave as ``onnx.helper`` / ``onnx.numpy_helper`` do for the cases used here, so a
graph serialises to the same bytes as with onnx (``tests/integration/test_onnx_graph.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

IR_VERSION = 8
"""The ONNX IR version written: what onnxruntime >= 1.20 reads."""

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_MESSAGES: dict[str, list[tuple[str, int, int, int, str, bool]]] = {
    # message: (field, number, label, type, message type name, packed)
    "AttributeProto": [
        ("name", 1, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("f", 2, _OPTIONAL, _F.TYPE_FLOAT, "", False),
        ("i", 3, _OPTIONAL, _F.TYPE_INT64, "", False),
        ("s", 4, _OPTIONAL, _F.TYPE_BYTES, "", False),
        ("t", 5, _OPTIONAL, _F.TYPE_MESSAGE, ".semkit_onnx.TensorProto", False),
        ("g", 6, _OPTIONAL, _F.TYPE_MESSAGE, ".semkit_onnx.GraphProto", False),
        ("floats", 7, _REPEATED, _F.TYPE_FLOAT, "", False),
        ("ints", 8, _REPEATED, _F.TYPE_INT64, "", False),
        ("strings", 9, _REPEATED, _F.TYPE_BYTES, "", False),
        ("doc_string", 13, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("type", 20, _OPTIONAL, _F.TYPE_INT32, "", False),  # an enum in onnx.proto: same encoding
        ("ref_attr_name", 21, _OPTIONAL, _F.TYPE_STRING, "", False),
    ],
    "ValueInfoProto": [
        ("name", 1, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("type", 2, _OPTIONAL, _F.TYPE_MESSAGE, ".semkit_onnx.TypeProto", False),
        ("doc_string", 3, _OPTIONAL, _F.TYPE_STRING, "", False),
    ],
    "NodeProto": [
        ("input", 1, _REPEATED, _F.TYPE_STRING, "", False),
        ("output", 2, _REPEATED, _F.TYPE_STRING, "", False),
        ("name", 3, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("op_type", 4, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("attribute", 5, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.AttributeProto", False),
        ("doc_string", 6, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("domain", 7, _OPTIONAL, _F.TYPE_STRING, "", False),
    ],
    "OperatorSetIdProto": [
        ("domain", 1, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("version", 2, _OPTIONAL, _F.TYPE_INT64, "", False),
    ],
    "ModelProto": [
        ("ir_version", 1, _OPTIONAL, _F.TYPE_INT64, "", False),
        ("producer_name", 2, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("producer_version", 3, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("domain", 4, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("model_version", 5, _OPTIONAL, _F.TYPE_INT64, "", False),
        ("doc_string", 6, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("graph", 7, _OPTIONAL, _F.TYPE_MESSAGE, ".semkit_onnx.GraphProto", False),
        ("opset_import", 8, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.OperatorSetIdProto", False),
    ],
    "GraphProto": [
        ("node", 1, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.NodeProto", False),
        ("name", 2, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("initializer", 5, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.TensorProto", False),
        ("doc_string", 10, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("input", 11, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.ValueInfoProto", False),
        ("output", 12, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.ValueInfoProto", False),
        ("value_info", 13, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.ValueInfoProto", False),
    ],
    "TensorProto": [
        ("dims", 1, _REPEATED, _F.TYPE_INT64, "", False),
        ("data_type", 2, _OPTIONAL, _F.TYPE_INT32, "", False),
        ("float_data", 4, _REPEATED, _F.TYPE_FLOAT, "", True),
        ("int32_data", 5, _REPEATED, _F.TYPE_INT32, "", True),
        ("string_data", 6, _REPEATED, _F.TYPE_BYTES, "", False),
        ("int64_data", 7, _REPEATED, _F.TYPE_INT64, "", True),
        ("name", 8, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("raw_data", 9, _OPTIONAL, _F.TYPE_BYTES, "", False),
        ("double_data", 10, _REPEATED, _F.TYPE_DOUBLE, "", True),
        ("uint64_data", 11, _REPEATED, _F.TYPE_UINT64, "", True),
        ("doc_string", 12, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("data_location", 14, _OPTIONAL, _F.TYPE_INT32, "", False),
    ],
    "TypeProto": [
        ("tensor_type", 1, _OPTIONAL, _F.TYPE_MESSAGE, ".semkit_onnx.TypeProto.Tensor", False),
        ("denotation", 6, _OPTIONAL, _F.TYPE_STRING, "", False),
    ],
    "TypeProto.Tensor": [
        ("elem_type", 1, _OPTIONAL, _F.TYPE_INT32, "", False),
        ("shape", 2, _OPTIONAL, _F.TYPE_MESSAGE, ".semkit_onnx.TensorShapeProto", False),
    ],
    "TensorShapeProto": [
        ("dim", 1, _REPEATED, _F.TYPE_MESSAGE, ".semkit_onnx.TensorShapeProto.Dimension", False),
    ],
    "TensorShapeProto.Dimension": [
        ("dim_value", 1, _OPTIONAL, _F.TYPE_INT64, "", False),
        ("dim_param", 2, _OPTIONAL, _F.TYPE_STRING, "", False),
        ("denotation", 3, _OPTIONAL, _F.TYPE_STRING, "", False),
    ],
}


def _build_classes() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(name="semkit_onnx.proto", package="semkit_onnx", syntax="proto2")
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full_name in _MESSAGES:  # parents come before their nested types in the table
        outer, _, inner = full_name.partition(".")
        message = declared[outer].nested_type.add(name=inner) if inner else file.message_type.add(name=outer)
        declared[full_name] = message
        for name, number, label, kind, type_name, packed in _MESSAGES[full_name]:
            field = message.field.add(name=name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True
        if full_name == "TensorShapeProto.Dimension":  # dim_value / dim_param are a oneof
            message.oneof_decl.add(name="value")
            for field in message.field[:2]:
                field.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"semkit_onnx.{name}"))
            for name in _MESSAGES}


_CLASSES = _build_classes()
ModelProto = _CLASSES["ModelProto"]
GraphProto = _CLASSES["GraphProto"]
NodeProto = _CLASSES["NodeProto"]
AttributeProto = _CLASSES["AttributeProto"]
ValueInfoProto = _CLASSES["ValueInfoProto"]
OperatorSetIdProto = _CLASSES["OperatorSetIdProto"]
TensorProto = _CLASSES["TensorProto"]


class ElementType:
    """ONNX's tensor element types (``onnx.TensorProto.FLOAT`` ...), by their numbers."""

    FLOAT, UINT8, INT8, INT32, INT64, BOOL, DOUBLE = 1, 2, 3, 6, 7, 9, 11


_ELEMENT_TYPES: dict[np.dtype[Any], int] = {
    np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.uint16): 4,
    np.dtype(np.int16): 5, np.dtype(np.int32): 6, np.dtype(np.int64): 7, np.dtype(np.bool_): 9,
    np.dtype(np.float16): 10, np.dtype(np.float64): 11, np.dtype(np.uint32): 12, np.dtype(np.uint64): 13,
}
_DTYPES: dict[int, np.dtype[Any]] = {code: dtype for dtype, code in _ELEMENT_TYPES.items()}
_ATTRIBUTE_FLOAT, _ATTRIBUTE_INT, _ATTRIBUTE_STRING, _ATTRIBUTE_TENSOR = 1, 2, 3, 4
_ATTRIBUTE_FLOATS, _ATTRIBUTE_INTS, _ATTRIBUTE_STRINGS = 6, 7, 8


# --- onnx.numpy_helper --------------------------------------------------------------------------

def from_array(array: np.ndarray, name: str | None = None) -> Any:
    """A tensor message holding ``array`` (little-endian raw bytes), as numpy_helper.from_array."""
    return fill_tensor(TensorProto(), array, name)


def fill_tensor(tensor: Any, array: np.ndarray, name: str | None = None) -> Any:
    """``from_array`` into an existing, empty tensor message, e.g. ``graph.initializer.add()``:
    appending a new message to a repeated field would copy its bytes once more."""
    array = np.asarray(array)
    if array.dtype not in _ELEMENT_TYPES:
        raise TypeError(f"no ONNX element type for numpy dtype {array.dtype}")
    tensor.dims.extend(array.shape)
    if name:
        tensor.name = name
    tensor.data_type = _ELEMENT_TYPES[array.dtype]
    tensor.raw_data = (array if array.dtype.byteorder != ">" else array.byteswap()).tobytes()
    return tensor


def to_array(tensor: Any) -> np.ndarray:
    """The numpy array a tensor message holds (raw bytes or the typed repeated fields)."""
    dtype = _DTYPES.get(tensor.data_type)
    if dtype is None:
        raise TypeError(f"unsupported ONNX element type {tensor.data_type} in tensor {tensor.name!r}")
    shape = tuple(tensor.dims)
    if tensor.HasField("raw_data"):
        return np.frombuffer(tensor.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    if dtype == np.float32:
        values: Sequence[Any] = tensor.float_data
    elif dtype == np.float64:
        values = tensor.double_data
    elif dtype == np.int64:
        values = tensor.int64_data
    elif dtype in (np.uint32, np.uint64):
        values = tensor.uint64_data
    elif dtype == np.float16:
        return np.asarray(tensor.int32_data, dtype=np.uint16).view(np.float16).reshape(shape)
    else:
        values = tensor.int32_data
    return np.asarray(values, dtype=dtype).reshape(shape)


# --- onnx.helper --------------------------------------------------------------------------------

def make_attribute(key: str, value: Any) -> Any:
    attribute = AttributeProto(name=key)
    if isinstance(value, bool | int | np.integer):
        attribute.i, attribute.type = int(value), _ATTRIBUTE_INT
    elif isinstance(value, float | np.floating):
        attribute.f, attribute.type = float(value), _ATTRIBUTE_FLOAT
    elif isinstance(value, str | bytes):
        attribute.s = value.encode() if isinstance(value, str) else value
        attribute.type = _ATTRIBUTE_STRING
    elif isinstance(value, TensorProto):
        attribute.t.CopyFrom(value)
        attribute.type = _ATTRIBUTE_TENSOR
    elif isinstance(value, Iterable):
        items = list(value)
        if all(isinstance(v, bool | int | np.integer) for v in items):
            attribute.ints.extend(int(v) for v in items)
            attribute.type = _ATTRIBUTE_INTS
        elif all(isinstance(v, bool | int | float | np.integer | np.floating) for v in items):
            attribute.floats.extend(float(v) for v in items)
            attribute.type = _ATTRIBUTE_FLOATS
        elif all(isinstance(v, str | bytes) for v in items):
            attribute.strings.extend(v.encode() if isinstance(v, str) else v for v in items)
            attribute.type = _ATTRIBUTE_STRINGS
        else:
            raise TypeError(f"attribute {key!r}: a list of mixed or unsupported values")
    else:
        raise TypeError(f"attribute {key!r}: unsupported value {type(value).__name__}")
    return attribute


def make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str | None = None,
              domain: str | None = None, **attributes: Any) -> Any:
    """As onnx.helper.make_node: attributes in key order, ``None`` values left out."""
    node = NodeProto(op_type=op_type)
    node.input.extend(inputs)
    node.output.extend(outputs)
    if name:
        node.name = name
    if domain is not None:
        node.domain = domain
    node.attribute.extend(make_attribute(k, v) for k, v in sorted(attributes.items()) if v is not None)
    return node


def make_opsetid(domain: str, version: int) -> Any:
    return OperatorSetIdProto(domain=domain, version=version)


def make_tensor_value_info(name: str, elem_type: int, shape: Sequence[int | str | None] | None) -> Any:
    info = ValueInfoProto(name=name)
    tensor_type = info.type.tensor_type
    tensor_type.elem_type = elem_type
    if shape is not None:
        tensor_type.shape.dim.extend([])  # marks the shape present even when it has no dims
        for size in shape:
            dim = tensor_type.shape.dim.add()
            if isinstance(size, int | np.integer):
                dim.dim_value = int(size)
            elif isinstance(size, str):
                dim.dim_param = size
    return info


def make_model(graph_name: str, opset_imports: Sequence[Any], **fields: Any) -> Any:
    """An empty model (no nodes, inputs or initialisers yet) of IR version ``IR_VERSION``."""
    model = ModelProto(ir_version=IR_VERSION)
    model.graph.name = graph_name
    model.opset_import.extend(opset_imports)
    for key, value in fields.items():
        setattr(model, key, value)
    return model


# --- onnx.load ----------------------------------------------------------------------------------

def load_from_string(data: bytes) -> Any:
    model = ModelProto()
    model.ParseFromString(data)
    return model


def load(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as fh:
        return load_from_string(fh.read())
