"""Winograd F(2x2, 3x3): which convolutions are rewritten, and the result against ONNX Runtime."""

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.compiler.builder import CompileRequest, compile_model
from workbench.compiler.importer import import_model, make_target, prepare
from workbench.engines.compiled import CompiledModel
from workbench.models import load, resolve, sample_inputs
from workbench.reference import compare
from workbench.reference import run as run_reference
from workbench.targets import get_profile

pytestmark = pytest.mark.build  # builds or tunes with TVM

CHANNELS = 128  # the smallest the rewrite takes (winograd.pays)


def _residual_block_model(path):
    """A resnet basic block on a 7x7 map (odd: the last 2x2 tiles hang over the edge), then a
    stride-2 3x3 and a 1x1 convolution, which stay direct."""
    rng = np.random.default_rng(11)
    c = CHANNELS
    shapes = {"w1": (c, c, 3, 3), "w2": (c, c, 3, 3), "w_s2": (c, c, 3, 3), "w_1x1": (c, c, 1, 1)}
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.05).astype(np.float32), n) for n, s in shapes.items()]
    inits += [numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), f"b{i}") for i in (1, 2)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "x"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["r2"]),
        helper.make_node("Conv", ["r2", "w_s2"], ["s2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["s2", "w_1x1"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "block",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", c, 7, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", c, 4, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return resolve(str(path))


def test_cpu_3x3_stride_1_convolutions_become_winograd_and_match_onnx_runtime(project):
    source = _residual_block_model(project / "models" / "block.onnx")
    mod = prepare(import_model(load(source), 2), make_target(get_profile("host").resolved_target()))
    calls = re.findall(r"R.call_tir\((\w+)", mod["main"].script())
    # The two stride-1 3x3 convolutions: an input transform each, a kernel of its own (anything
    # fused into it would be in its name), a multiply, and an output transform that took the
    # bias, the residual add and the ReLU.
    packs = [c for c in calls if "data_pack" in c]
    assert len(packs) == 2 and all(c.startswith("winograd_data_pack") for c in packs), calls
    assert sum("matmul" in c for c in calls) == 2, calls
    assert sum(c.startswith("fused_winograd_inverse") and "relu" in c for c in calls) == 2, calls
    # The stride-2 and the 1x1 convolutions stay direct.
    assert sum("conv2d" in c for c in calls) == 2, calls

    out = project / "build" / "block"
    manifest = compile_model(CompileRequest(source, get_profile("host"), (2,), project / "tuning_logs" / "host", out))
    assert manifest["correctness"]["checked"]  # the gate compared every output with ONNX Runtime's
    inputs = sample_inputs(load(source), 2, seed=4)
    (y,) = CompiledModel(out / manifest["libraries"]["2"]["file"])([inputs["x"]])
    (check,) = compare(["y"], [y], run_reference(source.path, inputs), rtol=1e-4, atol=1e-5)
    assert check.passed and y.shape == (2, CHANNELS, 4, 4)
