"""Execute every notebook in order, headless, into build/: executed .ipynb, HTML, an index page.

Used by ``make run``. Each notebook runs in a fresh kernel with notebooks/ as its working
directory; a failing notebook is reported and the rest still run, and the exit code says
whether all of them passed. The summary's track and key figures come from the JSON each
notebook writes through ``helpers.report.record``. Each notebook's wall time goes to
``<out>/timings.json``; ``--estimates`` turns those timings into the time estimate each
notebook's header and the README table carry (see ``estimate``).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import report  # noqa: E402
from helpers.env import format_table  # noqa: E402


def execute(path: Path, out_dir: Path, timeout: int) -> dict:
    nb = nbformat.read(path, as_version=4)
    # nbclient skips cells tagged "skip-execution" (the same tag nbmake honours);
    # cells that must not run headless carry it together with "nbval-skip".
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    status, error = "passed", ""
    try:
        client.execute()
    except Exception as exc:  # a failed cell, a timeout, or a dead kernel: report it, run the rest
        status = "failed"
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    seconds = time.perf_counter() - started
    executed = out_dir / path.name
    nbformat.write(nb, executed)
    body, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return {"notebook": path.stem, "status": status, "error": error, "seconds": seconds}


WORDS_PER_MINUTE = 180  # reading a lesson's markdown
MINUTES_PER_EXERCISE = 5  # thinking, answering, reading the feedback


def estimate(path: Path, run_seconds: float) -> dict:
    """Minutes a learner needs for a notebook: the run time measured by ``make run`` plus the
    reading time of its markdown and a few minutes per exercise (an ``exercise.check`` call)."""
    from helpers import exercise

    nb = nbformat.read(path, as_version=4)
    words = sum(len(re.findall(r"\w+", c.source)) for c in nb.cells if c.cell_type == "markdown")
    exercises = sum(len(exercise.ids(c.source)) for c in nb.cells if c.cell_type == "code")
    run = max(1, math.ceil(run_seconds / 60))
    total = run + math.ceil(words / WORDS_PER_MINUTE) + MINUTES_PER_EXERCISE * exercises
    return {"notebook": path.stem, "run_min": run, "words": words, "exercises": exercises,
            "total_min": 5 * math.ceil(total / 5),  # rounded up to 5 min: it is a plan, not a measurement
            "header": f"**Time:** about {5 * math.ceil(total / 5)} min (run {run} min on a 2-core CPU + reading)"}


def write_timings(rows: list[dict], out_dir: Path) -> Path:
    """Merge this run's wall times into ``timings.json`` (a run of one notebook keeps the rest)."""
    from helpers.files import write_text

    path = out_dir / "timings.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update({r["notebook"]: {"seconds": round(r["seconds"], 1), "status": r["status"], "host": os.uname().nodename,
                                  "date": time.strftime("%Y-%m-%d")} for r in rows})
    return write_text(path, json.dumps(known, indent=2, sort_keys=True))


def print_estimates(out_dir: Path) -> int:
    path = out_dir / "timings.json"
    if not path.is_file():
        print(f"no {path}: run make run (or tools/run_notebooks.py) first", file=sys.stderr)
        return 1
    timings = json.loads(path.read_text())
    rows = []
    for stem, timing in sorted(timings.items()):
        notebook = ROOT / "notebooks" / f"{stem}.ipynb"
        if notebook.is_file():
            e = estimate(notebook, timing["seconds"])
            rows.append((stem, f"{timing['seconds']:.0f} s", e["words"], e["exercises"], e["header"]))
    print(format_table(rows, ("notebook", "run (make run)", "markdown words", "exercises", "header line")))
    return 0


def figures_text(figures: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in figures.items())


def write_index(rows: list[dict], out_dir: Path) -> Path:
    lines = [
        "<!doctype html><meta charset='utf-8'><title>Edge Vision Workbook: executed notebooks</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
        ".failed{color:#b00}.passed{color:#070}</style>",
        "<h1>Edge Vision Workbook: executed notebooks</h1>",
        f"<p>Executed {time.strftime('%Y-%m-%d %H:%M:%S')} on {html.escape(os.uname().nodename)}.</p>",
        "<table><tr><th>notebook</th><th>track</th><th>status</th><th>seconds</th><th>key figures</th><th>skipped here</th></tr>",
    ]
    for r in rows:
        lines.append(
            f"<tr><td><a href='{r['notebook']}.html'>{html.escape(r['notebook'])}</a></td>"
            f"<td>{html.escape(r['track'])}</td><td class='{r['status']}'>{r['status']} {html.escape(r['error'])}</td>"
            f"<td>{r['seconds']:.1f}</td><td>{html.escape(r['figures'])}</td>"
            f"<td>{html.escape('; '.join(r['skipped']))}</td></tr>"
        )
    lines.append("</table>")
    index = out_dir / "index.html"
    index.write_text("\n".join(lines), encoding="utf-8")
    return index


REPORT_NOTEBOOK = "07_benchmark_report"
HEADLINES = ("best runtime", "real-time verdict @30fps", "real-time verdict @15fps", "drift")


def write_report(out_dir: Path) -> Path | None:
    """build/report.html is the executed lab-report notebook; its headline figures go to the
    terminal. None when the report notebook did not run."""
    html_path = out_dir / f"{REPORT_NOTEBOOK}.html"
    recorded = report.load(REPORT_NOTEBOOK)
    if not html_path.is_file() or not recorded:
        return None
    target = out_dir / "report.html"
    shutil.copyfile(html_path, target)
    figures = recorded.get("figures", {})
    print("\nLab report headlines:")
    for key in HEADLINES:
        if key in figures:
            print(f"  {key}: {figures[key]}")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9]*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--estimates", action="store_true",
                        help="run nothing: print each notebook's time estimate from <out>/timings.json")
    args = parser.parse_args(argv)
    if args.estimates:
        return print_estimates(args.out.resolve())

    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    # Absolute: kernels run in notebooks/, so a relative path would send their records elsewhere.
    out_dir = args.out.resolve()
    results = out_dir / "results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    os.environ["EVW_REPORT_DIR"] = str(results)  # inherited by every kernel

    rows = []
    for path in notebooks:
        print(f"running {path.name} ...", flush=True)
        row = execute(path.resolve(), out_dir, args.timeout)
        recorded = report.load(row["notebook"]) or {}
        row["track"] = recorded.get("track", "?")
        row["figures"] = figures_text(recorded.get("figures", {}))
        row["skipped"] = recorded.get("skipped", [])
        rows.append(row)
        print(f"  {row['status']} in {row['seconds']:.1f} s {row['error']}", flush=True)

    index = write_index(rows, out_dir)
    write_timings(rows, out_dir)
    print()
    print(format_table(
        [(r["notebook"], r["track"], r["status"], f"{r['seconds']:.0f} s", r["figures"]) for r in rows],
        ("notebook", "track", "status", "time", "key figures"),
    ))
    for r in rows:
        for s in r["skipped"]:
            print(f"  {r['notebook']}: skipped {s}")
    print(f"\nHTML: {index}")
    report_html = write_report(out_dir)
    if report_html:
        print(f"Lab report: {report_html}")
    return 0 if all(r["status"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
