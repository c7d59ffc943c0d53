"""The OpenVINO engines for real on mlp: outputs against ONNX Runtime, the settings every record
carries, its own offline mode, a served model, and the two bad inputs (openvino not importable, a
model it cannot read), each recorded as failed in one line while the other engines still run."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.helpers import call, model_config, start_server, workbench_cli
from workbench import models, reference
from workbench.bench import BenchConfig, run_bench
from workbench.benchview import BenchDisplay
from workbench.engines.registry import open_engine
from workbench.fingerprint import physical_cores
from workbench.load.direct import DirectSpec
from workbench.records import read_records
from workbench.serving.protocol import encode_request

QUICK = dict(duration_s=0.5, warmup_s=0.1, min_requests=5, concurrency=(1,), batch_sizes=(1,),
             direct_spec=DirectSpec(min_runs=5, min_time_s=0.1, offline_s=0.3, paired_s=0.1, paired_rounds=4))


def _mlp():
    source = models.resolve("mlp")
    return source, models.load(source)


def test_openvino_matches_onnxruntime_and_records_its_settings():
    source, model = _mlp()
    engine = open_engine("openvino", model_path=source.path, build_dir=None,
                         outputs=models.spec_dicts(models.output_specs(model)))
    for batch in (1, 8):
        inputs = models.sample_inputs(model, batch, seed=3)
        np.testing.assert_allclose(engine(inputs)[0], reference.run(source.path, inputs)[0], rtol=1e-4, atol=1e-5)
    assert engine.output_names == ("logits",) and engine.batch_sizes is None
    assert engine.settings["performance_hint"] == "LATENCY" and engine.settings["inference_precision"] == "f32"
    assert engine.settings["inference_num_threads"] == physical_cores() and engine.settings["openvino_version"]
    settings, result = engine.offline(models.sample_inputs(model, 8), 8, DirectSpec(offline_s=0.3))
    assert settings["performance_hint"] == "THROUGHPUT" and settings["infer_requests"] >= 1
    assert settings["inference_precision"] == "f32" and result["batch"] == 8
    assert result["throughput_sps"] > 0 and result["batches"] == result["latency_ms"]["count"]


def test_bench_pairs_openvino_with_onnxruntime_and_serves_it(project):
    config = BenchConfig("mlp", "host", engines=("openvino", "onnxruntime", "server-openvino"), **QUICK)
    run_dir, records = run_bench(config, BenchDisplay(enabled=False))
    assert all(r["status"] == "ok" and r["correctness"]["passed"] for r in records), [r["note"] for r in records]
    kinds = {(r["engine"], r["scenario"]["kind"]) for r in read_records(run_dir)}
    assert {("openvino", "latency"), ("openvino", "offline"), ("openvino", "paired"),
            ("onnxruntime", "paired"), ("server-openvino", "closed")} <= kinds
    paired = {r["engine"]: r for r in records if r["scenario"]["kind"] == "paired"}
    assert paired["openvino"]["scenario"]["engines"] == ["openvino", "onnxruntime"]  # the reference last
    assert paired["openvino"]["result"]["reference"] == "onnxruntime" and paired["openvino"]["result"]["ratio_p50"] > 0
    offline = next(r for r in records if r["engine"] == "openvino" and r["scenario"]["kind"] == "offline")
    assert offline["settings"]["performance_hint"] == "THROUGHPUT"
    served = next(r for r in records if r["engine"] == "server-openvino")
    assert served["settings"]["openvino"]["performance_hint"] == "LATENCY"
    assert served["settings"]["openvino"]["inference_precision"] == "f32"


def test_a_served_model_is_answered_by_openvino(tmp_path):
    server = start_server(tmp_path, model_config("mlp", engine="openvino", max_batch=8))
    try:
        source, model = _mlp()
        inputs = models.sample_inputs(model, 3, seed=5)
        status, _, body = call(f"{server.url}/v2/models/mlp/infer", encode_request(inputs))
        assert status == 200, body
        out = np.asarray(json.loads(body)["outputs"][0]["data"], np.float32).reshape(3, 10)
        np.testing.assert_allclose(out, reference.run(source.path, inputs)[0], rtol=1e-4, atol=1e-5)
        assert json.loads(call(f"{server.url}/v2/models/mlp")[2])["platform"] == "workbench-openvino"
    finally:
        server.stop()


def _determinant_model(path):
    """Det: ONNX Runtime runs it, OpenVINO 2026.4 has no conversion rule for it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "det", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_a_model_openvino_cannot_read_is_recorded_failed_and_the_others_run(project):
    path = _determinant_model(project / "models" / "det.onnx")
    config = BenchConfig(str(path), "host", engines=("openvino", "onnxruntime", "server-openvino"), **QUICK)
    _, records = run_bench(config, BenchDisplay(enabled=False))
    by_engine = {}
    for record in records:
        by_engine.setdefault(record["engine"], []).append(record)
    [failed] = by_engine["openvino"]
    assert failed["status"] == "failed" and "\n" not in failed["note"]
    assert "OpenVINO cannot read det.onnx" in failed["note"] and "Det" in failed["note"]
    [server] = by_engine["server-openvino"]
    assert server["status"] == "failed" and "OpenVINO cannot read det.onnx" in server["note"]
    assert by_engine["onnxruntime"] and all(r["status"] == "ok" for r in by_engine["onnxruntime"])


def test_openvino_not_importable_is_recorded_failed_and_the_others_run(project, tmp_path):
    hidden = tmp_path / "hidden" / "openvino"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('openvino is hidden for this test')\n")
    result = workbench_cli("bench", "--model", "mlp", "--engines", "openvino,server-openvino,server-null",
                           "--batch-sizes", "1", "--concurrency", "1", "--duration", "0.5", "--warmup", "0.1",
                           "--min-requests", "5", "--json", home=project,
                           extra_env={"PYTHONPATH": str(hidden.parent)})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout[result.stdout.index("{"):])["results"]
    status = {row["engine"]: row["status"] for row in rows}
    assert status == {"openvino": "failed", "server-openvino": "failed", "server-null": "ok"}, rows
    notes = {r["engine"]: r["note"] for r in read_records(project / "reports" / next(
        p.name for p in (project / "reports").iterdir()))}
    assert "openvino cannot be imported (openvino is hidden for this test)" in notes["openvino"]
    assert "openvino cannot be imported" in notes["server-openvino"]
