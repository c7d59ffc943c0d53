"""`workbench tune`: MetaSchedule over a model's tasks, into the target's shared database.

A TuneRequest goes: plan (a pure function of the request and the task count), the MetaSchedule
session (compiler/tunesession.py), the choice among each task's best records (compiler/retime.py),
then one session line in the database. The caller's display shows progress and turns Ctrl-C into
a stop after the current batch (workbench/tuneview.py), so nothing here touches the terminal.
"""

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from workbench import fingerprint
from workbench.compiler import reference_records
from workbench.compiler.buildkey import workload_keys
from workbench.compiler.database import TuningDatabase
from workbench.compiler.importer import make_target
from workbench.compiler.measure import reused_pool_builder, runner_for
from workbench.compiler.retime import POOL, RetimedTask, Seeding, seed_from_reference, select_schedules
from workbench.compiler.scheduler import Budget, plan_budget
from workbench.compiler.tasks import estimated_latency, extract, kernel_digests, prepared_modules
from workbench.compiler.tunefigures import expected_minutes, measure_onnxruntime
from workbench.compiler.tunesession import TaskResult, TuningSession
from workbench.errors import TargetError, WorkbenchError
from workbench.models import ModelSource, load
from workbench.targets import TargetProfile


@dataclass(frozen=True)
class TuneRequest:
    """What to tune, checked when made: a request that exists touches nothing before it can run."""

    source: ModelSource
    profile: TargetProfile
    trials: int
    batch_sizes: tuple[int, ...]
    database_dir: Path
    seed: int = 0
    rpc_wait_s: float = 30
    minutes: float | None = None  # stop after the batch that passes it
    retime_pool: int = POOL  # records per task timed side by side after tuning (0: off)
    reference: bool = True  # start from the shipped reference records (compiler/reference_records.py)
    dims: tuple = ()  # --dims (workbench/dims.py): the kernels of every combination with the batch sizes

    def __post_init__(self):
        if self.trials <= 0:
            raise WorkbenchError(f"--trials must be a positive number (got {self.trials})")
        if not 0 <= self.seed < 2**31:
            raise WorkbenchError(f"--seed must be between 0 and 2147483647 (got {self.seed})")
        if self.retime_pool < 0:
            raise WorkbenchError(f"--retime-pool must be 0 (off) or a positive number of records per task "
                                 f"(got {self.retime_pool})")
        if self.minutes is not None and not 0 < self.minutes < float("inf"):  # NaN fails both comparisons
            raise WorkbenchError(f"--minutes must be a positive number (got {self.minutes})")


@dataclass(frozen=True)
class TunePlan:
    budget: Budget
    retime_pool: int  # 0: no choice step
    note: str = ""  # why the session runs another number of trials than asked
    requested: int = 0  # --trials
    num_tasks: int = 0
    batch_sizes: tuple[int, ...] = ()
    dims: tuple = ()  # --dims: their kernels at each combination too

    def describe(self) -> str:
        """The plan as `tune` prints it before the first trial: how many trials, over what, and
        why that is not --trials when it is not."""
        budget, sizes, sep = self.budget, ", ".join(map(str, self.batch_sizes)), ", "
        plural = "s" if len(self.batch_sizes) > 1 else ""
        text = (f"Plan: {budget.total} trials over {self.num_tasks} tasks (the model's kernels at batch size{plural} "
                f"{sizes}{''.join(f', {n} {sep.join(map(str, v))}' for n, v in self.dims)}), "
                f"{budget.per_iter} per batch, at most {budget.per_task} per task")
        if budget.total > self.requested:
            text += (f"; --trials {self.requested} is raised to {budget.total} because every task needs at least "
                     "one trial to leave TVM's very slow default schedule")
        elif budget.total < self.requested:
            text += f"; not {self.requested}: {self.num_tasks} tasks x at most {budget.per_task} each"
        text += "."
        if self.retime_pool:
            text += (f" Then each task's best {self.retime_pool} records are timed again side by side to choose "
                     "its schedule.")
        return text


