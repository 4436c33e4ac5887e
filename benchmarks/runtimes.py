"""Every runtime and precision this machine has, side by side, for both networks of the workbook.

    python benchmarks/runtimes.py                    # CPU: eager, ONNX Runtime FP32 and INT8, 2 threads
    python benchmarks/runtimes.py --device cuda      # GPU: eager, torch.compile, CUDA graphs at batch 1 and 8
                                                     #      (+ TensorRT FP32/FP16/INT8 where installed)

Networks: the real pedestrian detector (models.pedestrian_detector, the TF SSDLite-MobileNetV2
port, 300x300) and MobileNetV2 (224x224), batch 1 on the CPU. Variants are interleaved round by
round, eager FP32 is the baseline in the same run. Drift against eager FP32 is reported next to
every latency (helpers.metrics): for the detector at the detection level on held-out frames of
OpenCV's vtest.avi (matched-box IoU, unmatched fraction, mAP@0.5 against FP32's own confident
boxes), calibrated on other frames of the clip (export.PEDESTRIAN_INT8); for MobileNetV2 top-1
agreement on the real photos (export.MOBILENET_V2_INT8). Without the clip, synthetic scenes
stand in and the JSON says so.

CPU targets: detector ORT FP32 <= 10 ms, ORT INT8 <= 6 ms with drift PASS; MobileNetV2
ORT FP32 >= 2.5x eager, ORT INT8 >= 1.5x ORT FP32. The JSON records the CPU model and the
load average before and after: run it on a quiet machine. PyTorch's OpenMP workers sleep between
operations here (OMP_WAIT_POLICY=PASSIVE, as in notebooks 05-07 and the other benchmarks): their
default busy-wait made eager 4-20x slower on a loaded 2-core machine, and costs ONNX Runtime
~25% when it runs next to eager (INT8 9.6 -> 12.0 ms). On a nearly idle machine PASSIVE costs eager
itself instead (32 -> 52 ms, load 2): run it once more with OMP_WAIT_POLICY=ACTIVE (libgomp's
default) and --json benchmarks/results/runtimes_active.json for eager as PyTorch runs it out of the
box. The JSON records which policy ran.

Every runtime comes from the runtime matrix (helpers.matrix.build), so its ONNX and INT8 files
are built once into build/matrix, named by a digest of the weights, the network code, the recipe,
the calibration frames and the tool versions: a changed recipe never reuses an old file.

Writes benchmarks/results/runtimes.json (or --json); --quick proves it runs (no numbers).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp: see the docstring

import torch  # noqa: E402

from helpers import assets, bench, detect, export, matrix, metrics, models  # noqa: E402

PHOTOS = list(models.PHOTOS)
DETECTOR_TARGETS_MS = {"ort fp32": 10.0, "ort int8": 6.0}
# The runtime matrix's kinds per device, and the names this benchmark's JSON has always used.
KINDS = {"cpu": ("eager", "ort-fp32", "ort-int8"),
         "cuda": ("eager", "compile", "cuda-graphs", "trt-fp32", "trt-fp16", "trt-int8")}
NAMES = {"eager": "eager", "ort-fp32": "ort fp32", "ort-int8": "ort int8", "compile": "compile",
         "cuda-graphs": "compile+cudagraphs", "trt-fp32": "tensorrt fp32", "trt-fp16": "tensorrt fp16",
         "trt-int8": "tensorrt int8"}


def networks():
    det = models.pedestrian_detector()
    frames = export.pedestrian_frames()
    print(f"detector frames: {frames.source}")
    pre = detect.Detector(det).preprocess
    cls = models.mobilenet_v2()
    cls_inputs = models.imagenet_batch([assets.load_image(n) for n in PHOTOS])
    return {
        "pedestrian_detector": dict(model=det, example=torch.zeros(1, 3, 300, 300), frames=frames,
                                    calibration=export.detector_calibration(det, frames.calibration),
                                    x=pre(frames.held_out[0])[0], outputs=matrix.PEDESTRIAN_OUTPUTS,
                                    recipe=export.PEDESTRIAN_INT8),
        "mobilenet_v2": dict(model=cls, example=torch.zeros(1, 3, 224, 224), calibration=models.imagenet_calibration(),
                             x=cls_inputs[:1], inputs=cls_inputs, outputs=["logits"], recipe=export.MOBILENET_V2_INT8),
    }


def judge(name, net, variants, precisions, device):
    """Drift of every variant against eager FP32: (verdict, detail, figures) per variant."""
    out = {}
    if "frames" in net:
        held_out = net["frames"].held_out
        dets = {k: detect.Detector(net["model"], runtime=rt, device=rt.device).detect for k, rt in variants.items()}
        reference = [dets["eager"]([f])[0] for f in held_out]
        for k in variants:
            r = metrics.detection_drift(reference, [dets[k]([f])[0] for f in held_out], precisions.get(k, "fp32"),
                                        gt_score=0.5)
            out[k] = (r["verdict"], f"box IoU {r['mean_box_iou']:.3f}, unmatched {r['unmatched_frac']:.1%}, "
                                    f"mAP@0.5 drop {r['map50_drop']:+.3f}, max |dscore| {r['max_score_diff']:.2g}",
                      {f: r[f] for f in ("mean_box_iou", "unmatched_frac", "map50_drop", "max_score_diff", "boxes")})
        return out
    inputs = net["inputs"].to(device)
    reference = variants["eager"].run(inputs)[0].cpu().numpy()
    for k, rt in variants.items():
        r = metrics.classification_drift(reference, rt.run(inputs.to(rt.device))[0].float().cpu().numpy(),
                                         precisions.get(k, "fp32"))
        out[k] = (r["verdict"], f"top-1 {r['top1']:.0%} of {r['n']} photos, max |dlogit| {r['max_abs_logit']:.2g}",
                  {f: r[f] for f in ("top1", "max_abs_logit")})
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--only", choices=("pedestrian_detector", "mobilenet_v2"), help="one network only")
    p.add_argument("--cache", default=str(ROOT / "build" / "matrix"), help="the runtime matrix's artifact cache")
    p.add_argument("--quick", action="store_true", help="1 round of 2 calls: proves it runs, no numbers")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "runtimes.json"))
    args = p.parse_args(argv)
    if args.quick:  # never overwrites the committed results
        args.rounds, args.iters = 1, 2
        if args.json == p.get_default("json"):
            args.json = str(ROOT / "build" / "bench_quick" / "runtimes.json")
    torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    cuda = args.device.startswith("cuda")
    results, sources = {}, {}
    for name, net in networks().items():
        if args.only and name != args.only:
            continue
        # Every runtime from the matrix: built once, its files cached by what they depend on.
        m = matrix.build(net["model"], net["example"], KINDS["cuda" if cuda else "cpu"], device=args.device,
                         cache_dir=args.cache, calibration=net["calibration"], recipe=net["recipe"],
                         output_names=net["outputs"], threads=args.threads, max_batch=8 if cuda else 1)
        variants = {NAMES[k]: rt for k, rt in m.items()}
        precisions = {NAMES[k]: m.precision(k) for k in m}
        unavailable = {NAMES[s.kind]: f"unavailable: {s.reason}" for s in m.skipped}
        for line in m.skipped:
            print(line)
        batches = (1, 8) if cuda else (1,)
        for batch in batches:
            x = net["x"].expand(batch, -1, -1, -1).contiguous().to(args.device)

            def call(rt, x=x):
                out = rt.run(x.to(rt.device))
                if rt.device.type == "cuda":
                    torch.cuda.synchronize()
                return out

            samples = bench.interleaved({k: (lambda r=r: call(r)) for k, r in variants.items()},
                                        rounds=args.rounds, iters=args.iters)
            for k in variants:
                results.setdefault(name, {}).setdefault(f"batch {batch}", {})[k] = bench.stats(samples[k])
        for k, (verdict, detail, figures) in judge(name, net, variants, precisions, args.device).items():
            for batch in batches:
                results[name][f"batch {batch}"][k].update(drift=verdict, drift_detail=detail, drift_figures=figures)
        # Throughput against batch size on the fastest FP32 runtime (stops at out-of-memory).
        sweep_rt = variants.get("ort fp32") or variants.get("compile") or variants["eager"]
        sweep = bench.batch_sweep(lambda n: call(sweep_rt, net["x"].expand(n, -1, -1, -1).contiguous().to(args.device)),
                                  batches=(1, 2, 4, 8), iters=5)
        results[name]["batch_sweep"] = {"runtime": sweep_rt.name, **sweep}
        if unavailable:
            results[name]["unavailable"] = unavailable
        int8 = m.artifacts.get("int8-onnxruntime") or m.artifacts.get("int8-tensorrt")
        if int8:
            results[name]["int8_recipe"] = export.graph_summary(int8)["metadata"].get("evw.int8_recipe")
        if "frames" in net:
            sources[name] = {"frames": net["frames"].source, "real_video": net["frames"].real}
        m.close()

    print(f"\nms per batch (device {args.device}, {args.threads} CPU threads), drift vs eager FP32")
    for name, per_batch in results.items():
        for batch, rows in per_batch.items():
            if not batch.startswith("batch "):
                continue
            base = rows["eager"]["median_ms"]
            for k, r in rows.items():
                print(f"{name:<20}{batch:<9}{k:<20}{r['median_ms']:>9.2f}{base / r['median_ms']:>7.2f}x  "
                      f"{r['drift']:<5}{r['drift_detail']}")
    checks = {}
    if not cuda:
        rows = results.get("pedestrian_detector", {}).get("batch 1")
        if rows:
            for k, limit in DETECTOR_TARGETS_MS.items():
                verdict_ok = rows[k]["drift"] == "PASS"
                checks[f"pedestrian_detector {k} <= {limit:g} ms, drift PASS"] = rows[k]["median_ms"] <= limit and verdict_ok
        rows = results.get("mobilenet_v2", {}).get("batch 1")
        if rows:
            checks["mobilenet_v2 ort fp32 >= 2.5x eager"] = rows["eager"]["median_ms"] / rows["ort fp32"]["median_ms"] >= 2.5
            checks["mobilenet_v2 ort int8 >= 1.5x ort fp32"] = \
                rows["ort fp32"]["median_ms"] / rows["ort int8"]["median_ms"] >= 1.5
        for k, ok in checks.items():
            print(f"{'PASS' if ok else 'MISS'}  {k}")
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(f"CPU {export.cpu_summary()['model']}; load average before {load_before}, after {load_after}")
    bench.write_results(args.json, {"benchmark": "runtimes", "device": args.device, "threads": args.threads,
                                    "results": results, "targets": checks, "sources": sources,
                                    "cpu": export.cpu_summary(), "load_average_before": load_before,
                                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                                    "load_average_after": load_after})
    return results


if __name__ == "__main__":
    main()
