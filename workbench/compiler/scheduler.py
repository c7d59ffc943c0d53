"""Which task tunes next: the one holding the largest share of the model's estimated time.

TVM's gradient scheduler first dispatches one batch for every task and joins them all only
afterwards; on resnet18 with 64-candidate batches that is tens of minutes in which no record
reaches the database, Ctrl-C cannot act, and candidates are timed while others compile on the
same two cores. Here the batch of the task picked last is joined (its records written, its
callbacks run) before the next task is picked.

Budget goes where the time is: every task without a record first gets one batch, which takes it
off TVM's very slow default schedule; after that the task with the largest weight x best kernel
time goes next. A batch that improved its task by less than 1% halves that task's claim, so a
converged kernel yields to ones that are still moving. A reshape or a mean that costs 0.1% of
the model gets its one batch and nothing more, where an even split gave it as many trials as the
heaviest convolution.
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from workbench.errors import WorkbenchError

CONVERGED_GAIN = 0.01  # a batch that improves its task by less than this counts as no progress


@dataclass(frozen=True)
class Budget:
    total: int
    per_task: int
    per_iter: int


def plan_budget(num_tasks: int, total: int, per_task_cap: int) -> Budget:
    """Batch size and caps for the share-of-time scheduler.

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


def next_task(best: Sequence[float | None], weights: Sequence[float], batches: Sequence[int],
              stale: Sequence[int], live: Sequence[int], groups: Sequence[int] | None = None) -> int:
    """The task to tune next, -1 when none is live.

    best: each task's best kernel seconds so far (None: no valid schedule yet); batches: batches
    dispatched for it in this session; stale: its batches that gained less than CONVERGED_GAIN;
    groups: the model variant (batch size) each task belongs to, whose known time it is a share of.
    """
    if not live:
        return -1
    for task in live:
        if best[task] is None and batches[task] == 0:
            return task
    groups = groups or [0] * len(best)
    group_time: defaultdict[int, float] = defaultdict(float)
    for task, seconds in enumerate(best):
        if seconds is not None:
            group_time[groups[task]] += weights[task] * seconds

    def known_share(task: int) -> float:
        return weights[task] * best[task] / (group_time[groups[task]] or 1.0)  # all-zero times: no share

    # A task whose every candidate failed still runs a default schedule: as urgent as the slowest known one.
    unknown = max((known_share(t) for t in live if best[t] is not None), default=1.0)

    def claim(task: int) -> float:
        share = known_share(task) if best[task] is not None else unknown
        return share / 2 ** stale[task]

    return max(live, key=claim)  # ties: the first in task order, so a run is reproducible


def gained(before: float | None, after: float | None) -> bool:
    """Whether a batch moved its task: a first valid schedule, or at least CONVERGED_GAIN faster."""
    if after is None:
        return False
    if before is None or math.isinf(before):
        return True
    return after < before * (1 - CONVERGED_GAIN)


def share_of_time_scheduler(best_of, groups: Sequence[int]):
    """A MetaSchedule task scheduler that calls `best_of(task_id)` (seconds or None, as the
    measure callback keeps it) to rank tasks by `next_task`; groups: each task's batch size."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

    @derived_object
    class ShareOfTime(PyTaskScheduler):
        def __init__(self):
            super().__init__()
            self._last = -1
            self._before = None
            self._batches: list[int] = []
            self._stale: list[int] = []

        def next_task_id(self) -> int:
            tasks = self._outer().tasks_
            if not self._batches:
                self._batches, self._stale = [0] * len(tasks), [0] * len(tasks)
            # The loop terminates a task without sending it; one still live was sent and must be joined.
            if self._last >= 0 and not tasks[self._last].is_terminated:
                self.join_running_task(self._last)
            if self._last >= 0 and not gained(self._before, best_of(self._last)):
                self._stale[self._last] += 1
            live = [i for i, t in enumerate(tasks) if not t.is_terminated]
            chosen = next_task([best_of(i) for i in range(len(tasks))], [t.task_weight for t in tasks],
                               self._batches, self._stale, live, groups)
            if chosen >= 0:
                self._batches[chosen] += 1
                self._last, self._before = chosen, best_of(chosen)
            return chosen

    return ShareOfTime()
