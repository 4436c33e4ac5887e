"""Does temporal noise reduction make detection and tracking better? Measured, not shown.

    python benchmarks/tnr_quality.py                 # tune on seeds 201-202, report on 101-103
    python benchmarks/tnr_quality.py --quick         # fewer frames (a smoke run)

1. Tune: for each noise level, pick the TNR preset and strength that give the best
   mAP@0.5 on the *tuning* scenes (seeds 201, 202; 150 frames each).
2. Report, on the held-out scenes the detector never trained on (seeds 101-103, 300
   frames), with those settings fixed: PSNR and SSIM of noisy and denoised frames against
   the clean ones; detection mAP@0.5 and mAP@.5:.95 without and with TNR; tracking MOTA,
   IDF1 and ID switches without and with TNR (seed 101, every frame).
   The OpenCV NLM baseline joins on PSNR/SSIM and mAP over one scene (it runs ~200x slower).

Nothing is picked on the reporting seeds. Writes benchmarks/results/tnr_quality.json;
notebook 04 reads it for its tables and plots.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from helpers import bench, detect, evaluate, metrics, models, synth, tnr  # noqa: E402

NOISE = (0.0, 0.3, 0.6, 1.0)
TUNE_SEEDS = (201, 202)
PRESETS = ("outdoor_medium_light", "outdoor_low_light", "indoor_low_light")
STRENGTHS = (0.5, 0.75, 1.0)


def image_quality(denoiser, seed: int, noise: float, length: int, every: int = 10) -> dict:
    """Mean PSNR/SSIM against the clean frames, noisy and denoised (every ``every``-th frame,
    after a 10-frame warm-up of the filter)."""
    scene = synth.Scene(size=evaluate.SIZE, seed=seed, noise=noise, length=length)
    rows = {"psnr_noisy": [], "psnr_tnr": [], "ssim_noisy": [], "ssim_tnr": []}
    if denoiser is not None:
        denoiser.reset()
    for i in range(length):
        f = scene.frame(i)
        out = denoiser(f.noisy) if denoiser is not None else f.noisy
        if i < 10 or i % every:
            continue
        for tag, image in (("noisy", f.noisy), ("tnr", out)):
            # Identical images have infinite PSNR; 99 dB stands for "identical" in the JSON.
            rows[f"psnr_{tag}"].append(min(metrics.psnr(image, f.clean), 99.0))
            rows[f"ssim_{tag}"].append(structural_similarity(image, f.clean, channel_axis=2))
    return {k: float(np.mean(v)) for k, v in rows.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tnr_quality.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tune_len, report_len = (60, 90) if args.quick else (150, 300)
    detector = detect.Detector(models.synth_detector())

    tuned = {}
    for noise in NOISE:
        if noise == 0.0:
            tuned[noise] = {"preset": "outdoor_high_light", "strength": 0.25, "map50": None}
        best = None
        for preset in PRESETS if noise > 0 else ():
            for strength in STRENGTHS:
                den = tnr.TemporalDenoiser("torch", preset, strength)
                s = evaluate.detection(detector, TUNE_SEEDS, noise, stride=5, length=tune_len, denoiser=den)
                if best is None or s["map50"] > best["map50"]:
                    best = {"preset": preset, "strength": strength, "map50": s["map50"]}
        if best:
            base = evaluate.detection(detector, TUNE_SEEDS, noise, stride=5, length=tune_len)
            tuned[noise] = {**best, "map50_without": base["map50"]}
        print(f"tuned noise {noise}: {tuned[noise]}", flush=True)
    evaluate._clip.cache_clear()

    report = {}
    for noise in NOISE:
        cfg = tuned[noise]
        den = tnr.TemporalDenoiser("torch", cfg["preset"], cfg["strength"])
        without = evaluate.detection(detector, evaluate.HELD_OUT_SEEDS, noise, stride=5, length=report_len)
        with_tnr = evaluate.detection(detector, evaluate.HELD_OUT_SEEDS, noise, stride=5, length=report_len, denoiser=den)
        track_without = evaluate.tracking(detector, seed=101, noise=noise, length=report_len)
        track_with = evaluate.tracking(detector, seed=101, noise=noise, length=report_len, denoiser=den)
        quality = image_quality(den, 101, noise, min(report_len, 120))
        row = {"settings": cfg, **quality,
               "map50": {"none": without["map50"], "torch": with_tnr["map50"]},
               "map": {"none": without["map"], "torch": with_tnr["map"]},
               "mota": {"none": track_without["mota"], "torch": track_with["mota"]},
               "idf1": {"none": track_without["idf1"], "torch": track_with["idf1"]},
               "id_switches": {"none": track_without["id_switches"], "torch": track_with["id_switches"]}}
        if noise > 0:
            cv = tnr.TemporalDenoiser("opencv", cfg["preset"], cfg["strength"])
            cv_len = 20 if args.quick else 30
            opencv_det = evaluate.detection(detector, (101,), noise, stride=5, length=cv_len, denoiser=cv)
            torch_det = evaluate.detection(detector, (101,), noise, stride=5, length=cv_len, denoiser=den)
            none_det = evaluate.detection(detector, (101,), noise, stride=5, length=cv_len)
            cvq = image_quality(cv, 101, noise, cv_len)
            row["opencv_one_scene"] = {"frames": cv_len, "map50": {"none": none_det["map50"], "torch": torch_det["map50"],
                                                                   "opencv": opencv_det["map50"]},
                                       "psnr_tnr": cvq["psnr_tnr"], "ssim_tnr": cvq["ssim_tnr"]}
        report[noise] = row
        evaluate._clip.cache_clear()
        print(f"noise {noise}: mAP@0.5 {without['map50']:.3f} -> {with_tnr['map50']:.3f}; "
              f"IDF1 {track_without['idf1']:.3f} -> {track_with['idf1']:.3f}; "
              f"PSNR {quality['psnr_noisy']:.2f} -> {quality['psnr_tnr']:.2f} dB", flush=True)

    print("\nheld-out seeds 101-103 (tracking: seed 101); settings tuned on seeds 201-202")
    print(f"{'noise':>6}{'setting':>28}{'PSNR':>14}{'SSIM':>14}{'mAP@0.5':>16}{'MOTA':>16}{'IDF1':>16}")
    for noise, r in report.items():
        s = r["settings"]
        print(f"{noise:>6}{s['preset'] + ' ' + str(s['strength']):>28}"
              f"{r['psnr_noisy']:>7.2f}>{r['psnr_tnr']:<6.2f}{r['ssim_noisy']:>7.3f}>{r['ssim_tnr']:<6.3f}"
              f"{r['map50']['none']:>8.3f}>{r['map50']['torch']:<7.3f}{r['mota']['none']:>8.3f}>{r['mota']['torch']:<7.3f}"
              f"{r['idf1']['none']:>8.3f}>{r['idf1']['torch']:<7.3f}")
    payload = {"benchmark": "tnr_quality", "quick": args.quick, "tune_seeds": TUNE_SEEDS,
               "report_seeds": evaluate.HELD_OUT_SEEDS, "min_visibility": evaluate.MIN_VISIBILITY,
               "noise_levels": {str(k): v for k, v in report.items()}}
    bench.write_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
