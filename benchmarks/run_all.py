"""Run every benchmark script and gather their results into one JSON file.

    python benchmarks/run_all.py                     # -> build/benchmarks.json
    python benchmarks/run_all.py --only detect tnr   # a subset
    python benchmarks/run_all.py --device cuda       # passed to the scripts that take it
    python benchmarks/run_all.py --results benchmarks/results   # what `make bench` runs: each
                                                     # script's JSON where the README points

Each script runs in its own process (a crash or a missing runtime in one does not stop the
others) and writes its own JSON; this file wraps them in one schema:

    {"schema": 1, "date": ..., "environment": <env.probe()>,
     "benchmarks": {name: {"status": "ok" | "failed: <reason>", "seconds": s, "result": {...}}}}

Compare two such files (two machines, or before/after a change) with benchmarks/compare.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (script, extra arguments, takes --device)
SCRIPTS = {
    "synth": ("bench_synth.py", ["--sizes"], False),
    "preprocess": ("preprocess.py", [], False),
    "classify": ("classify.py", ["--no-compile"], False),
    "detect": ("detect.py", [], True),
    "tnr": ("tnr.py", [], True),
    "runtimes": ("runtimes.py", [], True),
    "pipeline": ("pipeline.py", [], True),
    "tnr_quality": ("tnr_quality.py", [], False),
    "filters": ("filters.py", [], False),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(SCRIPTS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "build" / "benchmarks.json"))
    p.add_argument("--results", default=str(ROOT / "build" / "benchmarks"),
                   help="folder for each script's own JSON (<name>.json)")
    args = p.parse_args(argv)
    from helpers import env
    from helpers.files import write_text

    out_dir = Path(args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    gathered = {}
    for name in args.only or SCRIPTS:
        script, extra, device = SCRIPTS[name]
        target = out_dir / f"{name}.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--json", str(target), *extra]
        if device:
            cmd += ["--device", args.device]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        seconds = round(time.perf_counter() - start, 1)
        if proc.returncode == 0 and target.is_file():
            gathered[name] = {"status": "ok", "seconds": seconds, "result": json.loads(target.read_text())}
        else:
            gathered[name] = {"status": f"failed: exit code {proc.returncode}", "seconds": seconds}
    payload = {"schema": 1, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "environment": env.probe(camera_timeout=1.0).to_dict(), "benchmarks": gathered}
    write_text(args.out, json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    for name, g in gathered.items():
        print(f"  {name:<12}{g['status']:<24}{g['seconds']:>8} s")
    return 0 if all(g["status"] == "ok" for g in gathered.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
