"""Scores for detectors, trackers and images.

Ground truth always arrives as a ``mot.GroundTruth`` (xyxy, 0-based frames), so the
synthetic scenes and a public MOTChallenge gt.txt (through ``mot.read_gt``) go through
the same call. The counting is done by the reference libraries, not here:

- detection: pycocotools (COCO mAP, 101-point interpolated precision);
- tracking: motmetrics (CLEAR MOT and identity metrics);
- images: OpenCV's PSNR.

Ground-truth rows with ``visibility < min_visibility`` or ``active == 0`` (MOTChallenge's
"ignore" flag) are don't-care regions: a detection on them is neither a hit nor a false
positive, and missing them costs nothing.
"""

from __future__ import annotations

import contextlib
import io

import cv2
import motmetrics as mm
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

from .mot import GroundTruth

__all__ = ["detection_metrics", "tracking_metrics", "psnr"]

_COCO_IOUS = np.linspace(0.5, 0.95, 10)


def _ignored(gt: GroundTruth, min_visibility: float) -> np.ndarray:
    return (gt.visibility < min_visibility) | (gt.active == 0)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _prediction_rows(predictions):
    """Yield (frame, boxes, scores, labels) from a list of tuples or a dict frame -> detections."""
    items = predictions.items() if isinstance(predictions, dict) else \
        ((p[0], p[1:]) for p in predictions)
    for frame, det in items:
        if hasattr(det, "boxes"):
            boxes, scores, labels = det.boxes, det.scores, det.labels
        else:
            if len(det) != 3:
                raise ValueError(f"detection_metrics: expected (frame, boxes, scores, labels) or "
                                 f"frame -> Detections, found {len(det)} values for frame {frame}. "
                                 "Give boxes (N, 4) xyxy, scores (N,) and labels (N,).")
            boxes, scores, labels = det
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(f"detection_metrics: frame {frame}: expected as many scores and "
                             f"labels as boxes, found {len(boxes)} boxes, {len(scores)} scores, "
                             f"{len(labels)} labels.")
        yield int(frame), boxes, scores, labels


def _coco(images, categories, annotations) -> COCO:
    # Built in memory rather than through COCO.loadRes, which cannot take zero detections.
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _mean_valid(a: np.ndarray) -> float:
    # pycocotools marks "no ground truth for this class" with -1.
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else float("nan")


