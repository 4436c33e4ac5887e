"""The live viewer on a real synthetic source, in recorded-camera mode: frames flow, Stop
halts them, and re-running the cell (a new viewer with the same name) leaks nothing."""

import threading
import time

import numpy as np
import pytest

from helpers import capture, widgets

URI = "synthetic://?size=320x240&fps=60&noise=0.2&length=600"


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _threads(prefix):
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_viewer_shows_moving_frames_and_stop_halts_them():
    viewer = widgets.Viewer(URI, name="test-live")
    try:
        box = viewer.widget()
        image = box.children[0]
        viewer.start()
        assert _wait(lambda: viewer.frames >= 10), viewer.status()
        first = bytes(image.value)
        assert first[:2] == b"\xff\xd8", "the Image widget is fed JPEG bytes"
        assert _wait(lambda: bytes(image.value) != first), "the picture must change over time"
        assert isinstance(viewer.value, np.ndarray) and viewer.value.dtype == np.uint8
        assert viewer.fps > 0 and "fps" in box.children[1].children[2].value
        viewer.stop()
        shown = viewer.frames
        time.sleep(0.3)
        assert viewer.frames == shown and not viewer.running
        assert box.children[1].children[0].disabled is False  # Start is enabled again
    finally:
        viewer.close()


def test_process_hook_is_applied():
    def invert(frame):
        return 255 - frame.image

    with widgets.Viewer(URI, process=invert, name="test-process") as viewer:
        viewer.start()
        assert _wait(lambda: viewer.frames >= 3)
        viewer.stop()
        assert viewer.value.mean() > 100  # the street is dark; inverted it is bright


def test_rerunning_the_cell_leaks_nothing():
    before_viewers = len(_threads("viewer-"))
    before_sources = len([s for s in capture._OPEN])
    runs = []
    for _ in range(3):  # the same cell, run three times
        viewer = widgets.Viewer(URI, name="test-rerun")
        viewer.widget()
        viewer.start()
        assert _wait(lambda: viewer.frames >= 2)
        runs.append(viewer)
    assert len(_threads("viewer-")) == before_viewers + 1
    assert len([s for s in capture._OPEN]) == before_sources + 1
    for old in runs[:2]:  # replaced viewers: stopped, and no observer left on their traits
        assert not old.running and old._widget is None
        assert not any(old._trait_notifiers.get(name, {}).get("change") for name in ("value", "frames", "running"))
    assert runs[2]._trait_notifiers["value"]["change"], "the live viewer is still linked"
    runs[2].close()
    assert len(_threads("viewer-")) == before_viewers
    assert len([s for s in capture._OPEN]) == before_sources


def test_a_slow_source_does_not_stop_the_viewer():
    # 1.5 fps: longer between frames than the viewer's poll interval.
    with widgets.Viewer("synthetic://?size=320x240&fps=1.5&length=20", name="test-slow") as viewer:
        viewer.start()
        assert _wait(lambda: viewer.frames >= 3, timeout=6.0), viewer.status()
        assert viewer.running and "stopped by" not in viewer.status()


def test_close_all_closes_unnamed_viewers_too():
    before = len(_threads("viewer-"))
    viewer = widgets.Viewer(URI)
    viewer.start()
    assert _wait(lambda: viewer.frames >= 1)
    widgets.close_all()
    assert len(_threads("viewer-")) == before and not viewer.running


def test_threshold_view_counts_and_redraws_as_the_slider_moves():
    from helpers.track import Detections
    from helpers.widgets import ThresholdView

    image = np.zeros((100, 100, 3), np.uint8)
    dets = Detections([[5, 5, 30, 30], [40, 40, 90, 90], [10, 60, 30, 95]], [0.9, 0.6, 0.2], [1, 3, 1])
    view = ThresholdView(image, dets, ("bg", "person", "N/A", "car"), threshold=0.5)
    box = view.widget()
    slider, _, label = box.children
    assert view.count == 2 and label.value == "2 boxes at score >= 0.50"
    before = view.value.copy()
    slider.value = 0.15  # as if the learner dragged it
    assert view.count == 3 and "3 boxes at score >= 0.15" == label.value
    assert not np.array_equal(before, view.value)


def _open_sources():
    return len([s for s in capture._OPEN])


