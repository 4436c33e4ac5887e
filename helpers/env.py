"""What this machine can do, and which track each notebook will run.

``probe()`` never raises and never hangs, so a notebook's first cell always
gets an answer. Anything that can crash or block the process (a TensorRT
builder without a usable GPU, a camera driver) is tried in a subprocess with a
timeout. Notebooks ask ``caps.has_tensorrt`` instead of ``try: import tensorrt``.

Run ``python -m helpers.env [--json]`` for the same report in a terminal.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import importlib
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

TRACKS = ("GPU + TensorRT", "GPU", "CPU")

# Key -> import name. Key is what the report shows; OpenCV imports as cv2.
PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "opencv": "cv2",
    "numpy": "numpy",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "pynvml": "pynvml",
}

VPI_HINT = "VPI ships with JetPack or NVIDIA's apt repository"


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- subprocesses


def _run_bounded(command: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run ``command``; return (returncode, stdout, stderr), returncode None on timeout."""
    # A new session lets us kill the whole group: a camera backend or TensorRT
    # may start helpers that would otherwise keep our pipes open after a kill.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=(os.name == "posix"),
    )
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.kill()
        try:
            process.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:
            process.wait()
        return None, "", ""


def _exit_text(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            cause = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            cause = f"killed by signal {-returncode}"
    else:
        cause = f"exited with code {returncode}"
    last = stderr.strip().splitlines()[-1:] if stderr.strip() else []
    return f"{cause}: {last[0]}" if last else cause


# -------------------------------------------------------------------- platform


def _read_text(root: str | Path, relative: str) -> str | None:
    try:
        # Device-tree strings end in a NUL byte.
        return Path(root, relative).read_bytes().decode(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _ram_gib(root: str | Path) -> float | None:
    # /proc/meminfo is what psutil reads on Linux anyway; reading it under
    # ``root`` first keeps the fake-tree tests honest. psutil covers macOS/Windows.
    meminfo = _read_text(root, "proc/meminfo")
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo or "", re.MULTILINE)
    if match:
        return round(int(match.group(1)) / 2**20, 1)
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        return None


def probe_platform(root: str | Path = "/") -> dict:
    """Board kind (jetson / raspberry_pi / generic), model, OS, CPUs and RAM."""
    model = _read_text(root, "proc/device-tree/model")
    tegra = _read_text(root, "etc/nv_tegra_release")
    os_release = _read_text(root, "etc/os-release") or ""
    distro = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', os_release, re.MULTILINE)
    l4t = None
    if tegra:
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", tegra)
        l4t = f"{match.group(1)}.{match.group(2)}" if match else tegra.splitlines()[0]

    if tegra is not None or (model and "NVIDIA Jetson" in model):
        kind, name = "jetson", "Jetson"
    elif model and "Raspberry Pi" in model:
        kind, name = "raspberry_pi", "Raspberry Pi"
    else:
        kind, name = "generic", platform.machine() or "unknown"
    return {
        "kind": kind,
        "name": name,
        "model": model,
        "l4t": l4t,
        "os": f"{platform.system()} {platform.release()}".strip(),
        "distro": distro.group(1) if distro else None,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "ram_gib": _ram_gib(root),
        "error": None,
    }


# -------------------------------------------------------------------- packages


def probe_package(key: str) -> dict:
    module = importlib.import_module(PACKAGES[key])
    info = {"version": getattr(module, "__version__", None), "error": None}
    if key == "torch":
        info["cuda_build"] = module.version.cuda
    if key == "onnxruntime":
        info["providers"] = list(module.get_available_providers())
    return info


def probe_cuda() -> dict:
    """CUDA devices as torch sees them, or why there are none."""
    import torch

    if torch.cuda.is_available():
        devices = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append({
                "index": index,
                "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 1),
                "capability": (props.major, props.minor),
            })
        return {"devices": devices, "error": None}

    if torch.version.cuda is None:
        reason = f"torch {torch.__version__} is a CPU-only build"
    else:
        # is_available() only says False; init() says why (no driver, no device, ...).
        try:
            torch.cuda.init()
            detail = "torch.cuda.init() succeeded but no device is visible"
        except Exception as exc:
            detail = _error_text(exc)
        reason = f"torch built with CUDA {torch.version.cuda} but no CUDA driver/device found ({detail})"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        reason += f"; CUDA_VISIBLE_DEVICES={visible!r}"
    return {"devices": [], "error": reason}


# Each JSON line is printed as soon as it is known, so a builder that crashes
# the interpreter still leaves the version and flags behind.
_TENSORRT_SCRIPT = r"""
import json, sys
def say(**facts):
    print(json.dumps(facts), flush=True)
try:
    import tensorrt as trt
except BaseException as exc:
    say(error=f"{type(exc).__name__}: {exc}")
    sys.exit(0)
say(version=getattr(trt, "__version__", None),
    fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
    int8_flag=hasattr(trt.BuilderFlag, "INT8"),
    strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
    explicit_batch=hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"))
try:
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    say(builder=builder is not None, builder_error=None if builder is not None else "trt.Builder returned None")
except Exception as exc:
    say(builder=False, builder_error=f"{type(exc).__name__}: {exc}")
"""


def torch_compile_problem(device: str = "cpu") -> str:
    """"" when torch.compile can build kernels for ``device`` here, else why not.

    On CUDA, Inductor writes Triton kernels: many Jetson torch wheels come without Triton, and
    a compile there fails at the first call, deep in the compiler. On the CPU it writes C++,
    so it needs a compiler. Asked before building a compile variant, so a lesson skips it
    with this reason instead of crashing."""
    import shutil

    kind = str(device).split(":")[0]
    if kind == "cuda":
        try:
            from torch.utils._triton import has_triton

            if not has_triton():
                return ("torch.compile on CUDA needs Triton, which this torch install lacks "
                        "(common with Jetson wheels); eager and TensorRT still run")
        except Exception as exc:  # an old or stripped torch
            return f"cannot tell whether Triton is usable ({type(exc).__name__}: {exc})"
        return ""
    compilers = [os.environ.get("CXX"), "g++", "clang++", "c++"]
    if not any(c and shutil.which(c) for c in compilers):
        return ("torch.compile on the CPU needs a C++ compiler (g++ or clang++) and none is on "
                "PATH: sudo apt-get install g++")
    return ""


def probe_tensorrt(timeout: float = 60.0) -> dict:
    """TensorRT version, which flags this release has, and whether a Builder can be made."""
    info = {
        "version": None, "error": None, "builder": False, "builder_error": None,
        "fp16_flag": None, "int8_flag": None, "strongly_typed": None, "explicit_batch": None,
    }
    if importlib.util.find_spec("tensorrt") is None:
        info["error"] = "ModuleNotFoundError: No module named 'tensorrt'"
        return info
    returncode, out, err = _run_bounded([sys.executable, "-c", _TENSORRT_SCRIPT], timeout)
    for line in out.splitlines():
        try:
            info.update(json.loads(line))
        except json.JSONDecodeError:
            pass  # TensorRT may print its own log lines to stdout
    if returncode is None:
        info["builder_error"] = f"TensorRT check timed out after {timeout:g} s"
    elif returncode != 0 and info["builder_error"] is None:
        info["builder_error"] = f"TensorRT check {_exit_text(returncode, err)}"
    if info["version"] is None and info["error"] is None:
        info["error"] = info["builder_error"] or "tensorrt import gave no version"
    return info


def probe_vpi() -> dict:
    import vpi

    return {"version": getattr(vpi, "__version__", None), "error": None}


def probe_cupy() -> dict:
    import cupy

    info = {"version": cupy.__version__, "error": None, "devices": 0}
    try:
        info["devices"] = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        info["error"] = _error_text(exc)
    if info["devices"] == 0 and info["error"] is None:
        info["error"] = "cupy sees no CUDA device"
    if info["error"] is None:
        mismatch = cuda_major_mismatch(cupy)
        if mismatch:
            info["error"] = mismatch
    return info


def cuda_major_mismatch(cupy) -> str:
    """Why CuPy and torch must not share a process, or "": two CUDA major versions (a
    cupy-cuda12x wheel beside a CUDA 13 torch) load two runtimes, and pointers handed between
    them through __cuda_array_interface__ or DLPack are only safe within one."""
    import torch

    try:
        ours = int(cupy.cuda.runtime.runtimeGetVersion()) // 1000  # 13000 -> 13
    except Exception:
        return ""
    theirs = torch.version.cuda
    if theirs and int(theirs.split(".")[0]) != ours:
        return (f"CuPy is built for CUDA {ours} but torch for CUDA {theirs}: install the matching "
                f"wheel, pip install cupy-cuda{theirs.split('.')[0]}x")
    return ""


# ---------------------------------------------------------------------- camera

_CAMERA_SCRIPT = r"""
import sys, cv2
for index in map(int, sys.argv[1:]):
    # The same backend VideoSource opens cameras with, so "available" means usable.
    capture = cv2.VideoCapture(index, cv2.CAP_V4L2) if sys.platform.startswith("linux") else cv2.VideoCapture(index)
    ok = capture.isOpened() and capture.read()[0]
    capture.release()
    if ok:
        print(index)
        break
"""


def _camera_command(indices: list[int]) -> list[str]:
    return [sys.executable, "-c", _CAMERA_SCRIPT, *map(str, indices)]


def _video_indices(root: str | Path) -> list[int]:
    found = []
    for path in Path(root, "dev").glob("video*"):
        suffix = path.name[len("video"):]
        if suffix.isdigit():
            found.append(int(suffix))
    return sorted(found)


# The board's own camera port: a MIPI CSI sensor on a Jetson (Argus), the camera connector on
# a Raspberry Pi (libcamera). Its V4L2 node delivers raw Bayer that OpenCV cannot read, so it
# is probed through the URI VideoSource opens it with, in a subprocess like the V4L2 check.
BOARD_CAMERAS = {"jetson": "csi://0", "raspberry_pi": "picam://0"}
# Argus and libcamera start in a few seconds (sensor power-up, ISP tuning): a floor under
# ``timeout`` so a working camera is not reported as hung.
BOARD_CAMERA_TIMEOUT = 10.0

_GSTREAMER_CAMERA_SCRIPT = r"""
import sys, cv2
capture = cv2.VideoCapture(sys.argv[1], cv2.CAP_GSTREAMER)
opened = capture.isOpened()
ok = opened and capture.read()[0]
capture.release()
if not ok:
    sys.exit("no frame could be read" if opened else "OpenCV's GStreamer backend could not open the pipeline")
"""

_PICAMERA2_SCRIPT = r"""
import sys
from picamera2 import Picamera2
camera = Picamera2(int(sys.argv[1]))
try:
    camera.configure(camera.create_video_configuration(main={"size": (640, 480), "format": "RGB888"}))
    camera.start()
    camera.capture_array("main")
finally:
    camera.close()
"""


def _board_camera_command(uri: str) -> tuple[list[str] | None, str]:
    """(a command that opens ``uri`` and reads one frame, '') or (None, why it cannot work here)."""
    from helpers import capture  # lazily: OpenCV loads only when a board camera is possible

    cam, backend, problem = capture.camera_plan(uri)
    if problem:
        return None, problem
    if backend == "picamera2":
        return [sys.executable, "-c", _PICAMERA2_SCRIPT, str(cam.index)], ""
    pipeline = capture.csi_pipeline(cam) if cam.scheme == "csi" else capture.libcamera_pipeline(cam)
    return [sys.executable, "-c", _GSTREAMER_CAMERA_SCRIPT, pipeline], ""


def probe_board_camera(kind: str, timeout: float = BOARD_CAMERA_TIMEOUT) -> dict | None:
    """csi://0 on a Jetson, picam://0 on a Raspberry Pi: usable, or why not (None elsewhere)."""
    uri = BOARD_CAMERAS.get(kind)
    if uri is None:
        return None
    try:
        command, problem = _board_camera_command(uri)
    except Exception as exc:
        command, problem = None, f"{uri}: helpers.capture failed ({_error_text(exc)})"
    if command is None:
        return {"available": False, "device": None, "error": problem}
    returncode, _, err = _run_bounded(command, timeout)
    if returncode == 0:
        return {"available": True, "device": uri, "error": None}
    why = f"timed out after {timeout:g} s" if returncode is None else f"camera check {_exit_text(returncode, err)}"
    return {"available": False, "device": None, "error": f"{uri}: {why}"}


def probe_camera(timeout: float = 3.0, root: str | Path = "/") -> dict:
    """Whether a camera delivers a frame, decided in a subprocess bounded by ``timeout``.

    On a Jetson or a Raspberry Pi the board's camera (csi://0, picam://0) is tried first, then
    the V4L2 devices. ``device`` is the URI to give VideoSource; ``error`` says why each failed.
    """
    board = probe_board_camera(probe_platform(root)["kind"], max(timeout, BOARD_CAMERA_TIMEOUT))
    if board and board["available"]:
        return board
    v4l2 = _probe_v4l2(timeout, root)
    if board and not v4l2["available"]:
        v4l2["error"] = f"{board['error'].rstrip('.')}. V4L2: {v4l2['error']}"
    return v4l2


def _probe_v4l2(timeout: float, root: str | Path) -> dict:
    if platform.system() == "Linux":
        indices = _video_indices(root)
        if not indices:
            return {"available": False, "device": None, "error": "no /dev/video* device"}
        names = ", ".join(f"/dev/video{i}" for i in indices)
    else:
        indices, names = [0], "camera index 0"

    returncode, out, err = _run_bounded(_camera_command(indices), timeout)
    if returncode is None:
        return {"available": False, "device": None, "error": f"{names}: timed out after {timeout:g} s"}
    if returncode != 0:
        return {"available": False, "device": None, "error": f"{names}: camera check {_exit_text(returncode, err)}"}
    opened = out.strip()
    if opened.isdigit():
        device = f"/dev/video{opened}" if platform.system() == "Linux" else f"camera index {opened}"
        return {"available": True, "device": device, "error": None}
    return {"available": False, "device": None, "error": f"{names}: no frame could be read"}


# ---------------------------------------------------------------- capabilities


class TrackChoice(NamedTuple):
    track: str
    reason: str


class LessonTrack(NamedTuple):
    notebook: str
    track: str
    reason: str
    skipped: list[str]


@dataclass(frozen=True)
class LessonPlan:
    notebook: str
    # capability -> the part of the notebook that needs it (named in skip lines)
    uses: dict = field(default_factory=dict)
    fallback: str = ""  # what the notebook does instead when something is skipped


LESSONS = [
    LessonPlan("00_environment"),
    LessonPlan("01_capture", {"camera": "live camera"}, "using a recorded/synthetic source instead"),
    LessonPlan("02_preprocessing_and_classification", {"cuda": "GPU preprocessing and classification"}),
    LessonPlan("03_detection_and_tracking", {"cuda": "GPU detection and tracking"}),
    LessonPlan("04_tnr_and_interop", {"cuda": "torch CUDA TNR backend", "vpi": "VPI TNR backend",
                                  "cupy": "CuPy zero-copy interop"}),
    LessonPlan("05_onnx_export", {"ort_cuda": "ONNX Runtime CUDA EP"}),
    LessonPlan("06_tensorrt", {"tensorrt": "TensorRT engine build", "cuda": "CUDA timing"}),
    LessonPlan("07_benchmark_report", {"tensorrt": "TensorRT runtimes in the report", "cuda": "CUDA timing"}),
    LessonPlan("08_video_filters", {"tensorrt": "TensorRT filter engines", "cuda": "GPU video filters"}),
    # Triton's availability is helpers.serve.problem(); the notebook skips with its reason.
    LessonPlan("09_serving"),
]

_GPU_CAPABILITIES = ("cuda", "ort_cuda")


@dataclass
class Capabilities:
    """Result of ``probe()``. Every component dict has ``error``: why it is missing, or None."""

    platform: dict
    python: str
    packages: dict  # PACKAGES key -> {"version", "error", ...}
    cuda: dict
    tensorrt: dict
    vpi: dict
    cupy: dict
    camera: dict
    seconds: float = 0.0

    # -- facts

    @property
    def versions(self) -> dict:
        found = {"python": self.python}
        found.update({key: info.get("version") for key, info in self.packages.items()})
        found["torch_cuda"] = self.packages.get("torch", {}).get("cuda_build")
        for key in ("tensorrt", "vpi", "cupy"):
            found[key] = getattr(self, key).get("version")
        return found

    @property
    def ort_providers(self) -> list[str]:
        return self.packages.get("onnxruntime", {}).get("providers", [])

    @property
    def errors(self) -> dict:
        components = {**self.packages, "platform": self.platform, "cuda": self.cuda,
                      "tensorrt": self.tensorrt, "vpi": self.vpi, "cupy": self.cupy, "camera": self.camera}
        return {key: info["error"] for key, info in components.items() if info.get("error")}

    @property
    def has_cuda(self) -> bool:
        return bool(self.cuda.get("devices"))

    @property
    def has_tensorrt(self) -> bool:
        return self.tensorrt.get("version") is not None and bool(self.tensorrt.get("builder"))

    @property
    def has_vpi(self) -> bool:
        return self.vpi.get("version") is not None and not self.vpi.get("error")

    @property
    def has_cupy(self) -> bool:
        return self.cupy.get("version") is not None and self.cupy.get("devices", 0) > 0

    @property
    def has_camera(self) -> bool:
        return bool(self.camera.get("available"))

    def available(self, capability: str) -> bool:
        if capability == "ort_cuda":
            return self.has_cuda and "CUDAExecutionProvider" in self.ort_providers
        return getattr(self, f"has_{capability}")

    def why_not(self, capability: str) -> str:
        """One line saying why ``capability`` is unavailable ('' when it is available)."""
        if self.available(capability):
            return ""
        if capability == "cuda":
            return "no CUDA device"
        if capability == "ort_cuda":
            if not self.has_cuda:
                return "no CUDA device"
            return ("onnxruntime has no CUDAExecutionProvider (providers: "
                    f"{', '.join(self.ort_providers) or 'none'}; install onnxruntime-gpu)")
        if capability == "tensorrt":
            if self.tensorrt.get("version") is None:
                return f"tensorrt is not importable ({self.tensorrt.get('error')})"
            return (f"TensorRT {self.tensorrt['version']} is importable but no Builder could be "
                    f"created ({self.tensorrt.get('builder_error')})")
        if capability == "vpi":
            return f"vpi not importable ({self.vpi.get('error')}; {VPI_HINT})"
        if capability == "cupy":
            if self.cupy.get("version") is None:
                return f"cupy not importable ({self.cupy.get('error')})"
            return f"CuPy {self.cupy['version']} sees no CUDA device ({self.cupy.get('error')})"
        if capability == "camera":
            return self.camera.get("error") or "no camera"
        raise ValueError(f"unknown capability {capability!r}; expected one of "
                         "camera, cuda, ort_cuda, tensorrt, vpi, cupy")

    # -- tracks

    def _choose_track(self, uses) -> TrackChoice:
        gpu_uses = [c for c in _GPU_CAPABILITIES if c in uses]
        if "tensorrt" in uses and self.has_cuda and self.has_tensorrt:
            return TrackChoice("GPU + TensorRT",
                               f"{self._gpu_name()} and TensorRT {self.tensorrt['version']} builder OK")
        if any(self.available(c) for c in gpu_uses):
            reason = f"CUDA device {self._gpu_name()}"
            if "tensorrt" in uses:
                reason += f"; {self.why_not('tensorrt')}"
            return TrackChoice("GPU", reason)
        if not gpu_uses:
            return TrackChoice("CPU", "uses no GPU: the same on every machine")
        return TrackChoice("CPU", "; ".join(self.why_not(c) for c in gpu_uses))

    def _gpu_name(self) -> str:
        return self.cuda["devices"][0]["name"] if self.has_cuda else "none"

    def track(self) -> TrackChoice:
        """The best track this machine can run (see design.md, "Tracks")."""
        if not self.has_cuda:
            # The machine-wide answer carries the full reason; lesson rows stay short.
            return TrackChoice("CPU", f"no CUDA device: {self.cuda.get('error')}")
        return self._choose_track({"cuda", "tensorrt"})

    def lesson_tracks(self, lessons=None) -> list[LessonTrack]:
        rows = []
        for lesson in LESSONS if lessons is None else lessons:
            choice = self._choose_track(lesson.uses)
            skipped = []
            for capability, part in lesson.uses.items():
                if not self.available(capability):
                    line = f"{part}: skipped — {self.why_not(capability)}"
                    skipped.append(f"{line}; {lesson.fallback}" if lesson.fallback else line)
            rows.append(LessonTrack(lesson.notebook, choice.track, choice.reason, skipped))
        return rows

    # -- reports

    def to_dict(self) -> dict:
        """JSON-serialisable fingerprint of this machine (stored with benchmark results)."""
        data = dataclasses.asdict(self)
        data["versions"] = self.versions
        data["track"] = self.track()._asdict()
        return data

    def summary_rows(self) -> list[tuple[str, str, str]]:
        """(component, status, detail) rows for a table."""
        p = self.platform
        board = "; ".join(str(part) for part in (
            p.get("model"),
            f"L4T {p['l4t']}" if p.get("l4t") else None,
            p.get("distro") or p.get("os"),
            p.get("machine"),
            f"{p.get('cpu_count')} CPUs",
            f"{p.get('ram_gib')} GiB RAM",
            p.get("error"),
        ) if part)
        rows = [("Platform", p.get("name", "unknown"), board),
                ("Python", self.python, sys.executable)]

        labels = {"opencv": "OpenCV", "onnxruntime": "ONNX Runtime"}
        for key, info in self.packages.items():
            status = info.get("version") or ("present" if not info.get("error") else "missing")
            detail = info.get("error") or ""
            if key == "torch" and not info.get("error"):
                cuda_build = info.get("cuda_build")
                detail = f"CUDA {cuda_build} build" if cuda_build else "CPU-only build"
            if key == "onnxruntime" and not info.get("error"):
                detail = "providers: " + ", ".join(self.ort_providers)
            rows.append((labels.get(key, key), status, detail))

        devices = self.cuda.get("devices", [])
        rows.append(("CUDA", f"{len(devices)} device(s)" if devices else "no device",
                     "; ".join(f"{d['name']}, {d['memory_gib']} GiB, sm_{d['capability'][0]}{d['capability'][1]}"
                               for d in devices) or self.cuda.get("error") or ""))

        trt = self.tensorrt
        if trt.get("version"):
            flags = ", ".join(f"{name} {'yes' if trt.get(key) else 'no'}" for key, name in (
                ("fp16_flag", "FP16 flag"), ("int8_flag", "INT8 flag"),
                ("strongly_typed", "STRONGLY_TYPED"), ("explicit_batch", "EXPLICIT_BATCH")))
            builder = "builder OK" if trt.get("builder") else f"builder failed: {trt.get('builder_error')}"
            rows.append(("TensorRT", trt["version"], f"{builder}; {flags}"))
        else:
            rows.append(("TensorRT", "missing", trt.get("error") or ""))

        rows.append(("VPI", self.vpi.get("version") or "missing",
                     "" if self.has_vpi else f"{self.vpi.get('error')}; {VPI_HINT}"))
        if self.cupy.get("version"):
            rows.append(("CuPy", self.cupy["version"],
                         f"{self.cupy.get('devices', 0)} device(s)" + (f"; {self.cupy['error']}" if self.cupy.get("error") else "")))
        else:
            rows.append(("CuPy", "missing", self.cupy.get("error") or ""))
        rows.append(("Camera", "yes" if self.has_camera else "no",
                     self.camera.get("device") or self.camera.get("error") or ""))
        choice = self.track()
        rows.append(("Track", choice.track, choice.reason))
        return rows

    def _repr_markdown_(self) -> str:
        def cell(text) -> str:
            return str(text).replace("|", "\\|").replace("\n", "<br>")

        lines = [f"**Environment** (probed in {self.seconds:.1f} s)", "",
                 "| component | status | detail |", "|---|---|---|"]
        lines += [f"| {cell(a)} | {cell(b)} | {cell(c)} |" for a, b, c in self.summary_rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>" for v in row) + "</tr>"
            for row in self.summary_rows())
        return (f"<p><b>Environment</b> (probed in {self.seconds:.1f} s)</p><table>"
                "<tr><th>component</th><th>status</th><th>detail</th></tr>"
                f"{body}</table>")


# ---------------------------------------------------------------------- probe


def _attempt(function, *args, default: dict) -> dict:
    # A sub-probe that breaks must not take the others down with it.
    try:
        return function(*args)
    except Exception as exc:
        return {**default, "error": _error_text(exc)}


def probe(camera_timeout: float = 3.0, tensorrt_timeout: float = 60.0) -> Capabilities:
    """Probe this machine. Never raises; blocking checks are bounded by the timeouts."""
    start = time.perf_counter()
    packages = {key: _attempt(probe_package, key, default={"version": None}) for key in PACKAGES}
    caps = Capabilities(
        platform=_attempt(probe_platform, default={"kind": "generic", "name": platform.machine()}),
        python=platform.python_version(),
        packages=packages,
        cuda=_attempt(probe_cuda, default={"devices": []}),
        tensorrt=_attempt(probe_tensorrt, tensorrt_timeout, default={"version": None, "builder": False}),
        vpi=_attempt(probe_vpi, default={"version": None}),
        cupy=_attempt(probe_cupy, default={"version": None, "devices": 0}),
        camera=_attempt(probe_camera, camera_timeout, default={"available": False, "device": None}),
    )
    caps.seconds = time.perf_counter() - start
    return caps


# ---------------------------------------------------------------------- lesson

# Torch's own words for a CUDA build on a machine without a driver; lesson() says it once, in ours.
_NO_DRIVER_WARNING = r".*(Found no NVIDIA driver|CUDA initialization).*"


@dataclass
class Lesson:
    """What ``lesson()`` decided for one notebook; the notebook appends to ``skipped``."""

    name: str
    caps: Capabilities
    track: str
    reason: str
    device: str  # "cuda" or "cpu"
    threads: int
    skipped: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    def skip(self, what: str, why: str) -> str:
        """Record that ``what`` is skipped here and why; prints the line and returns it."""
        line = f"{what}: {why}"
        self.skipped.append(line)
        print(f"skipped: {line}")
        return line

    def record(self, key, value=None) -> None:
        """Keep a key figure (``record("mAP@0.5", 0.93)`` or ``record({...})``) for ``make run``'s
        summary and the lab report; written at once through ``helpers.report``, with the track
        and the skip list as they are now."""
        from helpers import report

        self.figures.update(key if isinstance(key, dict) else {key: value})
        report.record(self.name, self.track, self.figures, self.skipped)


def _device_words(caps: Capabilities) -> str:
    if caps.has_cuda:
        return f"cuda ({caps._gpu_name()})"
    torch_info = caps.packages.get("torch", {})
    error = caps.cuda.get("error") or "no CUDA device"
    if torch_info.get("version") and not torch_info.get("cuda_build"):
        return f"cpu (torch {torch_info['version']} is a CPU-only build)"
    if "NVIDIA driver" in error:
        return (f"cpu (torch is built for CUDA {torch_info.get('cuda_build')}, but this machine has no "
                "NVIDIA driver, so everything runs on the CPU)")
    return f"cpu ({error})"


def lesson(name: str, threads: int = 2, camera_timeout: float = 3.0) -> Lesson:
    """One call at the top of a notebook: wait policy, probe, track, device, torch threads,
    and one banner that says all of it (with the skip list).

    Call it before importing torch: OpenMP reads OMP_WAIT_POLICY once, when torch starts it,
    and PASSIVE keeps idle workers from spinning on the cores ONNX Runtime and the pipeline's
    threads need. ``threads`` is the lab's reference (a 2-core board), capped at the cores here."""
    import warnings

    plans = {plan.notebook: plan for plan in LESSONS}
    if name not in plans:
        raise ValueError(f"unknown lesson {name!r}; expected one of {', '.join(plans)} "
                         "(the notebook's file name without .ipynb)")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, found {threads!r}")
    if "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        warnings.warn("torch was imported before env.lesson(), so OMP_WAIT_POLICY can no longer be set "
                      "for this kernel and idle OpenMP workers will spin: restart the kernel and run "
                      "this cell first", RuntimeWarning, stacklevel=2)
    else:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.filterwarnings("ignore", message=_NO_DRIVER_WARNING, category=UserWarning)

    caps = probe(camera_timeout=camera_timeout)
    row = caps.lesson_tracks([plans[name]])[0]
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(min(threads, cores))
    result = Lesson(name, caps, row.track, row.reason, "cuda" if caps.has_cuda else "cpu",
                    torch.get_num_threads(), list(row.skipped))
    print(f"Lesson {name} | track: {row.track} ({row.reason})")
    print(f"device: {_device_words(caps)} | torch threads: {result.threads} of {cores} cores | "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (OpenMP default)')}")
    print("skipped here:\n" + "\n".join(f"  {line}" for line in result.skipped) if result.skipped
          else "nothing skipped")
    return result


def format_table(rows, headers) -> str:
    """Plain-text table; a cell may hold several lines."""
    table = [[str(v).splitlines() or [""] for v in headers]] + [[str(v).splitlines() or [""] for v in row] for row in rows]
    widths = [max(len(line) for row in table for line in row[i]) for i in range(len(headers))]
    out = []
    for number, row in enumerate(table):
        for depth in range(max(len(cell) for cell in row)):
            parts = [(cell[depth] if depth < len(cell) else "").ljust(width) for cell, width in zip(row, widths)]
            out.append("  ".join(parts).rstrip())
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.env", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the machine fingerprint as JSON")
    parser.add_argument("--camera-timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    caps = probe(camera_timeout=args.camera_timeout)
    if args.json:
        print(json.dumps(caps.to_dict(), indent=2))
        return
    print(f"Environment (probed in {caps.seconds:.1f} s)\n")
    print(format_table(caps.summary_rows(), ("component", "status", "detail")))
    print()
    lessons = [(r.notebook, r.track, r.reason, "\n".join(r.skipped) or "-") for r in caps.lesson_tracks()]
    print(format_table(lessons, ("notebook", "track", "reason", "skipped")))


if __name__ == "__main__":
    main()