def detection_metrics(gt: GroundTruth, predictions, min_visibility: float = 0.0,
                      iou: float = 0.5, score_threshold: float = 0.5) -> dict:
    """COCO-style detection scores of ``predictions`` against ``gt``.

    ``predictions``: a list of ``(frame, boxes, scores, labels)`` or a dict
    ``frame -> Detections`` (anything with ``.boxes``, ``.scores``, ``.labels``) or
    ``frame -> (boxes, scores, labels)``; boxes are xyxy and frames 0-based like ``gt``.

    Returns a dict:
      ``map`` mAP@[.5:.95]; ``map50`` mAP@0.5; ``ap_per_class`` {class_id: AP at ``iou``};
      ``precision``, ``recall``, ``tp``, ``fp``, ``num_gt`` counted at IoU ``iou`` over the
      detections with score >= ``score_threshold``;
      ``pr_curve`` {"recall": 101 points, "precision": mean over classes,
      "per_class": {class_id: precision}} at IoU 0.5, for a plot.
    Classes without ground truth get AP nan and are left out of the means (COCO's rule).
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"detection_metrics: expected 0 < iou <= 1, found {iou}.")
    rows = list(_prediction_rows(predictions))
    ignore = _ignored(gt, min_visibility)
    frames = sorted(set(gt.frames().tolist()) | {r[0] for r in rows})
    class_ids = sorted(set(gt.class_id.tolist()) | {int(c) for r in rows for c in r[3]})
    images = [{"id": f} for f in frames]
    categories = [{"id": c} for c in class_ids]

    gt_ann = []
    for k, (box, f, c, ign) in enumerate(zip(_xywh(gt.boxes), gt.frame, gt.class_id, ignore)):
        # iscrowd turns the object into an ignore region for COCOeval.
        gt_ann.append({"id": k + 1, "image_id": int(f), "category_id": int(c),
                       "bbox": box.tolist(), "area": float(box[2] * box[3]),
                       "iscrowd": int(ign)})
    dt_ann = []
    for f, boxes, scores, labels in rows:
        for box, s, c in zip(_xywh(boxes), scores, labels):
            dt_ann.append({"id": len(dt_ann) + 1, "image_id": f, "category_id": int(c),
                           "bbox": box.tolist(), "area": float(box[2] * box[3]),
                           "score": float(s), "iscrowd": 0})

    ev = COCOeval(_coco(images, categories, gt_ann), _coco(images, categories, dt_ann), "bbox")
    ev.params.imgIds = frames
    ev.params.iouThrs = np.unique(np.round(np.r_[_COCO_IOUS, iou], 10))
    # A crowded frame can hold more than COCO's 100 detections per image; keep them all.
    ev.params.maxDets = [1, 10, max(100, max((len(r[1]) for r in rows), default=0))]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()

    thrs = ev.params.iouThrs
    t_iou = int(np.argmin(np.abs(thrs - iou)))
    t_50 = int(np.argmin(np.abs(thrs - 0.5)))
    coco_t = np.isin(np.round(thrs, 10), np.round(_COCO_IOUS, 10))
    # precision: [iou thr, recall thr, class, area range (0 = all), max dets (-1 = most)]
    prec = ev.eval["precision"][:, :, :, 0, -1]

    def class_ap(t):
        return {c: _mean_valid(prec[t, :, k]) for k, c in enumerate(class_ids)}

    def mean_ap(p):
        value = _mean_valid(p)
        # No ground truth anywhere: nothing to find. With ground truth, no detections is 0.
        return value if not np.isnan(value) or len(gt) == 0 else 0.0

    # Precision/recall at one operating point, from COCOeval's own per-image matching.
    tp = fp = num_gt = 0
    max_det = ev.params.maxDets[-1]
    for e in ev.evalImgs:
        if e is None or e["aRng"] != ev.params.areaRng[0] or e["maxDet"] != max_det:
            continue
        keep = (np.asarray(e["dtScores"]) >= score_threshold) & ~e["dtIgnore"][t_iou].astype(bool)
        hit = e["dtMatches"][t_iou] > 0
        tp += int((hit & keep).sum())
        fp += int((~hit & keep).sum())
        num_gt += int((~np.asarray(e["gtIgnore"], bool)).sum())

    curve = prec[t_50]
    return {
        "map": mean_ap(prec[coco_t]),
        "map50": mean_ap(prec[t_50]),
        "ap_per_class": class_ap(t_iou),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / num_gt if num_gt else 0.0,
        "tp": tp, "fp": fp, "num_gt": num_gt,
        "pr_curve": {
            "recall": ev.params.recThrs.copy(),
            "precision": np.array([_mean_valid(curve[r]) for r in range(curve.shape[0])]),
            "per_class": {c: np.where(curve[:, k] > -1, curve[:, k], np.nan)
                          for k, c in enumerate(class_ids)},
        },
    }


def _iou_distance(objs_xywh: np.ndarray, hyps_xywh: np.ndarray, max_d: float) -> np.ndarray:
    # mm.distances.iou_matrix is this plus np.asfarray, which numpy 2 removed.
    d = 1.0 - mm.distances.boxiou(objs_xywh[:, None], hyps_xywh[None, :])
    return np.where(d > max_d, np.nan, d)


def _hypotheses(value):
    if hasattr(value, "track_ids"):  # helpers.detections.Detections from Tracker.update
        if value.track_ids is None:
            raise ValueError("tracking_metrics: expected tracks (Detections with track_ids, as "
                             "Tracker.update returns them); found detections without ids. Feed "
                             "the detector's output through a helpers.track.Tracker first.")
        return np.asarray(value.boxes, np.float64).reshape(-1, 4), np.asarray(value.track_ids)
    boxes, ids = value
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ids = np.asarray(ids).reshape(-1)
    if len(boxes) != len(ids):
        raise ValueError(f"tracking_metrics: expected one track id per box, found {len(boxes)} "
                         f"boxes and {len(ids)} ids.")
    return boxes, ids


def tracking_metrics(gt: GroundTruth, tracks_per_frame: dict, iou: float = 0.5,
                     min_visibility: float = 0.0) -> dict:
    """CLEAR MOT / identity scores of tracker output against ``gt`` (via motmetrics).

    ``tracks_per_frame``: ``frame -> (boxes xyxy, track_ids)`` or ``frame -> Detections`` with
    ``track_ids`` (Tracker.update's output); a
    frame missing from the dict had no tracks. A track matches an object when IoU >= ``iou``.

    Returns ``mota``, ``idf1``, ``id_switches``, ``motp`` (mean IoU of matched pairs, the
    MOTChallenge convention; motmetrics itself reports the distance 1 - IoU),
    ``num_frames``, ``precision``, ``recall``, ``false_positives``, ``misses``,
    ``num_objects``.
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"tracking_metrics: expected 0 < iou <= 1, found {iou}.")
    acc = mm.MOTAccumulator(auto_id=False)
    ignore = _ignored(gt, min_visibility)
    frames = sorted(set(gt.frames().tolist()) | {int(f) for f in tracks_per_frame})
    empty = (np.zeros((0, 4)), np.zeros(0, np.int64))
    for f in frames:
        rows = gt.frame == f
        boxes, ids = _hypotheses(tracks_per_frame.get(f, empty))
        hyp = _xywh(boxes)
        objs = _xywh(gt.boxes[rows])
        ign = ignore[rows]
        if ign.any() and len(hyp):
            # As the MOTChallenge devkit does: a track that matches an ignored object is
            # dropped, so it is neither a false positive nor a hit.
            d = np.nan_to_num(_iou_distance(objs, hyp, 1.0 - iou), nan=2.0)
            r, c = linear_sum_assignment(d)
            drop = c[(d[r, c] <= 1.0 - iou) & ign[r]]
            hyp, ids = np.delete(hyp, drop, axis=0), np.delete(ids, drop)
        objs, oids = objs[~ign], gt.track_id[rows][~ign]
        dist = _iou_distance(objs, hyp, 1.0 - iou) if len(objs) and len(hyp) else \
            np.zeros((len(objs), len(hyp)))
        acc.update(oids.tolist(), ids.tolist(), dist, frameid=f)

    names = ["mota", "idf1", "num_switches", "motp", "num_frames", "precision", "recall",
             "num_false_positives", "num_misses", "num_objects"]
    s = mm.metrics.create().compute(acc, metrics=names, name="seq").iloc[0]
    return {
        "mota": float(s["mota"]), "idf1": float(s["idf1"]),
        "id_switches": int(s["num_switches"]), "motp": 1.0 - float(s["motp"]),
        "num_frames": int(s["num_frames"]), "precision": float(s["precision"]),
        "recall": float(s["recall"]), "false_positives": int(s["num_false_positives"]),
        "misses": int(s["num_misses"]), "num_objects": int(s["num_objects"]),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images of the same shape.

    Identical images give inf (OpenCV would report a finite 361 dB).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"psnr: expected two uint8 images of the same shape, found "
                         f"{a.dtype}{a.shape} and {b.dtype}{b.shape}. Convert with "
                         ".astype(np.uint8) after clipping, or resize one to match.")
    if np.array_equal(a, b):
        return float("inf")
    return float(cv2.PSNR(a, b))


