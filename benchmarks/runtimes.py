"""Every runtime and precision this machine has, side by side, for both networks of the workbook.

    python benchmarks/runtimes.py                    # CPU: eager, ONNX Runtime FP32 and INT8, 2 threads
    python benchmarks/runtimes.py --device cuda      # GPU: eager, torch.compile, CUDA graphs at batch 1 and 8
                                                     #      (+ TensorRT FP32/FP16/INT8 where installed)

Networks: the bundled detector's raw network (320x320) and MobileNetV2 (224x224), batch 1 on
the CPU. Variants are interleaved round by round. Drift against eager FP32 is reported next to
every latency (helpers.metrics: classification drift on the real photos, max score difference
for the detector). INT8 is export.MOBILENET_V2_INT8 for both (mean-minmax calibration, the first
block in float, float outputs). CPU targets: ORT FP32 >= 2.5x eager, ORT INT8 >= 1.5x ORT FP32.
The JSON records the load average: run it on a quiet machine.

Writes benchmarks/results/runtimes.json (or --json).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import assets, bench, detect, export, metrics, models, runtimes, synth, trt  # noqa: E402

MODELS = ROOT / "build" / "models"
PHOTOS = list(models.PHOTOS)


def networks():
    det = models.synth_detector()
    pre = detect.Detector(det).preprocess
    scene = synth.Scene(size=(640, 480), seed=7, noise=0.3, length=200)
    det_calib = [pre(scene.frame(i).noisy)[0] for i in range(0, 200, 8)]
    det_inputs = torch.cat([pre(synth.Scene(size=(640, 480), seed=102, noise=0.3).frame(i).noisy)[0]
                            for i in range(0, 300, 30)])
    cls = models.mobilenet_v2()
    cls_calib = models.imagenet_calibration()  # frames and crops of other seeds than the photos judged
    cls_inputs = models.imagenet_batch([assets.load_image(n) for n in PHOTOS])
    return {
        "detector": (detect.raw_network(det), torch.zeros(1, 3, 320, 320), det_calib, det_inputs,
                     ["bbox_regression", "cls_logits"]),
        "mobilenet_v2": (cls, torch.zeros(1, 3, 224, 224), cls_calib, cls_inputs, ["logits"]),
    }


def drift(name, reference, outputs, precision):
    if name == "mobilenet_v2":
        r = metrics.classification_drift(reference[0].cpu().numpy(), outputs[0].float().cpu().numpy(), precision)
        return r["verdict"], (f"top-1 {r['top1']:.0%} of {r['n']} photos, max |dlogit| {r['max_abs_logit']:.2g}")
    diff = float((outputs[1].float().softmax(-1).cpu() - reference[1].softmax(-1).cpu()).abs().max())
    tol = {"fp32": 1e-3, "fp16": 2e-2, "int8": 0.15}[precision]
    return ("PASS" if diff <= tol else "FAIL"), f"max |dscore| {diff:.2g} (tol {tol})"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "runtimes.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    cuda = args.device.startswith("cuda")
    results = {}
    for name, (model, example, calib, inputs, outs) in networks().items():
        fp32 = export.export_onnx(model, example, MODELS / f"{name}_bench_fp32.onnx", output_names=outs)
        # Both networks are MobileNetV2 inside: the same INT8 recipe (see export.quantize_int8).
        int8 = export.quantize_int8(fp32, MODELS / f"{name}_bench_int8_qdq.onnx", calib, **export.MOBILENET_V2_INT8)
        variants, precisions, unavailable = {}, {}, {}
        if cuda:
            gpu = model.to(args.device)
            variants["eager"] = runtimes.TorchEager(gpu)
            variants["compile"] = runtimes.TorchCompile(gpu)
            variants["compile+cudagraphs"] = runtimes.TorchCompile(gpu, mode="reduce-overhead")
            if trt.available():
                unavailable["tensorrt"] = f"unavailable: {trt.available()}"
            else:
                # TensorRT takes symmetric signed INT8 only: its own QDQ file.
                int8_trt = export.quantize_int8(fp32, MODELS / f"{name}_bench_int8_qdq_tensorrt.onnx", calib,
                                                **export.MOBILENET_V2_INT8, target="tensorrt")
                for prec, path in (("fp32", fp32), ("fp16", fp32), ("int8", int8_trt)):
                    try:
                        variants[f"tensorrt {prec}"] = runtimes.make_runtime("tensorrt", onnx_path=path, precision=prec,
                                                                             max_batch=8)
                        precisions[f"tensorrt {prec}"] = prec
                    except ValueError as exc:
                        print(f"tensorrt {prec} skipped: {exc}")
        else:
            variants["eager"] = runtimes.TorchEager(model)
            variants["ort fp32"] = runtimes.OnnxRuntime(fp32, intra_op_threads=args.threads)
            variants["ort int8"] = runtimes.OnnxRuntime(int8, intra_op_threads=args.threads)
            precisions["ort int8"] = "int8"
        batches = (1, 8) if cuda else (1,)
        for batch in batches:
            x = example.new_zeros(batch, *example.shape[1:]).copy_(inputs[:1].expand(batch, -1, -1, -1)).to(args.device)

            def call(rt, x=x):
                out = rt.run(x.to(rt.device))
                if rt.device.type == "cuda":
                    torch.cuda.synchronize()
                return out

            samples = bench.interleaved({k: (lambda r=r: call(r)) for k, r in variants.items()},
                                        rounds=args.rounds, iters=args.iters)
            reference = variants["eager"].run(inputs.to(args.device))
            for k, rt in variants.items():
                verdict, detail = drift(name, reference, rt.run(inputs.to(rt.device)), precisions.get(k, "fp32"))
                results.setdefault(name, {}).setdefault(f"batch {batch}", {})[k] = {
                    **bench.stats(samples[k]), "drift": verdict, "drift_detail": detail}
        # Throughput against batch size on the fastest FP32 runtime (stops at out-of-memory).
        sweep_rt = variants.get("ort fp32") or variants.get("compile") or variants["eager"]
        sweep = bench.batch_sweep(lambda n: call(sweep_rt, inputs[:1].expand(n, -1, -1, -1).contiguous().to(args.device)),
                                  batches=(1, 2, 4, 8), iters=5)
        results[name]["batch_sweep"] = {"runtime": sweep_rt.name if hasattr(sweep_rt, "name") else "eager", **sweep}
        if unavailable:
            results[name]["unavailable"] = unavailable
        results[name]["int8_recipe"] = export.graph_summary(int8)["metadata"].get("evw.int8_recipe")
        for rt in variants.values():
            rt.close()

    print(f"\nms per batch (device {args.device}, {args.threads} CPU threads), drift vs eager FP32")
    for name, per_batch in results.items():
        for batch, rows in per_batch.items():
            if not batch.startswith("batch "):
                continue
            base = rows["eager"]["median_ms"]
            for k, r in rows.items():
                print(f"{name:<14}{batch:<9}{k:<22}{r['median_ms']:>9.2f}{base / r['median_ms']:>7.2f}x  "
                      f"{r['drift']:<5}{r['drift_detail']}")
    checks = {}
    if not cuda:
        for name, per_batch in results.items():
            rows = per_batch["batch 1"]
            checks[f"{name} ort fp32 >= 2.5x eager"] = rows["eager"]["median_ms"] / rows["ort fp32"]["median_ms"] >= 2.5
            checks[f"{name} ort int8 >= 1.5x ort fp32"] = rows["ort fp32"]["median_ms"] / rows["ort int8"]["median_ms"] >= 1.5
        for k, ok in checks.items():
            print(f"{'PASS' if ok else 'MISS'}  {k}")
    bench.write_results(args.json, {"benchmark": "runtimes", "device": args.device, "threads": args.threads,
                                    "results": results, "targets": checks,
                                    "load_average_before": load_before})
    return results


if __name__ == "__main__":
    main()
