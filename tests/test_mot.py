import cv2
import numpy as np
import pytest

from helpers import evaluate, metrics, mot
from helpers.track import Detections, Tracker


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
    # "3,0.5,0" could also be MOT15 world coordinates, and nothing names the benchmark.
    with pytest.raises(ValueError, match=r"line 2: cannot tell the layout.*layout='mot16'"):
        mot.read_gt(path)
    gt = mot.read_gt(path, layout="mot16")
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


# ---------------------------------------------------------------- public MOTChallenge layouts

# 2D MOT 2015: frame,id,x,y,w,h,conf,wx,wy,wz. Some sequences give world coordinates,
# most leave them -1; every row is a pedestrian.
MOT15_GT = """\
1,1,100,50,40,90,1,-1,-1,-1
1,2,300,60,50,110,1,-1,-1,-1
2,1,104,51,40,90,1,7.52,-3.1,0
2,2,296,60,50,110,1,12.25,0.4,0
3,1,108,52,40,90,1,8.01,-2.9,0
3,2,292,60,50,110,1,11.9,0.35,0
"""


def predictions_from(gt, label=1):
    """Perfect predictions: every active pedestrian's own box, as the detector would report it."""
    keep = (gt.class_id == 1) & (gt.active == 1)
    g = gt.select(keep)
    dets = {int(f): (g.for_frame(f).boxes, np.full(len(g.for_frame(f)), 0.9),
                     np.full(len(g.for_frame(f)), label)) for f in g.frames()}
    tracks = {int(f): (g.for_frame(f).boxes, g.for_frame(f).track_id) for f in g.frames()}
    return dets, tracks


def test_mot15_world_coordinates_are_not_read_as_classes(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(MOT15_GT)
    assert mot.detect_layout(path) == "mot15"  # 7.52,-3.1 cannot be a class and a visibility
    gt = mot.read_gt(path)
    assert len(gt) == 6
    np.testing.assert_array_equal(gt.class_id, 1)
    np.testing.assert_array_equal(gt.visibility, 1.0)
    np.testing.assert_array_equal(gt.active, 1)
    np.testing.assert_allclose(gt.boxes[2], [103, 50, 143, 140])

    dets, tracks = predictions_from(gt)
    d = metrics.detection_metrics(gt, dets)
    assert d["map"] == pytest.approx(1.0) and d["map50"] == pytest.approx(1.0)
    assert set(d["ap_per_class"]) == {1}
    t = metrics.tracking_metrics(gt, tracks, min_visibility=evaluate.MIN_VISIBILITY)
    assert t["mota"] == 1.0 and t["idf1"] == 1.0
    assert t["num_objects"] == 6  # no row lost to a "visibility" of -3.1


def test_mot15_conf_zero_is_ignored_and_minus_one_file_is_named_by_folder(tmp_path):
    seq = tmp_path / "MOT15" / "train" / "ADL-Rundle-6"
    path = seq / "gt" / "gt.txt"
    path.parent.mkdir(parents=True)
    path.write_text("1,1,10,10,20,40,1,-1,-1,-1\n1,2,50,10,20,40,0,-1,-1,-1\n")
    assert mot.detect_layout(path) == "mot15"
    gt = mot.read_gt(path)
    np.testing.assert_array_equal(gt.active, [1, 0])
    np.testing.assert_array_equal(gt.class_id, [1, 1])
    # The sequence name alone decides it too, as in an old 2DMOT2015 copy moved elsewhere.
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=ADL-Rundle-6\n")
    other = tmp_path / "elsewhere" / "gt" / "gt.txt"
    other.parent.mkdir(parents=True)
    other.write_text("1,1,10,10,20,40,1,3,0.5,0\n")
    (other.parent.parent / "seqinfo.ini").write_text((seq / "seqinfo.ini").read_text())
    assert mot.detect_layout(other) == "mot15"


# MOT17: frame,id,x,y,w,h,flag,class,visibility
MOT17_GT = """\
1,1,100,50,40,90,1,1,1
1,2,300,60,50,110,1,1,0.6
1,3,500,60,30,80,0,7,1
1,4,600,300,100,60,0,3,1
1,5,700,60,30,80,0,1,1
1,6,800,60,30,80,1,8,0.9
1,7,900,60,30,80,1,12,1
1,8,50,300,40,90,0,2,1
1,9,200,300,60,20,0,9,1
2,1,104,51,40,90,1,1,1
2,2,296,60,50,110,1,1,0.5
2,3,500,60,30,80,0,7,1
"""


def write_mot17(tmp_path, text=MOT17_GT, name="MOT17-02-FRCNN"):
    seq = tmp_path / "data" / "train" / "seq"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength=2\n"
        "imWidth=1920\nimHeight=1080\nimExt=.jpg\n")
    (seq / "gt" / "gt.txt").write_text(text)
    return seq / "gt" / "gt.txt"


