"""`workbench report --compare A B`: per metric the change from A to B, and whether it is one.

Consecutive measurements on a shared machine are correlated (a slow spell covers many requests),
so single requests are never resampled as if independent: each record is cut into consecutive
windows (up to 20, at least 5 values each; offline throughput keeps the bench's own windows), a
window's figure is the mean of its middle half of latencies (robust like a median, but not stuck
on one microsecond value) or its throughput, and the interval is a moving-block bootstrap over
those windows, A and B resampled independently. A change is called only when
- both records have at least 6 windows ("too few windows to tell" otherwise: an interval from 3
  values says nothing),
- the two runs were measured on the same machine ("no verdict" otherwise), and
- the whole 95% interval of B/A lies beyond the largest of 5%, the runs' own noise (the
  10th-90th percentile spread of a run's windows around their median, the larger of the two
  runs') and how far the machine itself moved between the runs (the float32 peak each bench
  measured; for served engines also server-null, the harness, on the same scenario). A machine
  that moves that much within a run, or between runs, moves two runs of one build as far, which
  no interval from within a run can show.
Otherwise it says "no significant change".

Two processes of one build can differ by 1.3-1.4x on an in-process figure while each is steady inside
itself (thread placement, memory layout: docs/BENCHMARKS.md, "Two processes, one build"); no window
of a single run shows that. Given more runs per side (`--also-a`, `--also-b`; three runs in all or
more), each run counts as one value, its windows' mean, and the interval is Student's t on the logs
of those values with the spread between runs of one side pooled: the between-process spread is
measured instead of assumed. The bound is then the largest of 5% and how far the machine moved.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from workbench import bootstrap, scenarios
from workbench.engines import registry
from workbench.fingerprint import OLDER_KIND_NOTE, describe_cpu, fingerprint_kind, same_machine
from workbench.report.markup import CSS, esc, num, scenario_label, table
from workbench.report.run import Run

BOOTSTRAP = bootstrap.RESAMPLES
THRESHOLD = 0.05  # the smallest change ever called: the whole 95% interval must be beyond it
MIN_WINDOWS, MAX_WINDOWS, MIN_PER_WINDOW = 6, 20, 5
# One run a side called a change in 32% of pairs drawn from 20 runs of one build (docs/BENCHMARKS.md,
# "Two processes, one build"): such a call carries this, and the page says how to confirm it.
ONE_RUN_A_SIDE = " (one run a side)"
NO_CHANGE, TOO_FEW, OTHER_MACHINE = "no significant change", "too few windows to tell", "no verdict: different machines"
LATENCY_KINDS = (scenarios.LATENCY, scenarios.PAIRED, scenarios.CLOSED, scenarios.OPEN)


@dataclass
class Series:
    metric: str
    windows: np.ndarray  # one figure per consecutive window, in time order
    lower_is_better: bool


def midmean(values: np.ndarray) -> float:
    """The mean of the middle half (the 25th to 75th percentile): a median that moves with the data."""
    ordered = np.sort(np.asarray(values, np.float64))
    quarter = len(ordered) // 4
    return float(ordered[quarter:len(ordered) - quarter].mean())


def series(record: dict) -> Series | None:
    """What a record is compared by: its latency windows in time order, or its throughput windows."""
    result, kind = record["result"], record["scenario"]["kind"]
    if kind in LATENCY_KINDS and result.get("raw_latency_us"):
        raw = np.asarray(result["raw_latency_us"], np.float64) / 1000
        count = min(MAX_WINDOWS, len(raw) // MIN_PER_WINDOW)
        windows = [midmean(chunk) for chunk in np.array_split(raw, count)] if count else []
        return Series("latency (ms)", np.asarray(windows), True)
    if kind == scenarios.OFFLINE and result.get("windows"):
        return Series("throughput (samples/s)", np.asarray([w["throughput_rps"] for w in result["windows"]]), False)
    return None


def ratio_interval(a: np.ndarray, b: np.ndarray, statistic=np.median, seed: int = 0) -> tuple[float, float, float]:
    """statistic(b) / statistic(a) and its 95% moving-block bootstrap interval, the two series
    resampled independently (they are two runs, not pairs)."""
    return bootstrap.interval(lambda x, y: statistic(y) / statistic(x), a, b, seed=seed, paired=False)


def between_runs(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """B/A from one figure per run (the geometric means of each side), and its Student t interval on
    the logs, the variance within each side pooled: runs are independent processes, so this is the
    spread that two processes of one build really show. Needs three runs in all."""
    la, lb = np.log(np.asarray(a, np.float64)), np.log(np.asarray(b, np.float64))
    freedom = len(la) + len(lb) - 2
    if min(len(la), len(lb)) < 1 or freedom < 1:
        raise ValueError("a between-run interval needs one run per side and three in all")
    pooled = (((la - la.mean()) ** 2).sum() + ((lb - lb.mean()) ** 2).sum()) / freedom
    half = float(stats.t.ppf(0.5 + level / 2, freedom)) * math.sqrt(pooled * (1 / len(la) + 1 / len(lb)))
    shift = float(lb.mean() - la.mean())
    return math.exp(shift), math.exp(shift - half), math.exp(shift + half)


def noise(windows: np.ndarray) -> float:
    """A run's own instability: its windows' 10th-90th percentile spread, relative to their median.
    When the machine's slow spells outlast a run, two runs of one build differ by about this much
    (the spread is ~2.6 standard deviations of a window; the difference of two runs, ~2.8)."""
    p10, p50, p90 = np.percentile(windows, [10, 50, 90])
    return float((p90 - p10) / p50) if p50 > 0 else float("inf")


def classify(low: float, high: float, lower_is_better: bool, threshold: float = THRESHOLD) -> str:
    """Regression or improvement only when the whole interval of B/A is beyond 1 +- threshold."""
    up, down = low > 1 + threshold, high < 1 / (1 + threshold)
    if lower_is_better:
        return "regression" if up else ("improvement" if down else NO_CHANGE)
    return "regression" if down else ("improvement" if up else NO_CHANGE)


@dataclass
class Change:
    a: float
    b: float
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    beyond: float | None = None  # how far beyond 1 the whole interval must lie to be called a change
    why: str = ""  # which bound set `beyond`
    verdict: str = TOO_FEW


def change(sa: list[Series], sb: list[Series], same: bool = True, moved: dict[str, float] | None = None) -> Change:
    """B against A, each one or more runs: the ratio of the means, its interval, the bound it must clear
    (5%, the runs' noise when there is one run per side, or how far the machine itself moved between
    the runs: `moved`) and the verdict."""
    mean_a, mean_b = ([float(np.mean(s.windows)) if len(s.windows) else float("nan") for s in side]
                      for side in (sa, sb))
    found = Change(float(np.mean(mean_a)), float(np.mean(mean_b)))
    if len(sa) + len(sb) >= 3:
        if any(math.isnan(m) or m <= 0 for m in mean_a + mean_b):
            return found
        found.ratio, found.low, found.high = between_runs(mean_a, mean_b)
        found.a, found.b = (math.exp(float(np.mean(np.log(m)))) for m in (mean_a, mean_b))  # as the ratio is
        bounds = {"5%": THRESHOLD, **(moved or {})}
    else:
        (wa,), (wb,) = [s.windows for s in sa], [s.windows for s in sb]
        if min(len(wa), len(wb)) < MIN_WINDOWS:
            return found
        found.ratio, found.low, found.high = ratio_interval(wa, wb, np.mean)
        bounds = {"5%": THRESHOLD, "runs' noise": max(noise(wa), noise(wb)), **(moved or {})}
    found.why = max(bounds, key=bounds.get)
    found.beyond = bounds[found.why]
    found.verdict = classify(found.low, found.high, sa[0].lower_is_better, found.beyond) if same else OTHER_MACHINE
    if len(sa) + len(sb) < 3 and found.verdict in ("regression", "improvement"):
        found.verdict += ONE_RUN_A_SIDE
    return found


def drift(*values: float | None) -> float | None:
    """How far apart measurements of the same thing are: the largest over the smallest, less one."""
    if not values or any(not v or v <= 0 for v in values):
        return None
    return max(values) / min(values) - 1


def machine_moved(a: list[Run], b: list[Run], pairs: dict) -> dict[tuple, dict[str, float]]:
    """Per (engine, scenario): how far the machine itself moved over the runs, by the figures that
    measure the machine, not the engine: each run's float32 peak (context.json), and for served
    engines server-null (the harness) on the same scenario, each side's mean of its runs."""
    peak = drift(*[(run.context.get("machine_peak") or {}).get("peak_gflops") for run in a + b])
    moved = {}
    for key in pairs:
        found = {"machine's peak moved": peak} if peak is not None else {}
        null = pairs.get((registry.SERVER_NULL, key[1]))
        if key[0] not in (registry.SERVER_NULL, registry.NULL) and null is not None and \
                pairs[key][0][0].metric == null[0][0].metric and key[1].split()[0] in ("closed", "open"):
            harness = drift(*[float(np.mean([np.mean(s.windows) for s in side])) for side in null])
            if harness is not None:
                found["server-null moved"] = harness
        moved[key] = found
    return moved