def test_run_ends_on_its_own_and_releases_everything():
    before_threads, before_sources = len(_threads("viewer-")), _open_sources()
    seen = []

    def hook(frame):  # the per-frame processing a live cell does (detect, track, draw)
        seen.append(frame.index)
        return frame.image[::2, ::2].copy()

    viewer = widgets.Viewer(URI, process=hook, name="test-run")
    viewer.widget()
    start = time.monotonic()
    viewer.run(frames=8, seconds=20)
    assert time.monotonic() - start < 10 and viewer.frames >= 8 and not viewer.running
    assert viewer.value.shape == (120, 160, 3) and len(seen) >= 8  # the hook's output is shown
    assert len(_threads("viewer-")) == before_threads and _open_sources() == before_sources
    assert viewer.fps > 0

    start = time.monotonic()  # and by time alone
    viewer.run(seconds=0.5)
    assert 0.4 < time.monotonic() - start < 3 and _open_sources() == before_sources
    viewer.close()


def test_stop_releases_the_source_and_start_opens_it_again():
    before = _open_sources()
    with widgets.Viewer(URI, name="test-stop-release") as viewer:
        viewer.start()
        assert _wait(lambda: viewer.frames >= 2) and _open_sources() == before + 1
        viewer.stop()
        assert _open_sources() == before, "a stopped viewer must not hold its camera"
        shown = viewer.frames
        viewer.start()
        assert _wait(lambda: viewer.frames >= shown + 2), viewer.status()
    assert _open_sources() == before


def test_keyboard_interrupt_during_run_releases_everything():
    import _thread

    before_threads, before_sources = len(_threads("viewer-")), _open_sources()
    def interrupt_at_frame_3(frame):
        if frame.index == 3:
            _thread.interrupt_main()  # what Jupyter's Interrupt does: KeyboardInterrupt in the cell
        return frame.image

    viewer = widgets.Viewer(URI, process=interrupt_at_frame_3, name="test-interrupt")
    with pytest.raises(KeyboardInterrupt):
        viewer.run(seconds=30)
    assert not viewer.running and viewer.frames > 0
    assert len(_threads("viewer-")) == before_threads and _open_sources() == before_sources
    viewer.close()


def test_run_raises_what_stopped_the_hook_and_releases_the_source():
    before = _open_sources()

    def broken(frame):
        if frame.index == 3:
            raise ValueError("the hook broke on frame 3")
        return frame.image

    viewer = widgets.Viewer(URI, process=broken, name="test-broken")
    with pytest.raises(RuntimeError, match="frame 3") as info:
        viewer.run(seconds=20)
    assert isinstance(info.value.__cause__, ValueError) and "stopped by ValueError" in viewer.status()
    assert _open_sources() == before
    with pytest.raises(ValueError, match="seconds= or frames="):
        viewer.run()
    viewer.close()


def test_a_source_that_ends_is_released_without_stop():
    before = _open_sources()
    viewer = widgets.Viewer("synthetic://?size=320x240&fps=200&length=5", name="test-end", loop=False)
    viewer.start()
    assert _wait(lambda: not viewer.running and viewer.frames == 5), viewer.status()
    assert _open_sources() == before and "stopped by" not in viewer.status()
    viewer.close()


def test_tnr_preview_refilters_the_history_as_the_sliders_move():
    from helpers import detect, models, synth
    from helpers.widgets import TNRPreview

    scene = synth.Scene(size=(320, 240), seed=104, noise=0.8, length=6)
    history = [f.noisy for f in scene]
    detector = detect.Detector(models.synth_detector("cpu"))
    preview = TNRPreview(history, detector, strength=0.0, threshold=0.5)
    box = preview.widget()
    (strength, score), _, label = box.children[0].children, box.children[1], box.children[2]
    raw = preview.value.copy()
    assert label.value == f"strength 0.00: {preview.count} boxes at score >= 0.50"
    strength.value = 1.0  # as if the learner dragged it: the last frame is now the mean of the still history
    filtered = preview.value
    assert float(np.abs(filtered.astype(np.int16) - raw.astype(np.int16)).mean()) > 1.0
    assert label.value.startswith("strength 1.00:") and f"{preview.count} boxes" in label.value
    score.value = 0.95
    assert preview.threshold == 0.95 and label.value.endswith("at score >= 0.95")
    with pytest.raises(ValueError, match="at least one frame"):
        TNRPreview([], detector)
