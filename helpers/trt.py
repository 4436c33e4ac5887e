"""TensorRT: build an engine from ONNX, cache it safely, inspect it, run it on torch tensors.

Written to the TensorRT Python API of both 10.x (JetPack 6 ships 10.3) and 11.x, choosing by
*feature*, never by version string:

- precision. Explicit quantization (an INT8 QDQ ONNX model) builds a strongly typed network
  and sets no precision flag, as NVIDIA's documentation asks. FP16 uses
  ``BuilderFlag.FP16`` where that flag still exists (10.x); where it does not (11.x is
  strongly typed only) it needs an FP16 ONNX model, and we say so. FP32 builds strongly typed
  where that is available, so no layer silently drops precision.
- ``engine.device_memory_size_v2`` where present (10.1+), else ``device_memory_size``.
- TF32. TensorRT lets FP32 convolutions and matrix products round their inputs to TF32 (10-bit
  mantissa) by default on Ampere and newer GPUs. An FP32 engine here clears
  ``BuilderFlag.TF32`` wherever that flag exists (10.x and 11.x both have it), so "FP32" keeps
  the FP32 drift tolerance (outputs within 1e-3 of PyTorch's). Where the flag is absent the
  engine is labelled ``precision="tf32"`` and judged against the TF32 row of
  ``metrics.TOLERANCES``, rather than loosening FP32's for everyone.

The engine cache is plain Python, testable without TensorRT: the key is the ONNX file's
sha256, the precision, the GPU's name and compute capability, the TensorRT version and every
build setting (workspace, typing mode, precision flags, profile shapes); the
plan and a JSON sidecar (with the plan's own sha256) are written atomically; a plan whose
sidecar is missing, disagrees or whose bytes fail their checksum is deleted and rebuilt,
with a message saying why.

Nothing here imports tensorrt at module level: ``available()`` says whether it can run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from .files import atomic_path, write_text
from .runtimes import _Base

__all__ = ["available", "EngineKey", "EngineCache", "build_engine", "engine_summary", "TensorRT"]

PRECISIONS = ("fp32", "fp16", "int8")


def available() -> str:
    """"" when TensorRT and a CUDA device are usable here, else the reason they are not."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return (f"import tensorrt failed ({type(exc).__name__}: {exc}). On a Jetson it comes with JetPack "
                "(python3-libnvinfer); elsewhere, with internet, `pip install tensorrt-cu12` (or -cu13, to "
                "match torch's CUDA) installs it from NVIDIA's index, which PyPI's package points to")
    import torch

    if not torch.cuda.is_available():
        return "TensorRT is installed but torch sees no CUDA device"
    return ""


