"""MOTChallenge ground-truth files (gt.txt) and sequence folders in.

Inside the workbook a box is xyxy float pixels, 0-based, and frames count from 0.
A MOTChallenge file is xywh, 1-based for both pixels and frames. The conversion
happens here and nowhere else.

Two layouts of a gt.txt line exist:

- MOT15 (2D MOT 2015): ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z``; x, y, z
  are world coordinates (often -1) and every row is a pedestrian;
- MOT16/17/20: ``frame,id,bb_left,bb_top,bb_width,bb_height,flag,class,visibility``.

``read_gt`` tells them apart (``detect_layout``) and turns both into one GroundTruth in the
workbook's numbering (COCO ids: person = 1, car = 3, which MOTChallenge shares), with
MOTChallenge's ignore rules expressed as ``active = 0`` (a don't-care region for
helpers.metrics). ``load_sequence`` opens a downloaded sequence folder.
"""

from __future__ import annotations

import configparser
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import write_text

COLUMNS = "frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility"
LAYOUTS = {  # layout -> its columns; "mot16" also reads MOT17 files
    "mot15": "frame,id,bb_left,bb_top,bb_width,bb_height,conf,x,y,z",
    "mot16": COLUMNS,
    "mot20": COLUMNS,
}
PEDESTRIAN = 1  # MOTChallenge's class 1, COCO's person: the only class MOTChallenge scores
# Classes whose boxes are ignore regions for pedestrians (TrackEval's distractor classes):
# person on vehicle, static person, distractor, reflection; MOT20 adds non-motorized vehicle.
DISTRACTORS = {"mot15": (), "mot16": (2, 7, 8, 12), "mot20": (2, 6, 7, 8, 12)}
MOT15_SEQUENCES = frozenset((  # 2D MOT 2015 names carry no benchmark prefix
    "ADL-Rundle-1", "ADL-Rundle-3", "ADL-Rundle-6", "ADL-Rundle-8", "AVG-TownCentre",
    "ETH-Bahnhof", "ETH-Crossing", "ETH-Jelmoli", "ETH-Linthescher", "ETH-Pedcross2",
    "ETH-Sunnyday", "KITTI-13", "KITTI-16", "KITTI-17", "KITTI-19", "PETS09-S2L1",
    "PETS09-S2L2", "TUD-Campus", "TUD-Crossing", "TUD-Stadtmitte", "Venice-1", "Venice-2"))


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
MAX_FRAME = 10_000_000  # 93 hours at 30 fps: a larger "frame" is a misread column
_BENCHMARK = re.compile(r"(?:2D)?MOT(15|2015|16|17|20)(?:[-_].*)?", re.IGNORECASE)
_LAYOUT_OF_YEAR = {"15": "mot15", "2015": "mot15", "16": "mot16", "17": "mot16", "20": "mot20"}
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


def _read_rows(path: Path) -> list:
    """[(line number, fields as text, values)] of a MOTChallenge file, every line checked."""
    if not path.is_file():
        raise FileNotFoundError(f"MOT ground-truth file not found: {path}. "
                                "Check the path, or write one with helpers.mot.write_gt().")
    rows = []
    data = path.read_bytes()
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of line 1.
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        lineno = data[:exc.start].count(b"\n") + 1
        line = data.splitlines()[lineno - 1]
        if line.lstrip().startswith(b"#"):
            # A comment in another encoding (cp1252 from a Windows tool): its text is never
            # read, so decode it leniently rather than refuse the whole file.
            lines = data.decode("utf-8-sig", errors="replace").splitlines()
        else:
            raise ValueError(f"{path}, line {lineno}: not UTF-8 text (byte {data[exc.start]:#04x}). "
                             "A gt.txt holds only numbers; re-save the file as UTF-8 or "
                             "delete this line.") from None
    for lineno, line in enumerate(lines, 1):
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
        bad = [COLUMNS.split(",")[j] if j < 9 else f"column {j + 1}"
               for j, x in enumerate(v) if not math.isfinite(x)]
        if bad:
            raise ValueError(f"{where}: expected finite numbers, found NaN or inf in "
                             f"{', '.join(bad)}: {text!r}. Fix or delete this line.")
        if v[0] > MAX_FRAME:
            raise ValueError(f"{where}: frame number {parts[0]} is beyond any real sequence "
                             f"(at most {MAX_FRAME:,}). Is the first column the frame "
                             "number? Fix or delete this line.")
        if v[0] < 1 or v[0] != int(v[0]):
            raise ValueError(f"{where}: expected a whole frame number >= 1 (MOT frames are "
                             f"1-based), found {parts[0]!r}. If the file was written 0-based, "
                             "add 1 to the first column.")
        if v[4] < 0 or v[5] < 0:
            raise ValueError(f"{where}: expected bb_width and bb_height >= 0, found "
                             f"{parts[4]!r}, {parts[5]!r}. Fix or delete this line.")
        rows.append((lineno, parts, v))
    return rows


