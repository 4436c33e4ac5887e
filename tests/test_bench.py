"""helpers.bench on real calls: every variant is measured in every round, and the
percentiles separate a slow function from a fast one measured side by side."""

import time

import pytest

from helpers import bench


def test_interleaved_measures_every_variant_and_orders_them():
    calls = {"fast": [], "slow": []}
    variants = {
        "fast": lambda: calls["fast"].append(time.sleep(0.001)),
        "slow": lambda: calls["slow"].append(time.sleep(0.004)),
    }
    samples = bench.interleaved(variants, rounds=3, iters=4, warmup=2)
    assert {k: len(v) for k, v in samples.items()} == {"fast": 12, "slow": 12}
    assert len(calls["fast"]) == 14  # warm-up calls are not timed
    fast, slow = bench.stats(samples["fast"]), bench.stats(samples["slow"])
    assert fast["median_ms"] >= 1.0 and slow["median_ms"] >= 4.0
    assert slow["median_ms"] > fast["median_ms"]
    assert fast["median_ms"] <= fast["p90_ms"] <= fast["p99_ms"] and fast["n"] == 12


def test_bad_arguments():
    with pytest.raises(ValueError, match="rounds and iters"):
        bench.interleaved({"x": lambda: None}, rounds=0)


def test_write_results_stamps_and_is_atomic(tmp_path):
    import json

    path = bench.write_results(tmp_path / "out" / "r.json", {"benchmark": "t", "results": [1, 2]})
    data = json.loads(path.read_text())
    assert data["results"] == [1, 2] and data["environment"]["python"]
    assert len(data["load_average_1_5_15"]) == 3 and data["date"].startswith("20")
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_memory_reports_peak_rss():
    m = bench.memory()
    assert m["peak_rss_mib"] > 10


def test_batch_sweep_stops_at_out_of_memory():
    def run(n):
        if n >= 8:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return sum(range(1000 * n))

    r = bench.batch_sweep(run, batches=(1, 2, 4, 8, 16), iters=3)
    assert sorted(r["batches"]) == [1, 2, 4] and "largest that fit: 4" in r["stopped"]
    with pytest.raises(RuntimeError, match="other"):
        bench.batch_sweep(lambda n: (_ for _ in ()).throw(RuntimeError("other failure")), batches=(1,))


def test_results_json_carries_date_load_and_environment(tmp_path):
    import json

    path = bench.write_results(tmp_path / "r.json", {"benchmark": "x", "results": {"a": bench.stats([1.0, 2.0, 3.0])}})
    data = json.loads(path.read_text())
    assert data["benchmark"] == "x" and data["results"]["a"]["median_ms"] == 2.0
    assert data["date"].startswith("20") and len(data["load_average_1_5_15"]) == 3
    assert "python" in json.dumps(data["environment"]).lower()


def test_stage_timer_measures_the_block_and_appends_only_on_success():
    into = []
    with bench.stage_timer(into=into) as t:
        time.sleep(0.02)
    assert 19.0 <= t.ms < 1000.0 and into == [t.ms]
    assert t.device_ms is None  # no device: wall time only
    with pytest.raises(KeyError):
        with bench.stage_timer(into=into):
            raise KeyError("a failed stage")
    assert len(into) == 1, "a stage that raised must not leave a sample"


def test_stage_timer_on_the_cpu_device_is_wall_time():
    with bench.stage_timer("cpu") as t:
        time.sleep(0.005)
    assert t.ms >= 4.5 and t.device_ms is None


def test_stage_timer_on_cuda_waits_for_the_stream_and_reports_device_time():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    x = torch.randn(4096, 4096, device="cuda")
    with bench.stage_timer(x.device) as t:
        for _ in range(10):
            x = x @ x.T / 4096
    # The event wait means the GPU work is done when the block ends: the wall time covers it.
    assert t.device_ms > 0 and t.ms >= 0.9 * t.device_ms
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())  # x was written on the default stream
    with torch.cuda.stream(side), bench.stage_timer(x.device) as t2:
        y = x @ x.T  # timed on the stream it ran on
    assert t2.device_ms > 0 and side.query() and y.shape == x.shape


def test_compare_prints_the_gpus_that_env_probe_records():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import compare

    doc = {"date": "2026-01-01", "environment": {"platform": {"machine": "x86_64"},
                                                 "cuda": {"devices": [{"name": "NVIDIA H200"}],
                                                          "error": None}}}
    assert "NVIDIA H200" in compare.fingerprint(doc)
    assert "GPUs none" in compare.fingerprint({"environment": {"cuda": {"devices": [], "error": "no driver"}}})
