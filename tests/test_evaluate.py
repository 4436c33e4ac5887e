"""evaluate.agreement on real detections: the pedestrian detector and the synthetic-trained
detector on frames of OpenCV's vtest.avi (no ground truth there, so one detector's confident
boxes are the other's pseudo ground truth)."""

import numpy as np
import pytest
import torch

from helpers import capture, detect, evaluate, models
from helpers.track import Detections, box_iou

FRAMES = range(0, 160, 20)  # 8 frames, far enough apart to differ


@pytest.fixture(scope="module")
def detections(offline, real_video):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    real = detect.Detector(models.pedestrian_detector())
    synth = detect.Detector(models.synth_detector())
    out_real, out_synth = {}, {}
    with capture.VideoSource(str(real_video)) as source:
        for frame in source:
            if frame.index > max(FRAMES):
                break
            if frame.index in FRAMES:
                out_real[frame.index] = real(frame.image, score_thresh=0.05)
                out_synth[frame.index] = synth(frame.image, score_thresh=0.05)
    return out_real, out_synth


def _greedy_tp(reference, other, score=0.5, iou=0.5):
    """COCO's matching, written out: each frame's boxes in descending score take the best
    still-free reference box with IoU >= iou."""
    tp = 0
    for f, ref in reference.items():
        gt = ref.boxes[(ref.labels == 1) & (ref.scores >= 0.5)]
        det = other[f]
        keep = det.labels == 1
        boxes, scores = det.boxes[keep], det.scores[keep]
        free = np.ones(len(gt), bool)
        for i in np.argsort(-scores, kind="stable"):
            if not len(gt):
                break
            m = np.where(free, box_iou(boxes[i:i + 1], gt)[0], -1.0)
            j = int(np.argmax(m))
            if m[j] >= iou:
                free[j] = False
                tp += int(scores[i] >= score)
    return tp


def test_a_detector_agrees_with_itself(detections):
    real, _ = detections
    same = evaluate.agreement(real, real)
    assert same["num_reference"] > 10, "vtest.avi shows several people per frame"
    assert same["ap50"] == pytest.approx(1.0)
    assert same["matched"] == 1.0 and same["precision"] == 1.0
    assert same["per_frame_reference"] == same["per_frame_other"] == same["num_reference"] / len(FRAMES)


def test_synthetic_detector_against_the_real_one(detections):
    real, synth = detections
    gap = evaluate.agreement(real, synth)
    assert gap["frames"] == len(FRAMES) and 0.0 <= gap["ap50"] <= 1.0
    assert gap["num_reference"] == gap["counts_reference"].sum()
    # The counts are the boxes each detector reports at 0.5, person only.
    assert gap["counts_other"].tolist() == [int(((d.labels == 1) & (d.scores >= 0.5)).sum()) for d in synth.values()]
    assert gap["tp"] + gap["fp"] == gap["counts_other"].sum()
    assert gap["tp"] == _greedy_tp(real, synth)  # pycocotools matches as COCO says
    assert gap["matched"] == pytest.approx(gap["tp"] / gap["num_reference"])
    # Swapping the roles turns recall into precision (same matched pairs at IoU 0.5 and 0.5).
    back = evaluate.agreement(synth, real)
    assert back["num_reference"] == gap["tp"] + gap["fp"]


def test_boxes_moved_off_their_people_do_not_agree(detections):
    real, _ = detections
    # Down and right by the frame's own size: no box can land on another person.
    moved = {f: Detections(d.boxes + [768, 576, 768, 576], d.scores, d.labels) for f, d in real.items()}
    far = evaluate.agreement(real, moved)
    assert far["ap50"] == 0.0 and far["matched"] == 0.0 and far["precision"] == 0.0
    assert far["per_frame_other"] == far["per_frame_reference"]


def test_missing_frames_count_as_nothing_found_and_extra_frames_are_refused(detections):
    real, _ = detections
    first = min(real)
    half = evaluate.agreement(real, {f: d for f, d in real.items() if f != first})
    ref_first = int(((real[first].labels == 1) & (real[first].scores >= 0.5)).sum())
    assert half["tp"] == half["num_reference"] - ref_first and half["counts_other"][0] == 0
    with pytest.raises(ValueError, match="not"):
        evaluate.agreement({first: real[first]}, real)
