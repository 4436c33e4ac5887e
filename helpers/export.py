"""ONNX export, checks, graph summary and INT8 quantization.

- ``export_onnx``: torch.export-based (dynamo) exporter, one self-contained ``.onnx`` file with
  a dynamic batch axis, checked and shape-inferred before it appears at its final path.
- ``load_checked``: load + ``onnx.checker`` with errors that say what to do.
- ``graph_summary``: what is inside a model file (ops, parameters, inputs/outputs, size).
- ``quantize_int8``: ONNX Runtime static quantization to QDQ INT8, calibrated on real frames.
- ``torch_int8_mobilenet_v2``: the same idea in PyTorch eager mode, for comparison.

Every writer is atomic: it writes a temporary file next to the target and renames it, so an
interrupted export never leaves a half-written model that a later lesson would load.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import torch

from .files import atomic_path


def load_checked(path: str | os.PathLike):
    """Load an ONNX file and run the ONNX checker; raise a clear error if either fails."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ONNX model not found: {path}. Export one with helpers.export.export_onnx(model, example, path)."
        )
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ValueError(
            f"{path} could not be parsed as an ONNX model ({type(exc).__name__}: {exc}). "
            f"The file is truncated or is not ONNX: delete it and export again."
        ) from exc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(
            f"{path} parses but fails the ONNX checker: {first}. "
            f"Re-export it (a different opset= may help) or report the exporter bug."
        ) from exc
    return model


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike,
                dynamic_batch: bool = True, opset: int | None = None,
                input_name: str = "images", output_names: list[str] | None = None,
                dynamic_hw: bool = False) -> Path:
    """Export ``model`` (one NCHW input) to a single-file ONNX model at ``path``; return the path.

    ``dynamic_batch`` makes axis 0 a named dimension ``batch`` so one file serves batch 1 for
    latency and bigger batches for throughput. ``dynamic_hw`` also frees axes 2 and 3
    (``height``, ``width``), for image-to-image filters that take any frame size.
    ``opset=None`` takes the exporter's default.
    """
    import onnx

    if model.training:
        raise ValueError(
            "expected a model in eval mode; found model.training=True. Call model.eval() before exporting, "
            "otherwise BatchNorm and Dropout are exported with their training behaviour."
        )
    if not isinstance(example, torch.Tensor) or example.ndim != 4:
        found = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise ValueError(f"expected an example NCHW tensor (e.g. torch.zeros(1, 3, 224, 224)); found {found}.")
    path = Path(path)
    # The tuple form of dynamic_shapes matches the positional example, so this works whatever
    # the model's forward() calls its argument.
    axes = {0: torch.export.Dim("batch", min=1)} if dynamic_batch else {}
    if dynamic_hw:
        # min=2: torch.export specialises sizes 0 and 1, so a free axis starts at 2.
        axes.update({2: torch.export.Dim("height", min=2), 3: torch.export.Dim("width", min=2)})
    dynamic_shapes = (axes,) if axes else None
    with atomic_path(path) as tmp:
        # The exporter narrates each stage on stdout; the notebook shows the summary instead.
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                torch.onnx.export(
                    model, (example,), str(tmp), dynamo=True, external_data=False,
                    opset_version=opset, dynamic_shapes=dynamic_shapes,
                    input_names=[input_name], output_names=output_names,
                )
        except Exception as exc:
            raise RuntimeError(
                f"torch.onnx.export failed for {type(model).__name__}: {type(exc).__name__}: "
                f"{(str(exc).strip().splitlines() or [''])[0]}\nExporter log:\n{chatter.getvalue()[-2000:]}"
            ) from exc
        try:
            checked = load_checked(tmp)
        except ValueError as exc:
            raise ValueError(f"the model exported for {path} fails its checks, so it was not written: {exc}") from exc
        # Strict inference fails loudly on shape contradictions; the inferred intermediate
        # shapes are saved too, so viewers (Netron) and the quantizer see every tensor's shape.
        inferred = onnx.shape_inference.infer_shapes(checked, check_type=True, strict_mode=True)
        onnx.save(inferred, str(tmp))
    return path


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _dtype_name(elem_type: int) -> str:
    import onnx

    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type)) if elem_type else "unknown"


