"""The correctness gate end to end: ONNX's own node tests whose outputs hold NaN pass it, and a model
ONNX Runtime refuses ends in one line instead of a traceback."""

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers import assert_one_line_error, workbench_cli
from workbench import reference
from workbench.models import ModelSource, load, sample_inputs

pytestmark = pytest.mark.build  # builds or tunes with TVM


@pytest.fixture(scope="module")
def node_tests(tmp_path_factory):
    from onnx.backend.test.case.node import collect_testcases

    wanted = ("test_sqrt", "test_log", "test_pow")
    folder = tmp_path_factory.mktemp("node")
    with warnings.catch_warnings():  # the cases compute 1/0 and friends on purpose
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases(None) if c.name in wanted]
    for case in cases:
        onnx.save(case.model, folder / f"{case.name}.onnx")
    assert len(cases) == len(wanted)
    return folder


@pytest.mark.parametrize("name", ["test_sqrt", "test_log", "test_pow"])
def test_onnx_node_tests_with_nan_outputs_pass_the_gate(project, node_tests, name):
    path = node_tests / f"{name}.onnx"
    # the gate's seeded normal inputs are negative in places, so ONNX Runtime's outputs hold NaN there
    expected = reference.run(path, sample_inputs(load(ModelSource(name, path, builtin=False)), 3))
    assert np.isnan(expected[0]).any()
    done = workbench_cli("compile", "--model", str(path), "--target", "host", "--batch-sizes", "3", home=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Correctness gate passed" in done.stdout


def _float64_tan(path):
    """Valid ONNX that TVM compiles and ONNX Runtime has no kernel for (Tan on doubles)."""
    graph = helper.make_graph([helper.make_node("Tan", ["x"], ["y"])], "tan",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_onnx_runtime_refusing_the_model_is_one_line(project, tmp_path):
    path = _float64_tan(tmp_path / "tan64.onnx")
    with pytest.raises(reference.OnnxRuntimeError, match=r"^ONNX Runtime cannot load tan64.onnx: .*NOT_IMPLEMENTED"):
        reference.run(path, {"x": np.zeros((1, 4))})
    done = workbench_cli("compile", "--model", str(path), "--target", "host", "--batch-sizes", "1", home=project)
    assert_one_line_error(done.returncode, done.stdout + done.stderr, "ONNX Runtime cannot load tan64.onnx",
                          "NOT_IMPLEMENTED", "upgrade onnxruntime")


def test_onnx_runtime_failing_to_run_is_one_line(tmp_path):
    path = _float64_tan(tmp_path / "tan64.onnx")
    graph = onnx.load(path).graph
    graph.node[0].op_type = "Sin"  # ONNX Runtime has Sin for doubles: it loads, then gets a wrong input
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(reference.OnnxRuntimeError, match=r"^ONNX Runtime cannot run tan64.onnx: .*"):
        reference.run(path, {"x": np.zeros((1, 4), np.float32)})
