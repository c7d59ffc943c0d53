"""Engines behind a real server on 127.0.0.1 (or an external URL), driven by the load generator:
closed loop per concurrency, open loop at --rate, and the SLO search."""

import numpy as np

from workbench.bench import slo
from workbench.bench.remote import grpc_endpoint, model_url
from workbench.bench.session import BenchRun
from workbench.console import warn
from workbench.engines import registry
from workbench.errors import WorkbenchError
from workbench.load import generator
from workbench.load.http import Endpoint
from workbench.serving.protocol import decode_response, encode_binary_request, encode_request

N_PAYLOADS = 8  # distinct seeded requests, cycled


def server_process(run: BenchRun, engine: str):
    """The server process for a served engine (not started) and the settings its records carry."""
    from workbench.serving.batcher import largest_batch
    from workbench.serving.process import ServerProcess, free_port, python_module
    from workbench.serving.server import ModelConfig, ServerConfig

    port, log = free_port(), run.run_dir / "logs" / f"{engine}.log"
    if engine == registry.FLASK_NAIVE:
        argv = python_module("workbench.serving.naive_flask", str(run.source.path), str(port))
        return ServerProcess(engine, argv, port, log), {"server": "flask (threaded dev server)",
                                                        "batching": "none", "wire": "json"}
    info, config = registry.get(engine), run.config
    kind = info.runtime
    sizes = list(run.batch_sizes) if info.needs_build else None
    model = ModelConfig(run.source.name, kind, str(run.source.path), run.inputs_spec, run.outputs_spec,
                        build_dir=str(run.build_dir) if info.needs_build else None, batch_sizes=sizes,
                        max_batch=config.max_batch, max_delay_ms=config.max_delay_ms,
                        providers=list(run.profile.onnxruntime_providers), threads=config.engine_threads)
    config_path = run.run_dir / "logs" / f"{engine}.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    grpc = {"grpc_port": free_port()} if config.protocol == "grpc" else {}  # run_served reads it back from the file
    config_path.write_text(ServerConfig([model], port=port, workers=config.server_workers, **grpc).to_json())
    argv = python_module("workbench.serving.server", str(config_path))
    runtime = {}
    if info.needs_build:
        from workbench.engines.tvm_engine import build_settings

        runtime = {"libraries_sha256": build_settings(run.build_dir)["libraries_sha256"]}
    if kind == registry.OPENVINO:  # what the server asks OpenVINO for: the LATENCY hint, f32, the threads
        from workbench.engines.openvino_engine import LATENCY, configured

        runtime = {"openvino": configured(LATENCY, config.engine_threads)}
    return ServerProcess(engine, argv, port, log), {
        "server": "workbench-server (uvicorn, httptools, uvloop)", "engine": kind, "wire": config.wire, **runtime,
        **({"protocol": "grpc", "wire": "binary"} if grpc else {}),  # gRPC always carries raw tensors
        "workers": config.server_workers,
        **({"engine_threads": config.engine_threads} if config.engine_threads else {}),  # else each engine's default
        "batching": {"max_batch": largest_batch(config.max_batch, sizes), "batch_sizes": sizes,
                     "max_delay_ms": config.max_delay_ms}}


def check_served(run: BenchRun, url: str) -> dict:
    from urllib.request import Request, urlopen

    rows = run.inputs.request_rows
    request = Request(model_url(url, run.source.name, "infer"), data=encode_request(run.inputs.sample(rows)),
                      headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=60) as response:
        by_name = decode_response(response.read())
    return run.inputs.check([by_name.get(n, np.empty(0)) for n in run.inputs.output_names], rows)


def _correctness(run: BenchRun, engine: str, url: str) -> dict | None:
    """The served outputs checked against ONNX Runtime (None for server-null, which has none)."""
    if registry.is_null(engine):
        return None
    try:
        return check_served(run, url)
    except (OSError, ValueError, KeyError) as exc:
        if engine == registry.REMOTE:
            raise WorkbenchError(f"the check request to {url} failed ({type(exc).__name__}: {exc}); "
                                 f"is a server for '{run.source.name}' running there?") from None
        return {"passed": False, "error": f"{type(exc).__name__}: {exc}"}


def run_served(run: BenchRun, engine: str, url: str, settings: dict, process=None) -> None:
    """`process` is the ServerProcess bench started (None for an external URL): its liveness, memory
    and CPU time go into the records."""
    alive = process.alive if process is not None else lambda: True
    grpc = settings.get("protocol") == "grpc"
    endpoint, requests, correctness = (_grpc(run, engine, url) if grpc else _rest(run, engine, url))
    if correctness is not None and not correctness["passed"]:
        run.save(engine, {"kind": "closed"}, settings, correctness, None, "rejected",
                 f"outputs served{' over gRPC' if grpc else ''} differ from ONNX Runtime (or the check request "
                 "failed); not timed")
        return
    for concurrency in run.config.concurrency:
        if not alive():
            run.save(engine, {"kind": "closed", "concurrency": concurrency}, settings, correctness, None,
                     "failed", "the server process had exited; not measured")
            continue
        run.display.phase(engine, f"closed loop, concurrency {concurrency}")
        result = _closed(run, endpoint, requests, concurrency, process)
        run.save(engine, {"kind": "closed", "concurrency": concurrency, **_durations(run)},
                 settings, correctness, result, "ok" if alive() else "failed",
                 None if alive() else "the server process exited during the run")
    if run.config.rate is not None and alive():
        run.display.phase(engine, f"open loop, {run.config.rate:g} requests/s")
        result = _open(run, endpoint, requests, run.config.rate)
        run.save(engine, {"kind": "open", "rate": run.config.rate, "seed": run.config.seed, **_durations(run)},
                 settings, correctness, result)
    if run.config.slo_p99_ms is not None and alive():
        _slo_search(run, engine, endpoint, requests, settings, correctness)


