"""Triton's model configuration and statistics JSON, checked against Triton's own protobuf schema
(tritonclient ships model_config.proto and grpc_service.proto compiled): an unknown or mistyped field fails."""

import pytest
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2

from workbench.serving import triton
from workbench.serving.protocol import TensorMeta

INPUTS = [TensorMeta("pixels", "float32", ("batch", 3, 224, "width")), TensorMeta("mask", "bool", (-1, 4))]
OUTPUTS = [TensorMeta("logits", "float32", ("batch", 1000)), TensorMeta("ids", "int64", ("batch",))]


def _config(**over):
    kw = {"max_batch": 8, "batch_sizes": (1, 4, 8, 16), "max_delay_s": 0.0025, "max_queue_rows": 256, **over}
    return triton.model_config("resnet", "workbench-tvm", INPUTS, OUTPUTS, **kw)


def test_model_config_is_tritons_schema_with_the_servers_real_batching():
    config = _config()
    parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig())  # raises on any field Triton lacks
    assert parsed.max_batch_size == 8 and parsed.platform == "workbench-tvm"
    assert [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in parsed.input] == \
        [("pixels", "TYPE_FP32", [3, 224, -1]), ("mask", "TYPE_BOOL", [4])]
    assert [list(t.dims) for t in parsed.output] == [[1000], []]
    batching = parsed.dynamic_batching
    assert list(batching.preferred_batch_size) == [1, 4, 8]  # 16 is compiled but past --max-batch
    assert batching.max_queue_delay_microseconds == 2500
    assert batching.default_queue_policy.max_queue_size == 256


def test_the_engines_threads_are_a_parameter_in_tritons_schema():
    parsed = json_format.ParseDict(_config(threads=1), model_config_pb2.ModelConfig())
    assert parsed.parameters["engine_threads"].string_value == "1"
    assert "engine_threads" not in _config()["parameters"]  # an engine without threads (the null one)


def test_any_size_models_name_no_preferred_batch():
    assert "preferred_batch_size" not in _config(batch_sizes=None)["dynamic_batching"]


def test_statistics_are_tritons_schema_in_integer_nanoseconds():
    durations = {"success": (3, 0.012), "fail": (1, 0.0005), "queue": (3, 0.0001), "compute_input": (4, 0.00003),
                 "compute_infer": (3, 0.009), "compute_output": (3, 0.00002)}
    stats = triton.model_statistics("resnet", durations, inference_count=5, execution_count=2,
                                    last_inference_ms=1_700_000_000_000)
    parsed = json_format.ParseDict({"model_stats": [stats]}, service_pb2.ModelStatisticsResponse())
    entry = parsed.model_stats[0]
    assert (entry.inference_count, entry.execution_count, entry.last_inference) == (5, 2, 1_700_000_000_000)
    assert (entry.inference_stats.success.count, entry.inference_stats.success.ns) == (3, 12_000_000)
    assert entry.inference_stats.compute_input.ns == 30_000 and entry.inference_stats.fail.count == 1
    assert all(isinstance(v["ns"], int) for v in stats["inference_stats"].values())


def test_repository_index_lists_every_model_ready():
    index = triton.repository_index(["b", "a"])
    parsed = json_format.ParseDict({"models": index}, service_pb2.RepositoryIndexResponse())
    assert [(m.name, m.state) for m in parsed.models] == [("a", "READY"), ("b", "READY")]


@pytest.mark.parametrize("name", ["model_configuration", "statistics", "model_repository", "binary_tensor_data"])
def test_extensions_are_advertised(name):
    assert name in triton.EXTENSIONS
