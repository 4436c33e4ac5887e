import numpy as np
import pytest

from helpers import mot, synth
from helpers.synth import NoiseModel, Scene

QUANT_VAR = 1 / 12 / 255**2  # what rounding to uint8 adds to the variance


@pytest.fixture(scope="module")
def street():
    """The reference scene: 300 frames at 640x480, ground truth only (no pixels)."""
    scene = Scene(size=(640, 480), fps=30, length=300, seed=1, noise=0.3)
    return scene, scene.ground_truth()


def assert_frames_equal(a, b):
    assert a.index == b.index and a.timestamp == b.timestamp
    np.testing.assert_array_equal(a.clean, b.clean)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    for name in ("frame", "track_id", "boxes", "class_id", "visibility", "active"):
        np.testing.assert_array_equal(getattr(a.gt, name), getattr(b.gt, name))


def test_same_seed_gives_identical_frames_and_gt():
    a = Scene(size=(320, 240), length=40, seed=3)
    b = Scene(size=(320, 240), length=40, seed=3)
    for i in (0, 17, 39):
        assert_frames_equal(a.frame(i), b.frame(i))
    ga, gb = a.ground_truth(), b.ground_truth()
    np.testing.assert_array_equal(ga.boxes, gb.boxes)
    np.testing.assert_array_equal(ga.track_id, gb.track_id)


def test_different_seed_differs():
    a = Scene(size=(320, 240), length=10, seed=3).frame(5)
    b = Scene(size=(320, 240), length=10, seed=4).frame(5)
    assert not np.array_equal(a.clean, b.clean)
    assert not np.array_equal(a.noisy, b.noisy)


def test_random_access_matches_iteration():
    direct = Scene(size=(320, 240), length=8, seed=5).frame(5)
    iterated = list(Scene(size=(320, 240), length=8, seed=5))
    assert len(iterated) == 8
    assert_frames_equal(direct, iterated[5])


def test_frame_gt_matches_scene_gt(street):
    scene, gt = street
    for i in (0, 150):
        f = scene.frame(i)
        assert f.clean.shape == (480, 640, 3) and f.clean.dtype == np.uint8
        expected = gt.for_frame(i)
        np.testing.assert_array_equal(f.gt.track_id, expected.track_id)
        np.testing.assert_array_equal(f.gt.boxes, expected.boxes)
        np.testing.assert_allclose(f.gt.visibility, expected.visibility)


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("level", [64, 128])
def test_noise_variance_follows_the_model(strength, level):
    model = NoiseModel(strength)
    flat = np.full((256, 256, 3), level, np.uint8)
    noisy = model.apply(flat, np.random.default_rng(0), gain=1.0).astype(np.float64) / 255
    x = level / 255
    expected = model.expected_variance(x) + QUANT_VAR
    assert noisy.var() == pytest.approx(expected, rel=0.1)
    assert noisy.mean() == pytest.approx(x, abs=0.005)


def test_noise_variance_scales_with_strength_squared():
    flat = np.full((256, 256, 3), 128, np.uint8)
    var = {s: (NoiseModel(s).apply(flat, np.random.default_rng(1), gain=1.0) / 255).var()
           for s in (0.25, 0.5, 1.0)}
    for s in (0.5, 1.0):
        assert (var[s] - QUANT_VAR) / (var[0.25] - QUANT_VAR) == pytest.approx((s / 0.25) ** 2,
                                                                                 rel=0.1)


def test_flicker_std_over_many_frames():
    model = NoiseModel(1.0)
    flat = np.full((32, 32, 3), 128, np.uint8)
    gains = [model.apply(flat, np.random.default_rng([9, i])).mean() / 128 for i in range(600)]
    assert np.std(gains) == pytest.approx(model.flicker_std, rel=0.1)
    assert np.mean(gains) == pytest.approx(1.0, abs=0.01)