def graph_summary(path: str | os.PathLike) -> dict:
    """What is inside an ONNX file: ops, parameters, opset, inputs/outputs and size."""
    import onnx

    model = load_checked(path)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    parameters = 0
    parameter_bytes = 0
    for tensor in graph.initializer:
        count = int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1
        parameters += count
        parameter_bytes += count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    ops = collections.Counter(node.op_type for node in graph.node)
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    return {
        "path": str(path),
        "file_bytes": os.path.getsize(path),
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "nodes": len(graph.node),
        "ops": dict(ops.most_common()),
        "parameters": parameters,
        "parameter_bytes": parameter_bytes,
        "external_data": any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer),
        "quantized": "QuantizeLinear" in ops or "QLinearConv" in ops,
        "inputs": [{"name": v.name, "shape": _dims(v), "dtype": _dtype_name(v.type.tensor_type.elem_type)}
                   for v in graph.input if v.name not in initializers],
        "outputs": [{"name": v.name, "shape": _dims(v), "dtype": _dtype_name(v.type.tensor_type.elem_type)}
                    for v in graph.output],
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def int8_recipe() -> dict:
    """Activation type and weight range for ONNX Runtime's CPU INT8 kernels on this machine.

    x86 without VNNI (AVX2 only) multiplies uint8 activations by int8 weights with
    VPMADDUBSW, whose 16-bit intermediate sums can saturate: 7-bit weights (reduce_range)
    keep them in range. int8 activations have no fast AVX2 kernel at all, so uint8 it is.
    VNNI's dot product accumulates in 32 bits, so full 8-bit weights are safe there. ARM's
    kernels are built around signed int8 for both.
    """
    from onnxruntime.quantization import QuantType

    if platform.machine().lower() in ("arm64", "aarch64"):
        return {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8, "reduce_range": False,
                "why": "ARM: signed int8 activations and weights (S8S8) are the native fast path"}
    vnni = bool(_cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, "reduce_range": not vnni,
            "why": ("x86 with VNNI: uint8 activations x int8 weights, full 8-bit weights" if vnni else
                    "x86 without VNNI (AVX2): uint8 activations x int8 weights, 7-bit weights (reduce_range) "
                    "so VPMADDUBSW's 16-bit sums do not saturate")}


def _as_float_batch(frame, index: int) -> np.ndarray:
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()  # calibration runs in ORT on the host
    frame = np.asarray(frame)
    if frame.ndim == 3:
        frame = frame[None]
    if frame.ndim != 4 or frame.dtype != np.float32:
        raise ValueError(
            f"calibration frame {index}: expected a preprocessed float32 NCHW (or CHW) array, exactly what the "
            f"model gets at inference; found dtype {frame.dtype}, shape {frame.shape}."
        )
    return np.ascontiguousarray(frame)


# MobileNetV2 (the classifier, and the detector's backbone) needs all three knobs below to keep
# its decisions in INT8; docs/int8_lab_log.md has the measurements behind them.
MOBILENET_V2_INT8 = {"calibrate_method": "mean-minmax", "float_first_convs": 3}

# The ported pedestrian detector (models.pedestrian_detector, a MobileNetV2 inside), judged on
# held-out vtest.avi frames with metrics.detection_drift(..., gt_score=0.5): matched-box IoU 0.959,
# unmatched 2.0%, mAP@0.5 drop 0.004 (INT8 tolerances 0.90 / 10% / 0.03). As in MobileNetV2 the
# first block stays float; per-channel weights are essential; outputs stay quantized. Every
# alternative measured is in docs/int8_lab_log.md.
PEDESTRIAN_INT8 = {"calibrate_method": "mean-minmax", "float_first_convs": 3, "float_outputs": False}

# Frames of OpenCV's vtest.avi (795 frames, 10 fps): the first 40 s calibrate, the last 40 s
# are judged. Disjoint, and far enough apart that no judged frame is a near copy of a
# calibration frame (people walk through the scene in a few seconds).
PEDESTRIAN_CALIBRATION_FRAMES = range(0, 400, 10)
PEDESTRIAN_HELD_OUT_FRAMES = range(400, 795, 5)


class VideoFrames(NamedTuple):
    calibration: list  # BGR uint8 frames, for INT8 calibration only
    held_out: list  # BGR uint8 frames that are judged and never calibrated on
    source: str  # one sentence: where the frames came from
    real: bool  # False: the synthetic fallback


