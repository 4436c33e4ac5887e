"""The ported pedestrian detector reproduces the TensorFlow original.

The reference (data/detector/pedestrian_ssdlite_tf_reference.npz) was written by
tools/tf_reference.py, which ran the original frozen graph in TensorFlow 2.21 on 24 frames of
OpenCV's vtest.avi. Here the port, with no TensorFlow, runs on the same frames decoded by the
same OpenCV; every stage is compared: settings read from the graph, preprocessing, raw network
outputs, and the final detections through helpers.detect's one postprocess.
"""

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import assets, detect, models, tfgraph, tfssd
from helpers.preprocess import Preprocessor

REFERENCE = Path(__file__).resolve().parents[1] / "data/detector/pedestrian_ssdlite_tf_reference.npz"


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REFERENCE, allow_pickle=False))


@pytest.fixture(scope="module")
def model(offline):
    return models.pedestrian_detector()


@pytest.fixture(scope="module")
def graph(offline):
    return tfgraph.read_graph(assets.resolve(models.PEDESTRIAN_DETECTOR_NAME))


@pytest.fixture(scope="module")
def frames(ref, real_video):
    """The reference frames, decoded sequentially as the tool did; each checked by sha256."""
    wanted = {int(i): n for n, i in enumerate(ref["frame_indices"])}
    out = [None] * len(wanted)
    cap = cv2.VideoCapture(str(real_video))
    try:
        index = 0
        while wanted:
            ok, frame = cap.read()
            assert ok, f"vtest.avi ended at frame {index}, before the reference frames did"
            if index in wanted:
                n = wanted.pop(index)
                digest = hashlib.sha256(frame.tobytes()).hexdigest()
                assert digest == ref["frame_sha256"][n], (
                    f"frame {index} decodes differently here than when the reference was made; "
                    "re-run tools/tf_reference.py with this OpenCV")
                out[n] = frame
            index += 1
    finally:
        cap.release()
    return out


def test_settings_come_from_the_graph(model, ref):
    cfg = model.config
    assert cfg.input_size == (300, 300)
    assert (cfg.resize_op, cfg.align_corners, cfg.half_pixel_centers) == ("ResizeBilinear", False, False)
    assert cfg.pixel_scale == pytest.approx(2 / 255) and cfg.pixel_offset == 1.0
    assert cfg.encoding_order == "yxhw"
    assert cfg.scale_factors == tuple(ref["box_coder_scales"].tolist())
    assert cfg.score_fn == "sigmoid"
    assert cfg.iou_threshold == pytest.approx(float(ref["nms_iou_threshold"]))
    assert cfg.score_threshold == pytest.approx(float(ref["nms_score_threshold"]))
    assert (cfg.max_per_class, cfg.max_total) == (int(ref["nms_max_per_class"]), int(ref["nms_max_total"]))
    # The anchors are evaluated from the graph's own generator, not re-derived: TF's tensor.
    np.testing.assert_allclose(cfg.anchors_yxyx, ref["anchors_yxyx"], rtol=0, atol=1e-6)


