"""helpers.trt: the engine cache's key and its atomic, checksummed storage work without
TensorRT; the engine paths run wherever TensorRT and a GPU are present."""

import hashlib
import json

import pytest

from helpers import trt


def key(**changes):
    fields = dict(onnx_sha256="ab" * 32, precision="int8", gpu="Orin", compute_capability="8.7",
                  tensorrt="10.3.0", max_batch=1)
    fields.update(changes)
    return trt.EngineKey(**fields)


def test_key_changes_with_every_field():
    base = key().digest
    for change in ({"onnx_sha256": "cd" * 32}, {"precision": "fp16"}, {"gpu": "RTX 4090"},
                   {"compute_capability": "8.9"}, {"tensorrt": "11.0.0"}, {"max_batch": 8},
                   {"build": trt.build_text(2.0, True, False, 1, None)}):
        assert key(**change).digest != base, change


def test_key_reads_the_onnx_checksum(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really onnx")
    k = trt.EngineKey.for_model(model, "fp32", gpu="X", compute_capability="9.0", tensorrt_version="10.3")
    assert k.onnx_sha256 == hashlib.sha256(b"not really onnx").hexdigest()
    with pytest.raises(ValueError, match="precision"):
        trt.EngineKey.for_model(model, "int4", gpu="X", compute_capability="9.0", tensorrt_version="10.3")


def test_store_then_load_round_trips(tmp_path):
    cache = trt.EngineCache(tmp_path)
    path = cache.store(key(), b"plan bytes", "det")
    assert path.exists() and cache.load(key(), "det") == b"plan bytes"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_corrupt_plan_is_deleted_and_reported(tmp_path):
    cache = trt.EngineCache(tmp_path)
    plan_path = cache.store(key(), b"plan bytes", "det")
    plan_path.write_bytes(b"plan bytez")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert cache.load(key(), "det") is None
    assert not plan_path.exists()


def test_stale_plan_for_another_tensorrt_or_gpu_is_rebuilt(tmp_path):
    cache = trt.EngineCache(tmp_path)
    plan_path, meta_path = cache.paths(key(), "det")
    cache.store(key(), b"plan", "det")
    meta = json.loads(meta_path.read_text())
    meta["key"]["tensorrt"] = "10.0.1"  # as if an older TensorRT had written this file
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="different tensorrt"):
        assert cache.load(key(), "det") is None


def test_plan_without_sidecar_is_not_trusted(tmp_path):
    cache = trt.EngineCache(tmp_path)
    plan_path, meta_path = cache.paths(key(), "det")
    cache.store(key(), b"plan", "det")
    meta_path.unlink()
    with pytest.warns(RuntimeWarning, match="missing"):
        assert cache.load(key(), "det") is None
    assert not plan_path.exists()


def test_available_names_the_reason():
    why = trt.available()
    if why:
        assert "tensorrt" in why.lower() or "cuda" in why.lower()
        with pytest.raises(RuntimeError, match="cannot run here"):
            trt.TensorRT(b"")


@pytest.mark.skipif(bool(trt.available()), reason=f"TensorRT not usable here: {trt.available()}")
def test_engine_builds_runs_and_caches(tmp_path):
    import torch

    from helpers import export

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval().cuda()
    onnx_path = export.export_onnx(model.cpu(), torch.zeros(1, 3, 32, 32), tmp_path / "tiny.onnx")
    plan, facts = trt.build_engine(onnx_path, "fp32", max_batch=4, cache_dir=tmp_path)
    assert not facts["cached"]
    assert trt.build_engine(onnx_path, "fp32", max_batch=4, cache_dir=tmp_path)[1]["cached"]
    x = torch.rand(2, 3, 32, 32, device="cuda")
    with trt.TensorRT(plan) as rt:
        out, = rt.run(x)
    torch.testing.assert_close(out, model.cuda()(x), atol=1e-3, rtol=1e-3)


def test_build_settings_are_part_of_the_key():
    """A changed workspace, typing mode, FP16 flag or profile never reuses an old plan."""
    base = trt.build_text(1.0, True, False, 4, None)
    variants = [trt.build_text(2.0, True, False, 4, None), trt.build_text(1.0, False, False, 4, None),
                trt.build_text(1.0, False, True, 4, None), trt.build_text(1.0, True, False, 8, None),
                trt.build_text(1.0, True, False, 4, {"images": ((1, 3, 300, 300),) * 3})]
    assert len({base, *variants}) == 6
    assert "workspace=1GiB" in base and "typing=strong" in base and "profile=batch:1/2/4" in base


@pytest.mark.parametrize("sidecar", ["[1, 2, 3]", '"a string"', '{"no_key": 1}', "{not json"])
def test_a_corrupt_sidecar_takes_the_rebuild_path(tmp_path, sidecar):
    cache = trt.EngineCache(tmp_path)
    plan_path, meta_path = cache.paths(key(), "det")
    cache.store(key(), b"plan", "det")
    meta_path.write_text(sidecar)
    with pytest.warns(RuntimeWarning, match="stale or corrupt"):
        assert cache.load(key(), "det") is None
    assert not plan_path.exists() and not meta_path.exists()
    cache.store(key(), b"plan", "det")  # and the rebuild can be stored again
    assert cache.load(key(), "det") == b"plan"


def test_a_corrupt_onnx_file_is_named_not_a_protobuf_error(tmp_path):
    bad = tmp_path / "det_int8.onnx"
    bad.write_bytes(b"\x08\x07\x12\xff\xff garbage" * 20)
    with pytest.raises(ValueError, match="not a readable ONNX model.*export again"):
        trt.check_qdq(bad)
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        trt.build_engine(bad, precision="fp32", cache_dir=tmp_path / "engines")


@pytest.mark.parametrize("text, expected", [
    ("Half", "fp16"), ("Int8", "int8"), ("Float", "fp32"),                       # no context attached
    ("Row major linear FP16 format", "fp16"),                                   # 10.x with a context
    ("Channel major FP16 format where channel % 8 == 0", "fp16"),
    ("Row major linear FP32", "fp32"), ("Four wide channel vectorized row major Int8 format", "int8"),
])
def test_inspector_precision_is_read_from_the_words_not_the_last_one(text, expected):
    assert trt.binding_precision({"Name": "x", "Format/Datatype": text}) == expected
    assert trt.binding_precision({"Name": "x", "Datatype": text}) == expected  # a renamed field
    assert trt.binding_precision({"Name": "Half-res branch"}) == "?"  # names are not types


def test_tensorrt_runtime_shares_the_runtime_base_and_fp32_is_tf32_free():
    from helpers import runtimes

    # One base for every runtime: close(), the context manager and the closed-runtime error.
    assert issubclass(trt.TensorRT, runtimes._Base)
    assert "__enter__" not in vars(trt.TensorRT) and "__exit__" not in vars(trt.TensorRT)
    assert "dtype" in runtimes.Runtime.__annotations__
    # TF32 is part of the engine's cache key: an FP32 engine built with it off is never
    # confused with one that rounds its products to TF32.
    off = trt.build_text(1.0, True, False, 1, None, tf32=False)
    assert "tf32=off" in off and off != trt.build_text(1.0, True, False, 1, None, tf32=True)
