"""The report page: seven sections rendered from a Run as plain HTML with embedded figures."""

import json

import numpy as np

from workbench import records, scenarios
from workbench import verdict as verdict_rules
from workbench.engines import registry
from workbench.fingerprint import OLDER_KIND_NOTE, describe_cpu, fingerprint_kind
from workbench.report import figures
from workbench.report.markup import CSS, at_label, dims_table, esc, image, in_order, num, scenario_label, table
from workbench.report.run import Run, errors_of, failure_reason
from workbench.report.tuning import roofline, tuning

SECTIONS = (("verdict", "1. Verdict"), ("correctness", "2. Correctness"), ("direct", "3. Direct latency"),
            ("served", "4. Served"), ("tuning", "5. Tuning"), ("roofline", "6. Roofline"),
            ("environment", "7. Environment and provenance"))


# ---- 1. verdict and warnings --------------------------------------------------------------------
def _decision_cells(d: verdict_rules.Decision) -> list[str]:
    if d.engine is None:
        call = '<span class="muted">no engine</span>'
    elif d.runner_up is None:
        call = f"only {esc(d.engine)}"
    elif d.flag:
        call = '<span class="bad">no safe verdict (flagged)</span>'
    elif d.close:
        call = '<span class="muted">too close to call</span>'
    else:
        call = f"<b>{esc(d.engine)}</b>"
    factor = "-"
    if d.factor is not None:
        interval = f" ({d.low:.2f}-{d.high:.2f})" if d.low is not None else " (no interval)"
        what = "latency" if d.lower_is_better else "throughput"
        factor = f"{verdict_rules.times(d.factor)} the {what} of {esc(d.runner_up)}{interval}"
    return [esc(d.figure), call, factor, esc(verdict_rules.tvm_line(d, with_figure=False) or "-")]


def verdict(run: Run, decide_by: str | None = None) -> str:
    """The sentence first (what to deploy, by the chosen figure), then every figure's own call."""
    figures_here = verdict_rules.available(run.records)
    excluded = [e for e in run.engines() if e not in {r["engine"] for r in run.ok()}]
    note = (f'<p class="bad">Not eligible (failed the correctness gate, failed to start, or not timed): '
            f'{esc(", ".join(excluded))}.</p>' if excluded else "")
    if not figures_here:
        return note + '<p class="bad">No engine produced a timed, correct result in this run.</p>'
    chosen = verdict_rules.decide(run.records, decide_by or run.decide_by)
    lead = f'<p class="lead" id="verdict-sentence"><b>{esc(chosen.sentence)}</b></p>'
    if line := verdict_rules.tvm_line(chosen):
        lead += f'<p class="bad">{esc(line)}</p>'
    rows = [_decision_cells(verdict_rules.decide(run.records, name)) for name in figures_here]
    return (lead + table(["deciding figure", "call", "factor over the runner-up (95% CI)", "TVM"], rows) + note +
            '<p class="muted">Only engines that passed the correctness gate against ONNX Runtime count. The '
            "interval is a moving-block bootstrap over the paired rounds (direct) or the requests in order "
            "(served), so a slow spell of the machine widens it; a call is made only when it excludes 1.0. "
            "Choose the deciding figure with <code>--decide-by</code> (latency, throughput-c&lt;N&gt;, slo).</p>")


SEVERITY = ("failed", "flagged", "unstable", "generator", "errors", "context")


def warnings(run: Run) -> list[tuple[str, str]]:
    """(kind, text) for everything a reviewer must weigh, most severe kinds first."""
    found = []
    for r in run.records:
        label = f"{r['engine']} {scenarios.label(r['scenario'])}"
        result = r.get("result") or {}
        if r.get("status") in ("failed", "rejected"):
            found.append(("failed", f"{label}: {r['status']}: {r.get('note') or ''}"))
        if result.get("flag"):
            found.append(("flagged", f"{label}: not to be trusted: {result['flag']}"))
        if (result.get("stability") or {}).get("stable") is False:
            found.append(("unstable", f"{label}: unstable windows ({result['stability'].get('reason')}); "
                                      "treat as indicative"))
        if (result.get("generator_cpu") or 0) > records.GENERATOR_SATURATED:
            found.append(("generator", f"{label}: the load generator used {result['generator_cpu']:.0%} of a core, "
                                       "so it may be the bottleneck; this throughput is a lower bound"))
        if sum((result.get("errors") or {}).values()):
            found.append(("errors", f"{label}: {sum(result['errors'].values())} request errors {result['errors']}"))
    if not run.context:
        found.append(("context", "this run has no context.json (made by an older bench): the tuning and roofline "
                                 "sections are empty"))
    return sorted(found, key=lambda w: SEVERITY.index(w[0]))


def warnings_summary(found: list[tuple[str, str]]) -> str:
    """One line with the count and the worst, the full list folded under it."""
    if not found:
        return ""
    items = "".join(f"<li>{esc(text)}</li>" for _, text in found)
    return (f'<details class="warn" id="warnings"><summary>&#9888; {len(found)} warning(s); the most severe: '
            f"{esc(found[0][1])}</summary><ul>{items}</ul></details>")


