"""What `bench` shows: a live line per phase while it runs, and a table per engine at the end."""

import time

from rich.live import Live
from rich.table import Table
from rich.text import Text

from workbench import scenarios
from workbench.console import console, err_console


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
    from workbench.records import row

    table = Table(title="bench results (latency in ms)", title_justify="left", pad_edge=False)
    for column in ("engine", "scenario", "throughput", "p50", "p90", "p99", "p99.9", "max", "err", "stable", "ok"):
        table.add_column(column, justify="left" if column in ("engine", "scenario") else "right")
    for record in records:
        r, label = row(record), scenarios.label(record["scenario"])
        unit = {"samples/s": " sps", "requests/s": " rps"}.get(r["throughput_unit"], "")
        ok = {True: "yes", False: "NO", None: "n/a"}[r["correct"]] if r["status"] == "ok" else r["status"]
        # A paired row's figure is its p50 over the reference's, measured in alternating blocks.
        figure = (f"{r['ratio_to_reference']:.2f}x ref" if r["ratio_to_reference"] is not None
                  else _fmt(r["throughput"], 0) + unit)
        table.add_row(r["engine"], label, figure,
                      *(_fmt(r[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms")),
                      str(r["errors"]), {True: "yes", False: "NO", None: "-"}[r["stable"]], ok)
    # Piped output gets rich's 80 columns, which folds every cell; a log reads better wide.
    console.print(table, width=None if console.is_terminal else 140)
