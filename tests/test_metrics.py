import numpy as np
import pytest

from helpers import metrics, mot, synth


@pytest.fixture(scope="module")
def scene_gt():
    return synth.Scene(size=(640, 480), length=60, seed=3).ground_truth()


def as_predictions(gt, score=0.9):
    return [(int(f), gt.for_frame(f).boxes, np.full(len(gt.for_frame(f)), score),
             gt.for_frame(f).class_id) for f in gt.frames()]


def as_tracks(gt):
    return {int(f): (gt.for_frame(f).boxes, gt.for_frame(f).track_id) for f in gt.frames()}


def tiny_gt(boxes, frames=None, visibility=None, class_id=None):
    n = len(boxes)
    return mot.GroundTruth(frame=np.zeros(n, int) if frames is None else frames,
                           track_id=np.arange(1, n + 1), boxes=boxes,
                           class_id=np.ones(n, int) if class_id is None else class_id,
                           visibility=np.ones(n) if visibility is None else visibility,
                           active=np.ones(n, int))


def test_ground_truth_as_predictions_is_perfect(scene_gt):
    d = metrics.detection_metrics(scene_gt, as_predictions(scene_gt))
    assert d["map50"] == pytest.approx(1.0, abs=1e-6)
    assert d["map"] == pytest.approx(1.0, abs=1e-6)
    assert set(d["ap_per_class"]) == {1, 3}
    assert d["precision"] == d["recall"] == 1.0
    t = metrics.tracking_metrics(scene_gt, as_tracks(scene_gt))
    assert t["mota"] == 1.0 and t["idf1"] == 1.0 and t["id_switches"] == 0
    assert t["motp"] == pytest.approx(1.0)
    assert t["num_frames"] == len(scene_gt.frames())


def test_boxes_shifted_by_half_their_width_find_nothing(scene_gt):
    # IoU of a box with itself moved by w/2 is (w/2) / (3w/2) = 1/3 < 0.5.
    shifted = scene_gt.boxes.copy()
    shifted[:, [0, 2]] += (shifted[:, 2] - shifted[:, 0])[:, None] / 2
    moved = mot.GroundTruth(scene_gt.frame, scene_gt.track_id, shifted, scene_gt.class_id,
                            scene_gt.visibility, scene_gt.active)
    d = metrics.detection_metrics(scene_gt, as_predictions(moved))
    # Not exactly 0: now and then a moved box lands on a neighbour walking beside it.
    assert d["map50"] < 0.05 and d["recall"] < 0.05
    assert metrics.tracking_metrics(scene_gt, as_tracks(moved))["recall"] < 0.05


def test_removing_half_the_predictions_halves_recall(scene_gt):
    half = scene_gt.select(np.arange(len(scene_gt)) % 2 == 0)
    d = metrics.detection_metrics(scene_gt, as_predictions(half))
    assert d["recall"] == pytest.approx(len(half) / len(scene_gt))
    assert d["recall"] == pytest.approx(0.5, abs=0.01)
    assert d["precision"] == 1.0
    assert metrics.tracking_metrics(scene_gt, as_tracks(half))["recall"] == pytest.approx(
        len(half) / len(scene_gt))


def test_ap_follows_the_101_point_definition():
    # Two objects; detections ranked: hit (0.9), false positive (0.8), hit (0.7).
    # Recall/precision after each: (0.5, 1), (0.5, 1/2), (1, 2/3). The interpolated
    # precision is 1 for recall 0..0.50 (51 points) and 2/3 for 0.51..1.00 (50 points).
    gt = tiny_gt(np.array([[0, 0, 10, 10], [100, 100, 120, 140]], float))
    boxes = np.array([[0, 0, 10, 10], [300, 300, 310, 310], [100, 100, 120, 140]], float)
    d = metrics.detection_metrics(gt, [(0, boxes, [0.9, 0.8, 0.7], [1, 1, 1])])
    assert d["map50"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)
    # At a 0.75 score threshold only the first two detections count.
    d = metrics.detection_metrics(gt, [(0, boxes, [0.9, 0.8, 0.7], [1, 1, 1])],
                                  score_threshold=0.75)
    assert (d["precision"], d["recall"]) == (0.5, 0.5)


