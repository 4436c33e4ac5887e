"""The super-resolution lesson around helpers.filters: photo pairs, the quality check, the
runtimes of the filter (through helpers.matrix) and the lesson's cases.

    pairs:    fit_to_scale, downscale (the degradation), bicubic (the baseline)
    photos:   held_out_images (judged, never trained on), calibration_frames (INT8, training photos)
    quality:  quality(upscaler, images, scale) -> PSNR/SSIM rows against bicubic
    runtimes: variants(model, workdir, caps) -> ({label: (runtime, precision)}, skip lines)
    lesson:   CASES (input sizes and scales), TRT_SHAPES (TensorRT's profile), realtime(ms, fps)

Drift of a filter runtime is judged by helpers.evaluate.filter_drift (metrics.judge, "image").
The lesson tables live here, not in notebook 08 or benchmarks/filters.py, because both use
them and a notebook cannot import a benchmark script.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .filters import SuperResolution

# Held out from training (tools/train_sr.py never reads them): the quality check's photos.
HELD_OUT_PHOTOS = ("photo_chelsea", "photo_astronaut", "photo_coffee")
TRAIN_PHOTOS = ("photo_rocket", "texture_brick", "texture_grass", "texture_gravel", "photo_camera",
                "photo_hubble", "photo_coins", "photo_ihc", "photo_retina", "photo_text")

# The lesson's cases: name -> (input height, input width, scale).
CASES = {"480p->960p (x2)": (480, 640, 2), "540p->1080p (x2)": (540, 960, 2),
         "360p->1080p (x3)": (360, 640, 3), "240p->480p (x2)": (240, 320, 2)}


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


def export(model: SuperResolution, path, example_size=(240, 320), opset: int | None = None) -> Path:
    """ONNX with dynamic batch, height and width (one file serves every frame size)."""
    from .export import export_onnx

    h, w = example_size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return export_onnx(model.eval(), torch.rand(1, 3, h, w), path, dynamic_hw=True, opset=opset,
                           input_name="frames", output_names=["upscaled"])


# TensorRT's optimization profile for the filter's *input* frames, tuned for one 480p frame.
# TensorRT reserves activation memory for the largest shape of the profile in every execution
# context, so the maximum is what the lesson feeds and no more: up to 544x960 (540p, the
# largest input of output_sizes(), and the held-out photos, astronaut being 512x512), batches
# up to 8. Held-out photos shrunk by 3 are ~150 px a side, hence the low minimum. A 1080p
# *input* at batch 8 would reserve 4x the memory, per context.
TRT_SHAPES = {"frames": ((1, 3, 16, 16), (1, 3, 480, 640), (8, 3, 544, 960))}


# Every CPU kind, and the GPU kinds, by the old make_variants names the lesson prints.
_CPU_KINDS = ("eager", "channels-last", "compile", "ort-fp32", "ort-int8")
_GPU_KINDS = ("eager", "eager-fp16", "compile", "cuda-graphs", "ort-cuda-fp32", "trt-fp32", "trt-fp16", "trt-int8")
_GPU_LABELS = {"eager": "eager FP32 (cuda)", "eager-fp16": "eager FP16 (cuda)", "compile": "compile (cuda)",
               "cuda-graphs": "compile + CUDA graphs (cuda)", "ort-cuda-fp32": "ORT FP32 (cuda)"}


def matrix(model: SuperResolution, cache_dir, kinds=_CPU_KINDS, device="cpu", threads: int | None = None,
           trt_shapes=None):
    """helpers.matrix.build for the filter: free batch, height and width, INT8 calibrated on
    crops of the training photos, TensorRT's profile TRT_SHAPES."""
    from . import matrix as mx

    h, w = 240, 320
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # the exporter's dynamic-shape notes
        calibration = calibration_frames() if any("int8" in k for k in kinds) else None
        return mx.build(model, torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)), kinds,
                        device=device, cache_dir=cache_dir, calibration=calibration, input_name="frames",
                        output_names=["upscaled"], dynamic_hw=True, threads=threads,
                        trt_shapes=trt_shapes or TRT_SHAPES, max_batch=TRT_SHAPES["frames"][2][0])


def variants(model: SuperResolution, workdir, caps=None, compile: bool = False, int8: bool = True,
             threads: int | None = None, trt_shapes=None) -> tuple[dict, list[str]]:
    """Every runtime this machine has for ``model``: label -> (runtime, precision), and what was
    skipped, with why. CPU: eager (NCHW, channels_last), optionally torch.compile, ONNX Runtime
    FP32 and INT8. CUDA: eager FP32/FP16, compile, compile + CUDA graphs, ORT CUDA. TensorRT:
    FP32/FP16/INT8 engines with a height/width optimization profile (``trt_shapes``). The caller
    closes the runtimes."""
    from . import env, trt

    caps = caps or env.probe()
    threads = threads or torch.get_num_threads()
    cpu = [k for k in _CPU_KINDS if (k != "compile" or compile) and (k != "ort-int8" or int8)]
    m = matrix(model, workdir, cpu, "cpu", threads)
    out = {m.label(k): (rt, m.precision(k)) for k, rt in m.items()}
    skipped = [str(s) for s in m.skipped]
    if not caps.has_cuda:
        skipped.append(f"GPU runtimes (eager/compile/CUDA graphs on cuda): skipped - {caps.why_not('cuda')}")
        skipped.append(f"TensorRT engines: skipped - {trt.available() or caps.why_not('cuda')}")
        return out, skipped
    gpu = [k for k in _GPU_KINDS if k != "trt-int8" or int8]
    g = matrix(model, workdir, gpu, "cuda", threads, trt_shapes)
    out.update({_GPU_LABELS.get(k, g.label(k)): (rt, g.precision(k)) for k, rt in g.items()})
    skipped += [f"{_GPU_LABELS.get(s.kind, s.label)}: skipped - {s.reason}" for s in g.skipped]
    return out, skipped


def realtime(ms_per_frame: float, fps: float) -> str:
    """The stage alone against the frame budget, in pipeline.verdict's words."""
    from .pipeline import verdict

    v = verdict({"filter": ms_per_frame}, fps, groups=(("filter",),))
    if v["real_time"]:
        return v["text"]
    return f"not real-time at {fps:g} fps: {v['frame_ms'] - v['budget_ms']:.1f} ms over the {v['budget_ms']:.1f} ms budget"
