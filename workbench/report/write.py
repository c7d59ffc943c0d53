"""Render and write report pages next to the runs they describe."""

from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.report import REPORT_FILE
from workbench.report.run import load_run


def _write(path: Path, page: str) -> Path:
    try:
        path.write_text(page)
    except OSError as exc:
        raise WorkbenchError(f"cannot write the report {path}: {exc.strerror}") from None
    return path


def write_report(run_dir: Path, decide_by: str | None = None) -> Path:
    from workbench.report.page import render
    from workbench.verdict import parse

    parse(decide_by)  # a bad --decide-by is refused before anything is read
    run = load_run(run_dir)
    return _write(run.directory / REPORT_FILE, render(run, decide_by))


def write_comparison(a_dir: Path, b_dir: Path) -> Path:
    from workbench.report.compare import compare

    a, b = load_run(a_dir), load_run(b_dir)
    return _write(b.directory / f"compare-{a.run_id}.html", compare(a, b))
