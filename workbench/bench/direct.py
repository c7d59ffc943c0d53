"""Engines called in-process: latency per batch size, offline throughput, the paired run, and the
tvm engine timed on a remote device over RPC."""

import time

import numpy as np

from workbench.bench.session import BenchRun
from workbench.console import warn
from workbench.engines import registry
from workbench.load import direct as timing
from workbench.load import pairguard

REPEAT_PAUSE_S = 0.5  # before a paired run is measured again


def run_direct(run: BenchRun, kind: str):
    """Latency per batch size and offline throughput; returns the engine and its correctness if its
    outputs passed (None for null, which has no correctness to pass)."""
    from workbench.engines.registry import open_engine

    sizes, spec, sample = run.batch_sizes, run.config.direct_spec, run.inputs.sample
    engine = open_engine(kind, model_path=run.source.path, build_dir=run.build_dir,
                         outputs=run.outputs_spec, providers=run.profile.onnxruntime_providers)
    correctness = None
    if not registry.is_null(kind):  # null returns zeros by design: it measures the harness, not a model
        correctness = run.inputs.check_batches({b: engine(sample(b)) for b in sizes})
        if not correctness["passed"]:
            for b in sizes:
                run.save(kind, {"kind": "latency", "batch": b}, engine.settings, correctness, None, "rejected",
                         "outputs differ from ONNX Runtime beyond the tolerance; not timed")
            return None
    for b in sizes:
        run.display.phase(kind, f"direct latency, batch {b}")
        run.save(kind, {"kind": "latency", "batch": b, "min_runs": spec.min_runs, "min_time_s": spec.min_time_s},
                 engine.settings, correctness, timing.latency(engine, sample(b), spec))
    top = max(sizes)
    run.display.phase(kind, f"offline throughput, batch {top}")
    if engine.offline is not None:  # the engine's own throughput mode (OpenVINO: THROUGHPUT hint, async requests)
        settings, result = engine.offline(sample(top), top, spec)
    else:
        settings, result = engine.settings, timing.offline(engine, sample(top), top, spec)
    run.save(kind, {"kind": "offline", "batch": top, "duration_s": spec.offline_s}, settings, correctness, result)
    return (engine, correctness) if correctness else None


def run_paired(run: BenchRun, engines: dict) -> None:
    """The engines again, in alternating blocks at each batch size, ONNX Runtime last as the
    reference: the ratio that holds up when the machine's speed drifts between phases. Each ratio is
    checked against the same run's direct p50s; a disagreement is measured again once, and flagged if
    it stays (load/pairguard.py)."""
    spec = run.config.direct_spec
    for b in run.batch_sizes:
        run.display.phase(" vs ".join(engines), f"paired latency, batch {b}")
        results = _guarded_paired(run, engines, b)
        for kind, other in best_others(results).items():
            results[kind]["ratio_to_best_other"] = other
        for kind, (engine, correctness) in engines.items():
            if results[kind]["flag"]:
                warn(f"{kind} paired, batch {b}: {results[kind]['flag']}")
            run.save(kind, {"kind": "paired", "batch": b, "engines": list(engines), "block": spec.paired_block,
                            "min_time_s": spec.paired_s}, engine.settings, correctness, results[kind])


def best_others(results: dict[str, dict]) -> dict[str, dict]:
    """TVM's paired figure against the fastest of the other runtimes (by median block), not only ONNX
    Runtime: the median of the per-round ratios and which engine that was."""
    tvm = [k for k in results if registry.get(k).runtime == registry.TVM]
    out = {}
    for kind in tvm:
        others = [k for k in results if k not in tvm and results[k].get("block_medians_ms")]
        if not others or not results[kind].get("block_medians_ms"):
            continue
        best = min(others, key=lambda k: float(np.median(results[k]["block_medians_ms"])))
        ratios = np.asarray(results[kind]["block_medians_ms"]) / np.asarray(results[best]["block_medians_ms"])
        out[kind] = {"engine": best, "ratio_p50": float(np.median(ratios))}
    return out


def _guarded_paired(run: BenchRun, engines: dict, batch: int) -> dict[str, dict]:
    """The paired results at one batch size with the guard's fields, measured again once when a ratio
    disagrees with the direct p50s' (after a short pause, so that threads still busy from the first
    attempt or a burst of other work can pass)."""
    calls, sample = {kind: engine for kind, (engine, _) in engines.items()}, run.inputs.sample(batch)
    p50s = pairguard.direct_p50s(run.records, batch)
    ratios = pairguard.direct_ratios(p50s, list(engines), list(engines)[-1])

    def before_repeat():
        run.display.phase(" vs ".join(engines), f"paired latency, batch {batch}: disagrees with direct, repeating")
        time.sleep(REPEAT_PAUSE_S)

    return pairguard.guarded(lambda: timing.paired(calls, sample, run.config.direct_spec), ratios, p50s,
                             before_repeat)


def run_remote_direct(run: BenchRun) -> None:
    """The tvm engine on a device at the tracker: checked against ONNX Runtime here, then timed
    with TVM's device-side timer (per-repeat means, each repeat at least 10 ms)."""
    from workbench.dims import Variant
    from workbench.engines.remote import RemoteDevice
    from workbench.engines.rpc import wait_for_devices
    from workbench.engines.tvm_engine import build_settings
    from workbench.load.stats import summarize
    from workbench.manifest import library_variants, read_compiled

    rpc, sizes = run.profile.rpc, run.batch_sizes
    devices = wait_for_devices(rpc.tracker_host, rpc.tracker_port, rpc.key, run.config.rpc_wait_s)
    build = read_compiled(run.build_dir)
    names = [s["name"] for s in run.inputs_spec]
    settings = {**build_settings(run.build_dir),
                "measured_on": {"rpc_tracker": f"{rpc.tracker_host}:{rpc.tracker_port}", "rpc_key": rpc.key,
                                "devices": devices},
                "timer": "TVM time_evaluator on the device; one value per repeat (mean of its calls)"}
    run.display.phase(registry.TVM, f"loading on a '{rpc.key}' device")
    device = RemoteDevice(rpc, run.profile.device)
    keys = {v: k for k, v in library_variants(build).items()}  # this --dims combination's library per batch
    dims = tuple(run.inputs.sizes.items())
    remote = {b: device.load(run.build_dir / build["libraries"][keys[Variant(b, dims)]]["file"]) for b in sizes}
    args = {b: [run.inputs.sample(b)[n] for n in names] for b in sizes}
    correctness = run.inputs.check_batches({b: remote[b](args[b]) for b in sizes})
    if not correctness["passed"]:
        run.save(registry.TVM, {"kind": "latency", "batch": sizes[0]}, settings, correctness, None,
                 "rejected", "outputs on the remote device differ from ONNX Runtime; not timed")
        return
    repeats = run.config.direct_spec.min_runs
    timed = {}
    for b in sizes:
        run.display.phase(registry.TVM, f"device latency, batch {b}")
        timed[b] = remote[b].time(args[b], repeats, min_repeat_ms=10)
        run.save(registry.TVM, {"kind": "latency", "batch": b, "repeats": repeats, "min_repeat_ms": 10}, settings,
                 correctness, {"latency_ms": summarize(timed[b]), "runs": len(timed[b]),
                               "raw_latency_us": np.round(timed[b] * 1e6).astype(int).tolist()})
    top = max(sizes)
    run.save(registry.TVM, {"kind": "offline", "batch": top, "from": "device latency at the largest batch"}, settings,
             correctness, {"throughput_sps": top / float(np.median(timed[top])), "batch": top,
                           "latency_ms": summarize(timed[top])})
