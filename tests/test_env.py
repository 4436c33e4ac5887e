"""helpers.env: the real probe on this lab machine (no GPU, no TensorRT/VPI/CuPy, no camera),
plus platform detection against fake /proc and /etc trees."""

import dataclasses
import importlib.util
import json
import platform
import time

import cv2
import onnxruntime
import pytest
import torch
import torchvision

from helpers import env


@pytest.fixture(scope="module")
def caps():
    start = time.perf_counter()
    result = env.probe()
    result.wall = time.perf_counter() - start
    return result


def test_probe_is_bounded(caps):
    assert caps.wall < 30
    assert 0 < caps.seconds <= caps.wall


def test_versions_match_the_imported_modules(caps):
    assert caps.versions["python"] == platform.python_version()
    assert caps.versions["torch"] == torch.__version__
    assert caps.versions["torch_cuda"] == torch.version.cuda
    assert caps.versions["torchvision"] == torchvision.__version__
    assert caps.versions["opencv"] == cv2.__version__
    assert caps.versions["onnxruntime"] == onnxruntime.__version__
    assert "CPUExecutionProvider" in caps.ort_providers


def test_this_machine_runs_the_cpu_track(caps):
    assert not caps.has_cuda
    assert caps.cuda["devices"] == []
    assert caps.cuda["error"]
    track = caps.track()
    assert track.track == "CPU"
    assert track.reason.startswith("no CUDA device")


def test_missing_accelerator_libraries_say_why(caps):
    assert not caps.has_tensorrt and not caps.has_vpi and not caps.has_cupy
    assert caps.tensorrt["error"].startswith("ModuleNotFoundError")
    assert "vpi" in caps.vpi["error"]
    assert caps.cupy["error"]
    assert set(caps.errors) >= {"cuda", "tensorrt", "vpi", "cupy", "camera"}


def test_no_camera_and_why(caps):
    assert not caps.has_camera
    assert caps.camera["error"] == "no /dev/video* device"


def test_every_lesson_runs_cpu_and_every_skip_has_a_reason(caps):
    rows = caps.lesson_tracks()
    assert [row.notebook for row in rows] == [lesson.notebook for lesson in env.LESSONS]
    assert {row.track for row in rows} == {"CPU"}
    for row in rows:
        assert row.reason
        for line in row.skipped:
            what, _, why = line.partition(": skipped — ")
            assert what and why, line
    by_name = {row.notebook: row for row in rows}
    assert by_name["00_environment"].skipped == []
    assert by_name["01_capture"].skipped == [
        "live camera: skipped — no /dev/video* device; using a recorded/synthetic source instead"]
    tensorrt_lines = [s for s in by_name["06_tensorrt"].skipped if s.startswith("TensorRT engine build")]
    assert tensorrt_lines and "tensorrt is not importable (ModuleNotFoundError" in tensorrt_lines[0]
    assert "CUDA timing: skipped — no CUDA device" in by_name["06_tensorrt"].skipped
    assert any("JetPack" in s for s in by_name["04_tnr_and_interop"].skipped)


def test_lesson_never_reports_a_track_above_what_it_uses(caps):
    # The track rules for a GPU + TensorRT machine, which this lab machine cannot show:
    # the real result with only the CUDA and TensorRT facts swapped.
    gpu = dataclasses.replace(
        caps,
        cuda={"devices": [{"index": 0, "name": "Fake GPU", "memory_gib": 8.0, "capability": (8, 7)}],
              "error": None},
        tensorrt={"version": "10.3.0", "builder": True, "error": None},
    )
    tracks = {row.notebook: row.track for row in gpu.lesson_tracks()}
    assert gpu.track().track == "GPU + TensorRT"
    assert tracks["06_tensorrt"] == "GPU + TensorRT"
    assert tracks["02_preprocessing_and_classification"] == "GPU"
    assert tracks["00_environment"] == "CPU"
    assert tracks["05_onnx_export"] == "CPU"  # this onnxruntime has no CUDA EP


def test_reports_are_serialisable_and_readable(caps):
    data = json.loads(json.dumps(caps.to_dict()))
    assert data["versions"]["torch"] == torch.__version__
    assert data["track"]["track"] == "CPU"
    assert torch.__version__ in caps._repr_markdown_()
    assert torch.__version__ in caps._repr_html_()
    rows = caps.summary_rows()
    assert all(len(row) == 3 for row in rows)
    assert ("Track", "CPU") == rows[-1][:2]


def test_format_table_aligns_columns_and_multiline_cells():
    text = env.format_table([("a", "two\nlines"), ("longer", "x")], ("name", "value"))
    assert text.splitlines() == [
        "name    value",
        "------  -----",
        "a       two",
        "        lines",
        "longer  x",
    ]


def _fake_root(tmp_path, files):
    for relative, content in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return tmp_path


MEMINFO = b"MemTotal:        8039472 kB\nMemFree:         1000000 kB\n"


