import pytest

from workbench.compiler.tuner import plan_budget
from workbench.errors import WorkbenchError


def test_even_split_capped_by_profile():
    b = plan_budget(num_tasks=24, total=2000, per_task_cap=64)
    assert (b.per_task, b.total, b.per_iter) == (64, 24 * 64, 64)


def test_every_task_gets_a_share_when_budget_is_small():
    b = plan_budget(num_tasks=24, total=500, per_task_cap=128)
    assert b.per_task == 20 and b.total == 480 and b.per_iter == 20


def test_total_below_task_count_gives_one_trial_each():
    b = plan_budget(num_tasks=10, total=3, per_task_cap=64)
    assert (b.per_task, b.total, b.per_iter) == (1, 10, 1)


@pytest.mark.parametrize("trials", [0, -5])
def test_non_positive_trials_rejected(trials):
    with pytest.raises(WorkbenchError, match="--trials must be a positive number"):
        plan_budget(num_tasks=3, total=trials, per_task_cap=8)