def _class_and_visibility_fit(c: float, vis: float) -> bool:
    """Could these be a MOT16+ class and visibility (-1 stands for "not given")?"""
    return (c == -1 or (c >= 1 and c == int(c))) and (vis == -1 or 0.0 <= vis <= 1.0)


def _sequence_info(folder: Path) -> dict:
    ini = folder / "seqinfo.ini"
    if not ini.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini)
        return dict(parser["Sequence"])  # option names come back lower-case
    except (configparser.Error, KeyError) as exc:
        raise ValueError(f"{ini}: expected an INI file with a [Sequence] section (name, imDir, "
                         f"frameRate, seqLength, imWidth, imHeight), found an error: {exc}. "
                         "Fix the file or delete it.") from None


def _named_layout(path: Path):
    """(layout, what said so) from a seqinfo.ini name or a folder name, nearest first; or None."""
    names = [(name, f"name {name!r} in {p / 'seqinfo.ini'}")
             for p in (path.parent, path.parent.parent)
             if (name := _sequence_info(p).get("name", "").strip())]
    # gt.txt sits in <benchmark>/<split>/<sequence>/gt/: the nearest five folders say enough.
    names += [(part, f"folder {part!r} in the path") for part in path.resolve().parts[-6:-1][::-1]]
    for name, why in names:
        m = _BENCHMARK.fullmatch(name)
        if m:
            return _LAYOUT_OF_YEAR[m[1]], why
        if name in MOT15_SEQUENCES:
            return "mot15", f"{why} (a MOT15 sequence)"
    return None


def _detect(path: Path, rows) -> str:
    new = old = unclear = None  # first line that reads only as MOT16+, only as MOT15, as either
    for lineno, parts, v in rows:
        if len(v) in (8, 9):
            new = new or (lineno, f"{len(v)} columns")
        elif len(v) == 10 and not v[7] == v[8] == -1:
            if _class_and_visibility_fit(v[7], v[8]):
                unclear = unclear or (lineno, ",".join(parts[7:]))
            else:
                old = old or (lineno, ",".join(parts[7:]))
    if new and old:
        raise ValueError(f"{path}: mixes the two MOTChallenge layouts: line {new[0]} has "
                         f"{new[1]} (MOT16/17/20: {COLUMNS}), line {old[0]} ends in world "
                         f"coordinates {old[1]!r} (MOT15: {LAYOUTS['mot15']}). Split the file, "
                         "or pass layout='mot15' or layout='mot16' to read it one way.")
    named = _named_layout(path)
    if named:
        layout, why = named
        clash = new if layout == "mot15" else old
        if clash:
            seen = "MOT16+ columns" if layout == "mot15" else "MOT15 world coordinates"
            raise ValueError(f"{path}: the {why} says {layout.upper()}, but line {clash[0]} "
                             f"holds {seen} ({clash[1]}). Pass layout='mot15' or "
                             "layout='mot16' to say which it is.")
        return layout
    if old:
        return "mot15"
    if new or not unclear:
        return "mot16"  # without class columns or with -1 in them, both layouts read alike
    raise ValueError(f"{path}, line {unclear[0]}: cannot tell the layout. Columns 8-10 "
                     f"({unclear[1]}) could be MOT15 world coordinates or a MOT16+ class, "
                     "visibility and an extra column, and no seqinfo.ini name or folder name "
                     "(MOT15, MOT16-02, MOT17-04-FRCNN, MOT20-01, ...) says which benchmark "
                     "this is. Pass layout='mot15' or layout='mot16'.")