def test_platform_jetson(tmp_path):
    root = _fake_root(tmp_path, {
        "etc/nv_tegra_release": b"# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, "
                                b"EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n",
        "proc/device-tree/model": b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00",
        "proc/meminfo": MEMINFO,
        "etc/os-release": b'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\n',
    })
    info = env.probe_platform(root)
    assert info["kind"] == "jetson"
    assert info["model"] == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert info["l4t"] == "36.4.3"
    assert info["distro"] == "Ubuntu 22.04.5 LTS"
    assert info["ram_gib"] == 7.7


def test_platform_jetson_from_model_alone(tmp_path):
    root = _fake_root(tmp_path, {"proc/device-tree/model": b"NVIDIA Jetson Xavier NX Developer Kit\x00"})
    assert env.probe_platform(root)["kind"] == "jetson"


def test_platform_raspberry_pi(tmp_path):
    root = _fake_root(tmp_path, {"proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00",
                                 "proc/meminfo": MEMINFO})
    info = env.probe_platform(root)
    assert (info["kind"], info["name"]) == ("raspberry_pi", "Raspberry Pi")
    assert info["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert info["l4t"] is None


def test_platform_generic(tmp_path):
    info = env.probe_platform(_fake_root(tmp_path, {"proc/meminfo": MEMINFO}))
    assert (info["kind"], info["name"], info["model"]) == ("generic", platform.machine(), None)
    assert info["ram_gib"] == 7.7


@pytest.mark.skipif(platform.system() != "Linux", reason="/dev/video* listing is Linux-only")
def test_camera_node_without_a_camera_is_reported(tmp_path):
    # A real OpenCV in a real subprocess, pointed at a video node that is not a camera.
    root = _fake_root(tmp_path, {"dev/video0": b""})
    result = env.probe_camera(timeout=10.0, root=root)
    assert result["available"] is False
    assert result["error"].startswith("/dev/video0:")


def _no_gstreamer():
    from helpers import capture

    return bool(capture.gstreamer_problem())


@pytest.mark.skipif(not _no_gstreamer(), reason="this OpenCV has GStreamer; the reason is for builds without")
def test_jetson_csi_camera_reports_why_it_is_unusable(tmp_path):
    # A Jetson's board tree with the real pip OpenCV (no GStreamer): csi://0 is not tried, and
    # the report says why and what to install, then what V4L2 found.
    root = _fake_root(tmp_path, {"proc/device-tree/model": b"NVIDIA Jetson Orin Nano Developer Kit\x00"})
    result = env.probe_camera(timeout=1.0, root=root)
    assert result["available"] is False and result["device"] is None
    assert result["error"].startswith("csi://0 needs OpenCV with GStreamer: this OpenCV")
    assert "JetPack" in result["error"]
    assert result["error"].endswith(". V4L2: no /dev/video* device")


@pytest.mark.skipif(not _no_gstreamer() or importlib.util.find_spec("picamera2") is not None,
                    reason="picamera2 or a GStreamer OpenCV is here; the reason is for neither")
def test_raspberry_pi_camera_reports_why_it_is_unusable(tmp_path):
    root = _fake_root(tmp_path, {"proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00"})
    result = env.probe_camera(timeout=1.0, root=root)
    assert result["available"] is False
    assert result["error"].startswith("picam://0 needs picamera2, or OpenCV with GStreamer")
    assert "sudo apt install python3-picamera2" in result["error"]


def test_board_cameras_only_on_their_boards():
    assert env.probe_board_camera("generic") is None
    assert env.BOARD_CAMERAS == {"jetson": "csi://0", "raspberry_pi": "picam://0"}


@pytest.mark.skipif(platform.system() != "Linux", reason="uses the sleep command")
def test_camera_probe_that_hangs_is_killed_within_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "_camera_command", lambda indices: ["sleep", "10"])
    root = _fake_root(tmp_path, {"dev/video0": b""})
    start = time.perf_counter()
    result = env.probe_camera(timeout=0.5, root=root)
    assert time.perf_counter() - start < 5
    assert result == {"available": False, "device": None, "error": "/dev/video0: timed out after 0.5 s"}


def test_a_sub_probe_that_raises_is_recorded_not_propagated(monkeypatch):
    def broken():
        raise RuntimeError("vpi probe exploded")

    monkeypatch.setattr(env, "probe_vpi", broken)
    caps = env.probe(camera_timeout=1.0)
    assert caps.vpi["error"] == "RuntimeError: vpi probe exploded"
    assert not caps.has_vpi
    assert caps.versions["torch"] == torch.__version__  # the other probes still ran
    skipped = {row.notebook: row.skipped for row in caps.lesson_tracks()}["04_tnr_and_interop"]
    assert any("vpi probe exploded" in line for line in skipped)
    json.dumps(caps.to_dict())


def test_cupy_for_another_cuda_major_than_torch_is_refused(monkeypatch):
    """Two CUDA runtimes in one process make pointer hand-offs unsafe. CuPy is not installed
    here (and no GPU), so a stand-in for its runtime query stands at that outside boundary."""
    import types

    import torch

    from helpers import env

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        runtimeGetVersion=lambda: 12080)))
    assert "pip install cupy-cuda13x" in env.cuda_major_mismatch(fake)
    fake.cuda.runtime.runtimeGetVersion = lambda: 13000
    assert env.cuda_major_mismatch(fake) == ""