# ---------------------------------------------------------------- drift
#
# How far a runtime/precision moves a network's outputs from PyTorch FP32 on identical inputs.
# One judge (:func:`judge`), one table per kind of output, one row per precision. FP32 engines
# only reorder float sums; TF32 (an FP32 engine whose products round their inputs to a 10-bit
# mantissa, see helpers.trt) is FP32 with ~3 decimal digits in each product; FP16 keeps ~3
# decimal digits throughout; INT8 changes values for real and is judged on decisions (top-1,
# boxes, the filter's gain over bicubic), not raw values.
#
# Images (an image-to-image filter's uint8 output): PSNR against FP32's output (FP32 differs by
# one level at a few pixels, well above 50 dB) and the share of FP32's PSNR gain over bicubic
# that survives: INT8 must still beat bicubic, so it keeps at least half of the gain (a 30
# dB-class drift would erase a 0.3 dB gain completely).
TOLERANCES = {
    "classification": {
        "fp32": {"max_abs_logit": 1e-3, "top1": 1.0, "top5": 1.0},
        "tf32": {"max_abs_logit": 5e-3, "top1": 1.0, "top5": 1.0},
        "fp16": {"max_abs_logit": 5e-2, "top1": 0.98, "top5": 0.98},
        "int8": {"max_abs_logit": None, "top1": 0.85, "top5": 0.85},
    },
    "detection": {
        "fp32": {"mean_box_iou": 0.999, "max_score_diff": 1e-3, "unmatched_frac": 0.0, "map50_drop": 0.002},
        "tf32": {"mean_box_iou": 0.995, "max_score_diff": 5e-3, "unmatched_frac": 0.005, "map50_drop": 0.002},
        "fp16": {"mean_box_iou": 0.98, "max_score_diff": 2e-2, "unmatched_frac": 0.02, "map50_drop": 0.01},
        "int8": {"mean_box_iou": 0.90, "max_score_diff": None, "unmatched_frac": 0.10, "map50_drop": 0.03},
    },
    "image": {
        "fp32": {"psnr_db": 50.0, "gain_kept": 0.9},
        "tf32": {"psnr_db": 45.0, "gain_kept": 0.85},
        "fp16": {"psnr_db": 40.0, "gain_kept": 0.75},
        "int8": {"psnr_db": 32.0, "gain_kept": 0.5},
    },
}
LOWER_IS_BETTER = {"max_abs_logit", "max_score_diff", "unmatched_frac", "map50_drop"}