def _samples(run: BenchRun) -> list:
    return [run.inputs.sample(run.inputs.request_rows, i) for i in range(N_PAYLOADS)]


def _rest(run: BenchRun, engine: str, url: str):
    """The v2 infer route, the seeded requests in --wire's format, and the served outputs checked."""
    correctness = _correctness(run, engine, url)
    endpoint = Endpoint.parse(url, model_url("", run.source.name, "infer"))
    if run.config.wire == "binary":
        return endpoint, [endpoint.post(*encode_binary_request(s)) for s in _samples(run)], correctness
    return endpoint, [endpoint.post(encode_request(s)) for s in _samples(run)], correctness


def _grpc(run: BenchRun, engine: str, url: str):
    """The gRPC endpoint (--url's for an external server, else the port in the config bench wrote),
    the requests as serialized ModelInferRequests, and the outputs checked over gRPC."""
    import json

    from workbench.load.grpc_client import GrpcEndpoint, check, infer_request

    if engine == registry.REMOTE:
        endpoint = grpc_endpoint(url)
    else:
        config = json.loads((run.run_dir / "logs" / f"{engine}.json").read_text())
        endpoint = GrpcEndpoint("127.0.0.1", config["grpc_port"])
    requests = [infer_request(run.source.name, s) for s in _samples(run)]
    if registry.is_null(engine):
        return endpoint, requests, None
    rows = run.inputs.request_rows
    try:
        outputs = generator.run(check(endpoint, infer_request(run.source.name, run.inputs.sample(rows))))
    except Exception as exc:  # grpc's errors, a malformed answer: the engine is recorded rejected
        said = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if engine == registry.REMOTE:
            raise WorkbenchError(f"the gRPC check request to {url} failed ({said}); is a gRPC server for "
                                 f"'{run.source.name}' running there?") from None
        return endpoint, requests, {"passed": False, "error": f"over gRPC: {said}"}
    return endpoint, requests, run.inputs.check([outputs.get(n, np.empty(0)) for n in run.inputs.output_names], rows)


def _closed(run: BenchRun, endpoint, requests, concurrency: int, process) -> dict:
    """One closed-loop run, and what the server process spent on it: resident memory before and after
    (a soak's memory verdict) and CPU time per answered request, warm-up included on both sides."""
    rss_start, cpu_start = (process.rss_mb(), process.cpu_seconds()) if process is not None else (None, None)
    load = generator.run(generator.closed_loop(_load_spec(run, endpoint, requests), concurrency))
    cpu_end = process.cpu_seconds() if process is not None else None
    result = load.summary()
    if rss_start is not None:
        result["server_rss_mb"] = {"start": rss_start, "end": process.rss_mb()}
    answered = int((load.status == 200).sum())
    if cpu_start is not None and cpu_end is not None and answered:
        result["server_cpu_us_per_request"] = (cpu_end - cpu_start) / answered * 1e6
    return result


def _durations(run: BenchRun) -> dict:
    return {"duration_s": run.config.duration_s, "warmup_s": run.config.warmup_s,
            "min_requests": run.config.min_requests}


def _load_spec(run: BenchRun, endpoint, requests) -> generator.LoadSpec:
    return generator.LoadSpec(endpoint, requests, run.config.duration_s, run.config.warmup_s,
                              run.config.min_requests, progress=run.display.progress)


def _open(run: BenchRun, endpoint, requests, rate: float) -> dict:
    return generator.run(generator.open_loop(_load_spec(run, endpoint, requests), rate, run.config.seed)).summary()


def _slo_search(run: BenchRun, engine, endpoint, requests, settings, correctness) -> None:
    """Bisect the open-loop rate from 1.2x the closed loop's best throughput (bench/slo.py: steps
    that break monotonicity, and the boundary it ends on, are measured again)."""
    bound = run.config.slo_p99_ms
    closed = [r["result"]["throughput_rps"] for r in run.records
              if r["engine"] == engine and r["scenario"]["kind"] == "closed" and r["result"]]

    def measure(rate: float, why: str | None) -> dict:
        again = f"re-measuring ({why}): " if why else ""
        run.display.phase(engine, f"SLO search: {again}{rate:.0f} requests/s (p99 bound {bound:g} ms)")
        return _open(run, endpoint, requests, rate)

    found = slo.search(measure, bound, 1.2 * max(closed) if closed else 1000.0)
    if found["flag"]:
        warn(f"{engine}: SLO search: {found['flag']}")
    run.save(engine, {"kind": "slo-search", "slo_p99_ms": bound, "steps": slo.STEPS, **_durations(run)},
             settings, correctness, found)
