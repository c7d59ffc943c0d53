"""OIP v2 over gRPC (`--grpc-port`), through Triton's own gRPC client and its stubs: every route, raw
and typed tensors, and the status code for each client mistake while the server keeps answering."""

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from tests.helpers import (
    STAT_PHASES,
    assert_one_line_error,
    call,
    invoke,
    mlp_tensor,
    model_config,
    short_served_bench,
    start_server,
    statistics_under_load,
    workbench_cli,
)
from workbench import models, reference
from workbench.errors import WorkbenchError
from workbench.records import read_records
from workbench.serving.process import free_port

CODE = grpc.StatusCode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """mlp, and the same model as 'held' whose batches wait 400 ms to fill (its queue fills on demand)."""
    held = model_config("mlp", max_batch=8, max_queue_rows=8, max_delay_ms=400)
    held.name = "held"
    process = start_server(tmp_path_factory.mktemp("grpc"), model_config("mlp", max_batch=8, max_queue_rows=64), held,
                           grpc_port=free_port(), max_body_bytes=200_000)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def grpc_port(server):
    return json.loads((server.log_path.parent / "server.json").read_text())["grpc_port"]


@pytest.fixture(scope="module")
def client(grpc_port):
    with grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}") as c:
        yield c


@pytest.fixture(scope="module")
def stub(grpc_port):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _sample(rows=2, seed=3):
    return models.sample_inputs(models.load(models.resolve("mlp")), rows, seed=seed)["input"]


def _expected(x):
    return reference.run(models.resolve("mlp").path, {"input": x})[0]


def _infer(client, x, model="mlp"):
    tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput("logits")])


def test_every_route_through_tritons_grpc_client(client, server):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mlp")
    assert {"model_configuration", "statistics", "model_repository"} <= set(client.get_server_metadata().extensions)
    meta = client.get_model_metadata("mlp", as_json=True)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "64"]}]
    config = client.get_model_config("mlp").config
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [64] and config.input[0].data_type == 11
    assert [(m.name, m.state) for m in client.get_model_repository_index().models] == [("held", "READY"),
                                                                                       ("mlp", "READY")]
    before = client.get_inference_statistics("mlp").model_stats[0]
    x = _sample(3)
    np.testing.assert_allclose(_infer(client, x).as_numpy("logits"), _expected(x), rtol=1e-5, atol=1e-6)
    after = client.get_inference_statistics("mlp").model_stats[0]
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    assert after.inference_stats.compute_output.ns > before.inference_stats.compute_output.ns
    assert after.inference_count == before.inference_count + 3
    assert len(client.get_inference_statistics("").model_stats) == 2
    metrics = call(server.url + "/metrics")[2].decode()
    assert 'workbench_requests_total{model="mlp",status="200"}' in metrics  # the same counters as REST


def test_typed_contents_are_answered_like_raw_ones(stub):
    x = _sample(2, seed=8)
    request = pb.ModelInferRequest(model_name="mlp", id="typed-1")
    request.inputs.add(name="input", datatype="FP32", shape=[2, 64]).contents.fp32_contents.extend(x.ravel().tolist())
    response = stub.ModelInfer(request)
    assert response.id == "typed-1" and list(response.outputs[0].shape) == [2, 10]
    out = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(2, 10)
    np.testing.assert_allclose(out, _expected(x), rtol=1e-5, atol=1e-6)


def _raw(x, datatype="FP32", shape=None, model="mlp", extra_raw=(), name="input"):
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=list(shape or x.shape))
    request.raw_input_contents.extend([x.tobytes(), *extra_raw])
    return request


def _typed_int(x):
    request = pb.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64]).contents.int_contents.extend([1] * 64)
    return request


def _nan(x):
    x = x.copy()
    x[0, 0] = np.nan
    return _raw(x)


@pytest.mark.parametrize("make, code, fragment", [
    (lambda x: _raw(x, datatype="INT64"), CODE.INVALID_ARGUMENT, "datatype FP32"),
    (lambda x: _raw(x[:, :32].copy()), CODE.INVALID_ARGUMENT, "expects ['batch', 64]"),
    (lambda x: _raw(x, shape=[1, 64]), CODE.INVALID_ARGUMENT, "binary bytes"),
    (lambda x: _raw(x, extra_raw=[b"\0" * 8]), CODE.INVALID_ARGUMENT, "raw_input_contents has 2 entries"),
    (lambda x: _raw(x, name="pixels"), CODE.INVALID_ARGUMENT, "unknown: ['pixels']"),
    (_typed_int, CODE.INVALID_ARGUMENT, "contents.fp32_contents"),
    (_nan, CODE.INVALID_ARGUMENT, "NaN"),
    (lambda x: _raw(np.zeros((9, 64), np.float32)), CODE.INVALID_ARGUMENT, "largest batch is 8"),
    (lambda x: _raw(x, model="resnet"), CODE.NOT_FOUND, "unknown model 'resnet'"),
])
def test_each_client_mistake_gets_its_status_and_the_server_keeps_answering(stub, client, make, code, fragment):
    x = _sample(2)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(make(x))
    assert caught.value.code() == code and fragment in caught.value.details(), caught.value.details()
    np.testing.assert_allclose(_infer(client, x).as_numpy("logits"), _expected(x), rtol=1e-5, atol=1e-6)




