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


def run_figure(s: Series) -> float:
    """One run's value when runs are compared as values: the mean of its windows."""
    return float(np.mean(s.windows)) if len(s.windows) else float("nan")


def between_runs(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """B/A from one figure per run (the geometric means of each side), and its Student t interval on
    the logs: runs are independent processes, so this is the spread that two processes of one build
    really show. Welch's interval when both sides have two runs or more (a change may change the
    spread too); with one run on a side, that side's spread is taken to be the other's. Needs three
    runs in all."""
    from scipy import stats

    la, lb = np.log(np.asarray(a, np.float64)), np.log(np.asarray(b, np.float64))
    na, nb = len(la), len(lb)
    if min(na, nb) < 1 or na + nb < 3:
        raise ValueError("a between-run interval needs one run per side and three in all")
    va, vb = (float(x.var(ddof=1)) if len(x) > 1 else None for x in (la, lb))
    if va is None or vb is None:
        freedom = na + nb - 2
        var = (va or vb) * (1 / na + 1 / nb)  # the side with runs stands for both
    else:
        var = va / na + vb / nb
        terms = (va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1)
        freedom = var ** 2 / terms if terms > 0 else na + nb - 2  # Welch-Satterthwaite
    half = float(stats.t.ppf(0.5 + level / 2, freedom)) * math.sqrt(var)
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
    metric: str = ""


def change(sa: list[Series], sb: list[Series], same: bool = True, moved: dict[str, float] | None = None) -> Change:
    """B against A, each one or more runs: the ratio of the means, its interval, the bound it must clear
    (5%, the runs' noise when there is one run per side, or how far the machine itself moved between
    the runs: `moved`) and the verdict."""
    mean_a, mean_b = ([run_figure(s) for s in side] for side in (sa, sb))
    found = Change(float(np.mean(mean_a)), float(np.mean(mean_b)), metric=sa[0].metric)
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
    if not values or not all(v is not None and math.isfinite(v) and v > 0 for v in values):
        return None
    return max(values) / min(values) - 1


def _side_mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return float(np.mean(known)) if known else None


def machine_moved(a: list[Run], b: list[Run], pairs: dict) -> dict[tuple, dict[str, float]]:
    """Per (engine, scenario): how far the machine itself moved between the two sides, by the figures
    that measure the machine, not the engine: the runs' float32 peak (context.json), and for served
    engines server-null (the harness) on the same scenario; each side's mean of its runs (the spread
    within a side is the runs' own, which the interval over several runs already holds)."""
    peak = drift(*[_side_mean([(run.context.get("machine_peak") or {}).get("peak_gflops") for run in side])
                   for side in (a, b)])
    moved = {}
    for key in pairs:
        found = {"machine's peak moved": peak} if peak is not None else {}
        null = pairs.get((registry.SERVER_NULL, key[1]))
        if key[0] not in (registry.SERVER_NULL, registry.NULL) and null is not None and \
                pairs[key][0][0].metric == null[0][0].metric and key[1].split()[0] in ("closed", "open"):
            harness = drift(*[_side_mean([run_figure(s) for s in side]) for side in null])
            if harness is not None:
                found["server-null moved"] = harness
        moved[key] = found
    return moved


def machine_warning(a: list[Run], b: list[Run]) -> tuple[bool, str]:
    """Whether every run was measured on the first run's machine, and the page's warnings about it."""
    first = a[0]
    judged = [(run, *same_machine(first.provenance, run.provenance)) for run in a[1:] + b]
    others = [run for run, same, _ in judged if not same]
    warning = ""
    if others:
        listed = "; ".join(f'{esc(run.run_id)} on {esc(run.provenance["fingerprint_id"])}: '
                           f'{esc(describe_cpu(run.provenance["machine"]))}' for run in others)
        warning = (f'<div class="warn">&#9888; The runs were measured on different machines ({esc(first.run_id)} on '
                   f'{esc(first.provenance["fingerprint_id"])}: {esc(describe_cpu(first.provenance["machine"]))}; '
                   f"{listed}); differences mix the machine with the change, so no change is called.</div>")
    if any(by_older for _, _, by_older in judged):
        older = [f"{label} ({esc(run.run_id)})" for label, side in (("A", a), ("B", b)) for run in side
                 if fingerprint_kind(run.provenance) < 2]
        warning += (f'<div class="warn">&#9888; The fingerprint of run {" and ".join(older)} '
                    f'{"is" if len(older) == 1 else "are"} {OLDER_KIND_NOTE}'
                    f'{"; the machines may differ in CPU generation" if not others else ""}.</div>')
    return not others, warning


def _row(engine: str, label: str, runs: str, c: Change) -> list[str]:
    css = {"regression": "bad", "improvement": "good"}.get(c.verdict.removesuffix(ONE_RUN_A_SIDE), "muted")
    if c.ratio is None:
        figures = ["-", "-", "-"]
    else:
        figures = [f"{c.ratio - 1:+.1%}", f"[{c.low - 1:+.1%}, {c.high - 1:+.1%}]",
                   f"&plusmn;{c.beyond:.1%} ({esc(c.why)})"]
    return [esc(engine), label, c.metric, runs, num(c.a), num(c.b), *figures, f'<span class="{css}">{c.verdict}</span>']


def _by_key(a: list[Run], b: list[Run]) -> tuple[dict, list[tuple[str, str]]]:
    """(engine, scenario) -> each side's series, one per run that measured it (at least one a side),
    and the keys some run measured that a side lacks altogether."""
    found = [{(r["engine"], scenario_label(r)): s for r in run.ok() if (s := series(r)) is not None}
             for run in a + b]
    keys = list(dict.fromkeys(key for run in found for key in run))
    sides = {key: tuple([run[key] for run in part if key in run] for part in (found[:len(a)], found[len(a):]))
             for key in keys}
    return {k: v for k, v in sides.items() if all(v)}, [k for k, v in sides.items() if not all(v)]


def changes(a: list[Run], b: list[Run]) -> tuple[dict[tuple[str, str], tuple[int, int, Change]], list, str]:
    """Per (engine, scenario): how many runs a side measured it and B's change against A; the keys only
    one side measured; and the page's warnings."""
    same, warning = machine_warning(a, b)
    pairs, one_sided = _by_key(a, b)
    moved = machine_moved(a, b, pairs)
    return ({key: (len(sa), len(sb), change(sa, sb, same, moved[key])) for key, (sa, sb) in pairs.items()},
            one_sided, warning)


def _several_rule() -> str:
    return ("With more runs than one a side, each run counts as one value, the mean of its windows (a latency "
            "window's figure is the mean of its middle half), and the A and B columns are each side's geometric "
            "mean of those values. The interval of B/A is Student's t on their logs (Welch's when both sides "
            "have two runs or more), so it holds the spread between two processes of one build. A change is "
            f"called only when the whole 95% interval is beyond the largest of &plusmn;{THRESHOLD:.0%} and how "
            "far the machine itself moved between the sides (its measured float32 peak; server-null for served "
            "engines). A row measured by one run a side follows the rule below.")


def _single_rule() -> str:
    return (f"With one run a side, each record is cut into up to {MAX_WINDOWS} consecutive windows (offline "
            "throughput keeps the bench's windows), a latency window's figure is the mean of its middle half, and "
            "the A and B columns are the means of the windows. The interval is a moving-block bootstrap "
            f"({BOOTSTRAP} resamples) of the ratio of the windows' means, B/A. A change is called only when the "
            f"whole 95% interval is beyond the largest of &plusmn;{THRESHOLD:.0%}, the runs' noise (the 10th-90th "
            "percentile spread of a run's windows) and how far the machine itself moved between the runs (its "
            f"measured float32 peak; server-null for served engines); under {MIN_WINDOWS} windows, nothing is "
            "called. One run a side cannot show how far two processes of one build differ: for in-process engines "
            "that has been 1.3-1.4x on a quiet machine, each run steady inside itself, so such a call says "
            f"\"{ONE_RUN_A_SIDE.strip(' ()')}\". Before trusting it, bench each side again and give the runs with "
            "<code>--also-a</code> and <code>--also-b</code>: the spread between runs is then measured.")


def compare(a: list[Run], b: list[Run]) -> str:
    """The comparison page of runs A (one build, one or more runs) against runs B."""
    found, one_sided, warning = changes(a, b)
    rows = [_row(*key, f"{na} / {nb}", c) for key, (na, nb, c) in found.items()]
    if len({run.records[0]["model"]["sha256"] for run in a + b}) > 1:
        warning += '<div class="warn">&#9888; The runs measured different model files.</div>'
    if one_sided:
        warning += ('<div class="warn">&#9888; Not compared, measured by one side only: '
                    f'{esc(", ".join(" ".join(key) for key in one_sided))}.</div>')
    headers = ["engine", "scenario", "metric", "runs A / B", "A", "B", "change", "95% interval", "called beyond",
               "verdict"]
    body = (table(headers, rows) if rows
            else '<p class="muted">The runs have no engine and scenario in common to compare.</p>')
    title = " &rarr; ".join(f"{label}: {', '.join(esc(run.run_id) for run in side)}" for label, side in
                            (("A", a), ("B", b)))
    rules = ([_several_rule()] if any(na + nb >= 3 for na, nb, _ in found.values()) else []) + [_single_rule()]
    notes = "".join(f'<p class="muted">{rule}</p>' for rule in rules)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>workbench comparison</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1>{warning}"
            f'<section id="comparison"><h2>Changes</h2>{body}{notes}</section></body></html>')
