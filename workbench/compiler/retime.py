"""Choosing each task's schedule by re-timing its best few side by side, as the model runs them.

Tuning times every candidate once, over and over on the same inputs, so a kernel's weights sit
warm in the caches. Inside the model they do not: resnet18's weights are read once per inference,
and its largest convolutions ran far slower there than tuned. Candidates differ in how badly cold
weights hurt them: of one convolution's eight best, the fastest warm was not the fastest flushed
(docs/BENCHMARKS.md, "Measurement lessons"). And on a shared machine whose speed drifts within
minutes, the best of hundreds of single timings is partly the luckiest.

So after tuning, each task's best POOL records (and the one chosen before, if any) are built
again and timed in interleaved rounds (A B C A B C ...: a slow spell hits them all alike), with
every argument but the input flushed from the CPU caches before each call when the profile tunes
with cold weights (as CPU profiles do by default, so the choice measures what tuning measured). The fastest
median is the task's choice, kept in the database's selected/ overlay that builds read first.
Tuning's own records are left as measured.
"""

import os
import shutil
import statistics
from dataclasses import dataclass
from typing import Callable

from workbench.compiler.database import mean_run_secs

POOL = 8  # best records per task timed against each other
ROUNDS = 5  # interleaved rounds; the median counts
CALLS = 3  # timed calls per record per round (each after a flush, on a CPU)
MIN_WARM_MS = 10  # on a GPU, where nothing is flushed: one timing lasts at least this long
# TVM's own preprocessing: flush every argument but the first (the activation the previous
# kernel just wrote, warm in the model too) out of the CPU caches before each timed call.
FLUSH_WEIGHTS = "cache_flush_cpu_non_first_arg"


@dataclass
class RetimedTask:
    name: str
    stored_s: float  # the best time tuning stored (warm, one timing)
    retimed_s: float  # the chosen record's median under the model's conditions
    records: int  # how many records were timed against each other
    rank: int  # the chosen record's place in tuning's order (0: tuning's best; past the pool: the last choice)


def interleaved_medians(timers: dict[int, Callable[[], float]], rounds: int = ROUNDS) -> dict[int, float]:
    samples: dict[int, list[float]] = {i: [] for i in timers}
    for _ in range(rounds):
        for i, timer in timers.items():
            samples[i].append(timer())
    return {i: statistics.median(s) for i, s in samples.items()}


def _scheduled(record):
    """The record's workload with its schedule applied, None when the trace no longer applies."""
    import tvm

    try:
        schedule = tvm.s_tir.Schedule(record.workload.mod)
        record.trace.apply_to_schedule(schedule, remove_postproc=False)
        return schedule.mod
    except Exception:  # a schedule that no longer applies here is not chosen
        return None


def _build_all(records, target, builder) -> list[str | None]:
    """Each record's kernel built and exported by tuning's builder pool, so on every core at once
    (built one by one in this process, building was most of the choice's time; docs/BENCHMARKS.md,
    "Tuning throughput")."""
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    mods = [_scheduled(r) for r in records]
    todo = [i for i, mod in enumerate(mods) if mod is not None]
    artifacts: list[str | None] = [None] * len(records)
    for i, result in zip(todo, builder.build([BuilderInput(mods[i], target) for i in todo])):
        artifacts[i] = result.artifact_path if result.error_msg is None else None
    return artifacts


def _timer(artifact: str, record, device, cold: bool) -> Callable[[], float] | None:
    """One timing of a built record's kernel, loaded as tuning's runner loads it."""
    import tvm
    from tvm.s_tir.meta_schedule.runner.local_runner import default_alloc_argument

    try:
        try:
            module = tvm.runtime.load_module(artifact)
        finally:  # TVM's exporter leaves a temporary directory per record (a leak of 500+ per choice)
            shutil.rmtree(os.path.dirname(artifact), ignore_errors=True)
        args = default_alloc_argument(device, [a.as_json() for a in record.args_info], 1)[0]
        if cold:
            evaluator = module.time_evaluator(module.entry_name, device, number=1, repeat=CALLS,
                                              f_preproc=FLUSH_WEIGHTS)
        else:
            evaluator = module.time_evaluator(module.entry_name, device, number=1, repeat=1, min_repeat_ms=MIN_WARM_MS)
    except Exception:  # a kernel that does not load here is not chosen
        return None

    def run() -> float:
        device.sync()
        return statistics.median(float(s) for s in evaluator(*args).results)

    return run