def test_anchor_layout_six_maps_fewer_on_the_first(model):
    # 19x19 with 3 anchors (the TF API's reduce_boxes_in_lowest_layer), then 10, 5, 3, 2, 1 with 6.
    sizes = [(19, 3), (10, 6), (5, 6), (3, 6), (2, 6), (1, 6)]
    assert len(model.config.anchors_yxyx) == sum(s * s * a for s, a in sizes) == 1917
    heads = sorted((s for s in model.steps if s[0].endswith("ClassPredictor/Conv2D")), key=lambda s: s[0])
    outs = [model.convs[s[3][0]].out_channels // 2 for s in heads]
    assert outs == [a for _, a in sizes]


def test_same_padding_is_asymmetric_at_stride_two(model, graph):
    first = next(s for s in model.steps if s[0] == "FeatureExtractor/MobilenetV2/Conv/Conv2D")
    assert first[3][1] == (0, 1, 0, 1)  # 300 -> 150: TensorFlow pads one pixel, right/bottom only
    assert tfssd._same_padding(300, 3, 2) == (0, 1)
    assert tfssd._same_padding(19, 3, 2) == (1, 1)
    assert tfssd._same_padding(150, 3, 1) == (1, 1)
    eps = {n.attrs["epsilon"] for n in graph.values() if n.op == "FusedBatchNorm"}
    assert eps == {np.float32(1e-3).item()}  # folded with the graph's epsilon, not PyTorch's 1e-5
    assert sum(s[1] == "relu6" for s in model.steps) == sum(n.op == "Relu6" for n in graph.values())


def test_preprocessing_matches_tensorflow(model, frames, ref):
    spec = model.spec
    pre = Preprocessor(size=spec.input_size, letterbox=False, mean=spec.mean, std=spec.std,
                       backend="torch", resize=spec.resize)
    batch, _ = pre(frames[0])
    theirs = torch.from_numpy(ref["preprocessed_first"]).permute(0, 3, 1, 2)
    # grid_sample rounds its coordinates in float32: at most ~0.02 grey levels, 2e-4 after scaling.
    torch.testing.assert_close(batch, theirs, rtol=0, atol=2e-4)
    # the numpy backend agrees too
    npbatch, _ = Preprocessor(size=spec.input_size, letterbox=False, mean=spec.mean, std=spec.std,
                              resize=spec.resize)(frames[0])
    np.testing.assert_allclose(npbatch, theirs.numpy(), rtol=0, atol=2e-5)


def test_raw_outputs_match_tensorflow(model, ref):
    x = torch.from_numpy(ref["preprocessed_first"]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        boxes, logits = model(x)
    torch.testing.assert_close(boxes[0], torch.from_numpy(ref["raw_box_encodings"][0]), rtol=0, atol=2e-3)
    torch.testing.assert_close(logits[0], torch.from_numpy(ref["raw_class_logits"][0]), rtol=0, atol=2e-3)


def test_detections_match_tensorflow_on_real_frames(model, frames, ref):
    detector = detect.Detector(model)
    h, w = (int(v) for v in ref["frame_size_hw"])
    compared = 0
    for n, frame in enumerate(frames):
        ours = detector(frame, score_thresh=0.3)
        keep = ref["scores"][n] > 0.3
        boxes, scores = ref["boxes_xyxy_px"][n][keep], ref["scores"][n][keep]
        assert len(ours) == len(boxes), f"frame {n}: {len(ours)} detections above 0.3, TF has {len(boxes)}"
        # both are sorted by score; match by order, and check it is the same box
        np.testing.assert_allclose(ours.scores, scores, rtol=0, atol=1e-3, err_msg=f"frame {n}")
        np.testing.assert_allclose(ours.boxes, boxes, rtol=0, atol=1.0, err_msg=f"frame {n}")
        assert set(ours.labels.tolist()) <= {1}
        compared += len(boxes)
    assert compared >= 40, "the reference frames hold dozens of people above 0.3"
    assert (w, h) == (768, 576)


def test_port_runs_at_any_batch_and_on_the_one_postprocess(model, frames):
    detector = detect.Detector(model)
    batch = detector.detect(frames[:3], score_thresh=0.3)
    single = [detector(f, score_thresh=0.3) for f in frames[:3]]
    for a, b in zip(batch, single):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    assert detect.raw_network(model) is model


def test_not_a_graph_is_refused(tmp_path):
    bad = tmp_path / "frozen_inference_graph.pb"
    bad.write_bytes(b"\x00\xff this is not a protobuf" * 10)
    with pytest.raises(ValueError, match="not a TensorFlow GraphDef|no nodes"):
        tfgraph.read_graph(bad)
    with pytest.raises(FileNotFoundError, match="frozen graph"):
        tfgraph.read_graph(tmp_path / "missing.pb")


def test_a_graph_with_an_unknown_op_is_refused(graph):
    broken = tfgraph.Graph(graph)
    name = "FeatureExtractor/MobilenetV2/Conv/Relu6"
    broken[name] = tfgraph.Node(name, "Elu", broken[name].inputs, {})
    with pytest.raises(ValueError, match="op Elu is not one this port converts"):
        tfssd.GraphNetwork(broken, (300, 300))


def test_reference_records_where_it_came_from(ref):
    info = json.loads(str(ref["graph_info"]))
    manifest = json.loads((REFERENCE.parents[1] / "manifest.json").read_text())
    assert info["graph_sha256"] == manifest["assets"][models.PEDESTRIAN_DETECTOR_NAME]["sha256"]
    assert len(ref["frame_indices"]) >= 20


def test_tiled_inference_on_a_mosaic_finds_what_each_frame_holds(model, frames):
    """Four real frames side by side (1536x1152): shrunk to 300x300 whole, the people are a
    quarter of their size and many are missed; tiled 2x2 without overlap, each tile is exactly
    one frame again, so the tiled result is the four frames' own detections, moved."""
    detector = detect.Detector(model)
    quad = frames[4:8]
    mosaic = np.vstack([np.hstack(quad[:2]), np.hstack(quad[2:])])
    h, w = quad[0].shape[:2]
    own = [detector(f, score_thresh=0.5) for f in quad]
    expected = np.concatenate([d.boxes + [x, y, x, y] for d, (x, y) in
                               zip(own, [(0, 0), (w, 0), (0, h), (w, h)])])
    tiled = detect.Tiled(detector, grid=(2, 2), overlap=0.0, full_frame=False)
    assert tiled.tiles(2 * w, 2 * h) == [(0, 0, w, h), (w, 0, 2 * w, h), (0, h, w, 2 * h), (w, h, 2 * w, 2 * h)]
    got = tiled(mosaic, score_thresh=0.5)
    order = lambda b: b[np.lexsort(b.T[::-1])]  # noqa: E731
    np.testing.assert_allclose(order(got.boxes), order(expected), atol=1e-3)
    whole = detector(mosaic, score_thresh=0.5)
    assert len(whole) < len(got), "the whole mosaic at 300x300 should miss people the tiles find"
    assert detect.Tiled(detector).grid_for(768, 576) == (1, 1)
    assert detect.Tiled(detector).grid_for(1920, 1080) == (3, 2)


def test_raw_outputs_match_tensorflow_on_every_reference_frame(model, frames, ref):
    """Our preprocessing and network together, frame by frame, against TF's raw tensors."""
    spec = model.spec
    pre = Preprocessor(size=spec.input_size, letterbox=False, mean=spec.mean, std=spec.std,
                       backend="torch", resize=spec.resize)
    for r, n in enumerate(ref["raw_frames"]):
        with torch.no_grad():
            boxes, logits = model(pre(frames[int(n)])[0])
        np.testing.assert_allclose(boxes[0].numpy(), ref["raw_box_encodings"][r], rtol=0, atol=5e-3,
                                   err_msg=f"frame {n}")
        np.testing.assert_allclose(torch.sigmoid(logits[0]).numpy(),
                                   1 / (1 + np.exp(-ref["raw_class_logits"][r])), rtol=0, atol=1e-3,
                                   err_msg=f"frame {n}")
