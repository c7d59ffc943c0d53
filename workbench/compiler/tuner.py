"""`workbench tune`: MetaSchedule over a model's tasks, into the target's shared database."""

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from workbench import fingerprint
from workbench.compiler.database import TuningDatabase
from workbench.compiler.importer import make_target
from workbench.compiler.intrinsics import register_tensor_intrinsics
from workbench.compiler.measure import reused_pool_builder, runner_for, search_strategy
from workbench.compiler.retime import POOL, RetimedTask, select_schedules
from workbench.compiler.scheduler import share_of_time_scheduler
from workbench.compiler.tasks import Task, estimated_latency, extract, kernel_digests, prepared_modules
from workbench.console import warn
from workbench.errors import TargetError, WorkbenchError
from workbench.models import ModelSource, load
from workbench.targets import TargetProfile


@dataclass(frozen=True)
class Budget:
    total: int
    per_task: int
    per_iter: int


def plan_budget(num_tasks: int, total: int, per_task_cap: int) -> Budget:
    """Batch size and caps for the share-of-time scheduler (compiler/scheduler.py).

    Every task first gets one batch so it leaves TVM's (very slow) default schedule; batches are
    sized so that first round takes at most half the trials (and at most TVM's usual 64), leaving
    the rest for the tasks that hold the time. A total below the task count is raised to one trial
    per task; the profile's trials_per_task caps any one task.
    """
    if total <= 0:
        raise WorkbenchError(f"--trials must be a positive number (got {total})")
    total = max(total, num_tasks)
    per_iter = max(1, min(64, total // (2 * num_tasks)))
    per_task = max(per_iter, min(per_task_cap, total))
    return Budget(total=min(total, per_task * num_tasks), per_task=per_task, per_iter=per_iter)


@dataclass
class TaskResult:
    name: str
    flops: float
    weight: int
    best_before: float | None
    best_after: float | None
    trials: int = 0
    errors: int = 0
    chosen: float | None = None  # the chosen schedule's time with cold weights (compiler/retime.py)

    @property
    def gflops_per_s(self) -> float | None:
        return self.flops / self.best_after / 1e9 if self.best_after else None


@dataclass
class TuneSummary:
    model: str
    target: str
    database: Path
    budget: Budget
    tasks: list[TaskResult]
    seconds: float
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


def _progress_callback(results: list[TaskResult], on_update, stop: threading.Event, deadline: float | None,
                       out_of_time: threading.Event):
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class ProgressCallback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            result = results[task_id]
            for built, ran in zip(builder_results, runner_results):
                result.trials += 1
                if built.error_msg or ran.error_msg or not ran.run_secs:
                    result.errors += 1
                    continue
                secs = sum(float(s) for s in ran.run_secs) / len(ran.run_secs)
                if result.best_after is None or secs < result.best_after:
                    result.best_after = secs
            on_update(task_id)
            if deadline is not None and time.monotonic() >= deadline:
                out_of_time.set()
            if stop.is_set() or out_of_time.is_set():
                # Ctrl-C or the time limit: this batch's records are already in the database
                # (AddToDatabase runs first); unwinding the scheduler from here loses nothing measured.
                raise KeyboardInterrupt

    return ProgressCallback()


def _drop_unnamed_metaschedule_handlers() -> None:
    """MetaSchedule rebuilds its logging config from the names of its logger's handlers and fails
    on one without a name (seen in the test suite, where another in-process session left one);
    each session adds its own console and file handlers again, so nothing is lost."""
    import logging

    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in [h for h in logger.handlers if h.get_name() is None]:
        logger.removeHandler(handler)


def _quiet_metaschedule_console() -> None:
    """MetaSchedule logs every round to stdout; keep its full logs in files and our display on screen."""
    import logging

    for handler in logging.getLogger("tvm.s_tir.meta_schedule").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def tune(source: ModelSource, profile: TargetProfile, trials: int, batch_sizes: tuple[int, ...],
         database_dir: Path, seed: int = 0, rpc_wait_s: float = 30, minutes: float | None = None,
         retime_pool: int = POOL) -> TuneSummary:
    if trials <= 0:
        raise WorkbenchError(f"--trials must be a positive number (got {trials})")
    if retime_pool < 0:
        raise WorkbenchError(f"--retime-pool must be 0 (off) or a positive number of records per task (got {retime_pool})")
    if minutes is not None and not 0 < minutes < float("inf"):  # NaN fails both comparisons
        raise WorkbenchError(f"--minutes must be a positive number (got {minutes})")
    devices = _check_can_measure(profile, rpc_wait_s)
    model = load(source)
    target_json = profile.resolved_target()
    database = TuningDatabase(database_dir, target_json)
    with database.exclusive():
        return _tune_locked(source, profile, model, trials, batch_sizes, database, seed, devices, minutes, retime_pool)


class _Display:
    """The live progress line, and the estimated-latency curve it records as batches finish."""

    def __init__(self, model: str, tasks: list[Task], results: list[TaskResult], total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.tasks, self.results = tasks, results
        self.start = time.monotonic()
        self.curve = [(0.0, 0, estimated_latency(tasks, [r.best_before for r in results]))]
        self.progress = Progress(TextColumn(f"[bold]tune {model}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
        self.bar = self.progress.add_task("tune", total=total, status="searching")

    def batch_done(self, task_id: int) -> None:
        done = sum(r.trials for r in self.results)
        est = estimated_latency(self.tasks, [r.best_after for r in self.results])
        self.curve.append((time.monotonic() - self.start, done, est))
        r = self.results[task_id]
        best = f"{r.best_after * 1e6:.1f} µs" if r.best_after else "no valid schedule yet"
        e2e = f" · est. end-to-end {est * 1e3:.2f} ms" if est else ""
        self.progress.update(self.bar, completed=done, status=f"{r.name}: best {best}{e2e}")

    def status(self, text: str) -> None:
        self.progress.update(self.bar, status=text)

    def stopping(self) -> None:
        self.progress.update(self.bar, status="[yellow]Ctrl-C: stopping after this batch (again to abort)[/yellow]")


@contextmanager
def _shut_down_after(builder):
    """The build workers live until the choice after tuning has built its candidates with them too."""
    try:
        yield
    finally:
        builder.shutdown()


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


def _tune_locked(source: ModelSource, profile: TargetProfile, model, trials: int, batch_sizes: tuple[int, ...],
                 database: TuningDatabase, seed: int, devices: int = 1, minutes: float | None = None,
                 retime_pool: int = POOL) -> TuneSummary:
    from tvm.s_tir import meta_schedule as ms

    records_before = database.validate()
    target = make_target(database.target)
    tasks = extract(prepared_modules(model, batch_sizes, target), target)
    if not tasks:
        raise WorkbenchError(f"model '{source.name}' has no kernels to tune")
    budget = plan_budget(len(tasks), trials, profile.trials_per_task)
    if budget.total > trials:
        warn(f"--trials {trials} is below the number of tasks ({len(tasks)}); giving every task one trial")
    elif budget.total < trials:
        warn(f"running {budget.total} of {trials} trials: {len(tasks)} tasks x at most {budget.per_task} each "
             f"(trials_per_task = {profile.trials_per_task} in {profile.path.name})")

    db = database.open()
    results = [TaskResult(t.name, t.flops, t.weight, best, best) for t, best in ((t, t.best_seconds(db)) for t in tasks)]
    display = _Display(source.name, tasks, results, budget.total)
    kind = database.target["kind"]
    register_tensor_intrinsics(kind)  # before TuneContext imports them all
    log_dir = str(database.directory / "logs")
    _drop_unnamed_metaschedule_handlers()
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        _as_extracted(tasks, target), work_dir=log_dir, strategy=search_strategy(budget.per_iter), num_threads="physical", seed=seed)
    _quiet_metaschedule_console()
    builder = reused_pool_builder(kind, max_workers=fingerprint.physical_cores(), link_here=profile.rpc is None)
    stop, out_of_time = threading.Event(), threading.Event()
    deadline = display.start + minutes * 60 if minutes is not None else None
    retimed, retime_seconds = [], 0.0
    with display.progress, _first_ctrl_c_sets(stop, display.stopping), _shut_down_after(builder):
        try:
            ms.tune.tune_tasks(
                tasks=contexts, task_weights=weights, work_dir=log_dir,
                max_trials_global=budget.total, max_trials_per_task=budget.per_task,
                num_trials_per_iter=budget.per_iter, builder=builder, runner=runner_for(profile, devices), database=db,
                task_scheduler=share_of_time_scheduler(lambda i: results[i].best_after, [t.batch for t in tasks]),
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                   _progress_callback(results, display.batch_done, stop, deadline, out_of_time)])
        except KeyboardInterrupt:
            if not out_of_time.is_set():
                stop.set()
        except Exception:
            if not (stop.is_set() or out_of_time.is_set()):  # our stop, re-raised through TVM's C++ frames
                raise
        if retime_pool and not stop.is_set() and profile.rpc is None:  # over RPC the device is elsewhere
            display.status(f"choosing among the best {retime_pool} schedules of each task, timed side by side")
            began = time.monotonic()
            retimed = select_schedules(tasks, db, database, target, builder, profile.device, profile.cold_weights,
                                       retime_pool, stop.is_set)
            retime_seconds = time.monotonic() - began
            chosen = {r.name: r.retimed_s for r in retimed}
            for result in results:
                result.chosen = chosen.get(result.name)
    summary = TuneSummary(model=source.name, target=profile.name, database=database.directory, budget=budget,
                          tasks=results, seconds=time.monotonic() - display.start, records_before=records_before,
                          records_after=database.record_count(), interrupted=stop.is_set(), out_of_time=out_of_time.is_set(),
                          minutes_limit=minutes, cold_weights=profile.cold_weights, kernels=kernel_digests(tasks),
                          retimed=retimed, retime_seconds=retime_seconds, curve=display.curve,
                          estimated_latency_chosen=estimated_latency(tasks, [r.chosen or r.best_after for r in results])
                          if retimed else None)
    database.append_session(_session_record(source, profile, batch_sizes, trials, summary, devices))
    return summary


def _as_extracted(tasks: list[Task], target):
    """Our tasks back in MetaSchedule's ExtractedTask form (names carry the batch variant)."""
    from tvm.s_tir import meta_schedule as ms

    return [ms.ExtractedTask(task_name=t.name, mod=t.mod, target=target, dispatched=[t.mod], weight=t.weight)
            for t in tasks]


def _session_record(source: ModelSource, profile: TargetProfile, batch_sizes, trials: int,
                    summary: TuneSummary, devices: int = 1) -> dict:
    return {
        "format": 1,
        # Written when the session ends: its start is that moment less its duration.
        "started": (datetime.now(timezone.utc) - timedelta(seconds=summary.seconds)).isoformat(timespec="seconds"),
        "model": source.name, "model_sha256": source.sha256(), "target": profile.name,
        "batch_sizes": list(batch_sizes), "trials_requested": trials, "trials": summary.trials,
        "errors": sum(t.errors for t in summary.tasks), "seconds": round(summary.seconds, 2),
        "trials_per_minute": round(summary.trials_per_minute, 2), "interrupted": summary.interrupted,
        "minutes_limit": summary.minutes_limit, "out_of_time": summary.out_of_time, "kernels": summary.kernels,
        "measured_on": ({"rpc_tracker": f"{profile.rpc.tracker_host}:{profile.rpc.tracker_port}",
                         "rpc_key": profile.rpc.key, "devices": devices} if profile.rpc else {"local": True}),
        "estimated_latency_s": summary.estimated_latency_after, "cold_weights": summary.cold_weights,
        "retime": {"seconds": round(summary.retime_seconds, 2),
                   "estimated_latency_s": summary.estimated_latency_chosen,
                   "tasks": [{"name": r.name, "stored_s": r.stored_s, "retimed_s": r.retimed_s, "records": r.records,
                              "rank": r.rank} for r in summary.retimed]},
        "curve": [[round(s, 2), n, lat] for s, n, lat in summary.curve],
        "tasks": [{"name": t.name, "flops": t.flops, "weight": t.weight, "trials": t.trials, "errors": t.errors,
                   "best_s": t.best_after} for t in summary.tasks],
        **fingerprint.provenance(),
    }


def task_budget_note(summary: TuneSummary) -> str:
    untuned = [t for t in summary.tasks if t.best_after is None]
    if not untuned:
        return ""
    share = sum(t.flops * t.weight for t in untuned) / max(1.0, sum(t.flops * t.weight for t in summary.tasks))
    return (f"{len(untuned)} task(s) have no valid schedule yet ({share:.0%} of the FLOPs) and keep TVM's "
            f"default: {', '.join(t.name for t in untuned[:5])}{' ...' if len(untuned) > 5 else ''}")

