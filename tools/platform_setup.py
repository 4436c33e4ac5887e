"""How `make venv` builds the virtual environment on this machine.

The Makefile asks this script before it creates ``.venv``; it runs under the machine's own
``python3`` (on a Jetson that is Ubuntu's 3.10), so it needs nothing but the standard library.

    python3 tools/platform_setup.py make          # BOARD=... VENV_PYTHON=... VENV_FLAGS=... VENV_BIN=...
    python3 tools/platform_setup.py show          # the same decision, for people
    .venv/bin/python tools/platform_setup.py constraints -o FILE   # Jetson: pin the torch already installed
    python3 tools/platform_setup.py requirements -o FILE           # Jetson: [project] + [dev], minus torch

| machine | interpreter | venv flags | torch |
|---|---|---|---|
| Jetson (JetPack 6) | /usr/bin/python3.10 (JetPack's Python) | --system-site-packages | NVIDIA's, kept: the project goes in with --no-deps, the rest from a list without torch/torchvision, under a constraints file pinning the installed versions |
| everything else (x86_64 Linux, Raspberry Pi, macOS arm64, Windows x86_64) | python3.11, else python3 | none | pyproject.toml's environment markers |

A Jetson is recognised by the same rule as ``helpers.env.probe_platform`` (that module is loaded
from its file, so importing ``helpers`` is not needed). ``EVW_SYSROOT`` (default ``/``) points the
check at a fake tree; the tests use it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Installed by NVIDIA's wheels on a Jetson; never replaced by pip.
NVIDIA_PACKAGES = ("torch", "torchvision")
JETSON_PYTHON = "/usr/bin/python3.10"
TORCH_HINT = ("install NVIDIA's torch and torchvision wheels for your JetPack first "
              "(https://pypi.jetson-ai-lab.io/jp6/cu126, or NVIDIA's PyTorch for Jetson page); "
              "see README.md, Installing")


def _env_module():
    spec = importlib.util.spec_from_file_location("_evw_env", ROOT / "helpers" / "env.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def board(root: str | Path | None = None) -> str:
    """'jetson', 'raspberry_pi' or 'generic', by helpers.env's rule, under ``root``."""
    root = os.environ.get("EVW_SYSROOT", "/") if root is None else root
    return _env_module().probe_platform(root)["kind"]


def decide(root: str | Path | None = None, system: str | None = None, machine: str | None = None,
           which=shutil.which) -> dict:
    """The interpreter, venv flags and torch handling for this machine (or the one described)."""
    kind = board(root)
    system = system or platform.system()
    machine = machine or platform.machine()
    venv_bin = "Scripts" if system == "Windows" else "bin"
    if kind == "jetson":
        # TensorRT (python3-libnvinfer), VPI (python3-vpi3) and NVIDIA's torch are built for
        # JetPack's Python and live in its site-packages: the venv must use and see them.
        return {"board": kind, "python": JETSON_PYTHON, "venv_flags": ["--system-site-packages"],
                "venv_bin": venv_bin, "torch": "keep"}
    candidates = ("python3.11", "python", "python3") if system == "Windows" else ("python3.11", "python3")
    python = next((name for name in candidates if which(name)), candidates[-1])
    return {"board": kind, "python": python, "venv_flags": [], "venv_bin": venv_bin, "torch": "markers"}


# ------------------------------------------------------------------ requirements


def _project_lists(text: str) -> tuple[list[str], list[str]]:
    """[project].dependencies and the [dev] extra from pyproject.toml's text."""
    try:
        import tomllib
    except ImportError:  # Python 3.10 (JetPack 6): pyproject.toml's own layout is simple enough
        return _project_lists_by_hand(text)
    project = tomllib.loads(text)["project"]
    return list(project["dependencies"]), list(project["optional-dependencies"]["dev"])


def _project_lists_by_hand(text: str) -> tuple[list[str], list[str]]:
    def array(table: str, key: str) -> list[str]:
        section = re.search(rf"^\[{re.escape(table)}\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        block = section and re.search(rf"^{key}\s*=\s*\[(.*?)^\]", section.group(1), re.M | re.S)
        if not block:
            raise SystemExit(f"pyproject.toml: no {key} = [...] under [{table}]")
        lines = (line.split("#", 1)[0] for line in block.group(1).splitlines())
        return re.findall(r'"([^"]*)"', "\n".join(lines))

    return array("project", "dependencies"), array("project.optional-dependencies", "dev")


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not match:
        raise ValueError(f"not a requirement: {spec!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def jetson_requirements(pyproject: str | Path = ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies and [dev], without the packages NVIDIA's wheels provide."""
    dependencies, dev = _project_lists(Path(pyproject).read_text())
    return [spec for spec in dependencies + dev if requirement_name(spec) not in NVIDIA_PACKAGES]


def torch_constraints(version=None) -> list[str]:
    """``name==version`` for the torch and torchvision this interpreter already sees."""
    if version is None:
        from importlib.metadata import version
    lines, missing = [], []
    for name in NVIDIA_PACKAGES:
        try:
            lines.append(f"{name}=={version(name)}")
        except Exception:
            missing.append(name)
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not found by {sys.executable}: {TORCH_HINT}")
    return lines


def _warn_if_cpu_torch() -> None:
    try:
        import torch
    except Exception as exc:  # the constraint still pins it; the notebooks will say more
        print(f"warning: torch is installed but does not import ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    if torch.version.cuda is None:
        print(f"warning: torch {torch.__version__} is a CPU build, not NVIDIA's; it is kept as it is. "
              f"For CUDA, {TORCH_HINT}", file=sys.stderr)


def _write(lines: list[str], out: str | None) -> None:
    text = "".join(line + "\n" for line in lines)
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="tools/platform_setup.py", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("make", "show", "requirements", "constraints"))
    parser.add_argument("-o", "--out", help="write here instead of stdout (requirements, constraints)")
    args = parser.parse_args(argv)
    if args.what == "requirements":
        _write(jetson_requirements(), args.out)
    elif args.what == "constraints":
        lines = torch_constraints()
        _warn_if_cpu_torch()
        _write(lines, args.out)
        print(f"keeping {', '.join(lines)}", file=sys.stderr)
    else:
        d = decide()
        if args.what == "make":
            # One word per variable: the Makefile $(eval)s each.
            print(f"BOARD={d['board']} VENV_PYTHON={d['python']} VENV_FLAGS={','.join(d['venv_flags'])} "
                  f"VENV_BIN={d['venv_bin']}")
        else:
            print(f"board {d['board']}: {d['python']} -m venv {' '.join(d['venv_flags'])}".rstrip()
                  + f"; torch from {'the system (kept)' if d['torch'] == 'keep' else 'pyproject markers'}")


if __name__ == "__main__":
    main()
