"""VideoSource / VideoSink against real files, folders, synthetic scenes and a loopback
HTTP stream. Only the cameras are faked (no camera is attached to a CI machine): a V4L2
cv2.VideoCapture and the picamera2 module. The csi:// and picam:// URIs, their GStreamer
pipelines and the errors without GStreamer are tested for real."""

import functools
import gc
import http.server
import os
import sys
import threading
import time
import warnings

import cv2
import numpy as np
import pytest

from helpers import capture
from helpers.capture import Frame, VideoSink, VideoSource
from helpers.synth import Scene

SIZE = (320, 240)
N = 40
SYNTH = "synthetic://?size=320x240&length=12&seed=1"


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("VideoSource-reader")]


@pytest.fixture(autouse=True)
def release_everything():
    yield
    capture.close_all()  # a failing test must not leak a thread into the next one


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    scene = Scene(size=SIZE, fps=25, length=N, seed=1, noise=0.3)
    return {
        "scene": scene,
        "avi": scene.write_video(root / "clip.avi", fourcc="MJPG"),
        "mp4": scene.write_video(root / "clip.mp4", fourcc="mp4v"),
    }


@pytest.fixture
def tracked(monkeypatch):
    """Real cv2.VideoCapture objects, remembered so a test can check they were released."""
    made = []
    real = cv2.VideoCapture

    # A wrapper, not a subclass: subclassing cv2.VideoCapture corrupts the heap on
    # dealloc in OpenCV 5.0's Python bindings (seen here as a hang, then a segfault).
    def tracking(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(cv2, "VideoCapture", tracking)
    return made


@pytest.fixture
def fake_camera(monkeypatch):
    # The one test double: no camera is attached, so this stands in at the cv2.VideoCapture
    # boundary. It accepts any size, only does 30 fps, and never delivers a frame.
    made = []

    class FakeCamera:
        def __init__(self, index, api=None):
            self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
                          cv2.CAP_PROP_FPS: 30.0}
            self.opened = True
            made.append(self)

        def isOpened(self):
            return self.opened

        def set(self, prop, value):
            if prop != cv2.CAP_PROP_FPS:
                self.props[prop] = float(value)
            return True

        def get(self, prop):
            return self.props.get(prop, 0.0)

        def read(self):
            time.sleep(0.01)
            return False, None

        def release(self):
            self.opened = False

    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    return made


def check_frames(frames, n, size):
    assert [f.index for f in frames] == list(range(n))
    assert all(isinstance(f, Frame) for f in frames)
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (size[1], size[0], 3)
    ts = [f.timestamp for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))


# ---------------------------------------------------------------- each kind


@pytest.mark.parametrize("form", ["avi", "mp4", "file-uri"])
def test_file_source(clips, form):
    path = clips["mp4" if form == "mp4" else "avi"]
    uri = path.as_uri() if form == "file-uri" else str(path)
    with VideoSource(uri) as src:
        assert (src.kind, src.size, src.fps, src.frame_count) == ("file", SIZE, 25.0, N)
        assert src.policy == "all" and not src.is_live
        frames = list(src)
    check_frames(frames, N, SIZE)
    assert frames[10].timestamp == pytest.approx(10 / 25)
    # BGR, not RGB: the decoded frame is close to what was encoded, channel for channel.
    diff = np.abs(frames[5].image.astype(int) - clips["scene"].frame(5).noisy.astype(int))
    assert diff.mean() < 12


def test_image_folder_and_glob(tmp_path, clips):
    scene = clips["scene"]
    (tmp_path / "frames").mkdir()
    for i in range(12):  # unpadded names: frame_10 must come after frame_9
        cv2.imwrite(str(tmp_path / "frames" / f"frame_{i}.png"), scene.frame(i).clean)
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    for uri, fps in ((tmp_path / "frames", None), (str(tmp_path / "frames" / "*.png"), 10)):
        with VideoSource(uri, fps=fps) as src:
            assert (src.kind, src.size, src.frame_count) == ("images", SIZE, 12)
            frames = list(src)
        check_frames(frames, 12, SIZE)
        assert frames[3].timestamp == pytest.approx(3 / (fps or 30))
        for f in frames:
            assert np.array_equal(f.image, scene.frame(f.index).clean)


