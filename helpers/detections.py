"""One frame of boxes, from the detector through the tracker to drawing and the metrics.

    dets = Detections(boxes, scores, labels)          # what helpers.detect returns
    dets[dets.scores > 0.5]                           # boolean masks and index arrays select rows
    tracks = Tracker().update(dets)                   # the same type, with track_ids set

``boxes`` are (N, 4) xyxy float pixels in the original frame; ``scores`` (N,); ``labels`` (N,)
class ids; ``track_ids`` (N,) or None until a tracker has assigned identities (supervision's
``Detections.tracker_id`` plays the same part).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detections"]


def _array(value, dtype, name: str, shape: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Detections.{name}: expected a numeric array of shape {shape}, found "
                         f"{type(value).__name__} ({exc}). Pass numpy arrays; convert a torch "
                         "tensor with .cpu().numpy() first.") from None


@dataclass(eq=False)
class Detections:
    """``boxes`` (N, 4) xyxy, ``scores`` (N,), ``labels`` (N,), optional ``track_ids`` (N,)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray | None = None
    track_ids: np.ndarray | None = None

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
        names = ["scores", "labels"]
        if self.track_ids is not None:
            self.track_ids = _array(self.track_ids, np.int64, "track_ids", f"({n},)")
            names.append("track_ids")
        for name in names:
            a = getattr(self, name)
            if a.shape != (n,):
                raise ValueError(f"Detections.{name}: expected shape ({n},) to match boxes "
                                 f"{self.boxes.shape}, found {a.shape}. Give one {name[:-1]} "
                                 "per box.")
        if not (np.isfinite(self.boxes).all() and np.isfinite(self.scores).all()):
            raise ValueError("Detections: expected finite boxes and scores, found NaN or inf. "
                             "The numbers were already broken when they got here: a network "
                             "that overflowed (FP16) or a broken engine, or boxes computed from "
                             "bad input. helpers.detect checks raw outputs and names the runtime.")
        flipped = (self.boxes[:, 2] < self.boxes[:, 0]) | (self.boxes[:, 3] < self.boxes[:, 1])
        if flipped.any():
            i = int(np.argmax(flipped))
            raise ValueError(f"Detections.boxes: expected xyxy boxes (x2 >= x1, y2 >= y1); box {i} "
                             f"is {self.boxes[i].tolist()}. If these are (x, y, width, height), "
                             "convert them first: x2 = x + width, y2 = y + height.")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> Detections:
        """Rows selected by a boolean mask, an index array, a slice or one int (kept 2-D)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (len(self),):
                raise ValueError(f"Detections[mask]: expected a boolean mask of shape ({len(self)},), "
                                 f"found {index.shape}. Build it from this object's own arrays, "
                                 "e.g. dets[dets.scores > 0.5].")
            if index.dtype != bool and not np.issubdtype(index.dtype, np.integer) and index.size:
                raise ValueError(f"Detections[index]: expected a boolean mask, integer indices or "
                                 f"a slice; found an array of {index.dtype}.")
            index = index.astype(np.int64) if index.dtype != bool else index
        ids = None if self.track_ids is None else self.track_ids[index]
        return Detections(self.boxes[index], self.scores[index], self.labels[index], ids)
