"""Read a TensorFlow frozen GraphDef (.pb) without TensorFlow.

A frozen graph is one protobuf message: ``GraphDef { repeated NodeDef node = 1; }``. Each
``NodeDef`` has a name, an op type, its inputs and a map of attributes; the weights are
``Const`` nodes whose ``value`` attribute is a ``TensorProto``. This module declares just
those messages (field numbers from tensorflow/core/framework/*.proto) with protobuf's own
descriptor API, so the protobuf runtime (already here for ONNX) does the parsing, and turns
the graph into plain Python: ``{name: Node}`` with attributes as Python values and
constants as numpy arrays.

    graph = read_graph("frozen_inference_graph.pb")
    graph["FeatureExtractor/MobilenetV2/Conv/weights"].value   # numpy array, HWIO
    graph.follow("FeatureExtractor/MobilenetV2/Conv/weights/read")  # through Identity

Unknown fields (function libraries, versions) are skipped by protobuf, as they should be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Node", "Graph", "read_graph"]

# tensorflow/core/framework/types.proto: the dtypes a detection graph's constants use.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           7: object, 9: np.int64, 10: np.bool_, 19: np.float16}
# TensorProto's typed repeated fields, by dtype, for tensors stored without tensor_content.
_VAL_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 4: "int_val", 5: "int_val",
               6: "int_val", 9: "int64_val", 10: "bool_val", 19: "half_val", 7: "string_val"}

_messages = None


def _schema():
    """Message classes for GraphDef, NodeDef, AttrValue, TensorProto, built once."""
    global _messages
    if _messages is not None:
        return _messages
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    # proto2: every optional field has presence, so an attribute set to 0 or false is told
    # apart from one that is absent; parsers accept packed and unpacked repeated fields alike.
    proto = descriptor_pb2.FileDescriptorProto(name="evw_tfgraph.proto", package="evw_tf",
                                               syntax="proto2")

    def message(name, fields, parent=None):
        msg = (parent.nested_type if parent is not None else proto.message_type).add(name=name)
        for number, fname, label, ftype, type_name in fields:
            fd = msg.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                fd.type_name = type_name
        return msg

    S, B, I32, I64, F, D, BOOL, M = (f.TYPE_STRING, f.TYPE_BYTES, f.TYPE_INT32, f.TYPE_INT64,
                                     f.TYPE_FLOAT, f.TYPE_DOUBLE, f.TYPE_BOOL, f.TYPE_MESSAGE)
    shape = message("TensorShapeProto", [(2, "dim", rep, M, ".evw_tf.TensorShapeProto.Dim"),
                                         (3, "unknown_rank", opt, BOOL, None)])
    message("Dim", [(1, "size", opt, I64, None), (2, "name", opt, S, None)], parent=shape)
    # dtype is an enum in TensorFlow; on the wire an enum is a varint, so int32 reads it.
    message("TensorProto", [
        (1, "dtype", opt, I32, None), (2, "tensor_shape", opt, M, ".evw_tf.TensorShapeProto"),
        (4, "tensor_content", opt, B, None), (5, "float_val", rep, F, None),
        (6, "double_val", rep, D, None), (7, "int_val", rep, I32, None),
        (8, "string_val", rep, B, None), (10, "int64_val", rep, I64, None),
        (11, "bool_val", rep, BOOL, None), (13, "half_val", rep, I32, None)])
    attr = message("AttrValue", [
        (1, "list", opt, M, ".evw_tf.AttrValue.ListValue"), (2, "s", opt, B, None),
        (3, "i", opt, I64, None), (4, "f", opt, F, None), (5, "b", opt, BOOL, None),
        (6, "type", opt, I32, None), (7, "shape", opt, M, ".evw_tf.TensorShapeProto"),
        (8, "tensor", opt, M, ".evw_tf.TensorProto")])
    message("ListValue", [
        (2, "s", rep, B, None), (3, "i", rep, I64, None), (4, "f", rep, F, None),
        (5, "b", rep, BOOL, None), (6, "type", rep, I32, None),
        (7, "shape", rep, M, ".evw_tf.TensorShapeProto"),
        (8, "tensor", rep, M, ".evw_tf.TensorProto")], parent=attr)
    node = message("NodeDef", [
        (1, "name", opt, S, None), (2, "op", opt, S, None), (3, "input", rep, S, None),
        (4, "device", opt, S, None), (5, "attr", rep, M, ".evw_tf.NodeDef.AttrEntry")])
    entry = message("AttrEntry", [(1, "key", opt, S, None),
                                  (2, "value", opt, M, ".evw_tf.AttrValue")], parent=node)
    entry.options.map_entry = True
    message("GraphDef", [(1, "node", rep, M, ".evw_tf.NodeDef")])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    _messages = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"evw_tf.{name}"))
                 for name in ("GraphDef", "TensorProto")}
    return _messages


def tensor_to_numpy(t) -> np.ndarray:
    """A TensorProto as a numpy array (a scalar-filled proto broadcasts to its shape)."""
    if t.dtype not in _DTYPES:
        raise ValueError(f"TensorProto dtype {t.dtype} is not one this reader knows "
                         f"({sorted(_DTYPES)}); this graph needs a fuller reader.")
    dtype = _DTYPES[t.dtype]
    dims = tuple(int(d.size) for d in t.tensor_shape.dim)
    if t.tensor_content:
        return np.frombuffer(t.tensor_content, dtype=dtype).reshape(dims).copy()
    values = list(getattr(t, _VAL_FIELDS[t.dtype]))
    if t.dtype == 19:  # half_val carries the raw 16 bits in an int32
        arr = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        arr = np.array(values, dtype=dtype)
    count = int(np.prod(dims)) if dims else 1
    if arr.size == count:
        return arr.reshape(dims)
    if arr.size == 1 or arr.size == 0:  # TensorFlow stores a constant fill as one value
        return np.full(dims, arr[0] if arr.size else 0, dtype=arr.dtype)
    raise ValueError(f"TensorProto holds {arr.size} values for shape {dims}.")


def _attr_value(a):
    if a.HasField("list"):
        lst = a.list
        for name in ("s", "i", "f", "b", "type"):
            vals = list(getattr(lst, name))
            if vals:
                return [v.decode() if isinstance(v, bytes) else v for v in vals]
        return []
    if a.HasField("tensor"):
        return tensor_to_numpy(a.tensor)
    if a.HasField("shape"):
        return [int(d.size) for d in a.shape.dim]
    if a.HasField("s"):
        return a.s.decode(errors="replace")
    for name in ("i", "f", "b", "type"):
        if a.HasField(name):
            return getattr(a, name)
    return None


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)

    @property
    def value(self) -> np.ndarray:
        """A Const node's tensor."""
        if self.op != "Const":
            raise ValueError(f"node {self.name!r} is a {self.op}, not a Const: it has no value.")
        return self.attrs["value"]

    def data_inputs(self) -> list[str]:
        """Inputs without control dependencies (^name) and without output ports (:1)."""
        return [i.split(":")[0] for i in self.inputs if not i.startswith("^")]


