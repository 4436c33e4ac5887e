"""Preprocessing: from a BGR uint8 camera frame to the normalized NCHW batch a network eats.

Every step exists twice, once with numpy/OpenCV and once with torch. On float32 images the
two agree to float rounding, far inside 1/255 after normalization; on uint8 both round the
resized values and may differ by one grey level, which is why Preprocessor resizes floats.

    step       numpy_ops (HxWx3 arrays)             torch_ops (3xHxW tensors, any device)
    upload     -                                    upload: host uint8 -> device (pinned to CUDA)
    layout     hwc_to_chw, last                     hwc_to_chw, first (interpolate wants CHW)
    geometry   resize, letterbox, classification_crop   (same names)
    colour     bgr_to_rgb: the only channel swap    bgr_to_rgb
    values     normalize: (x / 255 - mean) / std    normalize
    batch      batch: list -> Nx3xHxW               batch

``Preprocessor`` chains them:

    pre = Preprocessor(size=(320, 320), letterbox=True, backend="torch", device="cuda")
    batch, transforms = pre(frames)           # one frame or a list; transforms[i] is a Letterbox
    boxes_in_frame = transforms[0].to_src(boxes_in_network_input)

Conventions: sizes are (width, height) like ``cv2.resize``; boxes are xyxy float pixels;
tensors stay on the caller's device. The resize is bilinear with half-pixel centres and
no antialiasing, which is what both ``cv2.INTER_LINEAR`` and
``interpolate(mode="bilinear", align_corners=False, antialias=False)`` compute.
``classification_crop`` reproduces torchvision's ImageNet eval transform instead, which
does antialias.

torch is imported only by the torch functions, so the numpy path runs where torch is absent.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB
PAD_VALUE = 114  # the grey YOLO-family detectors were trained with in their letterbox borders

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "PAD_VALUE", "Letterbox", "Preprocessor",
    "check_frame", "numpy_ops", "torch_ops",
]


# ---------------------------------------------------------------- validation


def _is_tensor(x) -> bool:
    # Checking sys.modules avoids importing torch just to ask the question.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _describe(x) -> str:
    if _is_tensor(x):
        return f"torch.Tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device}"
    if isinstance(x, np.ndarray):
        return f"numpy array of shape {x.shape}, dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:120]


def _check_shape(shape: tuple, found: str, layout: str = "HWC") -> None:
    """Raise a ValueError that names the likely mistake for a wrong image shape."""
    want = "HxWx3" if layout == "HWC" else "3xHxW"
    if len(shape) == 2:
        fix = ("convert grayscale with cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)" if layout == "HWC"
               else "add the channels: image.expand(3, -1, -1)")
        raise ValueError(f"expected a {want} colour image; found a 2-D (grayscale) {found}. {fix}.")
    if len(shape) != 3:
        raise ValueError(f"expected one {want} image; found {found}. Pass frames one at a time "
                         "or as a list to Preprocessor.")
    channels = shape[2] if layout == "HWC" else shape[0]
    if layout == "HWC" and channels != 3 and shape[0] == 3:
        raise ValueError(f"expected HxWx3 (channels last, as OpenCV gives); found {found}, which "
                         "looks like CHW. Transpose it back: image.transpose(1, 2, 0), "
                         "or tensor.permute(1, 2, 0).")
    if layout == "CHW" and channels != 3 and shape[2] == 3:
        raise ValueError(f"expected 3xHxW (channels first); found {found}, which looks like HWC. "
                         "Call torch_ops.hwc_to_chw(image) first.")
    if channels == 4:
        raise ValueError(f"expected 3 colour channels; found 4 in {found} (BGRA?). Drop alpha with "
                         "cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) or image[..., :3].")
    if channels != 3:
        raise ValueError(f"expected 3 colour channels ({want}); found {channels} in {found}.")
    if 0 in shape:
        raise ValueError(f"expected a non-empty image; found {found}. The capture probably "
                         "failed: check the frame before preprocessing it.")


def check_frame(frame) -> None:
    """Raise ValueError unless ``frame`` is an HxWx3 uint8 image (numpy array or torch tensor).

    This is the capture boundary: BGR uint8, exactly as ``cv2.imread`` or a VideoSource gives.
    """
    if frame is None:
        raise ValueError("expected a BGR uint8 HxWx3 frame; found None. cv2.imread returns None "
                         "when it cannot read a file, and a camera read can fail: check it first.")
    if not (isinstance(frame, np.ndarray) or _is_tensor(frame)):
        raise ValueError(f"expected a BGR uint8 HxWx3 frame as a numpy array or torch tensor; "
                         f"found {_describe(frame)}.")
    _check_shape(tuple(frame.shape), _describe(frame), "HWC")
    if str(frame.dtype) not in ("uint8", "torch.uint8"):
        raise ValueError(f"expected a uint8 frame (0..255, as OpenCV reads it); found "
                         f"{_describe(frame)}. If it holds 0..1 floats, convert it with "
                         "(image * 255).round().astype(np.uint8); the float conversion happens "
                         "inside preprocessing.")


def _check_image(image, layout: str, dtypes: tuple) -> None:
    """Looser than check_frame, for the step functions: intermediate images may be float."""
    if layout == "HWC" and not isinstance(image, np.ndarray):
        raise ValueError(f"numpy_ops take numpy arrays; found {_describe(image)}. Use torch_ops "
                         "for tensors, or make the host copy explicit: tensor.cpu().numpy().")
    if layout == "CHW" and not _is_tensor(image):
        raise ValueError(f"torch_ops take torch tensors; found {_describe(image)}. "
                         "Call torch_ops.upload(frame, device) first.")
    shape = tuple(image.shape)
    _check_shape(shape if len(shape) != 4 else shape[1:], _describe(image), layout)
    if str(image.dtype).replace("torch.", "") not in dtypes:
        raise ValueError(f"expected dtype {' or '.join(dtypes)}; found {_describe(image)}. "
                         f"Convert it first, e.g. image.astype(np.float32) / tensor.float().")


def _check_size(size, name: str = "size") -> tuple[int, int]:
    try:
        w, h = size
        ok = int(w) == w and int(h) == h and w > 0 and h > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be (width, height) in whole pixels > 0, e.g. (320, 320); "
                         f"found {size!r}.")
    return int(w), int(h)


def _check_mean_std(mean, std) -> tuple[tuple, tuple]:
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 values each (R, G, B), std > 0; found mean={mean}, "
                         f"std={std}. The usual values are IMAGENET_MEAN and IMAGENET_STD.")
    return mean, std


def _normalize_constants(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """(x / 255 - mean) / std == x * scale + offset: one multiply-add per value."""
    mean, std = _check_mean_std(mean, std)
    scale = np.array([1.0 / (255.0 * s) for s in std], np.float32)
    offset = np.array([-m / s for m, s in zip(mean, std)], np.float32)
    return scale, offset


# ---------------------------------------------------------------- box mapping


@dataclass(frozen=True)
class Letterbox:
    """Where a resize/letterbox/crop put the source frame inside the network input.

    A point maps as ``x_dst = x_src * scale[0] + pad[0]`` (same for y with index 1).
    ``scale`` has two entries because the resized size is rounded to whole pixels, so x and
    y scale differ in the last digits (a plain resize stretches them on purpose); using
    both keeps boxes exact. ``pad`` is (left, top) in destination pixels; it is negative
    for a crop. Sizes are (width, height).
    """

    scale: tuple[float, float]
    pad: tuple[int, int]
    src_size: tuple[int, int]
    dst_size: tuple[int, int]

    @classmethod
    def fit(cls, src_size, dst_size) -> Letterbox:
        """Largest aspect-preserving fit of ``src_size`` into ``dst_size``, centred."""
        (sw, sh), (dw, dh) = _check_size(src_size, "src_size"), _check_size(dst_size, "dst_size")
        r = min(dw / sw, dh / sh)
        nw, nh = max(1, round(sw * r)), max(1, round(sh * r))
        return cls((nw / sw, nh / sh), ((dw - nw) // 2, (dh - nh) // 2), (sw, sh), (dw, dh))

    @classmethod
    def stretch(cls, src_size, dst_size) -> Letterbox:
        """A plain resize: no padding, x and y scaled independently."""
        (sw, sh), (dw, dh) = _check_size(src_size, "src_size"), _check_size(dst_size, "dst_size")
        return cls((dw / sw, dh / sh), (0, 0), (sw, sh), (dw, dh))

    @property
    def resized_size(self) -> tuple[int, int]:
        """(width, height) of the frame's image inside the destination, before padding."""
        return round(self.src_size[0] * self.scale[0]), round(self.src_size[1] * self.scale[1])

    def to_dst(self, boxes):
        """xyxy boxes in the source frame -> network-input pixels. Keeps type and device."""
        out = _float_boxes(boxes)
        out[..., 0::2] = out[..., 0::2] * self.scale[0] + self.pad[0]
        out[..., 1::2] = out[..., 1::2] * self.scale[1] + self.pad[1]
        return out

    def to_src(self, boxes, clip: bool = True):
        """xyxy boxes in network-input pixels -> the source frame, clipped to it by default.

        Clipping matters for letterboxed detectors: a box may reach into the padding, which
        is outside the frame.
        """
        out = _float_boxes(boxes)
        out[..., 0::2] = (out[..., 0::2] - self.pad[0]) / self.scale[0]
        out[..., 1::2] = (out[..., 1::2] - self.pad[1]) / self.scale[1]
        if clip:
            out[..., 0::2] = out[..., 0::2].clip(0, self.src_size[0])
            out[..., 1::2] = out[..., 1::2].clip(0, self.src_size[1])
        return out


