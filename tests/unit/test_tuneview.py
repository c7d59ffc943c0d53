"""What `tune` does at the terminal: Ctrl-C during a session, and the warning under the summary."""

import os
import signal
import threading
from types import SimpleNamespace

import pytest

from workbench.tuneview import TuneDisplay, untuned_note


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
