"""The order of a bench run: validate, build if a tvm engine needs it, each engine in turn (a
direct engine that cannot open or a served engine that fails to start is recorded and the others
still run), then the paired run."""

import dataclasses
import shutil
from pathlib import Path

from workbench import records, scenarios
from workbench.bench import slo
from workbench.bench.config import BenchConfig, validate
from workbench.bench.context import ensure_build, write_context
from workbench.bench.direct import run_direct, run_paired, run_remote_direct
from workbench.bench.remote import check_remote_model
from workbench.bench.served import run_served, server_process
from workbench.bench.session import BenchRun
from workbench.console import warn
from workbench.engines import registry
from workbench.errors import WorkbenchError


def run_bench(config: BenchConfig, display) -> tuple[Path, list[dict]]:
    """Run every engine; a served engine that fails to start is recorded and the others still run."""
    from workbench.targets import get_profile, profile_with_rpc

    validate(config)
    profile = profile_with_rpc(get_profile(config.target), config.rpc, config.rpc_key)
    if profile.rpc is not None and (config.engines not in (None, (registry.TVM,)) or config.url):
        raise WorkbenchError("--rpc times the tvm engine on the remote device; the other engines would run "
                             "here and not compare with it, so pass --engines tvm")
    default = (registry.TVM,) if profile.rpc is not None else registry.NAMES
    config = dataclasses.replace(config, engines=config.engines or default)
    run = BenchRun(config, profile, display)
    engines = [registry.REMOTE] if config.url else list(config.engines)
    if any(registry.get(e).needs_build for e in engines if e != registry.REMOTE):
        runs, why = profile.runs_here()
        if not runs and profile.rpc is None:  # over RPC the device runs it, not this machine
            raise WorkbenchError(f"target '{profile.name}' cannot run on this machine ({why}); bench the "
                                 f"host target here, or drop the tvm engines with --engines")
        run.build_dir = ensure_build(run)
    if config.url:  # before the run folder: a server without the model is one line, not an empty run
        check_remote_model(config.url.rstrip("/"), run.source.name, config.protocol)
    created = not run.run_dir.exists()
    run.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        direct_run = bool(set(engines) & set(registry.DIRECT))
        if direct_run:
            display.phase("machine", "measuring float32 peak and memory bandwidth")
        write_context(run, measure_peak=direct_run)
        display.start(run.run_id)
        try:
            for sizes in _combinations(run.config.dims):  # in the model's order (BenchRun)
                run.inputs.sizes = sizes
                _run_engines(run, engines)
            _check_slo_ceiling(run)
        finally:
            display.stop()
            if run.records:
                records.write_csv(run.run_dir, run.records)
    finally:
        if created and not run.records:  # stopped before its first record: leave no empty run behind
            shutil.rmtree(run.run_dir, ignore_errors=True)
    return run.run_dir, run.records


def _combinations(dims) -> list[dict[str, int]]:
    """Each --dims combination as {name: size}; [{}] without --dims (one pass, as ever)."""
    from workbench.dims import variants

    return [v.sizes for v in variants((1,), dims)]


def _run_engines(run: BenchRun, engines: list[str]) -> None:
    passed = {}  # direct engines whose outputs agreed with ONNX Runtime (not null), for the paired run
    for engine in engines:
        if engine == registry.TVM and run.profile.rpc is not None:
            run_remote_direct(run)
        elif engine in registry.DIRECT:
            try:
                opened = run_direct(run, engine)
            except WorkbenchError as exc:  # a runtime that cannot be imported or cannot read the model
                warn(f"{engine}: {exc}")
                run.save(engine, {"kind": "latency"}, {}, None, None, "failed", str(exc))
                continue
            if opened is not None:
                passed[engine] = opened
        elif engine == registry.REMOTE:
            url = run.config.url
            grpc = {"protocol": "grpc", "wire": "binary"} if run.config.protocol == "grpc" else {}
            run_served(run, registry.REMOTE, url.rstrip("/"), {"server": f"external at {url}", "wire": run.config.wire,
                                                               **grpc})
        else:
            _run_server_engine(run, engine)
    if len(passed) > 1:
        run_paired(run, dict(sorted(passed.items(), key=lambda e: e[0] == registry.REFERENCE)))


def _check_slo_ceiling(run: BenchRun) -> None:
    """server-null's SLO search is the harness's own ceiling: an engine found above it means noise
    decided a search, so every SLO record of the run is flagged (its file rewritten) and not trusted."""
    why = slo.ceiling_flag(run.records)
    if why is None:
        return
    warn(f"SLO search: {why}")
    for record in run.records:
        if record["scenario"]["kind"] == scenarios.SLO_SEARCH and record.get("result"):
            earlier = record["result"].get("flag")
            record["result"]["flag"] = f"{earlier}; {why}" if earlier else why
            records.write_record(run.run_dir, record)


def _run_server_engine(run: BenchRun, engine: str) -> None:
    process, settings = server_process(run, engine)
    run.display.phase(engine, "starting server")
    try:
        process.start()
    except WorkbenchError as exc:  # recorded; the other engines are still measured
        warn(str(exc))
        run.save(engine, {"kind": "closed"}, settings, None, None, "failed", str(exc))
        return
    try:
        run_served(run, engine, process.url, settings, process)
    finally:
        code = process.stop()
        if code not in (0, None, -15):
            warn(f"{engine} server exited with code {code}; log {process.log_path}")
