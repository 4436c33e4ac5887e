"""Frames in, frames out: one URI picks the source, a reader thread keeps it flowing.

    with VideoSource("synthetic://?size=640x480&fps=30") as src:   # or 0, "/dev/video0",
        for frame in src:                                           # "clip.mp4", "rtsp://…",
            ...  # frame.index, frame.timestamp, frame.image (BGR)  # "frames/*.png"

URIs (jetson-inference ``videoSource`` style), each with its kind and default policy:

- camera, "latest": ``0``, ``"0"``, ``"/dev/video0"`` (V4L2 on Linux);
  ``"csi://0"`` (a MIPI CSI camera on a Jetson: nvarguscamerasrc through GStreamer);
  ``"picam://0"`` (a Raspberry Pi camera: picamera2, else libcamerasrc through GStreamer).
  Both take ``?size=1280x720&fps=30&flip=rotate-180`` (defaults 1280x720 at 30 fps, no flip;
  flip is one of ``FLIPS`` or nvvidconv's number 0-7); picam:// also
  ``backend=picamera2|gstreamer`` (default: picamera2 when importable)
- file, "all": ``"clip.mp4"``, ``"file:///data/clip.avi"``
- stream, "latest": ``"rtsp://…"``, ``"http://…"``, ``"https://…"`` (FFmpeg)
- images, "all": ``"frames/"``, ``"frames/*.png"``, ``"photo.jpg"`` (natural sort order)
- synthetic, "all": ``"synthetic://?size=640x480&fps=30&noise=0.3&seed=1&length=300&clean=0"``

Why a thread and a policy: a camera does not wait for you. If inference is slower
than the sensor, either frames pile up (latency grows without bound) or some are
dropped. ``"latest"`` drops the oldest queued frame, so you always process a fresh
one and ``dropped`` counts what you missed; ``"all"`` makes the reader wait, which
is right for a recorded file you want to evaluate frame by frame.
``realtime=True`` paces a recorded source at its own fps and defaults it to
``"latest"``: a "recorded camera" that behaves like the real one, so a live-view
cell can run in CI.
"""

from __future__ import annotations

import atexit
import glob
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
import weakref
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from helpers.files import verify_video

KINDS = ("camera", "file", "stream", "images", "synthetic")
POLICIES = ("latest", "all")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")


def _parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"size must be WIDTHxHEIGHT such as 640x480; found {text!r}.")
    return int(m[1]), int(m[2])


def _parse_flag(text):
    if str(text).lower() in ("1", "true", "yes"):
        return True
    if str(text).lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"expected 0 or 1; found {text!r}.")


# Index = nvvidconv's flip-method number; the names are jetson-inference's --input-flip.
FLIPS = ("none", "counterclockwise", "rotate-180", "clockwise", "horizontal",
         "upper-right-diagonal", "vertical", "upper-left-diagonal")
# GStreamer's videoflip spells two of them differently.
_VIDEOFLIP = {"horizontal": "horizontal-flip", "vertical": "vertical-flip"}


def _parse_flip(text):
    name = str(text).strip().lower()
    if name.isdigit() and int(name) < len(FLIPS):
        return FLIPS[int(name)]
    if name in FLIPS:
        return name
    raise ValueError(f"flip must be one of {', '.join(FLIPS)} (or nvvidconv's 0-7); found {text!r}.")


MIN_FPS, MAX_FPS = 0.01, 10_000.0  # one frame per 100 s .. a high-speed camera


def _parse_fps(text):
    fps = float(text)
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise ValueError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}; found {text!r}.")
    return fps


def _check_fps(fps):
    """A number of frames per second in a sane range; the string "30" is read as 30."""
    if isinstance(fps, str):
        try:
            fps = float(fps)
        except ValueError:
            raise ValueError(f"fps must be a number such as 30; found {fps!r}.") from None
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise ValueError(f"fps must be a number such as 30; found {fps!r}.")
    return _parse_fps(fps)


PICAM_BACKENDS = ("picamera2", "gstreamer")


def _parse_picam_backend(text):
    if text in PICAM_BACKENDS:
        return text
    raise ValueError(f"backend must be one of {', '.join(PICAM_BACKENDS)}; found {text!r}.")


# csi:// and picam:// query keys: (parser, default). 1280x720 at 30 fps is a mode every
# Jetson and Raspberry Pi camera module has (IMX219, IMX477, IMX708, OV5647).
CAMERA_KEYS = {
    "csi": {"size": (_parse_size, (1280, 720)), "fps": (_parse_fps, 30.0), "flip": (_parse_flip, "none")},
    "picam": {"size": (_parse_size, (1280, 720)), "fps": (_parse_fps, 30.0), "flip": (_parse_flip, "none"),
              "backend": (_parse_picam_backend, None)},
}
CAMERA_SCHEMES = tuple(CAMERA_KEYS)

SYNTHETIC_KEYS = {  # key: (parser, default); defaults match helpers.synth.Scene
    "size": (_parse_size, (640, 480)),
    "fps": (_parse_fps, 30.0),
    "noise": (float, 0.3),
    "seed": (int, 0),
    "length": (int, 300),
    "clean": (_parse_flag, False),
    "density": (float, 1.0),
}
DEFAULT_FPS = 30.0  # for image folders and files whose container states no rate
SINK_FOURCCS = ("avc1", "mp4v", "MJPG")


class FrameTimeout(RuntimeError):
    """No frame arrived within the timeout (a RuntimeError, so callers need not know it)."""


def source_kind(uri) -> str:
    """What a URI opens: camera, file, stream, images or synthetic (raises as VideoSource would)."""
    return _classify(uri)[0]


class Frame(NamedTuple):
    index: int  # frames read from the source so far; gaps mean frames were dropped
    timestamp: float  # seconds: presentation time (recorded) or time.monotonic() (live)
    image: np.ndarray  # HxWx3 uint8 BGR


# ---------------------------------------------------------------- URI parsing


def _natural_key(path: str):
    # frame2.png before frame10.png, as a person numbering frames expects
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path)]


