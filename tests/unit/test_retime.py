"""Re-timing the best records: the ranking loop, the interleaving, and the file rewrite."""

import json

from workbench.compiler.database import TuningDatabase, trace_key
from workbench.compiler.retime import interleaved_medians, rank_by_retiming


def test_the_top_is_retimed_until_every_record_in_it_was_timed_side_by_side():
    stored = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # what tuning stored: the first two were lucky
    true = [9.0, 8.0, 2.5, 7.0, 1.5, 6.0]
    calls = []

    def measure(indices):
        calls.append(sorted(indices))
        return {i: true[i] for i in indices}

    retimed = rank_by_retiming(stored, measure, k=3)
    assert calls == [[0, 1, 2], [2, 3, 4], [2, 4, 5]]
    assert retimed == {i: true[i] for i in range(6)}
    assert min(retimed, key=retimed.get) == 4


def test_retiming_stops_after_its_pass_limit():
    stored = [float(i) for i in range(10)]
    # Each re-timed record turns out slower than every stored one, so the top never settles.
    retimed = rank_by_retiming(stored, lambda indices: {i: 100.0 + i for i in indices}, k=2, max_passes=3)
    assert sorted(retimed) == [0, 1, 2, 3, 4, 5]


def test_a_task_whose_top_is_confirmed_is_timed_once():
    calls = []
    rank_by_retiming([1.0, 2.0, 3.0], lambda idx: calls.append(idx) or {i: float(i + 1) for i in idx}, k=2)
    assert calls == [[0, 1]]


def test_timings_are_interleaved_and_the_median_counts():
    order = []

    def timer(name, values):
        it = iter(values)
        return lambda: order.append(name) or next(it)

    medians = interleaved_medians({0: timer("a", [5, 1, 2]), 1: timer("b", [3, 3, 90])}, rounds=3)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert medians == {0: 2, 1: 3}


def test_replacing_times_changes_only_the_named_records(tmp_path):
    trace = [[["Split", ["l2"], [True, False], ["l9"]]], []]
    on_file = [[["Split", ["l2"], [1, 0], ["l9"]]], []]  # the file spells the flags 1/0
    (tmp_path / "database_workload.json").write_text('["111","x"]\n["222","y"]\n')
    lines = [[0, [on_file, [1e-3], {"kind": "llvm"}, []]], [1, [on_file, [2e-3], {"kind": "llvm"}, []]],
             [1, [[[["Other"]], []], [3e-3], {"kind": "llvm"}, []]]]
    (tmp_path / "database_tuning_record.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    database = TuningDatabase(tmp_path, {"kind": "llvm"})

    assert database.replace_run_secs({("222", trace_key(trace)): [5e-3]}) == 1
    after = [json.loads(x) for x in (tmp_path / "database_tuning_record.json").read_text().splitlines()]
    assert [x[1][1] for x in after] == [[1e-3], [5e-3], [3e-3]]
    assert [x[1][0] for x in after] == [x[1][0] for x in lines]
    assert not list(tmp_path.glob("*.new"))
