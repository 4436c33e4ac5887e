"""A TensorFlow Object Detection API SSD, ported to PyTorch from its frozen graph.

The frozen graph is the authority: everything here is read from it, nothing is assumed.

* **The network** (``GraphNetwork``) is rebuilt node by node from the graph's own ops, between
  the preprocessed image and the two raw outputs (box encodings and class logits). Each
  ``Conv2D`` / ``DepthwiseConv2dNative`` takes its strides and its padding from the node, with
  TensorFlow's "SAME" rule: the total padding is ``max((ceil(n/s) - 1) * s + k - n, 0)`` and the
  extra pixel goes to the bottom/right, so a stride-2 3x3 conv on 300 pixels pads (0, 1), not
  (1, 1) as a symmetric PyTorch conv would. ``FusedBatchNorm`` is folded into the conv before it
  with the node's own epsilon; ``BiasAdd`` likewise. ``Relu6`` is ReLU6.
* **The anchors** are *evaluated*: the graph computes them from constants (grid sizes, scales,
  aspect ratios) in a few hundred small ops, so ``fold`` runs that subgraph in numpy.
* **The box coder** is read from ``Postprocessor/Decode``: the order of the encodings (y, x, h, w
  in the TF API), the scale factors that divide them, and the anchor layout (ymin, xmin, ymax, xmax).
* **The scores**: the op that converts logits (``Sigmoid`` here, not a softmax) and the logit
  scale it divides by first.
* **The input**: the resize op (``ResizeBilinear`` with align_corners=False and no half-pixel
  centres: TensorFlow 1's legacy sampling), its size (a stretch to 300x300), and the ``Mul``/``Sub``
  that scale pixels to [-1, 1].
* **NMS**: the IoU threshold, the score threshold and the per-class and total maximum.

``tools/tf_reference.py`` runs the original graph in TensorFlow and tests/test_tfssd.py checks
that this port reproduces its detections. The conversion takes about a second, so it runs on
every load from the checksum-verified .pb; a cache would be one more file to keep in step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .tfgraph import Graph, read_graph

__all__ = ["GraphNetwork", "SSDConfig", "read_config", "fold", "load"]

INPUT = "FeatureExtractor/MobilenetV2/MobilenetV2/input"
OUTPUTS = ("Squeeze", "concat_1")  # box encodings [B, A, 4], class logits [B, A, C]
ANCHORS = "Concatenate/concat"


# ------------------------------------------------------------------ constant folding

def _strided_slice(x, begin, end, strides, node):
    a = node.attrs
    if a.get("ellipsis_mask") or a.get("new_axis_mask"):
        raise ValueError(f"{node.name}: StridedSlice with ellipsis/new-axis masks is not supported.")
    index = []
    for d in range(len(begin)):
        b = None if a.get("begin_mask", 0) >> d & 1 else int(begin[d])
        e = None if a.get("end_mask", 0) >> d & 1 else int(end[d])
        if a.get("shrink_axis_mask", 0) >> d & 1:
            index.append(int(begin[d]))
        else:
            index.append(slice(b, e, int(strides[d])))
    return np.asarray(x)[tuple(index)]


_FOLD_OPS = {
    "Cast": lambda n, x: np.asarray(x).astype({1: np.float32, 3: np.int32, 9: np.int64}[n.attrs["DstT"]]),
    "RealDiv": lambda n, a, b: np.asarray(a / b, dtype=np.result_type(a, b)),
    "Mul": lambda n, a, b: a * b, "Add": lambda n, a, b: a + b, "AddV2": lambda n, a, b: a + b,
    "Sub": lambda n, a, b: a - b, "Minimum": lambda n, a, b: np.minimum(a, b),
    "Maximum": lambda n, a, b: np.maximum(a, b), "Sqrt": lambda n, x: np.sqrt(x),
    "Exp": lambda n, x: np.exp(x),
    "Range": lambda n, s, e, d: np.arange(s, e, d, dtype=np.result_type(s, e, d)),
    "ExpandDims": lambda n, x, axis: np.expand_dims(x, int(axis)),
    "Reshape": lambda n, x, shape: np.reshape(x, tuple(int(s) for s in np.ravel(shape))),
    "Fill": lambda n, dims, v: np.full(tuple(int(d) for d in np.ravel(dims)), v),
    "Tile": lambda n, x, reps: np.tile(x, tuple(int(r) for r in reps)),
    "Slice": lambda n, x, b, s: np.asarray(x)[tuple(
        slice(int(bi), None if int(si) == -1 else int(bi) + int(si)) for bi, si in zip(b, s))],
    "StridedSlice": lambda n, x, b, e, s: _strided_slice(x, b, e, s, n),
    "Pack": lambda n, *xs: np.stack(xs, axis=n.attrs.get("axis", 0)),
    "ConcatV2": lambda n, *xs: np.concatenate(xs[:-1], axis=int(xs[-1])),
    "Shape": lambda n, x: np.array(np.shape(x), dtype=np.int32),
}


def fold(graph: Graph, name: str, _memo: dict | None = None) -> np.ndarray:
    """Evaluate a node whose value depends on constants only (e.g. the anchor generator).

    Control inputs (``^assert``) are ignored: they order side effects, not values. A node that
    needs the image, or an op this small evaluator doesn't know, raises with its name."""
    memo = {} if _memo is None else _memo
    base = name.split(":")[0].lstrip("^")
    if base in memo:
        return memo[base]
    node = graph[base]
    if node.op == "Const":
        value = node.value
    elif node.op == "Identity":
        value = fold(graph, node.data_inputs()[0], memo)
    elif node.op in _FOLD_OPS:
        args = [fold(graph, i, memo) for i in node.data_inputs()]
        value = _FOLD_OPS[node.op](node, *args)
    else:
        raise ValueError(f"cannot fold {node.name!r}: its op {node.op} is not a constant "
                         f"computation this reader evaluates ({sorted(_FOLD_OPS)}).")
    memo[base] = value
    return value


