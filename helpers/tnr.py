"""Temporal noise reduction: average each pixel over time where nothing moves.

Sensor noise is independent from frame to frame; the scene mostly is not. So a pixel that
holds still can be averaged with its own past, and a pixel that moves must not be, or
moving objects leave ghosts. ``TemporalDenoiser`` does exactly that, with three backends:

- ``torch`` (CPU and CUDA, the default everywhere): a motion-adaptive recursive mean.
  ``out = prev + alpha * (frame - prev)`` per 4x4 block, where each block counts the frames
  ``n`` its output already averages: a still block takes ``alpha = 1 / (n + 1)``, so after
  12 still frames the output *is* their mean (the best a temporal filter can do: noise
  variance / 12, +10.8 dB), and ``n`` grows up to ``32 * strength``. Motion is the block's
  luma difference to the previous output measured in units of that difference's own noise
  std, ``s * sqrt(1 + 1/n) / 4``, with the noise ``s`` measured on every frame (the median
  block, capped by the frame's fine texture so a camera pan is not taken for noise); where
  it moves, the count falls back towards 0 and the new frame wins (no ghosts). The preset
  is the least noise to assume (``sigma``), ``strength`` how long to average. On CUDA the
  step is compiled into fused kernels with torch.compile when it is available.
- ``vpi``: NVIDIA VPI's TemporalNoiseReduction (V3) on the CUDA backend, when ``import vpi``
  works (Jetson, or NVIDIA's apt repository). Frames stay on the GPU and come back to torch
  without a copy.
- ``opencv``: ``cv2.fastNlMeansDenoisingColoredMulti`` over the last few frames, the
  classical (slow, high-quality) baseline.

    tnr = TemporalDenoiser(backend="torch", preset="outdoor_low_light", strength=0.6)
    for frame in source:
        clean = tnr(frame.image)      # same type and device as the input, BGR uint8 HxWx3
    tnr.reset()                       # before the next, unrelated sequence

A frame whose size differs from the previous one resets the filter, with a warning: its
history belongs to another picture.
"""

from __future__ import annotations

import collections
import warnings

import numpy as np

__all__ = ["TemporalDenoiser", "PRESETS", "BACKENDS", "available_backends"]

# Expected noise (standard deviation in grey levels, 0..255) for each VPI-style preset; the
# torch backend takes it as a floor under the noise it measures. Indoor light is dimmer and
# flatter than outdoor light at the same label.
PRESETS = {
    "outdoor_high_light": 2.0, "outdoor_medium_light": 4.0, "outdoor_low_light": 8.0,
    "indoor_high_light": 3.0, "indoor_medium_light": 6.0, "indoor_low_light": 12.0,
}
BACKENDS = ("torch", "vpi", "opencv")
LUMA_BGR = (0.114, 0.587, 0.299)  # BT.601, in OpenCV's channel order
BLOCK = 4  # motion is measured per 4x4 block of pixels
# Still below LOW, moving above HIGH: the block-mean luma difference in units of its noise std.
LOW, HIGH = 1.5, 3.0
MAX_FRAMES = 32  # strength 1 averages up to 32 frames where still (strength 0.5: 16)


def available_backends() -> dict[str, str]:
    """{backend: "" if usable here, else why not}."""
    out = {"torch": "", "opencv": ""}
    try:
        import vpi  # noqa: F401
        out["vpi"] = ""
    except Exception as exc:  # ImportError, or a broken install that fails on load
        out["vpi"] = f"import vpi failed ({type(exc).__name__}: {exc}); VPI ships with JetPack"
    return out


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton

        return bool(has_triton())
    except Exception:
        return False


def _check_strength(strength) -> float:
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be within 0..1 (0 = off, 1 = strongest); found {strength}.")
    return strength


def _check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
    return preset