def test_map_averages_over_iou_thresholds():
    # Moving a 10 px box by 2 px gives IoU 8/12 = 0.667: a hit at 0.5, 0.55, 0.6, 0.65
    # and a miss at the six stricter thresholds, so mAP@[.5:.95] = 4/10.
    gt = tiny_gt(np.array([[0, 0, 10, 10]], float))
    d = metrics.detection_metrics(gt, [(0, np.array([[2, 0, 12, 10]], float), [0.9], [1])])
    assert d["map50"] == pytest.approx(1.0)
    assert d["map"] == pytest.approx(0.4)
    strict = metrics.detection_metrics(gt, [(0, np.array([[2, 0, 12, 10]], float), [0.9], [1])],
                                       iou=0.7)
    assert strict["ap_per_class"][1] == 0.0 and strict["recall"] == 0.0


def test_per_class_ap_and_wrong_labels():
    gt = tiny_gt(np.array([[0, 0, 10, 10], [50, 50, 90, 70]], float), class_id=np.array([1, 3]))
    boxes = gt.boxes.copy()
    d = metrics.detection_metrics(gt, {0: (boxes, [0.9, 0.9], [1, 1])})
    # The car was called a person: person AP drops (one false positive ranked equal),
    # car AP is 0.
    assert d["ap_per_class"][3] == 0.0
    assert 0.0 < d["ap_per_class"][1] <= 1.0
    assert d["map50"] == pytest.approx((d["ap_per_class"][1] + 0.0) / 2)


def test_low_visibility_objects_are_ignored_not_missed():
    gt = tiny_gt(np.array([[0, 0, 10, 10], [50, 50, 90, 70]], float),
                 visibility=np.array([1.0, 0.1]))
    only_visible = [(0, gt.boxes[:1], [0.9], [1])]
    both = [(0, gt.boxes, [0.9, 0.8], [1, 1])]
    assert metrics.detection_metrics(gt, only_visible)["recall"] == 0.5
    assert metrics.detection_metrics(gt, only_visible, min_visibility=0.3)["recall"] == 1.0
    on_ignored = metrics.detection_metrics(gt, both, min_visibility=0.3)
    assert (on_ignored["precision"], on_ignored["recall"]) == (1.0, 1.0)
    assert on_ignored["map50"] == pytest.approx(1.0)

    tracks = {0: (gt.boxes, [7, 8])}
    assert metrics.tracking_metrics(gt, tracks)["mota"] == 1.0
    t = metrics.tracking_metrics(gt, tracks, min_visibility=0.3)
    assert (t["mota"], t["false_positives"], t["num_objects"]) == (1.0, 0, 1)


def test_empty_predictions_score_zero_without_crashing(scene_gt):
    for empty in ([], {}, [(0, np.zeros((0, 4)), [], [])]):
        d = metrics.detection_metrics(scene_gt, empty)
        assert (d["map"], d["map50"], d["precision"], d["recall"]) == (0.0, 0.0, 0.0, 0.0)
    t = metrics.tracking_metrics(scene_gt, {})
    assert t["mota"] == 0.0 and t["recall"] == 0.0 and t["misses"] == len(scene_gt)
    nothing = metrics.detection_metrics(mot.GroundTruth(), [])
    assert nothing["recall"] == 0.0 and np.isnan(nothing["map"])


def test_mota_and_id_switches_on_a_hand_made_sequence():
    boxes = np.array([[0, 0, 10, 10], [50, 0, 60, 10]] * 4, float)
    frames = np.repeat(np.arange(4), 2)
    gt = mot.GroundTruth(frame=frames, track_id=np.tile([1, 2], 4), boxes=boxes,
                         class_id=np.ones(8, int), visibility=np.ones(8), active=np.ones(8, int))
    two = boxes[:2]
    fp = np.array([[200, 200, 220, 220]], float)
    tracks = {0: (two, [1, 2]), 1: (two, [1, 2]),
              2: (two, [2, 1]),  # the two identities swap: two ID switches
              3: (np.concatenate([two[:1], fp]), [2, 9])}  # one miss, one false positive
    t = metrics.tracking_metrics(gt, tracks)
    assert t["id_switches"] == 2
    assert (t["misses"], t["false_positives"], t["num_objects"]) == (1, 1, 8)
    assert t["mota"] == pytest.approx(1 - (1 + 1 + 2) / 8)


