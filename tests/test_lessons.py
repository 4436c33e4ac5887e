"""The lessons themselves: env.lesson() (the one setup call) and the notebooks' hygiene rules."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update({"EVW_REPORT_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "always", **env})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env=environ, timeout=240)


LESSON_RUN = """
import os, sys, warnings
from helpers import env
assert "torch" not in sys.modules, "from helpers import env must not import torch"
lesson = env.lesson("04_tnr_and_interop", threads=1)
print("POLICY", os.environ["OMP_WAIT_POLICY"], "DEVICE", lesson.device, "THREADS", lesson.threads)
import torch
print("TORCH", torch.get_num_threads())
warnings.warn("CUDA initialization: Found no NVIDIA driver on your system. Please check", UserWarning)
lesson.skip("the live demo", "no camera here")
lesson.record("figure", 42)
"""


def test_lesson_sets_the_policy_threads_and_prints_one_banner(tmp_path):
    proc = _python(LESSON_RUN, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "POLICY PASSIVE" in out and "THREADS 1" in out and "TORCH 1" in out
    assert out.count("Lesson 04_tnr_and_interop | track: ") == 1
    assert "OMP_WAIT_POLICY=PASSIVE" in out and "torch threads: 1" in out
    device = out.split("DEVICE ")[1].split()[0]
    assert device in ("cpu", "cuda")
    if device == "cpu":
        assert "device: cpu (" in out  # why, in our words
    assert "Found no NVIDIA driver" not in proc.stderr  # torch's raw warning is filtered
    assert "skipped: the live demo: no camera here" in out
    saved = json.loads((tmp_path / "04_tnr_and_interop.json").read_text())
    assert saved["figures"] == {"figure": 42} and "the live demo: no camera here" in saved["skipped"]
    assert saved["track"] in ("CPU", "GPU", "GPU + TensorRT")


def test_lesson_after_torch_warns_that_the_policy_is_too_late(tmp_path):
    proc = _python("import torch\nfrom helpers import env\nenv.lesson('00_environment', threads=1)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "torch was imported before env.lesson()" in proc.stderr


def test_lesson_names_an_unknown_notebook(tmp_path):
    proc = _python("from helpers import env\nenv.lesson('04_tnr')", tmp_path)
    assert proc.returncode != 0 and "unknown lesson '04_tnr'" in proc.stderr and "04_tnr_and_interop" in proc.stderr
