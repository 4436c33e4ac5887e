"""Key figures a notebook hands to ``make run``'s summary and to the lab report.

A notebook calls ``record("03_detection_and_tracking", track, {"mAP@0.5": 0.93})``; the runner
reads every record after the notebooks have executed. Values are the measured numbers,
never text written in advance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .assets import REPO_ROOT
from .files import write_text


def results_dir() -> Path:
    return Path(os.environ.get("EVW_REPORT_DIR") or REPO_ROOT / "build" / "results")


def record(notebook: str, track: str, figures: dict, skipped: list[str] | None = None) -> Path:
    """Write this notebook's key figures as JSON (atomically: the runner may read at any time)."""
    _check_name(notebook)
    payload = {"notebook": notebook, "track": track, "figures": figures, "skipped": skipped or []}
    return write_text(results_dir() / f"{notebook}.json", json.dumps(payload, indent=2, default=str))


def _check_name(notebook: str) -> None:
    # The name becomes a file name in results_dir(): "../x" or "a/b" would write elsewhere.
    if not notebook or Path(notebook).name != notebook or notebook in (".", ".."):
        raise ValueError(f"report name must be a plain file name like '03_detection_and_tracking'; "
                         f"found {notebook!r}, which would leave {results_dir()}.")


def load(notebook: str) -> dict | None:
    _check_name(notebook)
    path = results_dir() / f"{notebook}.json"
    return json.loads(path.read_text()) if path.is_file() else None
