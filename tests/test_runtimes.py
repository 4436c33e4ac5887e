"""Runtimes and export on the real MobileNetV2 weights and real ONNX Runtime sessions (no mocks).

The export (~15 s) and the INT8 quantization run once per module and are shared.
"""

import os
import re

import numpy as np
import onnx
import pytest
import torch

from helpers import assets, export, models, runtimes

CATS = range(281, 286)  # ImageNet's domestic cats


@pytest.fixture(scope="module")
def model(offline):
    return models.mobilenet_v2()


@pytest.fixture(scope="module")
def chelsea(offline):
    return models.imagenet_batch(assets.load_image("photo_chelsea"))


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def fp32_path(model, chelsea, onnx_dir):
    return export.export_onnx(model, chelsea, onnx_dir / "mobilenet_v2.onnx", output_names=["logits"])


@pytest.fixture(scope="module")
def int8_path(fp32_path, onnx_dir, offline):
    from helpers.synth import Scene

    names = ["photo_astronaut", "photo_coffee", "photo_rocket", "texture_brick", "texture_grass", "texture_gravel"]
    frames = [assets.load_image(n) for n in names]
    scene = Scene(size=(640, 480), length=20, seed=5)
    frames += [scene.frame(i).noisy for i in range(0, 20, 4)]
    return export.quantize_int8(fp32_path, onnx_dir / "mobilenet_v2_int8.onnx", [models.imagenet_batch(f) for f in frames],
                                **export.MOBILENET_V2_INT8)


@pytest.fixture(scope="module")
def ort_fp32(fp32_path):
    with runtimes.OnnxRuntime(fp32_path, intra_op_threads=2) as rt:
        yield rt


def test_export_is_one_checked_file_with_dynamic_batch(fp32_path, onnx_dir, ort_fp32, chelsea):
    assert sorted(p.name for p in onnx_dir.iterdir() if p.name.startswith("mobilenet_v2.")) == ["mobilenet_v2.onnx"]
    loaded = onnx.load(str(fp32_path), load_external_data=False)
    onnx.checker.check_model(loaded)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in loaded.graph.initializer)
    batch_dim = loaded.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")
    assert ort_fp32.run(chelsea)[0].shape == (1, 1000)
    assert ort_fp32.run(torch.cat([chelsea] * 3))[0].shape == (3, 1000)


def test_ort_fp32_matches_eager(model, ort_fp32, chelsea):
    with runtimes.TorchEager(model) as eager:
        reference, = eager.run(chelsea)
    logits, = ort_fp32.run(chelsea)
    assert isinstance(logits, torch.Tensor) and logits.device == chelsea.device and logits.dtype == torch.float32
    assert (logits - reference).abs().max().item() < 1e-4
    assert int(logits.argmax()) in CATS


def test_channels_last_matches_eager(chelsea, offline):
    with runtimes.TorchEager(models.mobilenet_v2()) as nchw, \
            runtimes.TorchEager(models.mobilenet_v2(), channels_last=True) as nhwc:
        assert (nchw.run(chelsea)[0] - nhwc.run(chelsea)[0]).abs().max().item() < 1e-4


