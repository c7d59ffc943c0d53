"""A task scheduler that finishes each batch before starting the next.

TVM's gradient scheduler first dispatches one batch for every task and joins them all only
afterwards; on resnet18 with 64-candidate batches that is tens of minutes in which no record
reaches the database, Ctrl-C cannot act, and candidates are timed while others compile on the
same two cores. Here the batch of the task picked last is joined (its records written, its
callbacks run) before the next task is picked. Tasks take turns; each is capped by the tuner's
per-task budget, so the even split of trials stays as planned.
"""


def join_each_batch_scheduler():
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

    @derived_object
    class JoinEachBatch(PyTaskScheduler):
        def __init__(self):
            super().__init__()
            self._last = -1

        def next_task_id(self) -> int:
            tasks = self._outer().tasks_
            # The loop terminates a task without sending it; one still live was sent and must be joined.
            if self._last >= 0 and not tasks[self._last].is_terminated:
                self.join_running_task(self._last)
            for step in range(1, len(tasks) + 1):
                candidate = (self._last + step) % len(tasks)
                if not tasks[candidate].is_terminated:
                    self._last = candidate
                    return candidate
            return -1

    return JoinEachBatch()
