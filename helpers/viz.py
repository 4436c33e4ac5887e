"""Drawing and side-by-side views. Works on BGR uint8 images; no Jupyter needed."""

from __future__ import annotations

import cv2
import numpy as np

# One colour per class id, BGR, chosen to stay distinct on photo backgrounds.
PALETTE = [(0, 200, 255), (255, 120, 0), (60, 220, 60), (220, 60, 220), (0, 80, 255), (255, 255, 0)]


def draw_boxes(image: np.ndarray, boxes, labels=None, colors=None, thickness: int = 2) -> np.ndarray:
    """Return a copy of ``image`` with xyxy ``boxes`` drawn and optional text ``labels``."""
    out = image.copy()
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        color = colors[i] if colors is not None else PALETTE[i % len(PALETTE)]
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, color, thickness, cv2.LINE_AA)
        if labels is not None:
            text = str(labels[i])
            (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            top = max(p1[1] - h - base - 2, 0)
            cv2.rectangle(out, (p1[0], top), (p1[0] + w + 4, top + h + base + 2), color, -1)
            cv2.putText(out, text, (p1[0] + 2, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def side_by_side(images, titles=None, gap: int = 8, height: int | None = None) -> np.ndarray:
    """Concatenate BGR images horizontally (resized to the first one's height, or to
    ``height``: half-size tiles keep a side-by-side video small), with titles."""
    height = int(height) if height is not None else images[0].shape[0]
    if height < 1:
        raise ValueError(f"side_by_side: expected height >= 1 pixel; found {height}.")
    tiles = []
    for i, image in enumerate(images):
        if image.shape[0] != height:
            image = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height))
        image = image.copy()
        if titles:
            # Scale the text with the tile so a 1080p title is as readable as a 480p one.
            scale, thick = 0.6 * max(1.0, height / 480), max(1, round(height / 480))
            (w, h), base = cv2.getTextSize(titles[i], cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            cv2.rectangle(image, (0, 0), (w + 12, h + base + 10), (0, 0, 0), -1)
            cv2.putText(image, titles[i], (6, h + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
        tiles.append(image)
        tiles.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def class_color(label: int) -> tuple[int, int, int]:
    """The same BGR colour for a class id in every frame, lesson and run."""
    return PALETTE[int(label) % len(PALETTE)]


def id_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per track id (golden-ratio hue steps)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((int(track_id) * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _name(label: int, names) -> str:
    if names is None:
        return str(int(label))
    return names[int(label)] if 0 <= int(label) < len(names) else str(int(label))


def draw_detections(image: np.ndarray, detections, names=None, min_score: float = 0.0,
                    thickness: int = 2) -> np.ndarray:
    """Boxes coloured by class and captioned "class score" (helpers.detections.Detections)."""
    keep = np.asarray(detections.scores) >= min_score
    boxes = np.asarray(detections.boxes)[keep]
    labels, scores = np.asarray(detections.labels)[keep], np.asarray(detections.scores)[keep]
    captions = [f"{_name(c, names)} {s:.2f}" for c, s in zip(labels, scores)]
    return draw_boxes(image, boxes, captions, [class_color(c) for c in labels], thickness)


def _track_ids(tracks, who: str) -> np.ndarray:
    ids = getattr(tracks, "track_ids", None)
    if ids is None:
        raise ValueError(f"{who}: expected tracks (Detections with track_ids, as Tracker.update "
                         "returns them); found detections without ids. Draw those with "
                         "draw_detections, or feed them through a helpers.track.Tracker first.")
    return np.asarray(ids)


class Trails:
    """The last ``length`` box centres of every track id, for drawing motion trails."""

    def __init__(self, length: int = 20):
        if int(length) < 1:
            raise ValueError(f"Trails: length must be >= 1 frame; found {length}.")
        self.length = int(length)
        self._points: dict[int, list] = {}
        self._age: dict[int, int] = {}

    def reset(self) -> None:
        self._points.clear()
        self._age.clear()

    def update(self, tracks) -> None:
        seen = set()
        for box, tid in zip(np.asarray(tracks.boxes).reshape(-1, 4), _track_ids(tracks, "Trails.update")):
            tid = int(tid)
            seen.add(tid)
            pts = self._points.setdefault(tid, [])
            pts.append(((box[0] + box[2]) / 2, box[3]))  # bottom centre: where it stands
            del pts[:-self.length]
            self._age[tid] = 0
        for tid in list(self._age):  # forget ids unseen for a while, so memory stays flat
            if tid not in seen:
                self._age[tid] += 1
                if self._age[tid] > self.length:
                    del self._age[tid], self._points[tid]

    def __getitem__(self, track_id: int) -> list:
        return self._points.get(int(track_id), [])


def draw_tracks(image: np.ndarray, tracks, names=None, trails: Trails | None = None,
                thickness: int = 2) -> np.ndarray:
    """Boxes coloured by track id, captioned "#id class", with each id's motion trail
    (``tracks``: Detections with track_ids, from Tracker.update)."""
    ids, labels = _track_ids(tracks, "draw_tracks"), np.asarray(tracks.labels)
    colors = [id_color(t) for t in ids]
    out = draw_boxes(image, tracks.boxes, [f"#{int(t)} {_name(c, names)}" for t, c in zip(ids, labels)],
                     colors, thickness)
    if trails is not None:
        for tid, color in zip(ids, colors):
            pts = np.round(np.asarray(trails[tid], np.float32)).astype(np.int32)
            if len(pts) > 1:
                cv2.polylines(out, [pts.reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA)
    return out


def grid(images, cols: int = 2, titles=None, gap: int = 8) -> np.ndarray:
    """Rows of ``cols`` tiles at the first image's height, padded white to one width."""
    if not images:
        raise ValueError("grid() needs at least one image.")
    height = images[0].shape[0]
    rows = [side_by_side([im for im in images[r:r + cols]], titles[r:r + cols] if titles else None, gap)
            for r in range(0, len(images), cols)]
    rows = [row if row.shape[0] == height else
            cv2.resize(row, (round(row.shape[1] * height / row.shape[0]), height)) for row in rows]
    width = max(row.shape[1] for row in rows)
    out = []
    for row in rows:
        out.append(np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(out, axis=0)[:-gap] if gap else np.concatenate(out, axis=0)


def video_html(frames, fps: float, path=None, width: int | None = None):
    """An inline, browser-playable H.264 video of BGR frames (an IPython HTML object).

    pip's OpenCV cannot encode H.264 and browsers do not play its mp4v, so this encodes with
    the static ffmpeg inside imageio-ffmpeg. The video is embedded (base64), so it also plays
    in exported HTML. ``path`` keeps a copy of the mp4 there."""
    import base64
    import tempfile
    from pathlib import Path

    import imageio_ffmpeg
    from IPython.display import HTML

    frames = list(frames)
    if not frames:
        raise ValueError("video_html() needs at least one frame.")
    h, w = frames[0].shape[:2]
    odd = [i for i, f in enumerate(frames) if f.shape[:2] != (h, w)]
    if odd:
        raise ValueError(f"video_html: every frame must be {w}x{h} like the first; frame {odd[0]} is "
                         f"{frames[odd[0]].shape[1]}x{frames[odd[0]].shape[0]}. Resize them first.")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "video.mp4"
        writer = imageio_ffmpeg.write_frames(str(out), (w, h), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", quality=6,
                                             output_params=["-movflags", "+faststart"],
                                             macro_block_size=2)
        writer.send(None)
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame[:, :, ::-1]))
        finally:
            writer.close()
        data = out.read_bytes()
    if path is not None:
        from .files import atomic_path

        with atomic_path(path, suffix=".mp4") as tmp_path:
            Path(tmp_path).write_bytes(data)
    shown = f' width="{int(width)}"' if width else ""
    return HTML(f'<video controls loop autoplay muted playsinline{shown} '
                f'src="data:video/mp4;base64,{base64.b64encode(data).decode()}"></video>')


def show(image_bgr: np.ndarray, title: str | None = None, width: float = 10.0):
    """Display a BGR image with matplotlib (the RGB swap for display happens here)."""
    import matplotlib.pyplot as plt

    h, w = image_bgr.shape[:2]
    fig, ax = plt.subplots(figsize=(width, width * h / w))
    ax.imshow(image_bgr[:, :, ::-1])
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    plt.show()
    return fig
