"""The build a run times, and what the report needs beside the records (context.json)."""

import json
from pathlib import Path

from workbench import records
from workbench.bench.session import BenchRun
from workbench.engines import registry
from workbench.errors import WorkbenchError


def default_build_dir(run: BenchRun) -> Path:
    from workbench.paths import build_dir

    return build_dir() / run.source.name / run.profile.name


def ensure_build(run: BenchRun) -> Path:
    """The compiled model for this target, built now (with the records there are) if missing or stale."""
    from workbench.compiler.builder import CompileRequest
    from workbench.compiler.builder import ensure_build as ensure
    from workbench.paths import tuning_logs_dir

    out = default_build_dir(run)
    ensure(CompileRequest(run.source, run.profile, run.batch_sizes, tuning_logs_dir() / run.profile.name, out,
                          run.config.rtol, run.config.atol, dims=run.config.dims),
           lambda: run.display.phase(registry.TVM, "compiling (no current build found)"))
    return out


def _built_tuning(run: BenchRun) -> dict:
    """The tuning block of this model's build manifest (the build this run uses, else the one on
    disk): its kernel digests and where its schedules came from; {} without one."""
    from workbench.manifest import read_compiled

    try:
        return read_compiled(run.build_dir or default_build_dir(run)).get("tuning", {})
    except WorkbenchError:  # no build yet (or a damaged one): no curve to match it against
        return {}


def write_context(run: BenchRun, measure_peak: bool) -> None:
    """What the report needs beside the records: model FLOPs, the machine's measured peak (~2 s;
    only the roofline of direct measurements uses it), and the tuning history of this model on
    this target (cumulative curves for the report)."""
    from workbench import machinepeak, modelstats
    from workbench.compiler.database import read_sessions
    from workbench.compiler.tasks import same_kernels
    from workbench.errors import ModelError
    from workbench.paths import tuning_logs_dir

    try:
        stats = modelstats.compute_stats(run.model)
        model = {"flops_per_sample": stats.flops, "parameters": stats.parameters}
    except ModelError as exc:
        model = {"flops_per_sample": None, "parameters": None, "note": str(exc)}
    sessions = []
    directory = tuning_logs_dir() / run.profile.name
    built_tuning = _built_tuning(run)
    if directory.is_dir():
        built = built_tuning.get("kernels")
        sessions = [s for s in read_sessions(directory)
                    if s.get("model_sha256") == run.model_sha256 and same_kernels(s.get("kernels"), built)]
    context = {"format": records.RECORD_FORMAT, "run_id": run.run_id, "model": {**run.common["model"], **model},
               "target": run.profile.name, "machine_peak": machinepeak.measure() if measure_peak else None,
               "tuning": {"database": str(directory), "sessions": sessions,
                          "build": {k: built_tuning.get(k) for k in ("schedules", "reference")}},
               "provenance": run.common["provenance"]}
    (run.run_dir / "context.json").write_text(json.dumps(context))
