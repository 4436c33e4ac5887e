"""The runtime matrix: every kind this machine has through the same run(), an artifact cache
keyed by what the files depend on, and skips with reasons."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import matrix, metrics, runtimes


class TwoHeads(nn.Module):
    """A detector-shaped network: two outputs of different shapes, like box encodings and logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
        self.boxes, self.logits = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 3, 1)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.boxes(h).flatten(2).transpose(1, 2), self.logits(h).flatten(2).transpose(1, 2)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def calibration():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(1, 3, 32, 32, generator=g) for _ in range(4)]


@pytest.fixture(scope="module")
def built(net, calibration, tmp_path_factory):
    cache = tmp_path_factory.mktemp("matrix")
    m = matrix.build(net, torch.zeros(1, 3, 32, 32), kinds=tuple(matrix.KINDS), cache_dir=cache,
                     calibration=calibration, recipe={"calibrate_method": "minmax"},
                     output_names=["boxes", "logits"])
    yield m, cache
    m.close()


def test_every_available_kind_keeps_the_runtime_contract(built, net):
    m, _ = built
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        want = net(x)
    # Here: eager, channels_last, ORT FP32/INT8 at least; the rest are skips with reasons.
    assert {"eager", "channels-last", "ort-fp32", "ort-int8"} <= set(m)
    assert set(m) | {s.kind for s in m.skipped} == set(matrix.KINDS)
    for kind, rt in m.items():
        assert isinstance(rt, runtimes.Runtime), kind
        out = rt.run(x.to(rt.device, rt.dtype))
        assert isinstance(out, tuple) and len(out) == 2, kind
        for got, ref in zip(out, want):
            assert isinstance(got, torch.Tensor) and got.device == rt.device, kind
            assert got.dtype == ref.dtype or m.precision(kind) == "fp16", kind
            assert tuple(got.shape) == tuple(ref.shape), kind
            assert not got.requires_grad
        if m.precision(kind) == "fp32":
            torch.testing.assert_close(out[1].float().cpu(), want[1], atol=1e-4, rtol=1e-4)


def test_skips_are_structured_and_say_why(built):
    m, _ = built
    for skip in m.skipped:
        assert skip.kind in matrix.KINDS and len(skip.reason) > 10
        assert str(skip).startswith(f"{matrix.KINDS[skip.kind][0]}: skipped - ")
    if not torch.cuda.is_available():
        reasons = {s.kind: s.reason for s in m.skipped}
        assert "CUDA" in reasons["cuda-graphs"] and "CUDA" in reasons["ort-cuda-fp32"]
        assert "tensorrt" in reasons["trt-fp32"].lower()
        with pytest.raises(KeyError, match="no 'trt-int8' runtime in this matrix: "):
            m["trt-int8"]


def test_int8_drift_goes_through_the_one_judge(built):
    m, _ = built
    x = torch.rand(8, 3, 32, 32)
    ref = m["eager"].run(x)[1].flatten(0, 1).numpy()
    int8 = m["ort-int8"].run(x)[1].flatten(0, 1).numpy()
    verdict = metrics.judge({"top1": float((ref.argmax(1) == int8.argmax(1)).mean())}, m.precision("ort-int8"),
                            "classification")
    assert m.precision("ort-int8") == "int8" and set(verdict["checks"]) == {"top1"}


def test_artifacts_are_reused_only_for_the_same_recipe(built, net, calibration):
    m, cache = built
    before = dict(m.artifacts)
    assert set(before) == {"fp32", "int8-onnxruntime"}
    kinds = ("ort-fp32", "ort-int8")
    with matrix.build(net, torch.zeros(1, 3, 32, 32), kinds=kinds, cache_dir=cache, calibration=calibration,
                      recipe={"calibrate_method": "minmax"}, output_names=["boxes", "logits"]) as again:
        assert again.artifacts == before
        assert before["int8-onnxruntime"].stat().st_mtime_ns == again.artifacts["int8-onnxruntime"].stat().st_mtime_ns
    with matrix.build(net, torch.zeros(1, 3, 32, 32), kinds=kinds, cache_dir=cache, calibration=calibration,
                      recipe={"calibrate_method": "mean-minmax"}, output_names=["boxes", "logits"]) as changed:
        assert changed.artifacts["fp32"] == before["fp32"]  # the export does not depend on the recipe
        assert changed.artifacts["int8-onnxruntime"] != before["int8-onnxruntime"]
    retrained = TwoHeads().eval()
    with matrix.build(retrained, torch.zeros(1, 3, 32, 32), kinds=("ort-fp32",), cache_dir=cache,
                      output_names=["boxes", "logits"]) as other:
        assert other.artifacts["fp32"] != before["fp32"]