def _float_boxes(boxes):
    """A float copy we may write into: same library, same device; ints become float32."""
    if _is_tensor(boxes):
        out = boxes.detach().clone() if boxes.is_floating_point() else boxes.float()
    else:
        arr = np.asarray(boxes)
        out = arr.astype(arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float32)
    if out.ndim == 0 or out.shape[-1] != 4:
        raise ValueError(f"boxes must be xyxy with shape (..., 4); found shape "
                         f"{tuple(out.shape)}. Reshape a flat list with boxes.reshape(-1, 4).")
    return out


def _crop_geometry(src_size, resize_size: int, crop_size: int):
    """torchvision's eval geometry: shorter side -> resize_size, then a centred crop."""
    w, h = src_size
    short, long = min(w, h), max(w, h)
    # int() truncation and round() on the crop offsets copy torchvision exactly.
    new_long = int(resize_size * long / short)
    nw, nh = (resize_size, new_long) if w <= h else (new_long, resize_size)
    if nw < crop_size or nh < crop_size:
        raise ValueError(f"crop_size {crop_size} must not exceed resize_size {resize_size}; "
                         "torchvision uses 224 and 256.")
    left, top = int(round((nw - crop_size) / 2.0)), int(round((nh - crop_size) / 2.0))
    transform = Letterbox((nw / w, nh / h), (-left, -top), (w, h), (crop_size, crop_size))
    return (nw, nh), (left, top), transform