def detect_layout(path) -> str:
    """The layout of a MOTChallenge file: "mot15", "mot16" (also MOT17) or "mot20".

    Evidence, strongest first: the benchmark or sequence name in seqinfo.ini or in the path
    (MOT15 / 2DMOT2015 / a 2015 sequence name, MOT16-*, MOT17-*, MOT20-*); then the lines
    themselves (9 columns: MOT16+; columns 8-10 that cannot be a class and a visibility:
    MOT15). Raises ValueError, naming the line, when the file mixes both or when nothing
    decides; pass ``layout=`` to read_gt then.
    """
    path = Path(path)
    return _detect(path, _read_rows(path))


def read_gt(path, layout: str | None = None) -> GroundTruth:
    """Read a MOTChallenge file with 6 to 10 columns (gt.txt, det.txt, either layout).

    ``layout``: "mot15", "mot16" (MOT16/17) or "mot20"; None detects it (detect_layout).
    Missing conf, class and visibility become 1, and so does -1 in the class or visibility
    column (det.txt's placeholders). A conf or flag of 0 makes a row ignored (``active = 0``);
    a detector score in that column counts as active.

    MOTChallenge's ignore rules, as its devkit applies them:
    - MOT15: every row is a pedestrian (class 1, visibility 1); columns 8-10 are dropped.
    - MOT16+: the distractor classes (DISTRACTORS: person on vehicle, static person,
      distractor, reflection; MOT20 also non-motorized vehicle) become class 1 with
      ``active = 0``: ignore regions, so a person prediction on one is neither a hit nor a
      false positive. Other classes keep their number (3 is car for both MOTChallenge and
      COCO) and flag. MOTChallenge scores pedestrians only: ``gt.select(gt.class_id ==
      PEDESTRIAN)`` is what it evaluates (helpers.evaluate.sequence does that).
    One difference remains: the devkit drops a flag-0 pedestrian, so a prediction on it is a
    false positive; here it is a don't-care region like any other ``active = 0`` row.
    """
    return _read(Path(path), layout)[0]


def _read(path: Path, layout: str | None) -> tuple[GroundTruth, str]:
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)} or None (detect it); "
                         f"found {layout!r}. MOT17 files are 'mot16'.")
    rows = _read_rows(path)
    if not rows:
        return GroundTruth(), layout or "mot16"
    layout = layout or _detect(path, rows)
    values = []
    for lineno, parts, v in rows:
        v = v + [1.0] * (9 - len(v))
        if layout == "mot15":
            v[7] = v[8] = 1.0
        elif not _class_and_visibility_fit(v[7], v[8]):
            raise ValueError(f"{path}, line {lineno}: expected a MOTChallenge class (a whole "
                             f"number >= 1, or -1) and a visibility in [0, 1] (or -1) in "
                             f"columns 8 and 9, found {parts[7]!r}, {parts[8]!r}. If columns "
                             f"8-10 are world coordinates this is a MOT15 file: pass "
                             f"layout='mot15'; else fix this line.")
        values.append(v[:9])
    a = np.asarray(values, dtype=np.float64)
    x1 = a[:, 2] - 1.0
    y1 = a[:, 3] - 1.0
    boxes = np.stack([x1, y1, x1 + a[:, 4], y1 + a[:, 5]], axis=1)
    class_id = np.round(np.where(a[:, 7] == -1, 1, a[:, 7])).astype(np.int64)
    active = (a[:, 6] != 0).astype(np.int64)
    distractor = np.isin(class_id, DISTRACTORS[layout])
    class_id[distractor] = PEDESTRIAN
    active[distractor] = 0
    return GroundTruth(
        frame=a[:, 0].astype(np.int64) - 1,
        track_id=np.round(a[:, 1]).astype(np.int64),
        boxes=boxes,
        class_id=class_id,
        visibility=np.where(a[:, 8] == -1, 1.0, a[:, 8]),
        active=active,
    ), layout


