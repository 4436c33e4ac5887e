"""helpers.preprocess: the numpy and torch implementations agree with each other and with
torchvision, boxes survive the round trip through a letterbox, and bad input is refused."""

import numpy as np
import pytest
import torch
from torchvision.models import MobileNet_V2_Weights
from torchvision.transforms import v2

from helpers import assets, synth
from helpers.preprocess import IMAGENET_MEAN, IMAGENET_STD, PAD_VALUE, Letterbox, Preprocessor, numpy_ops, torch_ops

# The brief's bar: one grey level in the normalized output. A real mistake (antialiasing,
# align_corners, a missed channel swap) costs tens of grey levels, see the "teeth" test.
AGREE = 1 / 255
# Where both sides compute the same float formula only float32 rounding separates them.
SAME_MATH = 1e-4


@pytest.fixture(scope="module")
def photo():
    return assets.load_image("photo_chelsea")  # 451x300 BGR


@pytest.fixture(scope="module")
def street():
    return synth.Scene(size=(640, 480), length=1).frame(0).clean


@pytest.fixture(scope="module")
def full_hd():
    return synth.Scene(size=(1920, 1080), length=1, seed=3).frame(0).clean


@pytest.fixture(scope="module")
def frames(photo, street, full_hd):
    return {"photo": photo, "street": street, "full_hd": full_hd}


def both(frame, **kwargs):
    """Run numpy and torch (CPU) preprocessors with the same settings."""
    a, ta = Preprocessor(backend="numpy", **kwargs)(frame)
    b, tb = Preprocessor(backend="torch", device="cpu", **kwargs)(frame)
    return a, ta, b, tb


def rgb_tensor(bgr):
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)


# ---------------------------------------------------------------- numpy vs torch


@pytest.mark.parametrize("name", ["photo", "street", "full_hd"])
@pytest.mark.parametrize("size, letterbox", [
    ((320, 320), True),    # downscale into a square, the detector input
    ((960, 960), True),    # upscale for photo/street, downscale for full HD
    ((224, 160), False),   # plain resize, shrinking
    ((1024, 768), False),  # plain resize, growing (full HD: x shrinks, y shrinks less)
])
def test_numpy_and_torch_agree(frames, name, size, letterbox):
    a, ta, b, tb = both(frames[name], size=size, letterbox=letterbox)
    assert a.shape == tuple(b.shape) == (1, 3, size[1], size[0])
    assert ta == tb
    diff = np.abs(a - b.numpy()).max()
    assert diff <= AGREE, f"{name} -> {size}: max |numpy - torch| = {diff:.5f}"


def test_agreement_check_would_catch_antialias(full_hd):
    """The tolerance has teeth: antialiasing (torchvision's default) is a different resize."""
    a, _ = Preprocessor((320, 320), letterbox=False)(full_hd)
    x = rgb_tensor(full_hd)[None].float()
    smooth = torch.nn.functional.interpolate(x, size=(320, 320), mode="bilinear",
                                             align_corners=False, antialias=True)
    smooth = torch_ops.normalize(smooth)
    assert np.abs(a - smooth.numpy()).max() > 20 * AGREE


def test_classification_crop_numpy_and_torch_agree(frames):
    for name, frame in frames.items():
        a, ta = Preprocessor.imagenet(backend="numpy")(frame)
        b, tb = Preprocessor.imagenet(backend="torch")(frame)
        assert a.shape == tuple(b.shape) == (1, 3, 224, 224) and ta == tb
        assert np.abs(a - b.numpy()).max() <= AGREE, name


# ---------------------------------------------------------------- vs torchvision


@pytest.mark.parametrize("size", [(320, 320), (224, 160), (800, 600)])
def test_plain_resize_matches_torchvision(photo, size):
    w, h = size
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                            v2.Resize((h, w), antialias=False),
                            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(rgb_tensor(photo))
    a, _, b, _ = both(photo, size=size, letterbox=False)
    assert np.abs(a[0] - reference.numpy()).max() <= SAME_MATH
    assert (b[0] - reference).abs().max().item() <= SAME_MATH