def test_mot17_ignore_rows_and_distractor_classes(tmp_path):
    path = write_mot17(tmp_path)
    assert mot.detect_layout(path) == "mot16"  # from seqinfo.ini's name
    gt = mot.read_gt(path)
    by_id = {int(i): (int(c), int(a)) for i, c, a in zip(gt.track_id, gt.class_id, gt.active)}
    assert by_id == {1: (1, 1), 2: (1, 1),
                     3: (1, 0), 6: (1, 0), 7: (1, 0), 8: (1, 0),  # distractors: person, ignored
                     4: (3, 0), 9: (9, 0),                        # other classes: not scored
                     5: (1, 0)}                                   # flag 0: ignored
    np.testing.assert_allclose(gt.for_track(2).visibility, [0.6, 0.5])

    dets, tracks = predictions_from(gt)
    # Predictions on the static person (3), the distractor (6), the reflection (7) and the
    # person on a vehicle (8) cost nothing; they are no false positives.
    extra = gt.select(np.isin(gt.track_id, [3, 6, 7, 8]))
    for f in extra.frames():
        e = extra.for_frame(f)
        boxes, scores, labels = dets[int(f)]
        dets[int(f)] = (np.vstack([boxes, e.boxes]), np.r_[scores, np.full(len(e), 0.95)],
                        np.r_[labels, np.ones(len(e), int)])
        tb, ti = tracks[int(f)]
        tracks[int(f)] = (np.vstack([tb, e.boxes]), np.r_[ti, 100 + e.track_id])
    people = gt.select(gt.class_id == mot.PEDESTRIAN)
    d = metrics.detection_metrics(people, dets)
    assert d["map"] == pytest.approx(1.0) and d["fp"] == 0 and d["num_gt"] == 4
    t = metrics.tracking_metrics(people, tracks)
    assert t["mota"] == 1.0 and t["false_positives"] == 0 and t["num_objects"] == 4


def test_layout_from_benchmark_folder_and_mot20_distractors(tmp_path):
    path = tmp_path / "MOT20" / "train" / "MOT20-01" / "gt" / "gt.txt"
    path.parent.mkdir(parents=True)
    path.write_text("1,1,10,10,20,40,1,1,1\n1,2,60,10,20,40,0,6,1\n")
    assert mot.detect_layout(path) == "mot20"
    gt = mot.read_gt(path)
    np.testing.assert_array_equal(gt.class_id, [1, 1])  # MOT20: non-motorized vehicle distracts
    np.testing.assert_array_equal(gt.active, [1, 0])
    assert mot.read_gt(path, layout="mot16").class_id.tolist() == [1, 6]
    # A bare 9-column file (what write_gt writes) needs no name.
    bare = tmp_path / "bare.txt"
    bare.write_text("1,1,10,10,20,40,1,3,0.25\n")
    assert mot.detect_layout(bare) == "mot16"


def test_explicit_layout_overrides_the_evidence(tmp_path):
    # World coordinates filed under a MOT17 name: detection refuses, layout= decides.
    path = write_mot17(tmp_path, MOT15_GT)
    with pytest.raises(ValueError, match=r"MOT17-02-FRCNN.*says MOT16, but line 3 holds MOT15"):
        mot.read_gt(path)
    gt = mot.read_gt(path, layout="mot15")
    assert len(gt) == 6 and set(gt.class_id.tolist()) == {1}
    # And read as MOT16 on purpose, the world coordinates are refused line by line.
    with pytest.raises(ValueError, match=r"line 3: expected a MOTChallenge class.*'7.52'.*"
                                         r"layout='mot15'"):
        mot.read_gt(path, layout="mot16")
    with pytest.raises(ValueError, match=r"layout must be one of \['mot15', 'mot16', 'mot20'\]"):
        mot.read_gt(path, layout="mot17")


def test_mixed_or_ambiguous_files_name_the_line(tmp_path):
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("1,1,10,10,20,40,1,1,1\n2,1,10,10,20,40,1,7.5,-3.1,0\n")
    with pytest.raises(ValueError, match=r"mixes the two.*line 1 has 9 columns.*line 2 ends in "
                                         r"world coordinates '7.5,-3.1,0'"):
        mot.read_gt(mixed)
    unclear = tmp_path / "unclear.txt"
    unclear.write_text("1,1,10,10,20,40,1,-1,-1,-1\n2,1,10,10,20,40,1,2,0.5,1\n")
    with pytest.raises(ValueError, match=r"unclear.txt, line 2: cannot tell the layout.*"
                                         r"layout='mot15' or layout='mot16'"):
        mot.detect_layout(unclear)
    assert mot.read_gt(unclear, layout="mot15").class_id.tolist() == [1, 1]
    bad_ini = tmp_path / "s" / "seqinfo.ini"
    bad_ini.parent.mkdir()
    bad_ini.write_text("name=MOT17-02\n")
    (tmp_path / "s" / "gt.txt").write_text("1,1,10,10,20,40,1,1,1\n")
    with pytest.raises(ValueError, match=r"seqinfo.ini: expected an INI file with a \[Sequence\]"):
        mot.read_gt(tmp_path / "s" / "gt.txt")


