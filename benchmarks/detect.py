"""The bundled detector per frame, split by stage, and postprocess + tracking under load.

    python benchmarks/detect.py                        # CPU, 2 threads, torch and ONNX Runtime
    python benchmarks/detect.py --device cuda          # on a GPU machine (adds CUDA timings)
    python benchmarks/detect.py --frames 60 --json /tmp/detect.json

Part 1, stages: 640x480 synthetic frames (noise 0.3) through preprocess -> network ->
postprocess -> tracking, for each runtime, interleaved round by round so machine noise hits
all alike. On CUDA every stage ends with a synchronize, so its time is its own.

Part 2, crowding: postprocess + tracking alone with 10, 25 and 50 objects per frame, built
from the detector's own raw outputs on a crowded scene plus shifted copies of its strongest
detections (the network cannot be asked for exactly 50 objects). Target: <= 3 ms per frame
with 50 objects on the CPU.

Prints tables and writes JSON (default benchmarks/results/detect.json).
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

from helpers import bench, detect, export, models, synth  # noqa: E402
from helpers.preprocess import Letterbox  # noqa: E402
from helpers.track import Tracker  # noqa: E402

TARGET_POST_TRACK_MS = 3.0


def stage_times(detector: detect.Detector, frames, tracker: Tracker, rounds: int) -> dict:
    samples = {"preprocess": [], "network": [], "postprocess": [], "tracking": [], "total": []}
    for _ in range(rounds):
        tracker.reset()
        for frame in frames:
            dets = detector(frame, score_thresh=tracker.low_score)
            start = time.perf_counter()
            tracker.update(dets)
            tracking = 1e3 * (time.perf_counter() - start)
            t = detector.times
            for key, value in (("preprocess", t.preprocess), ("network", t.network),
                               ("postprocess", t.postprocess), ("tracking", tracking)):
                samples[key].append(value)
            samples["total"].append(t.preprocess + t.network + t.postprocess + tracking)
    return {k: bench.stats(v) for k, v in samples.items()}


def crowded_raw(model, spec, objects: int, seed: int = 0):
    """Raw outputs whose postprocess yields about ``objects`` detections per frame: the
    network's outputs on a busy scene, with its best anchors' logits copied onto anchors at
    other positions of the same feature map (so NMS cannot merge them)."""
    scene = synth.Scene(size=(640, 480), seed=seed, density=3.0)
    frame = scene.frame(100).clean
    batch, transforms = detect.Detector(model).preprocess(frame)
    with torch.no_grad():
        rel, logits = detect.raw_network(model)(batch)
    probs = logits.softmax(-1)[0, :, 1:].max(-1).values
    rng = np.random.default_rng(seed)
    best = probs.argsort(descending=True)[:8]  # the strongest anchors: real, confident objects
    # The 20x20 map's anchors come first, 6 per cell: copy the best anchors' outputs onto other
    # cells until the frame holds `objects` confident boxes (copies land in distinct cells, so
    # NMS keeps them apart; a few may overlap the scene's own objects).
    first_map = 20 * 20 * 6
    post = detect.Postprocess(detect.DetectorSpec.from_ssd(model, "x", model.labels))
    cells = rng.permutation(np.arange(0, first_map, 6))
    k = 0
    while len([s for s in post((rel, logits), transforms)[0].scores if s >= 0.5]) < objects and k < len(cells):
        src = int(best[k % len(best)])
        dst = int(cells[k]) + src % 6
        logits[0, dst], rel[0, dst] = logits[0, src], rel[0, src]
        k += 1
    return (rel, logits), transforms


def crowding(model, spec, rounds: int, iters: int) -> dict:
    post = detect.Postprocess(spec)
    out = {}
    for objects in (10, 25, 50):
        raw, transforms = crowded_raw(model, spec, objects)
        tracker = Tracker()
        # Feed the same frame repeatedly, jittered, so tracks exist and are matched each time.
        rng = np.random.default_rng(1)

        def step():
            dets = post(raw, transforms, score_thresh=tracker.low_score)[0]
            dets.boxes += rng.normal(0, 1.0, dets.boxes.shape)
            tracker.update(dets)
            return dets

        found = len([s for s in step().scores if s >= 0.5])
        post_ms = bench.interleaved({"postprocess": lambda: post(raw, transforms, tracker.low_score)},
                                    rounds=rounds, iters=iters)["postprocess"]
        both_ms = bench.interleaved({"both": step}, rounds=rounds, iters=iters)["both"]
        out[objects] = {"objects_over_0.5": found, "postprocess": bench.stats(post_ms),
                        "postprocess_plus_tracking": bench.stats(both_ms),
                        "tracking": round(bench.stats(both_ms)["median_ms"] - bench.stats(post_ms)["median_ms"], 3)}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime variant")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "detect.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = models.synth_detector(args.device)
    spec = detect.DetectorSpec.from_ssd(model, models.SYNTH_DETECTOR_NAME, model.labels)
    scene = synth.Scene(size=(640, 480), seed=101, noise=0.3)
    frames = [scene.frame(i).noisy for i in range(args.frames)]

    detectors = {"torch": detect.Detector(model, runtime="torch", spec=spec)}
    if not args.no_onnx:
        path = ROOT / "build" / "models" / f"{models.SYNTH_DETECTOR_NAME}.onnx"
        export.export_onnx(detect.raw_network(model).cpu(), torch.zeros(1, 3, 320, 320), path,
                           output_names=["bbox_regression", "cls_logits"])
        model.to(args.device)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if args.device.startswith("cuda") else None
        try:
            detectors["onnxruntime"] = detect.Detector(
                model, runtime="onnxruntime", spec=spec, onnx_path=path, providers=providers,
                intra_op_threads=args.threads)
        except RuntimeError as exc:
            print(f"onnxruntime skipped: {exc}")

    stages = {}
    for name, det in detectors.items():
        for frame in frames[:3]:
            det(frame)  # warm-up
    for r in range(args.rounds):  # interleaved: one pass of every runtime per round
        for name in list(detectors)[r % len(detectors):] + list(detectors)[:r % len(detectors)]:
            got = stage_times(detectors[name], frames, Tracker(), rounds=1)
            stages.setdefault(name, []).append(got)
    merged = {name: {stage: {k: float(np.median([run[stage][k] for run in runs])) for k in runs[0][stage]}
                     for stage in runs[0]} for name, runs in stages.items()}

    print(f"\nPer-frame latency by stage, ms (median of rounds' medians; {args.frames} frames 640x480, "
          f"device {args.device}, {args.threads} threads)")
    print(f"{'runtime':<14}{'preprocess':>12}{'network':>10}{'postproc':>10}{'tracking':>10}{'total':>9}{'fps':>7}")
    for name, s in merged.items():
        total = s["total"]["median_ms"]
        print(f"{name:<14}{s['preprocess']['median_ms']:>12.2f}{s['network']['median_ms']:>10.2f}"
              f"{s['postprocess']['median_ms']:>10.2f}{s['tracking']['median_ms']:>10.2f}{total:>9.2f}"
              f"{1e3 / total:>7.1f}")

    crowd = crowding(model, spec, args.rounds, args.iters)
    print(f"\nPostprocess + tracking with N objects per frame (target <= {TARGET_POST_TRACK_MS} ms at 50)")
    print(f"{'objects':>8}{'found':>7}{'postproc':>10}{'post+track':>12}{'p90':>8}{'verdict':>9}")
    for n, c in crowd.items():
        both = c["postprocess_plus_tracking"]
        verdict = "PASS" if n != 50 or both["median_ms"] <= TARGET_POST_TRACK_MS else "MISS"
        print(f"{n:>8}{c['objects_over_0.5']:>7}{c['postprocess']['median_ms']:>10.2f}"
              f"{both['median_ms']:>12.2f}{both['p90_ms']:>8.2f}{verdict:>9}")

    payload = {"benchmark": "detect", "device": args.device, "threads": args.threads,
               "frames": args.frames, "detector": models.SYNTH_DETECTOR_NAME,
               "stages": merged, "crowding": {str(k): v for k, v in crowd.items()},
               "target_post_track_ms_at_50": TARGET_POST_TRACK_MS,
               "met": crowd[50]["postprocess_plus_tracking"]["median_ms"] <= TARGET_POST_TRACK_MS}
    bench.write_results(args.json, payload)
    for det in detectors.values():
        det.close()
    return payload


if __name__ == "__main__":
    main()
