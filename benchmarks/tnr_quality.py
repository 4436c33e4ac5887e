"""Does temporal noise reduction make detection and tracking better? Measured, not shown.

    python benchmarks/tnr_quality.py                 # both studies (several minutes on 2 cores)
    python benchmarks/tnr_quality.py --quick         # fewer frames (a smoke run)
    python benchmarks/tnr_quality.py --only real     # redo one study, keep the other's numbers

Two studies, each tuned on one part of its data and reported on another, disjoint part.

Synthetic scenes, the bundled synthetic-trained detector (trained on noisy frames):
1. Tune: for each noise level, pick the TNR preset and strength that give the best
   mAP@0.5 on the *tuning* scenes (seeds 201, 202; 150 frames each).
2. Report, on the held-out scenes the detector never trained on (seeds 101-103, 300
   frames), with those settings fixed: PSNR and SSIM of noisy and denoised frames against
   the clean ones; detection mAP@0.5 and mAP@.5:.95 without and with TNR; tracking MOTA,
   IDF1 and ID switches without and with TNR (seed 101, every frame).
   The OpenCV NLM baseline joins on PSNR/SSIM and mAP over one scene (it runs ~200x slower).

Real footage, the real pedestrian detector (TF SSDLite-MobileNetV2, trained on clean photos)
(``real_footage`` in the JSON): contiguous runs of OpenCV's vtest.avi (768x576, 10 fps, a
static street camera) made dark with helpers.synth.NoiseModel at several strengths. The clip has
no labels, so the *pseudo ground truth* is the same detector's person boxes scoring >= 0.5 on
the clean frames (and those boxes linked by the workbook's tracker for MOTA/IDF1): the numbers
say how much of its clean-frame view the detector keeps under noise, not how right it is.
Settings are tuned on runs inside frames 0-299 and reported on runs inside 400-794; the first
frames of each run warm the filter and the tracker up and are not scored. Without the clip
(no opencv-doc) the same study runs on clean synthetic frames instead, and the JSON says so.

Nothing is picked on the reporting data. Writes benchmarks/results/tnr_quality.json;
notebooks 04 and 07 read it for their tables and plots.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

from helpers import assets, bench, detect, evaluate, metrics, models, synth, tnr  # noqa: E402
from helpers.track import Tracker  # noqa: E402

NOISE = (0.0, 0.3, 0.6, 1.0)
TUNE_SEEDS = (201, 202)
PRESETS = ("outdoor_medium_light", "outdoor_low_light", "indoor_low_light")
STRENGTHS = (0.5, 0.75, 1.0)

# The real-footage study (vtest.avi, 795 frames): (start, length) runs; TNR needs the frames
# in between, so each run is contiguous, and the filter starts afresh at each.
REAL_NOISE = (0.0, 0.25, 0.5, 0.75, 1.0)
REAL_TUNE_RUNS = ((0, 50), (125, 50), (250, 50))  # inside frames 0-299
REAL_REPORT_RUNS = ((400, 60), (500, 60), (600, 60), (700, 60))  # inside frames 400-794
REAL_QUICK = {"tune_runs": ((0, 30),), "report_runs": ((400, 30), (600, 30)),
              "strengths": (0.5, 1.0)}
REAL_WARMUP = 10  # frames per run that feed the filter and the tracker but are not scored
REAL_TUNE_STRIDE = 2  # tuning scores every 2nd frame (the filter still sees every frame)
REFERENCE_SCORE = 0.5  # pseudo ground truth: the detector's clean-frame boxes at >= 0.5
CLEAN_SETTING = {"preset": "outdoor_high_light", "strength": 0.25}  # noise 0: not tuned


def _print_levels(levels: dict, score_key: str, score_label: str) -> None:
    """One row per noise level: the chosen setting, then each measure without > with TNR."""
    print(f"{'noise':>6}{'setting':>28}{'PSNR':>14}{'SSIM':>14}{score_label:>16}{'MOTA':>16}{'IDF1':>16}")
    for noise, r in levels.items():
        st = r["settings"]
        print(f"{noise:>6}{st['preset'] + ' ' + str(st['strength']):>28}"
              f"{r['psnr_noisy']:>7.2f}>{r['psnr_tnr']:<6.2f}{r['ssim_noisy']:>7.3f}>{r['ssim_tnr']:<6.3f}"
              f"{r[score_key]['none']:>8.3f}>{r[score_key]['torch']:<7.3f}{r['mota']['none']:>8.3f}>{r['mota']['torch']:<7.3f}"
              f"{r['idf1']['none']:>8.3f}>{r['idf1']['torch']:<7.3f}")


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


def synthetic_study(quick: bool) -> dict:
    """The synthetic study (module docstring); returns the JSON's synthetic keys."""
    tune_len, report_len = (60, 90) if quick else (150, 300)
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
            cv_len = 20 if quick else 30
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
    _print_levels(report, "map50", "mAP@0.5")
    return {"tune_seeds": TUNE_SEEDS, "report_seeds": evaluate.HELD_OUT_SEEDS,
            "min_visibility": evaluate.MIN_VISIBILITY, "noise_levels": {str(k): v for k, v in report.items()}}


