import numpy as np
import onnx
import pytest

from workbench import models
from workbench.errors import ModelError
from workbench.modelstats import compute_stats


@pytest.mark.parametrize("name, params_m, gflops", [
    # Published figures (torchvision / papers): parameters in millions, FLOPs = 2 x multiply-adds.
    ("resnet18", 11.69, 3.64),
    ("resnet50", 25.56, 8.2),
    ("mobilenetv2", 3.50, 0.60),
    ("squeezenet1.1", 1.24, 0.70),
])
def test_zoo_matches_published_architectures(project, name, params_m, gflops):
    stats = compute_stats(models.load(models.resolve(name)))
    assert stats.parameters / 1e6 == pytest.approx(params_m, rel=0.02)
    assert stats.gflops == pytest.approx(gflops, rel=0.05)


def test_bert_mini_shape_and_ops(project):
    model = models.load(models.resolve("bert-mini"))
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Erf", "MatMul", "Softmax", "Gather"} <= ops
    assert [s.name for s in models.input_specs(model)] == ["input_ids", "attention_mask"]
    assert models.output_specs(model)[0].shape == ("batch", 128, 256)
    inputs = models.sample_inputs(model, 2)
    assert inputs["input_ids"].shape == (2, 128) and inputs["input_ids"].max() < 30522
    assert (inputs["attention_mask"] == 1).all()


def test_zoo_generation_is_deterministic(project):
    from workbench.zoo import BUILDERS

    assert BUILDERS["mlp"]().SerializeToString() == BUILDERS["mlp"]().SerializeToString()


def test_sample_inputs_are_seeded(project):
    model = models.load(models.resolve("mlp"))
    a, b = models.sample_inputs(model, 8, seed=3), models.sample_inputs(model, 8, seed=3)
    assert a["input"].shape == (8, 64) and np.array_equal(a["input"], b["input"])
    assert not np.array_equal(a["input"], models.sample_inputs(model, 8, seed=4)["input"])


def test_dynamic_batch_becomes_static():
    spec = models.TensorSpec("x", "float32", ("batch", 3, 224, 224))
    assert spec.with_batch(8) == (8, 3, 224, 224)
    with pytest.raises(ModelError, match="dynamic dimensions"):
        models.TensorSpec("x", "float32", ("batch", "seq")).with_batch(1)


def test_missing_model(project):
    with pytest.raises(ModelError, match="not found"):
        models.resolve("no/such/model.onnx")


def test_not_onnx(project, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ModelError, match="is not an ONNX model"):
        models.load(models.resolve(str(bad)))


def test_user_models_are_listed(project):
    onnx.save(models.load(models.resolve("mlp")), project / "models" / "mine.onnx")
    assert [p.name for p in models.user_model_paths()] == ["mine.onnx"]
