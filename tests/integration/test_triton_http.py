"""Triton's own HTTP client against the workbench server: the read-only extensions perf_analyzer and
model_analyzer call (model config, repository index, statistics) next to binary inference."""

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers import STAT_PHASES, call, mlp_tensor, statistics_under_load
from workbench import models, reference


@pytest.fixture(scope="module")
def client(mlp_server):
    with httpclient.InferenceServerClient(f"127.0.0.1:{mlp_server.port}") as c:
        yield c


def test_server_metadata_advertises_the_extensions(client):
    assert {"model_configuration", "statistics", "model_repository"} <= set(client.get_server_metadata()["extensions"])


def test_model_config_has_the_servers_batching(client):
    config = client.get_model_config("mlp")
    assert config["name"] == "mlp" and config["max_batch_size"] == 8
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [64]}]
    assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10]}]
    assert config["dynamic_batching"]["default_queue_policy"]["max_queue_size"] == 64
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_config("nope")


def test_repository_index_and_load_unload_refused_plainly(client, mlp_server):
    assert client.get_model_repository_index() == [{"name": "mlp", "version": "1", "state": "READY", "reason": ""}]
    for path in ("load", "unload"):
        status, _, body = call(f"{mlp_server.url}/v2/repository/models/mlp/{path}", b"{}")
        assert status == 400 and "unsupported" in json.loads(body)["error"]
    with pytest.raises(InferenceServerException, match="unsupported"):
        client.load_model("mlp")


def test_statistics_count_what_the_server_did(client, mlp_server):
    before = client.get_inference_statistics("mlp")["model_stats"][0]
    x = models.sample_inputs(models.load(models.resolve("mlp")), 3, seed=2)["input"]
    tensor = httpclient.InferInput("input", [3, 64], "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = client.infer("mlp", [tensor], outputs=[httpclient.InferRequestedOutput("logits", binary_data=True)])
    np.testing.assert_allclose(result.as_numpy("logits"), reference.run(models.resolve("mlp").path, {"input": x})[0],
                               rtol=1e-5, atol=1e-6)
    assert call(f"{mlp_server.url}/v2/models/mlp/infer", mlp_tensor(datatype="INT64"))[0] == 400
    after = client.get_inference_statistics("mlp")["model_stats"][0]
    delta = {k: after["inference_stats"][k]["count"] - before["inference_stats"][k]["count"]
             for k in after["inference_stats"]}
    # the refused request counts in fail only, its decode too: Triton's phases count successful inferences
    assert delta == {"success": 1, "fail": 1, "queue": 1, "compute_input": 1, "compute_infer": 1, "compute_output": 1}
    assert after["inference_count"] - before["inference_count"] == 3
    assert after["execution_count"] - before["execution_count"] == 1
    for key, value in after["inference_stats"].items():  # real time, never a stand-in zero
        assert value["ns"] > before["inference_stats"][key]["ns"], key
    assert after["last_inference"] > 0
    assert [m["name"] for m in client.get_inference_statistics()["model_stats"]] == ["mlp"]  # every model's




def _counts(mlp_server) -> dict:
    stats = json.loads(call(f"{mlp_server.url}/v2/models/mlp/stats")[2])["model_stats"][0]["inference_stats"]
    return {key: value["count"] for key, value in stats.items()}


def test_no_statistics_snapshot_counts_a_request_in_some_phases_only(mlp_server):
    """perf_analyzer reads the statistics while its load runs and aborts unless success, queue,
    compute_input, compute_infer and compute_output moved by the same count (issue #33)."""
    def send(_):
        return [call(f"{mlp_server.url}/v2/models/mlp/infer", mlp_tensor())[0] for _ in range(25)]

    _, after = statistics_under_load(lambda: _counts(mlp_server), send)
    # a refused request (a wrong shape) counts in fail only: Triton's phases count successful inferences
    assert call(f"{mlp_server.url}/v2/models/mlp/infer", mlp_tensor(shape=[1, 32], data=[0.0] * 32))[0] == 400
    refused = _counts(mlp_server)
    assert {k: refused[k] - after[k] for k in refused} == {"fail": 1, **{k: 0 for k in STAT_PHASES}}
