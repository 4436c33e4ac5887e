"""Multi-object tracking by detection, in the SORT / ByteTrack style.

Each track carries a constant-velocity Kalman filter on (cx, cy, w, h). Every frame:

1. predict every track one frame ahead;
2. match tracks to high-score detections (Hungarian on IoU, same label only);
3. match the tracks still unmatched to low-score detections (ByteTrack's second pass:
   an occluded or blurred object often keeps a low-score detection, and throwing that
   away is what breaks identities);
4. start tentative tracks from high-score detections nobody claimed;
5. forget tracks that went ``max_age`` frames without a match.

Boxes are xyxy float pixels in the original frame, like everywhere in the workbook.
Papers: Bewley et al. 2016 (SORT, arXiv:1602.00763); Zhang et al. 2022 (ByteTrack,
arXiv:2110.06864).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Detections", "Tracks", "Tracker", "box_iou"]


def _array(value, dtype, name: str, shape: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Detections.{name}: expected a numeric array of shape {shape}, found "
                         f"{type(value).__name__} ({exc}). Pass numpy arrays; convert a torch "
                         "tensor with .cpu().numpy() first.") from None


@dataclass(eq=False)
class Detections:
    """One frame of detector output: ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``labels`` (N,)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray | None = None

    def __post_init__(self):
        self.boxes = _array(self.boxes, np.float64, "boxes", "(N, 4)")
        if self.boxes.size == 0:
            # An empty list arrives as shape (0,); zero detections is a normal frame.
            self.boxes = self.boxes.reshape(0, 4)
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"Detections.boxes: expected shape (N, 4) xyxy, found "
                             f"{self.boxes.shape}. Stack the boxes into one (N, 4) array.")
        n = len(self.boxes)
        self.scores = _array(self.scores, np.float64, "scores", f"({n},)")
        if self.labels is None:
            self.labels = np.zeros(n, np.int64)
        self.labels = _array(self.labels, np.int64, "labels", f"({n},)")
        for name in ("scores", "labels"):
            a = getattr(self, name)
            if a.shape != (n,):
                raise ValueError(f"Detections.{name}: expected shape ({n},) to match boxes "
                                 f"{self.boxes.shape}, found {a.shape}. Give one {name[:-1]} "
                                 "per box.")
        if not (np.isfinite(self.boxes).all() and np.isfinite(self.scores).all()):
            raise ValueError("Detections: expected finite boxes and scores, found NaN or inf. "
                             "Check the detector's postprocess for a division by zero.")

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(eq=False)
class Tracks:
    """Confirmed tracks seen in this frame: ``boxes`` (M, 4) xyxy, ``track_ids``, ``labels``,
    ``scores`` (the score of the detection that matched the track)."""

    boxes: np.ndarray
    track_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# State x = (cx, cy, w, h, vcx, vcy, vw, vh); one step is one frame.
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
# Noise scales with the box size (as in ByteTrack): a 10 px wobble is large for a
# distant pedestrian and nothing for a car filling the frame.
_POS_STD, _VEL_STD = 1 / 20, 1 / 160


def _xyxy_to_z(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w, h])


class _Track:
    def __init__(self, box, score, label, track_id):
        z = _xyxy_to_z(box)
        self.x = np.concatenate([z, np.zeros(4)])
        size = np.array([z[2], z[3], z[2], z[3]])
        # Velocity is unknown at birth, so start it uncertain and let the first matches pin it.
        self.P = np.diag(np.concatenate([2 * _POS_STD * size, 10 * _VEL_STD * size]) ** 2)
        self.label, self.score, self.id = int(label), float(score), track_id
        self.hits, self.misses, self.confirmed = 1, 0, False

    def _size(self) -> np.ndarray:
        w, h = max(self.x[2], 1.0), max(self.x[3], 1.0)
        return np.array([w, h, w, h])

    def predict(self):
        # A shrinking box would otherwise reach negative width during a long occlusion.
        for k in (2, 3):
            if self.x[k] + self.x[k + 4] <= 1.0:
                self.x[k + 4] = 0.0
        size = self._size()
        Q = np.diag(np.concatenate([_POS_STD * size, _VEL_STD * size]) ** 2)
        self.x = _F @ self.x
        self.P = _F @ self.P @ _F.T + Q

    def update(self, box, score):
        R = np.diag((_POS_STD * self._size()) ** 2)
        S = _H @ self.P @ _H.T + R
        K = np.linalg.solve(S, _H @ self.P).T
        self.x = self.x + K @ (_xyxy_to_z(box) - _H @ self.x)
        self.P = (np.eye(8) - K @ _H) @ self.P
        self.score = float(score)
        self.hits += 1
        self.misses = 0

    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _match(tracks: list, boxes: np.ndarray, labels: np.ndarray, gate: float):
    """Hungarian assignment on IoU; returns (track index, detection index) pairs."""
    if not tracks or len(boxes) == 0:
        return []
    iou = box_iou(np.stack([t.box() for t in tracks]), boxes)
    # Class-aware: a car detection never feeds a person track, however well it overlaps.
    iou[np.array([t.label for t in tracks])[:, None] != labels[None, :]] = 0.0
    rows, cols = linear_sum_assignment(iou, maximize=True)
    keep = iou[rows, cols] >= gate
    return list(zip(rows[keep], cols[keep]))