def plan(request: TuneRequest, num_tasks: int) -> TunePlan:
    """The budget for `num_tasks` tasks, whether the choice step runs, and what to warn about."""
    if num_tasks == 0:
        raise WorkbenchError(f"model '{request.source.name}' has no kernels to tune")
    profile, trials = request.profile, request.trials
    budget = plan_budget(num_tasks, trials, profile.trials_per_task)
    note = ""
    if budget.total > trials:
        note = f"--trials {trials} is below the number of tasks ({num_tasks}); giving every task one trial"
    elif budget.total < trials:
        note = (f"running {budget.total} of {trials} trials: {num_tasks} tasks x at most {budget.per_task} each "
                f"(trials_per_task = {profile.trials_per_task} in {profile.path.name})")
    # Over RPC the device that would time the candidates side by side is elsewhere.
    return TunePlan(budget, request.retime_pool if profile.rpc is None else 0, note, trials, num_tasks,
                    tuple(request.batch_sizes), request.dims)


@dataclass
class TuneSummary:
    model: str
    target: str
    database: Path
    budget: Budget
    tasks: list[TaskResult]
    seconds: float  # the search (the choice after it is retime_seconds)
    records_before: int
    records_after: int
    interrupted: bool
    out_of_time: bool = False  # stopped by --minutes, after the batch that crossed the limit
    minutes_limit: float | None = None
    cold_weights: bool = False  # candidates were timed with their weights flushed (compiler/measure.py)
    kernels: dict[str, str] = field(default_factory=dict)  # kernel_digests of the tuned tasks
    retimed: list[RetimedTask] = field(default_factory=list)
    retime_seconds: float = 0.0
    # From the chosen schedules' cold-weight times: another measure than the curve's (warm, one
    # timing each), so it is kept beside the curve, not on it.
    estimated_latency_chosen: float | None = None
    curve: list[tuple[float, int, float | None]] = field(default_factory=list)
    plan: TunePlan | None = None
    batch: int = 1  # the smallest batch size: the one the estimates and ONNX Runtime's latency are for
    onnxruntime_latency_s: float | None = None  # the whole model, measured after tuning
    onnxruntime_note: str = ""  # why there is no such figure
    reference: dict | None = None  # the reference records read: family, machines, and the seeding's counts
    schedules: dict = field(default_factory=dict)  # per source, kernels and share of the FLOPs a build takes

    @property
    def trials(self) -> int:
        return sum(t.trials for t in self.tasks)

    @property
    def trials_per_minute(self) -> float:
        return self.trials / (self.seconds / 60) if self.seconds > 0 else 0.0

    @property
    def estimated_latency_before(self) -> float | None:
        return self.curve[0][2] if self.curve else None

    @property
    def estimated_latency_after(self) -> float | None:
        return self.curve[-1][2] if self.curve else None


def _check_can_measure(profile: TargetProfile, rpc_wait_s: float) -> int:
    """How many devices will measure candidates: 1 here, or those under the key at the tracker."""
    if profile.rpc is not None:
        from workbench.engines.rpc import wait_for_devices

        return wait_for_devices(profile.rpc.tracker_host, profile.rpc.tracker_port, profile.rpc.key, rpc_wait_s)
    runs, why = profile.runs_here()
    if not runs:
        hint = (" Tune on a machine with the GPU, or measure on one over RPC by adding an [rpc] section "
                "(tracker_host, tracker_port, key) to the profile." if profile.device == "cuda" else
                " Tune on a machine that has it, or measure over RPC with an [rpc] section in the profile.")
        raise TargetError(f"cannot tune for '{profile.name}' here: {why}.{hint}")
    return 1


