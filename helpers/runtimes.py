"""One protocol, many engines: a notebook swaps PyTorch <-> ONNX Runtime <-> TensorRT with one argument.

The contract every runtime keeps, so a drift report or a benchmark can compare any two:

- ``run(batch)`` takes **one** ``torch.Tensor``: float32 (or the engine's input dtype), NCHW
  shape, on ``runtime.device``. A wrong shape, dtype or device raises ``ValueError`` naming
  what was expected and what was found.
- It returns a **tuple of torch tensors on** ``runtime.device``, in the model's output order,
  even when the model has a single output (``logits, = rt.run(x)``). Always a tuple because
  detectors return several heads; always torch because the one postprocess is written once
  in torch, whatever engine ran the network.
- Inference only: no autograd graph is recorded, outputs never require grad.
- ``close()`` releases the engine (sessions, compiled code); every runtime is a context manager.

``make_runtime(kind, model=..., onnx_path=...)`` builds one by name; a notebook passes both
sources and the kind takes the one it needs. ``RUNTIMES`` lists the kinds; ``"tensorrt"``
builds (or loads from the cache) an engine through ``helpers.trt`` and needs TensorRT and a GPU.
Every runtime of one model at once, with its files built once and cached by what they depend
on, and the kinds this machine cannot run as skips with the reason: ``helpers.matrix.build``.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import torch


@runtime_checkable
class Runtime(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype  # what run() takes: the batch must already have it

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Runtime": ...

    def __exit__(self, *exc) -> None: ...


class _Base:
    name = "runtime"
    device = torch.device("cpu")
    _closed = False

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} runtime was closed; build a new one to keep running.")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else str(self.device)
        return f"<{type(self).__name__} {self.name} on {state}>"


def _as_tuple(out) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, dict):
        return tuple(out.values())
    if isinstance(out, (tuple, list)):
        return tuple(out)
    raise TypeError(f"expected the model to return a tensor, tuple, list or dict; found {type(out).__name__}")


def _check_batch(batch, device: torch.device, dtype: torch.dtype, runtime: str) -> None:
    if not isinstance(batch, torch.Tensor):
        raise ValueError(
            f"{runtime}.run expects a torch.Tensor (NCHW, {dtype}); found {type(batch).__name__}. "
            f"Convert with torch.from_numpy(...) after preprocessing."
        )
    if batch.ndim != 4:
        raise ValueError(
            f"{runtime}.run expects a 4-D NCHW batch; found shape {tuple(batch.shape)}. "
            f"Add the batch dimension with batch.unsqueeze(0)."
        )
    if batch.dtype != dtype:
        raise ValueError(f"{runtime}.run expects dtype {dtype}; found {batch.dtype}. Convert with batch.to({dtype}).")
    if batch.device.type != device.type or (device.index is not None and batch.device.index != device.index):
        raise ValueError(
            f"{runtime}.run expects the batch on {device}; found it on {batch.device}. "
            f"Move it explicitly with batch.to('{device}') (runtimes never copy behind your back)."
        )


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


class TorchEager(_Base):
    """The model as PyTorch runs it, op by op, under ``torch.inference_mode``.

    The runtime takes ownership of ``model``: it is switched to eval, moved to ``device`` and,
    with ``channels_last=True``, converted in place. Pass ``copy.deepcopy(model)`` to keep the
    original untouched.
    """

    def __init__(self, model: torch.nn.Module, channels_last: bool = False,
                 device: str | torch.device | None = None, name: str | None = None):
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.channels_last = channels_last
        self.model = model.eval().to(self.device)
        if channels_last:
            # NHWC lets oneDNN (CPU) and cuDNN (GPU) pick kernels without a layout
            # reorder before every convolution; the weights are converted once, here.
            self.model = self.model.to(memory_format=torch.channels_last)
        self.dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        self.name = name or ("torch-channels-last" if channels_last else "torch")

    def _prepare(self, batch: torch.Tensor) -> torch.Tensor:
        _check_batch(batch, self.device, self.dtype, self.name)
        if self.channels_last:
            return batch.contiguous(memory_format=torch.channels_last)
        return batch

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_open()
        batch = self._prepare(batch)
        with torch.inference_mode():
            return _as_tuple(self.model(batch))

    def close(self) -> None:
        self.model = None
        super().close()


class TorchCompile(TorchEager):
    """``torch.compile`` (TorchInductor): fused kernels generated for this model and device.

    Compilation is lazy: the first ``run`` with a new input shape compiles (tens of seconds
    on a small CPU; it needs a working C++ compiler there). A failed compile raises
    ``RuntimeError`` with the reason instead of a long Inductor traceback.

    ``mode="reduce-overhead"`` adds CUDA graphs, so it is only accepted on a CUDA device.
    """

    def __init__(self, model: torch.nn.Module, mode: str | None = None, channels_last: bool = False,
                 device: str | torch.device | None = None, dynamic: bool | None = None, name: str | None = None):
        super().__init__(model, channels_last=channels_last, device=device)
        if mode == "reduce-overhead" and self.device.type != "cuda":
            raise ValueError(
                f"mode='reduce-overhead' records CUDA graphs and needs a CUDA device; found {self.device}. "
                f"Use mode=None (or 'max-autotune-no-cudagraphs') on CPU."
            )
        self.mode = mode
        self.name = name or ("torch-compile" + (f"-{mode}" if mode else ""))
        self.compiled = torch.compile(self.model, mode=mode, dynamic=dynamic)
        self._compiled_for: set[tuple] = set()

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_open()
        batch = self._prepare(batch)
        signature = (tuple(batch.shape), batch.dtype)
        with torch.inference_mode():
            if signature in self._compiled_for:
                out = _as_tuple(self.compiled(batch))
            else:
                try:
                    out = _as_tuple(self.compiled(batch))
                except Exception as exc:
                    first_line = (str(exc).strip().splitlines() or [""])[0]
                    hint = (" On CPU, Inductor compiles C++: check that a compiler is installed"
                            f" (CXX={os.environ.get('CXX', 'g++')})." if self.device.type == "cpu" else "")
                    raise RuntimeError(
                        f"torch.compile could not compile the model for input {signature[0]} on "
                        f"{self.device}: {type(exc).__name__}: {first_line}.{hint} "
                        f"Fall back to make_runtime('torch', ...)."
                    ) from exc
                self._compiled_for.add(signature)
        if self.mode == "reduce-overhead":
            # CUDA-graph outputs live in a static pool that the next replay overwrites;
            # a clone keeps what the caller holds valid.
            out = tuple(t.clone() for t in out)
        return out

    def close(self) -> None:
        self.compiled = None
        super().close()


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def default_quantized_engine() -> str:
    """The torch INT8 kernel library for this CPU: x86 (fbgemm + oneDNN) or qnnpack (ARM)."""
    supported = torch.backends.quantized.supported_engines
    for engine in (("x86", "fbgemm") if _x86() else ("qnnpack",)):
        if engine in supported:
            return engine
    raise RuntimeError(
        f"No torch INT8 engine for this CPU ({platform.machine()}): supported engines are {supported}. "
        f"Use the ONNX Runtime INT8 path (helpers.export.quantize_int8) instead."
    )


class TorchQuantized(TorchEager):
    """A torch eager-mode INT8 model (from ``helpers.export.torch_int8_mobilenet_v2``), on CPU.

    Quantized torch kernels exist only on the CPU, and their packed weights belong to the
    engine that was active at convert time, so the runtime pins both.
    """

    def __init__(self, model: torch.nn.Module, engine: str | None = None, name: str | None = None):
        engine = engine or default_quantized_engine()
        if engine not in torch.backends.quantized.supported_engines:
            raise ValueError(
                f"expected a quantized engine from {torch.backends.quantized.supported_engines}; found {engine!r}."
            )
        if not any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
            raise ValueError(
                f"expected a converted INT8 model (torch.ao.nn.quantized modules); found only float modules in "
                f"{type(model).__name__}. Build one with helpers.export.torch_int8_mobilenet_v2(calibration_batches)."
            )
        super().__init__(model, device="cpu")
        self.engine = engine
        self.dtype = torch.float32  # QuantStub takes float input and quantizes it inside the model
        self.name = name or f"torch-int8-{engine}"

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        torch.backends.quantized.engine = self.engine
        return super().run(batch)


_ORT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL"}

_ORT_DTYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16,
               "tensor(double)": torch.float64, "tensor(uint8)": torch.uint8, "tensor(int8)": torch.int8,
               "tensor(int64)": torch.int64, "tensor(int32)": torch.int32, "tensor(bool)": torch.bool}
_NUMPY_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.float64: "float64",
                 torch.uint8: "uint8", torch.int8: "int8", torch.int64: "int64", torch.int32: "int32",
                 torch.bool: "bool"}


class OnnxRuntime(_Base):
    """An ONNX model in an ONNX Runtime session: CPU execution provider unless asked otherwise.

    ``providers``: e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` (needs the
    onnxruntime-gpu wheel). With the CUDA EP the runtime lives on ``cuda:<device_id>``.

    ``io_binding`` (default: on with the CUDA EP): ``session.run`` takes numpy arrays, so on
    CUDA every frame would cost three hidden copies (the batch to the host, ORT's copy back
    to the device, each output to the host) plus one more to bring outputs back to torch's
    device. With IO binding ORT reads the batch where torch wrote it and writes outputs into
    torch tensors allocated on the runtime's device: no host copy at all. Output shapes
    are learnt once per input shape (one run with ORT-allocated outputs).

    ``allow_spinning=False`` by default: idle ORT worker threads otherwise busy-wait for the
    next job and steal the cores that PyTorch uses in the same process, which skews any
    side-by-side timing. Turn it on only for an ORT-only loop where latency is all that counts.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None,
                 intra_op_threads: int | None = None, inter_op_threads: int = 1,
                 graph_optimization: str = "all", allow_spinning: bool = False,
                 device_id: int = 0, name: str | None = None, io_binding: bool | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"ONNX model not found: {self.path}. Export one first with helpers.export.export_onnx(model, example, path)."
            )
        providers = list(providers or ["CPUExecutionProvider"])
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise RuntimeError(
                f"ONNX Runtime providers {missing} were asked for but this onnxruntime build has only {available}. "
                f"For CUDA install onnxruntime-gpu (and remove the CPU-only onnxruntime wheel), or use the CPU provider."
            )
        if graph_optimization not in _ORT_LEVELS:
            raise ValueError(f"graph_optimization must be one of {sorted(_ORT_LEVELS)}; found {graph_optimization!r}.")

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _ORT_LEVELS[graph_optimization])
        options.intra_op_num_threads = intra_op_threads or 0  # 0: ORT picks one per physical core
        options.inter_op_num_threads = inter_op_threads
        spin = "1" if allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        provider_options = [{"device_id": str(device_id)} if p == "CUDAExecutionProvider" else {} for p in providers]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers,
                                                provider_options=provider_options)
        except Exception as exc:
            text = str(exc).strip()
            if "INVALID_PROTOBUF" in text or "INVALID_GRAPH" in text or type(exc).__name__ in ("InvalidProtobuf", "InvalidGraph"):
                raise ValueError(
                    f"{self.path} is not a valid ONNX model ({text}). It may be truncated or not ONNX at all: "
                    f"export it again with helpers.export.export_onnx."
                ) from exc
            missing = re.search(r"implementation for (\w+)\((\d+)\) node with name '([^']*)'", text)
            if missing:
                op, version, node = missing.groups()
                raise RuntimeError(
                    f"{self.path.name}: node {node!r} uses {op} (opset {version}) with input types this "
                    f"onnxruntime {ort.__version__} has no kernel for on {', '.join(providers)}. Fixes: "
                    f"export with another dtype or opset (helpers.export.export_onnx(..., opset=17)), "
                    f"replace that op in the model, or use a provider that has it (e.g. CUDA for FP16)."
                ) from exc
            raise RuntimeError(f"ONNX Runtime could not create a session for {self.path}: {text}") from exc

        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ValueError(f"the Runtime protocol feeds one tensor; expected a model with one input, found {names}.")
        self.input_name = inputs[0].name
        # Dynamic axes come back as a name ('batch') or None: anything that is not an int.
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.input_type = inputs[0].type
        if self.input_type not in _ORT_DTYPES:
            raise ValueError(f"expected a model with a float or 8-bit image input; found input type {self.input_type}.")
        self.dtype = _ORT_DTYPES[self.input_type]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_types = [o.type for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()
        on_cuda = self.providers[0] == "CUDAExecutionProvider"
        self.device = torch.device("cuda", device_id) if on_cuda else torch.device("cpu")
        self.name = name or f"onnxruntime-{'cuda' if on_cuda else 'cpu'}"
        self.io_binding = on_cuda if io_binding is None else bool(io_binding)
        self._output_shapes: dict[tuple, list[tuple]] = {}

    def _check_shape(self, batch: torch.Tensor) -> None:
        found = tuple(batch.shape)
        if len(found) != len(self.input_shape) or any(
            want is not None and want != got for want, got in zip(self.input_shape, found)
        ):
            expected = tuple("dynamic" if d is None else d for d in self.input_shape)
            raise ValueError(
                f"{self.name}.run: input '{self.input_name}' of {self.path.name} expects shape {expected}; "
                f"found {found}. Resize/crop in preprocessing to match the exported model."
            )

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_open()
        _check_batch(batch, self.device, self.dtype, self.name)
        self._check_shape(batch)
        # .contiguous() is a no-op for an NCHW batch; a channels_last one is reordered,
        # since ORT reads the buffer as dense NCHW.
        batch = batch.detach().contiguous()
        if self.io_binding:
            return self._run_bound(batch)
        # Without IO binding on CUDA: the host copies IO binding avoids, made visible here.
        outputs = self.session.run(self.output_names, {self.input_name: batch.cpu().numpy()})
        # torch.from_numpy shares ORT's freshly allocated arrays: no copy on CPU.
        return tuple(torch.from_numpy(o).to(self.device) for o in outputs)

    def _run_bound(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        import numpy as np

        kind, index = self.device.type, self.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, kind, index, np.dtype(_NUMPY_DTYPES[batch.dtype]), list(batch.shape),
                           batch.data_ptr())
        shapes = self._output_shapes.get(tuple(batch.shape))
        if shapes is None:  # first call at this shape: ORT allocates, we learn the output shapes
            for name in self.output_names:
                binding.bind_output(name, kind, index)
            self._sync()
            self.session.run_with_iobinding(binding)
            self._output_shapes[tuple(batch.shape)] = [tuple(v.shape()) for v in binding.get_outputs()]
            binding.clear_binding_outputs()
            shapes = self._output_shapes[tuple(batch.shape)]
        outs = []
        for name, shape, out_type in zip(self.output_names, shapes, self.output_types):
            t = torch.empty(shape, dtype=_ORT_DTYPES[out_type], device=self.device)
            binding.bind_output(name, kind, index, np.dtype(_NUMPY_DTYPES[t.dtype]), list(shape), t.data_ptr())
            outs.append(t)
        # ORT runs on its own CUDA stream: the batch torch wrote must be complete first.
        # Run() synchronises its stream before returning, so the outputs are ready after it.
        self._sync()
        self.session.run_with_iobinding(binding)
        return tuple(outs)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def close(self) -> None:
        # Dropping the last reference frees the session's thread pools and arenas now,
        # rather than whenever the garbage collector gets to it.
        self.session = None
        super().close()


def _need(value, what: str, kind: str, hint: str):
    if value is None:
        raise ValueError(f"make_runtime('{kind}') needs {what}; found none. {hint}")
    return value


def _tensorrt(onnx_path, precision: str = "fp32", max_batch: int = 1, cache_dir="build/engines",
              shapes: dict | None = None, **kw):
    from . import trt  # only here: importing this module must never need TensorRT

    why = trt.available()
    if why:
        raise RuntimeError(f"make_runtime('tensorrt'): {why}.")
    import onnx

    plan, facts = trt.build_engine(onnx_path, precision, max_batch=max_batch, cache_dir=cache_dir, shapes=shapes)
    # Outputs in the ONNX model's order, by name, as every other runtime returns them.
    order = [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]
    return trt.TensorRT(plan, output_order=order, precision=facts["judged_as"], **kw)


RUNTIMES: dict[str, Callable[..., Runtime]] = {
    "torch": lambda model=None, onnx_path=None, **kw: TorchEager(
        _need(model, "model=", "torch", "Pass the nn.Module."), **kw),
    "torch-channels-last": lambda model=None, onnx_path=None, **kw: TorchEager(
        _need(model, "model=", "torch-channels-last", "Pass the nn.Module."), channels_last=True, **kw),
    "torch-compile": lambda model=None, onnx_path=None, **kw: TorchCompile(
        _need(model, "model=", "torch-compile", "Pass the nn.Module."), **kw),
    "torch-int8": lambda model=None, onnx_path=None, **kw: TorchQuantized(
        _need(model, "model= (an INT8 model)", "torch-int8",
              "Build one with helpers.export.torch_int8_mobilenet_v2(calibration_batches)."), **kw),
    "tensorrt": lambda model=None, onnx_path=None, **kw: _tensorrt(
        _need(onnx_path, "onnx_path=", "tensorrt",
              "Export the model first with helpers.export.export_onnx(model, example, path)."), **kw),
    "onnxruntime": lambda model=None, onnx_path=None, **kw: OnnxRuntime(
        _need(onnx_path, "onnx_path=", "onnxruntime",
              "Export the model first with helpers.export.export_onnx(model, example, path)."), **kw),
}


def make_runtime(kind: str, model: torch.nn.Module | None = None,
                 onnx_path: str | os.PathLike | None = None, **options) -> Runtime:
    """Build the runtime called ``kind``; the kind uses ``model`` or ``onnx_path``, whichever it runs.

    ``options`` go to the runtime's constructor (``channels_last=``, ``mode=``,
    ``intra_op_threads=``, ``providers=`` ...), which rejects names it does not know.
    """
    try:
        build = RUNTIMES[kind]
    except KeyError:
        raise ValueError(f"unknown runtime kind {kind!r}; expected one of {sorted(RUNTIMES)}.") from None
    return build(model=model, onnx_path=onnx_path, **options)
