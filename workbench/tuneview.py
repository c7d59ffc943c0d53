"""What `tune` shows, and what Ctrl-C does while it runs: a live line during the session, a table
per task at the end. The tuner (compiler/tuner.py) receives the display, as `bench` does its own."""

import signal
import threading
from contextlib import contextmanager

from rich.table import Table

from workbench.console import console, err_console, for_tables


class TuneDisplay:
    """The live progress line: trials done, the last batch's task and its best, the estimate."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None
        self._bar = None

    @contextmanager
    def session(self, model: str, total: int, stop: threading.Event):
        """While MetaSchedule runs. The first Ctrl-C sets `stop`, which the tuner reads after each
        batch (whose records are already stored); a second aborts at once."""
        with self._live(model, total), _first_ctrl_c_sets(stop, self._stopping):
            yield

    @contextmanager
    def _live(self, model: str, total: int):
        if not self.enabled:
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn(f"[bold]tune {model}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
        self._bar = self._progress.add_task("tune", total=total, status="searching")
        try:
            with self._progress:
                yield
        finally:
            self._progress = None

    def batch_done(self, done: int, task, estimate: float | None) -> None:
        best = f"{task.best_after * 1e6:.1f} µs" if task.best_after else "no valid schedule yet"
        e2e = f" · est. end-to-end {estimate * 1e3:.2f} ms" if estimate else ""
        self._update(completed=done, status=f"{task.name}: best {best}{e2e}")

    def status(self, text: str) -> None:
        self._update(status=text)

    def plan(self, text: str, duration: str = "") -> None:
        """Before the first trial: the plan (trials, tasks, why not --trials) and how long it may take."""
        if self.enabled:
            console.print(f"{text}{f' Expect {duration}.' if duration else ''}", soft_wrap=True)

    def _stopping(self) -> None:
        self._update(status="[yellow]Ctrl-C: stopping after this batch (again to abort)[/yellow]")

    def _update(self, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, **fields)


@contextmanager
def _first_ctrl_c_sets(stop: threading.Event, on_first):
    """The first Ctrl-C asks for a clean stop after the current batch; a second aborts at once."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        on_first()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_summary(summary) -> None:
    """The per-task table, the trials against the plan, the estimates beside ONNX Runtime's measured
    latency, and which figure to trust. Each line is one line whatever the terminal's width
    (soft_wrap), so a log file or a script's grep reads it whole."""
    table = Table(title=f"{summary.model} on {summary.target}")
    table.add_column("task", overflow="fold", min_width=20)
    chosen = "chosen, cold" if summary.cold_weights else "chosen"
    for column in ("FLOPs", "calls", "best before", "best now", "GFLOP/s", chosen, "trials", "errors"):
        table.add_column(column, justify="right", overflow="fold")  # fold, never cut a figure to "3.0…"
    fmt = lambda s: f"{s * 1e6:.1f} µs" if s else "default"  # noqa: E731
    for t in summary.tasks:
        table.add_row(t.name, f"{t.flops:.3g}", str(t.weight), fmt(t.best_before), fmt(t.best_after),
                      f"{t.gflops_per_s:.1f}" if t.gflops_per_s else "-", fmt(t.chosen) if t.chosen else "-",
                      str(t.trials), str(t.errors))
    for_tables().print(table)
    for line in summary_lines(summary):
        console.print(line, soft_wrap=True)
    if note := untuned_note(summary):
        err_console.print(f"[yellow]warning:[/yellow] {note}", soft_wrap=True)


def trials_line(summary) -> str:
    """The trials run against the plan, with the reason wherever the two differ."""
    budget, plan = summary.budget, summary.plan
    text = f"Trials: {summary.trials} of the {budget.total} planned"
    if plan is not None and budget.total != plan.requested:
        text += f" (--trials {plan.requested}: see the plan above)"
    if summary.trials > budget.total:  # MetaSchedule checks the budget before a batch, never inside one
        text += (f"; MetaSchedule runs its last batch whole, so {summary.trials - budget.total} more than planned "
                 f"(batches of up to {budget.per_iter})")
    elif summary.trials < budget.total and not (summary.interrupted or summary.out_of_time):
        text += "; every task reached its cap or its search space ran out first"
    text += (f", at most {budget.per_task} per task, in {summary.seconds / 60:.1f} min of search = "
             f"[bold]{summary.trials_per_minute:.1f} trials/min[/bold]")
    if summary.retimed:
        text += f", then {summary.retime_seconds / 60:.1f} min choosing"
    return (f"{text}; records {summary.records_before} -> {summary.records_after} in {summary.database}")


def summary_lines(summary) -> list[str]:
    """What follows the table (its own lines, so tests read them without a terminal)."""
    from workbench.compiler.reference_records import describe_shares
    from workbench.compiler.tunefigures import trust_note

    ms = lambda s: f"{s * 1e3:.3f} ms" if s else "unknown (untuned tasks)"  # noqa: E731
    lines = [trials_line(summary)]
    if summary.reference:
        ref = summary.reference
        lines.append(f"Reference records ({ref['family']}): {ref['seeded_tasks']} tasks timed against the local "
                     f"best in {ref['seconds'] / 60:.1f} min; the reference schedule was faster here for "
                     f"{ref['reference_won']}.")
    if summary.schedules:
        lines.append(describe_shares(summary.schedules, summary.reference))
    if summary.retimed:
        other = sum(1 for r in summary.retimed if r.rank != 0)
        lines.append(f"Chose the schedules of {len(summary.retimed)} tasks by timing their best records side by side "
                     f"{'with cold weights' if summary.cold_weights else 'warm'}: {other} differ from tuning's best.")
    cold = ", cold weights" if summary.cold_weights else ""
    lines.append(f"Latency of {summary.model} at batch {summary.batch}:")
    lines.append(f"  {ms(summary.estimated_latency_after)}  tuning's estimate (each kernel's best timing x its "
                 f"calls, summed{cold}; {ms(summary.estimated_latency_before)} before this run)")
    if summary.retimed:
        lines.append(f"  {ms(summary.estimated_latency_chosen)}  re-timed estimate (the chosen schedules timed "
                     f"again side by side, medians{cold})")
    ort = summary.onnxruntime_latency_s
    lines.append(f"  {ort * 1e3:.3f} ms  ONNX Runtime, measured now (the whole model, p50)" if ort else
                 f"  ONNX Runtime: {summary.onnxruntime_note or 'not measured'}")
    hint = f"`workbench bench --model {summary.model} --target {summary.target}` measures TVM's build against it."
    lines.append(trust_note(summary.estimated_latency_after, summary.estimated_latency_chosen, ort, hint))
    return lines


def untuned_note(summary) -> str:
    """The tasks still on TVM's default schedule, with their share of the FLOPs ("" when none)."""
    untuned = [t for t in summary.tasks if t.best_after is None]
    if not untuned:
        return ""
    share = sum(t.flops * t.weight for t in untuned) / max(1.0, sum(t.flops * t.weight for t in summary.tasks))
    return (f"{len(untuned)} task(s) have no valid schedule yet ({share:.0%} of the FLOPs) and keep TVM's "
            f"default: {', '.join(t.name for t in untuned[:5])}{' ...' if len(untuned) > 5 else ''}")
