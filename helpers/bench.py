"""Timing that survives a noisy machine: warm-up, interleaved rounds, percentiles.

Comparisons are made side by side in one run: each round calls every variant in turn,
rotating the order, so a burst of load from elsewhere hits all variants alike instead of
ruining one. (CUDA events, memory and JSON fingerprints join this module with the
benchmark lesson.)
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def time_calls(fn: Callable[[], object], iters: int) -> list[float]:
    """Wall time of ``iters`` calls of ``fn``, in milliseconds each."""
    samples = []
    for _ in range(iters):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def interleaved(variants: dict[str, Callable[[], object]], rounds: int = 5, iters: int = 30,
                warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds per call for every variant, measured round-robin in ``rounds`` rounds."""
    if min(rounds, iters) < 1:
        raise ValueError(f"rounds and iters must be >= 1; found rounds={rounds}, iters={iters}")
    for fn in variants.values():
        for _ in range(warmup):  # first calls allocate, compile or wake thread pools
            fn()
    keys = list(variants)
    samples = {key: [] for key in keys}
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            samples[key] += time_calls(variants[key], iters)
    return samples


def stats(samples_ms) -> dict:
    """Median, p90 and p99 of a list of milliseconds, rounded for tables."""
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"median_ms": round(float(np.median(a)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "n": int(a.size)}


def write_results(path, payload: dict):
    """Write a benchmark's JSON atomically, stamped with the date, the machine's load and the
    ``env.probe()`` fingerprint, so numbers from different machines are never compared blind."""
    import datetime
    import json
    import os

    from . import env
    from .files import write_text

    stamped = {
        **payload,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # Other work on the machine inflates CPU timings; the load says how much to trust them.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "environment": env.probe(camera_timeout=1.0).to_dict(),
    }
    path = write_text(path, json.dumps(stamped, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path
