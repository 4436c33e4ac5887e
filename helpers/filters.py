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
import time
import warnings
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
# Held out from training (tools/train_sr.py never reads them): the quality check's photos.
HELD_OUT_PHOTOS = ("photo_chelsea", "photo_astronaut", "photo_coffee")
TRAIN_PHOTOS = ("photo_rocket", "texture_brick", "texture_grass", "texture_gravel", "photo_camera",
                "photo_hubble", "photo_coins", "photo_ihc", "photo_retina", "photo_text")


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


# ---------------------------------------------------------------- making low/high-resolution pairs

def fit_to_scale(image: np.ndarray, scale: int, mode: str = "refuse") -> np.ndarray:
    """Make ``image``'s height and width multiples of ``scale`` so it can be downscaled exactly.

    ``mode``: "refuse" (raise, naming the size), "crop" (drop the last rows/columns) or "pad"
    (reflect-pad: nothing is lost, the border repeats).
    """
    h, w = image.shape[:2]
    dh, dw = (-h) % scale, (-w) % scale
    if not dh and not dw:
        return image
    if mode == "refuse":
        raise ValueError(f"a {w}x{h} image does not divide by the scale factor {scale}: a x{scale} pair needs "
                         f"both sides to be multiples of {scale}. Use fit_to_scale(image, {scale}, mode='crop') "
                         f"to drop {h % scale} row(s) and {w % scale} column(s), or mode='pad' to reflect-pad "
                         f"{dh} row(s) and {dw} column(s).")
    if mode == "crop":
        return image[: h - h % scale, : w - w % scale]
    if mode == "pad":
        pad = ((0, dh), (0, dw)) + ((0, 0),) * (image.ndim - 2)
        return np.pad(image, pad, mode="reflect")
    raise ValueError(f"mode must be 'refuse', 'crop' or 'pad'; found {mode!r}.")


