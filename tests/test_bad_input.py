"""Bad input and faults that used to give a wrong answer, lose data or say nothing useful
(issue 15). Each test failed before its fix; each uses the real component."""

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assets, detect, files, models, mot, report, synth
from helpers.track import Detections, Tracker

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- silently wrong

def test_flipped_boxes_are_refused_with_the_fix_named():
    with pytest.raises(ValueError, match=r"x2 = x \+ width"):
        Detections([[100, 50, 30, 80]], [0.9])  # an xywh box passed as xyxy


def test_non_finite_detections_do_not_blame_the_postprocess():
    with pytest.raises(ValueError, match="FP16") as err:
        Detections([[0, 0, np.nan, 10]], [0.5])
    assert "division by zero" not in str(err.value)


def test_nan_network_outputs_are_an_error_naming_the_runtime(offline):
    """A broken weights file (one NaN in the first conv) used to come out as '0 detections'."""
    model = models.pedestrian_detector()
    with torch.no_grad():
        model.convs[0].weight[0, 0, 0, 0] = float("nan")
    detector = detect.Detector(model, runtime="torch")
    frame = synth.Scene(size=(640, 480), seed=3).frame(0).clean
    with pytest.raises(detect.NonFiniteOutputs, match=r"runtime .*torch.*precision float32.*NaN or inf"):
        detector(frame)
    tracker = Tracker()
    assert len(tracker.update(Detections())) == 0  # the tracker itself is untouched


@pytest.mark.parametrize("row, what", [
    ("1,1,nan,20,30,40,1,1,1", "bb_left"),
    ("1,1,10,20,inf,40,1,1,1", "bb_width"),
    ("nan,1,10,20,30,40,1,1,1", "frame"),
])
def test_gt_with_nan_or_inf_names_the_line(tmp_path, row, what):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,20,30,40,1,1,1\n" + row + "\n")
    with pytest.raises(ValueError, match=rf"line 2: .*NaN or inf in {what}"):
        mot.read_gt(path)


