"""Atomic file writes: a reader (another notebook, the runner, an evaluator) never sees a
half-written file, and a failed write leaves nothing behind."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
from pathlib import Path

STALE_AFTER_S = 24 * 3600


def sweep_stale(folder, name: str, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete ``folder``'s leftover temporaries of ``name`` (``.name.*``) older than a day.

    A write killed by SIGKILL (or a power cut) never reaches its ``finally``, so its hidden
    temporary stays. A day is far longer than any write, so a live one is never touched."""
    now, removed = time.time(), []
    for tmp in Path(folder).glob(f".{glob.escape(name)}.*"):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # another process swept it first, or it is not ours to delete
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` ends the temporary name: pass the real extension when a writer picks its
    format from it (cv2.VideoWriter's container). Temporaries of ``path`` that a killed
    process left behind more than a day ago are swept first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (LF line endings) and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, newline="\n")
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def verify_video(tmp, expected_frames: int, path) -> None:
    """Check a just-written video before it replaces ``path``: it opens, and it holds the
    frames written. OpenCV's writer ignores write errors (a full disk, a file-size limit), so
    without this a truncated file would silently replace a good one. Raises OSError."""
    import cv2

    cap = cv2.VideoCapture(str(tmp))
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        readable = False
        if count >= expected_frames > 0:
            # The header can claim frames the disk never got: decode the last one too.
            cap.set(cv2.CAP_PROP_POS_FRAMES, expected_frames - 1)
            readable = cap.read()[0]
    finally:
        cap.release()
    if not readable:
        size = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        raise OSError(f"writing {path} failed: the new video holds {count} of the "
                      f"{expected_frames} frames written ({size:,} bytes on disk). The likely "
                      "cause is a full disk or a file-size limit; the previous file, if any, is "
                      "kept. Free some space (df -h) and write it again.")