def _classify(uri):
    """(kind, target): target is a camera index, a path, a URL, a list of paths or a query."""
    if isinstance(uri, (bool, float)):
        raise ValueError(f"source must be a camera index (int), a path or a URI string; "
                         f"found {uri!r}.")
    if isinstance(uri, (int, np.integer)):
        return "camera", int(uri)
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError(f"source must be a camera index, a path or a URI string; found {uri!r}.")
    text = uri.strip()
    if text.isdigit():
        return "camera", int(text)
    m = re.fullmatch(r"/dev/video(\d+)", text)
    if m:
        return "camera", int(m[1])
    scheme = urllib.parse.urlsplit(text).scheme.lower() if "://" in text else ""
    typo = re.match(r"(synthetic|csi|picam|file|rtsp|https?):/{0,1}(?!/)", text, re.IGNORECASE)
    if not scheme and typo and not os.path.exists(text):
        raise ValueError(f"source {uri!r}: did you mean {typo[1].lower()}://…? A URI scheme is "
                         f"followed by '://', e.g. synthetic://?size=640x480&fps=30.")
    if scheme == "synthetic":
        return "synthetic", text
    if scheme in CAMERA_SCHEMES:
        return "camera", text
    if scheme in STREAM_SCHEMES:
        return "stream", text
    if scheme == "file":
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    elif scheme:
        raise ValueError(f"unknown source scheme {scheme!r} in {uri!r}; expected a camera "
                         f"(0, /dev/video0, csi://0, picam://0), a file path or file://, "
                         f"{', '.join(s + '://' for s in STREAM_SCHEMES)} or synthetic://.")
    # A real file or folder whose name holds [ ] ? * is itself, not a pattern.
    if any(c in text for c in "*?[") and not os.path.exists(text):
        paths = sorted((p for p in glob.glob(text) if os.path.isfile(p)), key=_natural_key)
        if not paths:
            raise FileNotFoundError(f"no files match the glob {uri!r} (expected image files "
                                    f"such as frames/*.png). Check the folder and the pattern; "
                                    f"relative paths start at {os.getcwd()}.")
        return "images", paths
    if os.path.isdir(text):
        paths = sorted((str(p) for p in Path(text).iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not paths:
            raise FileNotFoundError(f"the folder {uri!r} holds no images (expected files ending "
                                    f"in {', '.join(IMAGE_SUFFIXES)}). Check the path, or write "
                                    f"the frames there first.")
        return "images", paths
    if not os.path.isfile(text):
        raise FileNotFoundError(f"video file {uri!r} does not exist (expected a video file, an "
                                f"image folder or glob, a camera, a stream URL or synthetic://). "
                                f"Check the path; relative paths start at {os.getcwd()}."
                                + _asset_hint(text))
    if Path(text).suffix.lower() in IMAGE_SUFFIXES:
        return "images", [text]
    return "file", text


def _asset_hint(path: str) -> str:
    """For a missing workbook asset (vtest.avi): where a verified copy is, or how to get one."""
    try:
        from helpers import assets

        for asset in assets.registry().values():
            if asset.filename == Path(path).name:
                found = assets.locate(asset)
                if found.path:
                    return (f" A verified copy of {asset.filename} is at {found.path}; pass that "
                            f"path, or assets.resolve({asset.name!r}).")
                return f" {asset.filename} is the workbook asset {asset.name!r}: {asset.offline}."
    except Exception:  # a hint must never hide the real error
        pass
    return ""


def _query_params(uri, what: str, keys: dict, size, fps, example: str) -> dict:
    """The ?key=value options of ``uri`` over ``keys``' defaults; size=/fps= arguments count
    too, and saying one thing twice in two ways is an error."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query, keep_blank_values=True,
                                  strict_parsing=False)
    unknown = sorted(set(query) - set(keys))
    if unknown:
        raise ValueError(f"{what} {uri!r}: unknown query key(s) {', '.join(unknown)}; "
                         f"known keys: {', '.join(keys)} (e.g. {example}).")
    params = {k: default for k, (_, default) in keys.items()}
    for key, given in (("size", size), ("fps", fps)):
        if given is not None:
            params[key] = tuple(int(v) for v in given) if key == "size" else float(given)
    for key, values in query.items():
        parse = keys[key][0]
        try:
            value = parse(values[-1])
        except ValueError as exc:
            raise ValueError(f"{what} {uri!r}: bad value for {key}: {exc}") from None
        kwarg = {"size": size, "fps": fps}.get(key)
        if kwarg is not None and params[key] != value:
            raise ValueError(f"{what} {uri!r} says {key}={values[-1]} but {key}={kwarg} "
                             f"was also passed; give it in one place.")
        params[key] = value
    return params


def _synthetic_params(uri, size, fps):
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"synthetic source {uri!r}: expected synthetic://?key=value&…; found "
                         f"{parts.netloc + parts.path!r} before the '?'. Known keys: "
                         f"{', '.join(SYNTHETIC_KEYS)}.")
    return _query_params(uri, "synthetic source", SYNTHETIC_KEYS, size, fps,
                         "synthetic://?size=640x480&fps=30&noise=0.3&seed=1")


# ---------------------------------------------------------------- csi:// and picam://


class CameraURI(NamedTuple):
    """A parsed csi:// or picam:// URI (``parse_camera_uri``)."""
    scheme: str  # "csi" or "picam"
    index: int  # sensor-id (csi) or camera number (picam)
    size: tuple  # (width, height) asked of the sensor
    fps: float
    flip: str  # one of FLIPS
    backend: str | None = None  # picam: "picamera2", "gstreamer" or None (choose)

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.index}"


def parse_camera_uri(uri: str, size=None, fps=None) -> CameraURI:
    """``csi://N`` or ``picam://N`` with ``?size=WxH&fps=F&flip=NAME`` (and picam's
    ``backend=``); ``size``/``fps`` are VideoSource's arguments, which count as the query."""
    parts = urllib.parse.urlsplit(str(uri).strip())
    scheme = parts.scheme.lower()
    if scheme not in CAMERA_KEYS:
        raise ValueError(f"{uri!r} is not a camera URI; expected "
                         f"{' or '.join(s + '://N' for s in CAMERA_SCHEMES)}.")
    number = parts.netloc or parts.path.strip("/") or "0"
    if not number.isdigit() or (parts.netloc and parts.path.strip("/")):
        raise ValueError(f"camera {uri!r}: expected {scheme}://N with N the camera number (0 for "
                         f"the first), then ?key=value options; found {parts.netloc + parts.path!r}.")
    keys = CAMERA_KEYS[scheme]
    p = _query_params(uri, "camera", keys, size, fps, f"{scheme}://0?size=1280x720&fps=30&flip=rotate-180")
    return CameraURI(scheme, int(number), p["size"], p["fps"], p["flip"], p.get("backend"))


def _gst_fraction(fps: float) -> str:
    """30 -> "30/1"; 29.97 -> "30000/1001" (NTSC rates, as cameras state them)."""
    ntsc = fps * 1.001
    if abs(ntsc - round(ntsc)) < 1e-3 and abs(fps - round(fps)) > 1e-3:
        return f"{round(ntsc) * 1000}/1001"
    rate = Fraction(fps).limit_denominator(1000)
    return f"{rate.numerator}/{rate.denominator}"


def csi_pipeline(cam: CameraURI) -> str:
    """The GStreamer pipeline OpenCV opens for ``csi://N`` on a Jetson.

    nvarguscamerasrc delivers NV12 in NVMM (device) memory at the sensor mode nearest the
    size and rate; nvvidconv flips it and copies it to system memory as BGRx; videoconvert
    drops the x. The appsink keeps only the newest frame (``drop=1 max-buffers=1``): a reader
    that falls behind gets a fresh frame, not a stale queue.
    """
    w, h = cam.size
    flip = FLIPS.index(cam.flip)
    return (f"nvarguscamerasrc sensor-id={cam.index} ! "
            f"video/x-raw(memory:NVMM),width={w},height={h},format=NV12,framerate={_gst_fraction(cam.fps)} ! "
            f"nvvidconv{f' flip-method={flip}' if flip else ''} ! video/x-raw,format=BGRx ! "
            f"videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")


def libcamera_pipeline(cam: CameraURI) -> str:
    """The GStreamer pipeline OpenCV opens for ``picam://0`` when picamera2 is not used.

    libcamerasrc (package gstreamer1.0-libcamera) opens the first camera libcamera lists; a
    flip is a videoflip after the conversion to BGR.
    """
    w, h = cam.size
    flip = "" if cam.flip == "none" else f" ! videoflip method={_VIDEOFLIP.get(cam.flip, cam.flip)}"
    return (f"libcamerasrc ! video/x-raw,width={w},height={h},framerate={_gst_fraction(cam.fps)} ! "
            f"videoconvert ! video/x-raw,format=BGR{flip} ! appsink drop=1 max-buffers=1")


def _gstreamer_in_build(info: str) -> bool | None:
    """Whether cv2.getBuildInformation() text lists GStreamer support (None: no such line)."""
    m = re.search(r"^\s*GStreamer:\s*(\S+)", info, re.MULTILINE)
    return None if m is None else m[1].upper() != "NO"


def gstreamer_problem() -> str:
    """Why this OpenCV cannot open GStreamer pipelines ('' when it can)."""
    try:
        found = _gstreamer_in_build(cv2.getBuildInformation())
    except Exception as exc:  # a stripped build without the function
        return f"cv2.getBuildInformation() failed ({type(exc).__name__}: {exc})"
    if found:
        return ""
    line = "says 'GStreamer: NO'" if found is False else "lists no GStreamer"
    return (f"this OpenCV {cv2.__version__} ({os.path.dirname(cv2.__file__)}) was built without "
            f"GStreamer (cv2.getBuildInformation() {line}; pip's opencv-python wheels never have it)")


def gst_element_problem(element: str, timeout: float = 10.0) -> str | None:
    """'' if GStreamer has ``element``, why not if it lacks it, None if it cannot be told
    (no gst-inspect-1.0 here, or it hung)."""
    exe = shutil.which("gst-inspect-1.0")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, element], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return ""
    return f"GStreamer has no {element} element (`gst-inspect-1.0 {element}` fails)"