CONFIDENT_PROB = 0.5


def classification_drift(reference_logits, logits, precision: str = "fp32") -> dict:
    """Logit differences and top-1/top-5 agreement of ``logits`` against ``reference_logits``
    (both N x classes), judged against TOLERANCES["classification"][precision].

    ``top1`` (judged) is over every item. ``top1_confident`` (reported, not judged) is over the
    ``n_confident`` items where the reference's own top-1 softmax probability is at least
    CONFIDENT_PROB (None when there are none): a flip there means the model changed its mind,
    a flip elsewhere can be a near tie between two classes. Both are shown so a FAIL on
    uncertain images is not mistaken for a broken model, nor hidden."""
    ref, out = np.asarray(reference_logits, np.float64), np.asarray(logits, np.float64)
    if ref.shape != out.shape or ref.ndim != 2:
        raise ValueError(f"classification_drift: expected two N x classes arrays of one shape; found "
                         f"{ref.shape} and {out.shape}.")
    diff = np.abs(ref - out)
    ref_top1 = ref.argmax(1)
    same = out.argmax(1) == ref_top1
    top5 = np.argsort(-out, axis=1)[:, :5]
    shifted = np.exp(ref - ref.max(1, keepdims=True))
    confident = shifted.max(1) / shifted.sum(1) >= CONFIDENT_PROB
    figures = {"max_abs_logit": float(diff.max()), "mean_abs_logit": float(diff.mean()),
               "top1": float(same.mean()),
               "top5": float((top5 == ref_top1[:, None]).any(1).mean()), "n": int(len(ref)),
               "top1_confident": float(same[confident].mean()) if confident.any() else None,
               "n_confident": int(confident.sum())}
    return judge(figures, precision, "classification")


def detection_drift(reference, detections, precision: str = "fp32", iou: float = 0.5,
                    min_score: float = 0.3, gt_score: float | None = None) -> dict:
    """Per-box drift of detections against reference detections on the same frames.

    ``reference`` and ``detections``: lists (one per frame) of objects with ``boxes``,
    ``scores``, ``labels``. Boxes scoring >= ``min_score`` in either are matched one-to-one
    per class (Hungarian on IoU >= ``iou``). Reports the mean IoU and largest score difference
    of matched pairs and the fraction left unmatched.

    ``gt_score``: also judge the mAP@0.5 change (``map50_drop``) on footage without labels
    (real video): the reference's own boxes scoring >= ``gt_score`` are the ground truth.
    The reference scores 1.0 against them by construction (``reference_map50``), so the drop
    is 1 - ``map50``, the mAP@0.5 of ``detections`` (all their boxes, ranked by score).
    Unlike ``unmatched_frac`` it does not count a box that only crossed ``min_score``: a
    person FP32 finds at 0.52 and INT8 at 0.45 is still found, just ranked lower."""
    from .track import box_iou

    ious, score_diffs, unmatched, total = [], [], 0, 0
    for ref, det in zip(reference, detections, strict=True):
        a_keep, b_keep = np.asarray(ref.scores) >= min_score, np.asarray(det.scores) >= min_score
        a_boxes, b_boxes = np.asarray(ref.boxes)[a_keep], np.asarray(det.boxes)[b_keep]
        a_lab, b_lab = np.asarray(ref.labels)[a_keep], np.asarray(det.labels)[b_keep]
        a_sc, b_sc = np.asarray(ref.scores)[a_keep], np.asarray(det.scores)[b_keep]
        total += len(a_boxes) + len(b_boxes)
        if len(a_boxes) and len(b_boxes):
            m = box_iou(a_boxes, b_boxes)
            m[a_lab[:, None] != b_lab[None, :]] = 0
            r, c = linear_sum_assignment(m, maximize=True)
            ok = m[r, c] >= iou
            ious += m[r, c][ok].tolist()
            score_diffs += np.abs(a_sc[r[ok]] - b_sc[c[ok]]).tolist()
            unmatched += len(a_boxes) + len(b_boxes) - 2 * int(ok.sum())
        else:
            unmatched += len(a_boxes) + len(b_boxes)
    figures = {"mean_box_iou": float(np.mean(ious)) if ious else float("nan"),
               "max_score_diff": float(np.max(score_diffs)) if score_diffs else 0.0,
               "unmatched_frac": unmatched / total if total else 0.0, "boxes": total}
    if gt_score is not None:
        figures.update(_map50_against_reference(reference, detections, gt_score))
    return judge(figures, precision, "detection")


