"""Engines behind a real server on 127.0.0.1 (or an external URL), driven by the load generator:
closed loop per concurrency, open loop at --rate, and the SLO search."""

import numpy as np

from workbench.bench.session import BenchRun
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
    config_path.write_text(ServerConfig([model], port=port, workers=config.server_workers).to_json())
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
        "workers": config.server_workers,
        "batching": {"max_batch": largest_batch(config.max_batch, sizes), "batch_sizes": sizes,
                     "max_delay_ms": config.max_delay_ms}}


def check_served(run: BenchRun, url: str) -> dict:
    from urllib.request import Request, urlopen

    rows = run.inputs.request_rows
    request = Request(f"{url}/v2/models/{run.source.name}/infer", data=encode_request(run.inputs.sample(rows)),
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
    endpoint = Endpoint.parse(url, f"/v2/models/{run.source.name}/infer")
    samples = [run.inputs.sample(run.inputs.request_rows, i) for i in range(N_PAYLOADS)]
    if run.config.wire == "binary":
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


def _durations(run: BenchRun) -> dict:
    return {"duration_s": run.config.duration_s, "warmup_s": run.config.warmup_s,
            "min_requests": run.config.min_requests}


def _load_spec(run: BenchRun, endpoint, requests) -> generator.LoadSpec:
    return generator.LoadSpec(endpoint, requests, run.config.duration_s, run.config.warmup_s,
                              run.config.min_requests, progress=run.display.progress)


def _open(run: BenchRun, endpoint, requests, rate: float) -> dict:
    return generator.run(generator.open_loop(_load_spec(run, endpoint, requests), rate, run.config.seed)).summary()


def _slo_search(run: BenchRun, engine, endpoint, requests, settings, correctness, steps: int = 6) -> None:
    """Bisect the open-loop rate: the highest rate whose p99 stays under the bound, with no errors."""
    bound = run.config.slo_p99_ms
    closed = [r["result"]["throughput_rps"] for r in run.records
              if r["engine"] == engine and r["scenario"]["kind"] == "closed" and r["result"]]
    high = 1.2 * max(closed) if closed else 1000.0
    low, best, trials = 0.0, None, []
    rate = high
    for _ in range(steps):
        run.display.phase(engine, f"SLO search: {rate:.0f} requests/s (p99 bound {bound:g} ms)")
        result = _open(run, endpoint, requests, rate)
        ok = result["latency_ms"]["p99_ms"] <= bound and not result["errors"]
        trials.append({"rate": rate, "p99_ms": result["latency_ms"]["p99_ms"], "errors": result["errors"],
                       "throughput_rps": result["throughput_rps"], "passed": ok})
        if ok:
            low, best = rate, result
        else:
            high = rate
        rate = (low + high) / 2
    found = {"max_rate_rps": low if best else None, "trials": trials, "at_max_rate": best}
    run.save(engine, {"kind": "slo-search", "slo_p99_ms": bound, "steps": steps, **_durations(run)},
             settings, correctness, {**(best or {}), **found})
