"""MobileNetV2 classification on the CPU: every runtime side by side, in one process.

    python benchmarks/classify.py                       # 5 rounds x 30 iterations, all variants
    python benchmarks/classify.py --no-compile          # skip torch.compile (its compile takes minutes here)
    python benchmarks/classify.py --rounds 3 --iters 20 --json /tmp/classify.json

Batch 1 at 224x224, 2 threads for every engine. Variants: eager FP32 NCHW (the baseline),
eager channels_last, ONNX Runtime FP32, ONNX Runtime INT8 (static QDQ), torch eager INT8 and
torch.compile. Timings are interleaved: each round runs every variant for ``--iters`` calls,
in a rotated order, so a burst of load from another process hits all variants alike instead
of ruining one; the median and p90 are over all calls of all rounds.

Top-1 agreement with eager FP32 is measured on a fixed set (see ``agreement_set``): the 7
bundled photos, synthetic street frames and random crops/flips of the photos. INT8
calibration uses different frames and crops (other seeds), never the agreement set itself.

Prints a table and writes JSON (default benchmarks/results/classify.json); ONNX files go to
build/models/. INT8 uses ``export.MOBILENET_V2_INT8`` (mean-minmax calibration, the first block
in float, float logits; see quantize_int8). Expected shape: ORT FP32 >= 2.5x eager FP32; ORT
INT8 >= 1.5x ORT FP32 with top-1 agreement >= 95% on this deliberately hard set (most items are
not ImageNet scenes, FP32's median top-1 probability is about 0.25). Misses are reported, not
tuned away.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers import assets, bench, export, models, runtimes  # noqa: E402

PHOTOS = list(models.PHOTOS)
EXPECT = {"ort_fp32_vs_eager": 2.5, "int8_vs_ort_fp32": 1.5, "int8_agreement": 0.95}
# A diagnostic, not the headline: agreement on the items where FP32 itself is sure of its
# answer, to separate "INT8 broke the model" from "INT8 flipped a near tie".
CONFIDENT = 0.5
photo_crops, scene_frames = models.photo_crops, models.scene_frames


def agreement_set(photos, synthetic: int, crops: int) -> list[tuple[str, str, torch.Tensor]]:
    items = [("photo", name, models.imagenet_batch(img)) for name, img in zip(PHOTOS, photos)]
    items += [("synthetic", f"scene seed 2 frame {5 * i}", models.imagenet_batch(f))
              for i, f in enumerate(scene_frames(synthetic, seed=2))]
    items += [("crop", f"crop seed 2 #{i}", models.imagenet_batch(c))
              for i, c in enumerate(photo_crops(photos, crops, seed=2))]
    return items


def calibration_set(photos, synthetic: int, crops: int) -> list[torch.Tensor]:
    """The workbook's MobileNetV2 calibration set (seed 1; ``photos`` are the bundled ones)."""
    return models.imagenet_calibration(synthetic, crops, seed=1)


def rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


def agreement(variants: dict, items) -> tuple[list[str], list[bool]]:
    """Top-1 agreement with eager FP32 on every item, untimed, stored in each variant's dict;
    returns each item's subset name and whether FP32 was confident on it."""
    labels = models.imagenet_categories()
    logits = {key: torch.cat([v["runtime"].run(x)[0] for _, _, x in items]) for key, v in variants.items()}
    reference = logits["eager_fp32"]
    ref_top1 = reference.argmax(1)
    ref_prob = reference.softmax(1).max(1).values
    confident = (ref_prob >= CONFIDENT).tolist()
    subsets = [kind for kind, _, _ in items]
    for key, v in variants.items():
        top1 = logits[key].argmax(1)
        same = (top1 == ref_top1).tolist()
        v["agreement"] = sum(same) / len(same)
        v["agreement_by_set"] = {s: f"{sum(a for a, k in zip(same, subsets) if k == s)}/{subsets.count(s)}"
                                 for s in dict.fromkeys(subsets)}
        v["agreement_confident"] = (sum(a for a, c in zip(same, confident) if c), sum(confident))
        v["max_abs_logit_diff"] = float((logits[key] - reference).abs().max())
        v["disagreements"] = [
            {"item": items[i][1], "fp32": labels[int(ref_top1[i])], "fp32_prob": round(float(ref_prob[i]), 3),
             "this": labels[int(top1[i])]}
            for i, ok in enumerate(same) if not ok]
    return subsets, confident


