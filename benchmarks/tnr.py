"""Temporal noise reduction speed per backend and frame size, with the GPU's bandwidth floor.

    python benchmarks/tnr.py                   # CPU: torch (2 threads) and OpenCV NLM at 480p
    python benchmarks/tnr.py --device cuda     # adds torch CUDA (compiled) and VPI if present

Frames are noisy synthetic street frames (noise 0.6), cycled so the filter sees real
motion. CPU target: torch <= 15 ms per frame at 1280x720 on 2 cores.

On CUDA the floor is what the filter must move: it reads the uint8 frame and the float32
previous output and writes the float32 output and the uint8 result, i.e. 3 + 12 + 12 + 3 =
30 bytes per pixel (plus the luma planes, 8 more). The copy bandwidth is measured in the same
run with a device-to-device copy of a 256 MB buffer; the ratio time / (bytes / bandwidth)
says how far from memory-bound the filter is (target: within 5x at 1080p).

Writes benchmarks/results/tnr.json (or --json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import bench, synth, tnr  # noqa: E402

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
BYTES_PER_PIXEL = 3 + 12 + 12 + 3 + 8


def frames_for(size, count: int = 8):
    scene = synth.Scene(size=size, seed=5, noise=0.6, length=count)
    return [scene.frame(i).noisy for i in range(count)]


def time_backend(denoiser, frames, iters: int, device: str) -> list[float]:
    inputs = [torch.from_numpy(f).to(device) for f in frames] if device != "cpu" or \
        denoiser.backend != "opencv" else frames
    for f in inputs[:3]:
        denoiser(f)
    samples = []
    for k in range(iters):
        f = inputs[k % len(inputs)]
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            denoiser(f)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            denoiser(f)
            samples.append(1e3 * (time.perf_counter() - t))
    return samples


def copy_bandwidth_gbs(device: str) -> float:
    a = torch.empty(256 << 20, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        b.copy_(a)
    end.record()
    end.synchronize()
    # A copy reads and writes every byte.
    return 2 * 20 * a.numel() / (start.elapsed_time(end) / 1e3) / 1e9


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tnr.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, results = [], {}
    cuda = args.device.startswith("cuda")
    bandwidth = copy_bandwidth_gbs(args.device) if cuda else None
    for name, size in SIZES.items():
        frames = frames_for(size)
        variants = {"torch cpu": (tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75), "cpu")}
        if name == "640x480":
            variants["opencv nlm (cpu)"] = (tnr.TemporalDenoiser("opencv", "outdoor_low_light", 0.75), "cpu")
        if cuda:
            variants["torch cuda (compiled)"] = (tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75,
                                                                     device=args.device), args.device)
            variants["torch cuda (eager)"] = (tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75,
                                                                  device=args.device, compile=False), args.device)
            if not tnr.available_backends()["vpi"]:
                variants["vpi cuda"] = (tnr.TemporalDenoiser("vpi", "outdoor_low_light", 0.75, device=args.device),
                                        args.device)
        for label, (den, device) in variants.items():
            iters = 5 if label.startswith("opencv") else args.iters
            s = bench.stats(time_backend(den, frames, iters, device))
            entry = {"size": name, "backend": label, **s}
            if device.startswith("cuda") and bandwidth:
                floor_ms = size[0] * size[1] * BYTES_PER_PIXEL / (bandwidth * 1e9) * 1e3
                entry.update(floor_ms=round(floor_ms, 4), ratio_to_floor=round(s["median_ms"] / floor_ms, 2))
            results.setdefault(name, []).append(entry)
            rows.append((name, label, s["median_ms"], s["p90_ms"], entry.get("ratio_to_floor", "")))
    print(f"\nTNR ms per frame (device {args.device}, {args.threads} CPU threads"
          + (f", copy bandwidth {bandwidth:.0f} GB/s" if bandwidth else "") + ")")
    print(f"{'size':<11}{'backend':<24}{'median':>9}{'p90':>9}{'x floor':>9}")
    for r in rows:
        print(f"{r[0]:<11}{r[1]:<24}{r[2]:>9.2f}{r[3]:>9.2f}{str(r[4]):>9}")
    cpu720 = next(e for e in results["1280x720"] if e["backend"] == "torch cpu")["median_ms"]
    print(f"torch CPU at 720p: {cpu720:.2f} ms (target <= 15 ms): {'PASS' if cpu720 <= 15 else 'MISS'}")
    payload = {"benchmark": "tnr", "device": args.device, "threads": args.threads,
               "copy_bandwidth_gbs": bandwidth, "results": results,
               "torch_cpu_720p_ms": cpu720, "target_cpu_720p_ms": 15.0}
    bench.write_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
