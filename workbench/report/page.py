"""The report page: seven sections rendered from a Run as plain HTML with embedded figures."""

import html
import json

import numpy as np

from workbench import records, scenarios
from workbench import verdict as verdict_rules
from workbench.engines import registry
from workbench.fingerprint import OLDER_KIND_NOTE, describe_cpu, fingerprint_kind
from workbench.report import figures
from workbench.report.run import Run, errors_of, failure_reason

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.warn { background: #fff4e0; border-left: 4px solid #e69500; padding: .5em 1em; margin: .5em 0; }
.bad { color: #b00020; font-weight: bold; } .good { color: #1b7f3a; font-weight: bold; }
.lead { font-size: 1.15em; } details.warn summary { cursor: pointer; }
.muted { color: #666; } img { max-width: 100%; } pre { background: #f7f7f7; padding: .6em; overflow-x: auto; }
"""
SECTIONS = (("verdict", "1. Verdict"), ("correctness", "2. Correctness"), ("direct", "3. Direct latency"),
            ("served", "4. Served"), ("tuning", "5. Tuning"), ("roofline", "6. Roofline"),
            ("environment", "7. Environment and provenance"))


def esc(value) -> str:
    return html.escape(str(value))


def num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image(uri: str | None, alt: str) -> str:
    return f'<p><img src="{uri}" alt="{esc(alt)}"></p>' if uri else f'<p class="muted">No data for: {esc(alt)}.</p>'


def scenario_label(record: dict) -> str:
    return scenarios.label(record["scenario"], html=True)


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
    rows = [records.row(r) for r in run.ok(kind="latency")]
    offline = [records.row(r) for r in run.ok(kind="offline")]
    if not rows and not offline:
        return '<p class="muted">No direct measurements in this run (add engines tvm / onnxruntime).</p>'
    latency_table = table(["engine", "batch", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                          [[esc(r["engine"]), r["batch"], num(r["p50_ms"]), num(r["p90_ms"]), num(r["p99_ms"]),
                            num(r["max_ms"])] for r in rows])
    offline_table = table(["engine", "batch", "samples/s", "p50 ms per batch"],
                          [[esc(r["engine"]), r["batch"], num(r["throughput"]), num(r["p50_ms"])] for r in offline])
    paired = [r for r in run.ok(kind="paired") if r["engine"] != r["result"]["reference"]]
    paired_part = ("<h3>Paired (the engines called in alternating blocks, so the machine's slow spells fall on "
                   "all alike)</h3>" + table(
                       ["engine", "batch", "p50 ms", "against", "ratio of p50s", "10th-90th pct of rounds",
                        "check against direct p50s"],
                       [[esc(r["engine"]), r["scenario"]["batch"], num(r["result"]["latency_ms"]["p50_ms"]),
                         esc(r["result"]["reference"]), _paired_ratio(r),
                         f"{r['result']['ratio_p10']:.2f}-{r['result']['ratio_p90']:.2f}", _paired_check(r)]
                        for r in paired])
                   if paired else "")
    best = [f"{esc(r['engine'])} b{r['scenario']['batch']}: {r['result']['ratio_to_best_other']['ratio_p50']:.2f}x "
            f"the fastest other runtime ({esc(r['result']['ratio_to_best_other']['engine'])})"
            for r in paired if r["result"].get("ratio_to_best_other")]
    paired_part += f'<p>{"; ".join(best)}.</p>' if best else ""
    return (latency_table + image(figures.direct_latency(rows), "direct latency per batch size") + paired_part +
            "<h3>Offline throughput (back-to-back batches: the ceiling a server can reach here)</h3>" + offline_table)


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
    closed = [records.row(r) for r in run.ok(kind="closed")]
    parts = []
    if closed:
        parts.append(table(["engine", "concurrency", "requests/s", "p50 ms", "p99 ms", "errors", "stable",
                            "generator CPU"],
                           [[esc(r["engine"]), r["concurrency"], num(r["throughput"]), num(r["p50_ms"]),
                             num(r["p99_ms"]), r["errors"], {True: "yes", False: '<span class="bad">no</span>',
                                                             None: "-"}[r["stable"]],
                             f"{r['generator_cpu']:.0%}" if r["generator_cpu"] is not None else "-"]
                            for r in closed]))
        parts.append(image(figures.served_vs_concurrency(closed), "served throughput and latency vs concurrency"))
        top = max(r["concurrency"] for r in closed)
        series = {r["engine"]: np.asarray(r["result"]["raw_latency_us"]) / 1000 for r in run.ok(kind="closed")
                  if r["scenario"]["concurrency"] == top and r["result"].get("raw_latency_us")}
        parts.append(image(figures.percentile_curves(series, top), f"latency percentiles at concurrency {top}"))
    points, bound = {}, None
    for r in run.ok(kind="open"):
        points.setdefault(r["engine"], []).append((r["scenario"]["rate"], r["result"]["latency_ms"]["p99_ms"]))
    for r in run.ok(kind="slo-search"):
        bound = r["scenario"]["slo_p99_ms"]
        points.setdefault(r["engine"], []).extend((t["rate"], t["p99_ms"]) for t in r["result"]["trials"])
    if points:
        parts.append(image(figures.rate_vs_p99(points, bound), "open-loop rate against p99"))
    if not parts:
        return '<p class="muted">No served measurements in this run (add engines flask-naive / server-*).</p>'
    return "".join(parts)


# ---- 5. tuning ----------------------------------------------------------------------------------
def cumulative_curves(sessions: list[dict]) -> dict[int, list[tuple[float, int, float]]]:
    """Sessions one after another: minutes and trials add up over all of them; each estimate (ms)
    goes to the curve of its session's smallest batch size, the one the session estimates."""
    curves, minutes, trials = {}, 0.0, 0
    for session in sessions:
        batch = min(session.get("batch_sizes") or [1])
        for seconds, n, estimate in session.get("curve", []):
            if estimate is not None:
                curves.setdefault(batch, []).append((minutes + seconds / 60, trials + n, estimate * 1000))
        minutes += session.get("seconds", 0) / 60
        trials += session.get("trials", 0)
    return dict(sorted(curves.items()))


def _sessions(run: Run) -> list[dict]:
    return (run.context.get("tuning") or {}).get("sessions") or []


def time_to_parity(points: list[tuple[float, int, float]], reference_ms: float) -> tuple[float, int] | None:
    """Minutes and trials at the first point of the curve at or below the reference, if any."""
    return next(((minutes, trials) for minutes, trials, ms in points if ms <= reference_ms), None)


def measured_p50(run: Run, engine: str, batch: int) -> float | None:
    """The engine's p50 at this batch size, from the paired blocks where the run has them: a shared
    machine drifts between phases, and lines drawn from one phase each would compare two speeds of
    the machine (docs/BENCHMARKS.md, "Measurement lessons")."""
    for kind in ("paired", "latency"):
        if timed := _at_batch(run, engine, kind, batch):
            return timed["result"]["latency_ms"]["p50_ms"]
    return None


def _at_batch(run: Run, engine: str, kind: str, batch: int) -> dict | None:
    return next((r for r in run.ok(engine, kind) if r["scenario"]["batch"] == batch), None)


def tuning_figure(run: Run) -> str | None:
    """The cumulative tuning curve of each batch size a session estimated, with each direct
    engine's measured p50 at that batch size as a line."""
    curves = cumulative_curves(_sessions(run))
    lines = {f"{engine} measured b{batch} p50": (p50, engine, batch) for batch in curves
             for engine in (registry.ONNXRUNTIME, registry.TVM)
             if (p50 := measured_p50(run, engine, batch)) is not None}
    return figures.tuning_curve(curves, lines)


def parity_line(run: Run) -> str:
    """When the tuning estimate first reached ONNX Runtime's measured batch-1 p50 in this run."""
    reference = measured_p50(run, registry.ONNXRUNTIME, 1)
    points = cumulative_curves(_sessions(run)).get(1, [])
    if reference is None or not points:
        return ""
    what = (f"the tuning estimate (sum of best kernel times x calls, batch 1) against ONNX Runtime's "
            f"measured b1 p50 of {reference:.2f} ms")
    # The estimate is the best of many noisy timings per kernel, so it runs optimistic; the
    # measured ratio beside it is the one that counts.
    measured = ""
    if paired := _at_batch(run, registry.TVM, "paired", 1):
        p = paired["result"]
        measured = (f" Measured in this run in alternating blocks: TVM b1 p50 {p['latency_ms']['p50_ms']:.2f} ms, "
                    f"<b>{p['ratio_p50']:.2f}x</b> ONNX Runtime (10th-90th percentile of "
                    f"{p['rounds']} rounds: {p['ratio_p10']:.2f}-{p['ratio_p90']:.2f}).")
    elif tvm := measured_p50(run, registry.TVM, 1):
        measured = f" Measured in this run: TVM b1 p50 {tvm:.2f} ms, {tvm / reference:.2f}x ONNX Runtime."
    if reached := time_to_parity(points, reference):
        return f"<p>Time to parity, {what}: <b>{reached[0]:.1f} minutes, {reached[1]:,} trials</b>.{measured}</p>"
    minutes, trials, best = min(points, key=lambda p: p[2])
    return (f'<p>Time to parity, {what}: <span class="bad">not reached</span>; best estimate {best:.2f} ms '
            f"({best / reference:.2f}x) after {minutes:.1f} minutes, {trials:,} trials.{measured}</p>")


def schedules_line(run: Run) -> str:
    """Where the build's schedules came from: reference records, local tuning, TVM's defaults."""
    from workbench.compiler.reference_records import describe_shares

    build = (run.context.get("tuning") or {}).get("build") or {}
    return f'<p id="schedule-sources">{esc(describe_shares(build["schedules"], build.get("reference")))}</p>' \
        if build.get("schedules") else ""


def tuning(run: Run) -> str:
    sessions = _sessions(run)
    if not sessions:
        return ('<p class="muted">No tuning sessions for this model and target in the database '
                f'({esc((run.context.get("tuning") or {}).get("database", "unknown"))}). Kernels without reference '
                "records ran TVM's default schedules; <code>workbench tune</code> tunes them here.</p>" +
                schedules_line(run))
    total_trials = sum(s.get("trials", 0) for s in sessions)
    total_minutes = sum(s.get("seconds", 0) for s in sessions) / 60
    last = sessions[-1]
    rows = []
    for task in last.get("tasks", []):
        best = task.get("best_s")
        gflops = task["flops"] / best / 1e9 if best and task["flops"] else None
        default = best is None or not task.get("trials")
        rows.append([esc(task["name"]), num(task["flops"] / 1e6), num(best * 1000 if best else None),
                     num(gflops), task.get("trials", 0),
                     '<span class="bad">default schedule</span>' if default else "tuned"])
    return (f"<p>{len(sessions)} session(s), {total_trials:,} trials in {total_minutes:.1f} minutes "
            f"({total_trials / max(total_minutes, 1e-9):.1f} trials/min).</p>" +
            schedules_line(run) + parity_line(run) + image(tuning_figure(run), "tuning curve") +
            f"<h3>Tasks after the latest session ({esc(last.get('started', ''))})</h3>" +
            table(["task", "MFLOP", "best ms", "GFLOP/s", "trials", "state"], rows))


# ---- 6. roofline --------------------------------------------------------------------------------
def roofline(run: Run) -> str:
    peak = run.context.get("machine_peak")
    model = run.context.get("model") or {}
    flops = model.get("flops_per_sample")
    if not peak or not flops:
        return '<p class="muted">Not available: this run has no measured machine peak or model FLOP count.</p>'
    weight_bytes = 4 * (model.get("parameters") or 1)
    rows, points = [], []
    for r in run.ok(kind="latency") + run.ok(kind="offline"):
        if registry.is_null(r["engine"]):
            continue
        batch = r["scenario"]["batch"]
        seconds = (r["result"]["latency_ms"]["p50_ms"] / 1000 if r["scenario"]["kind"] == "latency"
                   else batch / r["result"]["throughput_sps"])
        achieved = flops * batch / seconds / 1e9
        label = f"{r['engine']} {scenario_label(r)}"
        rows.append([esc(label), num(achieved), f"{achieved / peak['peak_gflops']:.1%}"])
        points.append((r["engine"], label, flops * batch / weight_bytes, achieved))
    return (f"<p>Measured here: float32 peak <b>{peak['peak_gflops']:.1f} GFLOP/s</b>, memory bandwidth "
            f"<b>{peak['bandwidth_gbs']:.1f} GB/s</b> ({esc(peak['method'])}). Model: {flops / 1e6:,.1f} MFLOP per "
            f"sample, {model.get('parameters', 0):,} parameters.</p>" +
            table(["engine / scenario", "achieved GFLOP/s", "of peak"], rows) +
            image(figures.roofline(peak["peak_gflops"], peak["bandwidth_gbs"], points), "roofline"))


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
