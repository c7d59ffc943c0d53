"""Sections 5 and 6 of the report page: what tuning reached against the measured engines, and where
the measured engines stand under the machine's roofline."""

from workbench.dims import describe_dims, smallest_dims
from workbench.engines import registry
from workbench.report import figures
from workbench.report.markup import at_label, dims_of, esc, image, in_order, num, scenario_label, table
from workbench.report.run import Run


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


def measured_p50(run: Run, engine: str, batch: int, dims: dict | None = None) -> float | None:
    """The engine's p50 at this batch size and --dims combination ({} or None: a record without
    --dims), from the paired blocks where the run has them: a shared machine drifts between phases,
    and lines drawn from one phase each would compare two speeds of the machine (docs/BENCHMARKS.md,
    "Measurement lessons")."""
    for kind in ("paired", "latency"):
        if timed := _at_batch(run, engine, kind, batch, dims):
            return timed["result"]["latency_ms"]["p50_ms"]
    return None


def _at_batch(run: Run, engine: str, kind: str, batch: int, dims: dict | None = None) -> dict | None:
    return next((r for r in run.ok(engine, kind)
                 if r["scenario"]["batch"] == batch and dims_of(r["scenario"]) == (dims or {})), None)


def estimated_dims(run: Run) -> dict:
    """The --dims combination tuning's estimates are for: a session estimates its smallest variant,
    so the smallest combination the run measured; {} without --dims."""
    return smallest_dims(dims_of(r["scenario"]) for r in run.records)


def tuning_figure(run: Run) -> str | None:
    """The cumulative tuning curve of each batch size a session estimated, with each direct
    engine's measured p50 at that batch size (and the estimate's --dims combination) as a line."""
    curves = cumulative_curves(_sessions(run))
    dims = estimated_dims(run)
    lines = {f"{engine} measured {at_label(batch, dims)} p50": (p50, engine, batch) for batch in curves
             for engine in (registry.ONNXRUNTIME, registry.TVM)
             if (p50 := measured_p50(run, engine, batch, dims)) is not None}
    return figures.tuning_curve(curves, lines)


def parity_line(run: Run) -> str:
    """When the tuning estimate first reached ONNX Runtime's measured batch-1 p50 in this run."""
    dims = estimated_dims(run)
    reference = measured_p50(run, registry.ONNXRUNTIME, 1, dims)
    points = cumulative_curves(_sessions(run)).get(1, [])
    if reference is None or not points:
        return ""
    at = at_label(1, dims)
    what = (f"the tuning estimate (sum of best kernel times x calls, batch 1{esc(describe_dims(dims))}) against "
            f"ONNX Runtime's measured {esc(at)} p50 of {reference:.2f} ms")
    # The estimate is the best of many noisy timings per kernel, so it runs optimistic; the
    # measured ratio beside it is the one that counts.
    measured = ""
    if paired := _at_batch(run, registry.TVM, "paired", 1, dims):
        p = paired["result"]
        measured = (f" Measured in this run in alternating blocks: TVM {esc(at)} p50 "
                    f"{p['latency_ms']['p50_ms']:.2f} ms, <b>{p['ratio_p50']:.2f}x</b> ONNX Runtime (10th-90th "
                    f"percentile of {p['rounds']} rounds: {p['ratio_p10']:.2f}-{p['ratio_p90']:.2f}).")
    elif tvm := measured_p50(run, registry.TVM, 1, dims):
        measured = f" Measured in this run: TVM {esc(at)} p50 {tvm:.2f} ms, {tvm / reference:.2f}x ONNX Runtime."
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
    """Each direct record (per batch size and --dims combination, labelled with both) against the
    roof of this machine's measured peak and bandwidth."""
    peak = run.context.get("machine_peak")
    model = run.context.get("model") or {}
    flops = model.get("flops_per_sample")
    if not peak or not flops:
        return '<p class="muted">Not available: this run has no measured machine peak or model FLOP count.</p>'
    weight_bytes = 4 * (model.get("parameters") or 1)
    rows, points = [], []
    for r in in_order(run.ok(kind="latency")) + in_order(run.ok(kind="offline")):
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