def test_letterbox_matches_torchvision_resize_and_pad(photo):
    lb = Letterbox.fit((451, 300), (320, 320))
    (nw, nh), (left, top) = lb.resized_size, lb.pad
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                            v2.Resize((nh, nw), antialias=False),
                            v2.Pad([left, top, 320 - nw - left, 320 - nh - top],
                                   fill=PAD_VALUE / 255),
                            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(rgb_tensor(photo))
    a, _, b, _ = both(photo, size=(320, 320), letterbox=True)
    assert np.abs(a[0] - reference.numpy()).max() <= SAME_MATH
    assert (b[0] - reference).abs().max().item() <= SAME_MATH


@pytest.mark.parametrize("name", ["photo", "portrait", "full_hd"])
def test_classification_crop_matches_torchvision_imagenet_transform(frames, name):
    frame = np.ascontiguousarray(frames["photo"].transpose(1, 0, 2)) if name == "portrait" \
        else frames[name]
    imagenet = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()  # antialias=True, like ours
    rgb = rgb_tensor(frame)
    a, _ = Preprocessor.imagenet(backend="numpy")(frame)
    b, _ = Preprocessor.imagenet(backend="torch")(frame)
    # Fed floats, torchvision runs the very same antialiased filter: float rounding only.
    exact = imagenet(rgb.float() / 255)
    assert np.abs(a[0] - exact.numpy()).max() <= SAME_MATH
    assert (b[0] - exact).abs().max().item() <= SAME_MATH
    # Fed uint8 (what models.classify does), torchvision rounds the resized image back to
    # whole grey levels and we do not: at most half a level apart, i.e. 0.5/255/std.
    rounded = imagenet(rgb)
    bound = 0.5 / 255 / min(IMAGENET_STD) + SAME_MATH
    assert np.abs(a[0] - rounded.numpy()).max() <= bound
    assert (b[0] - rounded).abs().max().item() <= bound


# ---------------------------------------------------------------- boxes


GEOMETRIES = [((1920, 1080), (320, 320)),  # landscape, padded top and bottom
              ((1080, 1920), (320, 320)),  # portrait, padded left and right
              ((451, 300), (640, 640)),    # upscaled, sizes that do not divide evenly
              ((300, 451), (320, 256))]


def random_boxes(src_size, n=50, seed=0):
    rng = np.random.default_rng(seed)
    w, h = src_size
    xy = rng.uniform(0, 1, (n, 2, 2)) * [w, h]
    return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)


@pytest.mark.parametrize("src, dst", GEOMETRIES)
def test_boxes_round_trip(src, dst):
    lb = Letterbox.fit(src, dst)
    boxes = random_boxes(src)
    back = lb.to_src(lb.to_dst(boxes))
    assert back.dtype == np.float64 and np.abs(back - boxes).max() <= 1e-4
    t = torch.from_numpy(boxes)
    back_t = lb.to_src(lb.to_dst(t))
    assert isinstance(back_t, torch.Tensor) and back_t.dtype == torch.float64
    assert (back_t - t).abs().max().item() <= 1e-4
    # float32 (what a network outputs) cannot do better than its spacing at ~2000 px,
    # 1.2e-4 px, over two operations.
    t32 = t.float()
    assert (lb.to_src(lb.to_dst(t32)) - t32).abs().max().item() <= 1e-3


@pytest.mark.parametrize("src, dst", GEOMETRIES[:2])
def test_to_dst_finds_the_object_in_the_letterboxed_image(src, dst):
    """A white rectangle drawn in the frame lands where to_dst says, within a pixel."""
    w, h = src
    box = np.array([0.2 * w, 0.3 * h, 0.55 * w, 0.9 * h]).round()
    frame = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box.astype(int)
    frame[y0:y1, x0:x1] = 255
    chw = torch_ops.hwc_to_chw(torch.from_numpy(frame))
    for ops, image in ((numpy_ops, frame), (torch_ops, chw)):
        out, lb = ops.letterbox(image, dst)
        gray = np.asarray(out)[..., 0] if ops is numpy_ops else out[0].numpy()
        ys, xs = np.nonzero(gray > 127)
        found = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert np.abs(np.array(found) - lb.to_dst(box)).max() <= 1.0
        # The border is the pad value, the frame's black is inside the content rectangle.
        assert gray[0, 0] == PAD_VALUE if lb.pad != (0, 0) else True


