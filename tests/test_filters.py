"""Super-resolution filter: exact bicubic inside, the committed weights beat bicubic on held-out
real photos, every runtime runs the same filter, and bad input is refused clearly."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import assets, evaluate, filters, metrics, pipeline, runtimes, superres, synth, trt


@pytest.fixture(scope="module")
def photo():
    return superres.fit_to_scale(assets.load_image("photo_chelsea"), 6, "crop")


@pytest.mark.parametrize("scale", filters.SCALES)
def test_bicubic_as_convolution_is_torch_bicubic(scale):
    x = torch.rand(2, 3, 38, 50, generator=torch.Generator().manual_seed(scale))
    model = filters.SuperResolution(scale)
    ref = F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)
    # Border included: replicate padding reads what torch's index clamping reads.
    assert (model.upscale_bicubic(x) - ref).abs().max() < 1e-5


def test_an_untrained_network_is_exactly_bicubic():
    model = filters.SuperResolution(2).eval()  # the last layer starts at zero
    x = torch.rand(1, 3, 24, 32)
    with torch.inference_mode():
        assert torch.equal(model(x), model.upscale_bicubic(x).clamp(0, 1))


def test_held_out_photos_are_not_training_photos():
    assert not set(superres.HELD_OUT_PHOTOS) & set(superres.TRAIN_PHOTOS)
    registry = assets.registry()
    assert all(name in registry for name in superres.HELD_OUT_PHOTOS + superres.TRAIN_PHOTOS)


@pytest.mark.parametrize("scale", filters.SCALES)
def test_committed_weights_beat_bicubic_on_held_out_photos(scale):
    model = filters.super_resolution(scale)  # checksum-verified through helpers.assets
    with runtimes.make_runtime("torch", model=model) as rt:
        rows = superres.quality(filters.Upscaler(rt), superres.held_out_images(), scale)
    assert len(rows) == len(superres.HELD_OUT_PHOTOS)
    for r in rows:
        assert r["psnr_sr"] > r["psnr_bicubic"] + 0.1, r
        assert r["ssim_sr"] > r["ssim_bicubic"], r
    assert np.mean([r["psnr_gain"] for r in rows]) > 0.3  # measured: x2 +0.70 dB, x3 +0.43 dB


def test_weights_of_the_wrong_scale_are_refused(tmp_path):
    with pytest.raises(ValueError, match="x2 network; x3 was asked"):
        filters.super_resolution(3, weights=assets.resolve("espcn_x2"))
    bad = tmp_path / "not_a_checkpoint.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(ValueError, match="not a super-resolution checkpoint"):
        filters.super_resolution(2, weights=bad)


def test_onnx_runtime_runs_the_same_filter_at_any_size(tmp_path, photo):
    model = filters.super_resolution(2)
    path = superres.export(model, tmp_path / "sr_x2.onnx")
    with runtimes.make_runtime("onnxruntime", onnx_path=path) as ort_rt, \
            runtimes.make_runtime("torch", model=model) as eager:
        shapes = [i.shape for i in ort_rt.session.get_inputs()]
        assert isinstance(shapes[0][2], str) and isinstance(shapes[0][3], str), shapes  # dynamic H, W
        ref_up, ort_up = filters.Upscaler(eager), filters.Upscaler(ort_rt, scale=2)
        for crop in (photo[:120, :160], photo[:97, :131], photo[:240, :320]):  # odd sizes too
            a, b = ref_up(crop), ort_up(crop)
            assert a.shape == b.shape == (2 * crop.shape[0], 2 * crop.shape[1], 3)
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
            assert metrics.psnr(a, b) > 60


def test_grayscale_frames_stay_grayscale(photo):
    up = filters.Upscaler(runtimes.TorchEager(filters.super_resolution(2)))
    gray = photo[:64, :96, 1]
    out2d, out3d = up(gray), up(gray[..., None])
    assert out2d.shape == (128, 192) and out3d.shape == (128, 192, 1)
    assert np.array_equal(out2d, out3d[..., 0])
    # Equal B, G and R in give equal channels out: gray is upscaled as gray, not as colour.
    colour = up(np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(colour[..., 0], colour[..., 2]) and np.array_equal(colour[..., 0], out2d)


def test_odd_sizes_are_padded_or_refused(photo):
    rt = runtimes.TorchEager(filters.super_resolution(3))
    odd = photo[:51, :77]
    assert filters.Upscaler(rt)(odd).shape == (153, 231, 3)
    with pytest.raises(ValueError, match="odd side.*pad_odd=True"):
        filters.Upscaler(rt, pad_odd=False)(odd)
    with pytest.raises(ValueError, match="77x51 image does not divide by the scale factor 3"):
        superres.downscale(odd, 3)
    assert superres.fit_to_scale(odd, 3, "crop").shape[:2] == (51, 75)
    assert superres.fit_to_scale(odd, 3, "pad").shape[:2] == (51, 78)


def test_huge_frames_are_refused_with_the_estimate():
    up = filters.Upscaler(runtimes.TorchEager(filters.super_resolution(2)))
    # A read-only view: the check looks at the shape before a single byte is allocated.
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (40000, 40000, 3))
    with pytest.raises(MemoryError, match=r"40000x40000 at x2 need about \d+\.\d GiB"):
        up(huge)


@pytest.mark.parametrize("frame, match", [
    (np.zeros((8, 8, 3), np.float32), "dtype float32; expected uint8"),
    (np.zeros((8, 8, 4), np.uint8), "shape \\(8, 8, 4\\).*alpha"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
])
def test_bad_frames_are_refused(frame, match):
    up = filters.Upscaler(runtimes.TorchEager(filters.super_resolution(2)))
    with pytest.raises(ValueError, match=match):
        up(frame)


def test_batch_refuses_mixed_sizes_and_matches_single_frames(photo):
    up = filters.Upscaler(runtimes.TorchEager(filters.super_resolution(2)))
    a, b = photo[:64, :64], photo[64:128, 64:128]
    batched = up.batch([a, b])
    assert np.array_equal(batched[0], up(a)) and np.array_equal(batched[1], up(b))
    with pytest.raises(ValueError, match="share one size"):
        up.batch([a, photo[:32, :32]])


def test_filter_is_a_pipeline_stage():
    scene = synth.Scene(size=(320, 240), seed=3, length=4)
    written = []

    class Sink:  # a list standing in for a video file: what the pipeline hands over is the point
        def write(self, image):
            written.append(image.shape)

    up = filters.Upscaler(runtimes.TorchEager(filters.super_resolution(2)))
    for mode in ("sync", "overlapped"):
        written.clear()
        result = pipeline.Pipeline(filter=up, sink=Sink()).run((f.clean for f in scene), mode=mode)
        assert result.frames == 4 and written == [(480, 640, 3)] * 4
        assert "filter" in result.p50() and "network" not in result.p50()
    with pytest.raises(ValueError, match="neither"):
        pipeline.Pipeline()


def test_split_view_composites_and_clamps():
    from helpers import widgets

    before, after = np.zeros((40, 100, 3), np.uint8), np.full((40, 100, 3), 200, np.uint8)
    view = widgets.SplitView(before, after, ("bicubic", "ours"), position=0.3)
    assert view.value[30, 10].max() == 0 and view.value[30, 90].min() == 200
    view.position = 0.8
    assert view.value[30, 70].max() == 0
    view.position = 3.0
    assert view.position == 1.0
    with pytest.raises(ValueError, match="one size"):
        widgets.SplitView(before, after[:, :50])


def test_engine_key_includes_the_size_profile(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"model")
    shapes = {"frames": ((1, 3, 240, 320), (1, 3, 480, 640), (1, 3, 1080, 1920))}
    args = dict(gpu="Orin", compute_capability="8.7", tensorrt_version="10.3.0")
    plain = trt.EngineKey.for_model(onnx_file, "fp32", **args)
    sized = trt.EngineKey.for_model(onnx_file, "fp32", profile=trt.profile_text(shapes), **args)
    assert trt.profile_text(shapes) == "frames:1x3x240x320/1x3x480x640/1x3x1080x1920"
    assert plain.digest != sized.digest


def test_drift_verdicts_follow_the_tolerances():
    ok = metrics.image_verdict(55.0, "fp32", gain_db=0.70, reference_gain_db=0.70)
    assert ok["verdict"] == "PASS" and ok["gain_kept"] == pytest.approx(1.0)
    assert metrics.image_verdict(45.0, "fp32")["verdict"] == "FAIL"  # FP32 must only reorder sums
    # INT8 close to FP32's picture but with most of the gain lost is still a FAIL.
    lost = metrics.image_verdict(40.0, "int8", gain_db=0.2, reference_gain_db=0.7)
    assert lost["checks"] == {"psnr_db": True, "gain_kept": False} and lost["verdict"] == "FAIL"
    # Without a gain to share (an untrained network) only the PSNR is judged.
    assert "gain_kept" not in metrics.image_verdict(60.0, "int8", gain_db=0.0, reference_gain_db=0.01)
    with pytest.raises(ValueError, match="precision must be one of"):
        metrics.image_verdict(60.0, "int4")


def test_realtime_verdict_names_the_budget():
    assert superres.realtime(20.0, 30) == "real-time at 30 fps with 40% headroom"
    assert superres.realtime(40.0, 30) == "not real-time at 30 fps: 6.7 ms over the 33.3 ms budget"


def test_output_frames_are_dense_and_drawable(photo):
    import cv2

    up = filters.Upscaler(runtimes.TorchEager(filters.super_resolution(2)))
    out, gray = up(photo[:40, :60]), up(photo[:40, :60, 0])
    assert out.flags["C_CONTIGUOUS"] and gray.flags["C_CONTIGUOUS"]
    cv2.rectangle(out, (2, 2), (20, 20), (0, 0, 255), 2)  # OpenCV refuses strided views


def test_tensorrt_int8_needs_symmetric_signed_qdq(tmp_path):
    from helpers import export

    onnx32 = superres.export(filters.super_resolution(2), tmp_path / "sr.onnx")
    calib = superres.calibration_frames(count=4, size=(64, 64))
    for_ort = export.quantize_int8(onnx32, tmp_path / "sr_ort.onnx", calib, target="onnxruntime")
    for_trt = export.quantize_int8(onnx32, tmp_path / "sr_trt.onnx", calib, target="tensorrt")
    if export.int8_recipe()["activation_type"].name == "QUInt8":  # x86: uint8 activations with a zero point
        with pytest.raises(ValueError, match="quantized for ONNX Runtime, not TensorRT.*target='tensorrt'"):
            trt.check_qdq(for_ort)
    trt.check_qdq(for_trt)  # symmetric signed: accepted
    # ... and ONNX Runtime runs the TensorRT file too, close to FP32.
    with runtimes.OnnxRuntime(onnx32) as a, runtimes.OnnxRuntime(for_trt) as b:
        frame = superres.held_out_images()["coffee"][:64, :64]
        assert metrics.psnr(filters.Upscaler(a, scale=2)(frame), filters.Upscaler(b, scale=2)(frame)) > 32


def test_tensorrt_profile_covers_every_input_the_lesson_feeds_and_no_more():
    """TensorRT reserves activation memory for the profile's largest shape in every context:
    the maximum must fit the lesson's inputs (odd sizes padded by one) and stay below 1080p."""
    (lo, opt, hi), = superres.TRT_SHAPES.values()
    inputs = [(h, w) for h, w, _ in superres.CASES.values()]
    inputs += [(p.shape[0] + p.shape[0] % 2, p.shape[1] + p.shape[1] % 2) for p in superres.held_out_images().values()]
    for h, w in inputs:
        assert lo[2] <= h <= hi[2] and lo[3] <= w <= hi[3], (h, w)
    assert hi[0] == 8 and hi[2] * hi[3] < 1080 * 1920 / 2