def test_motchallenge_file_round_trip_evaluates_identically(scene_gt, tmp_path):
    back = mot.read_gt(mot.write_gt(tmp_path / "seq" / "gt" / "gt.txt", scene_gt))
    rng = np.random.default_rng(1)
    noisy = mot.GroundTruth(scene_gt.frame, scene_gt.track_id,
                            scene_gt.boxes + rng.normal(0, 3, scene_gt.boxes.shape),
                            scene_gt.class_id, scene_gt.visibility, scene_gt.active)
    preds, tracks = as_predictions(noisy), as_tracks(noisy)
    a = metrics.detection_metrics(scene_gt, preds, min_visibility=0.3)
    b = metrics.detection_metrics(back, preds, min_visibility=0.3)
    assert 0.0 < a["map"] < 1.0
    for key in ("map", "map50", "precision", "recall"):
        assert a[key] == pytest.approx(b[key], abs=1e-3)
    ta = metrics.tracking_metrics(scene_gt, tracks, min_visibility=0.3)
    tb = metrics.tracking_metrics(back, tracks, min_visibility=0.3)
    assert ta["mota"] == pytest.approx(tb["mota"], abs=1e-9)
    assert ta["idf1"] == pytest.approx(tb["idf1"], abs=1e-9)


def test_pr_curve_is_ready_to_plot(scene_gt):
    rng = np.random.default_rng(2)
    preds = [(f, b, rng.uniform(0.1, 1.0, len(s)), lab) for f, b, s, lab in as_predictions(scene_gt)]
    # A person false positive ranked above every hit: person precision never reaches 1.
    preds.append((0, np.array([[300, 300, 340, 380.0]]), [1.0], [1]))
    curve = metrics.detection_metrics(scene_gt, preds)["pr_curve"]
    assert curve["recall"].shape == curve["precision"].shape == (101,)
    p = curve["precision"]
    assert p[0] < 1.0 and np.all(np.diff(p) <= 1e-12)  # interpolated: never rises
    assert set(curve["per_class"]) == {1, 3}


def test_bad_prediction_shapes_are_explained(scene_gt):
    with pytest.raises(ValueError, match="expected as many scores and labels as boxes"):
        metrics.detection_metrics(scene_gt, [(0, np.zeros((2, 4)), [0.9], [1, 1])])
    with pytest.raises(ValueError, match="one track id per box"):
        metrics.tracking_metrics(scene_gt, {0: (np.zeros((2, 4)), [1])})


def test_psnr():
    a = np.zeros((8, 8, 3), np.uint8)
    assert metrics.psnr(a, a + 1) == pytest.approx(10 * np.log10(255 ** 2))
    assert metrics.psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(a, a[:4])
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(a.astype(np.float32), a.astype(np.float32))


def test_classification_drift_passes_identical_and_fails_shuffled():
    from helpers.metrics import classification_drift

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 1000))
    same = classification_drift(ref, ref + 1e-5, "fp32")
    assert same["verdict"] == "PASS" and same["top1"] == 1.0
    bad = classification_drift(ref, rng.normal(size=(20, 1000)), "int8")
    assert bad["verdict"] == "FAIL" and not bad["checks"]["top1"]
    with pytest.raises(ValueError, match="one shape"):
        classification_drift(ref, ref[:5])


def test_detection_drift_matches_boxes_per_class():
    from helpers.metrics import detection_drift
    from helpers.track import Detections

    ref = [Detections([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [1, 3])]
    moved = [Detections([[0, 0, 10, 11], [20, 20, 40, 40]], [0.88, 0.8], [1, 3])]
    d = detection_drift(ref, moved, "int8")
    assert d["unmatched_frac"] == 0 and 0.9 < d["mean_box_iou"] < 1 and d["verdict"] == "PASS"
    relabeled = [Detections([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [3, 3])]
    d = detection_drift(ref, relabeled, "fp32")
    assert d["unmatched_frac"] == 0.5 and d["verdict"] == "FAIL"
