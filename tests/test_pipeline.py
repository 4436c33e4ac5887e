"""helpers.pipeline: the budget verdict, the per-stage table and both run modes, on the real
bundled detector and real synthetic frames."""

import numpy as np
import pytest

from helpers import bench, detect, models, pipeline, synth, tnr
from helpers.track import Tracker


def test_stats_percentiles_match_numpy():
    values = list(np.random.default_rng(0).exponential(10, 1001))
    s = bench.stats(values)
    assert s["median_ms"] == pytest.approx(np.median(values), abs=1e-3)
    assert s["p90_ms"] == pytest.approx(np.percentile(values, 90), abs=1e-3)
    assert s["p99_ms"] == pytest.approx(np.percentile(values, 99), abs=1e-3)


def test_verdict_sync_sums_stages_and_names_the_bottleneck():
    v = pipeline.verdict({"capture": 5, "network": 20, "postprocess": 2}, fps=30)
    assert v["real_time"] and v["text"] == "real-time at 30 fps with 19% headroom"
    v = pipeline.verdict({"capture": 5, "network": 40, "postprocess": 2}, fps=30)
    assert not v["real_time"] and "bottleneck is network, 13.7 ms over" in v["text"]


def test_verdict_overlapped_takes_the_slowest_group():
    p50 = {"capture": 25, "network": 25, "draw": 25}
    assert not pipeline.verdict(p50, 30)["real_time"]  # 75 ms one after another
    v = pipeline.verdict(p50, 30, pipeline.OVERLAPPED_GROUPS)
    assert v["real_time"] and v["frame_ms"] == 25
    # Threads fighting over too few cores: the measured rate overrules the stage sums.
    v = pipeline.verdict(p50, 30, pipeline.OVERLAPPED_GROUPS, measured_fps=20)
    assert not v["real_time"] and v["frame_ms"] == 50
    with pytest.raises(ValueError, match="fps"):
        pipeline.verdict(p50, 0)


def test_stage_table_reports_budget_share():
    rows = pipeline.stage_table({"network": [10.0] * 9 + [30.0], "capture": [2.0] * 10}, fps=50)
    by = {r["stage"]: r for r in rows}
    assert [r["stage"] for r in rows] == ["capture", "network"]  # pipeline order
    assert by["network"]["p50_ms"] == 10.0 and by["network"]["budget_share"] == 0.5
    assert by["network"]["p95_ms"] > 10.0


@pytest.fixture(scope="module")
def detector():
    return detect.Detector(models.synth_detector())


@pytest.mark.parametrize("mode", ["sync", "overlapped"])
def test_both_modes_process_every_frame_and_time_every_stage(detector, mode):
    scene = synth.Scene(size=(320, 240), seed=9, noise=0.4, length=12)
    seen = []
    pipe = pipeline.Pipeline(detector, denoiser=tnr.TemporalDenoiser(), tracker=Tracker(),
                             on_frame=lambda i, drawn, out: seen.append((i, drawn.shape)))
    result = pipe.run((f.noisy for f in scene), mode=mode)
    assert result.frames == 12 and [i for i, _ in seen] == list(range(12))
    assert set(result.samples) == {"capture", "tnr", "preprocess", "network", "postprocess", "tracking", "draw"}
    assert all(len(v) == 12 for v in result.samples.values())
    assert result.fps > 0 and "fps" in result.verdict(30)["text"]


def test_a_short_source_gives_a_partial_result(detector):
    scene = synth.Scene(size=(320, 240), seed=9, length=5)
    result = pipeline.Pipeline(detector).run((f.clean for f in scene), max_frames=20)
    assert result.frames == 5 and "partial: the source ended after 5 of 20 frames" in result.verdict(30)["text"]


def test_an_error_in_a_stage_stops_the_threads_and_is_raised(detector):
    import threading

    def frames():
        yield np.zeros((240, 320, 3), np.uint8)
        yield np.zeros((240, 320), np.uint8)  # a broken frame: wrong shape

    before = threading.active_count()
    with pytest.raises(ValueError):
        pipeline.Pipeline(detector).run(frames(), mode="overlapped")
    assert threading.active_count() == before


def test_file_frames_decode_in_the_calling_thread(real_video):
    import threading

    import cv2

    cap = cv2.VideoCapture(str(real_video))
    expected = [cap.read()[1] for _ in range(6)]
    cap.release()
    before = threading.active_count()
    frames = list(pipeline.file_frames(real_video, 4, start=2))
    assert threading.active_count() == before  # no reader thread of its own
    assert len(frames) == 4 and all(np.array_equal(a, b) for a, b in zip(frames, expected[2:]))
    assert len(list(pipeline.file_frames(real_video, 10_000, start=790))) == 5  # 795 frames: the end ends it


def test_file_frames_refuse_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="video file not found"):
        next(pipeline.file_frames(tmp_path / "missing.avi"))
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(RuntimeError, match="could not open"):
        next(pipeline.file_frames(tmp_path / "junk.avi"))


@pytest.mark.parametrize("mode", ["sync", "overlapped"])
def test_both_modes_run_on_a_real_video_file(detector, real_video, mode):
    result = pipeline.Pipeline(detector, tracker=Tracker()).run(pipeline.file_frames(real_video, 8), mode=mode)
    assert result.frames == 8 and len(result.samples["capture"]) == 8
    assert set(result.samples) >= {"capture", "network", "tracking", "draw"}


def test_the_cpu_path_matches_the_stages_run_by_hand(detector):
    """Sync mode with CPU TNR: the pipeline's tracks are what TNR -> detector -> tracker give
    when called one after another, so keeping frames as they are changed nothing here."""
    scene = synth.Scene(size=(320, 240), seed=4, noise=0.4, length=6)
    frames = [f.noisy for f in scene]
    outs = []
    pipeline.Pipeline(detector, denoiser=tnr.TemporalDenoiser(), tracker=Tracker(),
                      on_frame=lambda i, drawn, out: outs.append(out)).run(frames)
    den, tracker = tnr.TemporalDenoiser(), Tracker()
    for frame, out in zip(frames, outs):
        expected = tracker.update(detector(den(frame), tracker.low_score))
        assert np.allclose(out.boxes, expected.boxes) and out.track_ids.tolist() == expected.track_ids.tolist()


def test_cuda_tnr_keeps_the_frame_on_the_device_until_display():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    seen = []

    class Denoiser(tnr.TemporalDenoiser):  # the real filter, noting what it was handed
        def __call__(self, frame):
            out = super().__call__(frame)
            seen.append(("tnr in", type(frame).__name__, str(getattr(frame, "device", "host"))))
            seen.append(("tnr out", type(out).__name__, str(getattr(out, "device", "host"))))
            return out

    class Spy(detect.Detector):
        def detect(self, frames, score_thresh=None):
            seen.append(("detector in", type(frames[0]).__name__, str(getattr(frames[0], "device", "host"))))
            return super().detect(frames, score_thresh)

    frames = [f.noisy for f in synth.Scene(size=(320, 240), seed=9, length=3)]
    drawn = []
    pipe = pipeline.Pipeline(Spy(models.synth_detector("cuda")), tracker=Tracker(),
                             denoiser=Denoiser("torch", device="cuda", compile=False),
                             on_frame=lambda i, image, out: drawn.append(image))
    pipe.run(frames)
    assert {s for s in seen} == {("tnr in", "Tensor", "cuda:0"), ("tnr out", "Tensor", "cuda:0"),
                                 ("detector in", "Tensor", "cuda:0")}
    assert all(isinstance(d, np.ndarray) for d in drawn)  # one copy back, for display
