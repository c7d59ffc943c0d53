"""A build depends on the records of its own kernels, not on the whole shared database (issue #29,
item 8): tuning another model leaves it current; a better record for one of its kernels makes it stale."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.compiler.builder import CompileRequest, compile_model, ensure_build
from workbench.compiler.database import TuningDatabase
from workbench.compiler.importer import make_target
from workbench.compiler.tasks import extract, prepared_modules
from workbench.compiler.tuner import TuneRequest, tune
from workbench.models import load, resolve
from workbench.targets import get_profile
from workbench.tuneview import TuneDisplay

pytestmark = pytest.mark.build


def other_model(path) -> None:
    """A model none of whose kernels mlp has (other shapes, other operators)."""
    weight = numpy_helper.from_array(np.random.default_rng(1).standard_normal((24, 40)).astype("float32"), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Sigmoid", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "other", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 40])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _is_current(request: CompileRequest) -> bool:
    compiled = []
    ensure_build(request, lambda: compiled.append(True))
    return not compiled


def _commit_copy(database: TuningDatabase, task, factor: float) -> None:
    """A record for the task's kernel: its best schedule again, timed `factor` times its time."""
    from tvm.s_tir import meta_schedule as ms

    db = database.open()
    best = db.get_top_k(db.commit_workload(task.mod), 1)[0]
    seconds = [float(s) * factor for s in best.run_secs]
    db.commit_tuning_record(ms.database.TuningRecord(best.trace, best.workload, seconds, best.target, best.args_info))


def test_tuning_another_model_leaves_a_build_current(project):
    profile, db_dir = get_profile("host"), project / "tuning_logs" / "host"
    mlp = resolve("mlp")
    tune(TuneRequest(mlp, profile, 6, (1,), db_dir, retime_pool=0), TuneDisplay(enabled=False))
    request = CompileRequest(mlp, profile, (1,), db_dir, project / "build" / "mlp")
    compile_model(request)
    assert _is_current(request)

    other_model(project / "models" / "other.onnx")
    tune(TuneRequest(resolve("other"), profile, 4, (1,), db_dir), TuneDisplay(enabled=False))  # with its choice
    assert TuningDatabase(db_dir, profile.resolved_target()).selected_count() > 0
    assert _is_current(request), "another model's records made mlp's build stale"

    database = TuningDatabase(db_dir, profile.resolved_target())
    target = make_target(database.target)
    task = max(extract(prepared_modules(load(mlp), (1,), target), target), key=lambda t: t.flops)
    _commit_copy(database, task, 2.0)  # a slower record for mlp's kernel: the build would not use it
    assert _is_current(request)
    _commit_copy(database, task, 0.5)  # a faster one: the build would, so it is stale
    assert not _is_current(request)


def named_like_tf2onnx(path) -> None:
    """[batch, seq, 4] -> [batch, seq, 3], its input named as tf2onnx names them ('input_ids:0')."""
    weight = numpy_helper.from_array(np.random.default_rng(2).standard_normal((4, 3)).astype("float32"), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["input_ids:0", "W"], ["y"])], "tf2onnx",
                              [helper.make_tensor_value_info("input_ids:0", TensorProto.FLOAT, ["batch", "seq", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def test_a_dims_build_is_current_for_its_own_variants_and_rebuilt_for_others(project):
    from workbench.dims import parse_dims

    named_like_tf2onnx(project / "models" / "tf.onnx")
    profile, db_dir, source = get_profile("host"), project / "tuning_logs" / "host", resolve("tf")

    def request(dims: str) -> CompileRequest:
        return CompileRequest(source, profile, (1,), db_dir, project / "build" / "tf", dims=parse_dims(dims))

    manifest = compile_model(request("seq=8"))
    assert set(manifest["libraries"]) == {"b1-seq8"}
    assert manifest["libraries"]["b1-seq8"]["shapes"] == {"input_ids:0": [1, 8, 4]}
    assert _is_current(request("seq=8")), "the build's own manifest was refused, so it would be rebuilt each time"
    assert not _is_current(request("seq=16"))  # rebuilt for seq 16 alone
    compile_model(request("seq=8,16"))
    assert _is_current(request("seq=16")) and _is_current(request("seq=8,16"))  # a subset reuses it