def test_to_src_clips_to_the_frame():
    lb = Letterbox.fit((1920, 1080), (320, 320))  # content rows 70..250
    boxes = np.array([[-5.0, 0.0, 330.0, 100.0],   # reaches into the top padding and beyond
                      [10.0, 240.0, 50.0, 300.0]])  # reaches into the bottom padding
    clipped = lb.to_src(boxes)
    assert clipped[:, 0::2].min() >= 0 and clipped[:, 0::2].max() <= 1920
    assert clipped[:, 1::2].min() >= 0 and clipped[:, 1::2].max() <= 1080
    np.testing.assert_allclose(clipped[0], [0, 0, 1920, 180])
    raw = lb.to_src(boxes, clip=False)
    assert raw[0, 1] < 0 and raw[1, 3] > 1080
    clipped_t = lb.to_src(torch.tensor(boxes, dtype=torch.float32))
    np.testing.assert_allclose(clipped_t.numpy(), clipped, atol=1e-3)


def test_box_mapping_keeps_type_and_device():
    lb = Letterbox.fit((640, 480), (320, 320))
    t = torch.tensor([[0, 0, 640, 480]])  # integers become float32
    out = lb.to_dst(t)
    assert out.dtype == torch.float32 and out.device == t.device
    assert out.tolist() == [[0.0, 40.0, 320.0, 280.0]]
    assert lb.to_dst([[0, 0, 640, 480]]).dtype == np.float32
    assert lb.to_dst(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"xyxy.*\(\.\.\., 4\)"):
        lb.to_dst(np.zeros((3, 5)))


def test_classification_crop_transform_maps_the_centre_to_the_centre(photo):
    _, (lb,) = Preprocessor.imagenet()(photo)
    assert lb.pad[0] < 0 and lb.pad[1] < 0  # a crop is a negative pad
    centre = lb.to_dst(np.array([[225.5, 150.0, 225.5, 150.0]]))
    np.testing.assert_allclose(centre[0], [112, 112, 112, 112], atol=0.5)


# ---------------------------------------------------------------- steps and batching


