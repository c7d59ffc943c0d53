import pytest

from workbench.compiler.measure import MIN_POPULATION, POPULATION, population_for
from workbench.compiler.tuner import plan_budget
from workbench.errors import WorkbenchError


def test_first_round_takes_at_most_half_the_budget():
    b = plan_budget(num_tasks=24, total=2000, per_task_cap=512)
    assert b.per_iter == 41 and 24 * b.per_iter <= 1000
    assert (b.per_task, b.total) == (512, 2000)


def test_batches_never_exceed_tvms_64():
    assert plan_budget(num_tasks=2, total=5000, per_task_cap=4096).per_iter == 64


def test_profile_cap_bounds_the_total():
    b = plan_budget(num_tasks=24, total=2000, per_task_cap=64)
    assert (b.per_task, b.total) == (64, 24 * 64)


def test_total_below_task_count_gives_one_trial_each():
    b = plan_budget(num_tasks=10, total=3, per_task_cap=64)
    assert (b.per_iter, b.total) == (1, 10)


@pytest.mark.parametrize("trials", [0, -5])
def test_non_positive_trials_rejected(trials):
    with pytest.raises(WorkbenchError, match="--trials must be a positive number"):
        plan_budget(num_tasks=3, total=trials, per_task_cap=8)


def test_search_population_follows_the_batch_it_feeds():
    # resnet18 at 608 trials: 19 tasks, batches of 16, so 64 searched where 256 were.
    assert population_for(plan_budget(num_tasks=19, total=608, per_task_cap=512).per_iter) == 64
    assert population_for(1) == MIN_POPULATION and population_for(200) == POPULATION == 256
    assert population_for(64) == 128 and population_for(40) == 80
