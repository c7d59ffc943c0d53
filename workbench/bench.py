"""`workbench bench`: every engine fed the same seeded inputs, checked, then measured side by side.

Direct engines (tvm, onnxruntime, null) are called in-process: latency per batch size and offline
throughput. Served engines (flask-naive, server-*) are real server processes on 127.0.0.1 driven
by the in-process load generator: closed loop per concurrency, open loop at --rate, SLO search.
An engine whose outputs differ from ONNX Runtime's is recorded as rejected and not timed.
"""

import dataclasses
import json
import math
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from workbench import fingerprint, models, records, reference
from workbench.console import console, warn
from workbench.errors import WorkbenchError
from workbench.load import direct, generator
from workbench.load.http import Endpoint
from workbench.targets import TargetProfile

DIRECT_ENGINES = ("tvm", "onnxruntime", "null")
SERVED_ENGINES = ("flask-naive", "server-tvm", "server-onnxruntime", "server-null")
ENGINES = DIRECT_ENGINES + SERVED_ENGINES
REMOTE = "remote"
N_PAYLOADS = 8  # distinct seeded requests, cycled


@dataclass(frozen=True)
class BenchConfig:
    model: str
    target: str
    engines: tuple[str, ...] = ENGINES
    concurrency: tuple[int, ...] = (1, 64)
    batch_sizes: tuple[int, ...] | None = None  # direct measurements and tvm builds; None: the profile's
    rate: float | None = None
    slo_p99_ms: float | None = None
    duration_s: float = 10.0
    warmup_s: float = 2.0
    min_requests: int = 200
    seed: int = 0
    url: str | None = None
    max_batch: int = 32
    max_delay_ms: float = 0.0
    server_workers: int = 1
    rtol: float = 1e-4
    atol: float = 1e-5
    direct_spec: direct.DirectSpec = field(default_factory=direct.DirectSpec)
    reports_dir: Path | None = None
    rpc: str | None = None  # tracker host:port: the tvm engine is timed on a device there
    rpc_key: str | None = None
    rpc_wait_s: float = 30.0
    wire: str = "json"  # workbench-server requests: v2 JSON tensors, or the binary tensor extension


def validate(config: BenchConfig) -> None:
    if config.wire not in ("json", "binary"):
        raise WorkbenchError(f"--wire must be json or binary (got {config.wire!r})")
    if config.wire == "binary" and "flask-naive" in config.engines and not config.url:
        raise WorkbenchError("flask-naive speaks JSON only, so --wire binary would compare unequal requests; "
                             "pass --engines without flask-naive, or --wire json")
    if not config.engines:
        raise WorkbenchError(f"--engines names no engine; choose from: {', '.join(ENGINES)}")
    unknown = [e for e in config.engines if e not in ENGINES]
    if unknown:
        raise WorkbenchError(f"unknown engine '{unknown[0]}'; choose from: {', '.join(ENGINES)}")
    if not config.concurrency or any(c < 1 for c in config.concurrency):
        raise WorkbenchError("--concurrency takes positive integers, e.g. 1,4,16,64")
    if config.rate is not None and not 0 < config.rate < math.inf:
        raise WorkbenchError(f"--rate must be a positive number of requests per second (got {config.rate})")
    if config.slo_p99_ms is not None and not config.slo_p99_ms > 0:
        raise WorkbenchError(f"--slo-p99-ms must be a positive number of milliseconds (got {config.slo_p99_ms})")
    if not config.duration_s > 0 or not config.warmup_s >= 0:
        raise WorkbenchError("--duration must be positive and --warmup non-negative (seconds)")
    if config.seed < 0 or config.min_requests < 0:
        raise WorkbenchError("--seed and --min-requests must be non-negative integers")
    reference.check_tolerance(config.rtol, config.atol)
    if config.max_batch < 1 or config.max_delay_ms < 0 or config.server_workers < 1:
        raise WorkbenchError("--max-batch and --server-workers must be at least 1, --max-delay-ms non-negative")
    if config.rpc is not None:
        from workbench.fleet import check_wait

        check_wait(config.rpc_wait_s)  # before the build, not after it


