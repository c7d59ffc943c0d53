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


def write_comparison(a_dirs: list[Path], b_dirs: list[Path]) -> Path:
    """The comparison of runs A (one or more runs of one build) with runs B, written into B's first run."""
    from workbench.report.compare import compare

    runs, seen = [], {}
    for directory in a_dirs + b_dirs:
        run = load_run(directory)
        if (earlier := seen.get(run.run_id)) is not None:
            raise WorkbenchError(f"{directory} is run {run.run_id}, given already as {earlier}; give each run once, "
                                 "on one side")
        seen[run.run_id] = directory
        runs.append(run)
    a, b = runs[:len(a_dirs)], runs[len(a_dirs):]
    # one run a side keeps its old name; more runs get their own page rather than replace that one
    counts = f"-{len(a)}x{len(b)}" if len(runs) > 2 else ""
    return _write(b[0].directory / f"compare-{a[0].run_id}{counts}.html", compare(a, b))