def machine_warning(a: list[Run], b: list[Run]) -> str:
    first, others = a[0], a[1:] + b
    judged = [(run, *same_machine(first.provenance, run.provenance)) for run in others]
    other = next((run for run, same, _ in judged if not same), None)
    warning = ""
    if other is not None:
        warning = (f'<div class="warn">&#9888; The runs were measured on different machines '
                   f'({esc(first.provenance["fingerprint_id"])}: {esc(describe_cpu(first.provenance["machine"]))} '
                   f'and {esc(other.provenance["fingerprint_id"])}: {esc(describe_cpu(other.provenance["machine"]))}); '
                   "differences mix the machine with the change, so no change is called.</div>")
    if any(by_older for _, _, by_older in judged):
        older = " and ".join(f"{label} ({esc(run.run_id)})" for label, side in (("A", a), ("B", b)) for run in side
                             if fingerprint_kind(run.provenance) < 2)
        warning += (f'<div class="warn">&#9888; The fingerprint of run {older} is {OLDER_KIND_NOTE}'
                    f'{"; the two machines may differ in CPU generation" if other is None else ""}.</div>')
    return warning


def _row(engine: str, label: str, metric: str, c: Change) -> list[str]:
    css = {"regression": "bad", "improvement": "good"}.get(c.verdict.removesuffix(ONE_RUN_A_SIDE), "muted")
    if c.ratio is None:
        figures = ["-", "-", "-"]
    else:
        figures = [f"{c.ratio - 1:+.1%}", f"[{c.low - 1:+.1%}, {c.high - 1:+.1%}]",
                   f"&plusmn;{c.beyond:.1%} ({esc(c.why)})"]
    return [esc(engine), label, metric, num(c.a), num(c.b), *figures, f'<span class="{css}">{c.verdict}</span>']