def test_gt_with_an_absurd_frame_number_is_refused(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1e20,1,10,20,30,40,1,1,1\n")
    with pytest.raises(ValueError, match="line 1: frame number 1e20 is beyond"):
        mot.read_gt(path)


def test_gt_with_a_byte_order_mark_just_works(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes(b"\xef\xbb\xbf1,1,10,20,30,40,1,1,1\n2,1,12,20,30,40,1,1,1\n")
    gt = mot.read_gt(path)
    assert len(gt) == 2 and gt.frame.tolist() == [0, 1]


def test_gt_with_a_cp1252_comment_is_read_and_bad_bytes_elsewhere_named(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes("# caméra 1 – exported\n1,1,10,20,30,40,1,1,1\n".encode("cp1252"))
    assert len(mot.read_gt(path)) == 1
    path.write_bytes(b"1,1,10,20,30,40,1,1,1\n2,1,1\xe90,20,30,40,1,1,1\n")
    with pytest.raises(ValueError, match="line 2: not UTF-8"):
        mot.read_gt(path)


def test_names_that_leave_their_folder_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EVW_REPORT_DIR", str(tmp_path / "results"))
    with pytest.raises(ValueError, match="plain file name"):
        report.record("../../escaped", "cpu", {})
    assert not (tmp_path / "escaped.json").exists()
    for bad in ("../../.bashrc", "/etc/passwd", "sub/dir.pt"):
        with pytest.raises(ValueError, match="leaves its folder"):
            assets.Asset(name="x", filename=bad, sha256="0" * 64)
    with pytest.raises(ValueError, match="leaves its folder"):
        assets.Asset(name="x", filename="ok.pt", sha256="0" * 64, package="p", package_path="../x")
    report.record("03_ok", "cpu", {"a": 1})  # a plain name still works


# ---------------------------------------------------------------- data loss

_FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {root!r})
    from helpers import synth
    # A 40 kB file-size limit makes every write past it fail with EFBIG, as a full disk
    # fails with ENOSPC; OpenCV's writer ignores both. SIGXFSZ would kill us instead.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
    try:
        synth.Scene(size=(320, 240), length=60, seed=9, noise=0.5).write_video({path!r}, fourcc="MJPG")
    except OSError as exc:
        print("OSError:", exc)
        sys.exit(3)
""")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE stands in for a full disk on Linux")
def test_a_full_disk_never_replaces_a_good_video(tmp_path):
    good = tmp_path / "clip.avi"
    synth.Scene(size=(320, 240), length=60, seed=1).write_video(good, fourcc="MJPG")
    before = hashlib.sha256(good.read_bytes()).hexdigest()
    run = subprocess.run([sys.executable, "-c", _FULL_DISK.format(root=str(ROOT), path=str(good))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "of the 60 frames written" in run.stdout and "full disk" in run.stdout
    assert hashlib.sha256(good.read_bytes()).hexdigest() == before  # the old file is kept
    assert [p.name for p in tmp_path.iterdir()] == ["clip.avi"]  # no temporary left behind


def test_stale_temporaries_of_killed_writes_are_swept(tmp_path):
    target = tmp_path / "results.json"
    stale = tmp_path / ".results.json.abc123.tmp"
    fresh = tmp_path / ".results.json.def456.tmp"  # perhaps a write in progress right now
    other = tmp_path / ".other.json.zzz.tmp"
    for p in (stale, fresh, other):
        p.write_text("half")
    old = time.time() - 2 * files.STALE_AFTER_S
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    files.write_text(target, "{}")
    assert not stale.exists() and fresh.exists() and other.exists()
    assert target.read_text() == "{}"


# ---------------------------------------------------------------- hang

def test_a_long_soak_source_plans_lazily():
    scene = synth.Scene(size=(320, 240), length=1_000_000, seed=5)
    assert scene._planned == 0  # no object is planned until a frame asks for it
    scene.frame(0)
    assert 0 < scene._planned < len(scene._t0) / 10  # one chunk of objects, of 23,000
    # The ids don't depend on the order frames are asked in.
    other = synth.Scene(size=(320, 240), length=1_000_000, seed=5)
    order = (3000, 0, 1500)
    mine = {i: scene.frame(i).gt.track_id.tolist() for i in order}
    theirs = {i: other.frame(i).gt.track_id.tolist() for i in reversed(order)}
    assert mine == theirs and any(mine.values())


# ---------------------------------------------------------------- unclear errors

def test_a_detector_without_its_label_map_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("EVW_CACHE_DIR", str(tmp_path))
    shutil.copy(assets.resolve(models.SYNTH_DETECTOR_NAME), tmp_path / "ssdlite_mobilenet_v2_synth.pt")
    assert assets.resolve(models.SYNTH_DETECTOR_NAME).parent == tmp_path
    with pytest.raises(FileNotFoundError, match="without its label map"):
        models.synth_detector()


def test_a_text_file_as_super_resolution_weights(tmp_path):
    from helpers import filters

    text = tmp_path / "espcn_x2.pt"
    text.write_text("hello, these are not weights\n")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        filters.super_resolution(2, weights=text)


# ---------------------------------------------------------------- capture

def _clip(path, frames=40):
    synth.Scene(size=(320, 240), length=frames, seed=2, noise=0.2).write_video(path, fourcc="MJPG")
    return path


def test_a_truncated_file_says_it_ended_short(tmp_path):
    from helpers.capture import VideoSource

    path = _clip(tmp_path / "clip.avi")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])  # a copy that stopped part way
    with pytest.warns(RuntimeWarning, match=r"ended after \d+ of 40 frames"):
        with VideoSource(path) as src:
            n = sum(1 for _ in src)
    assert 0 < n < 40
    with pytest.raises(RuntimeError, match=r"ended after \d+ of 40 frames.*strict"):
        with VideoSource(path, strict=True) as src:
            for _ in src:
                pass
    whole = _clip(tmp_path / "whole.avi")
    with VideoSource(whole, strict=True) as src:  # a complete file reads without a word
        assert sum(1 for _ in src) == 40


def test_a_full_disk_never_replaces_a_good_sink_video(tmp_path):
    script = textwrap.dedent("""
        import resource, signal, sys
        sys.path.insert(0, {root!r})
        import numpy as np
        from helpers.capture import VideoSink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))
        rng = np.random.default_rng(0)
        try:
            with VideoSink({path!r}, fps=30, fourcc="MJPG") as sink:
                for _ in range(60):
                    sink.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        except OSError as exc:
            print("OSError:", exc)
            sys.exit(3)
    """)
    good = _clip(tmp_path / "out.avi", frames=10)
    before = good.read_bytes()
    run = subprocess.run([sys.executable, "-c", script.format(root=str(ROOT), path=str(good))],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "of the 60 frames written" in run.stdout
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.avi"]


@pytest.mark.parametrize("uri, match", [
    ("synthetic:?size=640x480", "did you mean synthetic://"),
    ("synthetic:/?size=640x480", "did you mean synthetic://"),
    ("synthetic://?fps=1e-300", "fps must be between"),
    ("synthetic://?fps=inf", "fps must be between"),
])
def test_source_typos_and_absurd_rates_are_named(uri, match):
    from helpers.capture import VideoSource

    with pytest.raises(ValueError, match=match):
        VideoSource(uri)


def test_fps_as_a_string_is_read_and_junk_is_named():
    from helpers.capture import VideoSource

    with VideoSource("synthetic://?size=320x240&length=3", fps="30") as src:
        assert src.fps == 30.0
    with pytest.raises(ValueError, match="fps must be a number"):
        VideoSource("synthetic://?size=320x240&length=3", fps="fast")


def test_files_with_glob_characters_in_their_names_open(tmp_path):
    from helpers.capture import VideoSource

    path = _clip(tmp_path / "clip [take 2]?.avi", frames=5)
    for uri in (str(path), path.as_uri()):
        with VideoSource(uri) as src:
            assert sum(1 for _ in src) == 5


def test_a_timeout_shorter_than_the_pacing_blames_the_pacing():
    from helpers.capture import FrameTimeout, VideoSource

    with VideoSource("synthetic://?size=320x240&fps=1&length=5", realtime=True, timeout=0.3) as src:
        src.read(timeout=10)  # the first frame comes when it is rendered
        with pytest.raises(FrameTimeout, match="realtime=True paces it at 1 fps"):
            src.read()


def test_tnr_on_a_frame_too_large_for_memory_names_the_estimate():
    from helpers import tnr

    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (40000, 40000, 3))  # never allocated
    denoiser = tnr.TemporalDenoiser("torch", device="cpu")
    with pytest.raises(MemoryError, match=r"40000x40000 frame needs about \d+\.\d GiB.*cv2.resize"):
        denoiser(huge)
    small = synth.Scene(size=(320, 240), seed=1).frame(0).noisy
    assert denoiser(small).shape == small.shape  # the filter still works after the refusal


@pytest.mark.parametrize("mode", ["sync", "overlapped"])
def test_a_frame_size_change_resets_the_tracker(mode, offline):
    """Tracks coasting in the old frame's coordinates would be matched to the new picture."""
    from helpers import pipeline, tnr

    small = synth.Scene(size=(640, 480), seed=4, length=12)
    big = synth.Scene(size=(1280, 720), seed=4, length=6)
    frames = [small.frame(i).noisy for i in range(12)] + [big.frame(i).noisy for i in range(6)]
    tracker = Tracker(max_age=30, min_hits=1)
    seen = []
    pipe = pipeline.Pipeline(detect.Detector(models.synth_detector()), tracker=tracker,
                             denoiser=tnr.TemporalDenoiser("torch"),
                             on_frame=lambda i, drawn, out: seen.append((drawn.shape[:2], out.boxes.copy())))
    with pytest.warns(RuntimeWarning, match="frame size changed from 640x480 to 1280x720; the tracker was reset"):
        pipe.run(frames, mode=mode)
    first_big = seen[12]
    assert first_big[0] == (720, 1280)
    # min_hits=1: right after the reset only boxes detected in this very frame are tracks;
    # none is a coasting track from the 640x480 picture.
    assert len(first_big[1]) <= len(pipe.detector(frames[12], tracker.low_score))


def test_an_op_onnx_runtime_cannot_run_names_the_node_and_the_fixes(tmp_path):
    """A valid model whose Abs takes bfloat16: ONNX allows it, ORT's CPU kernels don't."""
    import onnx
    from onnx import TensorProto, helper

    from helpers import runtimes

    x = helper.make_tensor_value_info("images", TensorProto.BFLOAT16, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("out", TensorProto.BFLOAT16, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Abs", ["images"], ["out"], name="abs_bf16")], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "bf16.onnx"
    onnx.save(model, path)
    with pytest.raises(RuntimeError, match=r"node 'abs_bf16' uses Abs \(opset 13\).*no kernel.*Fixes"):
        runtimes.OnnxRuntime(path)
