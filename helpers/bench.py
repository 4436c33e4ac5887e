"""Timing that survives a noisy machine: warm-up, interleaved rounds, percentiles.

Comparisons are made side by side in one run: each round calls every variant in turn,
rotating the order, so a burst of load from elsewhere hits all variants alike instead of
ruining one. ``stage_timer`` times one stage of a pipeline (waiting for that stage's GPU
work on the current stream, not the whole device); on a GPU, ``cuda_time_calls`` times on
the device with CUDA events; ``memory()`` reads peak RSS, torch's peak allocations and NVML;
``batch_sweep`` measures throughput against batch size and stops cleanly at the first batch
that runs out of memory.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


class stage_timer:
    """Time one stage: ``with stage_timer(device, into=times["network"]) as t: ...``.

    ``ms`` is the stage's wall time in milliseconds, until its work is done. On a CUDA
    ``device`` the exit records an event on the current stream and waits for that event only
    (ultralytics' Profile synchronises the whole device instead): other streams, such as a
    pipeline's capture thread uploading the next frame, keep running. ``device_ms`` is then
    the GPU time between the two events; on the CPU it is None. ``into``: a list that gets
    ``ms`` appended when the block ends without an exception.

    Work queued on the stream before the block counts toward it, so every stage that launches
    GPU work should be timed (the Pipeline and Detector time all theirs)."""

    def __init__(self, device=None, into: list | None = None):
        self.device, self.into = device, into
        self.ms = self.device_ms = None
        self._stream = self._start = None

    def __enter__(self) -> stage_timer:
        if self.device is not None and getattr(self.device, "type", str(self.device)).startswith("cuda"):
            import torch

            self._stream = torch.cuda.current_stream(self.device)
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record(self._stream)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._stream is not None:
            import torch

            end = torch.cuda.Event(enable_timing=True)
            end.record(self._stream)
            end.synchronize()
        self.ms = 1e3 * (time.perf_counter() - self._t0)
        if self._stream is not None:
            self.device_ms = self._start.elapsed_time(end)
        if exc_type is None and self.into is not None:
            self.into.append(self.ms)


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


def cuda_time_calls(fn: Callable[[], object], iters: int, stream=None) -> list[float]:
    """Device time of ``iters`` calls of ``fn`` in milliseconds, from CUDA events recorded
    around each call on ``stream`` (default: the current stream). The host waits on the end
    event only, so launch overhead that the GPU hides is not counted."""
    import torch

    stream = stream or torch.cuda.current_stream()
    pairs = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        fn()
        end.record(stream)
        pairs.append((start, end))
    pairs[-1][1].synchronize()
    return [s.elapsed_time(e) for s, e in pairs]


def memory(reset: bool = False) -> dict:
    """Memory figures in MiB: process peak RSS; torch CUDA peak allocated/reserved; NVML used
    memory of device 0 when pynvml is installed. ``reset`` restarts torch's peak counters."""
    import resource
    import sys

    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        out["torch_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["torch_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        if reset:
            torch.cuda.reset_peak_memory_stats()
        try:
            import pynvml

            pynvml.nvmlInit()
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
            out["nvml_used_mib"] = round(info.used / 2**20, 1)
        except Exception as exc:  # pynvml missing, or no NVML on this board (Jetson)
            out["nvml_used_mib"] = f"unavailable: {type(exc).__name__}"
    return out


def batch_sweep(run_batch: Callable[[int], object], batches=(1, 2, 4, 8, 16, 32), iters: int = 10) -> dict:
    """Throughput (items/s) and latency per batch size. ``run_batch(n)`` runs one batch of n.
    Out of memory at some size ends the sweep there; the result says which sizes fit."""
    results, stopped = {}, None
    for n in batches:
        try:
            run_batch(n)  # warm-up at this size
            ms = float(np.median(time_calls(lambda: run_batch(n), iters)))
        except (MemoryError, RuntimeError) as exc:
            if "out of memory" not in str(exc).lower() and not isinstance(exc, MemoryError):
                raise
            stopped = f"batch {n}: out of memory ({type(exc).__name__}); largest that fit: " \
                      f"{max(results) if results else 'none'}"
            try:
                import torch

                torch.cuda.empty_cache()
            except Exception:
                pass
            break
        results[n] = {"median_ms": round(ms, 3), "items_per_s": round(n * 1e3 / ms, 2)}
    return {"batches": results, "stopped": stopped}
