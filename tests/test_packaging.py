"""The repository's own promises: environment.yml mirrors pyproject, notebooks carry no
outputs, NOTICE names every asset, and the README's test command is what CI runs."""

import json
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _normalise(spec: str) -> tuple:
    req = Requirement(spec)
    return (req.name.lower().replace("_", "-"), str(req.specifier), str(req.marker or ""))


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(s) for s in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    mirrored = {_normalise(s) for s in pip_section}
    assert mirrored == wanted, (
        f"only in pyproject: {sorted(wanted - mirrored)}; only in environment.yml: {sorted(mirrored - wanted)}"
    )
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11"


def test_torch_is_pinned_per_architecture():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {(r.name, str(r.specifier), str(r.marker)) for r in map(Requirement, deps) if r.name.startswith("torch")}
    assert ("torch", "==2.14.1", 'platform_machine == "x86_64"') in pins
    assert ("torchvision", "==0.29.1", 'platform_machine == "x86_64"') in pins
    assert ("torch", "==2.9.1", 'platform_machine == "aarch64"') in pins
    assert ("torchvision", "==0.24.1", 'platform_machine == "aarch64"') in pins
    assert ("torch", "==2.14.1", 'sys_platform == "darwin" and platform_machine == "arm64"') in pins
    assert ("torch", "==2.14.1", 'sys_platform == "win32" and platform_machine == "AMD64"') in pins


@pytest.mark.parametrize("sys_platform, machine, torch, torchvision", [
    ("linux", "x86_64", "==2.14.1", "==0.29.1"),
    ("linux", "aarch64", "==2.9.1", "==0.24.1"),  # Raspberry Pi; a Jetson keeps NVIDIA's (test_platform)
    ("darwin", "arm64", "==2.14.1", "==0.29.1"),
    ("win32", "AMD64", "==2.14.1", "==0.29.1"),
])
@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12"])
def test_each_platform_gets_exactly_one_torch(sys_platform, machine, torch, torchvision, python):
    # What pip sees there: the markers evaluated in that platform's environment.
    system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[sys_platform]
    where = {"sys_platform": sys_platform, "platform_machine": machine, "platform_system": system,
             "os_name": "nt" if sys_platform == "win32" else "posix",
             "python_version": python, "python_full_version": f"{python}.0"}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    chosen = {}
    for req in map(Requirement, deps):
        if req.name.startswith("torch") and (req.marker is None or req.marker.evaluate(where)):
            assert req.name not in chosen, f"two {req.name} pins apply on {sys_platform}/{machine}"
            chosen[req.name] = str(req.specifier)
    assert chosen == {"torch": torch, "torchvision": torchvision}


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    dirty = []
    for nb in notebooks:
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
                dirty.append(f"{nb.name} cell {i}")
    assert not dirty, f"clear outputs before committing (Kernel > Restart and Clear Outputs): {dirty}"


def test_notebooks_follow_the_lesson_shape():
    # design.md: goal and prerequisites -> steps -> measure -> try it yourself -> summary.
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = "\n".join(
            "".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown"
        ).lower()
        for heading in ("goal", "prerequisites", "measure", "try it yourself", "summary"):
            assert heading in text, f"{nb.name} has no '{heading}' section"


def test_skipped_cells_are_skipped_by_both_runners():
    # nbval honours "nbval-skip", nbmake and nbclient honour "skip-execution": a cell that
    # must not run headless has to carry both or one runner will execute it.
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            tags = set(cell.get("metadata", {}).get("tags", []))
            if tags & {"nbval-skip", "skip-execution"}:
                assert {"nbval-skip", "skip-execution"} <= tags, f"{nb.name} cell {i}: tags {sorted(tags)}"


def test_notice_lists_every_asset():
    notice = (ROOT / "NOTICE").read_text()
    manifest = json.loads((ROOT / "data" / "manifest.json").read_text())["assets"]
    missing = [a["filename"] for a in manifest.values() if a["filename"] not in notice]
    assert not missing, f"NOTICE does not mention {missing}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert "make test" in ci
