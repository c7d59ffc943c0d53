"""Latency statistics from raw values (never from averages) and the stability rule.

Percentiles use the nearest-rank definition (the value below which p% of the samples fall, taken
from the samples themselves), as HDR histograms and LoadGen report them.
"""

import math

import numpy as np

PERCENTILES = (50, 90, 95, 99, 99.9)
STABILITY_TOLERANCE = 0.10  # max/min of the last windows within 10%
STABILITY_WINDOWS = 3
WINDOW_S = 5.0


def percentile(sorted_values: np.ndarray, p: float) -> float:
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(round(p / 100 * n, 9)))  # 99.9/100*1000 is 999.0000000000001 in floats
    return float(sorted_values[min(rank, n) - 1])


def pkey(p: float) -> str:
    return f"p{p:g}".replace(".", "_")  # p99.9 -> p99_9: a valid column name


def summarize(latencies_s: np.ndarray) -> dict:
    """Latency percentiles in milliseconds."""
    values = np.sort(np.asarray(latencies_s, np.float64)) * 1000
    summary = {pkey(p) + "_ms": percentile(values, p) for p in PERCENTILES}
    summary["max_ms"] = float(values[-1]) if len(values) else math.nan
    summary["mean_ms"] = float(values.mean()) if len(values) else math.nan
    summary["count"] = int(len(values))
    return summary


def window_length(duration_s: float) -> float:
    """~5 s windows; shorter runs are cut in three so they still get a verdict (recorded with it)."""
    return min(WINDOW_S, duration_s / STABILITY_WINDOWS)


def windows(done_s: np.ndarray, latency_s: np.ndarray, start_s: float, end_s: float,
            window_s: float, percentile_p: float = 99) -> list[dict]:
    """Throughput and the chosen latency percentile per consecutive window of completions."""
    out = []
    count = int((end_s - start_s) / window_s + 1e-9)  # 10 // (10/3) is 2.0 in floats
    for i in range(count):
        lo, hi = start_s + i * window_s, start_s + (i + 1) * window_s
        mask = (done_s >= lo) & (done_s < hi)
        lat = np.sort(latency_s[mask]) * 1000
        out.append({"start_s": round(lo - start_s, 3), "throughput_rps": float(mask.sum() / window_s),
                    "latency_ms": percentile(lat, percentile_p)})
    return out


def stability(window_stats: list[dict], tolerance: float = STABILITY_TOLERANCE,
              last: int = STABILITY_WINDOWS) -> dict:
    """Stable when, over the last `last` windows, max/min <= 1 + tolerance for throughput and latency."""
    if len(window_stats) < last:
        return {"stable": False, "reason": f"only {len(window_stats)} windows; {last} needed"}
    tail = window_stats[-last:]
    reasons = []
    for key, label in (("throughput_rps", "throughput"), ("latency_ms", "p99 latency")):
        values = [w[key] for w in tail]
        low, high = min(values), max(values)
        if any(math.isnan(v) for v in values) or low <= 0:  # no completions: no p99, zero throughput
            reasons.append(f"{label}: a window of the last {last} had no completed request")
        elif high / low > 1 + tolerance:
            reasons.append(f"{label} max/min {high / low:.2f} over the last {last} windows")
    return {"stable": not reasons,
            "reason": "; ".join(reasons) or f"within {tolerance:.0%} over the last {last} windows"}
