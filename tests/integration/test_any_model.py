"""Models we did not write (issue #32): fixed shapes compile without options (item 1), shape
outputs come back as arrays (item 5), a pass of ours that fails on a model falls back to the
pipeline without it (item 3), and TVM's own failures read as one line with a log (item 4)."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.commands.common import compile_request
from workbench.compiler.builder import compile_model
from workbench.compiler.importer import import_model, make_target, prepare
from workbench.engines.tvm_engine import tvm_engine
from workbench.errors import ModelError
from workbench.models import load, resolve, sample_inputs
from workbench.targets import get_profile

pytestmark = pytest.mark.build  # builds with TVM


def _save(project, name, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = project / "models" / f"{name}.onnx"
    onnx.save(model, path)
    return str(path)


def _compile(path, **layout):
    return compile_model(compile_request(path, "host", None, None, None, 1e-4, 1e-5, **layout))


def test_fixed_shape_gemm_with_a_fixed_b_compiles_without_options(project):
    f = TensorProto.FLOAT
    path = _save(project, "gemm", [helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1)],
                 [helper.make_tensor_value_info("a", f, [4, 3]), helper.make_tensor_value_info("b", f, [5, 3]),
                  helper.make_tensor_value_info("c", f, [5])], [helper.make_tensor_value_info("y", f, [4, 5])])
    manifest = _compile(path)  # the profile's batch sizes (1, 8) fit no input here: the model's own shapes
    assert manifest["batch_sizes"] == [1] and manifest["correctness"]["checked"]
    inputs = sample_inputs(load(resolve(path)), 1)
    (y,) = tvm_engine(project / "build" / "gemm" / "host").run(inputs)
    np.testing.assert_allclose(y, inputs["a"] @ inputs["b"].T + inputs["c"], rtol=1e-5, atol=1e-5)


def test_a_model_whose_output_is_a_shape_runs(project):
    f = TensorProto.FLOAT
    path = _save(project, "shape", [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Relu", ["x"], ["r"])],
                 [helper.make_tensor_value_info("x", f, [3, 4, 5])],
                 [helper.make_tensor_value_info("s", TensorProto.INT64, [3]),
                  helper.make_tensor_value_info("r", f, [3, 4, 5])])
    compile_model(compile_request(path, "host", "3", None, None, 1e-4, 1e-5))  # the gate checks the shape
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype("float32")
    shape, relu = tvm_engine(project / "build" / "shape" / "host").run({"x": x})
    assert shape.dtype == np.int64 and shape.tolist() == [3, 4, 5]
    np.testing.assert_array_equal(relu, np.maximum(x, 0))


def _conv_then_min(project) -> str:
    """TVM's ConvertLayout (our channels-last pass) fails on a Min after a convolution ("Invalid
    SLayout"); stock TVM builds the model."""
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4, 3, 3)).astype("float32"), "w")
    f = TensorProto.FLOAT
    return _save(project, "convmin", [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                                      helper.make_node("Min", ["c", "z"], ["y"])],
                 [helper.make_tensor_value_info(name, f, [1, 4, 8, 8]) for name in ("x", "z")],
                 [helper.make_tensor_value_info("y", f, [1, 4, 8, 8])], [weights])


def test_a_pass_that_fails_falls_back_with_one_warning(project, capsys):
    path = _conv_then_min(project)
    manifest = _compile(path)
    warnings = [line for line in capsys.readouterr().err.replace("\n", " ").split("warning:") if "pass" in line]
    assert len(warnings) == 1 and "channels-last" in warnings[0], warnings
    lowering = manifest["tuning"]["lowering"]
    assert "channels-last" not in lowering["passes"] and "prepack" in lowering["passes"]
    assert lowering["skipped"]["channels-last"].startswith("failed: ")
    kept = json.loads((project / "tuning_logs" / "host" / "lowering.json").read_text())
    assert list(kept.values()) == [lowering]  # tune reads the same choice
    # --no-layout-pass: channels-last off by hand, nothing fails, nothing to warn about
    manifest = _compile(path, layout=False)
    assert "pass" not in capsys.readouterr().err
    assert manifest["tuning"]["lowering"]["skipped"]["channels-last"] == "off (--no-layout-pass)"