# ---- 2. correctness -----------------------------------------------------------------------------
def correctness(run: Run) -> str:
    rows = []
    for engine in run.engines():
        mine = [r for r in run.records if r["engine"] == engine]
        checked = [r for r in mine if r.get("correctness")]
        if not checked:
            rows.append([esc(engine), '<span class="muted">not checked (returns zeros by design)</span>'
                         if registry.is_null(engine) else '<span class="muted">not checked</span>', "-", "-"])
            continue
        passed = all(r["correctness"].get("passed") for r in checked)
        worst = errors_of([r["correctness"] for r in checked])
        reason = failure_reason([r["correctness"] for r in checked])
        verdict_html = ('<span class="good">passed</span>' if passed else
                        f'<span class="bad">FAILED: never a winner</span>{" (" + esc(reason) + ")" if reason else ""}')
        rows.append([esc(engine), verdict_html, num(worst[0]) if worst else "-", num(worst[1]) if worst else "-"])
    tolerance = next((r["correctness"] for r in run.records if (r.get("correctness") or {}).get("rtol") is not None),
                     None)
    tol = (f"rtol {tolerance['rtol']:g}, atol {tolerance['atol']:g}" if tolerance else "the bench's tolerance")
    return (table(["engine", "against ONNX Runtime", "max abs error", "max rel error"], rows) +
            '<p class="muted">Same seeded inputs for every engine; pass when |a - e| &le; atol + rtol |e| '
            f'({tol}).</p>')


# ---- 3. direct ----------------------------------------------------------------------------------
def direct(run: Run) -> str:
    """Per batch size and --dims combination: one row each, one bar each in the figure."""
    rows = [records.row(r) for r in in_order(run.ok(kind="latency"))]
    offline = [records.row(r) for r in in_order(run.ok(kind="offline"))]
    if not rows and not offline:
        return '<p class="muted">No direct measurements in this run (add engines tvm / onnxruntime).</p>'
    latency_table = dims_table(["engine", "batch", "p50 ms", "p90 ms", "p99 ms", "max ms"], "batch",
                               [[esc(r["engine"]), r["batch"], num(r["p50_ms"]), num(r["p90_ms"]), num(r["p99_ms"]),
                                 num(r["max_ms"])] for r in rows], [r["dims"] for r in rows])
    offline_table = dims_table(["engine", "batch", "samples/s", "p50 ms per batch"], "batch",
                               [[esc(r["engine"]), r["batch"], num(r["throughput"]), num(r["p50_ms"])]
                                for r in offline], [r["dims"] for r in offline])
    return (latency_table + image(figures.direct_latency(rows), "direct latency per batch size") + _paired(run) +
            "<h3>Offline throughput (back-to-back batches: the ceiling a server can reach here)</h3>" + offline_table)


def _paired(run: Run) -> str:
    paired = [r for r in in_order(run.ok(kind="paired")) if r["engine"] != r["result"]["reference"]]
    if not paired:
        return ""
    part = ("<h3>Paired (the engines called in alternating blocks, so the machine's slow spells fall on all "
            "alike)</h3>" + dims_table(
                ["engine", "batch", "p50 ms", "against", "ratio of p50s", "10th-90th pct of rounds",
                 "check against direct p50s"], "batch",
                [[esc(r["engine"]), r["scenario"]["batch"], num(r["result"]["latency_ms"]["p50_ms"]),
                  esc(r["result"]["reference"]), _paired_ratio(r),
                  f"{r['result']['ratio_p10']:.2f}-{r['result']['ratio_p90']:.2f}", _paired_check(r)]
                 for r in paired], [scenarios.dims_label(r["scenario"]) for r in paired]))
    best = [f"{esc(r['engine'])} {esc(at_label(r['scenario']['batch'], r['scenario'].get('dims')))}: "
            f"{r['result']['ratio_to_best_other']['ratio_p50']:.2f}x the fastest other runtime "
            f"({esc(r['result']['ratio_to_best_other']['engine'])})"
            for r in paired if r["result"].get("ratio_to_best_other")]
    return part + (f'<p>{"; ".join(best)}.</p>' if best else "")


def _paired_ratio(record: dict) -> str:
    ratio = f"{record['result']['ratio_p50']:.2f}x"
    return f'<span class="bad">{ratio} (flagged)</span>' if record["result"].get("flag") else f"<b>{ratio}</b>"


def _paired_check(record: dict) -> str:
    result = record["result"]
    if result.get("flag"):
        return f'<span class="bad">{esc(result["flag"])}</span>'
    if result.get("direct_ratio") is not None:
        return f"agrees (direct {result['direct_ratio']:.2f}x)"
    return '<span class="muted">not checked (older record)</span>'


