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
