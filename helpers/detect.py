"""The one postprocess for every runtime, and a detector that chains the stages.

A detector network ends at its raw head outputs, here SSD's ``bbox_regression [B, A, 4]``
(box offsets from A fixed anchors) and ``cls_logits [B, A, C]``. Everything after that is
``Postprocess``, in torch on whatever device the outputs live on:

    decode the offsets against the anchors -> clip to the network input -> softmax
    -> per-class score threshold and top-k -> batched NMS -> keep the best N
    -> map back to the original frame (undo the resize) -> clip to the frame

PyTorch eager, torch.compile, ONNX Runtime and TensorRT all hand their raw outputs to this
same code, so two runtimes can only differ where their networks differ. It reproduces
torchvision's ``SSD.postprocess_detections`` + ``GeneralizedRCNNTransform.postprocess``
(tests/test_detect.py checks it against ``model(images)``), vectorised over classes and
over the batch's decode step.

    detector = Detector(models.synth_detector(), runtime="torch")
    detections = detector(frame_bgr)            # helpers.detections.Detections, frame pixels
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .bench import stage_timer
from .detections import Detections
from .preprocess import Letterbox, Preprocessor, check_frame

__all__ = ["DetectorSpec", "Postprocess", "Detector", "Tiled", "NonFiniteOutputs", "raw_network"]

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # SSD's variances, as torchvision's BoxCoder spells them
BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # caps exp() of the size offsets, as torchvision does


@dataclass(frozen=True, eq=False)
class DetectorSpec:
    """Everything the postprocess needs to know about a detector, and nothing about how it runs.

    ``anchors``: (A, 4) xyxy float32 in network-input pixels. ``labels[i]`` names class i;
    index 0 is the background. ``input_size`` is (width, height)."""

    name: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    anchors: torch.Tensor
    score_thresh: float = 0.001
    nms_thresh: float = 0.55
    topk_candidates: int = 300
    detections_per_img: int = 300
    # How the raw outputs read. torchvision's SSD: softmax over classes, offsets in (x, y, w, h)
    # order, exp() capped, boxes clipped before NMS. The TF Object Detection API's SSD (the
    # ported pedestrian detector): sigmoid per class, (y, x, h, w), no cap, clipped after NMS.
    score_fn: str = "softmax"
    box_order: str = "xywh"
    box_weights: tuple[float, float, float, float] = BOX_WEIGHTS  # in box_order
    size_clip: float | None = BBOX_XFORM_CLIP
    clip_after_nms: bool = False
    # The stretch resize to input_size: "bilinear" (half-pixel centres, torchvision) or
    # "tf-legacy" (TensorFlow 1's ResizeBilinear: src = dst * in / out, no half-pixel offset).
    resize: str = "bilinear"

    def __post_init__(self):
        if self.score_fn not in ("softmax", "sigmoid"):
            raise ValueError(f"score_fn must be 'softmax' or 'sigmoid'; found {self.score_fn!r}.")
        if sorted(self.box_order) != sorted("xywh"):
            raise ValueError(f"box_order must be a permutation of 'xywh' (e.g. 'yxhw'); "
                             f"found {self.box_order!r}.")

    @classmethod
    def from_ssd(cls, model: torch.nn.Module, name: str, labels) -> DetectorSpec:
        """Read the spec off a torchvision ``SSD`` (eval mode): its anchors for its fixed
        input size, its normalisation and its postprocess settings."""
        from torchvision.models.detection.image_list import ImageList

        fixed = model.transform.fixed_size
        if fixed is None:
            raise ValueError("expected an SSD with a fixed input size (transform.fixed_size), "
                             "like torchvision's ssd300/ssdlite320; found None.")
        width, height = int(fixed[0]), int(fixed[1])
        labels = tuple(labels)
        classes = model.head.classification_head.num_columns
        if len(labels) != classes:
            raise ValueError(f"the label map has {len(labels)} names but the detector's "
                             f"classification head has {classes} classes (background "
                             "included). Use the label map that was saved with these weights.")
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # a forward in training mode would update BatchNorm statistics
        try:
            with torch.no_grad():
                x = torch.zeros(1, 3, height, width, device=device)
                features = list(model.backbone(x).values())
                anchors = model.anchor_generator(ImageList(x, [(height, width)]), features)[0]
        finally:
            model.train(was_training)
        return cls(name=name, labels=labels, input_size=(width, height),
                   mean=tuple(model.transform.image_mean), std=tuple(model.transform.image_std),
                   anchors=anchors.float().cpu(), score_thresh=float(model.score_thresh),
                   nms_thresh=float(model.nms_thresh), topk_candidates=int(model.topk_candidates),
                   detections_per_img=int(model.detections_per_img))

    @property
    def num_classes(self) -> int:
        return len(self.labels)


class _Raw(torch.nn.Module):
    def __init__(self, ssd: torch.nn.Module):
        super().__init__()
        self.backbone, self.head = ssd.backbone, ssd.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(x).values()))
        return out["bbox_regression"], out["cls_logits"]


def raw_network(ssd: torch.nn.Module) -> torch.nn.Module:
    """The part of a detector that a runtime runs: normalised NCHW batch at the input
    size -> (bbox_regression [B, A, 4], cls_logits [B, A, C]). For a torchvision SSD that is its
    backbone and head (sharing its weights); a network that already ends at its raw outputs
    (the ported TF detector, helpers.tfssd) is returned as it is."""
    if getattr(ssd, "is_raw_network", False):
        return ssd.eval()
    return _Raw(ssd).eval()


def _decode(rel: torch.Tensor, anchors: torch.Tensor, order: str = "xywh",
            weights=BOX_WEIGHTS, size_clip: float | None = BBOX_XFORM_CLIP) -> torch.Tensor:
    """SSD box decoding (torchvision BoxCoder.decode_single; the TF API's FasterRcnnBoxCoder is
    the same formula with the channels in (y, x, h, w) order), broadcast over a batch."""
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + 0.5 * widths
    ctr_y = anchors[:, 1] + 0.5 * heights
    at = {c: i for i, c in enumerate(order)}
    wx, wy, ww, wh = (weights[at[c]] for c in "xywh")
    dx, dy = rel[..., at["x"]] / wx, rel[..., at["y"]] / wy
    dw, dh = rel[..., at["w"]] / ww, rel[..., at["h"]] / wh
    if size_clip is not None:
        dw, dh = dw.clamp(max=size_clip), dh.clamp(max=size_clip)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    half_w = 0.5 * (torch.exp(dw) * widths)
    half_h = 0.5 * (torch.exp(dh) * heights)
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h,
                        pred_ctr_x + half_w, pred_ctr_y + half_h), dim=-1)


class NonFiniteOutputs(RuntimeError):
    """A runtime returned NaN or inf; Detector re-raises it with the runtime's name."""


