"""Re-timing each task's best schedules before they count.

Tuning times every candidate once (one window of at least MIN_REPEAT_MS). On a shared 2-core
machine whose measured peak moved by a third within an hour, the best of hundreds of single
timings is the luckiest timing, not the fastest schedule: one resnet18 convolution was stored at
1,054 µs and re-timed at 1,305-1,506 µs, and 20 more minutes of tuning made the model slower.
So after tuning, each task's top records are built again and timed in interleaved rounds
(A B C A B C ...: a slow spell of the machine hits all of them alike), and their stored times
are replaced by the medians. A record that drops out of the top lets the next one in, which is
re-timed in turn, until the top of every task is made of re-timed records.
"""

import statistics
from dataclasses import dataclass
from typing import Callable

from workbench.compiler.measure import MIN_REPEAT_MS

TOP_K = 3  # records per task re-timed together
ROUNDS = 5  # interleaved timings per record; the median counts
POOL = 16  # stored bests a task's top can be refilled from
MAX_PASSES = 4  # re-timing passes per task before we take what we have
FAILED_SECONDS = 1e10  # what MetaSchedule stores for a candidate that did not run


@dataclass
class RetimedTask:
    name: str
    stored_s: float  # the best stored time before re-timing
    retimed_s: float  # the best median after
    records: int  # how many records were re-timed


def rank_by_retiming(stored: list[float], measure: Callable[[list[int]], dict[int, float]],
                     k: int = TOP_K, max_passes: int = MAX_PASSES) -> dict[int, float]:
    """Re-time the top k by stored time; while the top k (re-timed figures where they exist)
    holds a record not re-timed, re-time the whole top k again, so the ones compared are timed
    side by side. Returns the re-timed seconds per index into `stored`."""
    retimed: dict[int, float] = {}
    for _ in range(max_passes):
        current = {i: retimed.get(i, s) for i, s in enumerate(stored)}
        top = sorted(current, key=current.get)[:k]
        if retimed and all(i in retimed for i in top):
            break
        retimed.update(measure(top))
    return retimed


def interleaved_medians(timers: dict[int, Callable[[], float]], rounds: int = ROUNDS) -> dict[int, float]:
    samples: dict[int, list[float]] = {i: [] for i in timers}
    for _ in range(rounds):
        for i, timer in timers.items():
            samples[i].append(timer())
    return {i: statistics.median(s) for i, s in samples.items()}


class _Candidates:
    """The built, loaded and argument-ready form of a task's records, built once each."""

    def __init__(self, records, target, device):
        self.records, self.target, self.device = records, target, device
        self._timers: dict[int, Callable[[], float]] = {}

    def timer(self, index: int) -> Callable[[], float] | None:
        if index not in self._timers:
            self._timers[index] = self._build(self.records[index])
        return self._timers[index]

    def _build(self, record) -> Callable[[], float] | None:
        import tvm
        from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export
        from tvm.s_tir.meta_schedule.runner.local_runner import default_alloc_argument

        try:
            schedule = tvm.s_tir.Schedule(record.workload.mod)
            record.trace.apply_to_schedule(schedule, remove_postproc=False)
            # Exported and loaded back, as the runner does: a module timed straight from the
            # build can run differently from the one tuning measured.
            module = tvm.runtime.load_module(default_export(default_build(schedule.mod, self.target, None)))
            args = default_alloc_argument(self.device, [a.as_json() for a in record.args_info], 1)[0]
            evaluator = module.time_evaluator(module.entry_name, self.device, number=1, repeat=1,
                                              min_repeat_ms=MIN_REPEAT_MS)
        except Exception:  # a schedule that no longer builds here is ranked last, as a failed run
            return None

        def run() -> float:
            self.device.sync()
            return float(evaluator(*args).mean)

        return run

    def measure(self, indices: list[int]) -> dict[int, float]:
        timers = {i: t for i in indices if (t := self.timer(i)) is not None}
        medians = interleaved_medians(timers) if timers else {}
        return {i: medians.get(i, FAILED_SECONDS) for i in indices}


def _mean(run_secs) -> float:
    secs = [float(s) for s in run_secs]
    return sum(secs) / len(secs) if secs else FAILED_SECONDS


def retime_tasks(tasks, db, database, target, device_type: str, top_k: int = TOP_K,
                 should_stop: Callable[[], bool] = lambda: False) -> list[RetimedTask]:
    """Re-time the top records of each task and store the medians in the database's files.
    Returns what changed per task; tasks without records are skipped, and a stop request ends it
    after the current task, keeping what was re-timed."""
    import tvm

    device = tvm.runtime.device(device_type, 0)
    new_times: dict[tuple[str, str], list[float]] = {}
    changed = []
    for task in tasks:
        if should_stop():
            break
        if not db.has_workload(task.mod):
            continue
        workload = db.commit_workload(task.mod)
        records = [r for r in db.get_top_k(workload, POOL) if r.run_secs]
        if not records:
            continue
        stored = [_mean(r.run_secs) for r in records]
        retimed = rank_by_retiming(stored, _Candidates(records, target, device).measure, top_k)
        for i, seconds in retimed.items():
            new_times[database.record_key(records[i])] = [seconds]
        best_now = min(retimed.get(i, s) for i, s in enumerate(stored))
        changed.append(RetimedTask(task.name, min(stored), best_now, len(retimed)))
    database.replace_run_secs(new_times)
    return changed
