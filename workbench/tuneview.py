"""What `tune` shows, and what Ctrl-C does while it runs: a live line during the session, a table
per task at the end. The tuner (compiler/tuner.py) receives the display, as `bench` does its own."""

import signal
import threading
from contextlib import contextmanager

from rich.table import Table

from workbench.console import console, err_console


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
    """The per-task table, the estimated latency before and after, the trial rate and the choice."""
    table = Table(title=f"{summary.model} on {summary.target}")
    table.add_column("task", overflow="fold", min_width=20)
    chosen = "chosen, cold" if summary.cold_weights else "chosen"
    for column in ("FLOPs", "calls", "best before", "best now", "GFLOP/s", chosen, "trials", "errors"):
        table.add_column(column, justify="right")
    fmt = lambda s: f"{s * 1e6:.1f} µs" if s else "default"  # noqa: E731
    for t in summary.tasks:
        table.add_row(t.name, f"{t.flops:.3g}", str(t.weight), fmt(t.best_before), fmt(t.best_after),
                      f"{t.gflops_per_s:.1f}" if t.gflops_per_s else "-", fmt(t.chosen) if t.chosen else "-",
                      str(t.trials), str(t.errors))
    console.print(table)
    est = lambda s: f"{s * 1e3:.3f} ms" if s else "unknown (untuned tasks)"  # noqa: E731
    console.print(f"Estimated end-to-end latency, smallest batch (sum of best kernel times x calls): "
                  f"{est(summary.estimated_latency_before)} before this run -> "
                  f"[bold]{est(summary.estimated_latency_after)}[/bold]")
    console.print(f"Trials: {summary.trials} of a budget of {summary.budget.total} "
                  f"(at most {summary.budget.per_task} per task) in {summary.seconds / 60:.1f} min = "
                  f"[bold]{summary.trials_per_minute:.1f} trials/min[/bold]; records "
                  f"{summary.records_before} -> {summary.records_after} in {summary.database}")
    if summary.retimed:
        other = sum(1 for r in summary.retimed if r.rank != 0)
        timed, caveat = (("with cold weights", " (every weight and output cold, so it runs high)")
                         if summary.cold_weights else ("warm", ""))
        console.print(f"Chose the schedules of {len(summary.retimed)} tasks by timing their best records side "
                      f"by side {timed} ({summary.retime_seconds:.0f} s): {other} differ from tuning's "
                      f"best; estimate from those timings{caveat}: {est(summary.estimated_latency_chosen)}")
    if note := untuned_note(summary):
        err_console.print(f"[yellow]warning:[/yellow] {note}")


def untuned_note(summary) -> str:
    """The tasks still on TVM's default schedule, with their share of the FLOPs ("" when none)."""
    untuned = [t for t in summary.tasks if t.best_after is None]
    if not untuned:
        return ""
    share = sum(t.flops * t.weight for t in untuned) / max(1.0, sum(t.flops * t.weight for t in summary.tasks))
    return (f"{len(untuned)} task(s) have no valid schedule yet ({share:.0%} of the FLOPs) and keep TVM's "
            f"default: {', '.join(t.name for t in untuned[:5])}{' ...' if len(untuned) > 5 else ''}")
