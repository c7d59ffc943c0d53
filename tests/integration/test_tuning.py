"""Real MetaSchedule tuning and TVM builds on the tiny `mlp` model, with small trial counts."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import records_in, without_reference
from workbench.compiler.builder import CompileRequest, apply_records, compile_model, ensure_build
from workbench.compiler.database import TuningDatabase
from workbench.compiler.importer import make_target
from workbench.compiler.measure import COLD_CALLS
from workbench.compiler.tasks import extract, prepared_modules
from workbench.compiler.tuner import TuneRequest, TuneSummary
from workbench.compiler.tuner import tune as run_tune
from workbench.engines.compiled import CompiledModel
from workbench.errors import CorrectnessError
from workbench.models import input_specs, load, resolve, sample_inputs
from workbench.reference import compare
from workbench.reference import run as run_reference
from workbench.targets import get_profile
from workbench.tuneview import TuneDisplay

pytestmark = [pytest.mark.build, pytest.mark.slow]


@pytest.fixture(autouse=True)
def no_reference_records(tmp_path_factory, monkeypatch):
    """These tests tune and build mlp from an empty database: the shipped reference records (mlp's
    among them) would seed every task and choose its schedule before the first trial."""
    for name, value in without_reference(tmp_path_factory.mktemp("ref")).items():
        monkeypatch.setenv(name, value)


def tune(source, profile, trials: int, batch_sizes: tuple[int, ...], database_dir, **options) -> TuneSummary:
    """One session as `workbench tune` runs it, without the live line."""
    return run_tune(TuneRequest(source, profile, trials, batch_sizes, database_dir, **options),
                    TuneDisplay(enabled=False))


def timings_per_record(database: TuningDatabase) -> set[int]:
    return {len(r.run_secs) for r in database.open().get_all_tuning_records() if r.run_secs}


def best_traces(database: TuningDatabase) -> dict[str, str]:
    """Each workload's fastest record's trace, as MetaSchedule reads the database."""
    db = database.open()
    workloads = {database.workload_key(r.workload): r.workload for r in db.get_all_tuning_records()}
    return {key: str(db.get_top_k(w, 1)[0].trace) for key, w in workloads.items()}


def test_tune_twice_resumes_then_compile_passes_gate(project, tmp_path, monkeypatch):
    profile, source, db_dir = get_profile("host"), resolve("mlp"), project / "tuning_logs" / "host"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # this process's temporary files
    monkeypatch.setenv("TMPDIR", str(scratch))  # and the build and timing workers'
    first = tune(source, profile, 9, (1,), db_dir)
    # The candidates, tuned and chosen among, leave nothing behind (ONNX Runtime, timed after tuning
    # for comparison, keeps one small file of its own, .ses, per temporary directory).
    assert not [p for p in scratch.iterdir() if p.name != ".ses"]
    assert first.trials == 9 and first.records_after == records_in(db_dir) > 0
    assert all(t.trials >= 1 for t in first.tasks)  # the first round reaches every task
    assert all(t.best_before is None for t in first.tasks)

    began = datetime.now(timezone.utc).replace(microsecond=0)
    second = tune(source, profile, 9, (1,), db_dir)
    # Resumed: every task starts from its stored best, and the database only grows.
    assert all(t.best_before is not None for t in second.tasks)
    assert second.records_before == first.records_after < second.records_after
    assert second.estimated_latency_before is not None
    database = TuningDatabase(db_dir, profile.resolved_target())
    sessions = database.sessions()
    assert [s["trials"] for s in sessions] == [9, 9] and sessions[0]["machine"]["physical_cores"] >= 1
    started = datetime.fromisoformat(sessions[1]["started"])  # when it began, not when it was written
    assert began <= started and started + timedelta(seconds=sessions[1]["seconds"] - 1) <= datetime.now(timezone.utc)
    # A CPU profile times every candidate as single calls after flushing its weights.
    assert sessions[0]["cold_weights"] and timings_per_record(database) == {COLD_CALLS}
    # Each session ends by choosing every task's schedule among its best records timed side by
    # side; the choices sit in the overlay, and the summary's bests are their timings.
    retimed = {r["name"]: r for r in sessions[1]["retime"]["tasks"]}
    assert sorted(retimed) == sorted(t.name for t in second.tasks)
    assert all(retimed[t.name]["retimed_s"] == t.chosen for t in second.tasks)
    assert sessions[1]["retime"]["estimated_latency_s"] == second.estimated_latency_chosen > 0
    selected = database.selected_records()
    assert len(selected) == 3 and all(retimed[n]["records"] >= 1 for n in retimed)
    assert records_in(db_dir) == second.records_after

    # Compacted (2 kept per workload, so 6 of 18), MetaSchedule finds the same best schedules, the
    # other records sit in the archive, and the build below schedules from the compacted file.
    best = best_traces(database)
    compacting = TuningDatabase(db_dir, profile.resolved_target(), keep_per_workload=2)
    assert compacting.validate() == second.records_after == compacting.record_count()
    assert records_in(db_dir) == 6 and best_traces(compacting) == best

    out = project / "build" / "mlp" / "host"
    manifest = compile_model(CompileRequest(source, profile, (1, 4), db_dir, out))
    assert manifest["correctness"]["checked"]
    assert all(c["passed"] for cs in manifest["correctness"]["per_batch"].values() for c in cs)
    assert manifest["tuning"]["tasks_tuned"] == 3 and manifest["tuning"]["untuned_tasks"] == [
        t for t in manifest["tuning"]["untuned_tasks"] if t.endswith("@b4")]
    # The build really used the records: every batch-1 kernel was scheduled from the database.
    assert manifest["tuning"]["kernels_from_records"] == {"1": 3, "4": 0} and manifest["tuning"]["selected"] == 3
    assert json.loads((out / "manifest.json").read_text())["model_sha256"] == source.sha256()
    # The build's kernels are the ones tuned: the report adds these sessions to its tuning curve.
    assert sessions[0]["kernels"]["1"] == manifest["tuning"]["kernels"]["1"] != manifest["tuning"]["kernels"]["4"]

    # The exported library is usable on its own, and agrees with ONNX Runtime at batch 4.
    model = load(source)
    inputs = sample_inputs(model, 4, seed=11)
    actual = CompiledModel(out / manifest["libraries"]["4"]["file"])([inputs[s.name] for s in input_specs(model)])
    (check,) = compare(["logits"], actual, run_reference(source.path, inputs), rtol=1e-4, atol=1e-5)
    assert check.passed and actual[0].shape == (4, 10)


def test_candidates_timed_here_are_linked_here_into_libraries_that_run():
    """The runner loads a ready shared library instead of untarring and linking each candidate."""
    import numpy as np
    import tvm
    from tvm import te
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from workbench.compiler.measure import reused_pool_builder

    a, b = te.placeholder((64,), name="a"), te.placeholder((64,), name="b")
    kernel = tvm.IRModule({"main": te.create_prim_func([a, b, te.compute((64,), lambda i: a[i] * 2 + b[i])])})
    built = {}
    for link_here in (True, False):
        builder = reused_pool_builder("llvm", 1, link_here=link_here)
        try:
            (built[link_here],) = builder.build([BuilderInput(kernel, tvm.target.Target("llvm"))])
        finally:
            builder.shutdown()
    assert built[True].artifact_path.endswith(".so") and built[False].artifact_path.endswith(".tar")
    x, y = np.arange(64, dtype="float32"), np.ones(64, dtype="float32")
    out = tvm.runtime.tensor(np.zeros(64, "float32"))
    tvm.runtime.load_module(built[True].artifact_path)["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(y), out)
    np.testing.assert_array_equal(out.numpy(), x * 2 + y)
    for result in built.values():
        shutil.rmtree(os.path.dirname(result.artifact_path))


def test_the_runner_replaces_its_worker_after_so_many_timings_and_keeps_timing():
    """A worker that timed recycle_after candidates is replaced before the next (bounding its
    heap's growth, compiler/measure.py); every candidate is still timed."""
    import tvm
    from tvm import te
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from workbench.compiler.measure import evaluator_config, local_runner, reused_pool_builder

    a = te.placeholder((256,), name="a")
    kernel = tvm.IRModule({"main": te.create_prim_func([a, te.compute((256,), lambda i: a[i] + 1)])})
    builder = reused_pool_builder("llvm", 1, link_here=True)
    try:
        (built,) = builder.build([BuilderInput(kernel, tvm.target.Target("llvm"))])
    finally:
        builder.shutdown()
    runner = local_runner(evaluator_config(cold_weights=True), recycle_after=2)
    candidate = RunnerInput(built.artifact_path, "cpu", ArgInfo.from_prim_func(kernel["main"]))
    workers = []
    try:
        for _ in range(5):
            (result,) = [future.result() for future in runner.run([candidate])]
            assert result.error_msg is None and len(result.run_secs) == COLD_CALLS
            (worker,) = runner.pool._worker_map.values()
            workers.append(worker._proc.pid)
    finally:
        runner.pool.shutdown()
        shutil.rmtree(os.path.dirname(built.artifact_path))
    assert workers[0] == workers[1] != workers[2] == workers[3] != workers[4]


def test_a_candidate_ld_cannot_link_is_a_build_error_that_leaves_no_files(tmp_path, monkeypatch):
    import tvm
    from tvm import te
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from workbench.compiler.measure import reused_pool_builder

    failing = tmp_path / "bin"
    failing.mkdir()
    (failing / "ld").write_text("#!/bin/sh\necho 'ld: cannot link this' >&2\nexit 1\n")
    (failing / "ld").chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("PATH", f"{failing}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TMPDIR", str(scratch))
    a = te.placeholder((8,), name="a")
    builder = reused_pool_builder("llvm", 1, link_here=True)
    try:
        kernel = tvm.IRModule({"main": te.create_prim_func([a, te.compute((8,), lambda i: a[i])])})
        (result,) = builder.build([BuilderInput(kernel, tvm.target.Target("llvm"))])
    finally:
        builder.shutdown()
    assert result.artifact_path is None and "ld could not link the candidate: ld: cannot link this" in result.error_msg
    assert not list(scratch.iterdir())


def test_builds_take_the_overlays_choice_over_tunings_best(project):
    profile, source, db_dir = get_profile("host"), resolve("mlp"), project / "tuning_logs" / "host"
    tune(source, profile, 12, (1,), db_dir, retime_pool=0)
    database = TuningDatabase(db_dir, profile.resolved_target())
    assert not database.selected_dir.exists()  # --retime-pool 0: no choosing
    target = make_target(database.target)
    task = max(extract(prepared_modules(load(source), (1,), target), target), key=lambda t: t.flops)
    db = database.open()
    records = db.get_top_k(db.commit_workload(task.mod), 3)
    digest = database.digest()
    database.write_selected({database.workload_key(records[-1].workload): (records[-1], 1.0)})
    assert database.digest() != digest  # a build made before the choice is stale
    name = task.name.split("@")[0]
    assert str(database.open_for_build().query_tuning_record(task.mod, target, name).trace) == str(records[-1].trace)
    assert str(db.query_tuning_record(task.mod, target, name).trace) == str(records[0].trace) != str(records[-1].trace)


def test_cpu_builds_fold_each_schedules_weight_layout_into_the_constants(project):
    """On CPUs the weights are layout-free: a tuned schedule keeps them in the order it reads
    them, and the build rewrites the constants once, not on every call."""
    profile, source, db_dir = get_profile("host"), resolve("mlp"), project / "tuning_logs" / "host"
    tune(source, profile, 9, (1,), db_dir, retime_pool=0)
    database = TuningDatabase(db_dir, profile.resolved_target())
    target = make_target(database.target)
    (mod,) = prepared_modules(load(source), (1,), target).values()
    kernels = [f for gv, f in mod.functions.items() if gv.name_hint != "main"]
    assert len(kernels) == 3 and all(f.attrs.get("layout_free_buffers") for f in kernels)
    scheduled, from_records = apply_records(mod, target, database.open_for_build(), gpu=False)
    main = scheduled["main"].script()
    # Each kernel reads its weights in its own layout, and no call to rewrite them is left.
    assert from_records == 3 and main.count("_prepacked") == 3 and "weight_prepack" not in main, main


def test_time_limit_stops_after_the_batch_that_passes_it(project):
    profile, source = replace(get_profile("host"), cold_weights=False), resolve("mlp")
    db_dir = project / "tuning_logs" / "host"
    summary = tune(source, profile, 30, (1,), db_dir, minutes=1e-4)  # passed as soon as the first batch ends
    assert summary.out_of_time and not summary.interrupted
    assert summary.trials == summary.budget.per_iter < summary.budget.total
    assert summary.records_after == records_in(db_dir) > 0  # what was measured is kept
    (session,) = TuningDatabase(db_dir, profile.resolved_target()).sessions()
    assert session["out_of_time"] and session["minutes_limit"] == 1e-4 and not session["interrupted"]
    # cold_weights = false: warm timings, one per candidate, repeated for at least MIN_REPEAT_MS
    assert not session["cold_weights"]
    assert timings_per_record(TuningDatabase(db_dir, profile.resolved_target())) == {1}


def _start_tune(project, trials: int) -> subprocess.Popen:
    env = {**os.environ, "WORKBENCH_HOME": str(project)}
    exe = os.path.join(os.path.dirname(sys.executable), "workbench")
    return subprocess.Popen([exe, "tune", "--model", "mlp", "--target", "host", "--trials", str(trials),
                             "--batch-sizes", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _wait_for_records(project, proc: subprocess.Popen, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while records_in(project / "tuning_logs" / "host") == 0:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no record was written in time"
        time.sleep(0.5)


def _stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the build and run workers too: no orphans
    except ProcessLookupError:
        pass


def test_kill_9_mid_tuning_leaves_a_database_that_loads(project):
    proc = _start_tune(project, 60)
    try:
        _wait_for_records(project, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop_group(proc)
    database = TuningDatabase(project / "tuning_logs" / "host", get_profile("host").resolved_target())
    assert database.validate() >= 1
    database.open()  # MetaSchedule itself loads it


def test_ctrl_c_stops_cleanly_and_keeps_records(project):
    proc = _start_tune(project, 60)
    try:
        _wait_for_records(project, proc)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the tuner and its workers alike
        output, _ = proc.communicate(timeout=120)
    finally:
        _stop_group(proc)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    kept = records_in(project / "tuning_logs" / "host")
    assert kept >= 1 and f"the {kept} records measured so far are kept" in " ".join(output.split())


def test_failed_gate_leaves_the_previous_build_in_place(project):
    profile, db_dir, out = get_profile("host"), project / "tuning_logs" / "host", project / "build" / "out"
    compile_model(CompileRequest(resolve("mlp"), profile, (1,), db_dir, out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # bert-mini's float32 outputs differ from ONNX Runtime's by ~1e-6: a zero tolerance must fail the gate.
    with pytest.raises(CorrectnessError, match="differs from ONNX Runtime"):
        compile_model(CompileRequest(resolve("bert-mini"), profile, (1,), db_dir, out, rtol=0.0, atol=0.0))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no staging directory left behind


def test_a_build_gated_more_loosely_than_asked_is_rebuilt(project):
    profile, db_dir, out = get_profile("host"), project / "tuning_logs" / "host", project / "build" / "out"
    compile_model(CompileRequest(resolve("mlp"), profile, (1,), db_dir, out, rtol=1e-2, atol=1e-3))
    compiles = []
    loose = ensure_build(CompileRequest(resolve("mlp"), profile, (1,), db_dir, out, rtol=1e-2, atol=1e-3),
                         lambda: compiles.append("loose"))
    strict = ensure_build(CompileRequest(resolve("mlp"), profile, (1,), db_dir, out), lambda: compiles.append("strict"))
    assert compiles == ["strict"]
    assert loose["correctness"]["atol"] == 1e-3 and strict["correctness"]["atol"] == 1e-5


def test_cuda_compiles_here_without_a_gpu(project):
    profile = get_profile("cuda-sm90")
    out = project / "build" / "mlp" / "cuda-sm90"
    manifest = compile_model(CompileRequest(resolve("mlp"), profile, (1,), project / "tuning_logs" / "cuda-sm90", out))
    assert manifest["target_json"]["arch"] == "sm_90"
    assert (out / manifest["libraries"]["1"]["file"]).stat().st_size > 0
    if not profile.runs_here()[0]:
        assert manifest["correctness"] == {"checked": False, "reason": "no NVIDIA GPU on this machine"}


@pytest.mark.gpu
def test_cuda_gate_on_a_gpu(project):
    manifest = compile_model(CompileRequest(resolve("mlp"), get_profile("cuda"), (1, 8),
                                            project / "tuning_logs" / "cuda", project / "build" / "mlp" / "cuda"))
    assert manifest["correctness"]["checked"]


def test_gather_counts_negative_indices_from_the_end_and_never_reads_outside_the_table(project):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)], "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["batch", 4, 2])],
        [numpy_helper.from_array(table, "table")])
    path = project / "models" / "embed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    out = project / "build" / "embed"
    manifest = compile_model(CompileRequest(resolve(str(path)), get_profile("host"), (1,),
                                            project / "tuning_logs" / "host", out))
    model = CompiledModel(out / manifest["libraries"]["1"]["file"])
    (rows,) = model([np.array([[-1, 0, 5, -6]], dtype=np.int64)])
    assert np.array_equal(rows[0], table[[-1, 0, 5, -6]])  # ONNX's (and numpy's) meaning of negative indices
    (rows,) = model([np.array([[6, 1000, -7, 2]], dtype=np.int64)])  # invalid ids: wrapped, not a crash
    assert np.array_equal(rows[0], table[[0, 1000 % 6, -7 % 6, 2]])


def test_bert_mini_lowers_erf_and_softmax_to_branch_free_approximations(project):
    """libm's erf is scalar and data-dependent: tuning on random inputs misjudged the GELU kernel."""
    from workbench.compiler.importer import import_model, make_target, prepare

    target = make_target(get_profile("host").resolved_target())
    script = prepare(import_model(load(resolve("bert-mini")), 1), target).script()
    assert "T.erf(" not in script and "fast_erf" in script
    assert "fast_softmax" in script


def _conv_model(path):
    """Plain, strided, grouped (depthwise) and 1x1 convolutions, as resnet and mobilenet use them,
    with mobilenet's ReLU6 (Clip with constant bounds), MobileNetV3's HardSwish and a Clip with only
    a lower bound."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weights = {"w_stem": (8, 3, 3, 3), "w_dw": (8, 1, 3, 3), "w_pw": (16, 8, 1, 1)}
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in weights.items()]
    inits.append(numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b_pw"))
    inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in (("zero", 0.0), ("six", 6.0))]
    nodes = [
        helper.make_node("Conv", ["x", "w_stem"], ["stem"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["stem", "zero", "six"], ["act"]),
        helper.make_node("Conv", ["act", "w_dw"], ["dw"], group=8, pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["dw"], ["swish"]),
        helper.make_node("Conv", ["swish", "w_pw", "b_pw"], ["pw"]),
        helper.make_node("Clip", ["pw", "zero"], ["floor"]),
        helper.make_node("Add", ["floor", "pw"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "convs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 17, 17])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16, 9, 9])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    return resolve(str(path))


def test_cpu_convolutions_run_channels_last_and_keep_the_models_layout_outside(project):
    """NHWC/HWIO inside on CPUs (weights transposed once, at build time); NCHW in and out, and on GPUs."""
    from workbench.compiler.importer import import_model, make_target, prepare

    source = _conv_model(project / "models" / "convs.onnx")
    model = load(source)
    for profile, layout, transposes in (("host", "conv2d_nhwc", 2), ("cuda-sm90", "conv2d_nchw", 0)):
        mod = prepare(import_model(model, 1), make_target(get_profile(profile).resolved_target()))
        assert len(re.findall(rf'T.sblock\("(group_)?{layout}"', mod.script())) == 3, profile
        kernels = [gv.name_hint for gv in mod.functions]
        # Only the model's input and output are transposed (none around the ReLU6 or the HardSwish),
        # and the ReLU6 fused into its convolution.
        assert sum("transpose" in k for k in kernels) == transposes, kernels
        assert any("conv2d" in k and "_maximum_minimum" in k for k in kernels), kernels
        # Weights may be prepacked into a schedule's own layout on CPUs only.
        prepacked = [gv.name_hint for gv, f in mod.functions.items() if f.attrs and f.attrs.get("layout_free_buffers")]
        assert bool(prepacked) == (profile == "host"), prepacked
    out = project / "build" / "convs"
    manifest = compile_model(CompileRequest(source, get_profile("host"), (2,), project / "tuning_logs" / "host", out))
    assert manifest["correctness"]["checked"]  # the gate compared every output with ONNX Runtime's
    inputs = sample_inputs(model, 2, seed=5)
    (y,) = CompiledModel(out / manifest["libraries"]["2"]["file"])([inputs["x"]])
    (check,) = compare(["y"], [y], run_reference(source.path, inputs), rtol=1e-4, atol=1e-5)
    assert check.passed and y.shape == (2, 16, 9, 9)


def test_clip_with_bounds_known_only_at_run_time_keeps_the_importers_lowering(project):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Clip", ["x", "low"], ["y"])], "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("low", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    path = project / "models" / "clip.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    out = project / "build" / "clip"
    manifest = compile_model(CompileRequest(resolve(str(path)), get_profile("host"), (1,),
                                            project / "tuning_logs" / "host", out))
    (y,) = CompiledModel(out / manifest["libraries"]["1"]["file"])(
        [np.array([[-2, -0.5, 0.5, 2]], dtype=np.float32), np.array(0.25, dtype=np.float32)])  # a scalar input
    assert np.array_equal(y, [[0.25, 0.25, 0.5, 2]])
