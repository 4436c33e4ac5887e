"""tools/run_notebooks.py (make run) on two tiny real notebooks in a real kernel."""

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent


def _write(path, *cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_run_notebooks_writes_html_index_and_summary(tmp_path):
    good = tmp_path / "90_good.ipynb"
    bad = tmp_path / "91_bad.ipynb"
    _write(
        good,
        new_markdown_cell("# Good"),
        new_code_cell("from helpers import report\nreport.record('90_good', 'CPU', {'answer': 6 * 7}, ['nothing'])"),
        new_code_cell("raise SystemExit('must not run')", metadata={"tags": ["nbval-skip", "skip-execution"]}),
    )
    _write(bad, new_code_cell("1 / 0"))
    out = tmp_path / "build"
    # A relative --out, as the Makefile passes: the kernels' records must still be found.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_notebooks.py"), str(good), str(bad), "--out", "build", "--timeout", "120"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one notebook failed
    assert "answer: 42" in proc.stdout and "CPU" in proc.stdout and "ZeroDivisionError" in proc.stdout
    assert (out / "90_good.html").is_file() and (out / "91_bad.html").is_file()
    executed = nbformat.read(out / "90_good.ipynb", as_version=4)
    assert executed.cells[2].get("outputs", []) == []  # the tagged cell was skipped
    index = (out / "index.html").read_text()
    assert "90_good.html" in index and "failed" in index and "passed" in index
    timings = __import__("json").loads((out / "timings.json").read_text())
    assert set(timings) == {"90_good", "91_bad"} and timings["91_bad"]["status"] == "failed"
    assert timings["90_good"]["seconds"] > 0


def test_estimate_adds_run_reading_and_exercise_time(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import run_notebooks

    path = tmp_path / "92_lesson.ipynb"
    _write(path, new_markdown_cell("word " * 540),  # three minutes at 180 words a minute
           new_code_cell('exercise.check("92.one", my_answer, truth, why=why)'))
    e = run_notebooks.estimate(path, run_seconds=61)  # two minutes, rounded up
    assert (e["run_min"], e["words"], e["exercises"]) == (2, 540, 1)
    assert e["total_min"] == 10 and e["header"] == "**Time:** about 10 min (run 2 min on a 2-core CPU + reading)"


def test_make_test_and_make_run_keep_their_results_apart():
    # make run's build/index.html and report.html read build/results; nbval (make test) must write elsewhere,
    # and must judge the instructor solutions while it runs the notebooks.
    dry = subprocess.run(["make", "-n", "nbval", "run", "solutions"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert dry.returncode == 0, dry.stderr
    nbval = next(line for line in dry.stdout.splitlines() if "EVW_REPORT_DIR=" in line)
    assert "EVW_CHECK_SOLUTIONS=1" in nbval and "build/test/results" in nbval and "build/results" not in nbval
    assert "tools/run_notebooks.py --out build" in dry.stdout  # its kernels record to build/results
    assert "helpers.exercise --out build/solutions" in dry.stdout
