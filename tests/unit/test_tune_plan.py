"""A tune request and its plan: checked and computed without TVM, a database or a model file."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

from workbench.compiler.tuner import TuneRequest, plan
from workbench.errors import WorkbenchError
from workbench.models import ModelSource
from workbench.targets import RpcConfig, get_profile

REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets"


def request(**changes) -> TuneRequest:
    profile = replace(get_profile("host", REPO_TARGETS), trials_per_task=64)
    fields = dict(source=ModelSource("m", Path("m.onnx"), builtin=False), profile=profile, trials=600,
                  batch_sizes=(1,), database_dir=Path("db"))
    return TuneRequest(**{**fields, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"trials": 0}, "--trials must be a positive number"),
    ({"seed": -1}, "--seed must be between"),
    ({"seed": 2**31}, "--seed must be between"),
    ({"retime_pool": -1}, "--retime-pool must be 0 (off)"),
    ({"minutes": 0.0}, "--minutes must be a positive number"),
    ({"minutes": float("nan")}, "--minutes must be a positive number"),
    ({"minutes": float("inf")}, "--minutes must be a positive number"),
])
def test_a_bad_request_is_refused_when_made(changes, message):
    with pytest.raises(WorkbenchError, match=re.escape(message)):
        request(**changes)


def test_a_budget_the_tasks_can_spend_runs_as_asked_and_chooses_after():
    made = plan(request(trials=600), num_tasks=9)
    assert (made.budget.total, made.budget.per_task, made.budget.per_iter) == (576, 64, 33)
    assert made.retime_pool == 8
    assert made.note.startswith("running 576 of 600 trials: 9 tasks x at most 64 each (trials_per_task = 64 in ")


def test_trials_below_the_task_count_give_every_task_one_and_say_so():
    made = plan(request(trials=3), num_tasks=5)
    assert made.budget.total == 5
    assert made.note == "--trials 3 is below the number of tasks (5); giving every task one trial"


def test_a_budget_spent_exactly_needs_no_note():
    assert plan(request(trials=128), num_tasks=2).note == ""


def test_over_rpc_there_is_no_choice_step_and_off_is_off():
    profile = replace(request().profile, rpc=RpcConfig("127.0.0.1", 9190, "k"))
    assert plan(request(profile=profile), num_tasks=3).retime_pool == 0
    assert plan(request(retime_pool=0), num_tasks=3).retime_pool == 0


def test_a_model_without_kernels_has_nothing_to_plan():
    with pytest.raises(WorkbenchError, match="model 'm' has no kernels to tune"):
        plan(request(), num_tasks=0)


def test_the_plan_says_up_front_why_it_runs_more_trials_than_asked():
    """Issue #29, item 7: `--trials 32` became 52 trials without saying why before the first one."""
    text = plan(request(trials=32, batch_sizes=(1, 8)), num_tasks=52).describe()
    assert text.startswith("Plan: 52 trials over 52 tasks (the model's kernels at batch sizes 1, 8)")
    assert "--trials 32 is raised to 52 because every task needs at least one trial" in text
    assert "Then each task's best 8 records are timed again side by side" in text


def test_the_plan_says_why_it_runs_fewer_and_nothing_when_as_asked():
    assert "; not 600: 9 tasks x at most 64 each." in plan(request(trials=600), num_tasks=9).describe()
    exact = plan(request(trials=128, retime_pool=0), num_tasks=2).describe()
    assert exact == ("Plan: 128 trials over 2 tasks (the model's kernels at batch size 1), 32 per batch, "
                     "at most 64 per task.")
