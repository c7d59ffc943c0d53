"""`workbench report --compare A B`: per metric the change from A to B with a bootstrap interval."""

import numpy as np

from workbench.fingerprint import OLDER_KIND_NOTE, describe_cpu, fingerprint_kind, same_machine
from workbench.report.page import CSS, esc, num, scenario_label, table
from workbench.report.run import Run

BOOTSTRAP = 1000
THRESHOLD = 0.05  # a change is flagged only when the whole 95% interval is beyond 5%


def ratio_interval(a: np.ndarray, b: np.ndarray, statistic=np.median, seed: int = 0) -> tuple[float, float, float]:
    """statistic(b) / statistic(a) and its 95% percentile-bootstrap interval (both samples resampled)."""
    rng = np.random.default_rng(seed)
    ratios = np.empty(BOOTSTRAP)
    for i in range(BOOTSTRAP):
        ratios[i] = statistic(rng.choice(b, len(b))) / statistic(rng.choice(a, len(a)))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(statistic(b) / statistic(a)), float(low), float(high)


def classify(low: float, high: float, lower_is_better: bool, threshold: float = THRESHOLD) -> str:
    worse_high, better_low = (low > 1 + threshold, high < 1 - threshold)
    if lower_is_better:
        return "regression" if worse_high else ("improvement" if better_low else "no clear change")
    return "regression" if better_low else ("improvement" if worse_high else "no clear change")


def _samples(record: dict) -> tuple[str, np.ndarray, bool] | None:
    """What a record's metric is resampled from: latencies for latency, windows for throughput."""
    result = record["result"]
    if record["scenario"]["kind"] in ("latency", "closed", "open") and result.get("raw_latency_us"):
        return "p50 latency", np.asarray(result["raw_latency_us"], float) / 1000, True
    if record["scenario"]["kind"] == "offline" and result.get("windows"):
        return "throughput (samples/s)", np.asarray([w["throughput_rps"] for w in result["windows"]], float), False
    return None


def machine_warning(a: Run, b: Run) -> str:
    same, by_older = same_machine(a.provenance, b.provenance)
    warning = ""
    if not same:
        warning = (f'<div class="warn">&#9888; The two runs were measured on different machines '
                   f'({esc(a.provenance["fingerprint_id"])}: {esc(describe_cpu(a.provenance["machine"]))} and '
                   f'{esc(b.provenance["fingerprint_id"])}: {esc(describe_cpu(b.provenance["machine"]))}); differences '
                   "mix the machine with the change.</div>")
    if by_older:
        older = " and ".join(f"{label} ({esc(run.run_id)})" for label, run in (("A", a), ("B", b))
                             if fingerprint_kind(run.provenance) < 2)
        warning += (f'<div class="warn">&#9888; The fingerprint of run {older} is {OLDER_KIND_NOTE}'
                    f'{"; the two machines may differ in CPU generation" if same else ""}.</div>')
    return warning


def compare(a: Run, b: Run) -> str:
    rows = []
    keyed_a = {(r["engine"], scenario_label(r)): r for r in a.ok()}
    for r in b.ok():
        key = (r["engine"], scenario_label(r))
        if key not in keyed_a:
            continue
        sa, sb = _samples(keyed_a[key]), _samples(r)
        if sa is None or sb is None or len(sa[1]) < 2 or len(sb[1]) < 2:
            continue
        metric, lower = sa[0], sa[2]
        statistic = np.median if lower else np.mean
        ratio, low, high = ratio_interval(sa[1], sb[1], statistic)
        verdict = classify(low, high, lower)
        css = {"regression": "bad", "improvement": "good"}.get(verdict, "muted")
        rows.append([esc(key[0]), key[1], metric, num(float(statistic(sa[1]))), num(float(statistic(sb[1]))),
                     f"{ratio - 1:+.1%}", f"[{low - 1:+.1%}, {high - 1:+.1%}]",
                     f'<span class="{css}">{verdict}</span>'])
    warning = machine_warning(a, b)
    if a.records[0]["model"]["sha256"] != b.records[0]["model"]["sha256"]:
        warning += '<div class="warn">&#9888; The two runs measured different model files.</div>'
    body = (table(["engine", "scenario", "metric", "A", "B", "change", "95% interval", "verdict"], rows) if rows
            else '<p class="muted">The runs have no engine and scenario in common to compare.</p>')
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>workbench comparison</title>"
            f"<style>{CSS}</style></head><body><h1>A: {esc(a.run_id)} &rarr; B: {esc(b.run_id)}</h1>{warning}"
            f'<section id="comparison"><h2>Changes</h2>{body}<p class="muted">Bootstrap ({BOOTSTRAP} resamples) of '
            f"the ratio B/A; flagged only when the whole 95% interval is beyond &plusmn;{THRESHOLD:.0%}.</p>"
            "</section></body></html>")