def _counts(stub) -> dict:
    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name="mlp")).model_stats[0].inference_stats
    return {key: getattr(stats, key).count for key in ("fail", *STAT_PHASES)}


def test_no_statistics_snapshot_counts_a_request_in_some_phases_only(stub, server):
    """gRPC and REST inferences at once while ModelStatistics is read: every snapshot counts each
    answered inference in all five of success, queue and the compute phases, or in none (issue #33)."""
    def send(i):
        if i % 2:
            return [call(f"{server.url}/v2/models/mlp/infer", mlp_tensor())[0] for _ in range(25)]
        x = _sample(1, seed=i)
        return [200 if stub.ModelInfer(_raw(x)).outputs else 0 for _ in range(25)]

    _, after = statistics_under_load(lambda: _counts(stub), send)
    with pytest.raises(grpc.RpcError):  # refused: it counts in fail only
        stub.ModelInfer(_raw(_sample(1)[:, :32].copy()))
    refused = _counts(stub)
    assert {k: refused[k] - after[k] for k in refused} == {"fail": 1, **{k: 0 for k in STAT_PHASES}}


def test_a_malformed_message_is_invalid_argument(grpc_port, client):
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        raw_call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            raw_call(b"\x0a\xff\xff\xff\xff\x0f")  # field 1, a length past the end
    assert caught.value.code() == CODE.INVALID_ARGUMENT and "ModelInferRequest" in caught.value.details()
    assert client.is_server_live()


def test_a_full_queue_is_resource_exhausted(stub, server):
    waiting = threading.Thread(target=lambda: stub.ModelInfer(_raw(_sample(6), model="held")))  # waits 400 ms
    waiting.start()
    try:
        deadline = time.monotonic() + 5
        while 'workbench_queue_depth{model="held"} 6' not in call(server.url + "/metrics")[2].decode():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(_raw(_sample(4), model="held"))
        assert caught.value.code() == CODE.RESOURCE_EXHAUSTED and "queue full" in caught.value.details()
    finally:
        waiting.join()


def test_load_and_unload_are_unimplemented(client):
    for action in (client.load_model, client.unload_model):
        with pytest.raises(grpcclient.InferenceServerException) as caught:
            action("mlp")
        assert "UNIMPLEMENTED" in str(caught.value.status()) and "unsupported" in caught.value.message()


def test_a_taken_grpc_port_stops_the_server_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(WorkbenchError, match="could not listen for gRPC on 127.0.0.1:"):
            start_server(tmp_path, model_config("mlp"), grpc_port=taken.getsockname()[1])


def test_grpc_port_is_checked_before_anything_loads():
    assert_one_line_error(*invoke("serve", "no-such.tar.gz", "--port", "9000", "--grpc-port", "9000"),
                          "--grpc-port must be 1-65535 and not --port (9000)")


def test_bench_over_grpc_checks_the_answer_and_records_the_protocol(project):
    record = short_served_bench(project, "--protocol", "grpc")
    assert record["settings"]["protocol"] == "grpc" and record["settings"]["wire"] == "binary"


QUICK = ("--concurrency", "2", "--duration", "0.5", "--warmup", "0.1", "--min-requests", "10", "--json")


def test_bench_drives_a_grpc_server_at_url_as_perf_analyzer_would(project, grpc_port):
    """--url host:port, the form perf_analyzer's -u takes: the outputs are checked over gRPC, then timed."""
    result = workbench_cli("bench", "--model", "mlp", "--url", f"127.0.0.1:{grpc_port}", "--protocol", "grpc",
                           *QUICK, home=project)
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = read_records(Path(json.loads(result.stdout)["run_dir"]))
    assert record["engine"] == "remote" and record["status"] == "ok" and record["correctness"]["passed"]
    assert record["settings"]["protocol"] == "grpc" and record["result"]["good"] >= 10
    assert not record["result"]["errors"]


def test_bench_grpc_url_without_the_model_names_the_models_it_has(project, grpc_port, tmp_path):
    other = tmp_path / "other.onnx"
    shutil.copy(models.resolve("mlp").path, other)
    result = workbench_cli("bench", "--model", str(other), "--url", f"grpc://127.0.0.1:{grpc_port}", "--protocol",
                           "grpc", *QUICK, home=project)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "has no model 'other'",
                          "it has: held, mlp")


@pytest.mark.parametrize("url, fragment", [
    ("http://127.0.0.1:8001", "--protocol grpc takes --url host:port"),
    ("127.0.0.1", "--protocol grpc takes --url host:port"),
    ("127.0.0.1:{free}", "the gRPC check request to 127.0.0.1:{free} failed"),
])
def test_bench_grpc_url_mistakes_get_one_line(project, url, fragment):
    free = free_port()
    assert_one_line_error(*invoke("bench", "--model", "mlp", "--url", url.format(free=free), "--protocol", "grpc"),
                          fragment.format(free=free))


@pytest.mark.parametrize("args, fragment", [
    (("--protocol", "soap"), "--protocol must be rest or grpc"),
    (("--protocol", "grpc"), "without flask-naive"),  # the default engines include it
])
def test_bench_protocol_mistakes_get_one_line(project, args, fragment):
    assert_one_line_error(*invoke("bench", "--model", "mlp", *args), fragment)
