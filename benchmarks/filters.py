"""Super-resolution filter speed per runtime and output resolution, with drift, side by side.

    python benchmarks/filters.py                  # CPU: eager, channels_last, ORT FP32, ORT INT8
    python benchmarks/filters.py --compile        # adds torch.compile (CPU Inductor: slow to compile)
On a machine with a CUDA device the same command adds eager FP32/FP16, compile and CUDA graphs
on the GPU, batch 8, and TensorRT engines when TensorRT is importable (env.probe decides).

What is timed is the whole stage a video pipeline pays per frame: a uint8 BGR frame in, the
upscaled uint8 frame out (helpers.filters.Upscaler: upload, network, download), median of
interleaved rounds, so every runtime sees the same machine load. The timing frame is a
held-out photo resized to the input size (content does not change the cost). Drift is judged
on the held-out photos at their own size, shrunk by the scale factor: the PSNR of each
runtime's output against eager FP32's, and the share of FP32's gain over bicubic it keeps
(helpers.evaluate.filter_drift, the one drift judge metrics.judge with the image table).
The runtimes come from the runtime matrix (helpers.superres.variants -> helpers.matrix.build).

CPU target: at 480p input (x2 to 960p) the best CPU runtime at least 2x faster than eager.
On CUDA it also runs batch 1 and batch 8 (throughput). Writes benchmarks/results/filters.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import bench, env, evaluate, filters, superres  # noqa: E402


def frame_of(height: int, width: int) -> np.ndarray:
    """A held-out photo resized to the input size: real texture, never seen in training."""
    image = superres.held_out_images(max_side=4096)["astronaut"]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--compile", action="store_true", help="include torch.compile on the CPU")
    p.add_argument("--cache", default=str(ROOT / "build" / "matrix"), help="the runtime matrix's artifact cache")
    p.add_argument("--quick", action="store_true", help="first case, 1 round of 2 calls: proves it runs, no numbers")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "filters.json"))
    args = p.parse_args(argv)
    if args.quick:  # never overwrites the committed results
        args.rounds, args.iters = 1, 2
        if args.json == p.get_default("json"):
            args.json = str(ROOT / "build" / "bench_quick" / "filters.json")
    torch.set_num_threads(args.threads)
    caps = env.probe()
    results, drift, skipped_all, judged = {}, {}, set(), {}
    work = Path(args.cache)
    cases = dict(list(superres.CASES.items())[:1]) if args.quick else superres.CASES
    for case, (h, w, scale) in cases.items():
        model = filters.super_resolution(scale)
        variants, skipped = superres.variants(model, work, caps, compile=args.compile, threads=args.threads)
        skipped_all.update(skipped)
        frame = frame_of(h, w)
        stages = {name: filters.Upscaler(rt, scale=scale) for name, (rt, _) in variants.items()}
        if scale not in judged:
            judged[scale] = evaluate.filter_drift(stages, {n: p for n, (_, p) in variants.items()}, scale)
        drift[case] = {name: round(judged[scale][name]["psnr_db"], 2) for name in stages if name != "eager FP32"}
        samples = bench.interleaved({name: (lambda up=up: up(frame)) for name, up in stages.items()},
                                    rounds=args.rounds, iters=args.iters, warmup=2)
        rows = {}
        for name, up in stages.items():
            s = bench.stats(samples[name])
            rows[name] = {**s, "precision": variants[name][1],
                          "network_ms": round(float(np.median(list(up.history["network"])[-args.iters:])), 3),
                          "vs_eager": round(bench.stats(samples["eager FP32"])["median_ms"] / s["median_ms"], 2),
                          "verdict_30fps": superres.realtime(s["median_ms"], 30),
                          "verdict_15fps": superres.realtime(s["median_ms"], 15)}
        if caps.has_cuda:
            for name, up in stages.items():
                if "cuda" in name or name.startswith("TensorRT"):
                    batch = [frame] * 8
                    up.batch(batch)
                    ms = float(np.median(bench.time_calls(lambda: up.batch(batch), 5)))
                    rows[name]["batch8_ms_per_frame"] = round(ms / 8, 3)
        results[case] = {"input": f"{w}x{h}", "output": f"{w * scale}x{h * scale}", "scale": scale,
                         "gmac": round(model.macs(h, w) / 1e9, 3), "runtimes": rows}
        for rt, _ in variants.values():
            rt.close()
    print(f"\nSuper-resolution stage, ms per frame (uint8 in -> uint8 out), {args.threads} CPU threads")
    print(f"{'case':<20}{'runtime':<30}{'median':>9}{'p90':>9}{'network':>9}{'vs eager':>9}  drift PSNR")
    for case, r in results.items():
        for name, row in r["runtimes"].items():
            d = drift[case].get(name, "ref")
            print(f"{case:<20}{name:<30}{row['median_ms']:>9.2f}{row['p90_ms']:>9.2f}{row['network_ms']:>9.2f}"
                  f"{row['vs_eager']:>8.2f}x  {d}")
    first = next(iter(results))
    cpu_rows = {k: v for k, v in results[first]["runtimes"].items() if "cuda" not in k and "TensorRT" not in k}
    best = min(cpu_rows, key=lambda k: cpu_rows[k]["median_ms"])
    ratio = cpu_rows[best]["vs_eager"]
    print(f"best CPU runtime at {first}: {best}, {ratio:.2f}x eager (target >= 2x): {'PASS' if ratio >= 2 else 'MISS'}")
    for line in sorted(skipped_all):
        print(line)
    print("drift on the held-out photos (PSNR vs eager FP32 / gain over bicubic kept):")
    for scale, rows in judged.items():
        for name, d in rows.items():
            kept = f"{d['gain_kept']:.0%}" if "gain_kept" in d else "n/a"
            print(f"  x{scale} {name:<30}{d['psnr_db']:>8.1f} dB  gain {d['gain_db']:+.2f} dB ({kept})  {d['verdict']}")
    payload = {"benchmark": "filters", "threads": args.threads, "results": results, "drift_psnr_db": drift,
               "drift_judged": {f"x{s}": rows for s, rows in judged.items()},
               "best_cpu": {"case": first, "runtime": best, "vs_eager": ratio, "target": 2.0},
               "skipped": sorted(skipped_all)}
    bench.write_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
