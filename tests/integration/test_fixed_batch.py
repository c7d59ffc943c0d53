"""A model whose inputs fix the batch at 4, benched with --batch-sizes 4 (issue #29, item 8): the
served engines get requests of 4 rows (not 1, which the model cannot take), and a server never
joins two of them into one call of 8 rows."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.bench import BenchConfig, run_bench
from workbench.benchview import BenchDisplay
from workbench.load.direct import DirectSpec

QUICK = dict(duration_s=0.6, warmup_s=0.1, min_requests=5, concurrency=(1, 8),
             direct_spec=DirectSpec(min_runs=5, min_time_s=0.1, offline_s=0.3, paired_s=0.1))


def fixed_batch_model(path, batch: int = 4) -> None:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((16, 8)).astype("float32"), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                              "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _bench(project, engines: tuple[str, ...]):
    fixed_batch_model(project / "models" / "fixed4.onnx")
    config = BenchConfig("fixed4", "host", engines=engines, batch_sizes=(4,), **QUICK)
    return run_bench(config, BenchDisplay(enabled=False))[1]


def _assert_served_ok(records, engines) -> None:
    served = [r for r in records if r["scenario"]["kind"] == "closed"]
    assert {(r["engine"], r["scenario"]["concurrency"]) for r in served} == {(e, c) for e in engines for c in (1, 8)}
    for record in served:
        assert record["status"] == "ok", (record["engine"], record.get("note"))
        assert record["result"]["good"] > 0 and not record["result"]["errors"], record["engine"]
        if record["engine"] != "server-null":
            assert record["correctness"]["passed"] is True


def test_fixed_batch_model_is_served_at_its_batch(project):
    served = ("flask-naive", "server-onnxruntime", "server-null")
    records = _bench(project, ("onnxruntime", *served))
    _assert_served_ok(records, served)
    direct = [r for r in records if r["engine"] == "onnxruntime" and r["scenario"]["kind"] == "latency"]
    assert [r["scenario"]["batch"] for r in direct] == [4]


@pytest.mark.build
def test_fixed_batch_model_is_served_by_tvm(project):
    records = _bench(project, ("server-tvm",))
    _assert_served_ok(records, ("server-tvm",))
