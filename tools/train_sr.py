"""Train the workbook's super-resolution filters (helpers.filters.SuperResolution), offline.

    python tools/train_sr.py --scale 2            # the committed x2 weights: 12.9 min here
    python tools/train_sr.py --scale 3            # the committed x3 weights: 9.3 min here

(Measured on the lab machine with 1 thread while other jobs shared its 2 cores.)

Self-supervised on real photos: crop a patch, shrink it by the scale factor (area averaging,
helpers.superres.downscale), and learn to restore it. The photos are the ones inside the
scikit-image wheel listed in helpers.superres.TRAIN_PHOTOS. ``--video`` adds every 20th of
frames 0-399 of OpenCV's vtest.avi when that video is installed (off by default, so the
committed weights reproduce on any machine; keep frames 400 on for your own evaluation). The
held-out photos (superres.HELD_OUT_PHOTOS) are never read here: the quality check uses them.

Deterministic for a given --threads (default 1, what the committed weights used): fixed
seeds, a fixed patch schedule, no data-loader workers. Writes the checkpoint atomically (a half-written file never replaces a good one),
a CSV log and a JSON record with the held-out quality measured at the end.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import assets, filters, superres  # noqa: E402
from helpers.files import write_bytes, write_text  # noqa: E402


def training_images(patch: int, use_video: bool = False) -> dict[str, np.ndarray]:
    images = {}
    for name in superres.TRAIN_PHOTOS:
        image = assets.load_image(name)
        # Several sizes of each photo: shrunk photos have denser detail, like far-away scenery.
        for f in (1.0, 0.7, 0.5):
            if min(image.shape[:2]) * f >= patch:
                images[f"{name}@{f}"] = image if f == 1.0 else cv2.resize(image, None, fx=f, fy=f,
                                                                            interpolation=cv2.INTER_AREA)
    if use_video and assets.locate("vtest_video").path is not None:
        cap = cv2.VideoCapture(str(assets.resolve("vtest_video")))
        try:
            for i in range(0, 400):
                ok, frame = cap.read()
                if not ok:
                    break
                if i % 20 == 0:
                    images[f"vtest#{i}"] = frame
        finally:
            cap.release()
    return images


def patches(images: dict, rng: np.random.Generator, batch: int, size: int, scale: int):
    names = sorted(images)
    areas = np.array([images[n].shape[0] * images[n].shape[1] for n in names], np.float64)
    p = areas / areas.sum()
    hr, lr = [], []
    for _ in range(batch):
        image = images[names[rng.choice(len(names), p=p)]]
        h, w = image.shape[:2]
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = image[y:y + size, x:x + size]
        crop = np.rot90(crop, rng.integers(0, 4))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        hr.append(crop)
        lr.append(superres.downscale(crop, scale))
    to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255.0)  # noqa: E731
    return to(lr), to(hr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, choices=filters.SCALES, default=2)
    ap.add_argument("--features", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=96, help="high-resolution patch side (a multiple of 2*scale)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--video", action="store_true", help="also train on vtest.avi frames 0-399 when it is installed")
    ap.add_argument("--out", type=Path, default=None, help="default: data/filters/espcn_x<scale>.pt")
    args = ap.parse_args(argv)
    if args.patch % (2 * args.scale):
        ap.error(f"--patch must be a multiple of {2 * args.scale} (2 x scale) for x{args.scale}; found {args.patch}.")
    out = args.out or assets.REPO_ROOT / "data" / "filters" / f"espcn_x{args.scale}.pt"
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    images = training_images(args.patch, args.video)
    model = filters.SuperResolution(args.scale, args.features).train()
    opt = torch.optim.Adam(model.body.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    log_rows, start, running = [], time.perf_counter(), None
    for step in range(1, args.steps + 1):
        lr_batch, hr_batch = patches(images, rng, args.batch, args.patch, args.scale)
        # L1 on the whole picture: chroma is bicubic's and fixed, so only luma gets gradients.
        loss = F.l1_loss(model(lr_batch), hr_batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == args.steps:
            log_rows.append({"step": step, "loss": round(running, 6), "lr": round(sched.get_last_lr()[0], 7),
                             "seconds": round(time.perf_counter() - start, 1)})
            print(f"step {step:5d}  l1 {running:.5f}  {log_rows[-1]['seconds']:.0f} s", flush=True)
    train_s = time.perf_counter() - start

    model.eval()
    from helpers import runtimes

    with runtimes.make_runtime("torch", model=model) as rt:
        rows = superres.quality(filters.Upscaler(rt), superres.held_out_images(), args.scale)
    for r in rows:
        print(f"held out {r['image']:10s} PSNR bicubic {r['psnr_bicubic']:.2f} dB -> ours {r['psnr_sr']:.2f} dB "
              f"({r['psnr_gain']:+.2f}); SSIM {r['ssim_bicubic']:.4f} -> {r['ssim_sr']:.4f}")

    buf = io.BytesIO()
    config = {"scale": args.scale, "features": args.features}
    torch.save({"state_dict": model.state_dict(), "config": config}, buf)
    write_bytes(out, buf.getvalue())
    with io.StringIO() as s:
        w = csv.DictWriter(s, fieldnames=list(log_rows[0]))
        w.writeheader()
        w.writerows(log_rows)
        write_text(out.with_suffix(".train.csv"), s.getvalue())
    record = {"config": config, "args": {k: str(v) for k, v in vars(args).items()},
              "training_images": sorted(images), "train_seconds": round(train_s, 1),
              "threads": args.threads, "final_l1": log_rows[-1]["loss"],
              "sha256": assets.sha256sum(out), "held_out_quality": rows,
              "date": time.strftime("%Y-%m-%d"), "parameters": sum(p.numel() for p in model.body.parameters())}
    write_text(out.with_suffix(".json"), json.dumps(record, indent=2))
    print(f"wrote {out} ({out.stat().st_size} bytes, sha256 {record['sha256']}) in {train_s / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