@pytest.mark.parametrize("clean", [0, 1])
def test_synthetic_source(clean):
    scene = Scene(size=SIZE, length=12, seed=1)
    with VideoSource(f"{SYNTH}&clean={clean}") as src:
        assert (src.kind, src.size, src.fps, src.frame_count) == ("synthetic", SIZE, 30.0, 12)
        frames = list(src)
    check_frames(frames, 12, SIZE)
    for f in frames[:3]:
        expected = scene.frame(f.index)
        assert np.array_equal(f.image, expected.clean if clean else expected.noisy)
        assert f.timestamp == expected.timestamp


def test_http_stream_on_loopback(clips):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(clips["avi"].parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        with VideoSource(url, policy="all") as src:
            assert (src.kind, src.is_live, src.frame_count) == ("stream", True, None)
            assert src.size == SIZE
            frames = list(src)
        check_frames(frames, N, SIZE)
        assert VideoSource(url).policy == "latest"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- policies


def test_all_policy_never_drops_for_a_slow_consumer(clips):
    with VideoSource(clips["avi"], queue_size=2) as src:
        frames = []
        for f in src:
            time.sleep(0.01)
            frames.append(f)
        assert src.dropped == 0
    assert [f.index for f in frames] == list(range(N))


def test_latest_policy_drops_for_a_slow_consumer():
    src = VideoSource("synthetic://?size=320x240&fps=200&noise=0&length=400", realtime=True,
                      policy="latest")
    indices = []
    for f in src:
        indices.append(f.index)
        time.sleep(0.04)
        if len(indices) == 8:
            break
    assert src.dropped > 0
    assert all(b > a for a, b in zip(indices, indices[1:]))
    assert max(b - a for a, b in zip(indices, indices[1:])) > 1


def test_realtime_defaults_to_latest_and_paces_at_source_fps():
    src = VideoSource("synthetic://?size=320x240&fps=50&noise=0&length=20", realtime=True)
    assert src.policy == "latest"
    src.read()  # the first frame pays for drawing the background; time the rest
    start = time.monotonic()
    rest = list(src)
    # Unpaced, 19 frames render in ~20 ms; paced at 50 fps they take ~0.36 s.
    assert len(rest) == 19 and time.monotonic() - start >= 0.5 * 19 / 50


def test_loop_restarts_with_increasing_index_and_time():
    with VideoSource("synthetic://?size=320x240&length=5&noise=0", loop=True) as src:
        frames = [src.read() for _ in range(12)]
    check_frames(frames, 12, SIZE)


def test_end_of_stream_then_closed():
    src = VideoSource(SYNTH)
    assert len(list(src)) == 12
    assert src.closed and src.read() is None  # iteration ended and released the source
    other = VideoSource(SYNTH)
    other.close()
    other.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        other.read()


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    uri = str(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="nope.mp4.*Check the path"):
        VideoSource(uri)
    with pytest.raises(FileNotFoundError) as err:
        VideoSource(str(tmp_path / "vtest.avi"))
    assert "opencv-doc" in str(err.value) or "verified copy" in str(err.value)


def test_corrupt_file(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    with pytest.raises(RuntimeError, match=r"x\.mp4.*(truncated|corrupt).*codec"):
        VideoSource(str(bad))
    assert not reader_threads()


def test_empty_folder_and_glob(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no images"):
        VideoSource(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"\*\.png"):
        VideoSource(str(tmp_path / "*.png"))


def test_bad_synthetic_query():
    with pytest.raises(ValueError, match=r"synthetic://\?sise=.*known keys: size, fps"):
        VideoSource("synthetic://?sise=320x240")
    with pytest.raises(ValueError, match="bad value for size"):
        VideoSource("synthetic://?size=big")
    with pytest.raises(ValueError, match="noise strength"):
        VideoSource("synthetic://?noise=3")


def test_bad_arguments(clips):
    with pytest.raises(ValueError, match="unknown source scheme"):
        VideoSource("ftp://host/clip.mp4")
    with pytest.raises(ValueError, match="policy"):
        VideoSource(SYNTH, policy="newest")
    with pytest.raises(ValueError, match="preprocess"):
        VideoSource(clips["avi"], size=(224, 224))


def test_camera_that_cannot_open():
    # Real V4L2 path: no /dev/video99 on any machine this runs on.
    with pytest.raises(RuntimeError, match=r"/dev/video99.*ls /dev/video\*.*video.*synthetic://"):
        VideoSource("/dev/video99")


def test_silent_camera_raises_within_timeout(fake_camera):
    src = VideoSource(0, timeout=0.3)
    assert src.is_live and src.policy == "latest" and src.frame_count is None
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="no frame from 0 within 0.3 s"):
        src.read()
    assert time.monotonic() - start < 2
    src.close()
    assert not reader_threads() and not fake_camera[0].opened


def test_camera_size_and_fps_are_requested_and_read_back(fake_camera):
    # The Raspberry Pi recipe; this fake sensor only does 30 fps, and says so.
    with pytest.warns(UserWarning, match="asked for 36 fps, it reports 30 fps"):
        src = VideoSource("/dev/video0", size=(224, 224), fps=36)
    assert src.size == (224, 224) and src.fps == 30.0
    src.close()


def test_reader_error_is_raised_in_consumer(tmp_path, clips):
    cv2.imwrite(str(tmp_path / "0.png"), clips["scene"].frame(0).clean)
    (tmp_path / "1.png").write_bytes(b"\x89PNG truncated")
    src = VideoSource(tmp_path)
    assert src.read().index == 0
    with pytest.raises(RuntimeError, match=r"1\.png"):
        src.read()
    assert src.closed and not reader_threads()


# ---------------------------------------------------------------- no leaks


def _close(src):
    src.close()


def _with_block(src):
    with src:
        src.read()


def _break(src):
    for f in src:
        if f.index == 2:
            break


def _exception_in_with(src):
    with pytest.raises(ZeroDivisionError):
        with src:
            src.read()
            1 / 0


def _keyboard_interrupt_in_loop(src):
    with pytest.raises(KeyboardInterrupt):
        for f in src:
            if f.index == 2:
                raise KeyboardInterrupt


@pytest.mark.parametrize("finish", [_close, _with_block, _break, _exception_in_with,
                                    _keyboard_interrupt_in_loop])
def test_nothing_left_behind(clips, tracked, finish):
    finish(VideoSource(clips["avi"], queue_size=2))
    assert not reader_threads()
    assert tracked and not any(cap.isOpened() for cap in tracked)


def test_abandoned_source_is_closed_by_gc(clips, tracked):
    src = VideoSource(clips["avi"])
    src.read()
    del src
    gc.collect()
    deadline = time.monotonic() + 2
    while reader_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not reader_threads() and not tracked[0].isOpened()


def test_named_source_replaces_earlier_one_and_close_all():
    first = VideoSource(SYNTH, name="viewer")
    second = VideoSource(SYNTH, name="viewer")
    other = VideoSource(SYNTH, name="plot")
    assert first.closed and not second.closed and not other.closed
    assert capture.close_all() == 2
    assert second.closed and other.closed and not reader_threads()


# ---------------------------------------------------------------- VideoSink


def _read_back(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


def test_sink_roundtrip_mp4(tmp_path, clips):
    path = tmp_path / "out.mp4"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with VideoSink(path, fps=25) as sink:
            for f in VideoSource(clips["avi"]):
                sink.write(f.image)
    assert sink.fourcc in capture.SINK_FOURCCS
    if sink.fourcc != "avc1":  # pip wheels have no H.264 encoder: the fallback must say so
        assert any(f"wrote {sink.fourcc}" in str(w.message) for w in caught)
    frames = _read_back(path)
    assert len(frames) == N and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temp file left


def test_sink_explicit_fourcc_and_size(tmp_path):
    path = tmp_path / "out.avi"
    sink = VideoSink(path, fps=10, size=SIZE, fourcc="MJPG")
    for i in range(5):
        sink.write(np.full((SIZE[1], SIZE[0], 3), i * 40, np.uint8))
    assert not path.exists()  # appears only when complete
    assert sink.close() == path and sink.close() == path
    assert len(_read_back(path)) == 5


def test_sink_rejects_bad_frames(tmp_path):
    with VideoSink(tmp_path / "out.mp4", fps=25, fourcc="mp4v") as sink:
        with pytest.raises(ValueError, match="uint8"):
            sink.write(np.zeros((240, 320, 3), np.float32))
        with pytest.raises(ValueError, match="HxWx3"):
            sink.write(np.zeros((240, 320), np.uint8))
        sink.write(np.zeros((240, 320, 3), np.uint8))
        with pytest.raises(ValueError, match="320x240.*found a 160x120"):
            sink.write(np.zeros((120, 160, 3), np.uint8))


def test_sink_interrupted_leaves_no_file(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with VideoSink(tmp_path / "out.mp4", fps=25, fourcc="mp4v") as sink:
            sink.write(np.zeros((240, 320, 3), np.uint8))
            1 / 0
    assert os.listdir(tmp_path) == []


def test_sink_without_an_encoder(tmp_path):
    with pytest.raises(RuntimeError, match="avc1, mp4v, MJPG"):
        VideoSink(tmp_path / "out.xyz", fps=25, size=SIZE)
    assert os.listdir(tmp_path) == []


def test_latest_policy_keeps_the_last_frame_at_end_of_stream():
    # The end marker must wait for room, not evict the final real frame.
    with VideoSource("synthetic://?size=320x240&length=5", policy="latest", queue_size=1) as source:
        time.sleep(0.5)  # the reader finishes long before we read
        frames = list(source)
    assert frames and frames[-1].index == 4


# ---------------------------------------------------------------- csi:// and picam://

HAS_GSTREAMER = not capture.gstreamer_problem()


@pytest.mark.parametrize("uri, size, fps, expected", [
    ("csi://0", None, None, ("csi", 0, (1280, 720), 30.0, "none", None)),
    ("csi://", None, None, ("csi", 0, (1280, 720), 30.0, "none", None)),
    ("CSI://1?size=1920x1080&fps=59.94&flip=rotate-180", None, None,
     ("csi", 1, (1920, 1080), 59.94, "rotate-180", None)),
    ("csi://0?flip=2", None, None, ("csi", 0, (1280, 720), 30.0, "rotate-180", None)),  # nvvidconv's number
    ("csi://0", (640, 480), 15, ("csi", 0, (640, 480), 15.0, "none", None)),  # VideoSource's size=, fps=
    ("csi://0?size=640x480", (640, 480), None, ("csi", 0, (640, 480), 30.0, "none", None)),  # said twice, alike
    ("picam://0?flip=horizontal&backend=gstreamer", None, None,
     ("picam", 0, (1280, 720), 30.0, "horizontal", "gstreamer")),
    ("picam://1?size=2304x1296&fps=56", None, None, ("picam", 1, (2304, 1296), 56.0, "none", None)),
])
def test_camera_uris_parse(uri, size, fps, expected):
    cam = capture.parse_camera_uri(uri, size, fps)
    assert tuple(cam) == expected
    assert capture.source_kind(uri) == "camera"


@pytest.mark.parametrize("uri, kwargs, match", [
    ("csi://left", {}, r"csi://N with N the camera number"),
    ("csi://0/1", {}, r"csi://N with N the camera number"),
    ("csi://0?width=1280", {}, r"unknown query key\(s\) width; known keys: size, fps, flip"),
    ("csi://0?flip=sideways", {}, r"bad value for flip: flip must be one of none, counterclockwise"),
    ("csi://0?flip=8", {}, r"bad value for flip"),
    ("csi://0?fps=0", {}, r"bad value for fps: fps must be between"),
    ("csi://0?size=720p", {}, r"bad value for size: size must be WIDTHxHEIGHT"),
    ("csi://0?backend=picamera2", {}, r"unknown query key\(s\) backend"),  # picam:// only
    ("picam://0?backend=v4l2", {}, r"backend must be one of picamera2, gstreamer"),
    ("picam://0?size=640x480", {"size": (320, 240)}, r"says size=640x480 but size=\(320, 240\) was also passed"),
])
def test_bad_camera_uris_say_what_is_expected(uri, kwargs, match):
    with pytest.raises(ValueError, match=match):
        capture.parse_camera_uri(uri, **kwargs)
    with pytest.raises(ValueError, match=match):  # VideoSource parses before it opens anything
        VideoSource(uri, **kwargs)


def test_csi_pipeline_strings():
    assert capture.csi_pipeline(capture.parse_camera_uri("csi://0")) == (
        "nvarguscamerasrc sensor-id=0 ! "
        "video/x-raw(memory:NVMM),width=1280,height=720,format=NV12,framerate=30/1 ! "
        "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=1 max-buffers=1")
    cam = capture.parse_camera_uri("csi://1?size=1920x1080&fps=29.97&flip=clockwise")
    assert capture.csi_pipeline(cam) == (
        "nvarguscamerasrc sensor-id=1 ! "
        "video/x-raw(memory:NVMM),width=1920,height=1080,format=NV12,framerate=30000/1001 ! "
        "nvvidconv flip-method=3 ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=1 max-buffers=1")
    # nvvidconv numbers its flips in FLIPS' order (jetson-inference's names).
    for number, name in enumerate(capture.FLIPS):
        pipeline = capture.csi_pipeline(capture.parse_camera_uri(f"csi://0?flip={name}"))
        assert (f"nvvidconv flip-method={number} !" in pipeline) == (number > 0)


def test_libcamera_pipeline_strings():
    assert capture.libcamera_pipeline(capture.parse_camera_uri("picam://0?size=640x480&fps=15")) == (
        "libcamerasrc ! video/x-raw,width=640,height=480,framerate=15/1 ! videoconvert ! "
        "video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")
    # videoflip spells the mirrors horizontal-flip and vertical-flip.
    for flip, method in (("vertical", "vertical-flip"), ("rotate-180", "rotate-180"),
                         ("counterclockwise", "counterclockwise")):
        pipeline = capture.libcamera_pipeline(capture.parse_camera_uri(f"picam://0?flip={flip}"))
        assert pipeline.endswith(f"video/x-raw,format=BGR ! videoflip method={method} ! "
                                 f"appsink drop=1 max-buffers=1")


def test_gstreamer_support_is_read_from_the_build_information():
    assert capture._gstreamer_in_build("  Video I/O:\n    FFMPEG:   YES\n    GStreamer:   NO\n") is False
    assert capture._gstreamer_in_build("    GStreamer:                   YES (1.20.3)\n") is True
    assert capture._gstreamer_in_build("  Video I/O:\n    FFMPEG:   YES\n") is None
    info = cv2.getBuildInformation()
    assert HAS_GSTREAMER == bool(capture._gstreamer_in_build(info))


@pytest.mark.skipif(HAS_GSTREAMER, reason="this OpenCV has GStreamer; the error is for builds without")
def test_csi_camera_without_gstreamer_says_what_to_install():
    # The real pip OpenCV here has no GStreamer: the error names that and the fix, before any
    # pipeline is tried.
    with pytest.raises(RuntimeError) as err:
        VideoSource("csi://0")
    text = str(err.value)
    assert "csi://0 needs OpenCV with GStreamer" in text
    assert "'GStreamer: NO'" in text and cv2.__version__ in text
    assert "JetPack" in text and "--system-site-packages" in text and "pip uninstall opencv-python" in text
    assert not reader_threads()


@pytest.mark.skipif(HAS_GSTREAMER or not capture._picamera2_problem(),
                    reason="picamera2 or a GStreamer OpenCV is here; the error is for neither")
def test_pi_camera_without_picamera2_or_gstreamer_says_what_to_install():
    with pytest.raises(RuntimeError) as err:
        VideoSource("picam://0")
    text = str(err.value)
    assert "picam://0 needs picamera2, or OpenCV with GStreamer and libcamerasrc" in text
    assert "picamera2 is not importable" in text and "'GStreamer: NO'" in text
    assert "sudo apt install python3-picamera2" in text and "gstreamer1.0-libcamera" in text
    with pytest.raises(RuntimeError, match="backend=picamera2: picamera2 is not importable.*python3-picamera2"):
        VideoSource("picam://0?backend=picamera2")
    with pytest.raises(RuntimeError, match="backend=gstreamer needs OpenCV with GStreamer") as err:
        VideoSource("picam://0?backend=gstreamer")
    assert "picamera2 is not importable" not in str(err.value)  # it was not asked for


@pytest.fixture
def fake_picamera2(monkeypatch):
    """A stand-in for the picamera2 module: a test double at the camera boundary (no Raspberry
    Pi camera, and no libcamera, on a CI machine). It mimics what picamera2's documentation
    and source say: Picamera2(camera_num), create_video_configuration(main=..., controls=...)
    returning a dict whose main stream libcamera may adjust, configure, start,
    capture_array("main") giving HxWx3 uint8 in B, G, R order for "RGB888", stop, close."""
    import importlib.machinery
    import types

    calls = []

    class Picamera2:
        def __init__(self, camera_num=0):
            calls.append(("open", camera_num))
            self.n = 0

        def create_video_configuration(self, main=None, controls=None, **kwargs):
            calls.append(("config", dict(main), dict(controls), kwargs))
            return {"main": dict(main), "controls": dict(controls)}

        def configure(self, config):
            config["main"]["size"] = (config["main"]["size"][0] // 32 * 32, config["main"]["size"][1])
            calls.append(("configure", config["main"]["size"]))

        def start(self):
            calls.append("start")

        def capture_array(self, name="main"):
            time.sleep(0.01)  # a sensor at 100 fps
            self.n += 1
            image = np.zeros((240, 320, 3), np.uint8)
            image[..., 0] = self.n % 256  # blue first, as RGB888 delivers it
            return image

        def stop(self):
            calls.append("stop")

        def close(self):
            calls.append("close")

    module = types.ModuleType("picamera2")
    module.__spec__ = importlib.machinery.ModuleSpec("picamera2", None)
    module.Picamera2 = Picamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return calls


def test_pi_camera_through_picamera2(fake_picamera2):
    with pytest.warns(UserWarning, match="asked for 330x240, it delivers 320x240"):
        src = VideoSource("picam://1?size=330x240&fps=25", timeout=2.0)
    assert src.kind == "camera" and src.is_live and src.policy == "latest"
    assert src.size == (320, 240) and src.fps == 25.0
    frames = [src.read() for _ in range(3)]
    src.close()
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.image[0, 0, 0] > 0 and not f.image[..., 1:].any() for f in frames)  # BGR untouched
    assert fake_picamera2[:4] == [
        ("open", 1),
        ("config", {"size": (330, 240), "format": "RGB888"}, {"FrameDurationLimits": (40000, 40000)}, {}),
        ("configure", (320, 240)), "start"]
    assert fake_picamera2[-2:] == ["stop", "close"] and not reader_threads()
    with pytest.raises(ValueError, match="cannot turn by 90 degrees"):
        VideoSource("picam://0?flip=clockwise")
