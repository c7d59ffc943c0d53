"""The open-loop generator against a real server: nothing is sent before it is due, so no latency
(counted from the due time) is negative or below the request's own service time."""

from tests.helpers import mlp_tensor, model_config, start_server
from workbench.load import generator
from workbench.load.http import Endpoint


def test_no_request_is_sent_early_and_no_latency_is_below_its_service_time(tmp_path):
    server = start_server(tmp_path, model_config("mlp", engine="null"))
    try:
        endpoint = Endpoint.parse(server.url, "/v2/models/mlp/infer")
        spec = generator.LoadSpec(endpoint, [endpoint.post(mlp_tensor())], duration_s=2.0, warmup_s=0.2)
        result = generator.run(generator.open_loop(spec, rate=2000, seed=3))
    finally:
        server.stop()
    assert len(result.sent) > 1000 and (result.status == 200).all()
    assert (result.sent >= result.scheduled).all()
    latency, service = result.done - result.scheduled, result.done - result.sent
    assert (latency > 0).all() and (latency >= service).all()
    summary = result.summary()
    assert min(summary["raw_latency_us"]) > 0
    assert summary["latency_ms"]["p50_ms"] >= summary["service_time_ms"]["p50_ms"]
