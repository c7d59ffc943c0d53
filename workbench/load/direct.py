"""Direct (in-process, no HTTP) measurements of an engine: latency per batch size and offline throughput.

Latency: warm-up calls first (discarded), then calls until both a minimum count and a minimum time
are reached. Offline throughput: back-to-back batches at the largest size for a fixed time, the
ceiling a server on this machine can approach. Paired: two or more engines called in alternating
short blocks, so that a slow spell of a shared machine (seconds to minutes; docs/BENCHMARKS.md,
"Measurement lessons") falls on all of them alike; their ratio is the median of the per-round ratios.
"""

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from workbench.load.stats import stability, summarize, window_length, windows

WARMUP_CALLS = 3


@dataclass(frozen=True)
class DirectSpec:
    min_runs: int = 30
    min_time_s: float = 1.0
    max_time_s: float = 30.0  # a slow engine stops here even below min_runs (recorded)
    offline_s: float = 5.0
    paired_s: float = 6.0
    paired_block: int = 5  # timed calls per engine per round, after one untimed call
    # The ratio's 10th-90th percentile needs rounds; paired_s alone gave a slow model too few
    # (docs/BENCHMARKS.md, "Measurement lessons").
    paired_rounds: int = 20


def _timed_calls(call: Callable, inputs, min_runs: int, min_time_s: float, max_time_s: float):
    for _ in range(WARMUP_CALLS):
        call(inputs)
    starts, ends = [], []
    t0 = time.perf_counter()
    while True:
        start = time.perf_counter()
        call(inputs)
        end = time.perf_counter()
        starts.append(start - t0)
        ends.append(end - t0)
        if (len(ends) >= min_runs and end - t0 >= min_time_s) or end - t0 >= max_time_s:
            return np.asarray(starts), np.asarray(ends)


def latency(call: Callable, inputs, spec: DirectSpec) -> dict:
    starts, ends = _timed_calls(call, inputs, spec.min_runs, spec.min_time_s, spec.max_time_s)
    summary = summarize(ends - starts)
    return {"latency_ms": summary, "runs": len(ends), "reached_min_runs": len(ends) >= spec.min_runs,
            "raw_latency_us": np.round((ends - starts) * 1e6).astype(int).tolist()}


def offline(call: Callable, inputs, batch: int, spec: DirectSpec) -> dict:
    starts, ends = _timed_calls(call, inputs, 1, spec.offline_s, spec.offline_s * 3)
    return offline_result(starts, ends, batch)


def offline_result(starts: np.ndarray, ends: np.ndarray, batch: int) -> dict:
    """Throughput from each batch's start and end (seconds from the first start, in order of ending)."""
    elapsed = ends[-1]
    window_s = window_length(elapsed)
    per_window = windows(ends, ends - starts, 0.0, elapsed, window_s)
    for w in per_window:  # a window's throughput in samples, not calls
        w["throughput_rps"] *= batch
    return {"throughput_sps": len(ends) * batch / elapsed, "batches": len(ends), "batch": batch,
            "latency_ms": summarize(ends - starts), "window_s": window_s, "windows": per_window,
            "stability": stability(per_window)}


def paired(calls: dict[str, Callable], inputs, spec: DirectSpec) -> dict[str, dict]:
    """Each engine's latency from rounds of alternating blocks, and its ratio to the last engine
    (the reference): the median, 10th and 90th percentile of the per-round ratios of block medians.
    The untimed call opening each block lets an engine find its caches after the other ran."""
    names = list(calls)
    samples: dict[str, list[float]] = {n: [] for n in names}
    block_medians: dict[str, list[float]] = {n: [] for n in names}
    for call in calls.values():
        for _ in range(WARMUP_CALLS):
            call(inputs)
    t0 = time.perf_counter()
    while True:
        for name, call in calls.items():
            call(inputs)
            times = []
            for _ in range(spec.paired_block):
                start = time.perf_counter()
                call(inputs)
                times.append(time.perf_counter() - start)
            samples[name] += times
            block_medians[name].append(float(np.median(times)))
        elapsed = time.perf_counter() - t0
        rounds = len(block_medians[names[0]])
        enough = rounds >= spec.paired_rounds and rounds * spec.paired_block >= spec.min_runs
        if (enough and elapsed >= spec.paired_s) or elapsed >= spec.max_time_s:
            break
    reference = names[-1]
    out = {}
    for name in names:
        ratios = np.asarray(block_medians[name]) / np.asarray(block_medians[reference])
        out[name] = {"latency_ms": summarize(np.asarray(samples[name])), "runs": len(samples[name]), "rounds": rounds,
                     "block": spec.paired_block, "reference": reference,
                     "ratio_p50": float(np.median(ratios)), "ratio_p10": float(np.percentile(ratios, 10)),
                     "ratio_p90": float(np.percentile(ratios, 90)),
                     # per round, aligned across the engines: what a bootstrap over rounds resamples
                     "block_medians_ms": [round(m * 1e3, 6) for m in block_medians[name]],
                     "raw_latency_us": np.round(np.asarray(samples[name]) * 1e6).astype(int).tolist()}
    return out
