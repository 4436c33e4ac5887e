"""Detection and tracking quality on real footage with public ground truth.

    python benchmarks/real_footage.py PATH/MOT17/train/MOT17-04-FRCNN [more sequence folders]
    python benchmarks/real_footage.py --mot-root PATH/MOT17/train --max-frames 150

Each argument is a MOTChallenge sequence folder as downloaded (img1/ or a video, gt/gt.txt,
seqinfo.ini; MOT15, MOT16, MOT17 and MOT20 layouts are all read right, helpers.mot). Every
detector the workbook has is scored the same way, through helpers.evaluate.sequence (the call
the lessons use): AP@0.5 and mAP@[.5:.95] for pedestrians (pycocotools; distractors and flag-0
rows are ignore regions, as in the MOTChallenge devkit), MOTA and IDF1 (motmetrics) with the
workbook's tracker.

Variants: the ported pretrained pedestrian detector, the same detector with sliced inference
(helpers.detect.Tiled, grid "auto": 3x2 tiles on 1080p), and the bundled synthetic-trained
detector (to show the domain gap). The JSON records each sequence's name, frames and size, the
machine fingerprint and the date. No footage ships with the workbook: MOTChallenge data is
licensed for research (CC BY-NC-SA 3.0) and has to be downloaded from motchallenge.net.

Writes benchmarks/results/real_footage.json (or --json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import bench, detect, env, evaluate, models, mot  # noqa: E402


def variants(device: str) -> dict:
    pedestrian = detect.Detector(models.pedestrian_detector(device))
    return {
        "pedestrian SSDLite (ported)": pedestrian,
        "pedestrian SSDLite, tiled": detect.Tiled(pedestrian, grid="auto"),
        "synthetic-trained SSDLite (bundled)": detect.Detector(models.synth_detector(device)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sequences", nargs="*", type=Path, help="MOTChallenge sequence folders")
    ap.add_argument("--mot-root", type=Path, help="a folder of sequence folders (e.g. MOT17/train)")
    ap.add_argument("--max-frames", type=int, default=None, help="score only the first N frames of each")
    ap.add_argument("--min-visibility", type=float, default=0.0,
                    help="ignore ground truth less visible than this (MOT16+ only; default 0: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "real_footage.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    folders = list(args.sequences)
    if args.mot_root:
        folders += sorted(p for p in args.mot_root.iterdir() if (p / "gt" / "gt.txt").is_file())
    if not folders:
        print("No sequence given. Download a MOTChallenge sequence (https://motchallenge.net, e.g. "
              "MOT17 train), then: python benchmarks/real_footage.py PATH/MOT17-04-FRCNN")
        return 2
    dets = variants(args.device)
    rows, results = [], {}
    for folder in folders:
        seq = mot.load_sequence(folder)
        results[seq.name] = {"folder": str(folder), "layout": seq.layout, "size": list(seq.size),
                             "fps": seq.fps, "variants": {}}
        for name, det in dets.items():
            start = time.perf_counter()
            r = evaluate.sequence(det, folder, max_frames=args.max_frames, score_thresh=0.01,
                                  min_visibility=args.min_visibility)
            seconds = time.perf_counter() - start
            results[seq.name]["frames"] = r["frames"]
            results[seq.name]["variants"][name] = {k: r[k] for k in ("map50", "map", "mota", "idf1", "id_switches")}
            results[seq.name]["variants"][name]["seconds"] = round(seconds, 1)
            rows.append((seq.name, name, f"{r['map50']:.3f}", f"{r['map']:.3f}", f"{r['mota']:.3f}",
                         f"{r['idf1']:.3f}", str(r["frames"])))
    print(env.format_table(rows, ("sequence", "detector", "AP@0.5", "mAP", "MOTA", "IDF1", "frames")))
    bench.write_results(args.json, {"benchmark": "real_footage", "min_visibility": args.min_visibility,
                                    "max_frames": args.max_frames, "sequences": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