def test_int8_qdq_keeps_the_cat(int8_path, ort_fp32, chelsea):
    ops = {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    with runtimes.OnnxRuntime(int8_path, intra_op_threads=2) as int8:
        top1 = int(int8.run(chelsea)[0].argmax())
    assert top1 == int(ort_fp32.run(chelsea)[0].argmax())
    assert top1 in CATS


def test_graph_summary(fp32_path, int8_path, model):
    s = export.graph_summary(fp32_path)
    assert s["file_bytes"] == os.path.getsize(fp32_path)
    assert s["opset"] >= 17 and s["nodes"] == sum(s["ops"].values())
    assert s["ops"]["Conv"] == 52 and "BatchNormalization" not in s["ops"]  # BN folded into Conv
    torch_params = sum(p.numel() for p in model.parameters())
    assert abs(s["parameters"] - torch_params) / torch_params < 0.01  # folding BN drops only its scale
    assert s["inputs"] == [{"name": "images", "shape": ["batch", 3, 224, 224], "dtype": "float32"}]
    assert s["outputs"] == [{"name": "logits", "shape": ["batch", 1000], "dtype": "float32"}]
    assert not s["external_data"] and not s["quantized"]
    q = export.graph_summary(int8_path)
    assert q["quantized"] and "evw.int8_recipe" in q["metadata"]
    assert q["parameter_bytes"] < s["parameter_bytes"] / 3  # int8 weights: about 4x smaller


def test_make_runtime_picks_each_kind(model, fp32_path, chelsea):
    built = {kind: runtimes.make_runtime(kind, model=models.mobilenet_v2(), onnx_path=fp32_path)
             for kind in ("torch", "torch-channels-last", "torch-compile", "onnxruntime")}
    assert type(built["torch"]) is runtimes.TorchEager and not built["torch"].channels_last
    assert built["torch-channels-last"].channels_last
    assert isinstance(built["torch-compile"], runtimes.TorchCompile)  # compiles lazily: not run here
    assert isinstance(built["onnxruntime"], runtimes.OnnxRuntime)
    for kind in ("torch", "torch-channels-last", "onnxruntime"):
        out = built[kind].run(chelsea)
        assert isinstance(out, tuple) and int(out[0].argmax()) in CATS
    for rt in built.values():
        assert isinstance(rt, runtimes.Runtime)
        rt.close()
    with pytest.raises(ValueError, match="converted INT8 model"):
        runtimes.make_runtime("torch-int8", model=model)
    with pytest.raises(ValueError, match="unknown runtime kind 'tensorflow'"):
        runtimes.make_runtime("tensorflow", model=model)
    with pytest.raises(ValueError, match="onnx_path"):
        runtimes.make_runtime("onnxruntime", model=model)


def test_closed_runtime_refuses_to_run(fp32_path, chelsea):
    with runtimes.OnnxRuntime(fp32_path) as rt:
        pass
    assert rt.session is None
    with pytest.raises(RuntimeError, match="closed"):
        rt.run(chelsea)


def test_compile_needs_cuda_for_cuda_graphs(model):
    with pytest.raises(ValueError, match="CUDA"):
        runtimes.TorchCompile(models.mobilenet_v2(), mode="reduce-overhead", device="cpu")


def test_missing_onnx_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "model.onnx"
    for call in (lambda: runtimes.OnnxRuntime(missing), lambda: export.graph_summary(missing),
                 lambda: export.quantize_int8(missing, tmp_path / "q.onnx", [np.zeros((1, 3, 8, 8), np.float32)])):
        with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
            call()
    assert not (tmp_path / "q.onnx").exists()


def test_corrupt_onnx_file_is_a_clear_error(tmp_path, fp32_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(fp32_path.read_bytes()[:5000])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match="not a valid ONNX model"):
            runtimes.OnnxRuntime(bad)
        with pytest.raises(ValueError, match=r"could not be parsed|fails the ONNX checker"):
            export.graph_summary(bad)


def test_wrong_input_is_a_value_error_naming_both(ort_fp32, chelsea):
    with pytest.raises(ValueError, match=r"expects shape \('dynamic', 3, 224, 224\); found \(1, 3, 200, 200\)"):
        ort_fp32.run(torch.zeros(1, 3, 200, 200))
    with pytest.raises(ValueError, match="expects dtype torch.float32; found torch.float64"):
        ort_fp32.run(chelsea.double())
    with pytest.raises(ValueError, match=r"4-D NCHW batch; found shape \(3, 224, 224\)"):
        ort_fp32.run(chelsea[0])
    with pytest.raises(ValueError, match="torch.Tensor"):
        ort_fp32.run(chelsea.numpy())


def test_export_refuses_a_training_model(tmp_path, chelsea, offline):
    training = models.mobilenet_v2().train()
    with pytest.raises(ValueError, match=r"model.eval\(\)"):
        export.export_onnx(training, chelsea, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_torch_int8_keeps_the_cat(chelsea, offline):
    from helpers.synth import Scene

    frames = [assets.load_image("photo_coffee"), Scene(size=(640, 480), length=1, seed=5).frame(0).noisy]
    int8 = export.torch_int8_mobilenet_v2([models.imagenet_batch(f) for f in frames])
    with runtimes.make_runtime("torch-int8", model=int8) as rt:
        logits, = rt.run(chelsea)
    assert rt.name.startswith("torch-int8-") and logits.dtype == torch.float32 and int(logits.argmax()) in CATS
