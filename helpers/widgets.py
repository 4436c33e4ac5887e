"""Notebook widgets: a live viewer in the jetcam style, and a score-threshold view.

The only module that imports ipywidgets; nothing else in ``helpers`` needs Jupyter.

    viewer = Viewer("synthetic://?size=640x480&fps=30", name="live")
    display(viewer.widget())
    viewer.start()

``Viewer`` is a traitlets object: ``value`` holds the latest (processed) BGR frame,
``running`` says whether frames flow, and ``fps`` / ``dropped`` are live figures.
``widget()`` links ``value`` to an ``ipywidgets.Image`` through a JPEG transform. A file or
synthetic source replays at its native rate ("recorded camera"), so the same live-view
cell runs under nbval in CI. Re-running the cell is safe: a new viewer with the same
``name`` stops the old one, joins its thread and removes its observers first.

``process`` is the per-frame hook (``frame -> image``: detect, track, draw); it runs on the
viewer's thread. Stop releases the source the viewer opened (a camera is free for another
program while stopped; Start opens it again, and a recorded source restarts). For headless
runs (nbval, ``make run``), ``run(seconds=..., frames=...)`` starts, waits, stops and
releases, also on KeyboardInterrupt, and raises what stopped the thread:

    viewer = Viewer(uri, process=detect_and_draw, name="live")
    display(viewer.widget())
    viewer.run(seconds=5)      # returns after 5 s with everything released; Start runs it on
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import deque

import cv2
import numpy as np
import traitlets

from .capture import FrameTimeout, VideoSource, source_kind

_VIEWERS: "weakref.WeakValueDictionary[str, Viewer]" = weakref.WeakValueDictionary()  # by name
_ALL: "weakref.WeakSet[Viewer]" = weakref.WeakSet()  # named or not, for close_all()
POLL_S = 0.5  # how often the frame thread checks for Stop while a source is silent


def bgr_to_jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    if image is None:
        return b""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not JPEG-encode an image of shape {getattr(image, 'shape', None)}")
    return encoded.tobytes()


class Viewer(traitlets.HasTraits):
    value = traitlets.Any(allow_none=True)  # latest frame shown, BGR uint8
    running = traitlets.Bool(False)
    fps = traitlets.Float(0.0)
    dropped = traitlets.Int(0)
    frames = traitlets.Int(0)

    def __init__(self, source, *, process=None, name: str | None = None, realtime: bool = True,
                 loop: bool = True, width: int | None = None, **source_kw):
        """``source``: a URI (or a ready ``VideoSource``); ``process``: optional
        ``frame -> image`` applied before display (e.g. detect and draw)."""
        super().__init__()
        _ALL.add(self)
        if name is not None:
            earlier = _VIEWERS.get(name)
            if earlier is not None:
                earlier.close()
            _VIEWERS[name] = self
        self.name = name
        self._source_arg = source
        self._source_kw = dict(source_kw, realtime=realtime, loop=loop)
        self.process = process
        self.width = width
        self._source: VideoSource | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._links: list = []
        self._widget = None
        self._error: BaseException | None = None

    # -- frames

    def _open(self) -> VideoSource:
        if isinstance(self._source_arg, VideoSource):
            return self._source_arg
        kw = dict(self._source_kw)
        kw.setdefault("policy", "latest")  # a viewer wants the freshest frame, like a camera
        if source_kind(self._source_arg) in ("camera", "stream"):
            kw["loop"] = False  # only recorded sources can restart
        return VideoSource(self._source_arg, **kw)

    def _loop(self, source: VideoSource):
        # ``source`` is passed in: stop() may release and forget self._source while a slow
        # process() call still runs here.
        stamps: deque = deque(maxlen=30)
        silent = 0.0
        try:
            while not self._stop.is_set():
                # Short waits keep Stop responsive; the source's own timeout decides when
                # a silent camera is an error (a first frame can take seconds to expose).
                try:
                    frame = source.read(timeout=POLL_S)
                except FrameTimeout:
                    silent += POLL_S
                    if source.timeout is not None and silent >= source.timeout:
                        raise
                    continue
                silent = 0.0
                if frame is None:  # end of a source that does not loop
                    break
                image = frame.image if self.process is None else self.process(frame)
                stamps.append(time.perf_counter())
                self.value = image
                self.frames += 1
                self.dropped = source.dropped
                if len(stamps) > 1:
                    self.fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        except BaseException as exc:  # shown by status(), never lost in a thread
            if not (self._stop.is_set() and source.closed):  # not the source stop() closed
                self._error = exc
        finally:
            # Ended by itself (an error, the end of a file): let go of a camera now, not at Stop.
            if not isinstance(self._source_arg, VideoSource):
                source.close()
            self.running = False

    def start(self) -> "Viewer":
        if self.running:
            return self
        if self._source is None or self._source.closed:
            self._source = self._open()
        self._stop.clear()
        self._error = None
        self.running = True
        self._thread = threading.Thread(target=self._loop, args=(self._source,),
                                        name=f"viewer-{self.name or id(self)}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "Viewer":
        """Stop the frame thread and release the source this viewer opened (a camera is then
        free; Start opens it again). A ready VideoSource passed in stays open: it is yours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._release()
        self.running = False
        return self

    def _release(self) -> None:
        if self._source is not None and not isinstance(self._source_arg, VideoSource):
            self._source.close()
            self._source = None

    def run(self, seconds: float | None = None, frames: int | None = None) -> "Viewer":
        """Start, and return once ``seconds`` have passed or ``frames`` more frames were shown
        (whichever comes first) or the source ended, stopped with the source released. For
        cells that must end on their own (nbval, ``make run``); press Start to carry on.

        On KeyboardInterrupt (Jupyter's Interrupt) the viewer is stopped and released before
        the interrupt goes on. An error that stopped the frame thread (the process hook's,
        a silent camera's) is raised here rather than only shown in the status line. While it
        waits the kernel is busy, so the Stop button answers only after it returns."""
        if seconds is None and frames is None:
            raise ValueError("run() needs seconds= or frames= (or both) so that it ends; use "
                             "start() for a viewer that runs until Stop.")
        if (seconds is not None and not seconds > 0) or (frames is not None and not frames >= 1):
            raise ValueError(f"run(): expected seconds > 0 and frames >= 1; found seconds={seconds}, "
                             f"frames={frames}.")
        end = time.monotonic() + seconds if seconds is not None else math.inf
        goal = self.frames + frames if frames is not None else math.inf
        try:
            self.start()
            while self.running and self.frames < goal and time.monotonic() < end:
                time.sleep(0.02)
        finally:  # also on KeyboardInterrupt: nothing keeps running or holds the camera
            self.stop()
        if self._error is not None:
            raise RuntimeError(f"the viewer {self.name or ''!r} stopped after {self.frames} frames: "
                               f"{type(self._error).__name__}: {self._error}") from self._error
        return self

    def close(self) -> None:
        """Stop the thread, release the source, and unlink the widget (safe to call twice)."""
        self.stop()
        for link in self._links:
            link.unlink()
        self._links.clear()
        self._source = None
        # The widget itself stays open, unlinked: it keeps showing the last frame, in the
        # notebook and in the saved widget state of an exported HTML page.
        self._widget = None

    def status(self) -> str:
        text = f"{self.fps:5.1f} fps · {self.frames} frames · {self.dropped} dropped"
        if self._error is not None:
            text += f" · stopped by {type(self._error).__name__}: {self._error}"
        return text

    # -- widget

    def widget(self):
        """An Image with live fps/drop figures and Start/Stop buttons, linked to this viewer."""
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        layout = {"width": f"{self.width}px"} if self.width else {}
        image = widgets.Image(format="jpeg", layout=layout)
        label = widgets.HTML()
        start = widgets.Button(description="Start", icon="play")
        stop = widgets.Button(description="Stop", icon="stop")
        start.on_click(lambda _: self.start())
        stop.on_click(lambda _: self.stop())
        self._links = [
            traitlets.dlink((self, "value"), (image, "value"), transform=bgr_to_jpeg),
            traitlets.dlink((self, "frames"), (label, "value"), transform=lambda _: self.status()),
            traitlets.dlink((self, "running"), (start, "disabled")),
            traitlets.dlink((self, "running"), (stop, "disabled"), transform=lambda r: not r),
        ]
        self._widget = widgets.VBox([image, widgets.HBox([start, stop, label])])
        return self._widget

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def close_all() -> None:
    """Close every viewer, named or not (a running viewer is kept alive by its own thread)."""
    for viewer in list(_ALL):
        viewer.close()


