"""How fast does helpers.synth render frames (clean + noisy, in memory, no disk)?

    python benchmarks/bench_synth.py                      # 300 frames at 640x480
    python benchmarks/bench_synth.py --sizes              # sweep 320x240 .. 1920x1080
    python benchmarks/bench_synth.py --size 1280x720 --frames 100 --repeat 3

Prints a table and writes JSON (default benchmarks/results/synth.json). The target is
300 frames at 640x480 in under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from helpers import bench  # noqa: E402
from helpers.synth import Scene  # noqa: E402

SWEEP = ["320x240", "640x480", "1280x720", "1920x1080"]
SWEEP_FRAMES = 60
TARGET = {"size": "640x480", "frames": 300, "seconds": 10.0}


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480; found {text!r}") from None
    return w, h


def time_scene(size, frames, repeat, noise, seed) -> dict:
    """Best of ``repeat`` runs over a fresh Scene each time, so the one-off setup
    (background, sprites, photo loading) is counted like a user would see it."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        scene = Scene(size=size, fps=30, length=frames, seed=seed, noise=noise)
        for i in range(frames):
            scene.frame(i)
        runs.append(time.perf_counter() - start)
    best = min(runs)
    return {"size": f"{size[0]}x{size[1]}", "frames": frames, "noise": noise,
            "seconds": round(best, 3), "fps": round(frames / best, 1),
            "ms_per_frame": round(1000 * best / frames, 2), "runs_s": [round(r, 3) for r in runs]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=(640, 480), help="WxH, default 640x480")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sizes", action="store_true",
                   help=f"sweep {','.join(SWEEP)} with {SWEEP_FRAMES} frames each "
                        "(plus the --size/--frames run)")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "synth.json")
    args = p.parse_args(argv)
    if args.frames < 1 or args.repeat < 1:
        p.error("--frames and --repeat must be >= 1")

    rows = [time_scene(args.size, args.frames, args.repeat, args.noise, args.seed)]
    if args.sizes:
        rows += [time_scene(parse_size(s), SWEEP_FRAMES, args.repeat, args.noise, args.seed)
                 for s in SWEEP]

    print(f"{'size':>10} {'frames':>7} {'seconds':>8} {'fps':>7} {'ms/frame':>9}")
    for r in rows:
        print(f"{r['size']:>10} {r['frames']:>7} {r['seconds']:>8.2f} {r['fps']:>7.1f} "
              f"{r['ms_per_frame']:>9.2f}")

    target = next((r for r in rows if r["size"] == TARGET["size"]
                   and r["frames"] == TARGET["frames"]), None)
    if target is None:
        met = None
        print(f"target ({TARGET['frames']} frames at {TARGET['size']} < {TARGET['seconds']:g} s): "
              "not measured in this run")
    else:
        met = target["seconds"] < TARGET["seconds"]
        print(f"target ({TARGET['frames']} frames at {TARGET['size']} < {TARGET['seconds']:g} s): "
              f"{'MET' if met else 'NOT MET'} ({target['seconds']:.2f} s)")

    result = {
        "benchmark": "synth",
        "what": "Scene.frame(i) for every frame: clean render + noise model + ground truth, "
                "no disk I/O; includes scene setup",
        "target": dict(TARGET, met=met),
        "results": rows,
    }
    bench.write_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