def test_a_pass_that_fails_in_the_build_falls_back_with_one_warning(project, capsys):
    """Prepacking a MatMul's weights is fine; TVM's rewrite of the ScatterElements kernel beside it
    fails in the build ("There should be a compute block ..."), where stock TVM builds it."""
    f = TensorProto.FLOAT
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 8)).astype("float32"), "w")
    indices = numpy_helper.from_array(np.array([[1, 3], [0, 2]], dtype=np.int64), "idx")
    path = _save(project, "matscatter", [helper.make_node("MatMul", ["x", "w"], ["h"]),
                                         helper.make_node("ScatterElements", ["h", "idx", "u"], ["y"], axis=1)],
                 [helper.make_tensor_value_info("x", f, [2, 8]), helper.make_tensor_value_info("u", f, [2, 2])],
                 [helper.make_tensor_value_info("y", f, [2, 8])], [weights, indices])
    manifest = compile_model(compile_request(path, "host", "2", None, None, 1e-4, 1e-5))  # its own batch
    warnings = [line for line in capsys.readouterr().err.replace("\n", " ").split("warning:") if "pass" in line]
    assert len(warnings) == 1 and "prepack" in warnings[0], warnings
    assert manifest["tuning"]["lowering"]["passes"] == [] and manifest["correctness"]["checked"]
    assert manifest["tuning"]["lowering"]["skipped"]["prepack"].startswith("failed in the build")


def test_a_tvm_failure_is_one_line_with_a_log(project):
    from workbench.compiler.failures import compiling

    model = load(resolve(_conv_then_min(project)))
    target = make_target(get_profile("host").resolved_target())
    with pytest.raises(ModelError) as failed, compiling(model):
        prepare(import_model(model, 1), target, ("channels-last",))  # the pass forced where it fails
    message = str(failed.value)
    assert "\n" not in message and message.startswith("TVM failed to lower the model")
    assert "Invalid SLayout" in message and "--no-layout-pass" in message and "another opset" in message
    log = message.rsplit("TVM's full message: ", 1)[1]
    assert "Check failed" in open(log).read()


def test_onnx_node_tests_of_converted_operators_match(project):
    """A few of scripts/onnx_node_tests.py's tests: operators our converters add or fix."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "onnx_node_tests.py"
    spec = importlib.util.spec_from_file_location("onnx_node_tests", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cases = script._cases()
    for name in ("test_tile", "test_celu", "test_onehot_with_axis", "test_layer_normalization_2d_axis0",
                 "test_gru_seq_length", "test_lstm_with_peepholes"):
        result = script.run_one(cases[name], project)
        assert result["outcome"] == "matched", result
    refused = script.run_one(cases["test_gru_batchwise"], project)  # a form we do not convert: our one line
    assert refused["outcome"] == "refused" and "workbench's converter at operator GRU" in refused["detail"], refused


def test_an_import_failure_names_and_cuts_out_the_node_that_failed(project):
    """Two MaxUnpools: TVM's importer takes the first and fails on the second (an output_shape
    input); the message names the second and the model cut out for a report holds it, not the first."""
    from workbench.compiler.failures import compiling

    indices = numpy_helper.from_array(np.array([[[[0, 3], [8, 11]]]], np.int64), "indices")
    shape = numpy_helper.from_array(np.array([1, 1, 4, 4], np.int64), "output_shape")
    unpool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [helper.make_node("MaxUnpool", ["x", "indices"], ["plain"], name="first", **unpool),
             helper.make_node("MaxUnpool", ["x", "indices", "output_shape"], ["shaped"], name="second", **unpool)]
    path = _save(project, "unpools", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                 [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, 1, 4, 4]) for o in ("plain", "shaped")],
                 [indices, shape])
    model = load(resolve(path))
    with pytest.raises(ModelError) as failed, compiling(model):
        import_model(model, 1)
    message = str(failed.value)
    assert "at operator MaxUnpool (node 'second')" in message, message
    cut = onnx.load(message.split("report it to Apache TVM with ", 1)[1].split(";", 1)[0])
    assert [n.name for n in cut.graph.node] == ["second"], cut.graph.node