class Tracker:
    """SORT-style tracker with ByteTrack's low-score second pass.

    ``high_score``: detections at or above it are matched first and may start tracks.
    ``low_score``: detections in [low_score, high_score) only extend existing tracks;
    set ``low_score = high_score`` for a single-pass (plain SORT) tracker.
    """

    def __init__(self, max_age: int = 30, min_hits: int = 3, iou_gate: float = 0.3,
                 high_score: float = 0.5, low_score: float = 0.1):
        if max_age < 0 or min_hits < 1:
            raise ValueError(f"Tracker: expected max_age >= 0 and min_hits >= 1, found "
                             f"max_age={max_age}, min_hits={min_hits}.")
        if not 0.0 <= iou_gate <= 1.0:
            raise ValueError(f"Tracker: expected 0 <= iou_gate <= 1, found {iou_gate}.")
        if not 0.0 <= low_score <= high_score:
            raise ValueError(f"Tracker: expected 0 <= low_score <= high_score, found "
                             f"low_score={low_score}, high_score={high_score}. Swap them, or "
                             "set them equal for a single pass.")
        self.max_age, self.min_hits, self.iou_gate = int(max_age), int(min_hits), float(iou_gate)
        self.high_score, self.low_score = float(high_score), float(low_score)
        self.reset()

    def reset(self):
        """Forget every track and restart IDs at 1 (call between video sequences)."""
        self._tracks: list[_Track] = []
        self._next_id = 1
        self.frame_count = 0

    def update(self, detections: Detections) -> Tracks:
        if not isinstance(detections, Detections):
            raise ValueError(f"Tracker.update: expected a Detections, found "
                             f"{type(detections).__name__}. Wrap the arrays: "
                             "Detections(boxes, scores, labels).")
        self.frame_count += 1
        for t in self._tracks:
            t.predict()

        d = detections
        high = np.flatnonzero(d.scores >= self.high_score)
        low = np.flatnonzero((d.scores >= self.low_score) & (d.scores < self.high_score))
        matched = set()
        unmatched = list(range(len(self._tracks)))
        used_high = set()
        for first_pass, pool in ((True, high), (False, low)):
            candidates = [self._tracks[i] for i in unmatched]
            for ti, di in _match(candidates, d.boxes[pool], d.labels[pool], self.iou_gate):
                track = candidates[ti]
                track.update(d.boxes[pool[di]], d.scores[pool[di]])
                matched.add(id(track))
                if first_pass:
                    used_high.add(int(pool[di]))
            unmatched = [i for i in unmatched if id(self._tracks[i]) not in matched]

        survivors = []
        for t in self._tracks:
            if id(t) not in matched:
                t.misses += 1
                # A tentative track that misses once was most likely a false positive.
                if not t.confirmed or t.misses > self.max_age:
                    continue
            elif t.hits >= self.min_hits or self.frame_count <= self.min_hits:
                # SORT reports from the first frames too, else every sequence
                # would open with min_hits frames of nothing.
                t.confirmed = True
            survivors.append(t)
        for i in high:
            if int(i) not in used_high:
                t = _Track(d.boxes[i], d.scores[i], d.labels[i], self._next_id)
                self._next_id += 1
                t.confirmed = self.frame_count <= self.min_hits or self.min_hits <= 1
                survivors.append(t)
        self._tracks = survivors

        shown = [t for t in self._tracks if t.confirmed and t.misses == 0]
        if not shown:
            return Tracks(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.int64),
                          np.zeros(0))
        return Tracks(np.stack([t.box() for t in shown]),
                      np.array([t.id for t in shown], np.int64),
                      np.array([t.label for t in shown], np.int64),
                      np.array([t.score for t in shown]))
