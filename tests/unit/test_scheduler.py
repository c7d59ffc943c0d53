"""The share-of-time rule that picks the next task to tune (compiler/scheduler.py)."""

from workbench.compiler.scheduler import gained, next_task


def pick(best, weights=None, batches=None, stale=None, live=None, groups=None):
    n = len(best)
    return next_task(best, weights or [1] * n, batches or [1] * n, stale or [0] * n,
                     list(range(n)) if live is None else live, groups)


def test_tasks_without_records_get_a_first_batch_in_order():
    assert pick([5e-3, None, None], batches=[1, 0, 0]) == 1
    assert pick([5e-3, 1e-6, None], batches=[1, 1, 0]) == 2


def test_a_task_with_a_stored_record_needs_no_first_batch():
    # Task 1 has a record from an earlier session: it competes on its share like the others.
    assert pick([5e-3, 1e-6], batches=[1, 0]) == 0


def test_largest_weight_times_time_goes_next():
    assert pick([4e-3, 3e-3, 1e-5]) == 0
    assert pick([4e-3, 3e-3, 1e-5], weights=[1, 2, 1]) == 1  # 6 ms of the model against 4 ms


def test_each_stale_batch_halves_a_claim():
    assert pick([4e-3, 3e-3], stale=[1, 0]) == 1  # 2 ms against 3 ms
    assert pick([4e-3, 1.5e-3], stale=[1, 0]) == 0  # 2 ms against 1.5 ms


def test_failed_task_is_as_urgent_as_the_slowest_known_one():
    # Task 1 had a batch and no valid candidate: it ties with task 0 and the first in order wins.
    assert pick([4e-3, None, 1e-3], batches=[1, 1, 1]) == 0
    assert pick([4e-3, None, 1e-3], batches=[1, 1, 1], stale=[1, 0, 0]) == 1


def test_each_batch_size_competes_on_its_share_of_its_own_model():
    # Batch 1: 2 of 3 ms. Batch 8: 10 of 30 ms, more milliseconds but a smaller share.
    best = [2e-3, 1e-3, 10e-3, 20e-3]
    assert pick(best, live=[0, 2]) == 2  # one model: absolute time decides
    assert pick(best, live=[0, 2], groups=[1, 1, 8, 8]) == 0
    # A finished (not live) task still counts in its batch's total.
    assert pick([2e-3, 1e-3, 10e-3, 10e-3], live=[0, 2], groups=[1, 1, 8, 8]) == 0  # 0.67 against 0.5


def test_only_live_tasks_are_picked():
    assert pick([4e-3, 3e-3, 1e-5], live=[1, 2]) == 1
    assert pick([4e-3], live=[]) == -1


def test_gain_rule():
    assert gained(None, 1e-3) and gained(float("inf"), 1e-3)
    assert gained(1e-3, 0.98e-3)
    assert not gained(1e-3, 0.995e-3)  # under 1%
    assert not gained(1e-3, None) and not gained(None, None)
