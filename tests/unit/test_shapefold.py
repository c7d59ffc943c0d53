"""Shape arithmetic folds to constants at a variant's fixed shapes; float tensors and the model's
outputs are left alone, and the folded model computes what the original does."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from workbench.compiler.shapefold import fold_shape_arithmetic


def split_heads(output_is_shape: bool = False) -> onnx.ModelProto:
    """x [batch, seq, 8] -> [batch, seq, 4, 2], the target computed from Shape as torch exports it;
    plus a float Add of two constants, which is not shape arithmetic."""
    constants = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                 (("zero", 0), ("one", 1), ("axes", [0]), ("heads", [4, 2]))]
    constants += [numpy_helper.from_array(np.full(8, v, np.float32), n) for n, v in (("a", 1.0), ("b", 2.0))]
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["batch"]),
             helper.make_node("Gather", ["shape", "one"], ["seq"]),
             helper.make_node("Unsqueeze", ["batch", "axes"], ["batch_1d"]),
             helper.make_node("Unsqueeze", ["seq", "axes"], ["seq_1d"]),
             helper.make_node("Concat", ["batch_1d", "seq_1d", "heads"], ["target"], axis=0),
             helper.make_node("Add", ["a", "b"], ["bias"]),
             helper.make_node("Add", ["x", "bias"], ["shifted"]),
             helper.make_node("Reshape", ["shifted", "target"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4, 2])]
    if output_is_shape:
        outputs.append(helper.make_tensor_value_info("shape", TensorProto.INT64, [3]))
    graph = helper.make_graph(nodes, "heads", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            ["batch", "seq", 8])], outputs, constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_the_reshape_target_becomes_a_constant_and_the_result_is_unchanged():
    model = split_heads()
    folded = fold_shape_arithmetic(model, {"x": [2, 3, 8]})
    ops = [n.op_type for n in folded.graph.node]
    assert ops == ["Add", "Add", "Reshape"], ops
    target = next(t for t in folded.graph.initializer if t.name == "target")
    assert numpy_helper.to_array(target).tolist() == [2, 3, 4, 2]
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(folded, x)[0], _run(model, x)[0])


def test_a_shape_the_model_outputs_is_left_to_compute():
    folded = fold_shape_arithmetic(split_heads(output_is_shape=True), {"x": [2, 3, 8]})
    assert "Shape" in [n.op_type for n in folded.graph.node]


def test_a_model_without_shape_nodes_is_returned_as_it_is():
    model = split_heads()
    model.graph.node.remove(model.graph.node[0])  # no Shape: nothing to fold, not even the Gathers
    assert fold_shape_arithmetic(model, {"x": [2, 3, 8]}) is model


def test_a_dimension_left_unknown_is_not_folded():
    folded = fold_shape_arithmetic(split_heads(), {})  # no fixed shapes: batch and seq stay symbolic
    assert "Shape" in [n.op_type for n in folded.graph.node]