def test_steps_agree(photo):
    chw = torch_ops.hwc_to_chw(torch_ops.upload(photo, "cpu"))
    assert chw.shape == (3, 300, 451)
    np.testing.assert_array_equal(numpy_ops.hwc_to_chw(numpy_ops.bgr_to_rgb(photo)),
                                  torch_ops.bgr_to_rgb(chw).numpy())
    # uint8 resizes round: OpenCV's fixed-point weights and torch's float ones may land on
    # different sides of a half, one grey level at most.
    small_np = numpy_ops.resize(photo, (200, 150))
    small_t = torch_ops.resize(chw, (200, 150))
    assert small_np.dtype == np.uint8 and small_t.dtype == torch.uint8
    assert np.abs(small_np.astype(int) - small_t.permute(1, 2, 0).numpy().astype(int)).max() <= 1
    boxed_np, lb = numpy_ops.letterbox(photo, (320, 320))
    boxed_t, lb_t = torch_ops.letterbox(chw, (320, 320))
    assert lb == lb_t and boxed_np.dtype == np.uint8 and boxed_t.dtype == torch.uint8
    assert (boxed_np[:lb.pad[1]] == PAD_VALUE).all() and (boxed_t[:, :lb.pad[1]] == PAD_VALUE).all()
    norm_np = numpy_ops.hwc_to_chw(numpy_ops.normalize(photo))
    norm_t = torch_ops.normalize(chw)
    assert norm_np.dtype == np.float32 and norm_t.dtype == torch.float32
    assert np.abs(norm_np - norm_t.numpy()).max() <= 1e-5
    # normalize knows nothing of colour order: mean[0]/std[0] go to channel 0, whatever it holds.
    expected = (photo[..., 0].mean() / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert norm_np[0].mean() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_batch_of_frames(frames, backend):
    pre = Preprocessor((320, 256), backend=backend)
    batch, transforms = pre(list(frames.values()))
    assert tuple(batch.shape) == (3, 3, 256, 320) and len(transforms) == 3
    assert [t.src_size for t in transforms] == [(451, 300), (640, 480), (1920, 1080)]
    one, (t,) = pre(frames["photo"])
    assert tuple(one.shape) == (1, 3, 256, 320) and t == transforms[0]
    assert np.abs(np.asarray(one[0]) - np.asarray(batch[0])).max() <= 1e-6
    if backend == "numpy":
        assert isinstance(batch, np.ndarray) and batch.dtype == np.float32
        assert batch.flags.c_contiguous
    else:
        assert batch.device == torch.device("cpu") and batch.dtype == torch.float32
        assert batch.is_contiguous()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_no_resize_needs_one_size(frames, backend):
    pre = Preprocessor(size=None, backend=backend)
    street = frames["street"]
    batch, (t, _) = pre([street, street[::-1]])  # a flipped view: not contiguous, still fine
    assert tuple(batch.shape) == (2, 3, 480, 640) and t.scale == (1.0, 1.0)
    with pytest.raises(ValueError, match=r"one size.*(451|300).*(640|480).*letterbox"):
        pre([frames["photo"], street])


def test_torch_frames_and_devices(photo):
    pre = Preprocessor((320, 320), backend="torch")
    from_tensor, _ = pre(torch.from_numpy(photo))
    from_array, _ = pre(photo)
    assert torch.equal(from_tensor, from_array)
    with pytest.raises(ValueError, match="numpy backend takes numpy.*cpu\\(\\)"):
        Preprocessor(backend="numpy")(torch.from_numpy(photo))
    with pytest.raises(ValueError, match="numpy backend runs on the CPU"):
        Preprocessor(backend="numpy", device="cuda")
    with pytest.raises(ValueError, match="backend must be"):
        Preprocessor(backend="cupy")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a CPU-only machine")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="no CUDA device.*device='cpu'"):
        Preprocessor(backend="torch", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_numpy_and_reuses_its_upload_buffer_safely(frames):
    pre = Preprocessor((320, 320), backend="torch", device="cuda")
    ref = Preprocessor((320, 320), backend="numpy")
    street = frames["street"]
    # Same-size frames back to back reuse one pinned block; each result must be its own frame.
    sequence = [street, np.ascontiguousarray(street[::-1]), 255 - street, street]
    outs = [pre(f)[0] for f in sequence]
    for f, out in zip(sequence, outs):
        assert out.device.type == "cuda" and out.dtype == torch.float32 and out.is_contiguous()
        assert np.abs(ref(f)[0] - out.cpu().numpy()).max() <= AGREE
    on_device = torch.from_numpy(frames["full_hd"]).cuda()
    assert np.abs(ref(frames["full_hd"])[0] - pre(on_device)[0].cpu().numpy()).max() <= AGREE


# ---------------------------------------------------------------- bad input


BAD = [
    (lambda f: f.astype(np.float32) / 255, r"uint8.*found.*float32.*astype\(np.uint8\)"),
    (lambda f: f[..., 0], r"2-D \(grayscale\).*COLOR_GRAY2BGR"),
    (lambda f: np.dstack([f, f[..., :1]]), r"4 in .*BGRA.*COLOR_BGRA2BGR"),
    (lambda f: np.ascontiguousarray(f.transpose(2, 0, 1)), r"HxWx3.*looks like CHW.*transpose"),
    (lambda f: f[:0], r"non-empty.*\(0, 451, 3\)"),
    (lambda f: f[..., :2], r"3 colour channels.*found 2"),
    (lambda f: None, r"found None.*cv2.imread"),
    (lambda f: f[:4, :4].tolist(), r"numpy array or torch tensor; found list"),
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("make_bad, message", BAD)
def test_bad_frames_are_refused_with_a_fix(photo, backend, make_bad, message):
    with pytest.raises(ValueError, match=message):
        Preprocessor((320, 320), backend=backend)(make_bad(photo))


def test_bad_arguments_are_refused(photo):
    with pytest.raises(ValueError, match=r"\(width, height\).*found \(320,\)"):
        Preprocessor(size=(320,))
    with pytest.raises(ValueError, match="std > 0"):
        Preprocessor(std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="empty list"):
        Preprocessor()([])
    with pytest.raises(ValueError, match="numpy_ops take numpy arrays.*torch_ops"):
        numpy_ops.resize(torch.from_numpy(photo), (10, 10))
    with pytest.raises(ValueError, match="looks like HWC.*hwc_to_chw"):
        torch_ops.resize(torch.from_numpy(photo), (10, 10))
    with pytest.raises(ValueError, match="float32"):
        numpy_ops.resize(photo.astype(np.float64), (10, 10))
