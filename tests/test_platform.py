"""`make venv` fits the machine: tools/platform_setup.py's decision on fake device trees (the same
trick as test_env's probe_platform tests), the commands `make -n venv` prints for them, and the
Jetson install that keeps NVIDIA's torch. Nothing here creates a venv or touches the network."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from helpers import env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import platform_setup  # noqa: E402

TEGRA = b"# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n"
TREES = {
    "jetson": {"etc/nv_tegra_release": TEGRA,
               "proc/device-tree/model": b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"},
    "jetson_model_only": {"proc/device-tree/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00"},
    "raspberry_pi": {"proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00"},
    "plain": {"proc/meminfo": b"MemTotal:        8039472 kB\n"},
}


def fake_root(tmp_path, name):
    root = tmp_path / name
    root.mkdir()
    for relative, content in TREES[name].items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return root


def on_path(*names):
    return lambda name: f"/usr/bin/{name}" if name in names else None


JETSON = {"python": "/usr/bin/python3.10", "venv_flags": ["--system-site-packages"], "torch": "keep"}
MARKERS = {"venv_flags": [], "torch": "markers"}


@pytest.mark.parametrize("tree, system, machine, expected", [
    ("jetson", "Linux", "aarch64", {"board": "jetson", **JETSON, "venv_bin": "bin"}),
    ("jetson_model_only", "Linux", "aarch64", {"board": "jetson", **JETSON, "venv_bin": "bin"}),
    ("raspberry_pi", "Linux", "aarch64", {"board": "raspberry_pi", "python": "python3.11", **MARKERS, "venv_bin": "bin"}),
    ("plain", "Linux", "x86_64", {"board": "generic", "python": "python3.11", **MARKERS, "venv_bin": "bin"}),
    ("plain", "Darwin", "arm64", {"board": "generic", "python": "python3.11", **MARKERS, "venv_bin": "bin"}),
    ("plain", "Windows", "AMD64", {"board": "generic", "python": "python3.11", **MARKERS, "venv_bin": "Scripts"}),
])
def test_decision_per_platform(tmp_path, tree, system, machine, expected):
    root = fake_root(tmp_path, tree)
    which = on_path("python3.11", "python3", "python")
    assert platform_setup.decide(root, system=system, machine=machine, which=which) == expected
    # The same rule as helpers.env, which the notebooks report.
    assert platform_setup.board(root) == env.probe_platform(root)["kind"]


def test_interpreter_falls_back_when_there_is_no_python311(tmp_path):
    root = fake_root(tmp_path, "plain")
    assert platform_setup.decide(root, "Linux", "x86_64", which=on_path("python3"))["python"] == "python3"
    assert platform_setup.decide(root, "Windows", "AMD64", which=on_path("python"))["python"] == "python"


def test_sysroot_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EVW_SYSROOT", str(fake_root(tmp_path, "jetson")))
    assert platform_setup.decide()["board"] == "jetson"


# ------------------------------------------------------------------ the Makefile


def make_dry_run(tmp_path, root):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON", "VENV_FLAGS")}
    environment["EVW_SYSROOT"] = str(root)
    # -n prints without running, -B as if nothing were built; the venv path is a scratch one.
    done = subprocess.run(["make", "-C", str(ROOT), "-n", "-B", "--no-print-directory", "venv",
                           f"VENV={tmp_path}/venv"], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_make_venv_on_a_jetson_keeps_nvidias_torch(tmp_path):
    venv = f"{tmp_path}/venv"
    lines = make_dry_run(tmp_path, fake_root(tmp_path, "jetson"))
    assert lines[0] == f"/usr/bin/python3.10 -m venv --system-site-packages {venv}"
    assert f"{venv}/bin/python tools/platform_setup.py constraints -o {venv}/constraints-jetson.txt" in lines
    assert f"{venv}/bin/python tools/platform_setup.py requirements -o {venv}/requirements-jetson.txt" in lines
    assert (f"{venv}/bin/python -m pip install --quiet -c {venv}/constraints-jetson.txt "
            f"-r {venv}/requirements-jetson.txt") in lines
    assert f"{venv}/bin/python -m pip install --quiet --no-deps -e ." in lines
    # The constraints are written before pip installs anything that could pull torch in.
    first_install = next(i for i, line in enumerate(lines) if "pip install" in line and "--upgrade pip" not in line)
    assert lines.index(f"{venv}/bin/python tools/platform_setup.py constraints -o {venv}/constraints-jetson.txt") < first_install
    assert not any('".[dev]"' in line for line in lines)


@pytest.mark.parametrize("tree", ["plain", "raspberry_pi"])
def test_make_venv_elsewhere_is_unchanged(tmp_path, tree):
    venv = f"{tmp_path}/venv"
    lines = make_dry_run(tmp_path, fake_root(tmp_path, tree))
    python = platform_setup.decide(tmp_path / tree)["python"]
    assert lines[0] == f"{python} -m venv {venv}"
    assert f'{venv}/bin/python -m pip install --quiet -e ".[dev]"' in lines
    assert not any("system-site-packages" in line or "constraints" in line for line in lines)


def test_setup_script_needs_only_the_standard_library(tmp_path):
    # The Makefile runs it with the system's python3, before any venv exists: -S -I hides
    # site-packages, so helpers/env.py (loaded from its file) must import without them too.
    done = subprocess.run([sys.executable, "-S", "-I", str(ROOT / "tools" / "platform_setup.py"), "make"],
                          env={**os.environ, "EVW_SYSROOT": str(fake_root(tmp_path, "jetson"))},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["BOARD=jetson", "VENV_PYTHON=/usr/bin/python3.10",
                                   "VENV_FLAGS=--system-site-packages", "VENV_BIN=bin"]


# ------------------------------------------------------------------ the Jetson install


def test_jetson_requirements_are_pyprojects_without_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    everything = project["dependencies"] + project["optional-dependencies"]["dev"]
    wanted = [s for s in everything if not s.startswith(("torch==", "torchvision=="))]
    assert len(wanted) < len(everything)
    assert platform_setup.jetson_requirements() == wanted
    # JetPack 6's Python 3.10 has no tomllib: the parser it uses instead reads the same lists.
    by_hand = platform_setup._project_lists_by_hand((ROOT / "pyproject.toml").read_text())
    assert by_hand == (project["dependencies"], project["optional-dependencies"]["dev"])


def test_constraints_pin_the_torch_already_installed():
    versions = {"torch": "2.5.0a0+872d972e41.nv24.08", "torchvision": "0.20.0a0+afc54f7"}
    assert platform_setup.torch_constraints(versions.__getitem__) == [
        "torch==2.5.0a0+872d972e41.nv24.08", "torchvision==0.20.0a0+afc54f7"]
    with pytest.raises(SystemExit, match="torchvision not found.*jetson-ai-lab"):
        platform_setup.torch_constraints({"torch": "2.8.0"}.__getitem__)


def test_constraints_command_reads_the_installed_versions(tmp_path):
    # A fake site-packages holding only the two distributions' metadata, as NVIDIA's wheels leave it.
    site = tmp_path / "site"
    for name, version in (("torch", "2.8.0"), ("torchvision", "0.23.0")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    out = tmp_path / "constraints.txt"
    done = subprocess.run([sys.executable, "-S", str(ROOT / "tools" / "platform_setup.py"), "constraints", "-o", str(out)],
                          env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "torch==2.8.0\ntorchvision==0.23.0\n"
    assert "keeping torch==2.8.0, torchvision==0.23.0" in done.stderr

    empty = subprocess.run([sys.executable, "-S", "-I", str(ROOT / "tools" / "platform_setup.py"), "constraints"],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode != 0 and "NVIDIA's torch and torchvision wheels" in empty.stderr
