"""The workbench server for real: a subprocess on a free loopback port, every endpoint, every bad input."""

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.helpers import call, mlp_tensor, model_config, start_server
from workbench import models, reference
from workbench.errors import WorkbenchError
from workbench.fingerprint import physical_cores
from workbench.load import generator
from workbench.load.http import Endpoint
from workbench.serving.process import ServerProcess, python_module
from workbench.serving.protocol import encode_request
from workbench.serving.server import ServerConfig


def _infer_url(server, model="mlp"):
    return f"{server.url}/v2/models/{model}/infer"


def test_health_metadata_and_infer_match_onnxruntime(mlp_server):
    assert call(mlp_server.url + "/v2/health/live")[0] == 200
    assert call(mlp_server.url + "/v2/health/ready")[0] == 200
    status, _, body = call(mlp_server.url + "/v2/models/mlp")
    meta = json.loads(body)
    assert status == 200 and meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    inputs = models.sample_inputs(models.load(models.resolve("mlp")), 3, seed=5)
    status, _, body = call(_infer_url(mlp_server), encode_request(inputs))
    out = json.loads(body)["outputs"][0]
    expected = reference.run(models.resolve("mlp").path, inputs)[0]
    assert status == 200 and out["shape"] == [3, 10]
    np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(3, 10), expected, rtol=1e-5, atol=1e-6)


def test_the_engine_runs_on_the_threads_asked_for_and_says_so(mlp_server, tmp_path):
    def threads(server) -> tuple[int, str]:
        meta = json.loads(call(f"{server.url}/v2/models/mlp")[2])
        config = json.loads(call(f"{server.url}/v2/models/mlp/config")[2])
        return meta["parameters"]["engine_threads"], config["parameters"]["engine_threads"]["string_value"]

    assert threads(mlp_server) == (physical_cores(), str(physical_cores()))  # ONNX Runtime's intra-op threads
    server = start_server(tmp_path, model_config("mlp", threads=1))
    try:
        assert threads(server) == (1, "1")
        inputs = models.sample_inputs(models.load(models.resolve("mlp")), 2, seed=3)
        status, _, body = call(_infer_url(server), encode_request(inputs))
        expected = reference.run(models.resolve("mlp").path, inputs)[0]
        np.testing.assert_allclose(np.asarray(json.loads(body)["outputs"][0]["data"], np.float32).reshape(2, 10),
                                   expected, rtol=1e-5, atol=1e-6)
    finally:
        server.stop()


def test_binary_tensor_extension(mlp_server):
    x = models.sample_inputs(models.load(models.resolve("mlp")), 2, seed=1)["input"]
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 64],
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    status, headers, body = call(_infer_url(mlp_server), head + x.tobytes(),
                                 {"Inference-Header-Content-Length": str(len(head))})
    assert status == 200
    length = int({k.lower(): v for k, v in headers.items()}["inference-header-content-length"])
    response = json.loads(body[:length])
    assert response["outputs"][0]["parameters"]["binary_data_size"] == 2 * 10 * 4
    out = np.frombuffer(body[length:], np.float32).reshape(2, 10)
    np.testing.assert_allclose(out, reference.run(models.resolve("mlp").path, {"input": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b"", "empty body"),
    (b'{"inputs": 3}', '"inputs"'),
    (mlp_tensor(name="pixels"), "unknown: ['pixels']"),
    (mlp_tensor(datatype="INT64"), "datatype FP32"),
    (mlp_tensor(shape=[1, 32], data=[0.0] * 32), "expects ['batch', 64]"),
    (mlp_tensor(data=[0.0] * 63), "63 elements"),
    (mlp_tensor(data=["a"] * 64), "not a list of FP32"),
    (mlp_tensor(shape=[9, 64], data=[0.0] * 9 * 64), "largest batch is 8"),
])
def test_bad_requests_get_400_and_the_server_keeps_answering(mlp_server, body, fragment):
    status, _, answer = call(_infer_url(mlp_server), body)
    assert status == 400, answer
    assert fragment in json.loads(answer)["error"]
    assert call(_infer_url(mlp_server), mlp_tensor())[0] == 200


def test_unknown_model_oversized_body_and_wrong_method(mlp_server):
    status, _, body = call(_infer_url(mlp_server, "resnet"), mlp_tensor())
    assert status == 404 and "unknown model 'resnet'" in json.loads(body)["error"]
    status, _, body = call(_infer_url(mlp_server), b"x" * 300_000)
    assert status == 413
    assert call(_infer_url(mlp_server), method="GET")[0] == 405
    assert call(mlp_server.url + "/nowhere")[0] == 404
    assert call(_infer_url(mlp_server), mlp_tensor())[0] == 200