def pedestrian_frames(path=None, calibration=PEDESTRIAN_CALIBRATION_FRAMES,
                      held_out=PEDESTRIAN_HELD_OUT_FRAMES) -> VideoFrames:
    """Calibration and held-out frames of real footage for the pedestrian detector.

    ``path``: a video file (default: vtest.avi through helpers.assets). The clip is decoded
    front to back (seeking in an AVI is not frame-exact on every backend) and only the frames
    at the two index ranges are kept; they must not overlap. Where the clip is absent, the
    frames come from two synthetic street scenes of different seeds (7 to calibrate, 102 to
    judge) at the clip's 768x576, and ``source`` says so."""
    import cv2

    from . import assets

    calibration, held_out = list(calibration), list(held_out)
    if set(calibration) & set(held_out):
        raise ValueError(f"calibration and held-out frames overlap at {sorted(set(calibration) & set(held_out))[:5]}; "
                         "judging a frame the quantizer calibrated on grades the exam with its answers.")
    if path is None:
        found = assets.locate("vtest_video")
        path = found.path
        if path is None:
            from .synth import Scene

            def scene(seed, indices):
                s = Scene(size=(768, 576), seed=seed, noise=0.3, length=max(indices) + 1)
                return [s.frame(i).noisy for i in indices]

            return VideoFrames(scene(7, calibration), scene(102, held_out),
                               f"synthetic street scenes (seeds 7 and 102), because vtest.avi was not found "
                               f"({found.asset.offline})", False)
    wanted = {i: "c" for i in calibration} | {i: "h" for i in held_out}
    cal, hel = {}, {}
    cap = cv2.VideoCapture(str(path))
    try:
        for index in range(max(wanted) + 1):
            ok, frame = cap.read()
            if not ok:
                raise ValueError(f"{path} ended after {index} frames; the frames asked for go up to {max(wanted)}.")
            if index in wanted:
                (cal if wanted[index] == "c" else hel)[index] = frame
    finally:
        cap.release()
    return VideoFrames([cal[i] for i in calibration], [hel[i] for i in held_out],
                       f"{Path(path).name}: calibration frames {calibration[0]}-{calibration[-1]} ({len(cal)}), "
                       f"held-out frames {held_out[0]}-{held_out[-1]} ({len(hel)})", True)


def quantize_detector(model, fp32_path, out_path, frames, target: str = "onnxruntime", **recipe) -> Path:
    """``quantize_int8`` for a detector, calibrated on raw BGR ``frames`` through the detector's
    own preprocessing (helpers.detect.Detector). ``recipe`` defaults to PEDESTRIAN_INT8."""
    return quantize_int8(fp32_path, out_path, detector_calibration(model, frames), target=target,
                         **(recipe or PEDESTRIAN_INT8))


def detector_calibration(model, frames) -> list:
    """Raw BGR ``frames`` as the detector's own preprocessing makes them: INT8 calibration
    batches (for quantize_int8 or ``matrix.build(calibration=...)``)."""
    from .detect import Detector

    pre = Detector(model).preprocess
    return [pre(f)[0] for f in frames]