def _check_frame(frame) -> None:
    from .preprocess import check_frame

    shape = tuple(getattr(frame, "shape", ()))
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 4)):
        raise ValueError(f"TemporalDenoiser takes BGR frames, HxWx3 uint8; found shape {shape}. "
                         "Convert grayscale with cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) and RGBA "
                         "with cv2.COLOR_RGBA2BGR first.")
    check_frame(frame)


class _TorchTNR:
    """The recursive filter. State on the device: the previous output (float32 HxWx3) and its
    luma, and per 4x4 block the number of frames that output averages."""

    def __init__(self, device, compile: bool | None):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.prev = self.prev_luma = self.count = self.noise = None
        self.luma = torch.tensor(LUMA_BGR, device=self.device)
        # Immerkaer's noise kernel: it cancels planes and ramps, and white noise of std s comes
        # out of it with std 6 s.
        self.kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]],
                                   device=self.device)[None, None] / 6.0
        self._params = {}
        self.step = self._step
        if compile is None:
            compile = self.device.type == "cuda" and _has_triton()
        if compile:
            # The knobs arrive as one tensor, not Python floats: a float would be baked into the
            # compiled kernel and every new strength would recompile.
            self.step = torch.compile(self._step, fullgraph=True)
        self.compiled = bool(compile)

    def params(self, max_frames: float, sigma: float):
        key = (max_frames, sigma)
        if key not in self._params:
            if len(self._params) > 64:
                self._params.clear()
            self._params[key] = self.torch.tensor(key, device=self.device)
        return self._params[key]

    @staticmethod
    def _step(x, prev, prev_luma, count, luma, kernel, params):
        import torch
        import torch.nn.functional as F

        max_frames, sigma_floor = params[0], params[1]
        h, w = x.shape[:2]
        b = BLOCK
        x_luma = x @ luma
        # Per 4x4 block, the mean luma difference between the frame and the previous output.
        # Where nothing moved it is noise alone, with std  s * sqrt(1 + 1/n) / 4  for frame noise
        # s (16 pixels average it) and a previous output that averages n frames; z is the
        # difference in units of that std, so it reads the same in daylight and at night.
        diff = F.avg_pool2d((x_luma - prev_luma)[None, None], b)[0, 0]
        scale = b * torch.rsqrt(1.0 + 1.0 / count)
        # The noise s, measured on this frame: the median block (most of a scene is still), but
        # never above what the frame's own fine texture allows (Immerkaer's filter on an 8-pixel
        # grid) so that a camera pan, where every block moves, is not mistaken for noise. The
        # preset's sigma is the floor. A flicker of the whole frame is taken out first (the
        # median difference). Medians over every other block (14400 at 720p) are as good and
        # 4x cheaper. All on the device: no host sync.
        sample, sample_scale = diff[::2, ::2], scale[::2, ::2]
        offset = sample.median()
        temporal = ((sample - offset).abs() * sample_scale).median()
        spatial = F.conv2d(x_luma[None, None], kernel, stride=2 * b).abs().median()
        noise = torch.maximum(torch.minimum(temporal, spatial) / 0.6745, sigma_floor)
        # A brightness change of the whole frame within twice the noise of a block mean is
        # flicker, and averaged away like noise; a larger one (a light switched on, a new
        # exposure) shows as motion everywhere and restarts the average.
        limit = 2.0 * noise / b
        z = (diff - offset.clamp(-limit, limit)).abs() * scale
        # Motion: z blurred over 3x3 blocks (a moving edge fades in over a few blocks), from 0
        # below LOW (noise: about 0.8 +- 0.2) to 1 above HIGH.
        z = F.avg_pool2d((z / noise)[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
        motion = ((z - LOW) / (HIGH - LOW)).clamp(0.0, 1.0)
        # A recursive mean: a still block that has averaged n frames takes the new one with
        # weight 1 / (n + 1), which is exactly the mean of all n + 1; motion forgets the history
        # in proportion; n stops growing at max_frames (then it averages about 2 * max_frames).
        history = count * (1.0 - motion)
        alpha = 1.0 / (history + 1.0)
        count = torch.minimum(history + 1.0, max_frames)
        # Blend with the block map broadcast over each block's pixels: no upsampled copy.
        shape = (h // b, b, w // b, b, 3)
        out = torch.lerp(prev.view(shape), x.view(shape), alpha[:, None, :, None, None])
        out_luma = torch.lerp(prev_luma.view(shape[:4]), x_luma.view(shape[:4]), alpha[:, None, :, None])
        return out.view(h, w, 3), out_luma.view(h, w), count, noise

    def __call__(self, frame, max_frames: float, sigma: float):
        torch = self.torch
        # non_blocking only overlaps anything from pinned host memory; from pageable memory
        # (a decoded numpy frame) CUDA stages the copy synchronously anyway, so don't pretend.
        pinned = frame.device.type == "cpu" and frame.is_pinned()
        x = frame.to(self.device, non_blocking=pinned).float().contiguous()
        h, w = x.shape[:2]
        if h % BLOCK or w % BLOCK:
            raise ValueError(f"the torch TNR works on {BLOCK}x{BLOCK} blocks; the frame is {w}x{h}. "
                             f"Crop or pad it to a multiple of {BLOCK} (every standard video size is).")
        if self.prev is None or max_frames <= 0.0:
            self.prev, self.prev_luma = x, x @ self.luma
            self.count = torch.ones((h // BLOCK, w // BLOCK), device=self.device)
            self.noise = None
        else:
            args = (x, self.prev, self.prev_luma, self.count, self.luma, self.kernel,
                    self.params(max_frames, sigma))
            try:
                self.prev, self.prev_luma, self.count, self.noise = self.step(*args)
            except Exception as exc:  # a compiler that fails here must not take the lesson down
                if not self.compiled:
                    raise
                warnings.warn(f"torch.compile of the TNR step failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); running it uncompiled.", RuntimeWarning)
                self.step, self.compiled = self._step, False
                self.prev, self.prev_luma, self.count, self.noise = self.step(*args)
        # Values stay within 0..255 (a blend of two frames that are), so +0.5 and truncation round.
        return (self.prev + 0.5).to(torch.uint8)

    def reset(self):
        self.prev = self.prev_luma = self.count = self.noise = None


class _OpenCVTNR:
    """fastNlMeans over a sliding window of the last ``window`` frames (odd; centre = newest
    would need the future, so the newest frame is denoised using the ones before it)."""

    def __init__(self, window: int = 3):
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be odd and >= 1; found {window}.")
        self.window = window
        self.frames = collections.deque(maxlen=window // 2 + 1)  # the newest frame and its past

    def __call__(self, frame: np.ndarray, h: float) -> np.ndarray:
        import cv2

        self.frames.append(frame.copy())  # a source may reuse its buffer for the next frame
        if h <= 0:
            return frame.copy()
        if len(self.frames) < self.frames.maxlen:
            return cv2.fastNlMeansDenoisingColored(frame, None, h, h, 5, 15)
        # The newest frame at the centre of the window, its past before it and, as the future
        # is not known yet, itself repeated after it: a causal filter.
        frames = list(self.frames) + [self.frames[-1]] * (self.window // 2)
        return cv2.fastNlMeansDenoisingColoredMulti(frames, self.window // 2, self.window, None,
                                                    h, h, 5, 15)

    def reset(self):
        self.frames.clear()


class _VPITNR:
    """VPI TemporalNoiseReduction V3 on the CUDA backend, zero-copy with torch.

    Follows VPI's Python API: wrap the torch CUDA frame with vpi.asimage (BGR8), convert to
    NV12_ER, run TNR, convert back into a preallocated BGR8 image, and hand that to torch
    through rlock_cuda() and __cuda_array_interface__. Untested here: no VPI on this machine.
    """

    VPI_PRESETS = {
        "outdoor_high_light": "OUTDOOR_HIGH_LIGHT", "outdoor_medium_light": "OUTDOOR_MEDIUM_LIGHT",
        "outdoor_low_light": "OUTDOOR_LOW_LIGHT", "indoor_high_light": "INDOOR_HIGH_LIGHT",
        "indoor_medium_light": "INDOOR_MEDIUM_LIGHT", "indoor_low_light": "INDOOR_LOW_LIGHT",
    }

    def __init__(self, device):
        import torch
        import vpi

        self.vpi, self.torch = vpi, torch
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise RuntimeError(f"the vpi backend runs on CUDA; found device={device!r}. "
                               "Use backend='torch' on the CPU.")
        self.tnr = self.out = self.size = None
        # One VPI stream for all of this filter's work, synchronised explicitly: that is the
        # documented pattern (vpi.Stream(), `with stream:`, stream.sync()), whatever form
        # vpi.Stream.current takes in a given VPI release (method in the reference, property in
        # the samples).
        self.stream = vpi.Stream()

    def _setup(self, width: int, height: int):
        vpi = self.vpi
        with vpi.Backend.CUDA:
            self.tnr = vpi.TemporalNoiseReduction((width, height), vpi.Format.NV12_ER,
                                                  version=vpi.TNRVersion.V3, backend=vpi.Backend.CUDA)
        self.out = vpi.Image((width, height), vpi.Format.BGR8)
        self.size = (width, height)

    def __call__(self, frame, preset: str, strength: float):
        vpi, torch = self.vpi, self.torch
        frame = frame.to(self.device).contiguous()
        height, width = frame.shape[:2]
        if self.size != (width, height):
            self._setup(width, height)
        # VPI reads the frame on its own stream: torch's writes to it must be finished.
        torch.cuda.current_stream(self.device).synchronize()
        image = vpi.asimage(frame, format=vpi.Format.BGR8)  # wraps the tensor, no copy
        with self.stream, vpi.Backend.CUDA:
            nv12 = image.convert(vpi.Format.NV12_ER)
            denoised = self.tnr(nv12, preset=getattr(vpi.TNRPreset, self.VPI_PRESETS[preset]),
                                strength=strength)
            denoised.convert(out=self.out)
        self.stream.sync()  # and torch must not read the output before VPI wrote it
        with self.out.rlock_cuda() as cuda_view:
            # torch.as_tensor aliases VPI's memory through __cuda_array_interface__; the clone
            # is the one device-side copy, because the next frame overwrites self.out. The clone
            # is only queued on torch's stream when it returns: the read lock must outlive it,
            # so wait for an event recorded after it before the lock is released.
            copy = torch.as_tensor(cuda_view, device=self.device).clone()
            cloned = torch.cuda.Event()
            cloned.record(torch.cuda.current_stream(self.device))
            cloned.synchronize()
        return copy

    def reset(self):
        self.tnr = self.out = self.size = None


class TemporalDenoiser:
    """Frame-by-frame temporal noise reduction; see the module docstring.

    ``backend``: "torch" (default), "vpi" or "opencv". ``device``: where the torch and vpi
    backends compute ("cpu" or "cuda"); numpy frames are uploaded and returned as numpy,
    torch frames stay torch on their device. ``preset``: one of ``PRESETS`` (for the torch
    backend, the least noise to assume; it measures the actual noise of every frame).
    ``strength``: 0 (pass-through) .. 1 (strongest: the torch backend averages up to 32 still
    frames), may be changed between frames.
    """

    def __init__(self, backend: str = "torch", preset: str = "outdoor_medium_light",
                 strength: float = 0.5, device="cpu", compile: bool | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}.")
        why = available_backends()[backend]
        if why:
            raise RuntimeError(f"TNR backend {backend!r} is not available here: {why}. "
                               "Use backend='torch', which runs everywhere.")
        self.backend = backend
        self.preset = _check_preset(preset)
        self.strength = _check_strength(strength)
        self.device = device
        if backend == "torch":
            self._impl = _TorchTNR(device, compile)
        elif backend == "vpi":
            self._impl = _VPITNR(device)
        else:
            self._impl = _OpenCVTNR()
        self._size = None

    def __repr__(self) -> str:
        return (f"TemporalDenoiser(backend={self.backend!r}, preset={self.preset!r}, "
                f"strength={self.strength}, device={str(self.device)!r})")

    def __setattr__(self, name, value):
        if name == "strength":
            value = _check_strength(value)
        elif name == "preset":
            value = _check_preset(value)
        super().__setattr__(name, value)

    @property
    def sigma(self) -> float:
        """The least luma noise (std, grey levels) the torch filter assumes; it measures the
        noise of every frame and uses the larger of the two."""
        return PRESETS[self.preset] * (0.5 + self.strength)

    @property
    def max_frames(self) -> float:
        """How many frames the torch filter averages at most where nothing moves (0 = off)."""
        return MAX_FRAMES * self.strength

    @property
    def alpha_min(self) -> float:
        """The new frame's weight where nothing has moved for long: 1 at strength 0,
        1 / (MAX_FRAMES + 1) at 1. Before that a still pixel takes 1/2, 1/3, 1/4, ...: the mean."""
        return 1.0 / (1.0 + self.max_frames)

    @property
    def noise(self) -> float | None:
        """The luma noise std (grey levels) the torch filter judged the last frame with: the
        measured noise or ``sigma``, whichever is larger (None before a second frame). Reading
        it waits for the device."""
        noise = getattr(self._impl, "noise", None)
        return None if noise is None else float(noise)

    def _check_memory(self, frame, fraction: float = 0.5) -> None:
        """Refuse a frame whose working set would exceed ``fraction`` of the free memory on the
        filter's device, with the estimate, instead of a raw allocator error (or swapping)."""
        from .filters import _available_bytes

        h, w = frame.shape[:2]
        channels = frame.shape[2] if frame.ndim == 3 else 1
        need = 4 * PEAK_FLOATS_PER_VALUE * h * w * channels
        have = _available_bytes(self._impl.device)
        if need > fraction * have:
            raise MemoryError(f"TemporalDenoiser: a {w}x{h} frame needs about {need / 2**30:.1f} GiB on "
                              f"{self._impl.device} at the peak, more than {fraction:.0%} of the "
                              f"{have / 2**30:.1f} GiB free. Resize the frames (cv2.resize) before the "
                              "filter, or free memory.")

    def reset(self) -> None:
        """Forget the history (a new scene, a seek, a camera switch)."""
        self._impl.reset()
        self._size = None

    def __call__(self, frame):
        _check_frame(frame)
        if self.backend == "torch":
            self._check_memory(frame)  # before anything changes: a refused frame leaves no trace
        size = tuple(frame.shape[:2])
        if self._size is not None and size != self._size:
            warnings.warn(f"TemporalDenoiser: frame size changed from {self._size[1]}x{self._size[0]} "
                          f"to {size[1]}x{size[0]}; the filter was reset (its history belongs to "
                          "another picture).", RuntimeWarning, stacklevel=2)
            self._impl.reset()
        self._size = size
        if self.backend == "opencv":
            image = frame if isinstance(frame, np.ndarray) else frame.cpu().numpy()
            # fastNlMeans' h is the filter strength in grey levels: scale it with the preset.
            out = self._impl(image, h=self.sigma * 1.2 * (self.strength > 0))
            return out if isinstance(frame, np.ndarray) else _like(out, frame)
        import torch

        tensor = frame if isinstance(frame, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frame))
        if self.backend == "vpi":
            out = self._impl(tensor, self.preset, self.strength)
        else:
            out = self._impl(tensor, self.max_frames, self.sigma)
        if isinstance(frame, np.ndarray):
            return out.cpu().numpy()
        return out.to(frame.device)


# Full-size float32 tensors alive at the filter's peak, per channel value: the frame, the
# history, the blend and its temporaries, the uint8 result (measured peak ~6; 8 leaves room).
PEAK_FLOATS_PER_VALUE = 8


def _like(array: np.ndarray, tensor):
    import torch

    return torch.from_numpy(array).to(tensor.device)
