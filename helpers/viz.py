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


def side_by_side(images, titles=None, gap: int = 8) -> np.ndarray:
    """Concatenate BGR images horizontally (resized to the first one's height), with titles."""
    height = images[0].shape[0]
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