def cpu_summary() -> dict:
    """The CPU a benchmark ran on: model name, cores, the INT8 instruction sets that decide
    ONNX Runtime's kernels, and the INT8 recipe they select (:func:`int8_recipe`)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    flags = sorted(_cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"})
    return {"model": model, "cores": os.cpu_count(), "int8_flags": flags, "int8_recipe": int8_recipe()["why"]}


_SHAPE_ONLY_OPS = {"Reshape", "Transpose", "Concat", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def _float_outputs(model) -> int:
    """Remove the QuantizeLinear/DequantizeLinear pairs between the last computing node and
    each graph output (through shape-only ops), so outputs keep float precision; return how
    many pairs were removed. ONNX Runtime then runs those last nodes with float outputs."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    removed, seen = 0, set()
    outputs = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input}
    stack = list(outputs)
    while stack:
        tensor = stack.pop()
        node = producer.get(tensor)
        # Nodes are tracked by name and outputs (ids of protobuf wrappers can be reused); the name
        # matters once a pair at an output is gone and its producer writes that output instead.
        if node is None or (key := (node.name, node.op_type, tuple(node.output))) in seen:
            continue
        seen.add(key)
        if node.op_type == "DequantizeLinear":
            q = producer.get(node.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a quantized constant (weights), not an activation
            source = q.input[0]
            consumers_of_q = [n for n in graph.node if q.output[0] in n.input]
            # Leave the pair when its float input is itself a graph input or output: renaming it
            # would leave a dangling output.
            if len(consumers_of_q) != 1 or source in inputs or source in outputs:
                continue
            dequantized = node.output[0]
            graph.node.remove(node)
            graph.node.remove(q)
            if any(o.name == dequantized for o in graph.output):
                # The output keeps its name: the float tensor's producer writes it directly.
                for n in graph.node:
                    n.output[:] = [dequantized if name == source else name for name in n.output]
                    n.input[:] = [dequantized if name == source else name for name in n.input]
                source = dequantized
            else:  # every reader of the dequantized tensor reads the float one
                for n in graph.node:
                    n.input[:] = [source if name == dequantized else name for name in n.input]
            producer = {o: n for n in graph.node for o in n.output}
            removed += 1
            stack.append(source)
        elif node.op_type in _SHAPE_ONLY_OPS:
            stack.extend(node.input)
    used = {name for n in graph.node for name in n.input}
    for init in [t for t in graph.initializer if t.name not in used]:  # the pairs' scales and zero points
        graph.initializer.remove(init)
    return removed


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  calibration_frames: Iterable, per_channel: bool = True,
                  reduce_range: bool | None = None, calibrate_method: str = "minmax",
                  float_first_convs: int = 0, float_outputs: bool = True,
                  target: str = "onnxruntime") -> Path:
    """Static INT8 quantization (QDQ format) of an FP32 ONNX model with ONNX Runtime.

    ``target``: who runs the QDQ model. "onnxruntime": the fastest recipe for this CPU's
    kernels (:func:`int8_recipe`, usually uint8 activations with a zero point). "tensorrt":
    TensorRT's explicit quantization takes *symmetric signed* INT8 only (zero point 0, for
    activations and weights) with float biases; an ONNX Runtime file would fail to parse there.

    ``calibration_frames``: preprocessed float32 NCHW batches (tensors or arrays), the same
    preprocessing as at inference. They set each activation's range, so they should look like
    what the model will see: real photos and scene frames, a few dozen is enough. Never
    calibrate on the images you then judge drift on.

    ``calibrate_method``:

    - "minmax": the widest range seen on any frame (the default; fast).
    - "mean-minmax": each activation's min and max per frame, averaged over the frames
      (ONNX Runtime's ``CalibMovingAverage``). One unusual frame no longer stretches a range,
      so the 256 levels are spent where the values are; the rare larger value is clipped.
    - "percentile" (clips the top 0.001% of each activation) or "entropy" (minimises KL
      divergence); both take several times longer.

    ``float_first_convs``: leave the first N Conv nodes (graph order) in float.
    ``float_outputs``: keep the graph outputs float (no Q/DQ pair between the last computing
    node and an output): a classifier's logits quantized to 256 levels tie for the top class on
    uncertain images, and a clipped range caps the confident ones. The pairs are removed through
    shape-only ops, so a detector whose outputs concatenate many head convs gets all of those
    convs with float outputs, which ONNX Runtime runs as float convs (PEDESTRIAN_INT8 says why the
    pedestrian detector keeps its outputs quantized).

    Weights are int8 per output channel (``per_channel``): MobileNetV2's depthwise filters
    differ by orders of magnitude between channels, and one scale per tensor would flatten
    the small ones to zero. The activation type and ``reduce_range`` (None: decided for this
    CPU) come from :func:`int8_recipe`; the choice is stored in the model's metadata.

    Why MobileNetV2 needs ``MOBILENET_V2_INT8`` and the detector ``PEDESTRIAN_INT8``: the
    measurements behind each knob are in docs/int8_lab_log.md.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    fp32 = load_checked(fp32_path)
    initializers = {t.name for t in fp32.graph.initializer}
    input_names = [v.name for v in fp32.graph.input if v.name not in initializers]
    if len(input_names) != 1:
        raise ValueError(f"expected a model with one input to calibrate; found inputs {input_names}.")
    batches = [_as_float_batch(f, i) for i, f in enumerate(calibration_frames)]
    if not batches:
        raise ValueError("expected at least one calibration frame; found none. Pass a few dozen preprocessed frames.")

    class Frames(CalibrationDataReader):
        def __init__(self):
            self._items = iter(batches)

        def get_next(self):
            batch = next(self._items, None)
            return None if batch is None else {input_names[0]: batch}

    methods = {"minmax": (CalibrationMethod.MinMax, {}),
               "mean-minmax": (CalibrationMethod.MinMax, {"CalibMovingAverage": True}),
               "percentile": (CalibrationMethod.Percentile, {}), "entropy": (CalibrationMethod.Entropy, {})}
    if calibrate_method not in methods:
        raise ValueError(f"calibrate_method must be one of {sorted(methods)}; found {calibrate_method!r}.")
    if not isinstance(float_first_convs, int) or float_first_convs < 0:
        raise ValueError(f"float_first_convs must be an int >= 0; found {float_first_convs!r}.")
    method, extra_options = methods[calibrate_method]
    if target not in ("onnxruntime", "tensorrt"):
        raise ValueError(f"target must be 'onnxruntime' or 'tensorrt'; found {target!r}.")
    recipe = int8_recipe()
    if target == "tensorrt":
        from onnxruntime.quantization import QuantType

        recipe = {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8, "reduce_range": False,
                  "why": "TensorRT: symmetric signed INT8 activations and weights (zero point 0)"}
        # Biases stay float: TensorRT's parser takes DequantizeLinear only on int8 activations and
        # weights, not on ORT's int32 biases; it folds a float bias into the INT8 kernel itself.
        extra_options = {**extra_options, "ActivationSymmetric": True, "WeightSymmetric": True,
                         "QuantizeBias": False}
    if reduce_range is not None:
        recipe["reduce_range"] = reduce_range
        recipe["why"] += f" (reduce_range={reduce_range} set by the caller)"

    with tempfile.TemporaryDirectory(prefix="evw-quant-") as work, atomic_path(out_path) as tmp:
        prepared = Path(work) / "prepared.onnx"
        # Symbolic shape inference + ORT's basic fusions (e.g. BatchNorm into Conv) first,
        # so each Conv gets one QDQ pair instead of quantizing intermediate tensors.
        # ORT's symbolic shape inference cannot follow free height/width through Pad and
        # SpaceToDepth (an image filter's input); it fails and drops a temp file in the cwd.
        # ONNX's own shape inference still runs for such models.
        image_input = next(v for v in fp32.graph.input if v.name == input_names[0])
        free_hw = any(d.dim_param for d in image_input.type.tensor_type.shape.dim[1:])
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=free_hw)
        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]
        excluded = convs[:float_first_convs]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Please consider to run pre-processing")
            quantize_static(
                str(prepared), str(tmp), Frames(), quant_format=QuantFormat.QDQ,
                per_channel=per_channel, reduce_range=recipe["reduce_range"],
                activation_type=recipe["activation_type"], weight_type=recipe["weight_type"],
                calibrate_method=method, nodes_to_exclude=excluded, extra_options=extra_options,
            )
        quantized = load_checked(tmp)
        unquantized_outputs = _float_outputs(quantized) if float_outputs else 0
        note = (f"static QDQ, {len(batches)} calibration batches, {calibrate_method}, per_channel={per_channel}, "
                f"activations {recipe['activation_type'].name}, weights {recipe['weight_type'].name}, "
                f"reduce_range={recipe['reduce_range']}, first {len(excluded)} convs float, "
                f"{'float' if float_outputs else 'quantized'} outputs ({unquantized_outputs} Q/DQ pairs removed): "
                f"{recipe['why']}")
        onnx.helper.set_model_props(quantized, {**{p.key: p.value for p in quantized.metadata_props},
                                                "evw.int8_recipe": note})
        onnx.checker.check_model(quantized)
        onnx.save(quantized, str(tmp))
    return out_path


def torch_int8_mobilenet_v2(calibration_batches: Iterable, engine: str | None = None) -> torch.nn.Module:
    """MobileNetV2 quantized by PyTorch eager-mode post-training quantization, on CPU.

    torchvision's quantizable copy of the architecture (QuantStub/DeQuantStub, fusable
    Conv-BN-ReLU blocks) gets the same offline float weights as ``helpers.models``; it is
    fused, calibrated on ``calibration_batches`` (preprocessed float32 NCHW) and converted.
    Run it with ``runtimes.TorchQuantized(model, engine)`` using the same engine.

    torch.ao.quantization is deprecated in favour of torchao (it still works in torch 2.14);
    its deprecation warnings are silenced here only. ONNX Runtime QDQ is the workbook's main
    INT8 path.
    """
    from torchvision.models.quantization import mobilenet_v2 as quantizable_mobilenet_v2

    from . import assets
    from .runtimes import default_quantized_engine

    engine = engine or default_quantized_engine()
    batches = [b if isinstance(b, torch.Tensor) else torch.from_numpy(np.asarray(b)) for b in calibration_batches]
    if not batches:
        raise ValueError("expected at least one calibration batch; found none.")
    with warnings.catch_warnings():
        for message in (".*torch.ao.quantization is deprecated", ".*reduce_range will be deprecated",
                        ".*quantized tensor creation functions",
                        # blocks without a residual carry an unused skip_add observer
                        "must run observer before calling calculate_qparams"):
            warnings.filterwarnings("ignore", message=message)
        from torch.ao.quantization import convert, get_default_qconfig, prepare

        # weights=None + our own state dict: torchvision's pre-quantized weights need a download.
        model = quantizable_mobilenet_v2(weights=None, quantize=False)
        state = torch.load(assets.resolve("mobilenet_v2_imagenet"), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval().fuse_model(is_qat=False)
        torch.backends.quantized.engine = engine
        model.qconfig = get_default_qconfig(engine)
        prepare(model, inplace=True)
        with torch.inference_mode():
            for batch in batches:
                model(batch.to("cpu", torch.float32))
        convert(model, inplace=True)
    return model