@dataclass(frozen=True)
class EngineKey:
    """What an engine plan depends on. A change in any field means a rebuild."""

    onnx_sha256: str
    precision: str
    gpu: str  # name
    compute_capability: str  # "8.7"
    tensorrt: str  # version
    max_batch: int = 1
    profile: str = ""  # explicit optimization-profile shapes, when the model has more than a dynamic batch
    build: str = ""  # the build settings: workspace, typing mode, precision flags, the profile used

    @classmethod
    def for_model(cls, onnx_path, precision: str, max_batch: int = 1, gpu: str | None = None,
                  compute_capability: str | None = None, tensorrt_version: str | None = None,
                  profile: str = "", build: str = "") -> EngineKey:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; found {precision!r}.")
        if gpu is None or compute_capability is None:
            import torch

            gpu = gpu or torch.cuda.get_device_name()
            compute_capability = compute_capability or "{}.{}".format(*torch.cuda.get_device_capability())
        if tensorrt_version is None:
            import tensorrt

            tensorrt_version = tensorrt.__version__
        from .assets import sha256sum

        return cls(sha256sum(Path(onnx_path)), precision, gpu, compute_capability, tensorrt_version, int(max_batch),
                   profile, build)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class EngineCache:
    """Serialized plans on disk, one file per key, each with a JSON sidecar."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def paths(self, key: EngineKey, stem: str = "model") -> tuple[Path, Path]:
        base = self.directory / f"{stem}-{key.precision}-{key.digest}"
        return base.with_suffix(".engine"), base.with_suffix(".json")

    def load(self, key: EngineKey, stem: str = "model") -> bytes | None:
        """The plan for ``key``, or None (after deleting anything unusable, with a warning)."""
        plan_path, meta_path = self.paths(key, stem)
        if not plan_path.exists() and not meta_path.exists():
            return None
        problem = None
        try:
            meta = json.loads(meta_path.read_text())
            data = plan_path.read_bytes()
            if not (isinstance(meta, dict) and isinstance(meta.get("key"), dict)):
                raise ValueError(f"expected a JSON object with a 'key', found {type(meta).__name__}")
            if meta.get("key") != asdict(key):
                changed = [k for k, v in asdict(key).items() if meta.get("key", {}).get(k) != v]
                problem = f"it was built for a different {', '.join(changed)}"
            elif hashlib.sha256(data).hexdigest() != meta.get("plan_sha256"):
                problem = "its bytes do not match the checksum recorded when it was written (corrupt)"
        except FileNotFoundError as exc:
            problem = f"{Path(exc.filename).name} is missing (an interrupted write?)"
        except (ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
            problem = f"its sidecar could not be read ({exc})"
        if problem:
            warnings.warn(f"TensorRT engine cache: {plan_path.name} is stale or corrupt ({problem}); "
                          "deleting it, the engine will be rebuilt.", RuntimeWarning, stacklevel=2)
            for p in (plan_path, meta_path):
                p.unlink(missing_ok=True)
            return None
        return data

    def store(self, key: EngineKey, plan: bytes, stem: str = "model", extra: dict | None = None) -> Path:
        """Write the plan, then its sidecar; each atomically, so a reader sees both or neither
        as valid (a plan without a matching sidecar is treated as stale)."""
        plan_path, meta_path = self.paths(key, stem)
        with atomic_path(plan_path) as tmp:
            tmp.write_bytes(bytes(plan))
        meta = {"key": asdict(key), "plan_sha256": hashlib.sha256(bytes(plan)).hexdigest(),
                "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}
        write_text(meta_path, json.dumps(meta, indent=2) + "\n")
        return plan_path


def _parse_errors(parser) -> str:
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = err.node()
        where = f"node {node}" if node >= 0 else "the model"
        name = getattr(err, "node_name", lambda: "")()
        op = getattr(err, "node_operator", lambda: "")()
        if name or op:
            where += f" ({name or '?'}, op {op or '?'})"
        lines.append(f"{where}: {err.desc()}")
    return "; ".join(lines)


def check_qdq(onnx_path) -> None:
    """Refuse a QDQ model that TensorRT cannot take. Its explicit quantization is symmetric
    signed INT8: every QuantizeLinear needs an int8 zero point of 0 (a missing one means
    uint8), and DequantizeLinear may read only int8 (no int32 biases). ONNX Runtime's CPU
    recipe (uint8 activations with zero points, int32 biases) would fail deep in the parser."""
    import numpy as np
    from onnx import numpy_helper

    model = _load_onnx(onnx_path)
    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
    bad = []
    for node in model.graph.node:
        name = node.name or node.output[0]
        if node.op_type == "QuantizeLinear":
            if len(node.input) < 3 or not node.input[2]:
                bad.append(f"{name} (no zero point: uint8)")
            elif node.input[2] not in consts:
                bad.append(f"{name} (zero point {node.input[2]!r} is computed, not a constant)")
            else:
                zp = numpy_helper.to_array(consts[node.input[2]])
                nonzero = zp[zp != 0]
                if zp.dtype != np.int8 or nonzero.size:
                    bad.append(f"{name} ({zp.dtype} zero point, e.g. {(nonzero if nonzero.size else zp).ravel()[0]})")
        elif node.op_type == "DequantizeLinear" and node.input[0] in consts:
            dtype = numpy_helper.to_array(consts[node.input[0]]).dtype
            if dtype != np.int8:
                bad.append(f"{name} (dequantizes a {dtype} constant, e.g. an int32 bias)")
    if bad:
        raise ValueError(f"{Path(onnx_path).name} is quantized for ONNX Runtime, not TensorRT: {len(bad)} Q/DQ "
                         f"node(s) TensorRT cannot parse, e.g. {bad[0]}. TensorRT takes symmetric signed INT8 "
                         "only: quantize with helpers.export.quantize_int8(..., target='tensorrt').")


def _load_onnx(onnx_path):
    """The ONNX model, or a ValueError that says the file is not one (not protobuf's DecodeError)."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}. Export it with helpers.export.export_onnx.")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # google.protobuf.message.DecodeError, truncated files, ...
        raise ValueError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}). It is "
                         "corrupt or truncated: delete it and export again with "
                         "helpers.export.export_onnx.") from None


