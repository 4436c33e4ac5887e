"""Every runtime this machine can run for one model, built once, from one place.

A notebook, a benchmark or a filter asks for the matrix and gets runtimes behind the one
protocol of helpers.runtimes, plus the kinds that could not be built, each with its reason:

    m = matrix.build(model, torch.zeros(1, 3, 300, 300), calibration=batches,
                     recipe=export.PEDESTRIAN_INT8, output_names=["box_encodings", "class_logits"])
    for kind, rt in m.items():                     # "eager", "ort-int8", "trt-fp16", ...
        (boxes, logits) = rt.run(x.to(rt.device))  # same call, same tuple of torch tensors
    print(m.skip_lines())                          # "TensorRT FP16: skipped - <why>"
    m.close()                                      # or: with matrix.build(...) as m:

``kinds=`` picks a subset (default: every kind in KINDS); ``device="cuda"`` puts the torch
kinds on the GPU. Build artifacts (the FP32 ONNX export, the INT8 QDQ files for ONNX Runtime
and for TensorRT, the engines) live in ``cache_dir``, each named by a digest of what it
depends on: the weights, the network's code (its class source), the recipe and calibration
frames (INT8 only), the export options and the tool versions (torch, onnx, onnxruntime,
tensorrt). A changed recipe or retrained weights never reuse a file. Files are written
atomically (helpers.files) with a sidecar that records the key and the file's sha256; a file
whose sidecar is missing or disagrees is rebuilt.

The precision of every kind (``m.precision(kind)``) is what the drift judge takes:
``metrics.judge(figures, m.precision(kind), output="detection")``.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from . import runtimes
from .files import write_text

# kind -> (label, precision). The labels are what tables print.
KINDS = {
    "eager": ("eager FP32", "fp32"),
    "channels-last": ("eager channels_last", "fp32"),
    "compile": ("torch.compile", "fp32"),
    "cuda-graphs": ("compile + CUDA graphs", "fp32"),
    "eager-fp16": ("eager FP16", "fp16"),
    "ort-fp32": ("ORT FP32", "fp32"),
    "ort-int8": ("ORT INT8", "int8"),
    "ort-cuda-fp32": ("ORT CUDA FP32", "fp32"),
    "trt-fp32": ("TensorRT FP32", "fp32"),
    "trt-fp16": ("TensorRT FP16", "fp16"),
    "trt-int8": ("TensorRT INT8", "int8"),
    "torch-tensorrt": ("Torch-TensorRT FP16", "fp16"),
    "modelopt-int8": ("TensorRT INT8 (ModelOpt)", "int8"),
}
# Built unless asked for by name: optional NVIDIA tools, each a skip with its reason here.
OPTIONAL = ("torch-tensorrt", "modelopt-int8")
DEFAULT_KINDS = tuple(k for k in KINDS if k not in OPTIONAL)


class Skip(NamedTuple):
    """A kind this machine cannot run, and why (one sentence)."""

    kind: str
    reason: str

    @property
    def label(self) -> str:
        return KINDS[self.kind][0]

    def __str__(self) -> str:
        return f"{self.label}: skipped - {self.reason}"


class Unavailable(Exception):
    """Raised by a kind's builder: the kind is skipped with this message as its reason."""


def tool_versions() -> dict[str, str]:
    """The versions every artifact depends on; "none" for a tool that is not installed."""
    from importlib import metadata

    out = {"torch": torch.__version__}
    for name, dists in (("onnx", ("onnx",)), ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
                        ("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"))):
        out[name] = "none"
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    if out["tensorrt"] == "none":  # JetPack's python3-libnvinfer has no pip metadata
        try:
            import tensorrt

            out["tensorrt"] = tensorrt.__version__
        except Exception:
            pass
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, range)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return getattr(value, "name", None) or repr(value)  # enums (QuantType) by name


def network_code(model: torch.nn.Module) -> str:
    """The source of the model's class and of every module class inside it: a changed
    forward() must never pick up an old export."""
    texts = []
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        if cls.__module__.startswith("torch."):
            continue  # torch's own layers: covered by the torch version
        try:
            texts.append(inspect.getsource(cls))
        except (OSError, TypeError):  # defined in a notebook cell or a REPL
            texts.append(f"{cls.__module__}.{cls.__qualname__}")
    return "\n".join(texts)