# ------------------------------------------------------------------ what the graph says

@dataclass(frozen=True)
class SSDConfig:
    """Every setting of the original detector outside its weights, as read from the graph."""

    input_size: tuple[int, int]          # (width, height) of the stretch resize
    resize_op: str                       # "ResizeBilinear"
    align_corners: bool
    half_pixel_centers: bool
    pixel_scale: float                   # x * pixel_scale - pixel_offset
    pixel_offset: float
    anchors_yxyx: np.ndarray             # (A, 4) normalised ymin, xmin, ymax, xmax
    encoding_order: str                  # "yxhw": what each of the 4 box channels encodes
    scale_factors: tuple[float, float, float, float]  # in encoding order
    score_fn: str                        # "sigmoid" or "softmax"
    logit_scale: float
    iou_threshold: float
    score_threshold: float
    max_per_class: int
    max_total: int
    num_classes: int                     # with the background


def _only(graph: Graph, op: str, scope: str = ""):
    nodes = [n for n in graph.values() if n.op == op and n.name.startswith(scope)]
    if len(nodes) != 1:
        raise ValueError(f"expected one {op} node under {scope or 'the graph'!r}; found "
                         f"{len(nodes)}. Is this a TF Object Detection API SSD graph?")
    return nodes[0]


def _scalar_input(graph: Graph, node_name: str) -> float:
    """The constant operand of a binary node (one of its two inputs is a Const)."""
    node = graph[node_name]
    for i in node.data_inputs():
        src = graph.follow(i)
        if src.op == "Const":
            return float(src.value)
    raise ValueError(f"{node_name}: no constant operand.")