def _side_by_side(records, target, builder, device, cold: bool) -> tuple[int, float, int] | None:
    """The index and median of the fastest of `records`, built and timed in interleaved rounds,
    and how many were timed; None when none builds and loads here."""
    artifacts = _build_all(records, target, builder)
    timers = {i: t for i, (r, a) in enumerate(zip(records, artifacts)) if a and (t := _timer(a, r, device, cold))}
    if not timers:
        return None
    medians = interleaved_medians(timers)
    best = min(medians, key=medians.get)
    return best, medians[best], len(timers)


def _earlier_choices(database) -> tuple[dict, dict]:
    """The overlay's records per workload, and the same as the {key: (record, seconds)} that
    write_selected rewrites whole (the other workloads' choices are kept)."""
    previous = database.selected_records()
    return previous, {key: (record, mean_run_secs(record.run_secs)) for key, record in previous.items()}


def select_schedules(tasks, db, database, target, builder, device_type: str, cold: bool, pool: int = POOL,
                     should_stop: Callable[[], bool] = lambda: False) -> list[RetimedTask]:
    """Choose each tuned task's record as the module docstring says and store the choices in the
    database's overlay, beside the other workloads' earlier ones. A stop request ends it after the
    current task, keeping the choices made."""
    import tvm

    device = tvm.runtime.device(device_type, 0)
    previous, chosen = _earlier_choices(database)
    report = []
    for task in tasks:
        if should_stop():
            break
        if not db.has_workload(task.mod):
            continue
        workload = db.commit_workload(task.mod)
        records = [r for r in db.get_top_k(workload, pool) if r.run_secs]
        if not records:
            continue
        key = database.workload_key(workload)
        if key in previous and all(database.record_key(previous[key]) != database.record_key(r) for r in records):
            records.append(previous[key])
        timed = _side_by_side(records, target, builder, device, cold)
        if timed is None:
            continue
        best, seconds, count = timed
        chosen[key] = (records[best], seconds)
        report.append(RetimedTask(task.name, mean_run_secs(records[0].run_secs), seconds, count, best))
    if report:
        database.write_selected(chosen)
    return report


@dataclass
class Seeding:
    tasks: int = 0  # tasks whose reference records were timed against the local best
    won: int = 0  # of them, those where a reference record was the fastest here
    seconds: float = 0.0


def seed_from_reference(tasks, db, database, reference, target, builder, device_type: str, cold: bool,
                        should_stop: Callable[[], bool] = lambda: False) -> Seeding:
    """Before the search: each task's reference records timed side by side with its local best
    (and its earlier choice), as the choice step times them. The winner becomes the task's choice
    in the overlay; a reference winner is also stored as a local record (with the time measured
    here), which seeds the evolutionary search. So a local record replaces a reference one only
    once they were timed together on this machine."""
    import time

    import tvm
    from tvm.s_tir import meta_schedule as ms

    began, device, seeding = time.monotonic(), tvm.runtime.device(device_type, 0), Seeding()
    previous, chosen = _earlier_choices(database)
    for task in tasks:
        candidates = reference.candidates(task.mod)
        if should_stop() or not candidates:
            continue
        workload = db.commit_workload(task.mod)
        key = database.workload_key(workload)
        local = [r for r in db.get_top_k(workload, 1) if r.run_secs] + ([previous[key]] if key in previous else [])
        records = list({database.record_key(r): r for r in candidates + local}.values())
        timed = _side_by_side(records, target, builder, device, cold)
        if timed is None:
            continue
        winner, seconds = records[timed[0]], timed[1]
        seeding.tasks += 1
        if reference.holds(winner):
            seeding.won += 1
            if all(database.record_key(r) != database.record_key(winner) for r in local):
                db.commit_tuning_record(ms.database.TuningRecord(winner.trace, workload, [seconds], target,
                                                                 winner.args_info))
        chosen[key] = (winner, seconds)
    if seeding.tasks:
        database.write_selected(chosen)
    seeding.seconds = time.monotonic() - began
    return seeding