def _clip(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, width)
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, height)
    return boxes


class Postprocess:
    """Raw SSD outputs -> detections in each frame's own pixels.

    ``tensors(raw, transforms)`` returns torchvision-style dicts of tensors on the outputs'
    device; calling the object returns ``helpers.detections.Detections`` (numpy) for the tracker
    and the drawing code. ``transforms[i]`` is the Letterbox that Preprocessor returned for
    frame i. ``score_thresh`` may be raised per call (a display threshold); the default is
    the spec's, low enough for mAP."""

    def __init__(self, spec: DetectorSpec):
        self.spec = spec
        self._anchors = {}

    def anchors(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._anchors:
            self._anchors[key] = self.spec.anchors.to(device)
        return self._anchors[key]

    def _check(self, raw, transforms):
        if not (isinstance(raw, (tuple, list)) and len(raw) == 2):
            raise ValueError(f"expected the raw outputs (bbox_regression, cls_logits); found "
                             f"{type(raw).__name__} of length {len(raw) if hasattr(raw, '__len__') else '?'}.")
        boxes, logits = raw
        a, c = len(self.spec.anchors), self.spec.num_classes
        if boxes.ndim != 3 or tuple(boxes.shape[1:]) != (a, 4):
            raise ValueError(f"bbox_regression: expected shape [B, {a}, 4] for {self.spec.name} "
                             f"at {self.spec.input_size[0]}x{self.spec.input_size[1]}; found "
                             f"{list(boxes.shape)}. Was the network run at another input size?")
        if logits.shape != (boxes.shape[0], a, c):
            raise ValueError(f"cls_logits: expected shape [{boxes.shape[0]}, {a}, {c}] "
                             f"({c} classes in the label map); found {list(logits.shape)}.")
        if len(transforms) != boxes.shape[0]:
            raise ValueError(f"expected one Letterbox per image ({boxes.shape[0]}); found "
                             f"{len(transforms)}.")

    def tensors(self, raw, transforms: list[Letterbox], score_thresh: float | None = None):
        from torchvision.ops import batched_nms

        self._check(raw, transforms)
        # NaN scores fail every threshold, so broken outputs would come out as "no detections":
        # an empty street. One reduction per batch tells the two apart.
        if not (torch.isfinite(raw[0]).all() and torch.isfinite(raw[1]).all()):
            bad = [name for name, t in zip(("bbox_regression", "cls_logits"), raw)
                   if not torch.isfinite(t).all()]
            raise NonFiniteOutputs(f"the network's raw outputs ({', '.join(bad)}) hold NaN or inf "
                                   f"({str(raw[0].dtype).replace('torch.', '')}). Typical causes: "
                                   "an FP16 overflow, a broken or stale engine, a corrupt "
                                   "weights file. Compare this runtime against torch FP32 "
                                   "(helpers.metrics drift report).")
        spec = self.spec
        thresh = spec.score_thresh if score_thresh is None else float(score_thresh)
        # float32 whatever the runtime produced (FP16 engines): NMS and decoding want it.
        rel, logits = raw[0].float(), raw[1].float()
        device = rel.device
        width, height = spec.input_size
        boxes = _decode(rel, self.anchors(device), spec.box_order, spec.box_weights, spec.size_clip)
        if not spec.clip_after_nms:
            _clip(boxes, width, height)
        probs = torch.sigmoid(logits) if spec.score_fn == "sigmoid" else torch.softmax(logits, dim=-1)
        scores = probs[..., 1:].transpose(1, 2)  # [B, C-1, A]: the background column dropped
        k = min(spec.topk_candidates, scores.shape[-1])
        class_ids = torch.arange(1, spec.num_classes, device=device)[:, None].expand(-1, k)
        results = []
        for b, transform in enumerate(transforms):
            # Per class: the k best anchors, then only those above the threshold. That is
            # torchvision's "threshold, then top-k" with all classes in one topk call.
            top, idx = scores[b].masked_fill(scores[b] <= thresh, -1.0).topk(k, dim=1)
            keep = top > thresh
            cand_scores, cand_labels = top[keep], class_ids[keep]
            cand_boxes = boxes[b][idx[keep]]
            kept = batched_nms(cand_boxes, cand_scores, cand_labels, spec.nms_thresh)
            kept = kept[: spec.detections_per_img]
            if spec.clip_after_nms:
                # The TF API: NMS on the decoded boxes, then clip to the image and drop the
                # boxes that end up with no area (ClipToWindow after MultiClassNonMaxSuppression).
                cand_boxes = _clip(cand_boxes[kept], width, height)
                area = (cand_boxes[:, 2] - cand_boxes[:, 0]) * (cand_boxes[:, 3] - cand_boxes[:, 1])
                kept = kept[area > 0]
                cand_boxes = cand_boxes[area > 0]
                results.append({"boxes": transform.to_src(cand_boxes), "scores": cand_scores[kept],
                                "labels": cand_labels[kept]})
                continue
            results.append({"boxes": transform.to_src(cand_boxes[kept]),
                            "scores": cand_scores[kept], "labels": cand_labels[kept]})
        return results

    def __call__(self, raw, transforms, score_thresh: float | None = None) -> list[Detections]:
        return [Detections(r["boxes"].cpu().numpy(), r["scores"].cpu().numpy(),
                           r["labels"].cpu().numpy())
                for r in self.tensors(raw, transforms, score_thresh)]


@dataclass
class StageTimes:
    """Wall-clock milliseconds of the last call, per stage."""

    preprocess: float = 0.0
    network: float = 0.0
    postprocess: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"preprocess": self.preprocess, "network": self.network,
                "postprocess": self.postprocess, **self.extra}