def _encoding_order(graph: Graph) -> tuple[str, tuple[float, ...]]:
    """Which box channel is which, and its scale factor, from how Decode uses them.

    Decode unstacks the 4 encodings (ports 0..3) and divides each by its scale factor. A centre
    offset (divided by a factor, then multiplied by the anchor size) is later *added* to an anchor
    centre; a size offset goes through Exp. Which anchor size it multiplies tells y from x: the
    anchor height is ymax - ymin (anchor ports 2 - 0), the width xmax - xmin (ports 3 - 1)."""
    dec = "Postprocessor/Decode/"
    sizes = {}
    for sub in ("get_center_coordinates_and_sizes/sub", "get_center_coordinates_and_sizes/sub_1"):
        a, b = graph[dec + sub].inputs
        ports = (int(a.split(":")[1]) if ":" in a else 0, int(b.split(":")[1]) if ":" in b else 0)
        sizes[dec + sub] = {(2, 0): "h", (3, 1): "w"}[ports]
    order, factors = [None] * 4, [None] * 4
    for node in graph.scope(dec):
        if node.op != "RealDiv" or not node.inputs[0].startswith(dec + "unstack"):
            continue
        port = int(node.inputs[0].split(":")[1]) if ":" in node.inputs[0] else 0
        factor = _scalar_input(graph, node.name)
        users = [n for n in graph.scope(dec) if node.name in n.data_inputs()]
        if any(u.op == "Exp" for u in users):  # a size offset: exp(t / s) * anchor size
            exp = next(u for u in users if u.op == "Exp")
            mul = next(n for n in graph.scope(dec) if n.op == "Mul" and exp.name in n.data_inputs())
            size = next(i for i in mul.data_inputs() if i != exp.name)
            order[port] = sizes[size]
        else:  # a centre offset: t / s * anchor size + centre
            mul = users[0]
            size = next(i for i in mul.data_inputs() if i != node.name)
            order[port] = {"h": "y", "w": "x"}[sizes[size]]
        factors[port] = factor
    if None in order:
        raise ValueError(f"could not read the box coder from {dec}: found {order}.")
    return "".join(order), tuple(factors)


def read_config(graph: Graph) -> SSDConfig:
    resize = _only(graph, "ResizeBilinear", "Preprocessor/")
    size = fold(graph, resize.inputs[1])
    height, width = (int(v) for v in np.ravel(size))
    scale = _scalar_input(graph, "Preprocessor/mul")
    offset = _scalar_input(graph, "Preprocessor/sub")
    order, factors = _encoding_order(graph)
    convert = graph["Postprocessor/convert_scores"]
    score_fn = {"Sigmoid": "sigmoid", "Softmax": "softmax"}.get(convert.op)
    if score_fn is None:
        raise ValueError(f"unknown score converter {convert.op} at {convert.name}.")
    nms = _only(graph, "NonMaxSuppressionV3", "Postprocessor/")
    _, _, max_out, iou, score = nms.inputs
    per_class = graph.follow(graph[max_out.split(":")[0]].inputs[0]).value  # Minimum(100, n)
    total = _max_total(graph)
    anchors = fold(graph, ANCHORS).astype(np.float32)
    # Every predictor reshapes its logits to (batch, -1, classes); the first one says how many.
    classes = _reshape_tail(graph, graph.follow("concat_1").data_inputs()[0])[-1]
    return SSDConfig(
        input_size=(width, height), resize_op=resize.op,
        align_corners=bool(resize.attrs.get("align_corners", False)),
        half_pixel_centers=bool(resize.attrs.get("half_pixel_centers", False)),
        pixel_scale=scale, pixel_offset=offset, anchors_yxyx=anchors,
        encoding_order=order, scale_factors=factors, score_fn=score_fn,
        logit_scale=_scalar_input(graph, "Postprocessor/scale_logits"),
        iou_threshold=float(graph.const(iou)), score_threshold=float(graph.const(score)),
        max_per_class=int(per_class), max_total=total, num_classes=classes)


def _max_total(graph: Graph) -> int:
    # PadOrClipBoxList pads every image's result to max_total_size: its Pad amount is
    # max_total - n, so the Sub feeding it starts from that constant.
    for node in graph.scope("Postprocessor/BatchMultiClassNonMaxSuppression/map/while/PadOrClipBoxList/"):
        if node.op == "Sub":
            src = graph.follow(node.inputs[0])
            if src.op == "Const" and src.value.size == 1:
                return int(src.value)
    raise ValueError("could not find the total detection limit (PadOrClipBoxList).")


def _reshape_tail(graph: Graph, name: str) -> tuple[int, ...]:
    """The constant part of a predictor Reshape's target shape: Pack(batch, -1, 1, 4) -> (-1, 1, 4)."""
    node = graph.follow(name)
    if node.op != "Reshape":
        raise ValueError(f"{name}: expected a Reshape, found {node.op}.")
    shape = graph.follow(node.inputs[1])
    if shape.op == "Const":
        return tuple(int(v) for v in np.ravel(shape.value)[1:])
    if shape.op != "Pack":
        raise ValueError(f"{shape.name}: expected the Reshape's shape to be a Pack or a Const.")
    return tuple(int(graph.const(i)) for i in shape.inputs[1:])


