"""Model registry: builders + offline weight resolution + label maps.

Weights always come through :mod:`helpers.assets`, so a model loads on a machine
without internet as long as a verified copy of its file is somewhere local.
"""

from __future__ import annotations

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