def test_strength_zero_is_clean():
    f = Scene(size=(320, 240), length=3, seed=2, noise=0.0).frame(2)
    np.testing.assert_array_equal(f.noisy, f.clean)
    assert NoiseModel(0).flicker_std == 0 and NoiseModel(0).expected_variance(0.5) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NoiseModel(1.5)


def test_gt_has_both_classes_inside_the_frame(street):
    scene, gt = street
    assert set(gt.class_id.tolist()) == {synth.MOT_CLASS_ID["person"], synth.MOT_CLASS_ID["car"]}
    b = gt.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= 640).all() and (b[:, 3] <= 480).all()
    assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
    assert ((gt.visibility >= 0) & (gt.visibility <= 1)).all()
    ids = gt.track_ids()
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    assert set(gt.frames().tolist()) == set(range(300))


def _touches_border(b, width=640, height=480):
    return (b[:, 0] <= 0) | (b[:, 1] <= 0) | (b[:, 2] >= width) | (b[:, 3] >= height)


def test_objects_enter_and_exit_at_the_border(street):
    _, gt = street
    entries = exits = 0
    for tid in gt.track_ids():
        track = gt.for_track(tid)
        first, last = track.frame.argmin(), track.frame.argmax()
        edge = _touches_border(track.boxes)
        if track.frame[first] > 0:
            assert edge[first], f"track {tid} appeared in the middle of the frame"
            entries += 1
        if track.frame[last] < 299:
            assert edge[last], f"track {tid} vanished in the middle of the frame"
            exits += 1
    assert entries >= 1 and exits >= 1


def test_occlusion_and_truncation_lower_visibility(street):
    _, gt = street
    inside = ~_touches_border(gt.boxes)
    assert (gt.visibility[inside] < 0.9).any(), "no occlusion away from the border"
    assert (gt.visibility[~inside] < 1.0).any(), "no truncation at the border"


def test_box_heights_change_along_a_track(street):
    _, gt = street
    ratios = []
    for tid in gt.track_ids():
        track = gt.for_track(tid)
        heights = (track.boxes[:, 3] - track.boxes[:, 1])[~_touches_border(track.boxes)]
        if len(heights) > 1:
            ratios.append(heights.max() / heights.min())
    assert max(ratios) > 1.2


def test_written_gt_reads_back(street, tmp_path):
    scene, gt = street
    back = mot.read_gt(scene.write_gt(tmp_path / "seq" / "gt" / "gt.txt"))
    order = np.lexsort((gt.track_id, gt.frame))
    np.testing.assert_array_equal(back.track_id, gt.track_id[order])
    np.testing.assert_allclose(back.boxes, gt.boxes[order], atol=1e-3)
    np.testing.assert_allclose(back.visibility, gt.visibility[order], atol=1e-3)


def test_write_video(tmp_path):
    cv2 = pytest.importorskip("cv2")
    scene = Scene(size=(320, 240), length=5, seed=1)
    path = scene.write_video(tmp_path / "clip.avi", which="clean", fourcc="MJPG")
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 5
    assert [p.name for p in tmp_path.iterdir()] == ["clip.avi"]
    with pytest.raises(ValueError, match="noisy"):
        scene.write_video(tmp_path / "x.avi", which="blurry")


@pytest.mark.parametrize("size", [(319, 240), (640, 239), (1921, 1080), (1920, 1081)])
def test_size_out_of_range(size):
    with pytest.raises(ValueError, match="320x240 .. 1920x1080"):
        Scene(size=size)


def test_size_limits_accepted_and_other_arguments_checked():
    assert Scene(size=(320, 240), length=1).frame(0).clean.shape == (240, 320, 3)
    assert Scene(size=(1920, 1080), length=1).size == (1920, 1080)
    with pytest.raises(ValueError, match="length"):
        Scene(length=0)
    with pytest.raises(ValueError, match="fps"):
        Scene(fps=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Scene(noise=-0.1)
    with pytest.raises(ValueError, match="frame index"):
        Scene(length=5).frame(5)