def image_drift(reference: np.ndarray, output: np.ndarray, precision: str = "fp32",
                gain_db: float | None = None, reference_gain_db: float | None = None) -> dict:
    """PSNR of a filter's output against FP32's on the same input (identical outputs: inf;
    above ~45 dB differences are invisible), and, when both gains over bicubic are given, the
    share of FP32's gain this runtime keeps, judged against TOLERANCES["image"][precision]."""
    return image_verdict(psnr(reference, output), precision, gain_db, reference_gain_db)


def image_verdict(psnr_db: float, precision: str, gain_db: float | None = None,
                  reference_gain_db: float | None = None) -> dict:
    """The image judge from a PSNR already measured (see :func:`image_drift`)."""
    figures = {"psnr_db": psnr_db}
    # A share of a gain is only meaningful when there is a gain to share.
    if gain_db is not None and reference_gain_db is not None and reference_gain_db > 0.05:
        figures["gain_kept"] = gain_db / reference_gain_db
    return judge(figures, precision, "image")


def _map50_against_reference(reference, detections, gt_score: float) -> dict:
    from .mot import GroundTruth

    frames, boxes, labels = [np.zeros(0, np.int64)], [np.zeros((0, 4))], [np.zeros(0, np.int64)]
    for f, r in enumerate(reference):
        keep = np.asarray(r.scores) >= gt_score
        boxes.append(np.asarray(r.boxes, np.float64).reshape(-1, 4)[keep])
        labels.append(np.asarray(r.labels, np.int64)[keep])
        frames.append(np.full(int(keep.sum()), f, np.int64))
    n = sum(len(b) for b in boxes)
    if n == 0:  # nothing confident to find: no mAP, and nothing to lose
        return {"map50": float("nan"), "reference_map50": float("nan"), "map50_drop": 0.0,
                "gt_boxes": 0, "gt_score": gt_score}
    gt = GroundTruth(frame=np.concatenate(frames), track_id=np.arange(n), boxes=np.concatenate(boxes),
                     class_id=np.concatenate(labels), visibility=np.ones(n), active=np.ones(n, np.int64))

    def map50(dets):
        return detection_metrics(gt, dict(enumerate(dets)))["map50"]

    ref_map, det_map = map50(reference), map50(detections)
    return {"map50": det_map, "reference_map50": ref_map, "map50_drop": ref_map - det_map,
            "gt_boxes": n, "gt_score": gt_score}


def judge(figures: dict, precision: str, output: str) -> dict:
    """The one drift judge: PASS when every figure with a tolerance in
    ``TOLERANCES[output][precision]`` is within it (figures without one are reported only).
    ``output``: "classification", "detection" or "image"; ``precision``: "fp32", "tf32",
    "fp16" or "int8" (a runtime's ``precision``, e.g. ``matrix.Matrix.precision(kind)``).
    Returns the figures with "precision", "checks" (name -> bool) and "verdict"."""
    if output not in TOLERANCES:
        raise ValueError(f"output must be one of {sorted(TOLERANCES)}; found {output!r}.")
    table = TOLERANCES[output]
    if precision not in table:
        raise ValueError(f"precision must be one of {sorted(table)}; found {precision!r}.")
    checks = {}
    for name, value in figures.items():
        limit = table[precision].get(name)
        if limit is not None:
            checks[name] = bool(value <= limit) if name in LOWER_IS_BETTER else bool(value >= limit)
    return {**figures, "precision": precision, "checks": checks,
            "verdict": "PASS" if all(checks.values()) else "FAIL"}