def downscale(image: np.ndarray, scale: int, mode: str = "refuse") -> np.ndarray:
    """The degradation the network learned to undo: area averaging by ``scale`` (like sensor binning)."""
    import cv2

    image = fit_to_scale(image, scale, mode)
    h, w = image.shape[:2]
    return cv2.resize(image, (w // scale, h // scale), interpolation=cv2.INTER_AREA)


def bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    """The baseline to beat: OpenCV bicubic upscaling."""
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


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
        t0 = time.perf_counter()
        x = torch.stack([self._to_tensor(f, g) for f, g in zip(frames, grays)])
        # contiguous(): a true NCHW batch, whatever the runtime (the permuted view would hand
        # eager PyTorch channels_last strides and blur the NCHW/channels_last comparison).
        x = x.permute(0, 3, 1, 2).to(self.dtype).div_(255.0).contiguous()
        h, w = x.shape[2:]
        if h % 2 or w % 2:  # checked above: pad_odd is on
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        self._sync()
        t1 = time.perf_counter()
        (y,) = self.runtime.run(x)
        y = y[..., : h * self.scale, : w * self.scale]
        self._sync()
        t2 = time.perf_counter()
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
        t3 = time.perf_counter()
        for name, value in (("preprocess", t1 - t0), ("network", t2 - t1), ("postprocess", t3 - t2)):
            setattr(self.times, name, 1e3 * value)
            self.history[name].append(1e3 * value)
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

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()


# ---------------------------------------------------------------- quality

def quality(upscale, images, scale: int) -> list[dict]:
    """PSNR and SSIM (dB, 0..1) of ``upscale(low)`` and of bicubic against each original image.

    ``images``: name -> BGR uint8 image (cropped to a multiple of ``scale``). ``upscale``: a
    callable low-resolution uint8 -> high-resolution uint8 (an :class:`Upscaler`).
    """
    from skimage.metrics import structural_similarity

    from .metrics import psnr

    rows = []
    for name, hr in images.items():
        hr = fit_to_scale(hr, scale, "crop")
        low = downscale(hr, scale)
        ours, base = upscale(low), bicubic(low, scale)
        rows.append({
            "image": name, "size": f"{hr.shape[1]}x{hr.shape[0]}",
            "psnr_bicubic": psnr(base, hr), "psnr_sr": psnr(ours, hr),
            "ssim_bicubic": float(structural_similarity(base, hr, channel_axis=2)),
            "ssim_sr": float(structural_similarity(ours, hr, channel_axis=2)),
        })
        rows[-1]["psnr_gain"] = rows[-1]["psnr_sr"] - rows[-1]["psnr_bicubic"]
    return rows


def held_out_images(max_side: int = 768) -> dict[str, np.ndarray]:
    """The real photos the training script never sees, as BGR uint8 (large ones shrunk so the
    longer side is ``max_side``: the check runs in seconds)."""
    import cv2

    from . import assets

    out = {}
    for name in HELD_OUT_PHOTOS:
        image = assets.load_image(name)
        f = max_side / max(image.shape[:2])
        if f < 1:
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        out[name.removeprefix("photo_")] = image
    return out


def psnr_drift(reference: np.ndarray, output: np.ndarray) -> float:
    """PSNR of a runtime's output against PyTorch FP32's on the same input: drift made visible.
    Identical outputs give inf; above ~45 dB differences are invisible."""
    from .metrics import psnr

    return psnr(reference, output)


# Drift of a runtime's output against PyTorch FP32 on the same frame, as PSNR in dB, and how
# much of FP32's gain over bicubic survives. FP32 engines only reorder float sums, so the uint8
# outputs differ by one level at a few pixels (well above 50 dB). FP16 keeps ~3 decimal digits.
# INT8 really changes values; what matters is that the filter still beats bicubic, so it must
# keep at least half of the gain (a 30 dB-class drift would erase a 0.3 dB gain completely).
PSNR_DRIFT_TOLERANCES = {"fp32": {"psnr_db": 50.0, "gain_kept": 0.9},
                    "fp16": {"psnr_db": 40.0, "gain_kept": 0.75},
                    "int8": {"psnr_db": 32.0, "gain_kept": 0.5}}


def judge_drift(psnr_db: float, precision: str, gain_db: float | None = None,
                reference_gain_db: float | None = None) -> dict:
    """PASS/FAIL for one runtime: PSNR against FP32's output and the share of FP32's PSNR gain
    over bicubic (on held-out photos) that this runtime keeps."""
    if precision not in PSNR_DRIFT_TOLERANCES:
        raise ValueError(f"precision must be one of {sorted(PSNR_DRIFT_TOLERANCES)}; found {precision!r}.")
    tol = PSNR_DRIFT_TOLERANCES[precision]
    out = {"precision": precision, "psnr_db": psnr_db, "checks": {"psnr_db": bool(psnr_db >= tol["psnr_db"])}}
    # A share of a gain is only meaningful when there is a gain to share.
    if gain_db is not None and reference_gain_db is not None and reference_gain_db > 0.05:
        out["gain_kept"] = gain_db / reference_gain_db
        out["checks"]["gain_kept"] = bool(out["gain_kept"] >= tol["gain_kept"])
    out["verdict"] = "PASS" if all(out["checks"].values()) else "FAIL"
    return out


def drift_report(upscalers: dict, precisions: dict, scale: int, reference: str = "eager FP32") -> dict:
    """judge_drift for every runtime: PSNR against ``reference``'s output on the held-out
    astronaut shrunk by ``scale``, and the mean gain over bicubic on all held-out photos (kept
    as ``gain_db``). ``upscalers``: name -> Upscaler; ``precisions``: name -> "fp32"/"fp16"/"int8"."""
    photos = {k: fit_to_scale(v, scale, "crop") for k, v in held_out_images().items()}
    low = downscale(photos["astronaut"], scale)
    ref = upscalers[reference](low)
    gains = {name: float(np.mean([r["psnr_gain"] for r in quality(up, photos, scale)]))
             for name, up in upscalers.items()}
    return {name: {**judge_drift(psnr_drift(ref, up(low)), precisions[name], gains[name], gains[reference]),
                   "gain_db": round(gains[name], 3)}
            for name, up in upscalers.items()}


def export(model: SuperResolution, path, example_size=(240, 320), opset: int | None = None) -> Path:
    """ONNX with dynamic batch, height and width (one file serves every frame size)."""
    from .export import export_onnx

    h, w = example_size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return export_onnx(model.eval(), torch.rand(1, 3, h, w), path, dynamic_hw=True, opset=opset,
                           input_name="frames", output_names=["upscaled"])


def calibration_frames(count: int = 16, size=(240, 320), seed: int = 0) -> list[np.ndarray]:
    """INT8 calibration batches: random crops of the *training* photos (never the held-out
    ones), as the float32 1x3xHxW BGR batches the network gets."""
    from . import assets

    rng = np.random.default_rng(seed)
    photos = [assets.load_image(n) for n in TRAIN_PHOTOS]
    photos = [p for p in photos if p.shape[0] >= size[0] and p.shape[1] >= size[1]]
    out = []
    for i in range(count):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - size[0] + 1), rng.integers(0, p.shape[1] - size[1] + 1)
        crop = p[y:y + size[0], x:x + size[1]]
        out.append(np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0)
    return out


def weights_digest(model: nn.Module) -> str:
    """A short sha256 of what an exported file depends on: the weights and the network's code
    (a changed forward must never pick up an old export), and the torch version (exporter)."""
    import hashlib
    import inspect

    h = hashlib.sha256(inspect.getsource(type(model)).encode() + torch.__version__.encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


# TensorRT's optimization profile for the filter's *input* frames, tuned for one 480p frame.
# TensorRT reserves activation memory for the largest shape of the profile in every execution
# context, so the maximum is what the lesson feeds and no more: up to 544x960 (540p, the
# largest input of output_sizes(), and the held-out photos, astronaut being 512x512), batches
# up to 8. Held-out photos shrunk by 3 are ~150 px a side, hence the low minimum. A 1080p
# *input* at batch 8 would reserve 4x the memory, per context.
TRT_SHAPES = {"frames": ((1, 3, 16, 16), (1, 3, 480, 640), (8, 3, 544, 960))}


def make_variants(model: SuperResolution, workdir, caps=None, compile: bool = False, int8: bool = True,
                  threads: int | None = None, trt_shapes=None) -> tuple[dict, list[str]]:
    """Every runtime this machine has for ``model``: name -> (runtime, precision), and what was
    skipped, with why. CPU: eager (NCHW, channels_last), optionally torch.compile, ONNX Runtime
    FP32 and INT8 (QDQ). CUDA: eager FP32/FP16, compile, compile + CUDA graphs. TensorRT:
    FP32/FP16/INT8 engines with a height/width optimization profile (``trt_shapes``)."""
    import copy

    from . import env, export as ex, runtimes, trt

    caps = caps or env.probe()
    workdir = Path(workdir)
    threads = threads or torch.get_num_threads()
    # Files are named by the weights' hash: retrained weights can never pick up a stale export.
    tag = f"sr_x{model.scale}-{weights_digest(model)}"
    onnx32 = workdir / f"{tag}.onnx"
    if not onnx32.is_file():
        export(model, onnx32)
    variants, skipped = {}, []
    cpu_model = copy.deepcopy(model).cpu()
    variants["eager FP32"] = (runtimes.TorchEager(copy.deepcopy(cpu_model)), "fp32")
    variants["eager channels_last"] = (runtimes.TorchEager(copy.deepcopy(cpu_model), channels_last=True), "fp32")
    if compile and env.torch_compile_problem("cpu"):
        skipped.append(f"torch.compile: skipped - {env.torch_compile_problem('cpu')}")
    elif compile:
        variants["torch.compile"] = (runtimes.TorchCompile(copy.deepcopy(cpu_model), dynamic=False), "fp32")
    variants["ORT FP32"] = (runtimes.OnnxRuntime(onnx32, intra_op_threads=threads), "fp32")
    if int8:
        onnx8 = workdir / f"{tag}_int8_qdq.onnx"
        if not onnx8.is_file():
            ex.quantize_int8(onnx32, onnx8, calibration_frames())
        variants["ORT INT8"] = (runtimes.OnnxRuntime(onnx8, intra_op_threads=threads), "int8")
    if caps.has_cuda:
        gpu = copy.deepcopy(cpu_model).cuda()
        variants["eager FP32 (cuda)"] = (runtimes.TorchEager(copy.deepcopy(gpu)), "fp32")
        variants["eager FP16 (cuda)"] = (runtimes.TorchEager(copy.deepcopy(gpu).half()), "fp16")
        why_not_compile = env.torch_compile_problem("cuda")
        if why_not_compile:
            skipped.append(f"torch.compile and CUDA graphs on cuda: skipped - {why_not_compile}")
        else:
            variants["compile (cuda)"] = (runtimes.TorchCompile(copy.deepcopy(gpu)), "fp32")
            variants["compile + CUDA graphs (cuda)"] = (
                runtimes.TorchCompile(copy.deepcopy(gpu), mode="reduce-overhead"), "fp32")
        if caps.available("ort_cuda"):
            variants["ORT FP32 (cuda)"] = (runtimes.OnnxRuntime(onnx32, providers=["CUDAExecutionProvider"]), "fp32")
    else:
        skipped.append(f"GPU runtimes (eager/compile/CUDA graphs on cuda): skipped - {caps.why_not('cuda')}")
    why = trt.available()
    if why:
        skipped.append(f"TensorRT engines: skipped - {why}")
    else:
        shapes = trt_shapes or TRT_SHAPES
        sources = {"fp32": onnx32, "fp16": onnx32}
        if int8:
            # TensorRT takes symmetric signed INT8 only: its own QDQ file, not ONNX Runtime's.
            sources["int8"] = workdir / f"{tag}_int8_qdq_tensorrt.onnx"
            if not sources["int8"].is_file():
                ex.quantize_int8(onnx32, sources["int8"], calibration_frames(), target="tensorrt")
        for precision, path in sources.items():
            try:
                rt = runtimes.make_runtime("tensorrt", onnx_path=path, precision=precision, shapes=shapes,
                                           cache_dir=workdir / "engines")
            except (ValueError, RuntimeError) as exc:  # e.g. FP16 on a strongly-typed-only TensorRT
                skipped.append(f"TensorRT {precision.upper()}: skipped - {exc}")
                continue
            variants[f"TensorRT {precision.upper()}"] = (rt, precision)
    return variants, skipped


def realtime(ms_per_frame: float, fps: float) -> str:
    budget = 1000.0 / fps
    if ms_per_frame <= budget:
        return f"real-time at {fps:g} fps with {1 - ms_per_frame / budget:.0%} headroom"
    return f"not real-time at {fps:g} fps: {ms_per_frame - budget:.1f} ms over the {budget:.1f} ms budget"


def output_sizes() -> dict[str, tuple[int, int, int]]:
    """The lesson's cases: name -> (input height, input width, scale)."""
    return {"480p->960p (x2)": (480, 640, 2), "540p->1080p (x2)": (540, 960, 2),
            "360p->1080p (x3)": (360, 640, 3), "240p->480p (x2)": (240, 320, 2)}


def gmacs(model: SuperResolution, height: int, width: int) -> float:
    return model.macs(height, width) / 1e9


__all__ = ["SuperResolution", "Upscaler", "super_resolution", "fit_to_scale", "downscale", "bicubic",
           "quality", "held_out_images", "psnr_drift", "export", "realtime", "memory_estimate",
           "calibration_frames", "make_variants", "PSNR_DRIFT_TOLERANCES", "judge_drift", "drift_report",
           "output_sizes", "gmacs"]
