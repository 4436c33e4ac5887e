"""The whole loop, stage by stage: source -> [TNR] -> [filter] -> preprocess -> network ->
postprocess -> tracker -> draw -> sink, timed per stage, run synchronously or overlapped.

A filter is any image-to-image stage (helpers.filters.Upscaler: super-resolution). Without a
detector the pipeline is source -> [TNR] -> filter -> sink, a video filter on its own.

    pipe = Pipeline(detector, denoiser=tnr.TemporalDenoiser(), tracker=Tracker())
    result = pipe.run(file_frames("vtest.avi"), mode="overlapped")   # or VideoSource(uri), or images
    print(result.table(fps=30)); print(result.verdict(fps=30))

**sync**: one thread does everything, one frame at a time; the frame time is the sum of the
stages. **overlapped**: capture runs on its own thread, drawing and writing on another, and
inference (TNR to tracking) on the caller's thread, on its own CUDA stream on a GPU, with a
small bounded queue between each: the frame time becomes the slowest *group* of stages, as
long as the cores are not all busy already.

The verdict compares each group's typical time (sum of p50s), and the measured rate, with the
source's frame budget (1000 / fps ms); the table shows p95 next to p50:
"real-time at 30 fps with 23% headroom", or "not real-time: the bottleneck is network,
12.5 ms over budget".
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .bench import stage_timer

__all__ = ["STAGES", "Pipeline", "Result", "file_frames", "stage_table", "verdict"]

STAGES = ("capture", "tnr", "filter", "preprocess", "network", "postprocess", "tracking", "draw", "sink")
# Which stages share a thread in overlapped mode.
OVERLAPPED_GROUPS = (("capture",), ("tnr", "filter", "preprocess", "network", "postprocess", "tracking"),
                     ("draw", "sink"))
SYNC_GROUPS = (STAGES,)
_END = object()


def file_frames(path, max_frames: int | None = None, start: int = 0):
    """BGR frames of a video file, decoded by whichever thread iterates: one cv2.VideoCapture
    and no reader thread of its own, as fast as the decoder goes (no pacing to the file's fps).

    That is what makes sync and overlapped comparable on real footage: in "sync" the one
    thread decodes too, in "overlapped" the capture thread does (OpenCV releases the GIL while
    it decodes). helpers.capture.VideoSource is the workbook's source for everything else; its
    own reader thread already decodes ahead, so a "sync" run fed by it is partly overlapped.
    ``start`` skips that many frames (decoded, not seeked: seeking is not frame-exact in every
    container). Raises FileNotFoundError / RuntimeError when the file is missing or unreadable."""
    import os

    import cv2

    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path}. Pass a file OpenCV can decode "
                                "(helpers.assets.locate('vtest_video').path for the workbook's clip).")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise RuntimeError(f"OpenCV could not open {path} (expected a video it can decode; check "
                           "cv2.getBuildInformation() under Video I/O).")
    try:
        count = 0
        for _ in range(start):
            if not cap.grab():
                return
        while max_frames is None or count < max_frames:
            ok, image = cap.read()
            if not ok:
                return
            count += 1
            yield image
    finally:
        cap.release()


def _pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if len(values) else 0.0


def stage_table(samples: dict[str, list[float]], fps: float) -> list[dict]:
    """Per stage: p50 and p95 in ms and the p50's share of the frame budget (1000 / fps)."""
    budget = 1000.0 / fps
    rows = []
    for name in STAGES:
        if name in samples and len(samples[name]):
            p50, p95 = _pct(samples[name], 50), _pct(samples[name], 95)
            rows.append({"stage": name, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
                         "budget_share": round(p50 / budget, 3)})
    return rows


def verdict(p50: dict[str, float], fps: float, groups=SYNC_GROUPS, measured_fps: float | None = None) -> dict:
    """Real-time or not, from each stage's typical (p50) time in ms, the target ``fps``, and
    which stages run one after another (a group) versus side by side (different groups).

    The frame time is the slowest group's sum of p50s (percentiles do not add, so p95s would
    overstate it; the table shows them). When the run's ``measured_fps`` is known it must also
    reach the target: threads that share too few cores slow each other down, and only the
    measured rate shows that."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0; found {fps}.")
    budget = 1000.0 / fps
    group_ms = [(sum(p50.get(s, 0.0) for s in g), g) for g in groups]
    worst_ms, worst_group = max(group_ms, key=lambda x: x[0])
    if measured_fps:
        worst_ms = max(worst_ms, 1000.0 / measured_fps)
    bottleneck = max(worst_group, key=lambda s: p50.get(s, 0.0))
    real_time = worst_ms <= budget
    headroom = 1.0 - worst_ms / budget
    if real_time:
        text = f"real-time at {fps:g} fps with {headroom:.0%} headroom"
    else:
        text = (f"not real-time at {fps:g} fps: the bottleneck is {bottleneck}, "
                f"{worst_ms - budget:.1f} ms over the {budget:.1f} ms budget")
    return {"real_time": real_time, "text": text, "budget_ms": budget,
            "frame_ms": worst_ms, "bottleneck": bottleneck, "headroom": headroom}


@dataclass
class Result:
    mode: str
    frames: int
    wall_s: float
    samples: dict = field(default_factory=dict)  # stage -> [ms]
    requested: int | None = None

    @property
    def fps(self) -> float:
        """Measured end-to-end throughput."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def p95(self) -> dict[str, float]:
        return {s: _pct(v, 95) for s, v in self.samples.items()}

    def p50(self) -> dict[str, float]:
        return {s: _pct(v, 50) for s, v in self.samples.items()}

    def table(self, fps: float) -> list[dict]:
        return stage_table(self.samples, fps)

    def verdict(self, fps: float) -> dict:
        v = verdict(self.p50(), fps, OVERLAPPED_GROUPS if self.mode == "overlapped" else SYNC_GROUPS,
                    measured_fps=self.fps)
        v["measured_fps"] = round(self.fps, 2)
        if self.requested is not None and self.frames < self.requested:
            v["text"] += f" (partial: the source ended after {self.frames} of {self.requested} frames)"
        return v

    def to_dict(self, fps: float) -> dict:
        return {"mode": self.mode, "frames": self.frames, "wall_s": round(self.wall_s, 3),
                "measured_fps": round(self.fps, 2), "stages": self.table(fps), "verdict": self.verdict(fps)}


class Pipeline:
    """Detector (helpers.detect.Detector) plus the optional stages around it.

    ``detector``: a Detector, or None for a filter-only pipeline (then ``filter`` is required).
    ``denoiser``: a TemporalDenoiser or None. ``filter``: an image-to-image stage
    (helpers.filters.Upscaler) applied after TNR, or None; the detector, if any, sees its
    output. ``tracker``: a helpers.track.Tracker or None.
    ``draw``: draw boxes/tracks on the frame (the viewer's or the sink's picture).
    ``sink``: anything with ``write(image)`` (helpers.capture.VideoSink), or None.
    ``on_frame(index, drawn, result)``: called after each frame (a viewer update).
    """

    def __init__(self, detector=None, denoiser=None, tracker=None, draw: bool = True, sink=None,
                 score_thresh: float | None = None, on_frame=None, filter=None):
        if detector is None and filter is None:
            raise ValueError("Pipeline needs a detector, a filter, or both; found neither.")
        if detector is None and tracker is not None:
            raise ValueError("Pipeline: a tracker needs a detector to feed it; pass detector= or drop tracker=.")
        self.detector, self.denoiser, self.tracker, self.filter = detector, denoiser, tracker, filter
        self.draw, self.sink, self.on_frame = draw, sink, on_frame
        self.score_thresh = score_thresh if score_thresh is not None else \
            (tracker.low_score if tracker is not None else 0.5)
        self.trails = None
        self._frame_size = None

    def _infer(self, image, times: dict):
        import torch

        from .preprocess import torch_ops

        det = self.detector
        size = tuple(image.shape[:2])
        if self._frame_size is not None and size != self._frame_size:
            # A new picture (a camera switch, a resized stream): the tracks and trails live in
            # the old frame's coordinates and would coast there. The denoiser resets itself.
            if self.tracker is not None:
                self.tracker.reset()
            self.trails = None
            warnings.warn(f"Pipeline: frame size changed from {self._frame_size[1]}x{self._frame_size[0]} "
                          f"to {size[1]}x{size[0]}; the tracker was reset (track ids start again).",
                          RuntimeWarning, stacklevel=2)
        self._frame_size = size
        if self.denoiser is not None:
            with stage_timer(self._tnr_device, into=times["tnr"]):
                if self._tnr_device is not None and not isinstance(image, torch.Tensor):
                    # The one upload: the frame stays on the device from TNR through the
                    # detector, instead of coming back as numpy and going up again.
                    image = torch_ops.upload(image, self._tnr_device)
                image = self.denoiser(image)
        if self.filter is not None:
            with stage_timer(getattr(self.filter, "device", None), into=times["filter"]):
                image = self.filter(image)
        if det is None:
            if isinstance(image, torch.Tensor):
                image = image.cpu().numpy()  # the one copy to the host: for display
            return image, None
        dets = det(image, self.score_thresh)
        for stage in ("preprocess", "network", "postprocess"):  # Detector times its own stages
            times[stage].append(getattr(det.times, stage))
        out = dets
        if self.tracker is not None:
            with stage_timer(into=times["tracking"]):
                out = self.tracker.update(dets)
        if isinstance(image, torch.Tensor):
            image = image.cpu().numpy()  # the one copy to the host: for display
        return image, out

    @property
    def _tnr_device(self):
        """The CUDA device to upload frames to before TNR, or None: only when the denoiser
        filters on a GPU (not the OpenCV backend) and the stage after it runs there too."""
        import torch

        device = getattr(self.denoiser, "device", None)
        after = getattr(self.filter if self.filter is not None else self.detector, "device", None)
        if device is None or after is None or getattr(self.denoiser, "backend", None) == "opencv":
            return None
        return device if torch.device(device).type == torch.device(after).type == "cuda" else None

    def _render(self, index, image, out, times: dict):
        from . import viz

        drawn = image
        if self.draw and self.detector is not None:
            with stage_timer(into=times["draw"]):
                if self.tracker is not None:
                    if self.trails is None:
                        self.trails = viz.Trails(20)
                    self.trails.update(out)
                    drawn = viz.draw_tracks(image, out, self.detector.labels, self.trails)
                else:
                    drawn = viz.draw_detections(image, out, self.detector.labels, min_score=0.5)
        if self.sink is not None:
            with stage_timer(into=times["sink"]):
                self.sink.write(drawn)
        if self.on_frame is not None:
            self.on_frame(index, drawn, out)

    def run(self, frames, mode: str = "sync", max_frames: int | None = None, queue_size: int = 2) -> Result:
        """Process ``frames`` (an iterable of BGR uint8 images, or of helpers.capture Frames)."""
        if mode not in ("sync", "overlapped"):
            raise ValueError(f"mode must be 'sync' or 'overlapped'; found {mode!r}.")
        if self.tracker is not None:
            self.tracker.reset()
        if self.denoiser is not None:
            self.denoiser.reset()
        self.trails = None
        self._frame_size = None
        times = {s: [] for s in STAGES}
        run = self._run_sync if mode == "sync" else self._run_overlapped
        start = time.perf_counter()
        count = run(iter(frames), times, max_frames, queue_size)
        wall = time.perf_counter() - start
        return Result(mode, count, wall, {k: v for k, v in times.items() if v}, max_frames)

    @staticmethod
    def _next(it, times):
        with stage_timer() as t:
            item = next(it, _END)
        if item is not _END:
            times["capture"].append(t.ms)
            item = getattr(item, "image", item)  # a capture.Frame or a bare image
        return item

    def _run_sync(self, it, times, max_frames, _queue_size) -> int:
        count = 0
        while max_frames is None or count < max_frames:
            image = self._next(it, times)
            if image is _END:
                break
            image, out = self._infer(image, times)
            self._render(count, image, out, times)
            count += 1
        return count

    def _run_overlapped(self, it, times, max_frames, queue_size) -> int:
        import torch

        inbox, outbox = queue.Queue(queue_size), queue.Queue(queue_size)
        stop = threading.Event()
        errors = []

        def put(q, item):
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def capture():
            try:
                n = 0
                while not stop.is_set() and (max_frames is None or n < max_frames):
                    image = self._next(it, times)
                    if image is _END:
                        break
                    if not put(inbox, image):
                        return
                    n += 1
            except BaseException as exc:  # reported by the caller's thread
                errors.append(exc)
            finally:
                put(inbox, _END)

        def render():
            try:
                index = 0
                while True:
                    try:
                        item = outbox.get(timeout=0.1)
                    except queue.Empty:
                        if stop.is_set():
                            return
                        continue
                    if item is _END:
                        return
                    self._render(index, *item, times)
                    index += 1
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=capture, name="pipeline-capture", daemon=True),
                   threading.Thread(target=render, name="pipeline-render", daemon=True)]
        for th in threads:
            th.start()
        device = getattr(self.detector if self.detector is not None else self.filter, "device", None)
        on_gpu = device is not None and device.type == "cuda"
        # Inference on its own CUDA stream, so its kernels queue independently of whatever
        # the other threads (uploads, display copies) put on the default stream.
        stream = torch.cuda.Stream(device=device) if on_gpu else None
        count = 0
        try:
            with torch.cuda.stream(stream) if on_gpu else contextlib.nullcontext():
                while not stop.is_set():
                    try:
                        image = inbox.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if image is _END:
                        break
                    if not put(outbox, self._infer(image, times)):
                        break
                    count += 1
            put(outbox, _END)  # a normal end: let the render thread drain what is queued
            threads[1].join()
        finally:
            # Always reached, also on an error or KeyboardInterrupt: no thread outlives the run.
            stop.set()
            for th in threads:
                th.join(timeout=5)
        if errors:
            raise errors[0]
        return count