# ---- 4. served ----------------------------------------------------------------------------------
def served(run: Run) -> str:
    """Per concurrency (or rate) and --dims combination: one row each, one series per engine and
    combination in the figures."""
    closed = [records.row(r) for r in in_order(run.ok(kind="closed"))]
    parts = []
    if closed:
        parts.append(dims_table(["engine", "concurrency", "requests/s", "p50 ms", "p99 ms", "errors", "stable",
                                 "generator CPU", "server CPU µs/request"], "concurrency",
                                [[esc(r["engine"]), r["concurrency"], num(r["throughput"]), num(r["p50_ms"]),
                                  num(r["p99_ms"]), r["errors"], {True: "yes", False: '<span class="bad">no</span>',
                                                                  None: "-"}[r["stable"]],
                                  f"{r['generator_cpu']:.0%}" if r["generator_cpu"] is not None else "-",
                                  num(r["server_cpu_us_per_request"])]
                                 for r in closed], [r["dims"] for r in closed]))
        parts.append(image(figures.served_vs_concurrency(closed), "served throughput and latency vs concurrency"))
        top = max(r["concurrency"] for r in closed)
        series = {_series(r): np.asarray(r["result"]["raw_latency_us"]) / 1000
                  for r in in_order(run.ok(kind="closed"))
                  if r["scenario"]["concurrency"] == top and r["result"].get("raw_latency_us")}
        parts.append(image(figures.percentile_curves(series, top), f"latency percentiles at concurrency {top}"))
    points, bound = {}, None
    for r in in_order(run.ok(kind="open")):
        points.setdefault(_series(r), []).append((r["scenario"]["rate"], r["result"]["latency_ms"]["p99_ms"]))
    for r in in_order(run.ok(kind="slo-search")):
        bound = r["scenario"]["slo_p99_ms"]
        points.setdefault(_series(r), []).extend((t["rate"], t["p99_ms"]) for t in r["result"]["trials"])
    if points:
        parts.append(image(figures.rate_vs_p99(points, bound), "open-loop rate against p99"))
    if not parts:
        return '<p class="muted">No served measurements in this run (add engines flask-naive / server-*).</p>'
    return "".join(parts)


def _series(record: dict) -> tuple[str, str | None]:
    """A figure's series: the engine and the --dims combination ("seq=8"; None without --dims)."""
    return record["engine"], scenarios.dims_label(record["scenario"]) or None


# ---- 7. environment -----------------------------------------------------------------------------
def environment(run: Run) -> str:
    p = run.provenance
    machine = p["machine"]
    older = f' <span class="muted">({esc(OLDER_KIND_NOTE)})</span>' if fingerprint_kind(p) < 2 else ""
    facts = [["fingerprint", esc(p["fingerprint_id"]) + older], ["CPU", esc(describe_cpu(machine))],
             ["cores", f"{machine['physical_cores']} physical, {machine['logical_cores']} logical"],
             ["ISA", esc(", ".join(machine["cpu_flags"]))],
             ["GPUs", esc(", ".join(g["name"] for g in machine["gpus"]) or "none")],
             ["OS", esc(machine["os"])], ["git commit", esc(p.get("git_commit") or "unknown")],
             *[[esc(k), esc(v)] for k, v in p["versions"].items()]]
    commands = sorted({r["command"] for r in run.records})
    settings = {r["engine"]: r["settings"] for r in run.records}
    stability = [[esc(r["engine"]), scenario_label(r),
                  {True: "stable", False: '<span class="bad">unstable</span>', None: "-"}[
                      ((r.get("result") or {}).get("stability") or {}).get("stable")],
                  esc(((r.get("result") or {}).get("stability") or {}).get("reason") or "")]
                 for r in run.records if (r.get("result") or {}).get("stability")]
    return (table(["", ""], facts) + "<h3>Commands</h3>" + "".join(f"<pre>{esc(c)}</pre>" for c in commands) +
            "<h3>Stability verdicts</h3>" + table(["engine", "scenario", "verdict", "reason"], stability) +
            "<h3>Settings per engine</h3>" + f"<pre>{esc(json.dumps(settings, indent=1, default=str))}</pre>")


def render(run: Run, decide_by: str | None = None) -> str:
    found = warnings(run)
    bodies = {"verdict": verdict(run, decide_by) + warnings_summary(found), "correctness": correctness(run),
              "direct": direct(run), "served": served(run), "tuning": tuning(run), "roofline": roofline(run),
              "environment": environment(run)}
    model = run.records[0]["model"]["name"]
    sections = "".join(f'<section id="{key}"><h2>{title}</h2>{bodies[key]}</section>' for key, title in SECTIONS)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>workbench report: "
            f"{esc(run.run_id)}</title><style>{CSS}</style></head><body><h1>{esc(model)} on "
            f"{esc(run.records[0]['target'])}: {esc(run.run_id)}</h1>"
            f'<p class="muted">Machine {esc(run.provenance["fingerprint_id"])} '
            f'({esc(run.provenance["machine"]["cpu_model"])}); '
            f"{len(run.records)} records; {len(found)} warning(s).</p>{sections}</body></html>")