def test_torch_compile_problem_names_what_is_missing(monkeypatch):
    from helpers import env

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    assert "C++ compiler" in env.torch_compile_problem("cpu")
    reason = env.torch_compile_problem("cuda")
    assert reason == "" or "Triton" in reason or "cannot tell" in reason


def test_filters_is_a_leaf_and_the_moved_names_are_gone():
    """The network and the stage import no other helper at module level; what moved to
    superres / matrix / metrics / evaluate has one home (no aliases left behind)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(filters))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if isinstance(n, ast.ImportFrom) and n.level > 0]
    for name in ("fit_to_scale", "make_variants", "drift_report", "judge_drift", "psnr_drift", "gmacs"):
        assert not hasattr(filters, name), name
    assert callable(superres.fit_to_scale) and callable(superres.variants) and callable(evaluate.filter_drift)


def test_one_judge_for_every_kind_of_output():
    assert set(metrics.TOLERANCES) == {"classification", "detection", "image"}
    for table in metrics.TOLERANCES.values():
        assert set(table) == {"fp32", "tf32", "fp16", "int8"}
    # TF32 sits between FP32 and FP16 wherever both have a limit.
    for output, table in metrics.TOLERANCES.items():
        for name, limit in table["tf32"].items():
            lo, hi = sorted((table["fp32"][name], table["fp16"][name]))
            assert lo <= limit <= hi, (output, name)
    assert metrics.judge({"psnr_db": 47.0}, "tf32", "image")["verdict"] == "PASS"
    assert metrics.judge({"psnr_db": 47.0}, "fp32", "image")["verdict"] == "FAIL"
    with pytest.raises(ValueError, match="output must be one of"):
        metrics.judge({"top1": 1.0}, "fp32", "segmentation")
    assert metrics.TOLERANCES["classification"]["int8"]["top1"] == 0.85
    assert metrics.TOLERANCES["detection"]["int8"]["map50_drop"] == 0.03


def test_variants_are_built_by_the_matrix_with_the_lesson_names(tmp_path):
    from helpers import env

    caps = env.probe()
    variants, skipped = superres.variants(superres_net := filters.super_resolution(2), tmp_path, caps, int8=False)
    try:
        assert {"eager FP32", "eager channels_last", "ORT FP32"} <= set(variants)
        assert all(p == "fp32" for _, p in variants.values())
        frame = superres.held_out_images()["coffee"][:48, :64]
        ups = {name: filters.Upscaler(rt, scale=2) for name, (rt, _) in variants.items()}
        judged = evaluate.filter_drift(ups, {n: p for n, (_, p) in variants.items()}, 2)
        assert judged["ORT FP32"]["verdict"] == "PASS" and judged["eager FP32"]["psnr_db"] == float("inf")
        assert ups["ORT FP32"](frame).shape == (96, 128, 3)
        if not caps.has_cuda:
            assert any(line.startswith("TensorRT engines: skipped - ") for line in skipped)
        assert superres_net.scale == 2
    finally:
        for rt, _ in variants.values():
            rt.close()
