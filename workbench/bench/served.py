"""Engines behind a real server on 127.0.0.1 (or an external URL), driven by the load generator:
closed loop per concurrency, open loop at --rate, and the SLO search."""

from urllib.parse import quote

import numpy as np

from workbench.bench import slo
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
                        providers=list(run.profile.onnxruntime_providers))
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

        runtime = {"openvino": configured(LATENCY)}
    return ServerProcess(engine, argv, port, log), {
        "server": "workbench-server (uvicorn, httptools, uvloop)", "engine": kind, "wire": config.wire, **runtime,
        **({"protocol": "grpc", "wire": "binary"} if grpc else {}),  # gRPC always carries raw tensors
        "workers": config.server_workers,
        "batching": {"max_batch": largest_batch(config.max_batch, sizes), "batch_sizes": sizes,
                     "max_delay_ms": config.max_delay_ms}}


def model_url(url: str, name: str, *rest: str) -> str:
    """A model's v2 URL, its name quoted (a file "my model.onnx" is the model "my model")."""
    return "/".join([url, "v2", "models", quote(name, safe=""), *rest])


def check_remote_model(url: str, name: str) -> None:
    """Before a run folder exists: the server at --url answers and has the model; else one line that
    names the models it has (or says how to list them)."""
    from urllib.error import HTTPError
    from urllib.request import urlopen

    try:
        with urlopen(model_url(url, name), timeout=30):
            return
    except HTTPError as exc:
        if exc.code != 404:  # no metadata route, say: the check request decides
            return
        raise WorkbenchError(f"the server at {url} has no model '{name}' ({_models_there(url, exc.read())}); "
                             "pass --model with one of its models, or serve this one there") from None
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"the check request to {url} failed ({type(exc).__name__}: {exc}); is a server for "
                             f"'{name}' running there?") from None


def _models_there(url: str, not_found: bytes) -> str:
    """What the server says it has: its repository index (Triton's extension), else its 404's words."""
    import json
    from urllib.request import Request, urlopen

    try:
        request = Request(f"{url}/v2/repository/index", data=b"{}", headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=10) as response:
            names = sorted({str(m["name"]) for m in json.loads(response.read())})
        return f"it has: {', '.join(names)}" if names else "its repository index lists no model"
    except (OSError, ValueError, TypeError, KeyError):
        pass
    try:
        said = json.loads(not_found).get("error")
    except (ValueError, AttributeError):
        said = None
    if said:
        return "it says: " + " ".join(str(said).split())[:300]
    return (f"it does not list its models; POST {url}/v2/repository/index did not answer, so ask whoever "
            "started it which names it serves")


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


def run_served(run: BenchRun, engine: str, url: str, settings: dict, alive=lambda: True, rss_mb=lambda: None) -> None:
    correctness = _correctness(run, engine, url)
    if correctness is not None and not correctness["passed"]:
        run.save(engine, {"kind": "closed"}, settings, correctness, None, "rejected",
                 "served outputs differ from ONNX Runtime (or the check request failed); not timed")
        return
    endpoint = Endpoint.parse(url, model_url("", run.source.name, "infer"))
    samples = [run.inputs.sample(run.inputs.request_rows, i) for i in range(N_PAYLOADS)]
    if settings.get("protocol") == "grpc":
        endpoint, requests, correctness = _grpc_load(run, engine, samples, correctness)
        if correctness is not None and not correctness["passed"]:
            run.save(engine, {"kind": "closed"}, settings, correctness, None, "rejected",
                     "outputs served over gRPC differ from ONNX Runtime (or the check request failed); not timed")
            return
    elif run.config.wire == "binary":
        requests = [endpoint.post(*encode_binary_request(s)) for s in samples]
    else:
        requests = [endpoint.post(encode_request(s)) for s in samples]
    for concurrency in run.config.concurrency:
        if not alive():
            run.save(engine, {"kind": "closed", "concurrency": concurrency}, settings, correctness, None,
                     "failed", "the server process had exited; not measured")
            continue
        run.display.phase(engine, f"closed loop, concurrency {concurrency}")
        rss_start = rss_mb()
        result = generator.run(generator.closed_loop(_load_spec(run, endpoint, requests), concurrency)).summary()
        if rss_start is not None:  # a soak's memory verdict: resident memory before and after the load
            result["server_rss_mb"] = {"start": rss_start, "end": rss_mb()}
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


def _grpc_load(run: BenchRun, engine: str, samples: list, correctness: dict | None):
    """The server's gRPC endpoint (its port from the config bench wrote), the requests as serialized
    ModelInferRequests, and the served outputs checked over gRPC too."""
    import json

    from workbench.load.grpc_client import GrpcEndpoint, check, infer_request

    port = json.loads((run.run_dir / "logs" / f"{engine}.json").read_text())["grpc_port"]
    endpoint = GrpcEndpoint("127.0.0.1", port)
    if correctness is not None and correctness.get("passed"):
        rows = run.inputs.request_rows
        try:
            outputs = generator.run(check(endpoint, infer_request(run.source.name, run.inputs.sample(rows))))
            correctness = run.inputs.check([outputs.get(n, np.empty(0)) for n in run.inputs.output_names], rows)
        except Exception as exc:  # grpc's errors, a malformed answer: the engine is recorded rejected
            correctness = {"passed": False, "error": f"over gRPC: {type(exc).__name__}: {exc}"}
    return endpoint, [infer_request(run.source.name, s) for s in samples], correctness


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
