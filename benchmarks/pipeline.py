"""The full pipeline at 640x480: synchronous against overlapped, and how many streams fit.

    python benchmarks/pipeline.py                       # best CPU runtime (ONNX Runtime), TNR + tracking on
    python benchmarks/pipeline.py --runtime torch       # eager PyTorch instead
    python benchmarks/pipeline.py --device cuda         # on a GPU machine

Part 1: a noisy synthetic 640x480 source, TNR on, the bundled detector, tracking and drawing
on, run sync, then overlapped, then sync again and overlapped again (the repeat shows the
run-to-run spread on a shared machine). Reports fps, per-stage p50/p95/p99 and the
real-time verdict at 30 and 15 fps. Targets here: overlapped >= 15 fps and >= 1.3x sync.

Part 2: N concurrent synthetic 1280x720 streams, one frame of each batched into one network
call (preprocess and postprocess per stream). Reports the largest N whose per-stream rate
stays >= 30 fps (and >= 15 fps). Frames are rendered before timing: this measures the
pipeline, not the scene generator.

Writes benchmarks/results/pipeline.json (or --json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import bench, detect, export, models, pipeline, synth, tnr  # noqa: E402
from helpers.track import Tracker  # noqa: E402


def make_detector(runtime: str, device: str, threads: int) -> detect.Detector:
    model = models.synth_detector(device)
    if runtime == "onnxruntime":
        path = ROOT / "build" / "models" / f"{models.SYNTH_DETECTOR_NAME}.onnx"
        if not path.is_file():
            export.export_onnx(detect.raw_network(model).cpu(), torch.zeros(1, 3, 320, 320), path,
                               output_names=["bbox_regression", "cls_logits"])
            model.to(device)
        return detect.Detector(model, runtime="onnxruntime", onnx_path=path, intra_op_threads=threads)
    return detect.Detector(model, runtime=runtime)


def source(length: int, seed: int = 101):
    """A live-like synthetic source: each frame is rendered when it is asked for."""
    scene = synth.Scene(size=(640, 480), seed=seed, noise=0.4, length=length)
    return (scene.frame(i).noisy for i in range(length))


def multistream(detector: detect.Detector, max_streams: int, frames_per_stream: int = 12) -> dict:
    scene = synth.Scene(size=(1280, 720), seed=55, noise=0.3, length=frames_per_stream)
    frames = [scene.frame(i).noisy for i in range(frames_per_stream)]
    rates = {}
    for n in range(1, max_streams + 1):
        trackers = [Tracker() for _ in range(n)]
        start = time.perf_counter()
        for i in range(frames_per_stream):
            batch_frames = [frames[(i + k) % len(frames)] for k in range(n)]
            dets = detector.detect(batch_frames, score_thresh=0.1)
            for t, d in zip(trackers, dets):
                t.update(d)
        per_stream_fps = frames_per_stream / (time.perf_counter() - start)
        rates[n] = round(per_stream_fps, 2)
        print(f"  {n} streams of 1280x720: {per_stream_fps:.1f} fps each", flush=True)
        if per_stream_fps < 15:
            break
    best30 = max([n for n, r in rates.items() if r >= 30], default=0)
    best15 = max([n for n, r in rates.items() if r >= 15], default=0)
    return {"per_stream_fps": rates, "max_streams_at_30fps": best30, "max_streams_at_15fps": best15}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", default="onnxruntime")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--max-streams", type=int, default=8)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        detector = make_detector(args.runtime, args.device, args.threads)
    except (RuntimeError, ValueError) as exc:
        payload = {"benchmark": "pipeline", "runtime": args.runtime, "unavailable": str(exc)}
        print(f"runtime {args.runtime} unavailable: {exc}")
        bench.write_results(args.json, payload)
        return payload
    pipe = pipeline.Pipeline(detector, denoiser=tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75,
                                                                     device=args.device),
                             tracker=Tracker())
    pipe.run(source(10), "sync")  # warm-up: thread pools, first allocations
    runs = []
    for label, mode in (("sync #1", "sync"), ("overlapped #1", "overlapped"),
                        ("sync #2", "sync"), ("overlapped #2", "overlapped")):
        result = pipe.run(source(args.frames), mode)
        runs.append((label, result))
        print(f"{label:<15}{result.fps:>7.1f} fps  ({result.frames} frames, {result.wall_s:.1f} s)", flush=True)

    best = {m: max((r for lbl, r in runs if r.mode == m), key=lambda r: r.fps) for m in ("sync", "overlapped")}
    gain = best["overlapped"].fps / best["sync"].fps
    print("\nper stage, overlapped run (ms): p50 / p95 / p99")
    for stage, values in best["overlapped"].samples.items():
        print(f"  {stage:<12}{np.percentile(values, 50):>8.2f}{np.percentile(values, 95):>8.2f}"
              f"{np.percentile(values, 99):>8.2f}")
    for fps in (30, 15):
        print(f"verdict at {fps} fps (overlapped): {best['overlapped'].verdict(fps)['text']}")
        print(f"verdict at {fps} fps (sync):       {best['sync'].verdict(fps)['text']}")
    print(f"overlapped / sync throughput: {gain:.2f}x (target >= 1.3x); "
          f"overlapped {best['overlapped'].fps:.1f} fps (target >= 15)")

    print("\nmulti-stream, batched:")
    streams = multistream(detector, args.max_streams)
    payload = {"benchmark": "pipeline", "runtime": args.runtime, "device": args.device, "threads": args.threads,
               "size": [640, 480], "tnr": True, "tracking": True,
               "runs": [{"label": lbl, **r.to_dict(30)} for lbl, r in runs],
               "overlapped_over_sync": round(gain, 3),
               "targets": {"overlapped_fps>=15": best["overlapped"].fps >= 15, "gain>=1.3": gain >= 1.3},
               "multistream_1280x720": streams}
    bench.write_results(args.json, payload)
    detector.close()
    return payload


if __name__ == "__main__":
    main()