def v2_binary_request(inputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The binary tensor extension: a JSON header naming each input's byte count, the raw bytes
    after it in input order, and binary outputs asked for. Returns the body and its header."""
    from workbench.serving.protocol import DATATYPE_OF

    header = orjson.dumps({"inputs": [{"name": n, "shape": list(a.shape), "datatype": DATATYPE_OF[str(a.dtype)],
                                       "parameters": {"binary_data_size": a.nbytes}} for n, a in inputs.items()],
                           "parameters": {"binary_data_output": True}})
    body = header + b"".join(np.ascontiguousarray(a).tobytes() for a in inputs.values())
    return body, {"Inference-Header-Content-Length": str(len(header))}


def v2_request(inputs: dict[str, np.ndarray]) -> bytes:
    from workbench.serving.protocol import DATATYPE_OF

    return orjson.dumps({"inputs": [{"name": n, "shape": list(a.shape), "datatype": DATATYPE_OF[str(a.dtype)],
                                     "data": a.ravel()} for n, a in inputs.items()]},
                        option=orjson.OPT_SERIALIZE_NUMPY)


class Bench:
    def __init__(self, config: BenchConfig, profile: TargetProfile, display):
        from workbench.paths import project_root

        self.config, self.profile, self.display = config, profile, display
        self.source = models.resolve(config.model)
        self.model = models.load(self.source)
        self.inputs_spec = models.spec_dicts(models.input_specs(self.model))
        self.outputs_spec = models.spec_dicts(models.output_specs(self.model))
        self.output_names = [s["name"] for s in self.outputs_spec]
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_id = f"run-{stamp}-{self.source.name}-{profile.name}"
        self.run_dir = (config.reports_dir or project_root() / "reports") / self.run_id
        self.records: list[dict] = []
        self.build_dir: Path | None = None
        self.batch_sizes = config.batch_sizes or profile.batch_sizes
        self.model_sha256 = self.source.sha256()
        self._samples: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        self._expected: dict[int, list[np.ndarray]] = {}
        self._reference = None
        self._common = {"run_id": self.run_id, "model": {"name": self.source.name, "path": str(self.source.path),
                                                         "sha256": self.model_sha256},
                        "target": profile.name, "command": shlex.join(["workbench", *sys.argv[1:]]),
                        "provenance": fingerprint.provenance()}

    # ---- shared pieces -------------------------------------------------------------------------
    def sample(self, batch: int, seed_offset: int = 0) -> dict[str, np.ndarray]:
        key = (batch, seed_offset)
        if key not in self._samples:
            self._samples[key] = models.sample_inputs(self.model, batch, self.config.seed + seed_offset)
        return self._samples[key]

    def check(self, outputs: list[np.ndarray], batch: int) -> dict:
        """Outputs for `sample(batch)` against ONNX Runtime's, which are computed once per batch size."""
        if batch not in self._expected:
            self._reference = self._reference or reference.session(self.source.path)
            self._expected[batch] = reference.run(self.source.path, self.sample(batch), self._reference)
        results = reference.compare(self.output_names, outputs, self._expected[batch], self.config.rtol,
                                    self.config.atol)
        return {"passed": all(r.passed for r in results), "rtol": self.config.rtol, "atol": self.config.atol,
                "outputs": [r.as_dict() for r in results]}

    def save(self, engine: str, scenario: dict, settings: dict, correctness: dict | None, result: dict | None,
             status: str = "ok", note: str | None = None) -> dict:
        record = {**self._common, "engine": engine, "scenario": scenario, "settings": settings,
                  "correctness": correctness, "result": result, "status": status, "note": note}
        records.write_record(self.run_dir, record)
        self.records.append(record)
        if result and result.get("generator_cpu", 0) > records.GENERATOR_SATURATED:
            warn(f"{engine}: the load generator used {result['generator_cpu']:.0%} of a core; "
                 "it may be the bottleneck, so this throughput is a lower bound")
        return record

    def ensure_build(self) -> Path:
        """The compiled model for this target, built now (with the records there are) if missing or stale."""
        from workbench.compiler.builder import CompileRequest, ensure_build
        from workbench.paths import tuning_logs_dir

        out = self._default_build_dir()
        ensure_build(CompileRequest(self.source, self.profile, self.batch_sizes, tuning_logs_dir() / self.profile.name,
                                    out, self.config.rtol, self.config.atol),
                     lambda: self.display.phase("tvm", "compiling (no current build found)"))
        return out

    def _default_build_dir(self) -> Path:
        from workbench.paths import build_dir

        return build_dir() / self.source.name / self.profile.name

    def _built_kernels(self) -> dict | None:
        """The kernel digests of this model's build (the one this run uses, else the one on disk),
        None without one or with one from before digests existed."""
        from workbench.compiler.builder import MANIFEST

        manifest = (self.build_dir or self._default_build_dir()) / MANIFEST
        if not manifest.exists():
            return None
        return json.loads(manifest.read_text()).get("tuning", {}).get("kernels")

    def write_context(self, measure_peak: bool) -> None:
        """What the report needs beside the records: model FLOPs, the machine's measured peak (~2 s;
        only the roofline of direct measurements uses it), and the tuning history of this model on
        this target (cumulative curves for the report)."""
        from workbench import machinepeak, modelstats
        from workbench.compiler.database import TuningDatabase
        from workbench.compiler.tasks import same_kernels
        from workbench.errors import ModelError
        from workbench.paths import tuning_logs_dir

        try:
            stats = modelstats.compute_stats(self.model)
            model = {"flops_per_sample": stats.flops, "parameters": stats.parameters}
        except ModelError as exc:
            model = {"flops_per_sample": None, "parameters": None, "note": str(exc)}
        sessions = []
        directory = tuning_logs_dir() / self.profile.name
        if directory.is_dir():
            database = TuningDatabase(directory, self.profile.resolved_target())
            built = self._built_kernels()
            sessions = [s for s in database.sessions()
                        if s.get("model_sha256") == self.model_sha256 and same_kernels(s.get("kernels"), built)]
        context = {"format": records.RECORD_FORMAT, "run_id": self.run_id, "model": {**self._common["model"], **model},
                   "target": self.profile.name, "machine_peak": machinepeak.measure() if measure_peak else None,
                   "tuning": {"database": str(directory), "sessions": sessions},
                   "provenance": self._common["provenance"]}
        (self.run_dir / "context.json").write_text(json.dumps(context))

    # ---- direct --------------------------------------------------------------------------------
    def run_direct(self, kind: str):
        """Latency per batch size and offline throughput; returns the engine and its correctness if its
        outputs passed (None for null, which has no correctness to pass)."""
        from workbench.engines.loaders import open_engine

        sizes = self.batch_sizes
        engine = open_engine(kind, model_path=self.source.path, build_dir=self.build_dir,
                             outputs=self.outputs_spec, providers=self.profile.onnxruntime_providers)
        correctness = None
        if kind != "null":  # null returns zeros by design: it measures the harness, not a model
            checks = {b: self.check(engine(self.sample(b)), b) for b in sizes}
            correctness = {"passed": all(c["passed"] for c in checks.values()),
                           "per_batch": {str(b): c for b, c in checks.items()}}
            if not correctness["passed"]:
                for b in sizes:
                    self.save(kind, {"kind": "latency", "batch": b}, engine.settings, correctness, None, "rejected",
                              "outputs differ from ONNX Runtime beyond the tolerance; not timed")
                return None
        for b in sizes:
            self.display.phase(kind, f"direct latency, batch {b}")
            self.save(kind, {"kind": "latency", "batch": b, "min_runs": self.config.direct_spec.min_runs,
                             "min_time_s": self.config.direct_spec.min_time_s},
                      engine.settings, correctness, direct.latency(engine, self.sample(b), self.config.direct_spec))
        top = max(sizes)
        self.display.phase(kind, f"offline throughput, batch {top}")
        self.save(kind, {"kind": "offline", "batch": top, "duration_s": self.config.direct_spec.offline_s},
                  engine.settings, correctness, direct.offline(engine, self.sample(top), top, self.config.direct_spec))
        return (engine, correctness) if correctness else None

    def run_paired(self, engines: dict) -> None:
        """The engines again, in alternating blocks at each batch size, ONNX Runtime last as the
        reference: the ratio that holds up when the machine's speed drifts between phases."""
        spec = self.config.direct_spec
        for b in self.batch_sizes:
            self.display.phase(" vs ".join(engines), f"paired latency, batch {b}")
            results = direct.paired({kind: engine for kind, (engine, _) in engines.items()}, self.sample(b), spec)
            for kind, (engine, correctness) in engines.items():
                self.save(kind, {"kind": "paired", "batch": b, "engines": list(engines), "block": spec.paired_block,
                                 "min_time_s": spec.paired_s}, engine.settings, correctness, results[kind])

    def run_remote_direct(self) -> None:
        """The tvm engine on a device at the tracker: checked against ONNX Runtime here, then timed
        with TVM's device-side timer (per-repeat means, each repeat at least 10 ms)."""
        from workbench.engines.loaders import build_settings
        from workbench.engines.remote import RemoteDevice
        from workbench.fleet import wait_for_devices
        from workbench.load.stats import summarize

        rpc = self.profile.rpc
        devices = wait_for_devices(rpc.tracker_host, rpc.tracker_port, rpc.key, self.config.rpc_wait_s)
        build = json.loads((self.build_dir / "manifest.json").read_text())
        names = [s["name"] for s in self.inputs_spec]
        settings = {**build_settings(self.build_dir),
                    "measured_on": {"rpc_tracker": f"{rpc.tracker_host}:{rpc.tracker_port}", "rpc_key": rpc.key,
                                    "devices": devices},
                    "timer": "TVM time_evaluator on the device; one value per repeat (mean of its calls)"}
        self.display.phase("tvm", f"loading on a '{rpc.key}' device")
        device = RemoteDevice(rpc, self.profile.device)
        remote = {b: device.load(self.build_dir / build["libraries"][str(b)]["file"]) for b in self.batch_sizes}
        checks = {b: self.check(remote[b]([self.sample(b)[n] for n in names]), b) for b in self.batch_sizes}
        correctness = {"passed": all(c["passed"] for c in checks.values()),
                       "per_batch": {str(b): c for b, c in checks.items()}}
        if not correctness["passed"]:
            self.save("tvm", {"kind": "latency", "batch": self.batch_sizes[0]}, settings, correctness, None,
                      "rejected", "outputs on the remote device differ from ONNX Runtime; not timed")
            return
        repeats = self.config.direct_spec.min_runs
        timed = {}
        for b in self.batch_sizes:
            self.display.phase("tvm", f"device latency, batch {b}")
            timed[b] = remote[b].time([self.sample(b)[n] for n in names], repeats, min_repeat_ms=10)
            self.save("tvm", {"kind": "latency", "batch": b, "repeats": repeats, "min_repeat_ms": 10}, settings,
                      correctness, {"latency_ms": summarize(timed[b]), "runs": len(timed[b]),
                                    "raw_latency_us": np.round(timed[b] * 1e6).astype(int).tolist()})
        top = max(self.batch_sizes)
        self.save("tvm", {"kind": "offline", "batch": top, "from": "device latency at the largest batch"}, settings,
                  correctness, {"throughput_sps": top / float(np.median(timed[top])), "batch": top,
                                "latency_ms": summarize(timed[top])})

    # ---- served --------------------------------------------------------------------------------
    def server_process(self, engine: str):
        from workbench.serving.process import ServerProcess, free_port, python_module
        from workbench.serving.server import ModelConfig, ServerConfig

        port, log = free_port(), self.run_dir / "logs" / f"{engine}.log"
        if engine == "flask-naive":
            argv = python_module("workbench.serving.naive_flask", str(self.source.path), str(port))
            return ServerProcess(engine, argv, port, log), {"server": "flask (threaded dev server)",
                                                            "batching": "none", "wire": "json"}
        kind = engine.removeprefix("server-")
        sizes = list(self.batch_sizes) if kind == "tvm" else None
        model = ModelConfig(self.source.name, kind, str(self.source.path), self.inputs_spec, self.outputs_spec,
                            build_dir=str(self.build_dir) if kind == "tvm" else None, batch_sizes=sizes,
                            max_batch=self.config.max_batch, max_delay_ms=self.config.max_delay_ms,
                            providers=list(self.profile.onnxruntime_providers))
        config_path = self.run_dir / "logs" / f"{engine}.json"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(ServerConfig([model], port=port, workers=self.config.server_workers).to_json())
        argv = python_module("workbench.serving.server", str(config_path))
        from workbench.serving.batcher import largest_batch

        max_batch = largest_batch(self.config.max_batch, sizes)
        libraries = {}
        if kind == "tvm":
            from workbench.engines.loaders import build_settings

            libraries = {"libraries_sha256": build_settings(self.build_dir)["libraries_sha256"]}
        return ServerProcess(engine, argv, port, log), {
            "server": "workbench-server (uvicorn, httptools, uvloop)", "engine": kind, "wire": self.config.wire, **libraries,
            "workers": self.config.server_workers,
            "batching": {"max_batch": max_batch, "batch_sizes": sizes, "max_delay_ms": self.config.max_delay_ms}}

    def check_served(self, url: str) -> dict:
        from urllib.request import Request, urlopen

        request = Request(f"{url}/v2/models/{self.source.name}/infer", data=v2_request(self.sample(1)),
                          headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=60) as response:
            body = orjson.loads(response.read())
        from workbench.serving.protocol import DATATYPES

        by_name = {o["name"]: np.asarray(o["data"], DATATYPES[o["datatype"]]).reshape(o["shape"])
                   for o in body["outputs"]}
        return self.check([by_name.get(n, np.empty(0)) for n in self.output_names], 1)

    def run_served(self, engine: str, url: str, settings: dict, alive=lambda: True, rss_mb=lambda: None) -> None:
        if engine == "server-null":
            correctness = None
        else:
            try:
                correctness = self.check_served(url)
            except (OSError, ValueError, KeyError) as exc:
                if engine == REMOTE:
                    raise WorkbenchError(f"the check request to {url} failed ({type(exc).__name__}: {exc}); "
                                         f"is a server for '{self.source.name}' running there?") from None
                correctness = {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
            if not correctness["passed"]:
                self.save(engine, {"kind": "closed"}, settings, correctness, None, "rejected",
                          "served outputs differ from ONNX Runtime (or the check request failed); not timed")
                return
        endpoint = Endpoint.parse(url, f"/v2/models/{self.source.name}/infer")
        if self.config.wire == "binary":
            requests = [endpoint.post(*v2_binary_request(self.sample(1, i))) for i in range(N_PAYLOADS)]
        else:
            requests = [endpoint.post(v2_request(self.sample(1, i))) for i in range(N_PAYLOADS)]
        for concurrency in self.config.concurrency:
            if not alive():
                self.save(engine, {"kind": "closed", "concurrency": concurrency}, settings, correctness, None,
                          "failed", "the server process had exited; not measured")
                continue
            self.display.phase(engine, f"closed loop, concurrency {concurrency}")
            spec = self._load_spec(endpoint, requests)
            rss_start = rss_mb()
            result = generator.run(generator.closed_loop(spec, concurrency)).summary()
            if rss_start is not None:  # a soak's memory verdict: resident memory before and after the load
                result["server_rss_mb"] = {"start": rss_start, "end": rss_mb()}
            self.save(engine, {"kind": "closed", "concurrency": concurrency, **self._durations()},
                      settings, correctness, result, "ok" if alive() else "failed",
                      None if alive() else "the server process exited during the run")
        if self.config.rate is not None and alive():
            self.display.phase(engine, f"open loop, {self.config.rate:g} requests/s")
            result = self._open(endpoint, requests, self.config.rate)
            self.save(engine, {"kind": "open", "rate": self.config.rate, "seed": self.config.seed,
                               **self._durations()}, settings, correctness, result)
        if self.config.slo_p99_ms is not None and alive():
            self._slo_search(engine, endpoint, requests, settings, correctness)

    def _durations(self) -> dict:
        return {"duration_s": self.config.duration_s, "warmup_s": self.config.warmup_s,
                "min_requests": self.config.min_requests}

    def _load_spec(self, endpoint, requests) -> generator.LoadSpec:
        return generator.LoadSpec(endpoint, requests, self.config.duration_s, self.config.warmup_s,
                                  self.config.min_requests, progress=self.display.progress)

    def _open(self, endpoint, requests, rate: float) -> dict:
        return generator.run(generator.open_loop(self._load_spec(endpoint, requests), rate, self.config.seed)).summary()

    def _slo_search(self, engine, endpoint, requests, settings, correctness, steps: int = 6) -> None:
        """Bisect the open-loop rate: the highest rate whose p99 stays under the bound, with no errors."""
        bound = self.config.slo_p99_ms
        closed = [r["result"]["throughput_rps"] for r in self.records
                  if r["engine"] == engine and r["scenario"]["kind"] == "closed" and r["result"]]
        high = 1.2 * max(closed) if closed else 1000.0
        low, best, trials = 0.0, None, []
        rate = high
        for _ in range(steps):
            self.display.phase(engine, f"SLO search: {rate:.0f} requests/s (p99 bound {bound:g} ms)")
            result = self._open(endpoint, requests, rate)
            ok = result["latency_ms"]["p99_ms"] <= bound and not result["errors"]
            trials.append({"rate": rate, "p99_ms": result["latency_ms"]["p99_ms"], "errors": result["errors"],
                           "throughput_rps": result["throughput_rps"], "passed": ok})
            if ok:
                low, best = rate, result
            else:
                high = rate
            rate = (low + high) / 2
        found = {"max_rate_rps": low if best else None, "trials": trials, "at_max_rate": best}
        self.save(engine, {"kind": "slo-search", "slo_p99_ms": bound, "steps": steps, **self._durations()},
                  settings, correctness, {**(best or {}), **found})


def run_bench(config: BenchConfig, display) -> tuple[Path, list[dict]]:
    """Run every engine; a served engine that fails to start is recorded and the others still run."""
    from workbench.targets import get_profile

    from workbench.fleet import profile_with_rpc

    validate(config)
    profile = profile_with_rpc(get_profile(config.target), config.rpc, config.rpc_key)
    if profile.rpc is not None:
        if config.engines == ENGINES:
            config = dataclasses.replace(config, engines=("tvm",))
        if config.engines != ("tvm",) or config.url:
            raise WorkbenchError("--rpc times the tvm engine on the remote device; the other engines would run "
                                 "here and not compare with it, so pass --engines tvm")
    bench = Bench(config, profile, display)
    engines = [REMOTE] if config.url else list(config.engines)
    needs_tvm = {"tvm", "server-tvm"} & set(engines)
    if needs_tvm:
        runs, why = profile.runs_here()
        if not runs and profile.rpc is None:  # over RPC the device runs it, not this machine
            raise WorkbenchError(f"target '{profile.name}' cannot run on this machine ({why}); bench the "
                                 f"host target here, or drop the tvm engines with --engines")
        bench.build_dir = bench.ensure_build()
    bench.run_dir.mkdir(parents=True, exist_ok=True)
    direct_run = bool(set(engines) & set(DIRECT_ENGINES))
    if direct_run:
        display.phase("machine", "measuring float32 peak and memory bandwidth")
    bench.write_context(measure_peak=direct_run)
    display.start(bench.run_id)
    try:
        passed = {}  # direct engines whose outputs agreed with ONNX Runtime (not null), for the paired run
        for engine in engines:
            if engine == "tvm" and profile.rpc is not None:
                bench.run_remote_direct()
            elif engine in DIRECT_ENGINES:
                if (opened := bench.run_direct(engine)) is not None:
                    passed[engine] = opened
            elif engine == REMOTE:
                bench.run_served(REMOTE, config.url.rstrip("/"), {"server": f"external at {config.url}",
                                                                        "wire": config.wire})
            else:
                _run_server_engine(bench, engine)
        if len(passed) > 1:
            bench.run_paired(dict(sorted(passed.items(), key=lambda e: e[0] == "onnxruntime")))
    finally:
        display.stop()
        if bench.records:
            records.write_csv(bench.run_dir, bench.records)
    return bench.run_dir, bench.records


def _run_server_engine(bench: Bench, engine: str) -> None:
    process, settings = bench.server_process(engine)
    bench.display.phase(engine, "starting server")
    try:
        process.start()
    except WorkbenchError as exc:  # recorded; the other engines are still measured
        warn(str(exc))
        bench.save(engine, {"kind": "closed"}, settings, None, None, "failed", str(exc))
        return
    try:
        bench.run_served(engine, process.url, settings, process.alive, process.rss_mb)
    finally:
        code = process.stop()
        if code not in (0, None, -15):
            warn(f"{engine} server exited with code {code}; log {process.log_path}")
