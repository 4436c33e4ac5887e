"""tools/device_check.py: the dry run lists every step with its limit and the skip it would
have here; --only refuses unknown steps; the step runner kills a hung child (a real process
that sleeps), and reports a raising or crashing one as failed; the profiler trace parser
attributes host copies to the stage that launched them."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "device_check.py"


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_dry_run_lists_every_step_with_its_limit_and_skip(dc, tmp_path):
    out = tmp_path / "out"
    proc = _run("--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in dc.STEPS:
        assert step.name in proc.stdout
        assert f"{step.limit_s:.0f}s" in proc.stdout
    assert "budget" in proc.stdout
    # A dry run writes only its own, clearly named file.
    assert [p.name for p in out.iterdir()] == ["device_check.dry-run.json"]
    data = json.loads((out / "device_check.dry-run.json").read_text())
    assert data["dry_run"] is True
    rows = {r["step"]: r for r in data["steps"]}
    assert list(rows) == [s.name for s in dc.STEPS]
    assert rows["env"]["status"] == "pass", rows["env"]
    gate = data["gate"]
    for step in dc.STEPS[1:]:
        row = rows[step.name]
        assert row["limit_s"] == step.limit_s and row["status"] in ("skip", "would run")
        if row["status"] == "skip":
            assert row["reason"]
        if gate["cuda"]:  # a CPU machine (CI): every GPU step says why it would not run
            assert row["status"] == "skip" and "CUDA" in row["reason"], row


def test_only_with_an_unknown_step_is_a_clear_error():
    proc = _run("--only", "tnr", "warp_drive", timeout=60)
    assert proc.returncode == 2
    assert "unknown step(s) warp_drive" in proc.stderr
    assert "detect_real" in proc.stderr and "tnr" in proc.stderr  # the valid names are listed


def test_runner_kills_a_hung_step_and_keeps_its_partial_numbers(dc, tmp_path):
    env = dc.child_env()
    env["EVW_SELFTEST_SLEEP_S"] = "120"
    start = time.monotonic()
    result = dc.run_step(dc.HIDDEN_STEPS["_selftest_sleep"], 3.0, tmp_path, env)
    assert time.monotonic() - start < 30
    assert result["status"] == "fail"
    assert result["reason"].startswith("timed out after 3 s")
    assert result["numbers"] == {"started": True}  # saved before the child hung
    with pytest.raises(ProcessLookupError):
        os.kill(result["pid"], 0)  # the child is gone, not left sleeping


def test_runner_reports_pass_raise_and_crash(dc, tmp_path):
    passed = dc.run_step(dc.HIDDEN_STEPS["_selftest_pass"], 30, tmp_path)
    assert passed["status"] == "pass" and passed["numbers"] == {"answer": 42}
    raised = dc.run_step(dc.HIDDEN_STEPS["_selftest_raise"], 30, tmp_path)
    assert raised["status"] == "fail" and raised["reason"].startswith("ValueError: selftest")
    assert "ValueError" in raised["traceback"]
    crashed = dc.run_step(dc.HIDDEN_STEPS["_selftest_crash"], 30, tmp_path)
    assert crashed["status"] == "fail" and "code 3" in crashed["reason"]
    assert "exiting hard" in crashed["log_tail"]


def test_status_separates_failed_checks_from_missed_targets(dc):
    ctx = dc.Ctx("x", None, 10)
    ctx.target("latency", 0.7, 0.5)
    assert dc._status_of(ctx)[0] == "miss"
    ctx.check("same pointer", False, "0x1 != 0x2")
    status, reason = dc._status_of(ctx)
    assert status == "fail" and "same pointer (0x1 != 0x2)" in reason


def test_attribute_copies_by_stage(dc):
    def span(name, ts, dur, cat, **args):
        return {"ph": "X", "name": name, "ts": ts, "dur": dur, "cat": cat, "tid": 1, "args": args}

    trace = {"traceEvents": [
        span("evw/preprocess", 0, 100, "user_annotation"),
        span("evw/postprocess", 100, 100, "user_annotation"),
        span("evw/final_copy", 200, 100, "user_annotation"),
        span("cudaMemcpyAsync", 10, 5, "cuda_runtime", correlation=1),
        span("cudaMemcpyAsync", 150, 5, "cuda_runtime", correlation=2),
        span("cudaStreamSynchronize", 160, 5, "cuda_runtime", correlation=3),
        span("cudaMemcpyAsync", 250, 5, "cuda_runtime", correlation=4),
        span("Memcpy HtoD (Pageable -> Device)", 20, 1, "gpu_memcpy", correlation=1, bytes=2400),
        span("Memcpy DtoH (Device -> Pageable)", 170, 1, "gpu_memcpy", correlation=2, bytes=8),
        span("Memcpy DtoH (Device -> Pageable)", 260, 9, "gpu_memcpy", correlation=4, bytes=921600),
        span("Memcpy DtoD (Device -> Device)", 30, 1, "gpu_memcpy", correlation=9, bytes=1 << 20),
        span("void kernel", 40, 3, "kernel", correlation=5),
    ]}
    found = dc.attribute_copies(trace)
    assert [(c["direction"], c["bytes"], c["stage"]) for c in found["copies"]] == [
        ("HtoD", 2400, "preprocess"), ("DtoH", 8, "postprocess"), ("DtoH", 921600, "final_copy")]
    assert found["syncs"] == [{"name": "cudaStreamSynchronize", "stage": "postprocess"}]
    table = dc.copies_by_stage(found, iterations=1)
    assert table["final_copy"]["DtoH"]["largest"] == 921600
    assert table["postprocess"]["syncs_per_iteration"] == 1
