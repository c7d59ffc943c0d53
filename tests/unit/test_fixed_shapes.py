"""Fixed shapes as they are (issue #32, item 1): which inputs --batch-sizes applies to, and a hint
that cannot loop."""

import pytest
from onnx import TensorProto, helper

from workbench import models
from workbench.errors import ModelError


def _model(*inputs):
    values = [helper.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in inputs]
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name, _, _ in inputs]
    outputs = [helper.make_tensor_value_info(f"{name}_out", dtype, shape) for name, dtype, shape in inputs]
    return helper.make_model(helper.make_graph(nodes, "m", values, outputs),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_inputs_with_different_fixed_leading_dims_compile_at_their_own_shapes():
    model = _model(("a", TensorProto.FLOAT, [4, 3]), ("b", TensorProto.FLOAT, [5, 4]))
    assert models.batch_sizes(model, None, (1, 8)) == (1,)  # the profile's sizes do not apply
    assert {k: v.shape for k, v in models.sample_inputs(model, 1).items()} == {"a": (4, 3), "b": (5, 4)}
    for asked in ((4,), (5,)):  # neither size sends the user to the other one
        with pytest.raises(ModelError, match="leave --batch-sizes out") as refused:
            models.batch_sizes(model, asked, (1, 8))
        assert "use --batch-sizes" not in str(refused.value)


def test_a_zero_dimension_is_never_offered_as_a_batch_size():
    model = _model(("x", TensorProto.FLOAT, [0, 3]))
    assert models.batch_sizes(model, None, (1, 8)) == (1,)
    with pytest.raises(ModelError) as refused:
        models.batch_sizes(model, (8,), (1, 8))
    assert "--batch-sizes 0" not in str(refused.value)
    assert models.sample_inputs(model, 1)["x"].shape == (0, 3)


def test_batch_sizes_apply_only_to_inputs_with_a_dynamic_leading_dimension():
    model = _model(("x", TensorProto.FLOAT, ["N", 3]), ("scale", TensorProto.FLOAT, [3]),
                   ("axes", TensorProto.INT64, [2]))
    assert models.batch_sizes(model, None, (1, 8)) == (1, 8)
    assert models.batch_sizes(model, (2, 4), (1, 8)) == (2, 4)
    shapes = {k: v.shape for k, v in models.sample_inputs(model, 8).items()}
    assert shapes == {"x": (8, 3), "scale": (3,), "axes": (2,)}


def test_a_fixed_batch_model_keeps_its_batch():
    model = _model(("x", TensorProto.FLOAT, [4, 16]))
    assert models.batch_sizes(model, None, (1, 8)) == (4,)
    assert models.batch_sizes(model, (4,), (1, 8)) == (4,)
