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
"""

from dataclasses import dataclass

import numpy as np

from workbench import bootstrap, scenarios
from workbench.engines import registry
from workbench.fingerprint import OLDER_KIND_NOTE, describe_cpu, fingerprint_kind, same_machine
from workbench.report.markup import CSS, esc, num, scenario_label, table
from workbench.report.run import Run

BOOTSTRAP = bootstrap.RESAMPLES
THRESHOLD = 0.05  # the smallest change ever called: the whole 95% interval must be beyond it
MIN_WINDOWS, MAX_WINDOWS, MIN_PER_WINDOW = 6, 20, 5
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


def change(sa: Series, sb: Series, same: bool = True, moved: dict[str, float] | None = None) -> Change:
    """B against A: the ratio of the windows' means, its interval, the bound it must clear (5%, the
    runs' noise, or how far the machine itself moved between the runs: `moved`) and the verdict."""
    found = Change(float(np.mean(sa.windows)) if len(sa.windows) else float("nan"),
                   float(np.mean(sb.windows)) if len(sb.windows) else float("nan"))
    if min(len(sa.windows), len(sb.windows)) < MIN_WINDOWS:
        return found
    found.ratio, found.low, found.high = ratio_interval(sa.windows, sb.windows, np.mean)
    bounds = {"5%": THRESHOLD, "runs' noise": max(noise(sa.windows), noise(sb.windows)), **(moved or {})}
    found.why = max(bounds, key=bounds.get)
    found.beyond = bounds[found.why]
    found.verdict = classify(found.low, found.high, sa.lower_is_better, found.beyond) if same else OTHER_MACHINE
    return found


def drift(a: float | None, b: float | None) -> float | None:
    """How far apart two measurements of the same thing are, as a fraction of the smaller."""
    if not a or not b or a <= 0 or b <= 0:
        return None
    return max(a, b) / min(a, b) - 1


def machine_moved(a: Run, b: Run, pairs: dict) -> dict[tuple, dict[str, float]]:
    """Per (engine, scenario): how far the machine itself moved between the runs, by the figures that
    measure the machine, not the engine: each run's float32 peak (context.json), and for served
    engines server-null (the harness) on the same scenario."""
    peaks = [(run.context.get("machine_peak") or {}).get("peak_gflops") for run in (a, b)]
    peak = drift(*peaks)
    moved = {}
    for key in pairs:
        found = {"machine's peak moved": peak} if peak is not None else {}
        null = pairs.get((registry.SERVER_NULL, key[1]))
        if key[0] not in (registry.SERVER_NULL, registry.NULL) and null is not None and \
                pairs[key][0].metric == null[0].metric and key[1].split()[0] in ("closed", "open"):
            harness = drift(float(np.mean(null[0].windows)), float(np.mean(null[1].windows)))
            if harness is not None:
                found["server-null moved"] = harness
        moved[key] = found
    return moved


def machine_warning(a: Run, b: Run) -> str:
    same, by_older = same_machine(a.provenance, b.provenance)
    warning = ""
    if not same:
        warning = (f'<div class="warn">&#9888; The two runs were measured on different machines '
                   f'({esc(a.provenance["fingerprint_id"])}: {esc(describe_cpu(a.provenance["machine"]))} and '
                   f'{esc(b.provenance["fingerprint_id"])}: {esc(describe_cpu(b.provenance["machine"]))}); differences '
                   "mix the machine with the change, so no change is called.</div>")
    if by_older:
        older = " and ".join(f"{label} ({esc(run.run_id)})" for label, run in (("A", a), ("B", b))
                             if fingerprint_kind(run.provenance) < 2)
        warning += (f'<div class="warn">&#9888; The fingerprint of run {older} is {OLDER_KIND_NOTE}'
                    f'{"; the two machines may differ in CPU generation" if same else ""}.</div>')
    return warning


def _row(engine: str, label: str, metric: str, c: Change) -> list[str]:
    css = {"regression": "bad", "improvement": "good"}.get(c.verdict, "muted")
    if c.ratio is None:
        figures = ["-", "-", "-"]
    else:
        figures = [f"{c.ratio - 1:+.1%}", f"[{c.low - 1:+.1%}, {c.high - 1:+.1%}]",
                   f"&plusmn;{c.beyond:.1%} ({esc(c.why)})"]
    return [esc(engine), label, metric, num(c.a), num(c.b), *figures, f'<span class="{css}">{c.verdict}</span>']


def compare(a: Run, b: Run) -> str:
    same = same_machine(a.provenance, b.provenance)[0]
    keyed_a = {(r["engine"], scenario_label(r)): r for r in a.ok()}
    pairs = {}
    for r in b.ok():
        key = (r["engine"], scenario_label(r))
        if key in keyed_a and (sa := series(keyed_a[key])) is not None and (sb := series(r)) is not None:
            pairs[key] = (sa, sb)
    moved = machine_moved(a, b, pairs)
    rows = [_row(*key, sa.metric, change(sa, sb, same, moved[key])) for key, (sa, sb) in pairs.items()]
    warning = machine_warning(a, b)
    if a.records[0]["model"]["sha256"] != b.records[0]["model"]["sha256"]:
        warning += '<div class="warn">&#9888; The two runs measured different model files.</div>'
    headers = ["engine", "scenario", "metric", "A", "B", "change", "95% interval", "called beyond", "verdict"]
    body = (table(headers, rows) if rows
            else '<p class="muted">The runs have no engine and scenario in common to compare.</p>')
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>workbench comparison</title>"
            f"<style>{CSS}</style></head><body><h1>A: {esc(a.run_id)} &rarr; B: {esc(b.run_id)}</h1>{warning}"
            f'<section id="comparison"><h2>Changes</h2>{body}<p class="muted">Each record is cut into up to '
            f"{MAX_WINDOWS} consecutive windows (offline throughput keeps the bench's windows); a latency window's "
            "figure is the mean of its middle half. The interval is a moving-block bootstrap "
            f"({BOOTSTRAP} resamples) of the ratio of the windows' means, B/A. A change is called only when the "
            f"whole 95% interval is beyond the largest of &plusmn;{THRESHOLD:.0%}, the runs' noise (the "
            "10th-90th percentile spread of a run's windows) and how far the machine itself moved between the "
            "runs (its measured float32 peak; server-null for served engines); under "
            f"{MIN_WINDOWS} windows, nothing is called.</p></section></body></html>")