# ---------------------------------------------------------------- numpy / OpenCV


def _antialias_weights(in_size: int, out_size: int, first: int, count: int) -> np.ndarray:
    """Rows first..first+count of the (out_size x in_size) matrix that torch's
    interpolate(mode="bilinear", antialias=True) applies along one axis."""
    scale = in_size / out_size
    # Shrinking stretches the one-pixel triangle by `scale`, so every input pixel under an
    # output pixel gets a say instead of only the two nearest: that is all antialias means.
    support, stretch = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    weights = np.zeros((count, in_size), np.float64)
    for row, i in enumerate(range(first, first + count)):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        taps = np.clip(1.0 - np.abs((np.arange(lo, hi) - center + 0.5) * stretch), 0.0, None)
        weights[row, lo:hi] = taps / taps.sum()
    return weights.astype(np.float32)


RESIZE_MODES = ("bilinear", "tf-legacy")


def _tf_legacy_taps(in_size: int, out_size: int):
    """TensorFlow 1's ResizeBilinear (align_corners=False, half_pixel_centers=False): output
    pixel i samples the input at i * in/out, with no half-pixel offset, so the picture shifts
    by up to half a pixel against OpenCV's and PyTorch's resize. Returns the two source
    indices and the weight of the second, as TensorFlow computes them (in float32)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _tf_legacy_grid(in_h: int, in_w: int, out_h: int, out_w: int, device):
    """grid_sample's grid (1 x out_h x out_w x 2, x then y in [-1, 1]) for the legacy sample
    positions. Cached per size and device: on a GPU, building it per frame would be a
    blocking host-to-device copy in the loop."""
    import torch

    # align_corners=False unnormalises g to ((g + 1) * n - 1) / 2, so g = (2 * src + 1) / n - 1.
    ys = (2 * np.arange(out_h, dtype=np.float64) * (np.float32(in_h) / np.float32(out_h)) + 1) / in_h - 1
    xs = (2 * np.arange(out_w, dtype=np.float64) * (np.float32(in_w) / np.float32(out_w)) + 1) / in_w - 1
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx, gy], axis=-1)[None].astype(np.float32)
    return torch.from_numpy(grid).to(device)


class numpy_ops:  # noqa: N801 - a namespace, spelled like the module it could have been
    """The steps with numpy and OpenCV. Images are HxWx3 (OpenCV's layout) until hwc_to_chw."""

    @staticmethod
    def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
        """Swap the channel order. OpenCV reads BGR; torchvision-trained networks expect RGB."""
        _check_image(image, "HWC", ("uint8", "float32"))
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    @staticmethod
    def resize(image: np.ndarray, size) -> np.ndarray:
        """Bilinear resize to size=(width, height); keeps the dtype (uint8 results are rounded).

        Preprocessor resizes float32 so no rounding happens before normalization.
        """
        _check_image(image, "HWC", ("uint8", "float32"))
        return cv2.resize(image, _check_size(size), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def resize_tf_legacy(image: np.ndarray, size) -> np.ndarray:
        """TensorFlow 1's legacy bilinear resize (see _tf_legacy_taps) of HxWxC float32."""
        _check_image(image, "HWC", ("float32",))
        w, h = _check_size(size)
        y0, y1, wy = _tf_legacy_taps(image.shape[0], h)
        x0, x1, wx = _tf_legacy_taps(image.shape[1], w)
        top = image[y0] + (image[y1] - image[y0]) * wy[:, None, None]
        return top[:, x0] + (top[:, x1] - top[:, x0]) * wx[None, :, None]

    @staticmethod
    def letterbox(image: np.ndarray, size, pad_value: float = PAD_VALUE):
        """Resize keeping the aspect ratio, pad to size=(width, height).

        Returns (image, Letterbox); the Letterbox maps boxes between the two frames.
        """
        _check_image(image, "HWC", ("uint8", "float32"))
        transform = Letterbox.fit((image.shape[1], image.shape[0]), size)
        resized = numpy_ops.resize(image, transform.resized_size)
        (left, top), (dw, dh), (nw, nh) = transform.pad, transform.dst_size, transform.resized_size
        padded = cv2.copyMakeBorder(resized, top, dh - nh - top, left, dw - nw - left,
                                    cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
        return padded, transform

    @staticmethod
    def classification_crop(image: np.ndarray, resize_size: int = 256, crop_size: int = 224):
        """torchvision's ImageNet eval geometry: shorter side to 256 (antialiased bilinear),
        centre crop 224. Returns (float32 HxWx3 crop, Letterbox).

        OpenCV has no antialiased bilinear, so this computes torch's filter directly: each
        axis is one matrix product, and only the pixels under the crop are touched.
        """
        _check_image(image, "HWC", ("uint8", "float32"))
        h, w = image.shape[:2]
        (nw, nh), (left, top), transform = _crop_geometry((w, h), resize_size, crop_size)
        wy = _antialias_weights(h, nh, top, crop_size)
        wx = _antialias_weights(w, nw, left, crop_size)
        # The band of input rows/columns with non-zero weight; the rest never matters.
        ys, xs = np.flatnonzero(wy.any(axis=0)), np.flatnonzero(wx.any(axis=0))
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        band = np.ascontiguousarray(image[y0:y1, x0:x1].transpose(2, 0, 1), dtype=np.float32)
        crop = wy[:, y0:y1] @ band @ wx[:, x0:x1].T  # 3 x crop x crop
        return np.ascontiguousarray(crop.transpose(1, 2, 0)), transform

    @staticmethod
    def normalize(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
        """(x / 255 - mean) / std per channel, as float32. mean[i] and std[i] apply to
        channel i, so swap to RGB first when the constants are RGB (ImageNet's are)."""
        _check_image(image, "HWC", ("uint8", "float32"))
        scale, offset = _normalize_constants(mean, std)
        # cv2.transform applies a 3x4 matrix to every pixel: a diagonal scale plus an offset
        # column is the whole normalization in one fused pass, ~30x faster than numpy
        # broadcasting over a length-3 last axis. It keeps the input depth, hence float32 first.
        matrix = np.hstack([np.diag(scale), offset[:, None]])
        return cv2.transform(image.astype(np.float32, copy=False), matrix)

    @staticmethod
    def hwc_to_chw(image: np.ndarray) -> np.ndarray:
        """HxWx3 -> 3xHxW, contiguous (networks want channels first)."""
        _check_image(image, "HWC", ("uint8", "float32"))
        return np.ascontiguousarray(image.transpose(2, 0, 1))

    @staticmethod
    def batch(images) -> np.ndarray:
        """A list of 3xHxW images of one size -> an Nx3xHxW array."""
        images = list(images)
        if not images:
            raise ValueError("expected at least one image to batch; found an empty list.")
        shapes = {tuple(np.shape(i)) for i in images}
        if len(shapes) > 1:
            raise ValueError(f"expected images of one size to batch; found sizes {sorted(shapes)}. "
                             "Resize or letterbox them to one size first, e.g. "
                             "Preprocessor(size=(320, 320)).")
        return np.stack(images)


# ---------------------------------------------------------------- torch


def _as_nchw(image):
    return (image[None], True) if image.dim() == 3 else (image, False)


def _interpolate(image, size, antialias: bool):
    """Bilinear resize of a (N)CHW tensor to size=(width, height), in float32."""
    import torch.nn.functional as F

    x, single = _as_nchw(image)
    rounded = not x.is_floating_point()
    w, h = size  # interpolate wants (height, width): the one place the order flips
    x = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False,
                      antialias=antialias)
    if rounded:
        x = x.round_().clamp_(0, 255).byte()  # back to uint8, as cv2.resize does
    return x[0] if single else x


@functools.lru_cache(maxsize=16)
def _torch_normalize_constants(mean, std, device):
    # Cached per device: building them each frame would be a blocking host->device copy.
    import torch

    scale, offset = _normalize_constants(mean, std)
    return (torch.from_numpy(scale).view(3, 1, 1).to(device),
            torch.from_numpy(offset).view(3, 1, 1).to(device))


class torch_ops:  # noqa: N801 - a namespace, spelled like the module it could have been
    """The steps with torch, on whatever device the tensor lives. Images are 3xHxW (or
    Nx3xHxW): interpolate wants channels first, so the layout change comes first here."""

    @staticmethod
    def upload(frame, device="cpu"):
        """A BGR uint8 HxWx3 frame (numpy or tensor) -> a uint8 HxWx3 tensor on ``device``.

        On the CPU this shares the numpy array's memory. To CUDA it is staged through page-
        locked (pinned) host memory so the copy can run asynchronously; torch's pinned
        allocator hands the same block back for the next frame of that size once the copy
        that read it has finished, so the buffer is reused without racing the GPU.
        """
        import torch

        check_frame(frame)
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())  # so "cuda" == "cuda:0"
        if _is_tensor(frame):
            if frame.device.type != "cpu" and frame.device != device:
                raise ValueError(f"the frame is on {frame.device} but the target is {device}; "
                                 "move it explicitly (frame.to(device)) if that is what you want.")
            pinned = device.type == "cuda" and frame.device.type == "cpu" and frame.is_pinned()
            return frame.to(device, non_blocking=pinned)
        if device.type == "cuda":
            host = torch.empty(frame.shape, dtype=torch.uint8, pin_memory=True)
            np.copyto(host.numpy(), frame)
            return host.to(device, non_blocking=True)
        if device.type != "cpu":
            raise ValueError(f"expected device 'cpu' or 'cuda'; found {device}.")
        return torch.from_numpy(np.ascontiguousarray(frame))

    @staticmethod
    def hwc_to_chw(image):
        """(N)xHxWx3 -> (N)x3xHxW as a view (no copy; the next op reads the strides)."""
        if not _is_tensor(image):
            raise ValueError(f"torch_ops take torch tensors; found {_describe(image)}. "
                             "Call torch_ops.upload(frame, device) first.")
        shape = tuple(image.shape)
        _check_shape(shape if len(shape) != 4 else shape[1:], _describe(image), "HWC")
        return image.movedim(-1, -3)

    @staticmethod
    def bgr_to_rgb(image):
        """Swap the channel order of a (N)x3xHxW tensor."""
        _check_image(image, "CHW", ("uint8", "float32"))
        return image.flip(-3)

    @staticmethod
    def resize(image, size):
        """Bilinear resize to size=(width, height); keeps the dtype (uint8 results are rounded)."""
        _check_image(image, "CHW", ("uint8", "float32"))
        return _interpolate(image, _check_size(size), antialias=False)

    @staticmethod
    def resize_tf_legacy(image, size):
        """TensorFlow 1's legacy bilinear resize (see _tf_legacy_taps) of (N)CHW float32.

        One grid_sample whose grid holds the legacy sample positions (src = dst * in/out):
        a gather with index tensors is 10-20x slower on a CPU. The grid's normalised
        coordinates round in float32, so values differ from TensorFlow's by up to ~0.01 grey
        levels (0.016 at most, measured on vtest.avi): far inside what the port is held to."""
        import torch.nn.functional as F

        _check_image(image, "CHW", ("float32",))
        w, h = _check_size(size)
        x, single = _as_nchw(image)
        grid = _tf_legacy_grid(x.shape[-2], x.shape[-1], h, w, x.device).expand(x.shape[0], -1, -1, -1)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out[0] if single else out

    @staticmethod
    def letterbox(image, size, pad_value: float = PAD_VALUE):
        """Resize keeping the aspect ratio, pad to size=(width, height).

        Returns (image, Letterbox); the Letterbox maps boxes between the two frames.
        """
        import torch.nn.functional as F

        _check_image(image, "CHW", ("uint8", "float32"))
        transform = Letterbox.fit((image.shape[-1], image.shape[-2]), size)
        resized = _interpolate(image, transform.resized_size, antialias=False)
        (left, top), (dw, dh), (nw, nh) = transform.pad, transform.dst_size, transform.resized_size
        padded = F.pad(resized, (left, dw - nw - left, top, dh - nh - top), value=float(pad_value))
        return padded, transform

    @staticmethod
    def classification_crop(image, resize_size: int = 256, crop_size: int = 224):
        """torchvision's ImageNet eval geometry (shorter side 256 antialiased, centre crop 224),
        kept in float32 (torchvision rounds a uint8 input back to uint8 after resizing).
        Returns (float32 3xHxW crop, Letterbox)."""
        _check_image(image, "CHW", ("uint8", "float32"))
        (nw, nh), (left, top), transform = _crop_geometry(
            (image.shape[-1], image.shape[-2]), resize_size, crop_size)
        resized = _interpolate(image.float(), (nw, nh), antialias=True)
        return resized[..., top:top + crop_size, left:left + crop_size], transform

    @staticmethod
    def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        """(x / 255 - mean) / std per channel, as float32 on the image's device."""
        import torch

        _check_image(image, "CHW", ("uint8", "float32"))
        mean, std = _check_mean_std(mean, std)
        scale, offset = _torch_normalize_constants(mean, std, image.device)
        return torch.addcmul(offset, image.float(), scale)

    @staticmethod
    def batch(images):
        """A list of 3xHxW tensors of one size -> a contiguous Nx3xHxW tensor."""
        import torch

        images = list(images)
        if not images:
            raise ValueError("expected at least one image to batch; found an empty list.")
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) > 1:
            raise ValueError(f"expected images of one size to batch; found sizes {sorted(shapes)}. "
                             "Resize or letterbox them to one size first, e.g. "
                             "Preprocessor(size=(320, 320)).")
        return torch.stack(images)


# ---------------------------------------------------------------- the pipeline


class Preprocessor:
    """BGR uint8 frames -> (normalized float32 Nx3xHxW batch, [Letterbox per frame]).

    size=(width, height) or None (keep the frame size; frames must then match to batch).
    letterbox=True keeps the aspect ratio and pads with ``pad_value``; False stretches.
    backend="numpy" returns an np.ndarray; backend="torch" a tensor on ``device``.
    ``Preprocessor.imagenet()`` builds torchvision's classification transform instead.
    """

    def __init__(self, size=(320, 320), letterbox: bool = True, mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, pad_value: float = PAD_VALUE, backend: str = "numpy",
                 device="cpu", *, crop_from: int | None = None, resize: str = "bilinear"):
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}; found {resize!r}.")
        if resize != "bilinear" and (letterbox or crop_from is not None):
            raise ValueError(f"resize={resize!r} is a stretch resize: use letterbox=False and no crop.")
        self.resize = resize
        self.size = None if size is None else _check_size(size)
        self.letterbox = bool(letterbox)
        self.mean, self.std = _check_mean_std(mean, std)
        self.pad_value = float(pad_value)
        self.crop_from = crop_from
        if crop_from is not None and (self.size is None or self.size[0] != self.size[1]):
            raise ValueError(f"a classification crop is square: give size=(224, 224); "
                             f"found {size!r}.")
        if backend == "numpy":
            if str(device) != "cpu":
                raise ValueError(f"the numpy backend runs on the CPU; found device={device!r}. "
                                 "Use backend='torch' for a GPU.")
            self.ops, self.device = numpy_ops, "cpu"
        elif backend == "torch":
            import torch

            self.ops, self.device = torch_ops, torch.device(device)
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError(f"device={device!r} but torch sees no CUDA device on this "
                                   "machine (see helpers.env.probe()); use device='cpu'.")
            if self.device.type not in ("cpu", "cuda"):
                raise ValueError(f"expected device 'cpu' or 'cuda'; found {device!r}.")
        else:
            raise ValueError(f"backend must be 'numpy' or 'torch'; found {backend!r}.")
        self.backend = backend

    @classmethod
    def imagenet(cls, backend: str = "numpy", device="cpu", resize_size: int = 256,
                 crop_size: int = 224) -> Preprocessor:
        """torchvision's ImageNet eval transform: shorter side to 256, centre crop 224,
        ImageNet normalization."""
        return cls(size=(crop_size, crop_size), backend=backend, device=device,
                   crop_from=resize_size)

    def __repr__(self) -> str:
        fit = (f"crop_from={self.crop_from}" if self.crop_from else f"letterbox={self.letterbox}")
        return (f"Preprocessor(size={self.size}, {fit}, backend={self.backend!r}, "
                f"device={str(self.device)!r})")

    def __call__(self, frames):
        if isinstance(frames, (list, tuple)):
            frames = list(frames)
        elif getattr(frames, "ndim", None) == 4:
            frames = list(frames)  # an NxHxWx3 array is N frames
        else:
            frames = [frames]
        if not frames:
            raise ValueError("expected a frame or a list of frames; found an empty list.")
        for frame in frames:
            check_frame(frame)
        one = self._numpy_frame if self.backend == "numpy" else self._torch_frame
        images, transforms = zip(*(one(frame) for frame in frames))
        return self.ops.batch(images), list(transforms)

    def _geometry(self, image, width: int, height: int):
        if self.crop_from is not None:
            return self.ops.classification_crop(image, self.crop_from, self.size[0])
        if self.size is None:
            return image, Letterbox.stretch((width, height), (width, height))
        if self.letterbox:
            return self.ops.letterbox(image, self.size, self.pad_value)
        resize = self.ops.resize if self.resize == "bilinear" else self.ops.resize_tf_legacy
        return resize(image, self.size), Letterbox.stretch((width, height), self.size)

    def _numpy_frame(self, frame):
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"the numpy backend takes numpy frames; found {_describe(frame)}. "
                             "Use backend='torch', or copy it to the host explicitly: "
                             "frame.cpu().numpy().")
        # float32 before resizing: a uint8 resize rounds, and half a grey level is 2/255
        # after dividing by std -- the torch path would no longer agree.
        image = frame.astype(np.float32)
        image, transform = self._geometry(image, frame.shape[1], frame.shape[0])
        image = numpy_ops.bgr_to_rgb(image)  # after resizing: fewer pixels to swap
        image = numpy_ops.normalize(image, self.mean, self.std)
        return numpy_ops.hwc_to_chw(image), transform

    def _torch_frame(self, frame):
        image = torch_ops.upload(frame, self.device)
        image = torch_ops.hwc_to_chw(image).float()  # on the device: the upload stays uint8
        image, transform = self._geometry(image, frame.shape[1], frame.shape[0])
        image = torch_ops.bgr_to_rgb(image)
        return torch_ops.normalize(image, self.mean, self.std), transform