def _common(a: list[Run], b: list[Run]) -> dict[tuple[str, str], tuple[list[Series], list[Series]]]:
    """(engine, scenario) -> each side's series, one per run, for the keys every run measured."""
    found = [{(r["engine"], scenario_label(r)): s for r in run.ok() if (s := series(r)) is not None}
             for run in a + b]
    keys = [key for key in found[len(a)] if all(key in run for run in found)]
    return {key: ([run[key] for run in found[:len(a)]], [run[key] for run in found[len(a):]]) for key in keys}


def _method(a: list[Run], b: list[Run]) -> str:
    if len(a) + len(b) >= 3:
        return (f"A has {len(a)} run(s), B {len(b)}: each run counts as one value, the mean of its windows (a "
                "latency window's figure is the mean of its middle half). The interval of B/A is Student's t on "
                "the logs of those values, the spread between runs of one side pooled, so it holds the spread "
                "between two processes of one build. A change is called only when the whole 95% interval is beyond "
                f"the largest of &plusmn;{THRESHOLD:.0%} and how far the machine itself moved over the runs (its "
                "measured float32 peak; server-null for served engines).")
    return (f"Each record is cut into up to {MAX_WINDOWS} consecutive windows (offline throughput keeps the "
            "bench's windows); a latency window's figure is the mean of its middle half. The interval is a "
            f"moving-block bootstrap ({BOOTSTRAP} resamples) of the ratio of the windows' means, B/A. A change is "
            f"called only when the whole 95% interval is beyond the largest of &plusmn;{THRESHOLD:.0%}, the runs' "
            "noise (the 10th-90th percentile spread of a run's windows) and how far the machine itself moved "
            f"between the runs (its measured float32 peak; server-null for served engines); under {MIN_WINDOWS} "
            "windows, nothing is called. One run per side cannot show how far two processes of one build differ: "
            "for in-process engines that has been 1.3-1.4x on a quiet machine, each run steady inside itself. "
            "Before trusting a called change, bench each side again and give the runs with "
            "<code>--also-a</code> and <code>--also-b</code>: the spread between runs is then measured.")


def compare(a: list[Run], b: list[Run]) -> str:
    """The comparison page of runs A (one build, one or more runs) against runs B."""
    same = all(same_machine(a[0].provenance, run.provenance)[0] for run in a[1:] + b)
    pairs = _common(a, b)
    moved = machine_moved(a, b, pairs)
    rows = [_row(*key, sa[0].metric, change(sa, sb, same, moved[key])) for key, (sa, sb) in pairs.items()]
    warning = machine_warning(a, b)
    if len({run.records[0]["model"]["sha256"] for run in a + b}) > 1:
        warning += '<div class="warn">&#9888; The runs measured different model files.</div>'
    headers = ["engine", "scenario", "metric", "A", "B", "change", "95% interval", "called beyond", "verdict"]
    body = (table(headers, rows) if rows
            else '<p class="muted">The runs have no engine and scenario in common to compare.</p>')
    title = " &rarr; ".join(f"{label}: {', '.join(esc(run.run_id) for run in side)}" for label, side in
                            (("A", a), ("B", b)))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>workbench comparison</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1>{warning}"
            f'<section id="comparison"><h2>Changes</h2>{body}<p class="muted">{_method(a, b)}</p>'
            "</section></body></html>")