class Graph(dict):
    """``{node name: Node}`` with a few lookups a port needs."""

    def follow(self, name: str) -> Node:
        """The node behind ``name``, looking through Identity nodes (frozen ``/read`` aliases)."""
        node = self[name.split(":")[0].lstrip("^")]
        while node.op == "Identity":
            node = self[node.data_inputs()[0]]
        return node

    def const(self, name: str) -> np.ndarray:
        return self.follow(name).value

    def ops(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.values():
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def scope(self, prefix: str) -> list[Node]:
        return [n for n in self.values() if n.name.startswith(prefix)]


def read_graph(path) -> Graph:
    """Parse a frozen GraphDef file. Raises ValueError for a file that isn't one."""
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file. Expected a TensorFlow frozen graph (.pb).")
    graph_def = _schema()["GraphDef"]()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise ValueError(f"{path} is not a TensorFlow GraphDef ({exc}). Expected a frozen "
                         "inference graph such as frozen_inference_graph.pb.") from None
    if not graph_def.node:
        raise ValueError(f"{path} parsed as a GraphDef with no nodes: it is not a frozen graph.")
    graph = Graph()
    for nd in graph_def.node:
        graph[nd.name] = Node(nd.name, nd.op, list(nd.input),
                              {k: _attr_value(v) for k, v in nd.attr.items()})
    return graph