class Detector:
    """preprocess -> runtime -> postprocess for BGR uint8 frames.

    ``model`` is a torchvision SSD (its spec, weights and label map); ``runtime`` is a
    helpers.runtimes kind ("torch", "torch-compile", "onnxruntime", "tensorrt", ...) or a ready
    Runtime object that runs ``raw_network(model)``. ``device`` is where preprocessing and
    postprocessing run; it defaults to the model's device.
    """

    def __init__(self, model: torch.nn.Module, runtime="torch", spec: DetectorSpec | None = None,
                 device=None, score_thresh: float | None = None, **runtime_kwargs):
        from . import runtimes

        self.spec = spec or getattr(model, "spec", None) or DetectorSpec.from_ssd(
            model, name=type(model).__name__, labels=_labels_of(model))
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        # The torchvision SSD resizes with plain bilinear interpolation; so does ours.
        self.preprocess = Preprocessor(size=self.spec.input_size, letterbox=False,
                                       mean=self.spec.mean, std=self.spec.std,
                                       backend="torch", device=self.device, resize=self.spec.resize)
        if isinstance(runtime, str):
            runtime = runtimes.make_runtime(runtime, model=raw_network(model), **runtime_kwargs)
        self.runtime = runtime
        self.postprocess = Postprocess(self.spec)
        self.score_thresh = score_thresh
        self.times = StageTimes()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def __repr__(self) -> str:
        return f"Detector({self.spec.name}, runtime={self.runtime!r}, device={str(self.device)!r})"

    def detect(self, frames, score_thresh: float | None = None) -> list[Detections]:
        """Detections for a list of frames (BGR uint8 HxWx3, numpy or torch)."""
        if not isinstance(frames, (list, tuple)):
            raise ValueError(f"detect() takes a list of frames; found {type(frames).__name__}. "
                             "Call the detector itself for one frame.")
        for f in frames:
            check_frame(f)
        thresh = self.score_thresh if score_thresh is None else score_thresh
        # Each stage waits for its own work on the current stream (the pipeline's inference
        # stream in overlapped mode), never for the whole device.
        with stage_timer(self.device) as pre:
            batch, transforms = self.preprocess(list(frames))
        with stage_timer(self.device) as net:
            # An FP16 engine or model takes half-precision input; the runtime says which.
            raw = self.runtime.run(batch.to(getattr(self.runtime, "dtype", batch.dtype)))
        with stage_timer(self.device) as post:
            try:
                out = self.postprocess(raw, transforms, thresh)
            except NonFiniteOutputs as exc:
                precision = getattr(self.runtime, "precision", None) or str(
                    getattr(self.runtime, "dtype", batch.dtype)).replace("torch.", "")
                raise NonFiniteOutputs(f"{self.spec.name} on runtime {self.runtime!r} "
                                       f"(precision {precision}): {exc}") from None
        self.times = StageTimes(pre.ms, net.ms, post.ms)
        return out

    def __call__(self, frame, score_thresh: float | None = None) -> Detections:
        return self.detect([frame], score_thresh)[0]

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Tiled:
    """Sliced inference for frames much larger than the network's input (SAHI's idea).

    A 300x300 SSD sees a 1080p frame shrunk 6x: a person 90 px tall becomes 25 px, below
    its smallest anchors. ``Tiled`` runs the same detector on overlapping tiles (plus, with
    ``full_frame``, the whole frame for people bigger than a tile), maps every box back to
    the frame, and merges them with class-wise NMS at the detector's own IoU threshold.
    Nothing about the network or the postprocess changes; it costs one network pass per tile.

    ``grid=(columns, rows)`` or "auto": enough tiles that each is at most ``3x`` the network
    input (1080p -> 3x2, 768x576 -> 1x1, i.e. no tiling).

        tiled = Tiled(Detector(models.pedestrian_detector()), grid="auto")
        detections = tiled(frame_bgr)
    """

    def __init__(self, detector: Detector, grid="auto", overlap: float = 0.25,
                 full_frame: bool = True, max_detections: int = 300):
        if not (0.0 <= overlap < 0.9):
            raise ValueError(f"overlap must be in [0, 0.9) of a tile; found {overlap!r}.")
        if grid != "auto" and not (len(grid) == 2 and all(int(g) >= 1 for g in grid)):
            raise ValueError(f"grid must be 'auto' or (columns, rows) >= 1; found {grid!r}.")
        self.detector, self.grid, self.overlap = detector, grid, float(overlap)
        self.full_frame, self.max_detections = bool(full_frame), int(max_detections)

    @property
    def labels(self):
        return self.detector.labels

    def grid_for(self, width: int, height: int) -> tuple[int, int]:
        if self.grid != "auto":
            return int(self.grid[0]), int(self.grid[1])
        iw, ih = self.detector.spec.input_size
        return max(1, math.ceil(width / (3 * iw))), max(1, math.ceil(height / (3 * ih)))

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """(x0, y0, x1, y1) of each tile, evenly spaced, covering the frame."""
        cols, rows = self.grid_for(width, height)
        tw = round(width / (cols - (cols - 1) * self.overlap))
        th = round(height / (rows - (rows - 1) * self.overlap))
        xs = [round(i * (width - tw) / (cols - 1)) if cols > 1 else 0 for i in range(cols)]
        ys = [round(j * (height - th) / (rows - 1)) if rows > 1 else 0 for j in range(rows)]
        return [(x, y, min(width, x + tw), min(height, y + th)) for y in ys for x in xs]

    def __call__(self, frame, score_thresh: float | None = None) -> Detections:
        import numpy as np
        from torchvision.ops import batched_nms

        check_frame(frame)
        height, width = frame.shape[:2]
        tiles = self.tiles(width, height)
        if len(tiles) == 1:
            return self.detector(frame, score_thresh)
        crops = [frame[y0:y1, x0:x1] for x0, y0, x1, y1 in tiles]
        found = self.detector.detect(crops, score_thresh)
        offsets = [(x0, y0, x0, y0) for x0, y0, _, _ in tiles]
        if self.full_frame:
            found.append(self.detector(frame, score_thresh))
            offsets.append((0, 0, 0, 0))
        boxes = np.concatenate([d.boxes + np.asarray(o, float) for d, o in zip(found, offsets)])
        scores = np.concatenate([d.scores for d in found])
        labels = np.concatenate([d.labels for d in found])
        keep = batched_nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(),
                           torch.from_numpy(labels), self.detector.spec.nms_thresh)
        keep = keep[: self.max_detections].numpy()
        return Detections(boxes[keep], scores[keep], labels[keep])


def _labels_of(model) -> tuple[str, ...]:
    labels = getattr(model, "labels", None)
    if labels is None:
        import warnings

        classes = model.head.classification_head.num_columns
        warnings.warn(f"this detector carries no label map, so its {classes} classes are numbered. "
                      "Build it through helpers.models (synth_detector, coco_detector) for names.",
                      stacklevel=3)
        return tuple(str(i) for i in range(classes))
    return tuple(labels)