def _picamera2_problem() -> str:
    """Why picamera2 cannot be imported here ('' when it is installed; the import itself, which
    loads libcamera, happens when a camera opens)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("picamera2") is not None
    except (ImportError, ValueError) as exc:
        return f"picamera2 cannot be found ({type(exc).__name__}: {exc})"
    return "" if found else f"picamera2 is not importable from {sys.executable}"


_JETSON_OPENCV = ("Use JetPack's OpenCV, which has GStreamer (package nvidia-opencv, part of "
                  "`sudo apt install nvidia-jetpack`): make the venv with `python3 -m venv "
                  "--system-site-packages` and `pip uninstall opencv-python opencv-python-headless` "
                  "in it, so that `import cv2` finds the system build.")
_PI_PICAMERA2 = ("Install picamera2 from Raspberry Pi OS: `sudo apt install python3-picamera2` (pip's "
                 "picamera2 needs the system libcamera), and make the venv with `python3 -m venv "
                 "--system-site-packages` so that it can import it.")
_PI_GSTREAMER = ("Or, for the GStreamer path, `sudo apt install python3-opencv gstreamer1.0-libcamera` "
                 "and `pip uninstall opencv-python opencv-python-headless` in that venv.")


def camera_plan(uri, size=None, fps=None) -> tuple[CameraURI, str, str]:
    """How VideoSource opens a csi:// or picam:// camera here, before it tries.

    Returns (camera, backend, problem): backend "gstreamer" or "picamera2"; problem is '' when
    nothing is known to be missing, else what is missing and what to install. Whether a sensor
    is actually attached shows only when it is opened (``env.probe()`` does that).
    """
    cam = parse_camera_uri(uri, size, fps)
    if cam.scheme == "csi":
        why = gstreamer_problem()
        if why:
            return cam, "gstreamer", f"{cam.uri} needs OpenCV with GStreamer: {why}. {_JETSON_OPENCV}"
        missing = gst_element_problem("nvarguscamerasrc")
        if missing:
            return cam, "gstreamer", (f"{cam.uri} needs NVIDIA's camera stack: {missing}. csi:// is "
                                      f"for Jetson (JetPack's nvidia-l4t-gstreamer provides it); on a "
                                      f"Raspberry Pi use picam://{cam.index}, elsewhere /dev/video0.")
        return cam, "gstreamer", ""
    no_picamera2 = _picamera2_problem()
    if cam.backend == "picamera2" or (cam.backend is None and not no_picamera2):
        return cam, "picamera2", (f"{cam.uri} with backend=picamera2: {no_picamera2}. {_PI_PICAMERA2}"
                                  if no_picamera2 else "")
    problems = [no_picamera2] if cam.backend is None else []
    why = gstreamer_problem()
    if why:
        problems.append(why)
    else:
        missing = gst_element_problem("libcamerasrc")
        if missing:
            problems.append(f"{missing}; `sudo apt install gstreamer1.0-libcamera` provides it")
        elif cam.index != 0:
            problems.append(f"libcamerasrc opens the first camera only (it selects others by "
                            f"libcamera name, not number), so picam://{cam.index} needs picamera2")
    if problems:
        needs = ("with backend=gstreamer needs OpenCV with GStreamer and libcamerasrc" if cam.backend
                 else "needs picamera2, or OpenCV with GStreamer and libcamerasrc")
        return cam, "gstreamer", (f"{cam.uri} {needs}; here {'; and '.join(problems)}. "
                                  f"{_PI_PICAMERA2} {_PI_GSTREAMER}")
    return cam, "gstreamer", ""


# ---------------------------------------------------------------- readers
# A reader owns one underlying source. Only the pump thread calls read/rewind/release
# after construction, so none of them need locks.


class _Reader:
    """The protocol every source kind implements (jetcam's camera base class, in spirit).

    ``read()`` returns ``(image, timestamp)`` or None at the end; ``rewind()`` goes back to the
    first frame (for loop=True); ``release()`` frees the device or file. ``size`` (w, h) and
    ``fps`` are what the source delivers (None until known); ``frame_count`` is the frames in
    one pass, None where unknown (cameras, streams)."""

    size: tuple | None = None
    fps: float | None = None
    frame_count: int | None = None

    def read(self):
        raise NotImplementedError

    def rewind(self) -> None:
        pass

    def release(self) -> None:
        pass


class _CaptureReader(_Reader):
    """A cv2.VideoCapture: file, stream or camera."""

    def __init__(self, open_capture, live: bool, fps: float | None):
        self.open_capture = open_capture
        self.live = live
        self.cap = open_capture()
        self.fps = fps
        self.size = None
        self.pending = None  # a frame decoded during the open check, delivered first
        self.n = 0
        self.last_t = 0.0

    def read(self):
        if self.pending is not None:
            got, self.pending = self.pending, None
            return got
        ok, image = self.cap.read()
        if not ok or image is None:
            return None
        if self.live:
            t = time.monotonic()
        else:
            t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if self.n > 0 and t <= self.last_t:  # a container without timestamps
                t = self.n / self.fps
        self.n += 1
        self.last_t = t
        return image, t

    def rewind(self):
        # Reopening is the one rewind that works on every backend; seeking does not.
        self.cap.release()
        self.cap = self.open_capture()
        self.n, self.last_t = 0, 0.0

    def release(self):
        self.cap.release()


class _ImageReader(_Reader):
    def __init__(self, paths, fps: float):
        self.paths = paths
        self.fps = fps
        self.i = 0
        self.frame_count = len(paths)
        got = self.read()  # a corrupt first image fails here, not later
        self.size = (got[0].shape[1], got[0].shape[0])
        self.i = 0

    def read(self):
        if self.i >= len(self.paths):
            return None
        path = self.paths[self.i]
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError(f"cv2.imread could not decode {path!r} (expected an image file). "
                               f"It may be truncated, corrupt or not an image; remove it from "
                               f"the folder or re-export it.")
        if self.size and (image.shape[1], image.shape[0]) != self.size:
            raise RuntimeError(f"{path!r} is {image.shape[1]}x{image.shape[0]} but the first "
                               f"image was {self.size[0]}x{self.size[1]}; a video source needs "
                               f"one size. Resize the images to match, or split the folder.")
        t = self.i / self.fps
        self.i += 1
        return image, t

    def rewind(self):
        self.i = 0


class _SyntheticReader(_Reader):
    def __init__(self, scene, clean: bool):
        self.scene = scene
        self.clean = clean
        self.fps = scene.fps
        self.size = scene.size
        self.frame_count = scene.length
        self.i = 0

    def read(self):
        if self.i >= self.scene.length:
            return None
        f = self.scene.frame(self.i)
        self.i += 1
        return (f.clean if self.clean else f.noisy), f.timestamp

    def rewind(self):
        self.i = 0


class _Picamera2Reader(_Reader):
    """A Raspberry Pi camera through picamera2. Format "RGB888" is libcamera's name for
    bytes in B, G, R order, so ``capture_array`` gives OpenCV's BGR with no conversion."""

    TRANSFORMS = {"none": {}, "horizontal": {"hflip": 1}, "vertical": {"vflip": 1},
                  "rotate-180": {"hflip": 1, "vflip": 1}}

    def __init__(self, cam: CameraURI):
        if cam.flip not in self.TRANSFORMS:
            raise ValueError(f"{cam.uri} flip={cam.flip}: picamera2 mirrors in the ISP "
                             f"({', '.join(self.TRANSFORMS)}) but cannot turn by 90 degrees; use "
                             f"backend=gstreamer, or cv2.rotate the frames.")
        try:
            from picamera2 import Picamera2
        except Exception as exc:  # ImportError, or a libcamera binding that does not load
            raise RuntimeError(f"{cam.uri}: import picamera2 failed ({type(exc).__name__}: {exc}). "
                               f"{_PI_PICAMERA2}") from exc
        self.fps = cam.fps
        try:
            self.camera = Picamera2(cam.index)
        except Exception as exc:
            raise RuntimeError(f"could not open {cam.uri} with picamera2 ({type(exc).__name__}: "
                               f"{exc}). `rpicam-hello --list-cameras` lists the cameras libcamera "
                               f"sees; check the ribbon cable and close any other program using "
                               f"the camera (another kernel: capture.close_all() there).") from exc
        try:
            kwargs = {"main": {"size": tuple(cam.size), "format": "RGB888"},
                      "controls": {"FrameDurationLimits": (round(1e6 / cam.fps),) * 2}}
            if cam.flip != "none":
                import libcamera

                kwargs["transform"] = libcamera.Transform(**self.TRANSFORMS[cam.flip])
            config = self.camera.create_video_configuration(**kwargs)
            self.camera.configure(config)
            self.camera.start()
        except Exception as exc:
            self.camera.close()
            raise RuntimeError(f"picamera2 could not start {cam.uri} at {cam.size[0]}x{cam.size[1]}, "
                               f"{cam.fps:g} fps ({type(exc).__name__}: {exc}); `rpicam-hello "
                               f"--list-cameras` lists the modes it has.") from exc
        w, h = config["main"]["size"]  # what libcamera agreed to (it may align the width)
        self.size = (int(w), int(h))
        if self.size != tuple(cam.size):
            warnings.warn(f"{cam.uri}: asked for {cam.size[0]}x{cam.size[1]}, it delivers {w}x{h} "
                          f"(libcamera's nearest; `rpicam-hello --list-cameras` lists the modes).",
                          stacklevel=4)

    def read(self):
        image = self.camera.capture_array("main")
        return np.ascontiguousarray(image[..., :3]), time.monotonic()

    def release(self):  # (no rewind: a live camera has no start to go back to)
        try:
            self.camera.stop()
        finally:
            self.camera.close()


def _open_gstreamer_camera(cam: CameraURI, pipeline: str):
    def open_capture():
        cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            cap.release()
            if cam.scheme == "csi":
                fixes = (f"Try it alone: `gst-launch-1.0 nvarguscamerasrc sensor-id={cam.index} "
                         f"num-buffers=30 ! fakesink`. Check the ribbon cable and the sensor-id; "
                         f"`sudo systemctl restart nvargus-daemon` after a program crashed holding "
                         f"the camera")
            else:
                fixes = ("Try it alone: `gst-launch-1.0 libcamerasrc num-buffers=30 ! fakesink`; "
                         "`rpicam-hello --list-cameras` lists the cameras and modes. Check the "
                         "ribbon cable")
            raise RuntimeError(f"could not open {cam.uri}: OpenCV's GStreamer backend refused the "
                               f"pipeline {pipeline!r}. {fixes}; close any other program using the "
                               f"camera; and ask for a mode the sensor has (now "
                               f"{cam.size[0]}x{cam.size[1]} at {cam.fps:g} fps).")
        return cap

    reader = _CaptureReader(open_capture, True, None)
    cap = reader.cap
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    reader.size = (w, h) if w > 0 and h > 0 else None
    reader.fps = _positive(cap.get(cv2.CAP_PROP_FPS)) or cam.fps
    return reader


def _open_camera_uri(uri, size, fps):
    """The reader for csi:// or picam://, or a RuntimeError that says what is missing."""
    cam, backend, problem = camera_plan(uri, size, fps)
    if problem:
        raise RuntimeError(f"cannot open {uri!r}: {problem}")
    if backend == "picamera2":
        return _Picamera2Reader(cam)
    return _open_gstreamer_camera(cam, csi_pipeline(cam) if cam.scheme == "csi" else libcamera_pipeline(cam))


# ---------------------------------------------------------------- the reader thread

_END = object()  # end of stream; an exception object in the queue means the reader failed


class _Stats:
    dropped = 0


def _offer(q, item, policy, stop, stats) -> bool:
    """Queue ``item`` under ``policy``; False if the source was closed meanwhile."""
    while not stop.is_set():
        try:
            q.put_nowait(item)
            return True
        except queue.Full:
            pass
        if policy == "latest":
            try:
                old = q.get_nowait()
                if isinstance(old, Frame):
                    stats.dropped += 1
            except queue.Empty:  # the consumer made room first
                pass
        else:
            # Poll, not block, so close() never waits on a consumer that went away.
            stop.wait(0.01)
    return False


def _pump(reader, q, stop, policy, stats, *, retry_failed_reads, loop, realtime):
    final = _END
    index, offset, pass_frames, last_t = 0, 0.0, 0, 0.0
    period = 1.0 / reader.fps if realtime and reader.fps else 0.0
    due = time.monotonic()
    try:
        while not stop.is_set():
            got = reader.read()
            if got is None:
                if retry_failed_reads:  # a camera has no end; the consumer's timeout judges it
                    stop.wait(0.01)
                    continue
                if loop and pass_frames:
                    offset += last_t + 1.0 / reader.fps
                    reader.rewind()
                    pass_frames = 0
                    continue
                break
            image, t = got
            last_t = t
            pass_frames += 1
            if reader.size is None:
                reader.size = (image.shape[1], image.shape[0])
            if period:
                now = time.monotonic()
                if due > now and stop.wait(due - now):
                    break
                due = max(due + period, time.monotonic() - period)  # late: don't burst
            if not _offer(q, Frame(index, offset + t, image), policy, stop, stats):
                break
            index += 1
    except Exception as exc:  # re-raised by the consumer in its own thread
        final = exc
    finally:
        try:
            reader.release()
        finally:
            # "all": the end marker waits for room instead of evicting the last real frame.
            _offer(q, final, "all", stop, stats)


# ---------------------------------------------------------------- VideoSource

_OPEN = weakref.WeakSet()  # every source not yet closed, for close_all() and name=


def close_all() -> int:
    """Close every open VideoSource (a re-run notebook cell frees the camera); returns how many."""
    sources = list(_OPEN)
    for source in sources:
        source.close()
    return len(sources)


atexit.register(close_all)


class VideoSource:
    """Frames from a camera, file, stream, image folder or synthetic scene (see module doc).

    ``size``/``fps``: asked of a camera (the values it actually delivers are what the
    properties report, with a warning when they differ); the defaults of synthetic://;
    ``fps`` is also the rate of an image folder (default 30). Other sources carry their
    own size; resizing belongs to preprocess.
    ``timeout``: seconds ``read()`` waits for a frame before raising RuntimeError
    (None waits forever). ``name``: a new source closes any open one with the same name.
    ``strict``: a file that ends well short of the frame count its header states raises
    instead of warning "ended after N of M frames".
    """

    def __init__(self, uri, *, size=None, fps=None, policy=None, queue_size: int = 4,
                 timeout: float | None = 5.0, loop: bool = False, realtime: bool = False,
                 name: str | None = None, strict: bool = False):
        self._closed = True  # until the thread runs, so __del__ of a half-built source is a no-op
        self.strict = bool(strict)
        self.uri = os.fspath(uri) if isinstance(uri, os.PathLike) else uri
        self.name = name
        if name is not None:
            _close_named(name)  # first: a camera held by the previous run of this cell would refuse us
        size, fps = _check_options(policy, queue_size, timeout, size, fps)
        self.kind, target = _classify(uri)
        _check_kind_options(self.kind, uri, size, loop)
        self.timeout = timeout
        self.loop = bool(loop)
        self.realtime = bool(realtime) and not self.is_live  # a live source already is
        self.policy = policy or ("latest" if self.is_live or self.realtime else "all")
        self._reader = _READERS[self.kind](target, size=size, fps=fps, timeout=timeout)
        self._start(queue_size)

    def _start(self, queue_size: int) -> None:
        self._queue = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._stats = _Stats()
        self._ended = False
        # The thread gets the reader, never self, so an abandoned source can be collected
        # and its __del__ can stop the thread.
        self._thread = threading.Thread(
            target=_pump, name=f"VideoSource-reader[{self.uri}]", daemon=True,
            args=(self._reader, self._queue, self._stop, self.policy, self._stats),
            kwargs=dict(retry_failed_reads=self.kind == "camera", loop=self.loop,
                        realtime=self.realtime))
        self._closed = False
        _OPEN.add(self)
        self._thread.start()

    # -- properties

    @property
    def size(self):
        """(width, height) of the frames; for a camera, what it delivers, not what was asked."""
        return self._reader.size

    @property
    def fps(self):
        return self._reader.fps

    @property
    def frame_count(self):
        """Frames in one pass; None where unknown (cameras, streams)."""
        return self._reader.frame_count

    @property
    def dropped(self) -> int:
        return self._stats.dropped

    @property
    def is_live(self) -> bool:
        return self.kind in ("camera", "stream")

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"VideoSource({self.uri!r}, kind={self.kind!r}, size={self.size}, fps={self.fps}, "
                f"policy={self.policy!r}, dropped={self.dropped}, {state})")

    # -- reading

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None at the end of the stream.

        Waits at most ``timeout`` seconds (default: the source's ``timeout``), then raises
        RuntimeError rather than hang. An error in the reader thread is raised here.
        """
        if self._ended:
            return None
        if self._closed:
            raise RuntimeError(f"VideoSource({self.uri!r}) is closed (expected an open source). "
                               f"Create a new VideoSource to read again.")
        wait = self.timeout if timeout is None else timeout
        try:
            item = self._queue.get(timeout=wait)
        except queue.Empty:
            if self.realtime and self.fps and wait < 1.0 / self.fps:
                # Not a slow renderer or decoder: the pacing itself waits longer than we do.
                raise FrameTimeout(
                    f"no frame from {self.uri!r} within {wait:g} s: realtime=True paces it at "
                    f"{self.fps:g} fps, one frame every {1 / self.fps:g} s. Raise timeout= above "
                    f"that, or drop realtime=True to read as fast as it decodes.") from None
            raise FrameTimeout(
                f"no frame from {self.uri!r} within {wait:g} s (expected a {self.kind} that "
                f"delivers frames). " + _STALL_HINTS[self.kind]) from None
        if item is _END:
            self._ended = True
            self._check_complete()
            return None
        if isinstance(item, BaseException):
            self._ended = True
            self.close()
            raise item
        return item

    def _check_complete(self) -> None:
        """A file that ends well short of the frame count its header states is truncated or
        partly overwritten: say so (or raise, with strict=True) instead of ending quietly."""
        count, decoded = self._reader.frame_count, getattr(self._reader, "n", None)
        if self.kind != "file" or self.loop or not count or decoded is None:
            return
        if count - decoded > max(1, count // 100):  # containers may miscount by a frame
            message = (f"{self.uri!r} ended after {decoded} of {count} frames: the file is "
                       "truncated or damaged (copy or download it again).")
            if self.strict:
                raise RuntimeError(message + " (strict=True)")
            warnings.warn(message + " Pass strict=True to make this an error.", RuntimeWarning,
                          stacklevel=3)

    def __iter__(self):
        try:
            while (frame := self.read()) is not None:
                yield frame
        finally:  # also on break, GeneratorExit and KeyboardInterrupt in the loop body
            self.close()

    # -- closing

    def close(self, join_timeout: float = 2.0) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        self._stop.set()
        self._drain()
        if self._thread is not threading.current_thread():
            self._thread.join(join_timeout)
            if self._thread.is_alive():
                warnings.warn(f"the reader of {self.uri!r} did not stop within {join_timeout} s "
                              f"(a read blocked in the driver); it releases the device when "
                              f"that read returns.", RuntimeWarning, stacklevel=2)
        self._drain()

    def _drain(self):
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone
            pass


_CAMERA_FIXES = ("Run `ls /dev/video*` to see which cameras exist; make sure your user is in "
                 "the `video` group (`sudo usermod -aG video $USER`, then log in again); close "
                 "any other program holding the camera (another notebook kernel: run "
                 "capture.close_all() there). Without a camera, use 'synthetic://' instead.")
_STALL_HINTS = {
    "camera": _CAMERA_FIXES,
    "stream": "Check that the stream is still being served (open it in VLC or ffplay) and "
              "that the network is up, or raise timeout=.",
    "file": "The decoder is slower than the timeout; raise timeout= or pass timeout=None.",
    "images": "Reading the images is slower than the timeout; raise timeout=.",
    "synthetic": "Rendering is slower than the timeout (large size, noise=1); raise timeout=.",
}


def _close_named(name: str) -> None:
    for other in list(_OPEN):
        if other.name == name:
            other.close()


def _check_options(policy, queue_size, timeout, size, fps):
    """VideoSource's arguments that hold for every kind; returns (size, fps) normalised."""
    if policy not in (None, *POLICIES):
        raise ValueError(f"policy must be one of {POLICIES} (or None for the source's "
                         f"default); found {policy!r}.")
    if not (isinstance(queue_size, int) and queue_size >= 1):
        raise ValueError(f"queue_size must be an int >= 1; found {queue_size!r}.")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None; found {timeout!r}.")
    if size is not None:
        try:
            size = tuple(int(v) for v in size)
            assert len(size) == 2 and min(size) > 0
        except (TypeError, ValueError, AssertionError):
            raise ValueError(f"size must be (width, height); found {size!r}.") from None
    return size, (None if fps is None else _check_fps(fps))


def _check_kind_options(kind: str, uri, size, loop) -> None:
    if kind in ("file", "stream", "images") and size is not None:
        raise ValueError(f"size= applies to cameras and synthetic:// sources; {uri!r} is a "
                         f"{kind} with its own size. Resize frames in preprocess instead.")
    if kind in ("camera", "stream") and loop:
        raise ValueError(f"loop=True restarts recorded sources; {uri!r} is a live {kind}.")


# One opener per kind: (target from _classify, size, fps, timeout) -> an open _Reader.

def _camera_reader(target, size, fps, timeout):
    if isinstance(target, str):  # csi:// or picam://
        return _open_camera_uri(target, size, fps)
    reader = _CaptureReader(lambda: _open_camera(target, size, fps), True, None)
    reader.size, reader.fps = _camera_settings(reader.cap, target, size, fps)
    return reader


def _stream_reader(url, size, fps, timeout):
    reader = _CaptureReader(lambda: _open_stream(url, timeout), True, None)
    w, h = int(reader.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(reader.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    reader.size = (w, h) if w > 0 and h > 0 else None
    reader.fps = _positive(reader.cap.get(cv2.CAP_PROP_FPS))
    return reader


def _file_reader(path, size, fps, timeout):
    reader = _open_file_reader(path, fps)
    count = int(reader.cap.get(cv2.CAP_PROP_FRAME_COUNT))
    reader.frame_count = count if count > 0 else None
    return reader


def _images_reader(paths, size, fps, timeout):
    return _ImageReader(paths, fps or DEFAULT_FPS)


def _synthetic_reader(uri, size, fps, timeout):
    from helpers.synth import Scene

    p = _synthetic_params(uri, size, fps)
    try:
        scene = Scene(size=p["size"], fps=p["fps"], length=p["length"], seed=p["seed"],
                      noise=p["noise"], density=p["density"])
    except ValueError as exc:
        raise ValueError(f"synthetic source {uri!r}: {exc}") from None
    return _SyntheticReader(scene, p["clean"])


_READERS = {"camera": _camera_reader, "file": _file_reader, "stream": _stream_reader,
            "images": _images_reader, "synthetic": _synthetic_reader}


def _positive(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _open_camera(index: int, size, fps):
    # V4L2 directly on Linux: CAP_ANY may pick GStreamer, which ignores the size we set.
    api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    cap = cv2.VideoCapture(index, api)
    if not cap.isOpened():
        cap.release()
        devices = sorted(glob.glob("/dev/video*"), key=_natural_key)
        raise RuntimeError(f"could not open camera /dev/video{index} (index {index}); found "
                           f"video devices: {', '.join(devices) or 'none'}. " + _CAMERA_FIXES)
    if size is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    if fps is not None:
        cap.set(cv2.CAP_PROP_FPS, fps)
    return cap


def _camera_settings(cap, index, size, fps):
    """What the camera agreed to; a driver rounds to the nearest mode it supports."""
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    actual_size = (w, h) if w > 0 and h > 0 else None
    actual_fps = _positive(cap.get(cv2.CAP_PROP_FPS))
    if size is not None and actual_size is not None and actual_size != size:
        warnings.warn(f"camera /dev/video{index}: asked for {size[0]}x{size[1]}, it delivers "
                      f"{w}x{h} (the nearest mode it supports; `v4l2-ctl --list-formats-ext` "
                      f"lists them).", stacklevel=3)
    if fps is not None and actual_fps is not None and abs(actual_fps - fps) > 0.5:
        warnings.warn(f"camera /dev/video{index}: asked for {fps:g} fps, it reports "
                      f"{actual_fps:g} fps.", stacklevel=3)
    return actual_size, actual_fps if actual_fps is not None else fps


def _open_stream(url: str, timeout):
    # FFmpeg would otherwise wait ~30 s on an unreachable host.
    ms = int((timeout or 30.0) * 1000)
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG,
                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    if not cap.isOpened():
        cap.release()
        raise RuntimeError(f"could not open the stream {url!r} with FFmpeg (expected an RTSP or "
                           f"HTTP video stream). Check the URL and credentials "
                           f"(rtsp://user:password@host:554/path) by opening it in VLC or ffplay, "
                           f"and that the host is reachable from this machine. Offline, use a "
                           f"video file or 'synthetic://' instead.")
    return cap


def _open_file_reader(path: str, fps):
    def corrupt(what):
        return RuntimeError(
            f"OpenCV {what} {path!r} (expected a video file it can decode; found a "
            f"{os.path.getsize(path)}-byte file). The file may be truncated or corrupt (copy or "
            f"download it again) or use a codec this OpenCV build lacks (check "
            f"cv2.getBuildInformation() under Video I/O, or re-encode it, e.g. "
            f"`ffmpeg -i in -c:v mjpeg out.avi`).")

    def open_capture():
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            cap.release()
            raise corrupt("could not open")
        return cap

    reader = _CaptureReader(open_capture, False, None)
    file_fps = _positive(reader.cap.get(cv2.CAP_PROP_FPS))
    if fps is not None and file_fps is not None and abs(fps - file_fps) > 1e-3:
        reader.release()
        raise ValueError(f"{path!r} states {file_fps:g} fps but fps={fps:g} was passed; fps= is "
                         f"only for files that state no rate. Drop the fps= argument.")
    reader.fps = file_fps or fps or DEFAULT_FPS
    first = reader.read()
    if first is None:
        reader.release()
        raise corrupt("opened but could not decode a first frame from")
    reader.pending = first
    reader.size = (first[0].shape[1], first[0].shape[0])
    return reader


# ---------------------------------------------------------------- VideoSink


_WORKING_FOURCC: dict[str, str] = {}  # container suffix -> first default fourcc that opened


class VideoSink:
    """Write frames to a video file that appears only when complete.

    Frames go to a temporary file beside ``path``; ``close()`` renames it into place and
    a sink left by an exception (or never closed) deletes it, so a crash never leaves a
    half-written video that looks finished. ``fourcc=None`` tries avc1 (H.264), then
    mp4v, then MJPG in the container named by the path's suffix, and warns when it had
    to fall back: pip's OpenCV wheels cannot encode H.264.
    """

    def __init__(self, path, fps: float, size=None, fourcc: str | None = None):
        self.path = Path(path)
        if not self.path.suffix:
            raise ValueError(f"video path needs a suffix naming the container (.mp4, .avi); "
                             f"found {str(path)!r}.")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be > 0; found {fps!r}.")
        if fourcc is not None and len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters such as 'mp4v'; found {fourcc!r}.")
        self.fps = float(fps)
        self.size = None if size is None else tuple(int(v) for v in size)
        self.requested_fourcc = fourcc
        self.fourcc = None
        self.frames = 0
        self._writer = None
        self._tmp = None
        self._closed = False
        self._result = None
        if self.size is not None:
            self._open()

    def _open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.",
                                   suffix=f".tmp{self.path.suffix}")  # suffix picks the container
        os.close(fd)
        self._tmp = Path(tmp)
        suffix = self.path.suffix.lower()
        if self.requested_fourcc:
            candidates = [self.requested_fourcc]
        else:
            known = _WORKING_FOURCC.get(suffix)
            candidates = ([known] if known else []) + [c for c in SINK_FOURCCS if c != known]
        for code in candidates:
            writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*code), self.fps,
                                     self.size)
            if writer.isOpened():
                self._writer, self.fourcc = writer, code
                break
            writer.release()
        if self._writer is None:
            self._tmp.unlink(missing_ok=True)
            self._closed = True
            raise RuntimeError(f"cv2.VideoWriter could not open {str(self.path)!r} with any of "
                               f"fourcc {', '.join(candidates)} (expected an encoder for the "
                               f"{suffix} container). Try a .avi path with fourcc='MJPG', or "
                               f"check cv2.getBuildInformation() under Video I/O.")
        if not self.requested_fourcc:
            _WORKING_FOURCC[suffix] = self.fourcc
            if self.fourcc != SINK_FOURCCS[0]:
                warnings.warn(f"VideoSink {self.path.name}: this OpenCV build cannot encode "
                              f"{SINK_FOURCCS[0]} (H.264) in {suffix}; wrote {self.fourcc} "
                              f"instead.", stacklevel=3)

    def write(self, image) -> None:
        if self._closed:
            raise RuntimeError(f"VideoSink({str(self.path)!r}) is closed; create a new one.")
        if isinstance(image, Frame):
            image = image.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            found = type(image).__name__ if not isinstance(image, np.ndarray) else image.dtype
            raise ValueError(f"VideoSink.write expects an HxWx3 uint8 BGR image; found {found}. "
                             f"Convert with np.clip(img, 0, 255).astype(np.uint8).")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"VideoSink.write expects an HxWx3 uint8 BGR image; found shape "
                             f"{image.shape}. Expand grayscale with cv2.cvtColor(img, "
                             f"cv2.COLOR_GRAY2BGR); drop alpha with cv2.COLOR_BGRA2BGR.")
        frame_size = (image.shape[1], image.shape[0])
        if self._writer is None:
            self.size = frame_size
            self._open()
        if frame_size != self.size:
            raise ValueError(f"VideoSink {self.path.name} is {self.size[0]}x{self.size[1]}; "
                             f"found a {frame_size[0]}x{frame_size[1]} frame. Every frame of a "
                             f"video has one size: cv2.resize it first.")
        self._writer.write(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None if nothing written)."""
        if self._closed:
            return self._result
        if not self.frames:
            self.discard()
            warnings.warn(f"VideoSink {self.path.name}: no frames were written, so no file was "
                          f"created.", stacklevel=2)
            return None
        self._closed = True
        self._writer.release()
        if not self._tmp.is_file() or self._tmp.stat().st_size == 0:
            self._tmp.unlink(missing_ok=True)
            raise RuntimeError(f"cv2.VideoWriter wrote nothing to {str(self.path)!r} (fourcc "
                               f"{self.fourcc}). Try a .avi path with fourcc='MJPG'.")
        try:
            verify_video(self._tmp, self.frames, self.path)  # a short file never replaces a good one
        except OSError:
            self._tmp.unlink(missing_ok=True)
            raise
        os.replace(self._tmp, self.path)
        self._result = self.path
        return self.path

    def discard(self) -> None:
        """Drop the partial file; ``path`` is left as it was."""
        self._closed = True
        if self._writer is not None:
            self._writer.release()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def __del__(self):
        try:
            if not self._closed:
                self.discard()  # only an explicit close publishes the file
        except Exception:
            pass