def test_a_corrupt_artifact_is_rebuilt(net, tmp_path):
    kw = dict(kinds=("ort-fp32",), cache_dir=tmp_path, output_names=["boxes", "logits"])
    with matrix.build(net, torch.zeros(1, 3, 32, 32), **kw) as m:
        path = m.artifacts["fp32"]
    path.write_bytes(b"truncated")
    with matrix.build(net, torch.zeros(1, 3, 32, 32), **kw) as m:
        assert m.artifacts["fp32"] == path and path.stat().st_size > 1000
        m["ort-fp32"].run(torch.rand(1, 3, 32, 32))


def test_int8_without_calibration_is_a_skip_not_a_crash(net, tmp_path):
    with matrix.build(net, torch.zeros(1, 3, 32, 32), kinds=("eager", "ort-int8"), cache_dir=tmp_path) as m:
        assert list(m) == ["eager"]
        assert "calibration" in m.skipped[0].reason


def test_bad_requests_are_named(net, tmp_path):
    with pytest.raises(ValueError, match="unknown runtime kinds \\['tensorrt-fp64'\\]"):
        matrix.build(net, torch.zeros(1, 3, 32, 32), kinds=("tensorrt-fp64",), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="one NCHW batch"):
        matrix.build(net, np.zeros((1, 3, 32, 32)), cache_dir=tmp_path)


def test_the_cache_key_covers_code_weights_recipe_and_tools(net):
    base = matrix.weights_digest(net, {"recipe": 1})
    assert base == matrix.weights_digest(net, {"recipe": 1})
    assert base != matrix.weights_digest(net, {"recipe": 2})
    assert set(matrix.tool_versions()) == {"torch", "onnx", "onnxruntime", "tensorrt"}
    assert "class TwoHeads" in matrix.network_code(net)


def test_ort_io_binding_keeps_outputs_where_the_batch_is(built):
    m, _ = built
    path = m.artifacts["fp32"]
    x = torch.rand(3, 3, 32, 32)
    with runtimes.OnnxRuntime(path) as plain, runtimes.OnnxRuntime(path, io_binding=True) as bound:
        assert not plain.io_binding and bound.io_binding
        for a, b in zip(plain.run(x), bound.run(x)):
            torch.testing.assert_close(a, b)
        # a second shape learns its own output shapes
        assert bound.run(x[:1])[0].shape[0] == 1


def test_polygraphy_check_is_a_skip_without_its_tools(built):
    m, _ = built
    result = matrix.polygraphy_check(m.artifacts["fp32"])
    assert "skipped" in result or "ok" in result


class Unexportable(nn.Module):
    """Data-dependent control flow: torch.export refuses it, eager runs it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        if y.sum() > 0:
            return y
        return -y


def test_a_failed_export_skips_the_onnx_kinds_and_keeps_the_rest(tmp_path):
    kinds = ("eager", "ort-fp32", "ort-int8")
    calib = [torch.rand(1, 3, 16, 16)]
    with matrix.build(Unexportable().eval(), torch.rand(1, 3, 16, 16), kinds, cache_dir=tmp_path,
                      calibration=calib) as m:
        assert list(m) == ["eager"]
        reasons = {s.kind: s.reason for s in m.skipped}
        assert set(reasons) == {"ort-fp32", "ort-int8"}
        assert all(r.startswith("building it failed: RuntimeError: torch.onnx.export failed") for r in reasons.values())
    assert not list(tmp_path.glob("*.onnx"))  # nothing half-written