def print_table(rows: list[dict], skipped: dict, args, n_items: int, subsets: list[str]) -> None:
    print(f"\nMobileNetV2 224x224, batch 1, {args.threads} threads, {args.rounds} rounds x {args.iters} calls; "
          f"agreement set: {n_items} images ({', '.join(f'{s} {subsets.count(s)}' for s in dict.fromkeys(subsets))})")
    header = (f"{'variant':<20} {'median ms':>9} {'p90 ms':>8} {'speed-up':>8} {'top-1 agree':>11}  "
              f"{'photo/synth/crop':<17} {f'p>={CONFIDENT}':>7} {'max|dlogit|':>11} {'RSS+ MB':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        rss = "" if r["rss_added_mb"] is None else f"{r['rss_added_mb']:.0f}"
        print(f"{r['variant']:<20} {r['median_ms']:>9.2f} {r['p90_ms']:>8.2f} {r['speedup_vs_eager_fp32']:>7.2f}x "
              f"{100 * r['agreement']:>10.1f}%  {' '.join(r['agreement_by_set'].values()):<17} "
              f"{r[f'agreement_where_fp32_prob_ge_{CONFIDENT}']:>7} {r['max_abs_logit_diff']:>11.2e} {rss:>8}")
    for key, why in skipped.items():
        print(f"{key:<20} skipped: {why}")


def check_expectations(rows: list[dict]) -> dict:
    """Each EXPECT figure measured, against its expectation (reported, never asserted)."""
    by_key = {r["variant"]: r for r in rows}
    checks = {}
    if "ort_fp32" in by_key:
        value = by_key["ort_fp32"]["speedup_vs_eager_fp32"]
        checks["ort_fp32_vs_eager"] = {"value": value, "expected": EXPECT["ort_fp32_vs_eager"],
                                       "met": value >= EXPECT["ort_fp32_vs_eager"]}
    if "ort_fp32" in by_key and "ort_int8_qdq" in by_key:
        value = round(by_key["ort_fp32"]["median_ms"] / by_key["ort_int8_qdq"]["median_ms"], 2)
        checks["int8_vs_ort_fp32"] = {"value": value, "expected": EXPECT["int8_vs_ort_fp32"],
                                      "met": value >= EXPECT["int8_vs_ort_fp32"]}
        value = by_key["ort_int8_qdq"]["agreement"]
        checks["int8_agreement"] = {"value": value, "expected": EXPECT["int8_agreement"],
                                    "met": value >= EXPECT["int8_agreement"]}
    print()
    for name, c in checks.items():
        print(f"check {name:<18} {c['value']:>6} (expected >= {c['expected']}): {'MET' if c['met'] else 'NOT MET'}")
    return checks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=30, help="calls per variant per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per variant before round 1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--synthetic", type=int, default=25, help="synthetic frames in the agreement set")
    p.add_argument("--crops", type=int, default=25, help="photo crops/flips in the agreement set")
    p.add_argument("--calibration", type=int, default=24,
                   help="synthetic frames and crops each (other seeds) for INT8 calibration")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no-torch-int8", action="store_true", help="skip torch eager INT8")
    p.add_argument("--models", type=Path, default=ROOT / "build" / "models")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "classify.json")
    args = p.parse_args(argv)
    if min(args.rounds, args.iters, args.threads, args.calibration) < 1:
        p.error("--rounds, --iters, --threads and --calibration must be >= 1")

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()

    photos = [assets.load_image(name) for name in PHOTOS]
    items = agreement_set(photos, args.synthetic, args.crops)
    calibration = calibration_set(photos, args.calibration, args.calibration)
    timed_batch = items[0][2]  # chelsea; every variant times the same tensor

    build, skipped, variants = {}, {}, {}

    t = time.perf_counter()
    fp32_path = export.export_onnx(models.mobilenet_v2(), timed_batch, args.models / "mobilenet_v2_fp32.onnx",
                                   output_names=["logits"])
    build["export_onnx_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    int8_path = export.quantize_int8(fp32_path, args.models / "mobilenet_v2_int8_qdq.onnx", calibration,
                                     **export.MOBILENET_V2_INT8)
    build["quantize_int8_s"] = round(time.perf_counter() - t, 1)

    def add(key: str, make):
        """Build a runtime, warm it up, and note its build time and RSS growth."""
        rss, t0 = rss_mb(), time.perf_counter()
        try:
            runtime = make()
            for _ in range(args.warmup):
                runtime.run(timed_batch)
        except Exception as exc:  # a variant that cannot run here is reported, not fatal
            skipped[key] = f"{type(exc).__name__}: {exc}"
            print(f"skipped {key}: {skipped[key]}")
            return
        after = rss_mb()
        variants[key] = {"runtime": runtime, "build_s": round(time.perf_counter() - t0, 1),
                         "rss_added_mb": None if rss is None else round(after - rss, 1)}
        print(f"built {key:<18} {variants[key]['build_s']:>6.1f} s")

    ort_options = dict(intra_op_threads=args.threads, inter_op_threads=1)
    add("eager_fp32", lambda: runtimes.make_runtime("torch", model=models.mobilenet_v2()))
    add("eager_channels_last", lambda: runtimes.make_runtime("torch-channels-last", model=models.mobilenet_v2()))
    add("ort_fp32", lambda: runtimes.make_runtime("onnxruntime", onnx_path=fp32_path, **ort_options))
    add("ort_int8_qdq", lambda: runtimes.make_runtime("onnxruntime", onnx_path=int8_path, **ort_options))
    if args.no_torch_int8:
        skipped["torch_int8"] = "--no-torch-int8"
    else:
        add("torch_int8", lambda: runtimes.make_runtime(
            "torch-int8", model=export.torch_int8_mobilenet_v2(calibration)))
    if args.no_compile:
        skipped["torch_compile"] = "--no-compile"
    else:
        add("torch_compile", lambda: runtimes.make_runtime("torch-compile", model=models.mobilenet_v2()))
    if "eager_fp32" not in variants:
        raise RuntimeError(f"the eager FP32 baseline could not run: {skipped.get('eager_fp32')}")

    subsets, confident = agreement(variants, items)

    # Interleaved timing (bench.interleaved): the order rotates each round so no variant always
    # runs right after the same neighbour (cache and thread-pool wake-up effects). add() warmed up.
    keys = list(variants)
    samples = bench.interleaved({key: (lambda r=variants[key]["runtime"]: r.run(timed_batch)) for key in keys},
                                rounds=args.rounds, iters=args.iters, warmup=0)
    round_medians = {key: [round(float(np.median(samples[key][r * args.iters:(r + 1) * args.iters])), 2)
                           for r in range(args.rounds)] for key in keys}

    base = float(np.median(samples["eager_fp32"]))
    rows = []
    for key in keys:
        v = variants[key]
        median = float(np.median(samples[key]))
        rows.append({
            "variant": key, "runtime": v["runtime"].name, "median_ms": round(median, 2),
            "p90_ms": round(float(np.percentile(samples[key], 90)), 2),
            "round_medians_ms": round_medians[key], "speedup_vs_eager_fp32": round(base / median, 2),
            "agreement": round(v["agreement"], 3), "agreement_by_set": v["agreement_by_set"],
            f"agreement_where_fp32_prob_ge_{CONFIDENT}": "{}/{}".format(*v["agreement_confident"]),
            "max_abs_logit_diff": float(f"{v['max_abs_logit_diff']:.3g}"), "build_s": v["build_s"],
            "rss_added_mb": v["rss_added_mb"], "disagreements": v["disagreements"],
        })
        v["runtime"].close()

    print_table(rows, skipped, args, len(items), subsets)
    checks = check_expectations(rows)

    result = {
        "benchmark": "classify",
        "what": "MobileNetV2 (torchvision IMAGENET1K_V1 weights) classification latency on one "
                "preprocessed 1x3x224x224 float32 batch (chelsea), runtime.run() only; "
                "preprocessing and softmax are not timed",
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"batch": 1, "size": 224, "threads": args.threads, "rounds": args.rounds,
                     "iters_per_round": args.iters, "warmup": args.warmup,
                     "ort": "CPUExecutionProvider, intra_op_threads=threads, inter_op_threads=1, no spinning",
                     "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")},
        "agreement_set": {
            "size": len(items),
            "photos": f"{len(photos)} bundled photos, whole image: {', '.join(PHOTOS)}",
            "synthetic": f"{args.synthetic} noisy helpers.synth.Scene frames (640x480, seed 2, every 5th frame)",
            "crops": f"{args.crops} random crops (40-100% per side) of those photos, half mirrored (seed 2)",
            "reference": "top-1 of eager FP32 NCHW",
            "confident_subset": f"items where eager FP32's top-1 softmax probability >= {CONFIDENT} "
                                f"({sum(confident)} of {len(items)}); a diagnostic, the check uses the whole set",
        },
        "calibration_set": f"{args.calibration} synthetic frames (seed 1) + {args.calibration} photo crops "
                           f"(seed 1); disjoint from the agreement set, though crops share the 7 photos",
        "models": {key: dict(export.graph_summary(path), path=str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
                   for key, path in (("fp32", fp32_path), ("int8", int8_path))},
        "build": build,
        "notes": [
            "build_s of torch_compile includes compiling on the first call; Inductor caches compiled "
            "code on disk (/tmp/torchinductor_<user>), so a repeat run compiles much faster than the first",
            "rss_added_mb: resident memory growth while building and warming that variant, in the order "
            "listed; shared libraries loaded by the first variant of a kind count against it",
        ],
        "results": rows,
        "skipped": skipped,
        "checks": checks,
        "total_s": round(time.perf_counter() - started, 1),
    }
    bench.write_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
