"""helpers.serve against a real tritonserver on loopback (the nvidia-pytriton wheel's binary).

Skipped with the reason when the serving venv is missing (`make serve-env` builds it); under
EVW_SERVE_REQUIRED=1 (CI) a missing serving venv fails instead."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from helpers import export, models, runtimes, serve

ROOT = Path(__file__).resolve().parent.parent
REASON = serve.problem()
if REASON and os.environ.get("EVW_SERVE_REQUIRED") == "1":
    raise RuntimeError(f"EVW_SERVE_REQUIRED=1 but this machine cannot serve: {REASON}")
pytestmark = pytest.mark.skipif(bool(REASON), reason=f"serving tests skipped: {REASON}")


def _alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, read from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _gone(pgid: int, within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while _alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _alive(pgid)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "pedestrian_fp32.onnx"
    return export.export_onnx(models.pedestrian_detector(), torch.zeros(1, 3, 300, 300), path,
                              output_names=["box_encodings", "class_logits"])


@pytest.fixture(scope="module")
def repo(onnx_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("repo")
    serve.model_repository(onnx_path, out, queue_delay_us=5000, max_batch=8)
    serve.model_repository(onnx_path, out, name="detector_nobatch", queue_delay_us=None)
    return out


@pytest.fixture(scope="module")
def server(repo):
    with serve.start(repo, name="test-module") as s:
        yield s


@pytest.fixture(scope="module")
def local(onnx_path):
    with runtimes.OnnxRuntime(onnx_path) as rt:
        yield rt


def test_raw_outputs_equal_the_in_process_runtime(server, local):
    x = torch.rand(3, 3, 300, 300) * 2 - 1
    with serve.TritonRuntime(server.url) as remote:
        got = remote.run(x)
    want = local.run(x)
    assert [t.shape for t in got] == [t.shape for t in want]
    # Same ONNX Runtime, same session options, same batch: the same numbers.
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=0, atol=1e-5), float((g - w).abs().max())


def test_the_detector_postprocesses_what_the_server_returns(server, local):
    from helpers import detect

    model = models.pedestrian_detector()
    frames = list(export.pedestrian_frames().held_out[:2])  # the real clip, or synthetic scenes without it
    with serve.TritonRuntime(server.url) as remote:
        served = detect.Detector(model, runtime=remote).detect(frames, score_thresh=0.05)
    here = detect.Detector(model, runtime=local).detect(frames, score_thresh=0.05)
    for a, b in zip(served, here):
        assert len(a.scores) == len(b.scores)
        assert (a.boxes == b.boxes).all() and (a.scores == b.scores).all()


def test_concurrent_clients_each_get_their_own_answer(server, local):
    inputs = [torch.rand(1, 3, 300, 300) * 2 - 1 for _ in range(4)]
    got, errors = {}, []

    def client(i):
        try:
            with serve.TritonRuntime(server.url) as rt:
                got[i] = [rt.run(inputs[i]) for _ in range(3)]
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for i, x in enumerate(inputs):
        boxes, logits = local.run(x)
        for b, c in got[i]:
            # The dynamic batcher may run a request inside a bigger batch: ORT's results then
            # differ in the last bits, never more.
            assert torch.allclose(b, boxes, atol=1e-4) and torch.allclose(c, logits, atol=1e-4)


def test_a_stalled_server_times_the_client_out(server):
    x = torch.zeros(1, 3, 300, 300)
    with serve.TritonRuntime(server.url, timeout_s=1.5) as rt:
        rt.run(x)
        os.killpg(server.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="stalled"):
                rt.run(x)
            assert time.monotonic() - t0 < 10
        finally:
            os.killpg(server.pid, signal.SIGCONT)
    with serve.TritonRuntime(server.url, timeout_s=30) as rt:
        assert rt.run(x)[0].shape[0] == 1  # it serves again once resumed


def test_bad_input_is_named(server, onnx_path, tmp_path):
    with serve.TritonRuntime(server.url) as rt:
        with pytest.raises(ValueError, match=r"float32 NCHW batch of shape \(N, 3, 300, 300\)"):
            rt.run(torch.zeros(1, 3, 224, 224))
    with pytest.raises(RuntimeError, match="no model 'nope'"):
        serve.TritonRuntime(server.url, model="nope")
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        serve.model_repository(tmp_path / "missing.onnx", tmp_path)
    with pytest.raises(ValueError, match="queue_delay_us"):
        serve.model_config(onnx_path, queue_delay_us=-1)


def test_a_rerun_start_replaces_the_server_and_stop_leaves_no_process(repo):
    first = serve.start(repo, name="test-rerun")
    assert _alive(first.pid)
    second = serve.start(repo, name="test-rerun")  # a re-run cell
    assert _gone(first.pid) and second.running
    second.stop()
    assert _gone(second.pid)
    second.stop()  # idempotent


KILLED_CLIENT = """
import sys, time
from helpers import serve
s = serve.start(sys.argv[1], name="orphan-check")
print(s.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_client_leaves_no_server(repo):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(repo)], stdout=subprocess.PIPE,
                             text=True, env=env, cwd=ROOT)
    try:
        pid = int(child.stdout.readline())
        assert _alive(pid)
    finally:
        child.kill()  # SIGKILL: no atexit, no finalizer runs in the client
        child.wait()
    assert _gone(pid), f"tritonserver group {pid} outlived its killed client: {_alive(pid)}"
    left = list(Path(tempfile.gettempdir()).glob(f"evw-triton-{child.pid}-*"))
    assert left, "the killed client's server folder should still be there before the next start sweeps it"
    serve._sweep_workdirs()
    assert not any(p.exists() for p in left)
