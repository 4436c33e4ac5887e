import numpy as np
import pytest

from helpers import mot


def make_gt(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, 600, n)
    y1 = rng.uniform(0, 400, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(1, 100, n), y1 + rng.uniform(1, 200, n)], 1)
    return mot.GroundTruth(
        frame=rng.integers(0, 10, n), track_id=rng.integers(1, 20, n), boxes=boxes,
        class_id=rng.choice([1, 3], n), visibility=rng.uniform(0, 1, n),
        active=rng.integers(0, 2, n))


def test_round_trip_is_exact_to_a_thousandth_and_sorted(tmp_path):
    gt = make_gt()
    path = mot.write_gt(tmp_path / "deep" / "seq" / "gt.txt", gt)
    back = mot.read_gt(path)

    order = np.lexsort((gt.track_id, gt.frame))
    assert len(back) == len(gt)
    np.testing.assert_array_equal(back.frame, gt.frame[order])
    np.testing.assert_array_equal(back.track_id, gt.track_id[order])
    np.testing.assert_array_equal(back.class_id, gt.class_id[order])
    np.testing.assert_array_equal(back.active, gt.active[order])
    np.testing.assert_allclose(back.boxes, gt.boxes[order], atol=1e-3, rtol=0)
    np.testing.assert_allclose(back.visibility, gt.visibility[order], atol=1e-3, rtol=0)
    # Atomic write leaves no temporary file behind.
    assert [p.name for p in path.parent.iterdir()] == ["gt.txt"]


def test_file_is_one_based_xywh(tmp_path):
    gt = mot.GroundTruth(frame=[0], track_id=[7], boxes=[[10.0, 20.0, 40.0, 80.0]],
                         class_id=[3], visibility=[0.25], active=[1])
    path = mot.write_gt(tmp_path / "gt.txt", gt)
    assert path.read_text() == "1,7,11,21,30,60,1,3,0.25\n"


def test_fractional_values_keep_three_decimals(tmp_path):
    gt = mot.GroundTruth(frame=[4], track_id=[2], boxes=[[0.5, 1.25, 10.5, 11.0]],
                         class_id=[1], visibility=[0.12345], active=[0])
    text = mot.write_gt(tmp_path / "gt.txt", gt).read_text()
    assert text == "5,2,1.5,2.25,10,9.75,0,1,0.123\n"


def test_reads_ten_column_and_six_column_files(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text(
        "1,-1,794.2,47.5,71.2,174.8,67.5,-1,-1,-1\n"  # MOT det.txt: score, world coords unset
        "3,2,10,20,30,40,0,3,0.5,0\n"                 # gt with an extra trailing column
        "\n"
        "2,5,1,1,4,8\n")                              # six columns: defaults apply
    gt = mot.read_gt(path)
    assert len(gt) == 3
    np.testing.assert_array_equal(gt.frame, [0, 2, 1])
    np.testing.assert_array_equal(gt.track_id, [-1, 2, 5])
    np.testing.assert_array_equal(gt.class_id, [1, 3, 1])
    np.testing.assert_array_equal(gt.active, [1, 0, 1])
    np.testing.assert_allclose(gt.visibility, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(gt.boxes[0], [793.2, 46.5, 864.4, 221.3])
    np.testing.assert_allclose(gt.boxes[2], [0, 0, 4, 8])


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,10,5,5,1,1,1\n2,1,10,10,5,5,1,1,1\n3,1,10,10,5\n")
    with pytest.raises(ValueError) as err:
        mot.read_gt(path)
    msg = str(err.value)
    assert "line 3" in msg and str(path) in msg and "expected 6 to 10" in msg and "found 5" in msg


def test_non_numeric_and_zero_based_frames_are_rejected(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,10,5,x,1,1,1\n")
    with pytest.raises(ValueError, match="line 1"):
        mot.read_gt(path)
    path.write_text("1,1,10,10,5,5,1,1,1\n0,1,10,10,5,5,1,1,1\n")
    with pytest.raises(ValueError, match="line 2.*1-based"):
        mot.read_gt(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        mot.read_gt(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("")
    gt = mot.read_gt(tmp_path / "empty.txt")
    assert len(gt) == 0 and gt.boxes.shape == (0, 4)
    # And an empty GroundTruth writes an empty file that reads back empty.
    assert len(mot.read_gt(mot.write_gt(tmp_path / "e2.txt", mot.GroundTruth()))) == 0


def test_subsets_and_concat():
    gt = make_gt(60, seed=1)
    assert list(gt.frames()) == sorted(set(gt.frame.tolist()))
    assert list(gt.track_ids()) == sorted(set(gt.track_id.tolist()))
    parts = [gt.for_frame(i) for i in gt.frames()]
    assert all((p.frame == i).all() for p, i in zip(parts, gt.frames()))
    joined = mot.GroundTruth.concat(parts)
    assert len(joined) == len(gt)
    assert sorted(map(tuple, joined.boxes)) == sorted(map(tuple, gt.boxes))
    assert len(mot.GroundTruth.concat([])) == 0
    with pytest.raises(ValueError, match="same length"):
        mot.GroundTruth(frame=[0, 1], track_id=[1], boxes=[[0, 0, 1, 1]], class_id=[1],
                        visibility=[1], active=[1])