def real_clip(runs):
    """(source description, clean runs): vtest.avi's frames, or synthetic clean frames without it."""
    path = assets.locate("vtest_video").path
    if path is not None:
        return {"clip": "vtest.avi", "path": str(path), "synthetic_fallback": False}, evaluate.video_runs(path, runs)
    scene = synth.Scene(size=evaluate.SIZE, seed=301, noise=0.0, length=max(s + n for s, n in runs))
    clean = [(s, [scene.frame(i).clean for i in range(s, s + n)]) for s, n in runs]
    return {"clip": "synthetic seed 301 (clean frames)", "path": None, "synthetic_fallback": True,
            "why": "vtest.avi not found (sudo apt-get install opencv-doc): synthetic clean frames stand in "
                   "for real footage"}, clean


def _frames_label(runs) -> str:
    return ", ".join(f"{s}-{s + n - 1}" for s, n in runs)


def real_study(quick: bool, device: str = "cpu") -> dict:
    """The real-footage study (module docstring); returns the JSON's ``real_footage`` section."""
    t0 = time.perf_counter()
    tune_runs = REAL_QUICK["tune_runs"] if quick else REAL_TUNE_RUNS
    report_runs = REAL_QUICK["report_runs"] if quick else REAL_REPORT_RUNS
    strengths = REAL_QUICK["strengths"] if quick else STRENGTHS
    detector = detect.Detector(models.pedestrian_detector(device))
    source, tune_clean = real_clip(tune_runs)
    if source["synthetic_fallback"]:
        print(source["why"], flush=True)
    tune_ref = evaluate.footage_reference(detector, tune_clean, warmup=REAL_WARMUP, stride=REAL_TUNE_STRIDE,
                                          reference_score=REFERENCE_SCORE)

    tuned = {}
    for noise in REAL_NOISE:
        if noise == 0.0:
            tuned[noise] = {**CLEAN_SETTING, "tune_ap50": None, "tune_ap50_without": None}
            continue
        noisy = evaluate.noisy_runs(tune_clean, noise, seed=1)
        base = evaluate.footage(detector, tune_ref, noisy)["ap50"]
        best = None
        for preset in PRESETS:
            for strength in strengths:
                den = tnr.TemporalDenoiser("torch", preset, strength, device=device)
                ap = evaluate.footage(detector, tune_ref, noisy, denoiser=den)["ap50"]
                if best is None or ap > best["tune_ap50"]:
                    best = {"preset": preset, "strength": strength, "tune_ap50": ap}
        tuned[noise] = {**best, "tune_ap50_without": base}
        print(f"real, tuned noise {noise}: {tuned[noise]}", flush=True)
    del tune_clean, noisy
    t_tune = time.perf_counter() - t0

    _, clean = real_clip(report_runs)
    ref = evaluate.footage_reference(detector, clean, warmup=REAL_WARMUP, stride=1, tracker=Tracker(),
                                     reference_score=REFERENCE_SCORE)
    levels = {}
    for noise in REAL_NOISE:
        cfg = tuned[noise]
        noisy = evaluate.noisy_runs(clean, noise, seed=2)
        den = tnr.TemporalDenoiser("torch", cfg["preset"], cfg["strength"], device=device)
        a = evaluate.footage(detector, ref, noisy, clean=clean, tracker=Tracker(), ssim_every=5)
        b = evaluate.footage(detector, ref, noisy, clean=clean, denoiser=den, tracker=Tracker(), ssim_every=5)
        levels[str(noise)] = {
            "settings": cfg, "psnr_noisy": a["psnr"], "psnr_tnr": b["psnr"],
            "ssim_noisy": a["ssim"], "ssim_tnr": b["ssim"],
            **{k: {"none": a[k], "torch": b[k]} for k in ("ap50", "matched", "precision", "mota", "idf1", "id_switches")}}
        print(f"real, noise {noise}: AP@0.5 {a['ap50']:.3f} -> {b['ap50']:.3f}; IDF1 {a['idf1']:.3f} -> "
              f"{b['idf1']:.3f}; PSNR {a['psnr']:.2f} -> {b['psnr']:.2f} dB", flush=True)
    seconds = time.perf_counter() - t0

    print(f"\nreal footage ({source['clip']}): settings tuned on frames {_frames_label(tune_runs)}, "
          f"reported on {_frames_label(report_runs)}; pseudo ground truth = the detector's clean-frame boxes >= {REFERENCE_SCORE}")
    _print_levels(levels, "ap50", "AP@0.5")
    size = clean[0][1][0].shape
    return {
        **source, "size": [int(size[1]), int(size[0])],
        "detector": models.PEDESTRIAN_DETECTOR_NAME + " (TF SSDLite-MobileNetV2, trained on clean photos; ported)",
        "pseudo_ground_truth": (f"no labels: the same detector's person boxes scoring >= {REFERENCE_SCORE} on the clean "
                                "frames are the ground truth (tracks: those boxes through helpers.track.Tracker); "
                                "AP@0.5 says how much of its clean-frame view the detector keeps, not how right it is"),
        "reference_score": REFERENCE_SCORE, "noise_model": "helpers.synth.NoiseModel(strength)",
        "tune_runs": [list(r) for r in tune_runs], "report_runs": [list(r) for r in report_runs],
        "tune_frames": _frames_label(tune_runs), "report_frames": _frames_label(report_runs),
        "warmup_frames": REAL_WARMUP, "tune_stride": REAL_TUNE_STRIDE, "report_stride": 1,
        "scored_frames": {"tune": len(tune_ref["detections"]), "report": len(ref["detections"])},
        "pseudo_gt_boxes": {"tune": int(sum(int((d.scores >= REFERENCE_SCORE).sum()) for d in tune_ref["detections"].values())),
                            "report": int(sum(int((d.scores >= REFERENCE_SCORE).sum()) for d in ref["detections"].values()))},
        "grid": {"presets": list(PRESETS), "strengths": list(strengths)},
        "tune_metric": "AP@0.5 against the pseudo ground truth", "seconds": {"tune": round(t_tune, 1), "total": round(seconds, 1)},
        "levels": levels}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=("synthetic", "real"), default=None,
                   help="run one study and keep the other's section of an existing JSON")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="where the real study's detector and TNR run")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tnr_quality.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep = json.loads(Path(args.json).read_text()) if args.only and Path(args.json).is_file() else {}
    payload = {"benchmark": "tnr_quality"}
    if args.only == "real":  # keep the synthetic study's numbers ("quick" is that study's flag)
        payload.update({k: keep[k] for k in ("quick", "tune_seeds", "report_seeds", "min_visibility",
                                             "noise_levels", "synthetic_seconds") if k in keep})
    else:
        t0 = time.perf_counter()
        payload["quick"] = args.quick
        payload.update(synthetic_study(args.quick))
        payload["synthetic_seconds"] = round(time.perf_counter() - t0, 1)
    if args.only == "synthetic":
        if "real_footage" in keep:
            payload["real_footage"] = keep["real_footage"]
    else:
        payload["real_footage"] = {"quick": args.quick, **real_study(args.quick, args.device)}
    payload["note_psnr"] = "psnr 99.0 means identical images (infinite PSNR, capped)"
    bench.write_results(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