# ------------------------------------------------------------------ the network

def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2  # TensorFlow puts the odd pixel after


class GraphNetwork(torch.nn.Module):
    """The frozen graph's network between the preprocessed image and its raw outputs.

    ``forward(x)``: x is N x 3 x H x W, RGB scaled to [-1, 1] at the graph's input size;
    returns (box_encodings [N, A, 4] in the graph's order, class_logits [N, A, C]).
    Built by walking the graph backwards from the outputs: one step per node, with the convs'
    weights transposed from TensorFlow's HWIO/HWC1 layouts to PyTorch's OIHW."""

    def __init__(self, graph: Graph, input_size: tuple[int, int]):
        super().__init__()
        self.steps: list[tuple] = []
        self.convs = torch.nn.ModuleList()
        self._hw: dict[str, tuple[int, int]] = {INPUT: (input_size[1], input_size[0])}
        self._names: dict[str, str] = {}
        order = self._topological(graph)
        users: dict[str, int] = {}
        for name in order:
            for i in graph[name].data_inputs():
                users[i] = users.get(i, 0) + 1
        for name in order:
            self._add(graph, graph[name], users)
        self.output_names = tuple(self._resolve(o) for o in OUTPUTS)

    def _topological(self, graph: Graph) -> list[str]:
        seen, order = {INPUT}, []
        stack = [(o, False) for o in OUTPUTS]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in seen:
                continue
            seen.add(name)
            node = graph[name]
            stack.append((name, True))
            inputs = node.data_inputs()
            if node.op == "Reshape":
                inputs = inputs[:1]  # the shape input is computed from Shape(): read it, don't run it
            for i in inputs:
                if graph[i].op != "Const":
                    stack.append((i, False))
        return order

    def _resolve(self, name: str) -> str:
        while name in self._names:
            name = self._names[name]
        return name

    def _add(self, graph: Graph, node, users: dict) -> None:
        ins = [self._resolve(i) for i in node.data_inputs()]
        op = node.op
        if op == "Identity":
            self._names[node.name] = ins[0]
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            self._conv(graph, node, ins[0])
        elif op in ("FusedBatchNorm", "FusedBatchNormV3", "BiasAdd"):
            conv = self._conv_step(ins[0])
            if conv is None or users.get(node.data_inputs()[0], 0) != 1:
                raise ValueError(f"{node.name}: expected a {op} right after a conv with no other user.")
            self._fold_into(graph, node, conv)
            self._names[node.name] = ins[0]
        elif op == "Relu6":
            self.steps.append((node.name, "relu6", ins, None))
            self._hw[node.name] = self._hw.get(ins[0])
        elif op in ("Add", "AddV2"):
            self.steps.append((node.name, "add", ins, None))
            self._hw[node.name] = self._hw.get(ins[0])
        elif op == "Reshape":
            self.steps.append((node.name, "reshape", ins[:1], _reshape_tail(graph, node.name)))
        elif op == "ConcatV2":
            axis = int(graph.const(node.inputs[-1]))
            if any(i in self._hw for i in ins[:-1]):
                raise ValueError(f"{node.name}: a channel concat of feature maps is not supported.")
            self.steps.append((node.name, "concat", ins[:-1], axis))
        elif op == "Squeeze":
            self.steps.append((node.name, "squeeze", ins, tuple(node.attrs.get("squeeze_dims") or [])))
        else:
            raise ValueError(f"{node.name}: op {op} is not one this port converts. The graph "
                             "is not the SSDLite-MobileNetV2 it was written for.")

    def _conv_step(self, name: str):
        for step in reversed(self.steps):
            if step[0] == name and step[1] == "conv":
                return step
        return None

    def _conv(self, graph: Graph, node, src: str) -> None:
        if node.attrs.get("data_format", "NHWC") != "NHWC":
            raise ValueError(f"{node.name}: data_format {node.attrs['data_format']}; expected NHWC.")
        if any(d != 1 for d in node.attrs.get("dilations", [1, 1, 1, 1])):
            raise ValueError(f"{node.name}: dilated convolutions are not supported.")
        w = graph.const(node.inputs[1])  # HWIO, or HW C 1 for depthwise
        kh, kw = w.shape[:2]
        sh, sw = node.attrs["strides"][1:3]
        h, wd = self._hw[src]
        if node.attrs["padding"] == "SAME":
            pad_h, pad_w = _same_padding(h, kh, sh), _same_padding(wd, kw, sw)
        elif node.attrs["padding"] == "VALID":
            pad_h = pad_w = (0, 0)
        else:
            raise ValueError(f"{node.name}: padding {node.attrs['padding']} is not supported.")
        depthwise = node.op == "DepthwiseConv2dNative"
        if depthwise:
            if w.shape[3] != 1:
                raise ValueError(f"{node.name}: depth multiplier {w.shape[3]}; expected 1.")
            weight = np.transpose(w, (2, 3, 0, 1))  # HWC1 -> C1HW
            groups, out_c = w.shape[2], w.shape[2]
        else:
            weight = np.transpose(w, (3, 2, 0, 1))  # HWIO -> OIHW
            groups, out_c = 1, w.shape[3]
        symmetric = pad_h[0] == pad_h[1] and pad_w[0] == pad_w[1]
        conv = torch.nn.Conv2d(weight.shape[1] * groups, out_c, (kh, kw), stride=(sh, sw),
                               padding=(pad_h[0], pad_w[0]) if symmetric else 0,
                               groups=groups, bias=True)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            conv.bias.zero_()
        self.convs.append(conv)
        pad = None if symmetric else (pad_w[0], pad_w[1], pad_h[0], pad_h[1])
        self.steps.append((node.name, "conv", [src], (len(self.convs) - 1, pad)))
        self._hw[node.name] = (math.ceil((h + sum(pad_h) - kh + 1) / sh),
                               math.ceil((wd + sum(pad_w) - kw + 1) / sw))

    def _fold_into(self, graph: Graph, node, step) -> None:
        conv = self.convs[step[3][0]]
        with torch.no_grad():
            if node.op == "BiasAdd":
                conv.bias += torch.from_numpy(graph.const(node.inputs[1]).astype(np.float32))
                return
            if node.attrs.get("is_training", False):
                raise ValueError(f"{node.name}: a training-mode batch norm in a frozen graph.")
            gamma, beta, mean, var = (torch.from_numpy(graph.const(i).astype(np.float64))
                                      for i in node.inputs[1:5])
            eps = float(node.attrs["epsilon"])  # 0.001 here, not PyTorch's 1e-5 default
            k = gamma / torch.sqrt(var + eps)
            w = conv.weight.double() * k.view(-1, 1, 1, 1)
            b = (conv.bias.double() - mean) * k + beta
            conv.weight.copy_(w.float())
            conv.bias.copy_(b.float())

    def forward(self, x: torch.Tensor):
        env = {INPUT: x}
        for name, kind, ins, extra in self.steps:
            if kind == "conv":
                index, pad = extra
                y = env[ins[0]]
                if pad is not None:
                    y = F.pad(y, pad)
                y = self.convs[index](y)
            elif kind == "relu6":
                y = F.relu6(env[ins[0]])
            elif kind == "add":
                y = env[ins[0]] + env[ins[1]]
            elif kind == "reshape":
                # NCHW -> NHWC first: TensorFlow flattens (row, column, anchor, value).
                y = env[ins[0]].permute(0, 2, 3, 1).reshape(x.shape[0], *extra)
            elif kind == "concat":
                y = torch.cat([env[i] for i in ins], dim=extra)
            else:  # squeeze
                y = env[ins[0]]
                for d in sorted(extra, reverse=True):
                    y = y.squeeze(d)
            env[name] = y
        return tuple(env[o] for o in self.output_names)


def load(path) -> tuple[GraphNetwork, SSDConfig]:
    """Parse a frozen SSD graph: its network (eval mode, float32) and its settings."""
    graph = read_graph(path)
    config = read_config(graph)
    return GraphNetwork(graph, config.input_size).eval(), config