class ThresholdView(traitlets.HasTraits):
    """A frame and its detections, redrawn as a score-threshold slider moves.

    The detections are computed once at a low threshold; moving the slider only filters and
    redraws, so it responds instantly even on a slow CPU. ``count`` is the number of boxes
    drawn, shown in the label ("7 boxes at score >= 0.50").

        view = ThresholdView(frame, detector(frame, score_thresh=0.05), detector.labels)
        display(view.widget())
    """

    threshold = traitlets.Float(0.5)
    count = traitlets.Int(0)
    value = traitlets.Any(allow_none=True)  # the drawn frame, BGR uint8

    def __init__(self, image: np.ndarray, detections, names=None, threshold: float = 0.5):
        super().__init__()
        self.image, self.detections, self.names = image, detections, names
        self.observe(self._redraw, names="threshold")
        self.threshold = float(threshold)
        self._redraw()
        self._widget = None

    def _redraw(self, _change=None) -> None:
        from .viz import draw_detections

        # The picture first, then the count (which updates the label): a label that shows a
        # threshold then means its picture has already been sent.
        self.value = draw_detections(self.image, self.detections, self.names, self.threshold)
        self.count = int((np.asarray(self.detections.scores) >= self.threshold).sum())

    def status(self) -> str:
        return f"{self.count} boxes at score >= {self.threshold:.2f}"

    def widget(self):
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        slider = widgets.FloatSlider(value=self.threshold, min=min(0.05, self.threshold), max=0.95, step=0.05,
                                     description="score >=", continuous_update=True)
        image = widgets.Image(format="jpeg", value=bgr_to_jpeg(self.value))
        label = widgets.Label(value=self.status())
        self._links = [
            traitlets.link((slider, "value"), (self, "threshold")),
            traitlets.dlink((self, "value"), (image, "value"), transform=bgr_to_jpeg),
            traitlets.dlink((self, "count"), (label, "value"), transform=lambda _: self.status()),
        ]
        # count may not change when the threshold does; keep the label's threshold current.
        self.observe(lambda _: setattr(label, "value", self.status()), names="threshold")
        self._widget = widgets.VBox([slider, image, label])
        return self._widget


