"""Image-to-image video filters: super-resolution as a network that runs through any runtime.

    model = filters.super_resolution(scale=2)               # committed weights, checksum-verified
    up = filters.Upscaler(runtimes.make_runtime("torch", model=model), scale=2)
    big = up(frame_bgr)                                     # HxWx3 uint8 in, 2Hx2Wx3 uint8 out

**The network** (:class:`SuperResolution`) is ESPCN-class (Shi et al., 2016): a few convolutions
at the *low* resolution, then a pixel shuffle (depth-to-space) that turns ``(2*scale)**2``
channels into a ``scale``-times larger picture. Three choices keep it small enough for a CPU:

- It learns only a **luma residual** on top of bicubic upscaling. Bicubic does most of the work
  (and all of the colour); the network adds back edges and texture. Adding the same amount to
  B, G and R changes only luma, because the luma weights sum to 1 and the chroma weights to 0,
  so one residual per output pixel is enough. Zero-initialised, the network starts at bicubic.
- Everything runs on the picture **folded 2x2** into 12 channels: a quarter of the pixels, with
  channel counts that convolution kernels use efficiently. Even bicubic is one fixed
  convolution there (:func:`bicubic_kernels`), exactly torch's bicubic.
- Input and output are whole BGR float images (N x 3 x H x W in 0..1), so bicubic and the
  residual are both inside the exported graph: every runtime (eager, compile, ONNX Runtime,
  TensorRT) runs the same complete filter, and drift is measured on whole images.

**The stage** (:class:`Upscaler`) turns uint8 frames into the runtime's batch and back, on the
runtime's device (the upload is pinned and non-blocking on CUDA), with grayscale handled
explicitly and a memory estimate that refuses frames too large for the machine.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# BT.601 luma of BGR (the order frames arrive in): what the network sharpens.
LUMA_BGR = (0.114, 0.587, 0.299)
SCALES = (2, 3)
# The committed weights: asset names in data/manifest.json, trained by tools/train_sr.py.
WEIGHTS = {2: "espcn_x2", 3: "espcn_x3"}


def _cubic_taps(scale: int) -> list[list[float]]:
    """Per output phase, the 5 weights on source pixels k-2 .. k+2 of Keys' cubic (a = -0.75),
    exactly what ``F.interpolate(mode="bicubic", align_corners=False)`` uses."""
    a = -0.75

    def cubic(d):
        d = abs(d)
        if d <= 1:
            return (a + 2) * d**3 - (a + 3) * d**2 + 1
        if d < 2:
            return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
        return 0.0

    taps = []
    for phase in range(scale):
        src = (phase + 0.5) / scale - 0.5  # this phase's source position, relative to pixel k
        row = [cubic(src - j) for j in range(-2, 3)]
        taps.append([w / sum(row) for w in row])
    return taps


def bicubic_kernels(scale: int) -> torch.Tensor:
    """Bicubic upscaling by ``scale`` as one 3x3 convolution (3 groups) on the 2x2-folded picture.

    Input: the BGR picture replicate-padded by 2 and pixel-unshuffled by 2 (12 channels).
    Output: ``3 * (2*scale)**2`` channels (``(2*scale)**2`` per colour group) that ``pixel_shuffle(.., 2*scale)`` interleaves into
    the ``scale``-times larger BGR picture. A 2x2 input block's output needs source pixels
    -2 .. +3 around it, which the 3x3 window on the folded grid covers exactly.

    Why a convolution and not ``F.interpolate``: dense convolutions are what every runtime
    (oneDNN, ONNX Runtime, cuDNN, TensorRT, INT8 quantizers) runs best; torch's own bicubic op
    costs more than the whole network on a CPU.
    """
    taps, s2 = _cubic_taps(scale), 2 * scale
    k = torch.zeros(3 * s2 * s2, 12, 3, 3, dtype=torch.float64)
    for c in range(3):
        for qy in range(s2):
            for qx in range(s2):
                for oy in range(6):  # source row offset from the block's first row - 2
                    jy = oy - 2 - qy // scale
                    for ox in range(6):
                        jx = ox - 2 - qx // scale
                        if -2 <= jy <= 2 and -2 <= jx <= 2:
                            w = taps[qy % scale][jy + 2] * taps[qx % scale][jx + 2]
                            k[c * s2 * s2 + qy * s2 + qx, c * 4 + (oy % 2) * 2 + ox % 2, oy // 2, ox // 2] = w
    # Each colour reads only its own 4 folded channels: keep those (a 3-group convolution).
    per = s2 * s2
    return torch.cat([k[c * per:(c + 1) * per, c * 4:(c + 1) * 4] for c in range(3)]).float()


class SuperResolution(nn.Module):
    """Bicubic upscaling plus a learned luma residual, both on the 2x2-folded picture.

    The picture is replicate-padded and folded 2x2 into 12 channels (pixel unshuffle): a
    quarter of the pixels with 4x the channels, which CPUs and GPUs run far more efficiently
    than thin full-size images, at the price of an even height and width (:class:`Upscaler`
    pads odd frames). Bicubic is one fixed convolution (:func:`bicubic_kernels`); the learned
    body (ESPCN-style: three 3x3 convolutions) predicts ``(2*scale)**2`` luma phases that are
    added to every colour's bicubic phases, and one pixel shuffle makes the full-size picture.

    Cost, per frame, in multiply-adds at input size H x W: ``H*W/4 * 9 * (12*(2s)**2 + 12f
    + f*f + f*(2s)**2)`` (see :meth:`macs`): 1.0 G for 640x480 at x2 with ``features=24``.
    """

    def __init__(self, scale: int = 2, features: int = 24):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}; found {scale!r}.")
        self.scale, self.features = scale, features
        self.register_buffer("bicubic", bicubic_kernels(scale))
        f, out = features, (2 * scale) ** 2
        # The first layer sees all 12 folded colour channels (no padding: the replicated border
        # is its context); the output is luma only, added equally to B, G and R.
        self.body = nn.Sequential(
            nn.Conv2d(12, f, 3), nn.ReLU(inplace=True),
            nn.Conv2d(f, f, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(f, out, 3, padding=1),
        )
        # Start exactly at bicubic, so training only ever has to add detail.
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def _fold(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(F.pad(x, (2, 2, 2, 2), mode="replicate"), 2)

    def upscale_bicubic(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(self._fold(x), self.bicubic, groups=3), 2 * self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded = self._fold(x)
        first, _, second, _, last = self.body
        # The same function as body(folded - 0.5).repeat(1, 3, 1, 1) added to the bicubic
        # phases, written so that exported graphs carry no full-size Sub or Tile: centring the
        # input is folded into the first bias (a constant the runtimes fold at load time), and
        # the one luma residual is broadcast over B, G and R by the add itself.
        b1 = first.bias - 0.5 * first.weight.sum(dim=(1, 2, 3))
        h = F.relu(second(F.relu(F.conv2d(folded, first.weight, b1))))
        residual = last(h)  # N x p x h x w, p = (2*scale)**2 luma phases
        n, p, hh, ww = residual.shape
        phases = F.conv2d(folded, self.bicubic, groups=3).view(n, 3, p, hh, ww) + residual.unsqueeze(1)
        return F.pixel_shuffle(phases.clamp(0.0, 1.0).view(n, 3 * p, hh, ww), 2 * self.scale)

    def macs(self, height: int, width: int) -> int:
        f, p = self.features, (2 * self.scale) ** 2
        return int(height * width // 4 * 9 * (12 * p + 12 * f + f * f + f * p))


def _load_state(path: Path) -> dict:
    import pickle
    import zipfile

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such super-resolution checkpoint. Pass the .pt "
                                "written by tools/train_sr.py, or weights=None for the committed one.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (KeyError, EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        # A text or truncated file fails deep in the unpickler (e.g. "KeyError: 101", the 'e').
        raise ValueError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {exc}). "
                         "Expected the .pt written by tools/train_sr.py; re-run it or restore "
                         "the committed file with git.") from None
    if not isinstance(blob, dict) or "state_dict" not in blob or "config" not in blob:
        raise ValueError(f"{path} is not a super-resolution checkpoint written by tools/train_sr.py "
                         "(expected keys 'state_dict' and 'config'). Re-run the training script or restore "
                         "the committed file with git.")
    return blob


def super_resolution(scale: int = 2, device: str | torch.device = "cpu", weights: str | Path | None = None):
    """The committed super-resolution network for ``scale`` (2 or 3), in eval mode.

    ``weights``: a checkpoint path (e.g. one you trained); default: the committed file, resolved
    and checksum-verified through helpers.assets.
    """
    from . import assets

    if scale not in WEIGHTS:
        raise ValueError(f"scale must be one of {sorted(WEIGHTS)}; found {scale!r}.")
    path = Path(weights) if weights is not None else assets.resolve(WEIGHTS[scale])
    blob = _load_state(path)
    config = blob["config"]
    if config.get("scale") != scale:
        raise ValueError(f"{path} holds a x{config.get('scale')} network; x{scale} was asked for.")
    model = SuperResolution(scale, config["features"])
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return model.eval().to(device)


# ---------------------------------------------------------------- the pipeline stage

def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # Memory torch has cached but not handed out is free for the next frame too.
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    import psutil

    return int(psutil.virtual_memory().available)


def memory_estimate(model: SuperResolution, batch: int, height: int, width: int) -> int:
    """Bytes a forward pass needs at its peak, about, in float32: the input and its padded,
    folded copy; two hidden feature maps alive together (at a quarter of the pixels); the
    bicubic phases, the luma residual, their sum, the clamped sum and the shuffled picture;
    plus the uint8 result."""
    s = model.scale
    low = height * width
    floats = batch * (2 * 3 * low + 2 * model.features * low // 4 + (4 * 3 + 1) * s * s * low)
    return int(4 * floats + batch * 3 * s * s * low)


class Upscaler:
    """A super-resolution stage around any runtime of helpers.runtimes.

    ``runtime``: a runtime running a :class:`SuperResolution` network (eager, compile, ONNX
    Runtime, TensorRT). ``scale``: its factor (read off the model when it has one).
    ``memory_fraction``: frames whose estimated peak would exceed this share of the free memory
    on the runtime's device are refused with the estimate, instead of swapping or dying.

    ``pad_odd``: the network folds 2x2 pixels, so it needs an even height and width. An odd
    frame is padded by one replicated row/column and the result cropped back to exactly
    ``scale`` times the input (True), or refused with the size named (False).

    Frames: HxWx3 uint8 BGR numpy arrays or torch tensors, or grayscale (HxW or HxWx1), which
    are upscaled as gray and returned as gray. The result has the input's type and, for a
    tensor, stays on the runtime's device.
    """

    def __init__(self, runtime, scale: int | None = None, memory_fraction: float = 0.5,
                 pad_odd: bool = True, estimator: SuperResolution | None = None):
        model = getattr(runtime, "model", None)
        self.runtime = runtime
        self.scale = int(scale or getattr(model, "scale", 0) or 0)
        if self.scale not in SCALES:
            raise ValueError(f"Upscaler needs scale= (one of {SCALES}) when the runtime has no model to read it from.")
        self.estimator = estimator or (model if isinstance(model, SuperResolution) else SuperResolution(self.scale))
        self.memory_fraction, self.pad_odd = memory_fraction, pad_odd
        self.device = runtime.device
        self.dtype = getattr(runtime, "dtype", torch.float32)
        from .detect import StageTimes  # the same per-stage record a Detector keeps

        self.times = StageTimes()
        # The last 1000 frames per stage: a long video must not grow memory without bound.
        self.history = {k: collections.deque(maxlen=1000) for k in ("preprocess", "network", "postprocess")}

    # -- checks
    def _check(self, frames: list) -> list[bool]:
        grays = []
        for i, f in enumerate(frames):
            shape, dtype = tuple(f.shape), f.dtype
            if str(dtype) not in ("uint8", "torch.uint8"):
                raise ValueError(f"Upscaler: frame {i} has dtype {dtype}; expected uint8 (BGR HxWx3 or gray HxW). "
                                 "Convert with np.clip(x, 0, 255).astype(np.uint8).")
            if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
                grays.append(True)
            elif len(shape) == 3 and shape[2] == 3:
                grays.append(False)
            else:
                raise ValueError(f"Upscaler: frame {i} has shape {shape}; expected HxWx3 (BGR) or HxW / HxWx1 (gray). "
                                 "Drop an alpha channel with frame[..., :3].")
            if min(shape[:2]) < 1:
                raise ValueError(f"Upscaler: frame {i} is empty ({shape}).")
        if len({tuple(f.shape[:2]) for f in frames}) > 1:
            raise ValueError(f"Upscaler.batch: frames must share one size to be batched; found "
                             f"{sorted({tuple(f.shape[:2]) for f in frames})}. Upscale them one at a time.")
        h, w = frames[0].shape[:2]
        if (h % 2 or w % 2) and not self.pad_odd:
            raise ValueError(f"Upscaler: a {w}x{h} frame has an odd side; the network folds 2x2 pixels and needs "
                             f"even sizes. Crop it to {w - w % 2}x{h - h % 2}, or use Upscaler(..., pad_odd=True) "
                             "to pad one row/column and crop the result back.")
        need = memory_estimate(self.estimator, len(frames), h, w)
        have = _available_bytes(self.device)
        if need > self.memory_fraction * have:
            raise MemoryError(
                f"Upscaler: {len(frames)} frame(s) of {w}x{h} at x{self.scale} need about {need / 2**30:.1f} GiB "
                f"at the peak, more than {self.memory_fraction:.0%} of the {have / 2**30:.1f} GiB free on "
                f"{self.device}. Upscale a smaller frame or tile it, or use a smaller batch.")
        return grays

    # -- the stage
    def __call__(self, frame):
        return self.batch([frame])[0]

    def batch(self, frames: list):
        """Upscale several same-size frames in one network call (better throughput on a GPU)."""
        frames = list(frames)
        if not frames:
            return []
        grays = self._check(frames)
        is_tensor = isinstance(frames[0], torch.Tensor)
        from .bench import stage_timer  # here, not at the top: this module stays a leaf

        with stage_timer(self.device) as pre:
            x = torch.stack([self._to_tensor(f, g) for f, g in zip(frames, grays)])
            # contiguous(): a true NCHW batch, whatever the runtime (the permuted view would hand
            # eager PyTorch channels_last strides and blur the NCHW/channels_last comparison).
            x = x.permute(0, 3, 1, 2).to(self.dtype).div_(255.0).contiguous()
            h, w = x.shape[2:]
            if h % 2 or w % 2:  # checked above: pad_odd is on
                x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        with stage_timer(self.device) as net:
            (y,) = self.runtime.run(x)
            y = y[..., : h * self.scale, : w * self.scale]
        with stage_timer(self.device) as post:
            out = y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            results = []
            for i, g in enumerate(grays):
                r = out[i]
                if g:  # gray in, gray out: the three equal channels collapse back to one
                    r = r[..., :1] if frames[i].ndim == 3 else r[..., 0]
                # A dense HWC frame of its own (OpenCV draws only on contiguous arrays); on CUDA
                # .cpu() is the one copy to the host, on the CPU contiguous() makes the copy.
                r = r.contiguous()
                results.append(r if is_tensor else r.cpu().numpy())
        for name, timer in (("preprocess", pre), ("network", net), ("postprocess", post)):
            setattr(self.times, name, timer.ms)
            self.history[name].append(timer.ms)
        return results

    def _to_tensor(self, frame, gray: bool) -> torch.Tensor:
        if isinstance(frame, torch.Tensor):
            t = frame
        else:
            t = torch.from_numpy(np.ascontiguousarray(frame))
            if self.device.type == "cuda":
                t = t.pin_memory()
        t = t.to(self.device, non_blocking=True)
        if gray:
            t = (t if t.ndim == 3 else t[..., None]).expand(*t.shape[:2], 3)
        return t


__all__ = ["SuperResolution", "Upscaler", "super_resolution", "bicubic_kernels", "memory_estimate"]
