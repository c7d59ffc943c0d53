"""A bench run as the report sees it: its records, a flat table of them, and the run's context."""

from dataclasses import dataclass
from pathlib import Path

from workbench import records
from workbench.errors import WorkbenchError


@dataclass
class Run:
    directory: Path
    records: list[dict]
    context: dict  # model FLOPs, machine peak, tuning sessions; {} for runs made before it existed

    @property
    def run_id(self) -> str:
        return self.records[0]["run_id"]

    @property
    def provenance(self) -> dict:
        return self.records[0]["provenance"]

    def ok(self, engine: str | None = None, kind: str | None = None) -> list[dict]:
        """Timed records that passed the correctness gate (or had none to pass, like null)."""
        return [r for r in self.records if r.get("status") == "ok" and r.get("result")
                and (r.get("correctness") or {}).get("passed", True)
                and (engine is None or r["engine"] == engine) and (kind is None or r["scenario"]["kind"] == kind)]

    @property
    def decide_by(self) -> str | None:
        """The figure `bench --decide-by` chose for this run (verdict.json), if any."""
        return read_choice(self.directory)

    def engines(self) -> list[str]:
        return list(dict.fromkeys(r["engine"] for r in self.records))

    def rows(self):
        import pandas as pd

        return pd.DataFrame([records.row(r) for r in self.records], columns=list(records.CSV_COLUMNS))


VERDICT_FILE = "verdict.json"


def write_choice(run_dir: Path, decision: dict) -> None:
    """What bench decided and by which figure, so the report leads with the same choice."""
    import json

    (run_dir / VERDICT_FILE).write_text(json.dumps(decision, indent=2))


def read_choice(run_dir: Path) -> str | None:
    import json

    try:
        return json.loads((run_dir / VERDICT_FILE).read_text()).get("decided_by")
    except (OSError, ValueError, AttributeError):  # older runs have none; a damaged one falls back to the default
        return None


def latest_run(reports_dir: Path) -> Path:
    runs = sorted(p for p in reports_dir.glob("run-*") if p.is_dir())
    if not runs:
        raise WorkbenchError(f"no bench runs under {reports_dir}; run `workbench bench` first, or name a run "
                             "directory: workbench report reports/<run-id>")
    return runs[-1]


def load_run(directory: Path) -> Run:
    directory = Path(directory)
    if not directory.is_dir():
        raise WorkbenchError(f"no run directory at {directory}; pass a reports/<run-id> folder written by "
                             "`workbench bench`")
    paths = sorted((directory / "records").glob("*.json"))
    if not paths:
        raise WorkbenchError(f"{directory} has no records (records/*.json): the bench wrote nothing there, or was "
                             "stopped before its first measurement; run `workbench bench` again")
    loaded = [records.read_record(path) for path in paths]
    context = {}
    if (directory / "context.json").exists():
        try:
            context = records.read_record(directory / "context.json")
        except WorkbenchError:  # the report goes on without the tuning and roofline sections, and says so
            context = {}
    return Run(directory, loaded, context)


def _comparisons(node) -> list[dict]:
    """Every per-output comparison (reference.Comparison.as_dict) anywhere in a correctness block."""
    if isinstance(node, dict):
        return ([node] if "max_abs_error" in node else []) + [c for v in node.values() for c in _comparisons(v)]
    if isinstance(node, list):
        return [c for v in node for c in _comparisons(v)]
    return []


def errors_of(correctness: dict | None) -> tuple[float, float] | None:
    """Worst max abs and max rel error anywhere in a record's correctness block."""
    found = _comparisons(correctness)
    if not found:
        return None
    return max(c["max_abs_error"] for c in found), max(c["max_rel_error"] for c in found)


def failure_reason(correctness: dict | None) -> str | None:
    """Why an output failed where its error figures would mislead (shapes, NaN, inf); records made
    before reasons were kept have none."""
    return next((c["reason"] for c in _comparisons(correctness) if c.get("reason")), None)