class SplitView(traitlets.HasTraits):
    """Before/after with a draggable split: ``before`` left of the line, ``after`` right of it.

    Both images must have one size (upscale the "before" with bicubic to compare with a
    super-resolved "after"). ``position`` is the split as a fraction of the width; the slider
    is linked to it, and ``value`` is the composited picture.

        view = SplitView(bicubic_image, sr_image, ("bicubic", "super-resolution"))
        display(view.widget())
    """

    position = traitlets.Float(0.5)
    value = traitlets.Any(allow_none=True)  # the composited frame, BGR uint8

    def __init__(self, before: np.ndarray, after: np.ndarray, labels=("before", "after"), position: float = 0.5):
        super().__init__()
        before, after = np.asarray(before), np.asarray(after)
        if before.shape != after.shape or before.dtype != np.uint8 or before.ndim != 3:
            raise ValueError(f"SplitView: expected two BGR uint8 images of one size; found {before.dtype}"
                             f"{before.shape} and {after.dtype}{after.shape}. Resize the first to match.")
        self.before, self.after, self.labels = before, after, tuple(labels)
        self.observe(self._redraw, names="position")
        self.position = float(position)
        self._redraw()
        self._widget = None

    @traitlets.validate("position")
    def _valid_position(self, proposal):
        return min(1.0, max(0.0, float(proposal["value"])))

    def _redraw(self, _change=None) -> None:
        import cv2

        w = self.before.shape[1]
        x = int(round(self.position * w))
        out = self.after.copy()
        out[:, :x] = self.before[:, :x]
        cv2.line(out, (min(x, w - 1), 0), (min(x, w - 1), out.shape[0] - 1), (255, 255, 255), 2)
        font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.6
        right = cv2.getTextSize(self.labels[1], font, size, 1)[0][0]
        for text, (tx, ty) in ((self.labels[0], (8, 24)), (self.labels[1], (max(8, w - 8 - right), 24))):
            # A dark outline (the text shifted by a pixel each way) keeps it readable anywhere;
            # a thicker stroke would widen every letter's advance and drift off the white text.
            for dx, dy in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
                cv2.putText(out, text, (tx + dx, ty + dy), font, size, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(out, text, (tx, ty), font, size, (255, 255, 255), 1, cv2.LINE_AA)
        self.value = out

    def status(self) -> str:
        return f"left {self.position:.0%}: {self.labels[0]} | right: {self.labels[1]}"

    def widget(self):
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        slider = widgets.FloatSlider(value=self.position, min=0.0, max=1.0, step=0.01, description="split",
                                     continuous_update=True, readout_format=".0%")
        image = widgets.Image(format="jpeg", value=bgr_to_jpeg(self.value, quality=90))
        label = widgets.Label(value=self.status())
        self._links = [
            traitlets.link((slider, "value"), (self, "position")),
            traitlets.dlink((self, "value"), (image, "value"), transform=lambda v: bgr_to_jpeg(v, quality=90)),
        ]
        self.observe(lambda _: setattr(label, "value", self.status()), names="position")
        self._widget = widgets.VBox([slider, image, label])
        return self._widget


class TNRPreview(traitlets.HasTraits):
    """Temporal noise reduction and detection on one frame, redrawn as two sliders move: TNR
    ``strength`` and the detector's score ``threshold``.

    A temporal filter needs the frames before the one it shows, so each change re-runs a fresh
    ``helpers.tnr.TemporalDenoiser`` over ``frames`` (the history, oldest first; the last one is
    shown) and the detector on its output. A dozen 640x480 frames take a fraction of a second
    on a CPU. ``count`` is the number of boxes drawn.

        preview = TNRPreview(history, detector, device="cpu")
        display(preview.widget())
    """

    strength = traitlets.Float(0.75)
    threshold = traitlets.Float(0.5)
    count = traitlets.Int(0)
    value = traitlets.Any(allow_none=True)  # the drawn frame, BGR uint8

    def __init__(self, frames, detector, preset: str = "outdoor_low_light", strength: float = 0.75,
                 threshold: float = 0.5, device: str = "cpu"):
        super().__init__()
        self.frames = list(frames)
        if not self.frames:
            raise ValueError("TNRPreview needs at least one frame of history (oldest first); found none.")
        self.detector, self.preset, self.device = detector, preset, device
        self.set_trait("strength", float(strength))
        self.set_trait("threshold", float(threshold))
        self._widget = None
        self._redraw()
        self.observe(self._redraw, names=["strength", "threshold"])

    def _redraw(self, _change=None) -> None:
        from .tnr import TemporalDenoiser
        from .viz import draw_detections

        denoiser = TemporalDenoiser("torch", self.preset, self.strength, device=self.device)
        for frame in self.frames:
            out = denoiser(frame)
        if not isinstance(out, np.ndarray):
            out = out.cpu().numpy()  # the one copy to the host: for display
        dets = self.detector(out, score_thresh=self.threshold)
        self.value = draw_detections(out, dets, self.detector.labels)  # the picture first, then the label
        self.count = len(dets)

    def status(self) -> str:
        return f"strength {self.strength:.2f}: {self.count} boxes at score >= {self.threshold:.2f}"

    def widget(self):
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        strength = widgets.FloatSlider(value=self.strength, min=0.0, max=1.0, step=0.05, description="TNR strength")
        score = widgets.FloatSlider(value=self.threshold, min=0.05, max=0.95, step=0.05, description="score >=")
        image = widgets.Image(format="jpeg", value=bgr_to_jpeg(self.value))
        label = widgets.Label(value=self.status())
        self._links = [
            traitlets.link((strength, "value"), (self, "strength")),
            traitlets.link((score, "value"), (self, "threshold")),
            traitlets.dlink((self, "value"), (image, "value"), transform=bgr_to_jpeg),
        ]
        # The label follows every redraw: the picture, then the count (which may stay the same).
        self.observe(lambda _: setattr(label, "value", self.status()), names=["value", "count"])
        self._widget = widgets.VBox([widgets.HBox([strength, score]), image, label])
        return self._widget
