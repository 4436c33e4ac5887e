"""TNR on real frames (benchmarks/tnr_quality.py's real-footage study), end to end with real parts:
vtest.avi, the real pedestrian detector, the workbook's noise model and the torch TNR. Small on
purpose (one short run, one strong noise level); the benchmark itself is never timed here."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import detect, evaluate, models, tnr
from helpers.track import Tracker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tnr_quality.json"


def _benchmark():
    spec = importlib.util.spec_from_file_location("tnr_quality", ROOT / "benchmarks" / "tnr_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study(real_video):
    """One contiguous 16-frame run of vtest.avi at noise strength 1.0, scored without and
    with TNR against the detector's own clean-frame boxes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 4 x 16 small forward passes: one thread wastes least on shared cores
    try:
        detector = detect.Detector(models.pedestrian_detector("cpu"))
        clean = evaluate.video_runs(real_video, [(400, 16)])
        reference = evaluate.footage_reference(detector, clean, warmup=6, tracker=Tracker())
        noisy = evaluate.noisy_runs(clean, 1.0, seed=0)
        den = tnr.TemporalDenoiser("torch", "outdoor_low_light", 0.75)
        yield {
            "clean": clean, "reference": reference,
            "self": evaluate.footage(detector, reference, clean, clean=clean, tracker=Tracker()),
            "noisy": evaluate.footage(detector, reference, noisy, clean=clean, tracker=Tracker(), ssim_every=5),
            "tnr": evaluate.footage(detector, reference, noisy, clean=clean, denoiser=den, tracker=Tracker(),
                                    ssim_every=5),
        }
    finally:
        torch.set_num_threads(threads)


def test_video_runs_are_contiguous_frames_of_the_clip(real_video):
    (a, first), (b, second) = evaluate.video_runs(real_video, [(0, 7), (5, 2)])
    assert (a, b, len(first), len(second)) == (0, 5, 7, 2)
    assert first[0].shape == (576, 768, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(first[5:], second))
    assert not np.array_equal(first[0], first[1])  # consecutive frames, not one repeated
    with pytest.raises(ValueError, match="ended early"):
        evaluate.video_runs(real_video, [(790, 10)])


def test_noise_is_reproducible_and_leaves_the_clean_frames_alone(real_video):
    clean = evaluate.video_runs(real_video, [(0, 2)])
    kept = [f.copy() for f in clean[0][1]]
    one, two = evaluate.noisy_runs(clean, 0.5, seed=3), evaluate.noisy_runs(clean, 0.5, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(one[0][1], two[0][1]))
    assert not np.array_equal(one[0][1][0], kept[0])
    assert all(np.array_equal(x, y) for x, y in zip(clean[0][1], kept))


def test_pseudo_ground_truth_scores_itself_perfectly(study):
    s, ref = study["self"], study["reference"]
    assert s["frames"] == 10  # 16 frames, the first 6 warm the filter and the tracker up
    assert s["num_reference"] > 0  # people to find on the clean frames
    assert s["ap50"] == pytest.approx(1.0)
    assert s["mota"] == pytest.approx(1.0) and s["idf1"] == pytest.approx(1.0)
    assert len(ref["gt_tracks"]) > 0


def test_tnr_cleans_real_frames_under_heavy_noise(study):
    noisy, den = study["noisy"], study["tnr"]
    assert noisy["psnr"] < den["psnr"]
    assert noisy["ssim"] < den["ssim"]
    assert noisy["ap50"] < 1.0  # the noise costs the real detector something to win back
    for r in (noisy, den):
        assert 0.0 <= r["ap50"] <= 1.0 and r["frames"] == 10


def test_footage_refuses_runs_that_are_not_the_references(study):
    other = [(401, study["clean"][0][1])]
    with pytest.raises(ValueError, match="runs differ"):
        evaluate.footage(None, study["reference"], other)


def test_benchmark_tunes_and_reports_on_disjoint_frames():
    bench = _benchmark()
    for quick in (False, True):
        tune = bench.REAL_QUICK["tune_runs"] if quick else bench.REAL_TUNE_RUNS
        report = bench.REAL_QUICK["report_runs"] if quick else bench.REAL_REPORT_RUNS
        tuned = {f for s, n in tune for f in range(s, s + n)}
        reported = {f for s, n in report for f in range(s, s + n)}
        assert max(tuned) < 300 <= 400 <= min(reported) and max(reported) < 795


def test_committed_results_hold_both_studies():
    data = json.loads(RESULTS.read_text())
    for key in ("noise_levels", "tune_seeds", "report_seeds"):  # notebooks 04 and 07 read these
        assert key in data
    for row in data["noise_levels"].values():
        assert {"settings", "psnr_noisy", "psnr_tnr", "map50", "idf1"} <= set(row)
    real = data["real_footage"]
    for key in ("clip", "pseudo_ground_truth", "reference_score", "tune_frames", "report_frames",
                "tune_runs", "report_runs", "warmup_frames", "levels", "synthetic_fallback"):
        assert key in real, key
    assert len([k for k in real["levels"] if float(k) > 0]) >= 4
    for row in real["levels"].values():
        assert {"preset", "strength"} <= set(row["settings"])
        for key in ("psnr_noisy", "psnr_tnr", "ssim_noisy", "ssim_tnr"):
            assert isinstance(row[key], float)
        for key in ("ap50", "mota", "idf1"):
            assert set(row[key]) == {"none", "torch"}
    assert real["levels"]["0.0"]["ap50"]["none"] == pytest.approx(1.0)  # the clean frames vs themselves