def tune(request: TuneRequest, display) -> TuneSummary:
    """Tune under the database's lock. `display` (workbench/tuneview.py's TuneDisplay, or any object
    with its three methods) shows the session and sets the session's stop on Ctrl-C."""
    devices = _check_can_measure(request.profile, request.rpc_wait_s)
    model = load(request.source)
    database = TuningDatabase(request.database_dir, request.profile.resolved_target())
    with database.exclusive():
        return _tune_locked(request, model, database, devices, display)


@contextmanager
def _shut_down_after(builder):
    """The build workers live until the choice after tuning has built its candidates with them too."""
    try:
        yield
    finally:
        builder.shutdown()


def _tune_locked(request: TuneRequest, model, database: TuningDatabase, devices: int, display) -> TuneSummary:
    profile = request.profile
    records_before = database.validate()
    target = make_target(database.target)
    tasks = extract(prepared_modules(model, request.batch_sizes, target, database.directory, dims=request.dims),
                    target)
    tune_plan = plan(request, len(tasks))
    reference = (reference_records.load(profile, database.target, workload_keys(tasks), request.reference)
                 if profile.rpc is None else None)  # timing them needs this machine's device
    display.plan(tune_plan.describe(), expected_minutes(database.sessions(), tune_plan.budget.total,
                                                        request.source.name, request.batch_sizes))
    session = TuningSession(tasks, target, database.open(), tune_plan.budget, request.minutes)
    kind = database.target["kind"]
    session.prepare(kind, str(database.directory / "logs"), request.seed)
    builder = reused_pool_builder(kind, max_workers=fingerprint.physical_cores(), link_here=profile.rpc is None)
    retimed, retime_seconds = [], 0.0
    with display.session(request.source.name, tune_plan.budget.total, session.stop), _shut_down_after(builder):
        seeding = _seed(session, database, reference, builder, profile, display)
        session.run(builder, runner_for(profile, devices), display)
        search_seconds = session.seconds
        if tune_plan.retime_pool and not session.stop.is_set():
            retimed, retime_seconds = _choose(session, database, builder, profile, tune_plan.retime_pool, display)
        batch = min(request.batch_sizes)
        onnxruntime_s, onnxruntime_note = _onnxruntime(request, model, batch, session.stop.is_set(), display)
    summary = TuneSummary(
        model=request.source.name, target=profile.name, database=database.directory, budget=tune_plan.budget,
        tasks=session.results, seconds=search_seconds, records_before=records_before,
        records_after=database.record_count(), interrupted=session.stop.is_set(),
        out_of_time=session.out_of_time.is_set(), minutes_limit=request.minutes, cold_weights=profile.cold_weights,
        kernels=kernel_digests(tasks), retimed=retimed, retime_seconds=retime_seconds, curve=session.curve,
        estimated_latency_chosen=estimated_latency(tasks, [r.chosen or r.best_after for r in session.results])
        if retimed else None, plan=tune_plan, batch=batch, onnxruntime_latency_s=onnxruntime_s,
        onnxruntime_note=onnxruntime_note,
        reference={**reference.as_dict(), "seeded_tasks": seeding.tasks, "reference_won": seeding.won,
                   "seconds": round(seeding.seconds, 2)} if reference else None,
        schedules=_schedules(tasks, database, session, reference))
    database.append_session(session_record(request, summary, devices))
    return summary


def _onnxruntime(request: TuneRequest, model, batch: int, interrupted: bool, display) -> tuple[float | None, str]:
    """ONNX Runtime's latency of the whole model, beside tuning's estimates (compiler/tunefigures.py)."""
    if interrupted:
        return None, "not measured: interrupted"
    if request.profile.rpc is not None:
        return None, "not measured: the model runs on the RPC device, not here"
    display.status(f"timing ONNX Runtime on the whole model at batch {batch}, for comparison")
    smallest = {name: sizes[0] for name, sizes in request.dims}
    return measure_onnxruntime(request.source.path, model, batch, tuple(request.profile.onnxruntime_providers),
                               smallest)


