"""What `tune` does at the terminal: Ctrl-C during a session, and the warning under the summary."""

import os
import re
import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.text import Text

from workbench import tuneview
from workbench.compiler.retime import RetimedTask
from workbench.compiler.scheduler import Budget
from workbench.compiler.tunefigures import trust_note
from workbench.compiler.tuner import TunePlan, TuneSummary
from workbench.compiler.tunesession import TaskResult
from workbench.console import console
from workbench.tuneview import TuneDisplay, print_summary, summary_lines, untuned_note


def test_the_first_ctrl_c_asks_for_a_stop_and_the_second_aborts():
    stop, before = threading.Event(), signal.getsignal(signal.SIGINT)
    with TuneDisplay(enabled=False).session("m", 10, stop):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_the_note_names_the_tasks_left_on_the_default_schedule():
    task = lambda name, best: SimpleNamespace(name=name, flops=1e6, weight=1, best_after=best)  # noqa: E731
    assert untuned_note(SimpleNamespace(tasks=[task("a", 1e-5)])) == ""
    note = untuned_note(SimpleNamespace(tasks=[task("a", 1e-5), task("b", None)]))
    assert note.startswith("1 task(s) have no valid schedule yet (50% of the FLOPs)") and note.endswith("default: b")


def summary(**changes) -> TuneSummary:
    """A finished session as the tuner returns it: a 64-trial plan, two tasks, both estimates."""
    tasks = [TaskResult("fused_conv2d@b1", 2e8, 1, None, 0.100, trials=33, chosen=0.020),
             TaskResult("fused_dense@b1", 1e6, 1, None, 0.0625, trials=32, chosen=0.014)]
    budget = Budget(total=64, per_task=64, per_iter=32)
    fields = dict(model="cnn", target="host", database=Path("db"), budget=budget, tasks=tasks, seconds=120.0,
                  records_before=0, records_after=65, interrupted=False, cold_weights=True,
                  retimed=[RetimedTask(t.name, t.best_after, t.chosen, 8, 1) for t in tasks], retime_seconds=30.0,
                  estimated_latency_chosen=0.034, curve=[(0.0, 0, None), (120.0, 65, 0.1625)],
                  plan=TunePlan(budget, 8, "", 64, 2, (1,)), batch=1, onnxruntime_latency_s=0.030)
    return TuneSummary(**{**fields, **changes})


def test_the_summary_shows_onnxruntime_beside_the_estimates_and_which_to_trust():
    """Issue #29, item 7: 'estimated 162.556 ms', then 'cold ... runs high: 34.051 ms' (lower, not higher)."""
    lines = summary_lines(summary())
    text = "\n".join(lines)
    assert "runs high" not in text
    assert "  162.500 ms  tuning's estimate" in text and "  34.000 ms  re-timed estimate" in text
    assert "  30.000 ms  ONNX Runtime, measured now (the whole model, p50)" in text
    trust = lines[-1]
    assert trust.startswith("Trust the re-timed estimate over tuning's")
    assert "They differ by 4.8x: this machine's speed changed while tuning" in trust
    assert "1.13x ONNX Runtime's measured latency" in trust and "workbench bench --model cnn --target host" in trust


def test_trials_past_the_plan_are_explained():
    """'65 of a budget of 64': MetaSchedule checks the budget before a batch, not inside it."""
    line = summary_lines(summary())[0]
    assert line.startswith("Trials: 65 of the 64 planned; MetaSchedule runs its last batch whole, so 1 more")
    assert "in 2.0 min of search = [bold]32.5 trials/min[/bold], then 0.5 min choosing" in line
    raised = summary(budget=Budget(52, 52, 1), plan=TunePlan(Budget(52, 52, 1), 8, "", 32, 52, (1, 8)),
                     tasks=[TaskResult("t@b1", 1e6, 1, None, 1e-3, trials=52)])
    assert summary_lines(raised)[0].startswith("Trials: 52 of the 52 planned (--trials 32: see the plan above)")


def test_without_a_choice_or_onnxruntime_the_summary_says_so():
    lines = summary_lines(summary(retimed=[], estimated_latency_chosen=None, onnxruntime_latency_s=None,
                                  onnxruntime_note="not measured: interrupted"))
    assert "  ONNX Runtime: not measured: interrupted" in lines
    assert not any("re-timed estimate (" in line for line in lines)
    assert lines[-1].startswith("Tuning's estimate is one timing of each kernel's best schedule")


def test_trust_note_agreeing_estimates_are_not_flagged():
    note = trust_note(0.010, 0.009, 0.020, "bench.")
    assert "differ" not in note and "2.22x faster than ONNX Runtime's" in note and note.endswith("bench.")
    assert trust_note(None, None, 0.02, "bench.").startswith("No estimate")


def test_summary_lines_survive_a_narrow_terminal(monkeypatch):
    """scripts/fleet_throughput.sh read blank rates: Rich wrapped '48.6 trials/min' across lines."""
    monkeypatch.setattr(console, "width", 40)
    monkeypatch.setattr(tuneview, "for_tables", lambda: console)  # a terminal 40 columns wide
    with console.capture() as captured:
        print_summary(summary())
    after_table = captured.get().split("└")[-1].splitlines()[1:]
    assert after_table[:len(summary_lines(summary()))] == [
        Text.from_markup(line).plain for line in summary_lines(summary())]
    assert re.search(r"= 32\.5 trials/min, then", captured.get())


def test_the_expected_search_time_comes_from_this_machines_last_finished_session():
    from workbench import fingerprint
    from workbench.compiler.tunefigures import expected_minutes

    here = fingerprint.here()
    finished = {**here, "model": "resnet50", "batch_sizes": [8], "trials_per_minute": 250.0, "interrupted": False}
    stalled = {**here, "model": "resnet50", "trials_per_minute": 100.0, "interrupted": True}
    elsewhere = {**finished, "fingerprint_id": "another machine", "trials_per_minute": 500.0}
    assert expected_minutes([finished, stalled, elsewhere], 1000, "resnet50", [8]).startswith(
        "about 4.0 min of search at the 250.0 trials/min of the last session here like it (resnet50 at batch 8)")
    assert expected_minutes([stalled, elsewhere], 1000) == ""
    # batch 1 runs faster per trial than batch 8: the closest session is taken, whatever came last
    at_one = {**finished, "batch_sizes": [1], "trials_per_minute": 400.0}
    other_model = {**finished, "model": "resnet18", "trials_per_minute": 300.0}
    assert "the 250.0 trials/min" in expected_minutes([finished, other_model, at_one], 1000, "resnet50", [8])
    assert "the 300.0 trials/min" in expected_minutes([finished, other_model, at_one], 1000, "mobilenetv2", [8])
    assert "the 400.0 trials/min" in expected_minutes([finished, other_model, at_one], 1000, "mobilenetv2", [4])
