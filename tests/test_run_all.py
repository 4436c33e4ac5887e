"""benchmarks/run_all.py gathers each script's JSON into one schema, and a failing script is
recorded as failed instead of stopping the run; compare.py pairs medians across two files."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import compare  # noqa: E402
import run_all  # noqa: E402


def test_run_all_schema_and_failure_is_recorded(tmp_path, monkeypatch):
    # Two tiny stand-in scripts: the runner's own logic is under test here, not the benchmarks.
    ok = tmp_path / "ok.py"
    ok.write_text("import json, sys\nopen(sys.argv[sys.argv.index('--json') + 1], 'w').write(json.dumps({'x': {'median_ms': 2.0}}))\n")
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(run_all, "SCRIPTS", {"ok": (str(ok), [], False), "bad": (str(bad), [], False)})
    out = tmp_path / "all.json"
    assert run_all.main(["--out", str(out)]) == 1
    data = json.loads(out.read_text())
    assert data["schema"] == 1 and "environment" in data and data["date"]
    assert data["benchmarks"]["ok"]["status"] == "ok" and data["benchmarks"]["ok"]["result"]["x"]["median_ms"] == 2.0
    assert data["benchmarks"]["bad"]["status"] == "failed: exit code 3"


def test_compare_pairs_medians_by_path(tmp_path, capsys):
    a = {"date": "A", "benchmarks": {"detect": {"result": {"torch": {"median_ms": 10.0}}}}}
    b = {"date": "B", "benchmarks": {"detect": {"result": {"torch": {"median_ms": 5.0}, "new": {"median_ms": 1.0}}}}}
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    assert compare.main([str(pa), str(pb)]) == 0
    out = capsys.readouterr().out
    assert "benchmarks/detect/result/torch" in out and "0.50" in out and "1 measurements exist in one file only" in out