# ---------------------------------------------------------------- sequence folders


def rectangle_detector(image, score_thresh=None):
    """Stand-in for a network: every bright blob of the frame is a person."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mask = cv2.threshold(gray, 128, 255, cv2.THRESH_BINARY)[1]
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    boxes = [(x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours)]
    n = len(boxes)
    return Detections(np.asarray(boxes, float).reshape(-1, 4), np.full(n, 0.9), np.ones(n, int))


def write_sequence(root, frames=6, size=(320, 240)):
    """A MOT17-style folder: two walkers, a static person (class 7, flag 0) that is drawn
    too, and a car (class 3, flag 0) that is not."""
    seq = root / "MOT17" / "train" / "MOT17-90-TEST"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname=MOT17-90-TEST\nimDir=img1\nframeRate=14\nseqLength={frames}\n"
        f"imWidth={size[0]}\nimHeight={size[1]}\nimExt=.jpg\n")
    lines = []
    for k in range(frames):
        image = np.full((size[1], size[0], 3), 30, np.uint8)
        objects = [(1, 20 + 6 * k, 40, 40, 100, 1, 1), (2, 200 - 5 * k, 60, 50, 120, 1, 1),
                   (3, 270, 150, 30, 60, 0, 7), (4, 120, 180, 60, 30, 0, 3)]
        for tid, x, y, w, h, flag, cls in objects:
            if cls != 3:  # pixels x..x+w-1: box [x, x+w) in the workbook, bb_left x+1 in the file
                cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (230, 230, 230), -1)
            lines.append(f"{k + 1},{tid},{x + 1},{y + 1},{w},{h},{flag},{cls},1")
        cv2.imwrite(str(seq / "img1" / f"{k + 1:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (seq / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    return seq


def test_load_sequence_reads_folder_seqinfo_and_gt(tmp_path):
    seq = mot.load_sequence(write_sequence(tmp_path))
    assert (seq.name, seq.fps, seq.size, seq.length, seq.layout) == \
        ("MOT17-90-TEST", 14.0, (320, 240), 6, "mot16")
    assert seq.frames == str(tmp_path / "MOT17" / "train" / "MOT17-90-TEST" / "img1")
    assert len(seq.gt) == 24 and seq.gt.frames().tolist() == list(range(6))
    from helpers.capture import VideoSource
    with VideoSource(seq.frames) as src:
        assert src.size == seq.size and src.frame_count == seq.length


def test_evaluate_sequence_scores_a_perfect_detector_perfectly(tmp_path):
    scores = evaluate.sequence(rectangle_detector, write_sequence(tmp_path))
    assert scores["sequence"] == "MOT17-90-TEST" and scores["frames"] == 6
    assert scores["map"] == pytest.approx(1.0) and scores["map50"] == pytest.approx(1.0)
    # The static person is found in every frame but costs nothing; the car is never scored.
    assert scores["detection"]["fp"] == 0 and scores["detection"]["num_gt"] == 12
    assert scores["mota"] == 1.0 and scores["idf1"] == 1.0 and scores["id_switches"] == 0
    assert scores["tracking"]["num_objects"] == 12
    quick = evaluate.sequence(rectangle_detector, write_sequence(tmp_path / "b"), max_frames=3,
                              tracker=Tracker(min_hits=1))
    assert quick["frames"] == 3 and quick["tracking"]["num_objects"] == 6


def test_sequence_folder_without_seqinfo_or_images(tmp_path):
    seq_dir = write_sequence(tmp_path)
    (seq_dir / "seqinfo.ini").unlink()
    seq = mot.load_sequence(seq_dir)
    assert (seq.name, seq.fps, seq.size, seq.length) == ("MOT17-90-TEST", None, (320, 240), 6)
    # A video instead of img1/: its own rate and size.
    video = seq_dir / "MOT17-90-TEST.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 14, (320, 240))
    for p in sorted((seq_dir / "img1").iterdir()):
        writer.write(cv2.imread(str(p)))
    writer.release()
    for p in (seq_dir / "img1").iterdir():
        p.unlink()
    (seq_dir / "img1").rmdir()
    seq = mot.load_sequence(seq_dir)
    assert seq.frames == str(video) and seq.fps == pytest.approx(14.0) and seq.size == (320, 240)
    video.unlink()
    with pytest.raises(FileNotFoundError, match="expected the frames in img1/ or one video"):
        mot.load_sequence(seq_dir)
    (seq_dir / "gt" / "gt.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no gt/gt.txt.*train"):
        mot.load_sequence(seq_dir)
    with pytest.raises(FileNotFoundError, match="sequence folder not found"):
        mot.load_sequence(tmp_path / "nope")


def test_sequence_with_a_missing_frame_is_refused(tmp_path):
    seq_dir = write_sequence(tmp_path)
    (seq_dir / "img1" / "000003.jpg").unlink()
    with pytest.raises(ValueError, match=r"expected 5 frames numbered 1 to 5.*numbers 1 to 6"):
        mot.load_sequence(seq_dir)
