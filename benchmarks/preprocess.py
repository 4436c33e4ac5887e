"""How long does a 1920x1080 BGR frame take to become a normalized, letterboxed 1x3x320x320 batch?

    python benchmarks/preprocess.py                      # 200 repeats, 2 threads
    python benchmarks/preprocess.py --repeats 1000 --threads 4

One row per implementation this machine has: numpy/OpenCV, torch on the CPU and, with a
CUDA device, torch on the GPU from a numpy frame (staged through pinned memory), from a
frame already in pinned memory, and from a frame already on the GPU (no upload, for
comparison only). Every GPU time is the wall time the caller waits, synchronized; CUDA
event times are stored too. Targets: best CPU path <= 5 ms; CUDA <= 0.5 ms including the
upload. Prints a table and writes JSON (default benchmarks/results/preprocess.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import bench  # noqa: E402
from helpers.preprocess import Preprocessor  # noqa: E402
from helpers.synth import Scene  # noqa: E402

FRAME_SIZE = (1920, 1080)
NET_SIZE = (320, 320)
TARGETS_MS = {"cpu": 5.0, "cuda": 0.5}


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 4),
            "p90_ms": round(float(np.percentile(a, 90)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4),
            "min_ms": round(float(a.min()), 4)}


def time_cpu(fn, warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        ms.append(1e3 * (time.perf_counter() - start))
    return stats(ms)


def time_cuda(fn, warmup: int, repeats: int) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    wall, gpu = [], []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(repeats):
        # Start from an idle GPU so one frame's work cannot hide behind the previous one's.
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        end.synchronize()
        wall.append(1e3 * (time.perf_counter() - t0))
        gpu.append(start.elapsed_time(end))
    return dict(stats(wall), cuda_event_median_ms=round(float(np.median(gpu)), 4))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (default 2)")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "preprocess.json")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1, --warmup >= 0")

    # Both libraries default to every core; pinning the count makes runs comparable.
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"threads: torch {torch.get_num_threads()}, OpenCV {cv2.getNumThreads()}; "
          f"{args.repeats} repeats after {args.warmup} warm-up; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    frame = Scene(size=FRAME_SIZE, length=1, seed=0).frame(0).clean
    reference, _ = Preprocessor(NET_SIZE, backend="numpy")(frame)

    def row(name, device, pre, source, timer):
        out, _ = pre(source)
        # A fast wrong answer is worth nothing: every row is checked against numpy.
        host_copy = out.cpu().numpy() if isinstance(out, torch.Tensor) else out
        result = timer(lambda: pre(source), args.warmup, args.repeats)
        return dict(name=name, device=device, shape=list(host_copy.shape),
                    max_abs_diff_vs_numpy=float(np.abs(host_copy - reference).max()), **result)

    rows = [
        row("numpy/OpenCV", "cpu", Preprocessor(NET_SIZE, backend="numpy"), frame, time_cpu),
        row("torch", "cpu", Preprocessor(NET_SIZE, backend="torch", device="cpu"), frame, time_cpu),
    ]
    if torch.cuda.is_available():
        gpu = Preprocessor(NET_SIZE, backend="torch", device="cuda")
        name = torch.cuda.get_device_name()
        rows.append(row("torch, numpy frame -> pinned -> GPU", name, gpu, frame, time_cuda))
        pinned = torch.from_numpy(frame).pin_memory()
        rows.append(row("torch, pinned frame -> GPU", name, gpu, pinned, time_cuda))
        on_gpu = torch.from_numpy(frame).cuda()
        rows.append(dict(row("torch, frame already on GPU", name, gpu, on_gpu, time_cuda),
                         no_upload=True))

    print(f"\n{FRAME_SIZE[0]}x{FRAME_SIZE[1]} BGR uint8 -> letterbox -> normalized 1x3x"
          f"{NET_SIZE[1]}x{NET_SIZE[0]} float32")
    print(f"{'implementation':<38} {'device':<22} {'median':>8} {'p90':>8} {'p99':>8} "
          f"{'|diff|':>9}")
    for r in rows:
        print(f"{r['name']:<38} {r['device'][:22]:<22} {r['median_ms']:>8.3f} {r['p90_ms']:>8.3f} "
              f"{r['p99_ms']:>8.3f} {r['max_abs_diff_vs_numpy']:>9.1e}")
    print("times in ms; |diff| = max abs difference from the numpy output")

    targets = {}
    for kind, limit in TARGETS_MS.items():
        candidates = [r for r in rows if (r["device"] == "cpu") == (kind == "cpu")
                      and not r.get("no_upload")]
        if not candidates:
            targets[kind] = dict(limit_ms=limit, met=None, note="no CUDA device: not measured")
            print(f"target {kind} <= {limit} ms: not measured (no CUDA device)")
            continue
        best = min(candidates, key=lambda r: r["median_ms"])
        met = best["median_ms"] <= limit
        targets[kind] = dict(limit_ms=limit, met=met, best=best["name"],
                             median_ms=best["median_ms"])
        print(f"target {kind} <= {limit} ms (median, best path, upload included): "
              f"{'MET' if met else 'NOT MET'} by {best['name']} at {best['median_ms']:.3f} ms")

    result = {
        "benchmark": "preprocess",
        "what": f"Preprocessor(size={NET_SIZE}, letterbox=True) on one {FRAME_SIZE[0]}x"
                f"{FRAME_SIZE[1]} BGR uint8 frame -> normalized float32 1x3x{NET_SIZE[1]}x"
                f"{NET_SIZE[0]}; GPU rows include host->device upload unless no_upload",
        "threads": {"torch": torch.get_num_threads(), "opencv": cv2.getNumThreads()},
        "warmup": args.warmup,
        "repeats": args.repeats,
        "targets": targets,
        "results": rows,
    }
    bench.write_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
