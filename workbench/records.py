"""Bench results on disk: one JSON record per engine x scenario, and results.csv with one row each.

The report reads only these files, so every figure carries its settings and provenance with it.
"""

import json
from pathlib import Path

from workbench import scenarios
from workbench.errors import WorkbenchError

# 2: provenance names its fingerprint_kind (2: the CPU's family and model are in the id), and a failed
# comparison may carry its reason. Format 1 is read through upgrade(); older ones are refused.
RECORD_FORMAT = 2
GENERATOR_SATURATED = 0.8  # of one core: above it the generator may be what limits throughput
CSV_COLUMNS = ("engine", "scenario", "concurrency", "rate", "batch", "dims", "throughput", "throughput_unit",
               "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms", "errors", "stable",
               "correct", "generator_cpu", "missed_slots", "server_rss_start_mb", "server_rss_end_mb",
               "server_cpu_us_per_request", "ratio_to_reference", "status")


def record_name(record: dict) -> str:
    return f"{record['engine']}__{record['scenario']['kind']}{scenarios.file_suffix(record['scenario'])}.json"


def write_record(run_dir: Path, record: dict) -> Path:
    path = run_dir / "records" / record_name(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": RECORD_FORMAT, **record}))
    return path


def row(record: dict) -> dict:
    s, result = record["scenario"], record.get("result") or {}
    latency = result.get("latency_ms") or {}
    throughput = result.get("throughput_rps", result.get("throughput_sps"))
    correctness = record.get("correctness") or {}
    return {
        "engine": record["engine"], "scenario": s["kind"], "concurrency": s.get("concurrency"),
        "rate": s.get("rate"), "batch": s.get("batch"),
        "dims": scenarios.dims_label(s) or None,  # "seq=128": rows of one scenario at two --dims differ here
        "throughput": throughput,
        "throughput_unit": getattr(scenarios.KINDS.get(s["kind"]), "unit", None) if throughput is not None else None,
        **{k: latency.get(k) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms")},
        "errors": sum((result.get("errors") or {}).values()),
        "stable": (result.get("stability") or {}).get("stable"),
        "correct": correctness.get("passed"), "generator_cpu": result.get("generator_cpu"),
        "missed_slots": result.get("missed_slots"),
        "server_rss_start_mb": (result.get("server_rss_mb") or {}).get("start"),
        "server_rss_end_mb": (result.get("server_rss_mb") or {}).get("end"),
        "server_cpu_us_per_request": result.get("server_cpu_us_per_request"),
        "ratio_to_reference": result.get("ratio_p50"), "status": record.get("status", "ok"),
    }


def write_csv(run_dir: Path, records: list[dict]) -> Path:
    import pandas as pd

    path = run_dir / "results.csv"
    pd.DataFrame([row(r) for r in records], columns=list(CSV_COLUMNS)).to_csv(path, index=False)
    return path


def read_csv(run_dir: Path):
    """results.csv as a frame; "null" is an engine's name here, not a missing value."""
    import pandas as pd

    return pd.read_csv(run_dir / "results.csv", keep_default_na=False, na_values=[""])


def upgrade(record, source) -> dict:
    """A record (or a run's context) as this version writes it: the previous format is brought up to
    date here, in one place; anything else is refused in one line naming the file."""
    found = record.get("format") if isinstance(record, dict) else None
    if found == RECORD_FORMAT:
        return record
    if found == RECORD_FORMAT - 1 and not isinstance(found, bool):
        provenance = record.get("provenance") or {}
        return {**record, "format": RECORD_FORMAT, "provenance": {**provenance, "fingerprint_kind": 1}}
    raise WorkbenchError(f"{source} is a record of format {found!r}, and this workbench reads formats "
                         f"{RECORD_FORMAT - 1} and {RECORD_FORMAT}; rerun `workbench bench` with this version")


def read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise WorkbenchError(f"{path} is not a readable record ({exc}); remove it or rerun the bench") from None
    return upgrade(record, path)


def read_records(run_dir: Path) -> list[dict]:
    return [read_record(p) for p in sorted((run_dir / "records").glob("*.json"))]
