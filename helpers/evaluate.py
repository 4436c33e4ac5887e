"""Run a detector (and optionally a tracker or a denoiser) over synthetic clips and score it.

The one place that turns "detector + scenes" into numbers, so the training script, the
quality test and the notebooks all measure the same way:

    scores = evaluate.detection(detector, seeds=(101, 102, 103), noise=0.3)
    scores["map50"], scores["map"]

A downloaded MOTChallenge sequence folder is scored the same way, pedestrians only, as the
benchmark does:

    scores = evaluate.sequence(detector, "build/datasets/MOT17/train/MOT17-02-FRCNN")
    scores["map50"], scores["mota"], scores["idf1"]

Footage without ground truth is compared with a reference detector instead (its confident
boxes as pseudo ground truth: agreement, not accuracy):

    gap = evaluate.agreement(real_dets, synth_dets)   # dicts frame -> Detections
    gap["ap50"], gap["matched"], gap["per_frame_reference"], gap["per_frame_other"]

Frames of several scenes are numbered consecutively (scene k's frame i becomes
``k * length + i``) so one pycocotools evaluation covers them all. Objects less than
``MIN_VISIBILITY`` visible are don't-care regions (neither hits nor false positives), as in
KITTI's and CityPersons' protocols: their visible pixels belong to whatever hides them.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from . import metrics, mot, synth
from .track import Tracker

HELD_OUT_SEEDS = (101, 102, 103)  # never used by tools/train_detector.py (it trains on 1000+)
MIN_VISIBILITY = 0.3
SIZE = (640, 480)


@functools.lru_cache(maxsize=3)  # up to ~0.8 GB: three whole 300-frame clips
def _clip(seed: int, noise: float, stride: int, length: int, density: float) -> tuple:
    """Rendered frames of one scene, kept for the next evaluation of the same clip (rendering
    noise costs more than detecting on it; a sweep over settings reuses the pixels)."""
    scene = synth.Scene(size=SIZE, seed=seed, noise=noise, length=length, density=density)
    out = []
    for i in range(0, scene.length, stride):
        f = scene.frame(i)
        image = f.noisy if noise > 0 else f.clean
        out.append((i, image, f.gt))
    return tuple(out)


def _frames(seeds, noise: float, stride: int, length: int, density: float):
    for k, seed in enumerate(seeds):
        for i, image, g in _clip(int(seed), float(noise), int(stride), int(length), float(density)):
            gt = mot.GroundTruth(g.frame + k * length, g.track_id, g.boxes, g.class_id,
                                 g.visibility, g.active)
            yield k, i, k * length + i, image, gt


def detection(detector, seeds=HELD_OUT_SEEDS, noise: float = 0.0, stride: int = 5,
              length: int = 300, density: float = 1.0, denoiser: Callable | None = None,
              min_visibility: float = MIN_VISIBILITY, progress: bool = False) -> dict:
    """helpers.metrics.detection_metrics of ``detector`` on every ``stride``-th frame of the
    scenes ``seeds``. With ``denoiser`` (a TemporalDenoiser, say), every frame of each scene
    goes through it -- temporal filters need the frames in between -- and only the scored
    ones reach the detector. Adds ``frames`` (how many were scored) to the result."""
    from tqdm.auto import tqdm

    preds, gts = {}, []
    step = 1 if denoiser is not None else stride
    items = _frames(seeds, noise, step, length, density)
    total = len(seeds) * ((length + step - 1) // step)
    last_scene = None
    for k, i, index, image, gt in tqdm(items, total=total, disable=not progress, desc="evaluate"):
        if denoiser is not None:
            if k != last_scene:
                denoiser.reset()
                last_scene = k
            image = denoiser(image)
            if i % stride:
                continue
        preds[index] = detector(image)
        gts.append(gt)
    result = metrics.detection_metrics(mot.GroundTruth.concat(gts), preds,
                                       min_visibility=min_visibility)
    result["frames"] = len(preds)
    return result


def tracking(detector, tracker: Tracker | None = None, seed: int = HELD_OUT_SEEDS[0],
             noise: float = 0.0, length: int = 300, density: float = 1.0,
             denoiser: Callable | None = None, score_thresh: float | None = None,
             min_visibility: float = MIN_VISIBILITY) -> dict:
    """helpers.metrics.tracking_metrics of detector + tracker over one whole scene.

    Detections down to the tracker's ``low_score`` reach it (its second pass needs them)
    unless ``score_thresh`` says otherwise."""
    tracker = tracker or Tracker()
    if score_thresh is None:
        score_thresh = tracker.low_score
    tracker.reset()
    if denoiser is not None:
        denoiser.reset()
    tracks, gts = {}, []
    for _, i, _, image, gt in _frames((seed,), noise, 1, length, density):
        if denoiser is not None:
            image = denoiser(image)
        tracks[i] = tracker.update(detector(image, score_thresh=score_thresh))
        gts.append(gt)
    return metrics.tracking_metrics(mot.GroundTruth.concat(gts), tracks,
                                    min_visibility=min_visibility)


def sequence(detector, folder, tracker: Tracker | None = None, layout: str | None = None,
             person_label: int = mot.PEDESTRIAN, score_thresh: float | None = None,
             min_visibility: float = 0.0, max_frames: int | None = None,
             progress: bool = False) -> dict:
    """Detector + tracker over a MOTChallenge sequence folder (helpers.mot.load_sequence),
    scored as MOTChallenge scores it: pedestrians only, distractors as ignore regions.

    ``person_label``: the detector's label for a person (1 for the bundled and the COCO
    detectors); its other detections are dropped. One detector pass per frame feeds both
    scores, with detections down to ``score_thresh`` (default: the tracker's ``low_score``).
    ``max_frames``: score only the first frames (a quick look on a CPU).

    Returns ``map``, ``map50``, ``mota``, ``idf1``, ``id_switches``, ``frames`` and
    ``sequence`` (its name), with the whole of detection_metrics and tracking_metrics
    under ``detection`` and ``tracking``.
    """
    from tqdm.auto import tqdm

    from .capture import VideoSource
    from .detections import Detections

    seq = mot.load_sequence(folder, layout)
    tracker = tracker or Tracker()
    tracker.reset()
    if score_thresh is None:
        score_thresh = tracker.low_score
    total = seq.length if max_frames is None else min(max_frames, seq.length or max_frames)
    preds, tracks = {}, {}
    with VideoSource(seq.frames, policy="all") as src:
        for frame in tqdm(src, total=total, disable=not progress, desc=seq.name):
            if max_frames is not None and frame.index >= max_frames:
                break
            d = detector(frame.image, score_thresh=score_thresh)
            keep = np.asarray(d.labels) == person_label
            people = Detections(d.boxes[keep], d.scores[keep],
                                np.full(int(keep.sum()), mot.PEDESTRIAN))
            preds[frame.index] = people
            tracks[frame.index] = tracker.update(people)
    gt = seq.gt.select(seq.gt.class_id == mot.PEDESTRIAN)
    if max_frames is not None:
        gt = gt.select(gt.frame < max_frames)
    det = metrics.detection_metrics(gt, preds, min_visibility=min_visibility)
    trk = metrics.tracking_metrics(gt, tracks, min_visibility=min_visibility)
    return {"map": det["map"], "map50": det["map50"], "mota": trk["mota"], "idf1": trk["idf1"],
            "id_switches": trk["id_switches"], "frames": len(preds), "sequence": seq.name,
            "detection": det, "tracking": trk}


def agreement(reference: dict, other: dict, label: int = mot.PEDESTRIAN,
              other_label: int | None = None, reference_score: float = 0.5,
              score_threshold: float = 0.5, iou: float = 0.5) -> dict:
    """How well ``other``'s detections agree with ``reference``'s on the same frames, for
    footage without ground truth: the reference's ``label`` boxes scoring at least
    ``reference_score`` become *pseudo* ground truth, and ``other``'s ``other_label`` boxes
    (default: ``label``) are scored against them by pycocotools (helpers.metrics). The
    numbers say how often the two detectors agree, not which is right.

    ``reference`` and ``other``: dicts ``frame -> Detections`` (anything with ``boxes``,
    ``scores``, ``labels``); every frame of ``other`` must be in ``reference``, and a
    reference frame missing from ``other`` counts as "no detections there". Give ``other``
    down to a low score (0.05, say) for a meaningful AP.

    Returns ``ap50`` (AP at ``iou`` against the pseudo ground truth); ``matched`` (the
    fraction of reference boxes that ``other`` finds at IoU >= ``iou`` with score >=
    ``score_threshold``: recall) and ``precision`` (the fraction of ``other``'s boxes at that
    score that match one); ``per_frame_reference`` / ``per_frame_other`` (mean boxes per
    frame at ``reference_score`` / ``score_threshold``); ``counts_reference`` /
    ``counts_other`` (those counts frame by frame, in frame order); ``frames``; ``tp``,
    ``fp``, ``num_reference``; and the whole of detection_metrics under ``detection``.
    """
    other_label = label if other_label is None else other_label
    extra = sorted(set(other) - set(reference))
    if extra:
        raise ValueError(f"agreement: expected every frame of `other` in `reference`; frames "
                         f"{extra[:5]} are not. Run both detectors over the same frames.")
    frames = sorted(reference)
    rows = []  # (frame, boxes) of the pseudo ground truth
    counts_ref, counts_other, preds = [], [], {}
    for f in frames:
        ref = reference[f]
        keep = (np.asarray(ref.labels) == label) & (np.asarray(ref.scores) >= reference_score)
        boxes = np.asarray(ref.boxes, np.float64).reshape(-1, 4)[keep]
        rows.append((f, boxes))
        counts_ref.append(len(boxes))
        det = other.get(f)
        if det is None:
            b, s = np.zeros((0, 4)), np.zeros(0)
        else:
            mine = np.asarray(det.labels) == other_label
            b = np.asarray(det.boxes, np.float64).reshape(-1, 4)[mine]
            s = np.asarray(det.scores, np.float64)[mine]
        preds[f] = (b, s, np.full(len(b), label, np.int64))  # one class, as the reference
        counts_other.append(int((s >= score_threshold).sum()))
    n = sum(counts_ref)
    gt = mot.GroundTruth(
        frame=np.concatenate([np.full(len(b), f, np.int64) for f, b in rows]) if rows else [],
        track_id=np.arange(1, n + 1), boxes=np.concatenate([b for _, b in rows]) if rows else [],
        class_id=np.full(n, label, np.int64), visibility=np.ones(n), active=np.ones(n, np.int64))
    det = metrics.detection_metrics(gt, preds, iou=iou, score_threshold=score_threshold)
    ap = det["ap_per_class"].get(label, float("nan"))
    return {"ap50": 0.0 if np.isnan(ap) and n else ap, "matched": det["recall"],
            "precision": det["precision"], "tp": det["tp"], "fp": det["fp"], "num_reference": n,
            "frames": len(frames),
            "per_frame_reference": float(np.mean(counts_ref)) if frames else float("nan"),
            "per_frame_other": float(np.mean(counts_other)) if frames else float("nan"),
            "counts_reference": np.asarray(counts_ref), "counts_other": np.asarray(counts_other),
            "detection": det}


def noise_sweep(detector, levels=(0.0, 0.3, 0.6, 1.0), **kwargs) -> dict[float, dict]:
    """detection() at each noise level: {level: scores}."""
    return {float(level): detection(detector, noise=level, **kwargs) for level in levels}


# Real footage without labels, made dark on purpose: the detector's own boxes on the clean
# frames are the pseudo ground truth, and the same frames with helpers.synth's low-light noise
# (optionally through a temporal denoiser) are scored against them. Lesson 04 and
# benchmarks/tnr_quality.py measure TNR on real frames this way.

def video_runs(path, runs) -> list[tuple[int, list]]:
    """Contiguous runs of frames of a video file: ``runs = [(start, length), ...]`` with
    0-based frame numbers; returns ``[(start, [BGR uint8 frames]), ...]`` in the order given.
    The file is read once, front to back (seeking is not frame-exact in every container), so
    runs may come in any order but must lie inside the video."""
    import cv2

    runs = [(int(s), int(n)) for s, n in runs]
    if not runs or any(s < 0 or n < 1 for s, n in runs):
        raise ValueError(f"video_runs: expected (start >= 0, length >= 1) pairs; found {runs}.")
    end = max(s + n for s, n in runs)
    wanted = {}
    for k, (s, n) in enumerate(runs):
        for f in range(s, s + n):
            wanted.setdefault(f, []).append(k)
    out = [[] for _ in runs]
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"video_runs: could not open {path}; expected a video file "
                                "OpenCV can read (vtest.avi: sudo apt-get install opencv-doc).")
    try:
        for f in range(end):
            if f not in wanted:
                if not cap.grab():
                    break
                continue
            ok, image = cap.read()
            if not ok:
                break
            for k in wanted[f]:
                out[k].append(image)
    finally:
        cap.release()
    short = [(s, n, len(o)) for (s, n), o in zip(runs, out) if len(o) != n]
    if short:
        raise ValueError(f"video_runs: {path} ended early; (start, length, frames read) = {short}. "
                         "Ask for runs inside the video.")
    return [(s, frames) for (s, _), frames in zip(runs, out)]


def noisy_runs(runs, strength: float, seed: int = 0) -> list[tuple[int, list]]:
    """``runs`` (as from video_runs) through ``synth.NoiseModel(strength)``, every frame its
    own draw (shot + read noise, gain flicker), reproducible per (seed, run start, strength).
    Strength 0 returns the frames themselves."""
    model = synth.NoiseModel(strength)
    if model.strength == 0:
        return [(s, list(frames)) for s, frames in runs]
    out = []
    for start, frames in runs:
        rng = np.random.default_rng([int(seed), int(start), int(round(strength * 1000))])
        out.append((start, [model.apply(f, rng) for f in frames]))
    return out


def _footage_pass(detector, runs, clean=None, denoiser=None, warmup: int = 10, stride: int = 1,
                  tracker: Tracker | None = None, score_thresh: float = 0.01,
                  track_score: float | None = None, ssim_every: int = 0):
    """One pass over ``runs``: frames (denoised if asked) -> detector (-> tracker). The first
    ``warmup`` frames of each run feed the denoiser and the tracker but are not scored."""
    from skimage.metrics import structural_similarity

    if tracker is not None and stride != 1:
        raise ValueError(f"a tracker needs every frame; found stride={stride}. Use stride=1.")
    dets, tracks, psnrs, ssims = {}, {}, [], []
    truths = [frames for _, frames in clean] if clean is not None else [None] * len(runs)
    for run, ((start, frames), truth) in enumerate(zip(runs, truths)):
        if denoiser is not None:
            denoiser.reset()
        if tracker is not None:
            tracker.reset()
        for i, image in enumerate(frames):
            if denoiser is not None:
                image = denoiser(image)
            scored = i >= warmup and (i - warmup) % stride == 0
            if not scored and tracker is None:
                continue
            d = detector(image, score_thresh=score_thresh)
            f = start + i
            if tracker is not None:
                out = tracker.update(d if track_score is None else d[d.scores >= track_score])
                if scored:  # ids restart in each run: keep them apart
                    tracks[f] = (out.boxes, np.asarray(out.track_ids) + 100_000 * run)
            if not scored:
                continue
            dets[f] = d
            if truth is not None:
                psnrs.append(min(metrics.psnr(image, truth[i]), 99.0))  # 99 dB: identical
                if ssim_every and (len(psnrs) - 1) % ssim_every == 0:
                    ssims.append(structural_similarity(image, truth[i], channel_axis=2))
    return dets, tracks, psnrs, ssims


def footage_reference(detector, runs, warmup: int = 10, stride: int = 1,
                      tracker: Tracker | None = None, reference_score: float = 0.5,
                      label: int = mot.PEDESTRIAN) -> dict:
    """The pseudo ground truth of clean ``runs``: ``detector``'s detections on every scored
    frame (``detections``: frame -> Detections; footage() keeps its ``label`` boxes scoring
    >= ``reference_score``) and, with a ``tracker``, those confident boxes linked into tracks
    (``gt_tracks``: a mot.GroundTruth). It is the detector's own view of the clean frames, so
    scores against it measure how much the noise changes what the detector sees, not how right
    it is."""
    dets, tracks, _, _ = _footage_pass(detector, runs, warmup=warmup, stride=stride, tracker=tracker,
                                       track_score=reference_score)
    out = {"detections": dets, "warmup": warmup, "stride": stride, "reference_score": reference_score,
           "label": label, "runs": [(s, len(f)) for s, f in runs]}
    if tracker is not None:
        rows = [(f, i, b) for f, (boxes, ids) in sorted(tracks.items()) for i, b in zip(ids, boxes)]
        n = len(rows)
        out["gt_tracks"] = mot.GroundTruth(
            frame=np.array([r[0] for r in rows], np.int64), track_id=np.array([r[1] for r in rows], np.int64),
            boxes=np.array([r[2] for r in rows], np.float64).reshape(-1, 4), class_id=np.full(n, label),
            visibility=np.ones(n), active=np.ones(n, np.int64))
    return out


def footage(detector, reference: dict, runs, clean=None, denoiser=None,
            tracker: Tracker | None = None, ssim_every: int = 0) -> dict:
    """Score ``detector`` on ``runs`` (noisy frames, say, from noisy_runs), optionally through
    ``denoiser``, against ``reference`` (footage_reference of the clean frames, same runs and
    warm-up): ``ap50`` (AP@0.5 of the detections against the pseudo ground truth, pycocotools
    via agreement()), ``matched`` and ``precision`` (at score 0.5), ``frames``; with ``clean``
    (the clean runs) ``psnr`` and, every ``ssim_every``-th scored frame, ``ssim`` of the frames
    the detector saw; with a ``tracker`` (and a reference built with one) ``mota``, ``idf1``
    and ``id_switches`` against the reference's tracks (the tracker gets the same confident
    boxes, score >= the reference's, as the reference's tracker did, so the clean frames score
    1.0 against themselves)."""
    warmup, stride = reference["warmup"], reference["stride"]
    if [(s, len(f)) for s, f in runs] != [tuple(r) for r in reference["runs"]]:
        raise ValueError("footage: the runs differ from the reference's "
                         f"({[(s, len(f)) for s, f in runs]} vs {reference['runs']}); build the "
                         "reference from the clean frames of the same runs.")
    dets, tracks, psnrs, ssims = _footage_pass(detector, runs, clean=clean, denoiser=denoiser,
                                               warmup=warmup, stride=stride, tracker=tracker,
                                               track_score=reference["reference_score"],
                                               ssim_every=ssim_every)
    gap = agreement(reference["detections"], dets, label=reference["label"],
                    reference_score=reference["reference_score"])
    out = {"ap50": float(gap["ap50"]), "matched": float(gap["matched"]),
           "precision": float(gap["precision"]), "frames": gap["frames"],
           "num_reference": int(gap["num_reference"]),
           "psnr": float(np.mean(psnrs)) if psnrs else None,
           "ssim": float(np.mean(ssims)) if ssims else None}
    if tracker is not None:
        if "gt_tracks" not in reference:
            raise ValueError("footage: a tracker was given but the reference has no tracks; "
                             "build it with footage_reference(..., tracker=Tracker()).")
        trk = metrics.tracking_metrics(reference["gt_tracks"], tracks)
        out.update(mota=float(trk["mota"]), idf1=float(trk["idf1"]), id_switches=int(trk["id_switches"]))
    return out


def filter_drift(upscalers: dict, precisions: dict, scale: int, reference: str = "eager FP32") -> dict:
    """The drift of every filter runtime, through the one judge (metrics.judge, "image"): PSNR
    against ``reference``'s output on the held-out astronaut shrunk by ``scale``, and the mean
    gain over bicubic on all held-out photos (kept as ``gain_db``). ``upscalers``: name ->
    filters.Upscaler; ``precisions``: name -> "fp32"/"tf32"/"fp16"/"int8"."""
    from . import superres

    photos = {k: superres.fit_to_scale(v, scale, "crop") for k, v in superres.held_out_images().items()}
    low = superres.downscale(photos["astronaut"], scale)
    ref = upscalers[reference](low)
    gains = {name: float(np.mean([r["psnr_gain"] for r in superres.quality(up, photos, scale)]))
             for name, up in upscalers.items()}
    return {name: {**metrics.image_drift(ref, up(low), precisions[name], gains[name], gains[reference]),
                   "gain_db": round(gains[name], 3)}
            for name, up in upscalers.items()}