def _seed(session: TuningSession, database: TuningDatabase, reference, builder, profile: TargetProfile,
          display) -> Seeding:
    """Each task's reference records timed against its local best before the search; the winners
    seed it (compiler/retime.py)."""
    if reference is None:
        return Seeding()
    display.status(f"timing the reference records ({reference.family}) against the local ones, side by side")
    seeding = seed_from_reference(session.tasks, session.db, database, reference, session.target, builder,
                                  profile.device, profile.cold_weights, session.stop.is_set)
    session.restart_from_database()
    return seeding


def _schedules(tasks, database: TuningDatabase, session: TuningSession, reference) -> dict:
    """Where a build made now would take each kernel's schedule from, as shares of the FLOPs."""
    build_db = database.open_for_build(session.db, reference.database() if reference else None)
    return reference_records.flop_shares(tasks, reference_records.sources(tasks, build_db, session.target, reference))


def _choose(session: TuningSession, database: TuningDatabase, builder, profile: TargetProfile, pool: int,
            display) -> tuple[list[RetimedTask], float]:
    """Each task's schedule among its best `pool` records, timed side by side; a Ctrl-C during it
    keeps the choices made so far."""
    display.status(f"choosing among the best {pool} schedules of each task, timed side by side")
    began = time.monotonic()
    retimed = select_schedules(session.tasks, session.db, database, session.target, builder, profile.device,
                               profile.cold_weights, pool, session.stop.is_set)
    chosen = {r.name: r.retimed_s for r in retimed}
    for result in session.results:
        result.chosen = chosen.get(result.name)
    return retimed, time.monotonic() - began


def session_record(request: TuneRequest, summary: TuneSummary, devices: int = 1) -> dict:
    """The session line the database keeps (the report's tuning curve reads it)."""
    profile = request.profile
    return {
        "format": 1,
        # Written when the session ends: its start is that moment less its duration.
        "started": (datetime.now(timezone.utc) - timedelta(seconds=summary.seconds + summary.retime_seconds)
                    ).isoformat(timespec="seconds"),
        "model": request.source.name, "model_sha256": request.source.sha256(), "target": profile.name,
        "batch_sizes": list(request.batch_sizes), "trials_requested": request.trials, "trials": summary.trials,
        "errors": sum(t.errors for t in summary.tasks), "seconds": round(summary.seconds, 2),
        "trials_per_minute": summary.trials_per_minute, "interrupted": summary.interrupted,
        "minutes_limit": summary.minutes_limit, "out_of_time": summary.out_of_time, "kernels": summary.kernels,
        "measured_on": ({"rpc_tracker": f"{profile.rpc.tracker_host}:{profile.rpc.tracker_port}",
                         "rpc_key": profile.rpc.key, "devices": devices} if profile.rpc else {"local": True}),
        "estimated_latency_s": summary.estimated_latency_after, "cold_weights": summary.cold_weights,
        "trials_planned": summary.budget.total, "onnxruntime_latency_s": summary.onnxruntime_latency_s,
        "retime": {"seconds": round(summary.retime_seconds, 2),
                   "estimated_latency_s": summary.estimated_latency_chosen,
                   "tasks": [{"name": r.name, "stored_s": r.stored_s, "retimed_s": r.retimed_s, "records": r.records,
                              "rank": r.rank} for r in summary.retimed]},
        "curve": [[round(s, 2), n, lat] for s, n, lat in summary.curve],
        "reference": summary.reference, "schedules": summary.schedules,
        # What else loaded the cores while it ran (the session's own work counts too): records tuned
        # beside other jobs are noisier.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tasks": [{"name": t.name, "flops": t.flops, "weight": t.weight, "trials": t.trials, "errors": t.errors,
                   "best_s": t.best_after} for t in summary.tasks],
        **fingerprint.provenance(),
    }
