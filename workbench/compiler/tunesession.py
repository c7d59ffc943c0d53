"""One MetaSchedule session over a model's tasks, into the target's database.

Each batch's records reach the database before its callbacks run, so the session can stop after
any batch (Ctrl-C through the caller's display, or the --minutes limit) and lose nothing measured.
"""

import logging
import threading
import time
from dataclasses import dataclass

from workbench.compiler.intrinsics import register_tensor_intrinsics
from workbench.compiler.measure import search_strategy
from workbench.compiler.scheduler import Budget, share_of_time_scheduler
from workbench.compiler.tasks import Task, estimated_latency

METASCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"


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


class TuningSession:
    """The tasks' results and the estimated-latency curve as batches finish, and the two ways a
    session ends early: `stop` (set by the caller's Ctrl-C handler) and `out_of_time`."""

    def __init__(self, tasks: list[Task], target, db, budget: Budget, minutes: float | None):
        self.tasks, self.target, self.db, self.budget = tasks, target, db, budget
        self.results = [TaskResult(t.name, t.flops, t.weight, best, best)
                        for t, best in ((t, t.best_seconds(db)) for t in tasks)]
        self.started = time.monotonic()
        self.deadline = self.started + minutes * 60 if minutes is not None else None
        self.curve = [(0.0, 0, estimated_latency(tasks, [r.best_before for r in self.results]))]
        self.stop, self.out_of_time = threading.Event(), threading.Event()
        self._display = None

    def restart_from_database(self) -> None:
        """After records were stored before the search (compiler/retime.py's reference seeds): each
        task's starting point, and a point on the curve where the search starts."""
        for result, task in zip(self.results, self.tasks):
            result.best_before = result.best_after = task.best_seconds(self.db)
        self.curve.append((self.seconds, 0, estimated_latency(self.tasks, [r.best_before for r in self.results])))

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def trials(self) -> int:
        return sum(r.trials for r in self.results)

    def prepare(self, kind: str, log_dir: str, seed: int) -> None:
        """MetaSchedule's tune contexts, with its console logging kept below our display."""
        from tvm.s_tir import meta_schedule as ms

        register_tensor_intrinsics(kind)  # before TuneContext imports them all
        _drop_unnamed_metaschedule_handlers()
        self._log_dir = log_dir
        self._contexts, self._weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            _as_extracted(self.tasks, self.target), work_dir=log_dir, strategy=search_strategy(self.budget.per_iter),
            num_threads="physical", seed=seed)
        _quiet_metaschedule_console()

    def run(self, builder, runner, display) -> None:
        """Until the budget is spent, or a stop ends it after the current batch."""
        from tvm.s_tir import meta_schedule as ms

        self._display = display
        budget = self.budget
        try:
            ms.tune.tune_tasks(
                tasks=self._contexts, task_weights=self._weights, work_dir=self._log_dir,
                max_trials_global=budget.total, max_trials_per_task=budget.per_task,
                num_trials_per_iter=budget.per_iter, builder=builder, runner=runner, database=self.db,
                task_scheduler=share_of_time_scheduler(lambda i: self.results[i].best_after,
                                                       [t.batch for t in self.tasks]),
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), _progress_callback(self)])
        except KeyboardInterrupt:
            if not self.out_of_time.is_set():
                self.stop.set()
        except Exception:
            if not (self.stop.is_set() or self.out_of_time.is_set()):  # our stop, re-raised through TVM's C++ frames
                raise

    def batch_done(self, task_id: int) -> None:
        estimate = estimated_latency(self.tasks, [r.best_after for r in self.results])
        self.curve.append((self.seconds, self.trials, estimate))
        self._display.batch_done(self.trials, self.results[task_id], estimate)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.out_of_time.set()


def _progress_callback(session: TuningSession):
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class ProgressCallback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            result = session.results[task_id]
            for built, ran in zip(builder_results, runner_results):
                result.trials += 1
                if built.error_msg or ran.error_msg or not ran.run_secs:
                    result.errors += 1
                    continue
                secs = sum(float(s) for s in ran.run_secs) / len(ran.run_secs)
                if result.best_after is None or secs < result.best_after:
                    result.best_after = secs
            session.batch_done(task_id)
            if session.stop.is_set() or session.out_of_time.is_set():
                # Ctrl-C or the time limit: this batch's records are already in the database
                # (AddToDatabase runs first); unwinding the scheduler from here loses nothing measured.
                raise KeyboardInterrupt

    return ProgressCallback()


def _drop_unnamed_metaschedule_handlers() -> None:
    """MetaSchedule rebuilds its logging config from the names of its logger's handlers and fails
    on one without a name (seen in the test suite, where another in-process session left one);
    each session adds its own console and file handlers again, so nothing is lost."""
    logger = logging.getLogger(METASCHEDULE_LOGGER)
    for handler in [h for h in logger.handlers if h.get_name() is None]:
        logger.removeHandler(handler)


def _quiet_metaschedule_console() -> None:
    """MetaSchedule logs every round to stdout; keep its full logs in files and our display on screen."""
    for handler in logging.getLogger(METASCHEDULE_LOGGER).handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def _as_extracted(tasks: list[Task], target):
    """Our tasks back in MetaSchedule's ExtractedTask form (names carry the batch variant)."""
    from tvm.s_tir import meta_schedule as ms

    return [ms.ExtractedTask(task_name=t.name, mod=t.mod, target=target, dispatched=[t.mod], weight=t.weight)
            for t in tasks]