def test_metrics_count_requests_batches_and_queue(mlp_server):
    call(_infer_url(mlp_server), mlp_tensor())
    status, _, body = call(mlp_server.url + "/metrics")
    text = body.decode()
    assert status == 200
    assert 'workbench_requests_total{model="mlp",status="200"}' in text
    for name in ("workbench_request_latency_seconds_bucket", "workbench_queue_seconds_count",
                 "workbench_compute_seconds_sum", "workbench_batch_size_bucket", 'workbench_queue_depth{model="mlp"}'):
        assert name in text


def test_a_burst_over_capacity_gets_503_with_retry_after_and_no_crash(tmp_path):
    server = start_server(tmp_path, model_config("mlp", max_batch=1, max_queue_rows=1))
    try:
        endpoint = Endpoint.parse(server.url, "/v2/models/mlp/infer")
        spec = generator.LoadSpec(endpoint, [endpoint.post(mlp_tensor())], duration_s=1.0, warmup_s=0.0)
        result = generator.run(generator.closed_loop(spec, 256)).summary()
        assert result["errors"].get("503", 0) > 0 and result["good"] > 0
        statuses = []
        with ThreadPoolExecutor(64) as pool:
            statuses = list(pool.map(lambda _: call(_infer_url(server), mlp_tensor()), range(256)))
        busy = [h for s, h, _ in statuses if s == 503]
        assert all({k.lower(): v for k, v in h.items()}.get("retry-after") for h in busy)
        assert server.alive() and call(_infer_url(server), mlp_tensor())[0] == 200
    finally:
        server.stop()


def test_image_predictions_top5_and_bad_images(tmp_path):
    from PIL import Image

    server = start_server(tmp_path, model_config("squeezenet1.1"), model_config("mlp"))
    try:
        png = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(png, "PNG")
        boundary = "workbenchboundary"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"; filename=\"kitten.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + png.getvalue() + f"\r\n--{boundary}--\r\n".encode()
        status, _, body = call(f"{server.url}/predictions/squeezenet1.1", form,
                               {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert status == 200, body
        predictions = json.loads(body)["predictions"]
        assert status == 200 and len(predictions) == 5
        assert all(a["probability"] >= b["probability"] for a, b in zip(predictions, predictions[1:]))
        status, _, raw_body = call(f"{server.url}/predictions/squeezenet1.1", png.getvalue())
        assert status == 200 and json.loads(raw_body)["predictions"][0] == predictions[0]
        status, _, body = call(f"{server.url}/predictions/squeezenet1.1", b"this is not an image")
        assert status == 400 and "not an image" in json.loads(body)["error"]
        status, _, body = call(f"{server.url}/predictions/mlp", png.getvalue())
        assert status == 400 and "not an image model" in json.loads(body)["error"]
        assert call(f"{server.url}/predictions/squeezenet1.1", b"")[0] == 400
    finally:
        server.stop()


def test_a_server_that_cannot_start_names_itself_and_its_log(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "server.json"
        config.write_text(ServerConfig([model_config("mlp")], port=port).to_json())
        process = ServerProcess("server-onnxruntime", python_module("workbench.serving.server", str(config)), port,
                                tmp_path / "server.log")
        with pytest.raises(WorkbenchError, match=r"server-onnxruntime server exited .* log .*server.log"):
            process.start(timeout_s=60)


def test_a_server_dying_mid_run_is_counted_as_errors(tmp_path):
    server = start_server(tmp_path, model_config("mlp"))
    endpoint = Endpoint.parse(server.url, "/v2/models/mlp/infer")
    spec = generator.LoadSpec(endpoint, [endpoint.post(mlp_tensor())], duration_s=2.0, warmup_s=0.0)
    threading.Timer(0.7, server.stop).start()
    result = generator.run(generator.closed_loop(spec, 8)).summary()
    assert result["good"] > 0 and result["errors"].get("connection", 0) > 0
    assert not server.alive()


def test_sigterm_finishes_in_flight_requests(tmp_path):
    server = start_server(tmp_path, model_config("mlp"))
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(call, _infer_url(server), mlp_tensor()) for _ in range(64)]
        server.stop()
        statuses = [f.result()[0] if not isinstance(f.exception(), OSError) else "refused" for f in futures]
    assert 500 not in statuses and 503 not in statuses
