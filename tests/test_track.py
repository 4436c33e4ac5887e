import numpy as np
import pytest

from helpers import metrics, synth
from helpers.track import Detections, Tracker, box_iou


@pytest.fixture(scope="module")
def scene_gt():
    return synth.Scene(size=(640, 480), length=150, seed=3).ground_truth()


def run(tracker, gt, make_detections):
    """Feed one Detections per frame of ``gt``; return frame -> Tracks for the metrics."""
    return {int(f): tracker.update(make_detections(int(f), gt.for_frame(f)))
            for f in range(gt.frame.max() + 1)}


def visible(g):
    return g.visibility > 0.3


def test_ground_truth_as_detections_tracks_almost_perfectly(scene_gt):
    def detect(f, g):
        keep = visible(g)
        return Detections(g.boxes[keep], np.full(keep.sum(), 0.9), g.class_id[keep])

    m = metrics.tracking_metrics(scene_gt, run(Tracker(), scene_gt, detect), min_visibility=0.3)
    assert m["mota"] > 0.9
    assert m["id_switches"] <= 1
    assert m["false_positives"] == 0


def test_jittered_detections_with_gaps_keep_their_ids(scene_gt):
    rng = np.random.default_rng(0)

    def detect(f, g):
        keep = visible(g) & (rng.random(len(g)) > 0.1)  # 10 % missed detections
        boxes = g.boxes[keep] + rng.normal(0, 2.0, (keep.sum(), 4))
        n_fp = rng.integers(0, 3)
        xy = rng.uniform(0, 560, (n_fp, 2))
        fp = np.concatenate([xy, xy + rng.uniform(20, 80, (n_fp, 2))], axis=1)
        return Detections(np.concatenate([boxes, fp]),
                          np.concatenate([rng.uniform(0.6, 0.95, len(boxes)),
                                          rng.uniform(0.1, 0.4, n_fp)]),
                          np.concatenate([g.class_id[keep], rng.choice([1, 3], n_fp)]))

    m = metrics.tracking_metrics(scene_gt, run(Tracker(), scene_gt, detect), min_visibility=0.3)
    assert m["id_switches"] <= 3
    assert m["mota"] > 0.75
    assert m["idf1"] > 0.8


def one_walker(frames, low_from, low_to, low_score=0.3):
    """A box moving 3 px/frame right; its score drops to ``low_score`` for a while."""
    for f in range(frames):
        box = np.array([[50.0 + 3 * f, 100.0, 90.0 + 3 * f, 200.0]])
        score = low_score if low_from <= f < low_to else 0.9
        yield Detections(box, [score], [1])


def test_low_score_second_pass_keeps_the_track_alive():
    byte = Tracker(max_age=5)
    single = Tracker(max_age=5, low_score=0.5)  # low_score == high_score: no second pass
    byte_ids, single_ids, byte_seen_low = set(), set(), 0
    for f, det in enumerate(one_walker(40, 10, 25)):
        a, b = byte.update(det), single.update(det)
        byte_ids |= set(a.track_ids.tolist())
        single_ids |= set(b.track_ids.tolist())
        if 10 <= f < 25:
            byte_seen_low += len(a)
            assert len(b) == 0  # the single pass drops score-0.3 detections
    assert byte_seen_low == 15
    assert byte_ids == {1}
    # Fifteen frames without a match is past max_age=5: the single pass starts a new ID.
    assert len(single_ids) == 2


def test_prediction_bridges_an_occlusion_and_keeps_moving():
    tracker = Tracker()
    for f in range(60):
        occluded = 20 <= f < 30
        box = np.array([[50.0 + 4 * f, 100.0, 90.0 + 4 * f, 200.0]])
        out = tracker.update(Detections(box[:0] if occluded else box,
                                        [] if occluded else [0.9], [] if occluded else [1]))
        if not occluded:
            assert out.track_ids.tolist() == [1]
            assert box_iou(out.boxes, box)[0, 0] > 0.8


def test_class_aware_matching():
    tracker = Tracker(min_hits=1)
    box = np.array([[10.0, 10.0, 50.0, 90.0]])
    person = tracker.update(Detections(box, [0.9], [1]))
    car = tracker.update(Detections(box, [0.9], [3]))
    assert person.labels.tolist() == [1] and car.labels.tolist() == [3]
    assert person.track_ids[0] != car.track_ids[0]


def test_confirmation_after_min_hits_and_reporting_from_the_first_frames():
    tracker = Tracker(min_hits=3)
    box = np.array([[10.0, 10.0, 50.0, 90.0]])
    # During the first min_hits frames of a sequence, tracks are reported at once (SORT).
    assert len(tracker.update(Detections(box, [0.9], [1]))) == 1
    for _ in range(5):
        tracker.update(Detections(box, [0.9], [1]))
    other = np.array([[300.0, 10.0, 340.0, 90.0]])
    seen = [len(tracker.update(Detections(np.concatenate([box, other]), [0.9, 0.9], [1, 1])))
            for _ in range(3)]
    assert seen == [1, 1, 2]


def test_tracks_are_deleted_after_max_age_and_reset_restarts_ids():
    tracker = Tracker(max_age=3, min_hits=1)
    box = np.array([[10.0, 10.0, 50.0, 90.0]])
    tracker.update(Detections(box, [0.9], [1]))
    for _ in range(4):
        tracker.update(Detections())
    assert tracker.update(Detections(box, [0.9], [1])).track_ids.tolist() == [2]
    tracker.reset()
    assert tracker.update(Detections(box, [0.9], [1])).track_ids.tolist() == [1]


def test_zero_detections_is_a_normal_frame():
    out = Tracker().update(Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)))
    assert len(out) == 0 and out.boxes.shape == (0, 4)
    assert len(Tracker().update(Detections([], [], []))) == 0


@pytest.mark.parametrize("kwargs, expected", [
    ({"boxes": np.zeros((3, 5)), "scores": np.zeros(3)},
     r"expected shape \(N, 4\).*found \(3, 5\)"),
    ({"boxes": np.zeros(4), "scores": np.zeros(1)}, r"expected shape \(N, 4\).*found \(4,\)"),
    ({"boxes": np.zeros((3, 4)), "scores": np.zeros(2)},
     r"scores: expected shape \(3,\).*found \(2,\)"),
    ({"boxes": np.zeros((3, 4)), "scores": np.zeros(3), "labels": np.zeros((3, 1))},
     r"labels: expected shape \(3,\).*found \(3, 1\)"),
    ({"boxes": np.full((1, 4), np.nan), "scores": np.zeros(1)}, "finite"),
])
def test_detections_validate_shapes(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        Detections(**kwargs)


def test_tracker_validates_its_inputs():
    with pytest.raises(ValueError, match="expected a Detections, found ndarray"):
        Tracker().update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="low_score <= high_score"):
        Tracker(high_score=0.2, low_score=0.4)
    with pytest.raises(ValueError, match="min_hits >= 1"):
        Tracker(min_hits=0)
