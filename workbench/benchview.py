"""What `bench` shows: a live line per phase while it runs, and a table per engine at the end."""

import time

from rich.live import Live
from rich.table import Table
from rich.text import Text

from workbench import scenarios
from workbench.console import console, err_console, for_tables


class BenchDisplay:
    """Live status on stderr: engine, phase, requests done and the current rate."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._live: Live | None = None
        self._engine = self._phase = ""
        self._last = (0, 0.0)
        self._rate = 0.0
        self._started = time.monotonic()

    def start(self, run_id: str) -> None:
        if self.enabled:
            err_console.print(f"bench run {run_id}")
            self._live = Live(self._render(0), console=err_console, refresh_per_second=4, transient=True)
            self._live.start()

    def phase(self, engine: str, phase: str) -> None:
        self._engine, self._phase, self._last, self._rate = engine, phase, (0, 0.0), 0.0
        self._started = time.monotonic()
        if self._live:
            self._live.update(self._render(0))
        elif self.enabled:
            err_console.print(f"{engine}: {phase}")

    def progress(self, done: int, elapsed: float) -> None:
        last_done, last_t = self._last
        if elapsed > last_t:
            self._rate = (done - last_done) / (elapsed - last_t)
        self._last = (done, elapsed)
        if self._live:
            self._live.update(self._render(done))

    def _render(self, done: int) -> Text:
        line = f"{self._engine:<20} {self._phase:<44} {time.monotonic() - self._started:5.0f} s"
        if done:
            line += f"  {done:>8} requests  {self._rate:>8.0f} req/s"
        return Text(line)

    def stop(self) -> None:
        if self._live:
            self._live.stop()
            self._live = None


def _fmt(value, digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def print_tables(records: list[dict]) -> None:
    """One table: a row per engine x scenario. Throughput is samples/s direct, requests/s served."""
    # Piped output gets rich's 80 columns; a log reads better wide. A narrow terminal gets the
    # columns that decide (p90, p99.9, max and stable are in results.csv and the report).
    out = for_tables()
    columns = FULL_COLUMNS if out.width >= 110 else NARROW_COLUMNS
    table = Table(title="bench results (latency in ms)", title_justify="left", pad_edge=False)
    for column in columns:
        # fold, never "…": a cut cell (3.0… for 3.05x) reads as another figure
        table.add_column(column, justify="left" if column in ("engine", "scenario") else "right", overflow="fold")
    for record in records:
        cells = _cells(record)
        table.add_row(*(cells[c] for c in columns))
    out.print(table)


FULL_COLUMNS = ("engine", "scenario", "throughput", "p50", "p90", "p99", "p99.9", "max", "err", "stable", "ok")
NARROW_COLUMNS = ("engine", "scenario", "throughput", "p50", "p99", "err", "ok")


def _cells(record: dict) -> dict[str, str]:
    from workbench.records import row

    r = row(record)
    unit = {"samples/s": " sps", "requests/s": " rps"}.get(r["throughput_unit"], "")
    # A paired row's figure is its p50 over the reference's, measured in alternating blocks.
    figure = (f"{r['ratio_to_reference']:.2f}x ref" if r["ratio_to_reference"] is not None
              else _fmt(r["throughput"], 0) + unit)
    return {"engine": r["engine"], "scenario": scenarios.label(record["scenario"]), "throughput": figure,
            **{c: _fmt(r[k]) for c, k in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"),
                                          ("p99.9", "p99_9_ms"), ("max", "max_ms"))},
            "err": str(r["errors"]), "stable": {True: "yes", False: "NO", None: "-"}[r["stable"]],
            "ok": {True: "yes", False: "NO", None: "n/a"}[r["correct"]] if r["status"] == "ok" else r["status"]}


def decide_and_keep(run_dir, records: list[dict], decide_by: str | None) -> dict | None:
    """The run's verdict by the chosen figure, kept beside its records for the report and export."""
    from workbench.report.run import write_choice
    from workbench.verdict import decide

    if not records or not run_dir.is_dir():
        return None
    decision = decide(records, decide_by).as_dict()
    write_choice(run_dir, decision)
    return decision


def print_verdict(decision: dict | None) -> None:
    """The verdict as the last lines, unwrapped: a log file keeps each sentence on one line."""
    from workbench.verdict import Decision, tvm_line

    if decision is None:
        return
    console.print(f"verdict: {decision['sentence']}", soft_wrap=True, markup=False)
    known = {k: v for k, v in decision.items() if k in Decision.__dataclass_fields__}
    if line := tvm_line(Decision(**known)):
        console.print(f"tvm: {line}", soft_wrap=True, markup=False)