def weights_digest(model: torch.nn.Module, *extra) -> str:
    """A short sha256 of the weights, the network's code, the tool versions and ``extra``
    (JSON-able parts, or tensors/arrays hashed by their bytes)."""
    h = hashlib.sha256(network_code(model).encode())
    h.update(json.dumps(tool_versions(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for part in extra:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().numpy()
        if hasattr(part, "tobytes"):
            h.update(str(part.dtype).encode() + str(part.shape).encode() + part.tobytes())
        else:
            h.update(json.dumps(_jsonable(part), sort_keys=True).encode())
    return h.hexdigest()[:16]


def cached(path: Path, make: Callable[[Path], object], key: dict) -> Path:
    """``path`` if it exists with a sidecar that records ``key`` and the file's checksum, else
    ``make(path)`` (an atomic writer) and then the sidecar."""
    from .assets import sha256sum

    sidecar = path.with_name(path.name + ".json")
    if path.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            if meta.get("key") == _jsonable(key) and meta.get("sha256") == sha256sum(path):
                return path
        except (ValueError, OSError):
            pass  # unreadable sidecar: rebuild
    make(path)
    write_text(sidecar, json.dumps({"key": _jsonable(key), "sha256": sha256sum(path)}, indent=2) + "\n")
    return path


@dataclass
class BuildOptions:
    """What the builders need besides the model: the ONNX export options, the INT8 recipe and
    its calibration batches, the TensorRT profile."""

    example: torch.Tensor
    cache_dir: Path
    device: torch.device
    output_names: list | None = None
    input_name: str = "images"
    dynamic_hw: bool = False
    calibration: list | None = None
    recipe: dict = field(default_factory=dict)
    threads: int | None = None
    max_batch: int = 1
    trt_shapes: dict | None = None


class Matrix:
    """The runtimes built for one model: kind -> Runtime, in KINDS order, plus the skips."""

    def __init__(self, built: dict, skipped: list[Skip], artifacts: dict[str, Path]):
        self.runtimes, self.skipped, self.artifacts = built, skipped, artifacts

    def precision(self, kind: str) -> str:
        rt = self.runtimes[kind]
        return getattr(rt, "precision", None) or KINDS[kind][1]

    @staticmethod
    def label(kind: str) -> str:
        return KINDS[kind][0]

    def items(self):
        return self.runtimes.items()

    def skip_lines(self) -> str:
        return "\n".join(str(s) for s in self.skipped)

    def __getitem__(self, kind: str):
        if kind not in self.runtimes:
            why = next((s.reason for s in self.skipped if s.kind == kind), "it was not asked for")
            raise KeyError(f"no {kind!r} runtime in this matrix: {why}.")
        return self.runtimes[kind]

    def __contains__(self, kind) -> bool:
        return kind in self.runtimes

    def __iter__(self):
        return iter(self.runtimes)

    def __len__(self) -> int:
        return len(self.runtimes)

    def close(self) -> None:
        for rt in self.runtimes.values():
            rt.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Matrix {list(self.runtimes)}; {len(self.skipped)} skipped>"


class _Builder:
    """Builds each artifact at most once per matrix, on demand, through the disk cache."""

    def __init__(self, model: torch.nn.Module, options: BuildOptions):
        self.model, self.r = model.eval(), options
        self.stem = type(model).__name__.lower()
        self.artifacts: dict[str, Path] = {}
        self.failed: dict[str, Exception] = {}  # an artifact that failed once is not rebuilt per kind
        r = options
        self._export_key = {"input": [list(r.example.shape), str(r.example.dtype)],
                            "output_names": r.output_names, "input_name": r.input_name, "dynamic_hw": r.dynamic_hw}

    def onnx(self, what: str = "fp32") -> Path:
        if what in self.artifacts:
            return self.artifacts[what]
        if what in self.failed:
            raise self.failed[what]
        try:
            self.artifacts[what] = self._onnx(what)
        except (Unavailable, RuntimeError, ValueError, OSError) as exc:
            self.failed[what] = exc
            raise
        return self.artifacts[what]

    def _onnx(self, what: str) -> Path:
        from . import export

        r = self.r
        if what == "fp32":
            parts = (self._export_key,)

            def make(path):
                export.export_onnx(copy.deepcopy(self.model).cpu(), r.example.cpu(), path, input_name=r.input_name,
                                   output_names=r.output_names, dynamic_hw=r.dynamic_hw)
        else:  # "int8-onnxruntime" or "int8-tensorrt"
            if not r.calibration:
                raise Unavailable("no calibration batches: pass calibration=[preprocessed NCHW float32 batches] "
                                  "(never the frames you judge drift on)")
            target = what.split("-", 1)[1]
            fp32 = self.onnx("fp32")
            parts = (self._export_key, {"target": target, "recipe": r.recipe}, *r.calibration)

            def make(path):
                export.quantize_int8(fp32, path, r.calibration, target=target, **r.recipe)
        digest = weights_digest(self.model, *parts)
        key = {"artifact": what, "digest": digest, "tools": tool_versions(), "recipe": r.recipe if what != "fp32" else {}}
        return cached(r.cache_dir / f"{self.stem}-{what}-{digest}.onnx", make, key)

    def torch_model(self, device) -> torch.nn.Module:
        return copy.deepcopy(self.model).to(device)


def _need_cuda(device: torch.device) -> None:
    if device.type != "cuda":
        why = ("torch sees no CUDA device" if not torch.cuda.is_available()
               else f"the matrix was built for {device}; pass device='cuda'")
        raise Unavailable(f"needs a CUDA device: {why}")


def _compile(b: _Builder, mode: str | None):
    from . import env

    device = b.r.device
    if mode == "reduce-overhead":
        _need_cuda(device)
    why = env.torch_compile_problem(device.type)
    if why:
        raise Unavailable(why)
    # Static shapes on the CPU (Inductor's dynamic-shape C++ is slower there); on CUDA torch's
    # default, which turns dynamic after a second shape instead of recompiling for every size.
    dynamic = False if device.type == "cpu" else None
    rt = runtimes.TorchCompile(b.torch_model(device), mode=mode, dynamic=dynamic)
    try:
        rt.run(b.r.example.to(device))  # compile now: a failure is a skip, not a crash mid-benchmark
    except RuntimeError as exc:
        rt.close()
        raise Unavailable(str(exc).splitlines()[0]) from None
    return rt


def _ort(b: _Builder, what: str, cuda: bool = False):
    import onnxruntime as ort

    if cuda:
        _need_cuda(b.r.device)
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise Unavailable(f"this onnxruntime has only {ort.get_available_providers()}; install onnxruntime-gpu")
        # CPU listed second: ORT runs the few ops without a CUDA kernel there (and says so in its log).
        return runtimes.OnnxRuntime(b.onnx(what), providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                                    device_id=b.r.device.index or 0, io_binding=True)
    return runtimes.OnnxRuntime(b.onnx(what), intra_op_threads=b.r.threads)


def _tensorrt(b: _Builder, precision: str):
    from . import trt

    why = trt.available()
    if why:
        raise Unavailable(why)
    # TensorRT takes symmetric signed INT8 only: its own QDQ file, not ONNX Runtime's.
    source = b.onnx("int8-tensorrt" if precision == "int8" else "fp32")
    try:
        return runtimes.make_runtime("tensorrt", onnx_path=source, precision=precision, max_batch=b.r.max_batch,
                                     shapes=b.r.trt_shapes, cache_dir=b.r.cache_dir / "engines")
    except (ValueError, RuntimeError) as exc:  # e.g. FP16 on a strongly-typed-only TensorRT
        raise Unavailable(str(exc).splitlines()[0]) from None


def _optional(module: str, pip: str):
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise Unavailable(f"import {module} failed ({type(exc).__name__}); with internet: pip install {pip}") from None


def _torch_tensorrt(b: _Builder):
    _need_cuda(b.r.device)
    torch_trt = _optional("torch_tensorrt", "torch-tensorrt")
    model = b.torch_model(b.r.device)
    example = b.r.example.to(b.r.device)
    # The documented ahead-of-time path: compile through torch.export to one TensorRT module.
    compiled = torch_trt.compile(model, ir="dynamo", inputs=[example], enabled_precisions={torch.float16})
    return runtimes.TorchEager(compiled, device=b.r.device, name="torch-tensorrt")


def _modelopt_int8(b: _Builder):
    """NVIDIA ModelOpt's ONNX PTQ (TensorRT-targeted INT8 QDQ), built into an engine."""
    from . import trt

    why = trt.available()
    if why:
        raise Unavailable(why)
    moq = _optional("modelopt.onnx.quantization", "nvidia-modelopt[onnx]")
    if not b.r.calibration:
        raise Unavailable("no calibration batches: pass calibration=[...]")
    import numpy as np

    fp32 = b.onnx("fp32")
    digest = weights_digest(b.model, "modelopt", *b.r.calibration)
    out = b.r.cache_dir / f"{b.stem}-int8-modelopt-{digest}.onnx"

    def make(path):
        from .files import atomic_path

        data = np.concatenate([np.asarray(c.cpu() if isinstance(c, torch.Tensor) else c) for c in b.r.calibration])
        with atomic_path(path, suffix=".onnx") as tmp:  # ModelOpt writes its output in place
            moq.quantize(onnx_path=str(fp32), quantize_mode="int8", calibration_data=data, output_path=str(tmp))
    cached(out, make, {"artifact": "int8-modelopt", "digest": digest, "tools": tool_versions()})
    return runtimes.make_runtime("tensorrt", onnx_path=out, precision="int8", max_batch=b.r.max_batch,
                                 shapes=b.r.trt_shapes, cache_dir=b.r.cache_dir / "engines")


BUILDERS: dict[str, Callable[[_Builder], object]] = {
    "eager": lambda b: runtimes.TorchEager(b.torch_model(b.r.device)),
    "channels-last": lambda b: runtimes.TorchEager(b.torch_model(b.r.device), channels_last=True),
    "compile": lambda b: _compile(b, None),
    "cuda-graphs": lambda b: _compile(b, "reduce-overhead"),
    "eager-fp16": lambda b: (_need_cuda(b.r.device),
                             runtimes.TorchEager(b.torch_model(b.r.device).half(), name="torch-fp16"))[1],
    "ort-fp32": lambda b: _ort(b, "fp32"),
    "ort-int8": lambda b: _ort(b, "int8-onnxruntime"),
    "ort-cuda-fp32": lambda b: _ort(b, "fp32", cuda=True),
    "trt-fp32": lambda b: _tensorrt(b, "fp32"),
    "trt-fp16": lambda b: _tensorrt(b, "fp16"),
    "trt-int8": lambda b: _tensorrt(b, "int8"),
    "torch-tensorrt": _torch_tensorrt,
    "modelopt-int8": _modelopt_int8,
}


def build(model: torch.nn.Module, example: torch.Tensor, kinds=DEFAULT_KINDS, device: str | torch.device = "cpu",
          cache_dir="build/matrix", calibration=None, recipe: dict | None = None, output_names=None,
          input_name: str = "images", dynamic_hw: bool = False, threads: int | None = None, max_batch: int = 1,
          trt_shapes: dict | None = None) -> Matrix:
    """The runtimes of ``kinds`` this machine can run for ``model`` (see the module docstring).

    ``example``: one input batch (NCHW, the model's dtype), for the export and for compiling.
    ``calibration``/``recipe``: the INT8 kinds' calibration batches and quantize_int8 options
    (e.g. export.PEDESTRIAN_INT8). ``output_names``/``input_name``/``dynamic_hw``: the ONNX
    export's. ``max_batch``/``trt_shapes``: the TensorRT optimization profile.
    ``model`` is never modified: every torch kind gets its own copy."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown runtime kinds {unknown}; expected some of {list(KINDS)}.")
    if not isinstance(example, torch.Tensor) or example.ndim != 4:
        found = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example).__name__
        raise ValueError(f"example must be one NCHW batch (e.g. torch.zeros(1, 3, 224, 224)); found {found}.")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    r = BuildOptions(example, Path(cache_dir), device, list(output_names) if output_names else None, input_name,
               dynamic_hw, list(calibration) if calibration is not None else None, dict(recipe or {}), threads,
               max_batch, trt_shapes)
    b = _Builder(copy.deepcopy(model).cpu(), r)
    built, skipped = {}, []
    for kind in KINDS:
        if kind not in kinds:
            continue
        try:
            built[kind] = BUILDERS[kind](b)
        except Unavailable as exc:
            skipped.append(Skip(kind, str(exc)))
        except (RuntimeError, ValueError, OSError) as exc:  # a failed export or build: this kind only
            first = (str(exc).strip().splitlines() or [""])[0]
            skipped.append(Skip(kind, f"building it failed: {type(exc).__name__}: {first}"))
    return Matrix(built, skipped, dict(b.artifacts))


PEDESTRIAN_OUTPUTS = ["box_encodings", "class_logits"]


def pedestrian(model: torch.nn.Module, calibration_frames, kinds=DEFAULT_KINDS, **options) -> Matrix:
    """The matrix for models.pedestrian_detector: 300x300 input, its two outputs by name, INT8
    with export.PEDESTRIAN_INT8 calibrated on raw BGR ``calibration_frames`` (never the judged
    ones) through the detector's own preprocessing."""
    from . import export

    options.setdefault("recipe", export.PEDESTRIAN_INT8)
    return build(model, torch.zeros(1, 3, 300, 300), kinds, calibration=export.detector_calibration(model,
                 calibration_frames), output_names=PEDESTRIAN_OUTPUTS, **options)


def polygraphy_check(onnx_path, atol: float = 1e-3, rtol: float = 1e-3) -> dict:
    """Cross-check TensorRT against ONNX Runtime on one ONNX file with Polygraphy
    (``polygraphy run model.onnx --onnxrt --trt``). Returns {"ok", "command", "output"} or
    {"skipped": reason} when the CLI or TensorRT is missing."""
    import shutil
    import subprocess

    from . import trt

    exe = shutil.which("polygraphy")
    why = "the polygraphy CLI is not on PATH (pip install polygraphy)" if not exe else trt.available()
    if why:
        return {"skipped": why}
    cmd = [exe, "run", str(onnx_path), "--onnxrt", "--trt", "--atol", str(atol), "--rtol", str(rtol)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return {"ok": done.returncode == 0, "command": " ".join(cmd), "output": (done.stdout + done.stderr)[-4000:]}
