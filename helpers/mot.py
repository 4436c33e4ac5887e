"""MOTChallenge ground-truth files (gt.txt) in and out.

Inside the workbook a box is xyxy float pixels, 0-based, and frames count from 0.
A MOTChallenge file is xywh, 1-based for both pixels and frames. The conversion
happens here and nowhere else.

A gt.txt line (MOT16/17):  frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import write_text

COLUMNS = "frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility"


def _column(values, dtype, n: int | None = None) -> np.ndarray:
    a = np.asarray(values if values is not None else [], dtype=dtype)
    return a.reshape(-1) if n is None else a.reshape(-1, n)


@dataclass(eq=False)
class GroundTruth:
    """Parallel arrays, one row per (frame, object). Frames are 0-based here."""

    frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    track_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    visibility: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    active: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self):
        self.frame = _column(self.frame, np.int64)
        self.track_id = _column(self.track_id, np.int64)
        self.boxes = _column(self.boxes, np.float64, 4)
        self.class_id = _column(self.class_id, np.int64)
        self.visibility = _column(self.visibility, np.float64)
        self.active = _column(self.active, np.int64)
        lengths = {name: len(getattr(self, name)) for name in
                   ("frame", "track_id", "boxes", "class_id", "visibility", "active")}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"GroundTruth arrays must all have the same length; found {lengths}. "
                             "Build every column from the same list of rows.")

    def __len__(self) -> int:
        return len(self.frame)

    def select(self, rows) -> "GroundTruth":
        return GroundTruth(self.frame[rows], self.track_id[rows], self.boxes[rows],
                           self.class_id[rows], self.visibility[rows], self.active[rows])

    def for_frame(self, i: int) -> "GroundTruth":
        return self.select(self.frame == i)

    def for_track(self, track_id: int) -> "GroundTruth":
        return self.select(self.track_id == track_id)

    def frames(self) -> np.ndarray:
        return np.unique(self.frame)

    def track_ids(self) -> np.ndarray:
        return np.unique(self.track_id)

    @classmethod
    def concat(cls, parts) -> "GroundTruth":
        parts = list(parts)
        if not parts:
            return cls()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                     ("frame", "track_id", "boxes", "class_id", "visibility", "active")))


def _num(v: float) -> str:
    # Whole numbers print as ints, so integer boxes look exactly like the MOT17 files.
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def write_gt(path, gt: GroundTruth) -> Path:
    """Write ``gt`` as a MOT16/17 gt.txt, sorted by frame then id. Returns the path."""
    path = Path(path)
    order = np.lexsort((gt.track_id, gt.frame))
    # Round the corners before taking the width, so reading back gives each corner
    # within 0.0005 instead of letting two rounding errors add up on x2/y2.
    lt = np.round(gt.boxes[order, :2] + 1.0, 3)
    rb = np.round(gt.boxes[order, 2:] + 1.0, 3)
    wh = rb - lt
    lines = []
    for k, r in enumerate(order):
        lines.append(",".join((
            str(int(gt.frame[r]) + 1), str(int(gt.track_id[r])),
            _num(lt[k, 0]), _num(lt[k, 1]), _num(wh[k, 0]), _num(wh[k, 1]),
            str(int(gt.active[r])), str(int(gt.class_id[r])), _num(gt.visibility[r]),
        )))
    # A reader (an evaluator, another notebook) must never see a half-written file.
    return write_text(path, "".join(line + "\n" for line in lines))


_SPLIT = re.compile(r"[,\s]+")


def read_gt(path) -> GroundTruth:
    """Read a MOTChallenge file with 6 to 10 columns (gt.txt, det.txt, MOT15-style).

    Missing conf, class and visibility become 1. A value of -1 in the class or
    visibility column (the world-coordinate placeholders of det.txt / MOT15) also
    becomes 1. A detector score in the conf column becomes active = 1 unless it is 0.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MOT ground-truth file not found: {path}. "
                                "Check the path, or write one with helpers.mot.write_gt().")
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = _SPLIT.split(text)
            where = f"{path}, line {lineno}"
            if not 6 <= len(parts) <= 10:
                raise ValueError(f"{where}: expected 6 to 10 comma-separated numbers "
                                 f"({COLUMNS}[,extra]), found {len(parts)} fields: {text!r}. "
                                 "Fix or delete this line.")
            try:
                v = [float(p) for p in parts]
            except ValueError:
                raise ValueError(f"{where}: expected numbers ({COLUMNS}), found {text!r}. "
                                 "Fix or delete this line.") from None
            v += [1.0] * (9 - len(v))
            if v[0] < 1 or v[0] != int(v[0]):
                raise ValueError(f"{where}: expected a whole frame number >= 1 (MOT frames are "
                                 f"1-based), found {parts[0]!r}. If the file was written 0-based, "
                                 "add 1 to the first column.")
            if v[4] < 0 or v[5] < 0:
                raise ValueError(f"{where}: expected bb_width and bb_height >= 0, found "
                                 f"{parts[4]!r}, {parts[5]!r}. Fix or delete this line.")
            rows.append(v[:9])
    if not rows:
        return GroundTruth()
    a = np.asarray(rows, dtype=np.float64)
    x1 = a[:, 2] - 1.0
    y1 = a[:, 3] - 1.0
    boxes = np.stack([x1, y1, x1 + a[:, 4], y1 + a[:, 5]], axis=1)
    class_id = np.where(a[:, 7] == -1, 1, a[:, 7])
    visibility = np.where(a[:, 8] == -1, 1.0, a[:, 8])
    return GroundTruth(
        frame=a[:, 0].astype(np.int64) - 1,
        track_id=np.round(a[:, 1]).astype(np.int64),
        boxes=boxes,
        class_id=np.round(class_id).astype(np.int64),
        visibility=visibility,
        active=(a[:, 6] != 0).astype(np.int64),
    )
