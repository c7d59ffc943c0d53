"""Triton's read-only protocol extensions, as plain JSON: model configuration, statistics, repository index.

perf_analyzer and model_analyzer ask every v2 server for a model's configuration before they send a
request; these are what Triton answers, built from what the server really does (its batch policy and
the counters behind /metrics). The gRPC front end (serving/grpc_server.py) sends the same dicts as
protobuf messages. Pure functions of their arguments, so unit tests check them without a server.
"""

from workbench.serving.protocol import TensorMeta

# Advertised in GET /v2 (and gRPC ServerMetadata): what a client may call beyond the core protocol.
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository"]
UNSUPPORTED_REPOSITORY = ("this server's models are fixed when it starts: the model repository extension is "
                          "read-only here (index only), so load and unload are unsupported; restart the server "
                          "with the models you want (workbench serve --models ...)")


def _tensor(meta: TensorMeta) -> dict:
    """A Triton model-config tensor: dims without the batch dimension, -1 where a dimension varies."""
    dims = [d if isinstance(d, int) and d >= 0 else -1 for d in meta.shape[1:]]
    return {"name": meta.name, "data_type": f"TYPE_{meta.datatype}", "dims": dims}


def model_config(name: str, platform: str, inputs: list[TensorMeta], outputs: list[TensorMeta], *,
                 max_batch: int, batch_sizes: tuple[int, ...] | None, max_delay_s: float,
                 max_queue_rows: int, threads: int | None = None) -> dict:
    """Triton's model configuration (model_config.proto as JSON) for a model this server runs.

    Every served model batches on its first dimension, so max_batch_size is the largest batch the server
    runs and dims leave the batch out. The dynamic batcher is the server's own: the compiled sizes are
    the preferred ones (a batch is padded up to one of them), and the queue bound counts rows. The
    engine's threads are a parameter, as Triton's ONNX Runtime backend takes intra_op_thread_count."""
    batching = {"max_queue_delay_microseconds": round(max_delay_s * 1e6),
                "default_queue_policy": {"max_queue_size": max_queue_rows}}
    if batch_sizes:
        batching["preferred_batch_size"] = sorted(b for b in batch_sizes if b <= max_batch)
    return {"name": name, "platform": platform, "backend": "workbench", "max_batch_size": max_batch,
            "input": [_tensor(m) for m in inputs], "output": [_tensor(m) for m in outputs],
            "dynamic_batching": batching,
            "version_policy": {"latest": {"num_versions": 1}},
            "parameters": {"max_queue_rows": {"string_value": str(max_queue_rows)},
                           "queue_bound_unit": {"string_value": "rows (max_queue_size counts rows, not requests)"},
                           **({"engine_threads": {"string_value": str(threads)}} if threads is not None else {})}}


def _duration(count: int, seconds: float) -> dict:
    return {"count": count, "ns": round(seconds * 1e9)}


def model_statistics(name: str, durations: dict[str, tuple[int, float]], inference_count: int,
                     execution_count: int, last_inference_ms: int) -> dict:
    """One model's entry of Triton's statistics response.

    `durations` maps success, fail, queue, compute_input (decoding the request's tensors),
    compute_infer (the engine time of each request's batch, counted once per request, as Triton
    does) and compute_output (encoding the answer) to (count, seconds). As in Triton, queue and the
    compute phases count successful inferences only, recorded with success when each is answered (so
    their counts always equal success's, which perf_analyzer checks); a refused or failed request
    counts in fail only. inference_count counts rows, execution_count engine calls. The server caches
    nothing, so the cache statistics are absent."""
    stats = {key: _duration(*durations[key]) for key in
             ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")}
    return {"name": name, "version": "1", "last_inference": last_inference_ms, "inference_count": inference_count,
            "execution_count": execution_count, "inference_stats": stats, "batch_stats": []}


def repository_index(names: list[str]) -> list[dict]:
    """Every served model is loaded before the server answers, so each is READY."""
    return [{"name": name, "version": "1", "state": "READY", "reason": ""} for name in sorted(names)]
