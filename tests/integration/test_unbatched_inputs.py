"""A model with an input that is not batched beside one that is (#32): x [batch, 4] and scale [1],
answering y = x * scale [batch, 4] and shift = scale + 1 [1]. The server takes scale whole from
every request, joins requests into one batch only when their scales are equal, cuts y by rows and
hands every request its whole shift; bench serves it and checks it like any model."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers import call, start_server
from workbench import models
from workbench.bench import BenchConfig, run_bench
from workbench.benchview import BenchDisplay
from workbench.load.direct import DirectSpec
from workbench.serving.server import ModelConfig


def scaled_model(path) -> None:
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"]), helper.make_node("Add", ["scale", "one"], ["shift"])],
        "scaled", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
                   helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("shift", TensorProto.FLOAT, [1])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unbatched")
    scaled_model(folder / "scaled.onnx")
    model = models.load(models.resolve(str(folder / "scaled.onnx")))
    config = ModelConfig("scaled", "onnxruntime", str(folder / "scaled.onnx"),
                         models.spec_dicts(models.input_specs(model)), models.spec_dicts(models.output_specs(model)),
                         max_batch=8, max_delay_ms=100)  # concurrent requests wait to share a batch
    process = start_server(folder, config)
    yield process
    process.stop()


def _infer(url: str, x: np.ndarray, scale: list) -> tuple[int, dict]:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()},
                       {"name": "scale", "datatype": "FP32", "shape": [len(scale)], "data": scale}]}
    status, _, answer = call(f"{url}/v2/models/scaled/infer", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
    return status, json.loads(answer)


def test_requests_with_different_scales_each_get_their_own(server):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((rows, 4)).astype("float32") for rows in (1, 2, 1, 3, 1, 2, 1, 1)]
    scales = [2.0, 3.0] * 4
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _infer(server.url, xs[i], [scales[i]]), range(8)))
    for x, scale, (status, answer) in zip(xs, scales, answers):
        assert status == 200, answer
        out = {o["name"]: o for o in answer["outputs"]}
        assert out["y"]["shape"] == list(x.shape) and out["shift"]["shape"] == [1]
        np.testing.assert_allclose(np.asarray(out["y"]["data"]).reshape(x.shape), x * scale, rtol=1e-6)
        assert out["shift"]["data"] == [scale + 1]
    status, _, stats = call(f"{server.url}/v2/models/scaled/stats")
    (model,) = json.loads(stats)["model_stats"]
    assert model["execution_count"] < 8  # equal scales shared batches (100 ms to gather them)


def test_metadata_gives_the_unbatched_input_its_own_shape(server):
    status, _, body = call(f"{server.url}/v2/models/scaled")
    meta = json.loads(body)
    assert status == 200
    assert {i["name"]: i["shape"] for i in meta["inputs"]} == {"x": [-1, 4], "scale": [1]}
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {"y": [-1, 4], "shift": [1]}


def test_an_unbatched_input_of_another_shape_is_a_400(server):
    status, answer = _infer(server.url, np.ones((2, 4), "float32"), [2.0, 2.0])
    assert status == 400 and "input 'scale' has shape [2]; the model expects [1]" in answer["error"]
    status, answer = _infer(server.url, np.ones((2, 4), "float32"), [2.0])  # and the server still answers
    assert status == 200


@pytest.mark.parametrize("engine", ["server-onnxruntime", pytest.param("server-tvm", marks=pytest.mark.build)])
def test_bench_serves_and_checks_a_model_with_an_unbatched_input(project, engine):
    """server-tvm pads the batched input up to a compiled size (1 or 4) and leaves scale as it is."""
    scaled_model(project / "models" / "scaled.onnx")
    config = BenchConfig("scaled", "host", engines=("onnxruntime", engine), batch_sizes=(1, 4),
                         duration_s=0.5, warmup_s=0.1, min_requests=5, concurrency=(4,),
                         direct_spec=DirectSpec(min_runs=5, min_time_s=0.1, offline_s=0.3, paired_s=0.1))
    records = run_bench(config, BenchDisplay(enabled=False))[1]
    (served,) = [r for r in records if r["engine"] == engine]
    assert served["status"] == "ok" and served["correctness"]["passed"], served.get("note")
    assert served["result"]["good"] >= 5 and not served["result"]["errors"]