def profile_text(shapes: dict | None) -> str:
    """The cache key's text for explicit profile shapes: {input: (min, opt, max)}."""
    if not shapes:
        return ""
    return ";".join(f"{name}:" + "/".join("x".join(str(int(d)) for d in s) for s in shapes[name])
                    for name in sorted(shapes))


def build_engine(onnx_path, precision: str = "fp32", max_batch: int = 1, workspace_gb: float = 1.0,
                 cache_dir="build/engines", timing_cache=None, verbose: bool = False,
                 shapes: dict | None = None) -> tuple[bytes, dict]:
    """A serialized engine for ``onnx_path`` (from the cache when valid) and build facts:
    {"cached", "build_s", "precision", "strongly_typed", "path"}.

    ``shapes``: {input name: (min, opt, max)} full shapes for an input with dynamic axes beyond
    the batch, e.g. an image filter's height and width: TensorRT tunes its kernels for ``opt``
    and accepts anything between ``min`` and ``max``. Default: a batch-only profile,
    1 .. ``max_batch``."""
    onnx_path = Path(onnx_path)
    _load_onnx(onnx_path)  # a clear error for a missing or corrupt file, before TensorRT's parser
    if precision == "int8":
        check_qdq(onnx_path)
    import tensorrt as trt

    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    strongly_typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    # QDQ INT8 and FP32 build strongly typed; FP16 needs the (10.x) flag on a weakly typed net.
    strongly_typed = strongly_typed_flag is not None and not (precision == "fp16" and has_fp16_flag)
    fp16_flag = precision == "fp16" and has_fp16_flag
    # TF32 rounds FP32 products to a 10-bit mantissa: off for an FP32 engine (module docstring).
    tf32 = not (precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"))
    key = EngineKey.for_model(onnx_path, precision, max_batch, profile=profile_text(shapes),
                              build=build_text(workspace_gb, strongly_typed, fp16_flag, max_batch, shapes, tf32))
    cache = EngineCache(cache_dir)
    plan = cache.load(key, onnx_path.stem)
    judged_as = "tf32" if precision == "fp32" and tf32 else precision
    if plan is not None:
        return plan, {"cached": True, "build_s": 0.0, "precision": precision, "judged_as": judged_as,
                      "path": str(cache.paths(key, onnx_path.stem)[0])}

    logger = trt.Logger(trt.Logger.INFO if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = (1 << int(strongly_typed_flag)) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise ValueError(f"TensorRT could not parse {onnx_path.name}: {_parse_errors(parser)}. "
                         "An unsupported op needs another export (opset) or a plugin.")
    if precision == "fp16" and not has_fp16_flag:
        # Strongly typed: FP16 must be in the model. NVIDIA's migration path (ModelOpt AutoCast)
        # keeps FP32 inputs and outputs and casts inside, so look at every tensor, not the inputs.
        if not _has_half_tensor(network, trt):
            raise ValueError("this TensorRT is strongly typed only (no BuilderFlag.FP16): FP16 must come from "
                             "the model itself. Export an FP16 ONNX (model.half() with a half example) and build "
                             "that with precision='fp16'.")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # for the engine inspector
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        if shapes and tensor.name in shapes:
            lo, opt, hi = (tuple(int(d) for d in s) for s in shapes[tensor.name])
            profile.set_shape(tensor.name, lo, opt, hi)
        elif -1 in shape[1:]:
            raise ValueError(f"input {tensor.name!r} has dynamic axes beyond the batch ({shape}); pass "
                             f"shapes={{{tensor.name!r}: (min_shape, opt_shape, max_shape)}} for its profile.")
        elif shape[0] == -1:
            lo, opt, hi = ([1] + shape[1:], [max(1, max_batch // 2)] + shape[1:], [max_batch] + shape[1:])
            profile.set_shape(tensor.name, lo, opt, hi)
    config.add_optimization_profile(profile)

    if precision == "int8":
        ops = {network.get_layer(i).type for i in range(network.num_layers)}
        if not ops & {trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE}:
            raise ValueError(f"{onnx_path.name} has no QuantizeLinear/DequantizeLinear nodes, so an 'int8' build "
                             "would silently be FP32. Quantize it first: helpers.export.quantize_int8(...).")

    # Timing measurements are only valid for one GPU and one TensorRT: key the file by both.
    timing_path = Path(timing_cache or Path(cache_dir) / f"timing-{key.compute_capability}-{key.tensorrt}.cache")
    blob = timing_path.read_bytes() if timing_path.is_file() else b""
    tcache = config.create_timing_cache(blob)
    if not config.set_timing_cache(tcache, ignore_mismatch=False):
        warnings.warn(f"TensorRT rejected the timing cache {timing_path.name}; starting a new one.", RuntimeWarning)
        timing_path.unlink(missing_ok=True)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - start
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build {onnx_path.name} at {precision}; rerun with verbose=True "
                           "to see the builder's log.")
    with atomic_path(timing_path) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    plan = bytes(serialized)
    path = cache.store(key, plan, onnx_path.stem, {"build_s": round(build_s, 2), "strongly_typed": strongly_typed})
    return plan, {"cached": False, "build_s": build_s, "precision": precision, "judged_as": judged_as,
                  "strongly_typed": strongly_typed, "path": str(path)}


def build_text(workspace_gb: float, strongly_typed: bool, fp16_flag: bool, max_batch: int,
               shapes: dict | None, tf32: bool = True) -> str:
    """Every build setting that changes the plan, as the cache key's text: a changed setting
    never reuses an old engine."""
    profile = profile_text(shapes) or f"batch:1/{max(1, max_batch // 2)}/{max_batch}"
    return (f"workspace={float(workspace_gb):g}GiB;typing={'strong' if strongly_typed else 'weak'};"
            f"flags={'FP16' if fp16_flag else '-'};tf32={'on' if tf32 else 'off'};profile={profile}")


def _has_half_tensor(network, trt) -> bool:
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        tensors += [layer.get_output(j) for j in range(layer.num_outputs)]
    return any(t is not None and t.dtype == trt.DataType.HALF for t in tensors)


# The inspector's words for a tensor's type. Without an execution context TensorRT writes
# "Half" or "Int8"; with one, "Row major linear FP16 format" or "Channel major FP16 format
# where channel % 8 == 0". The field was "Format/Datatype" in 10.x and is named otherwise in
# 11.x, so every text field of a binding is searched.
_PRECISION_WORDS = {"fp32": "fp32", "float": "fp32", "fp16": "fp16", "half": "fp16", "bf16": "bf16",
                    "int8": "int8", "fp8": "fp8", "int32": "int32", "int64": "int64", "bool": "bool",
                    "uint8": "uint8", "int4": "int4", "fp4": "fp4"}


def binding_precision(binding) -> str:
    """The precision of one inspector binding (a layer input or output), or "?"."""
    import re

    texts = [binding] if isinstance(binding, str) else [
        str(v) for k, v in (binding.items() if isinstance(binding, dict) else [])
        if isinstance(v, str) and any(w in k.lower() for w in ("type", "format"))]
    for text in texts:
        for word in re.findall(r"[A-Za-z]+\d*", text):
            if word.lower() in _PRECISION_WORDS:
                return _PRECISION_WORDS[word.lower()]
    return "?"


def _device_memory(engine) -> int:
    size = getattr(engine, "device_memory_size_v2", None)
    return int(size if size is not None else engine.device_memory_size)


def engine_summary(engine, context=None) -> dict:
    """Layers and their output precisions through the engine inspector, I/O tensors, device
    memory. ``context``: an execution context with its input shapes set (e.g. at the opt
    shape); attached to the inspector, it makes TensorRT report full formats for dynamic shapes.
    Layers built without ProfilingVerbosity.DETAILED have names only: counted as "?"."""
    import tensorrt as trt

    inspector = engine.create_engine_inspector()
    if context is not None:
        inspector.execution_context = context
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    precisions = {}
    for layer in layers:
        outputs = layer.get("Outputs", []) if isinstance(layer, dict) else [None]
        for out in outputs or [None]:
            p = binding_precision(out) if out is not None else "?"
            precisions[p] = precisions.get(p, 0) + 1
    io = [(engine.get_tensor_name(i), str(engine.get_tensor_mode(engine.get_tensor_name(i))).split(".")[-1],
           str(engine.get_tensor_dtype(engine.get_tensor_name(i))).split(".")[-1],
           tuple(engine.get_tensor_shape(engine.get_tensor_name(i)))) for i in range(engine.num_io_tensors)]
    return {"layers": len(layers), "output_precisions": precisions, "io": io,
            "device_memory_bytes": _device_memory(engine)}


class TensorRT(_Base):
    """A TensorRT engine behind the Runtime protocol: ``run(batch) -> tuple of CUDA tensors``.

    Inputs and outputs are torch tensors; their device pointers go straight to
    ``set_tensor_address``, and ``execute_async_v3`` runs on this runtime's own torch stream,
    so nothing is copied to the host. Output tensors are allocated per call (their shape
    follows the batch) and ordered as the engine lists them."""

    def __init__(self, plan: bytes | os.PathLike, device: int = 0, name: str | None = None,
                 output_order: list[str] | None = None, precision: str | None = None):
        why = available()
        if why:
            raise RuntimeError(f"the TensorRT runtime cannot run here: {why}.")
        import tensorrt as trt
        import torch

        self.torch, self.trt = torch, trt
        self.device = torch.device("cuda", device)
        data = Path(plan).read_bytes() if isinstance(plan, (str, os.PathLike)) else bytes(plan)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine: it is corrupt or was built by another "
                               "TensorRT version or for another GPU. Delete the .engine and .json files and call "
                               "build_engine again.")
        self.device_memory_bytes = _device_memory(self.engine)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            free, total = torch.cuda.mem_get_info(self.device)
            raise RuntimeError(f"TensorRT could not create an execution context: it needs "
                               f"{self.device_memory_bytes / 2**20:,.0f} MiB of device memory for activations "
                               f"(the largest of its optimization profiles) and {free / 2**20:,.0f} MiB of "
                               f"{total / 2**20:,.0f} MiB are free. Close other engines or contexts, or rebuild "
                               "with a narrower profile (smaller max shapes).")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if output_order is not None:  # by name: two outputs of one shape cannot be told apart otherwise
            if sorted(output_order) != sorted(self.outputs):
                raise ValueError(f"output_order {output_order} does not name the engine's outputs {self.outputs}.")
            self.outputs = list(output_order)
        if len(self.inputs) != 1:
            raise ValueError(f"the Runtime protocol feeds one tensor; this engine has inputs {self.inputs}.")
        self.stream = torch.cuda.Stream(device=self.device)
        self.dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.inputs[0]))
        self.name = name or "tensorrt"
        self.precision = precision  # what the drift judge takes: "fp32", "tf32", "fp16", "int8"

    def _torch_dtype(self, dt):
        torch, trt = self.torch, self.trt
        table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                 trt.DataType.INT8: torch.int8, trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
        for name, tdtype in (("INT64", torch.int64), ("BF16", torch.bfloat16), ("UINT8", torch.uint8)):
            if hasattr(trt.DataType, name):
                table[getattr(trt.DataType, name)] = tdtype
        if dt not in table:
            raise ValueError(f"TensorRT tensor type {dt} has no torch equivalent in this runtime.")
        return table[dt]

    def run(self, batch):
        torch = self.torch
        self._check_open()
        name = self.inputs[0]
        expected = tuple(self.engine.get_tensor_shape(name))
        if batch.device != self.device or batch.dtype != self.dtype or batch.ndim != len(expected) or \
                any(e != -1 and e != s for e, s in zip(expected, batch.shape)):
            raise ValueError(f"TensorRT input {name!r}: expected {self.dtype} {expected} (-1 = any) on {self.device}; "
                             f"found {batch.dtype} {tuple(batch.shape)} on {batch.device}.")
        batch = batch.contiguous()
        if not self.context.set_input_shape(name, tuple(batch.shape)):
            raise ValueError(f"TensorRT input {name!r}: shape {tuple(batch.shape)} is outside the engine's "
                             "optimization profile; rebuild with a larger max_batch (or wider shapes=).")
        self.context.set_tensor_address(name, batch.data_ptr())
        outs = []
        for out in self.outputs:
            shape = tuple(self.context.get_tensor_shape(out))
            t = torch.empty(shape, dtype=self._torch_dtype(self.engine.get_tensor_dtype(out)), device=self.device)
            self.context.set_tensor_address(out, t.data_ptr())
            outs.append(t)
        # The engine must see the batch as written: order its stream after the caller's.
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed; see the logger's messages above.")
        torch.cuda.current_stream(self.device).wait_stream(self.stream)
        for t in (batch, *outs):
            t.record_stream(self.stream)
        return tuple(outs)

    def close(self) -> None:
        if not self._closed and getattr(self, "stream", None) is not None:
            self.stream.synchronize()  # work in flight still uses the context
        self.context = self.engine = self.runtime = None
        super().close()

    def __repr__(self) -> str:
        mib = getattr(self, "device_memory_bytes", 0) / 2**20
        return f"TensorRT({self.name!r}, device={str(self.device)!r}, context memory {mib:,.0f} MiB)"