@dataclass(eq=False)
class Sequence:
    """A MOTChallenge sequence folder, opened by load_sequence."""

    name: str
    frames: str  # a URI for helpers.capture.VideoSource: the image folder or a video file
    gt: GroundTruth  # every row read; gt.select(gt.class_id == PEDESTRIAN) is what is scored
    fps: float | None  # seqinfo.ini's frameRate, or a video's own; None when neither says
    size: tuple  # (width, height)
    length: int | None  # frames; None when neither seqinfo.ini nor a video says
    layout: str


def load_sequence(folder, layout: str | None = None) -> Sequence:
    """Open a downloaded MOTChallenge sequence folder (MOT15, MOT16, MOT17 or MOT20 train)::

        MOT17/train/MOT17-02-FRCNN/   seqinfo.ini   gt/gt.txt   img1/000001.jpg ...

    The frames are the seqinfo.ini imDir (default img1/) or, failing that, the one video file
    in the folder. seqinfo.ini is optional (old MOT15 copies lack it): size and length then
    come from the frames. ``layout`` as for read_gt.
    """
    from .capture import IMAGE_SUFFIXES, VideoSource

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MOTChallenge sequence folder not found: {folder}. Expected a "
                                "folder holding seqinfo.ini, gt/gt.txt and img1/ (e.g. "
                                "build/datasets/MOT17/train/MOT17-02-FRCNN).")
    info = _sequence_info(folder)
    gt_path = folder / "gt" / "gt.txt"
    if not gt_path.is_file():
        raise FileNotFoundError(f"{folder} has no gt/gt.txt. Only the train sequences of "
                                "MOTChallenge ship ground truth; pick one from train/.")
    images = folder / info.get("imdir", "img1")
    videos = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in _VIDEO_SUFFIXES)
    if images.is_dir():
        frames = str(images)
        stems = [p.stem for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        numbers = sorted(int(s) for s in stems if s.isdigit())
        if numbers and numbers != list(range(1, len(stems) + 1)):
            raise ValueError(f"{images}: expected {len(stems)} frames numbered 1 to {len(stems)} "
                             f"(000001.jpg, ...), found numbers {numbers[0]} to {numbers[-1]}. "
                             "Frame k of gt.txt must be the k-th image: restore the missing "
                             "frames or unpack the sequence again.")
    elif len(videos) == 1:
        frames = videos[0]
    else:
        raise FileNotFoundError(f"{folder}: expected the frames in {images.name}/ or one video "
                                f"file, found no {images.name}/ and {len(videos)} video files. "
                                f"Unpack the sequence's images into {images}.")
    gt, layout = _read(gt_path, layout)
    try:
        size = (int(info["imwidth"]), int(info["imheight"]))
        length = int(info["seqlength"])
    except (KeyError, ValueError):
        size = length = None
    fps = float(info["framerate"]) if "framerate" in info else None
    if size is None or (fps is None and frames in videos):
        with VideoSource(frames) as src:
            size, length = size or src.size, length or src.frame_count
            if frames in videos:
                fps = fps or src.fps
    return Sequence(name=info.get("name", folder.name), frames=frames, gt=gt, fps=fps,
                    size=size, length=length, layout=layout)
