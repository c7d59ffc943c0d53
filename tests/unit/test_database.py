import json

import pytest

from workbench.compiler.database import TuningDatabase
from workbench.errors import DatabaseError

TARGET = {"kind": "llvm", "mcpu": "znver3", "num-cores": 2}


def record(target=TARGET, secs=1e-5) -> str:
    # The shape of MetaSchedule's JSON record: [workload index, [trace, run_secs, target, args_info]].
    return json.dumps([0, [[[], []], [secs], target, [["TENSOR", "float32", [1, 64]]]]]) + "\n"


def make_db(tmp_path, lines: str) -> TuningDatabase:
    db = TuningDatabase(tmp_path / "db", TARGET)
    db.directory.mkdir()
    db.records_path.write_text(lines)
    return db


def test_torn_last_line_is_set_aside_not_lost(tmp_path):
    db = make_db(tmp_path, record() + record() + record()[:25])
    assert db.validate() == 2
    assert db.records_path.read_text() == record() + record()
    assert (db.directory / "database_tuning_record.json.torn").read_text() == record()[:25] + "\n"


def test_complete_last_line_without_newline_is_kept(tmp_path):
    db = make_db(tmp_path, record() + record().rstrip("\n"))
    assert db.validate() == 2


def test_corrupt_middle_line_names_the_line(tmp_path):
    content = record() + "{garbage\n" + record()
    db = make_db(tmp_path, content)
    with pytest.raises(DatabaseError, match=r"database_tuning_record.json:2 is corrupt"):
        db.validate()
    assert db.records_path.read_text() == content  # nothing touched


def test_records_for_another_target_refused(tmp_path):
    db = make_db(tmp_path, record(target={"kind": "cuda", "arch": "sm_90"}))
    with pytest.raises(DatabaseError, match="tuned for .*cuda.* not for this target"):
        db.validate()


def test_core_count_does_not_make_another_target(tmp_path):
    db = make_db(tmp_path, record(target={**TARGET, "num-cores": 16}))
    assert db.validate() == 1


def test_one_tuning_run_per_database(tmp_path):
    db = TuningDatabase(tmp_path / "db", TARGET)
    with db.exclusive():
        with pytest.raises(DatabaseError, match=r"another workbench process \(pid \d+\) is using"):
            with db.exclusive():
                pass
    with db.exclusive():  # released afterwards
        pass


@pytest.mark.parametrize("session", ['{"machine": "x"}', '{"machine": {"cpu_model": ["a"]}}'])
def test_session_with_a_malformed_machine_names_the_line(tmp_path, session):
    db = make_db(tmp_path, record())
    db.sessions_path.write_text(session + "\n")
    if "cpu_model" in session:  # a list where a name belongs: reported, not a crash
        assert db.validate() == 1
    else:
        with pytest.raises(DatabaseError, match=r"sessions.jsonl:1 is corrupt"):
            db.validate()


def timed(workload: int, secs) -> str:
    return json.dumps([workload, [[[], []], secs, TARGET, [["TENSOR", "float32", [1, 64]]]]]) + "\n"


def test_compaction_keeps_each_workloads_best_and_archives_the_rest(tmp_path):
    # Workload 0: six records, one without a valid time; workload 1: three. Keep 2 per workload.
    zero = [timed(0, [s]) for s in (5e-5, 1e-5, 3e-5, 2e-5, 4e-5)] + [timed(0, [])]
    one = [timed(1, [s]) for s in (7e-5, 6e-5, 8e-5)]
    lines = [zero[0], one[0], *zero[1:4], one[1], zero[4], one[2], zero[5]]
    db = make_db(tmp_path, "".join(lines))
    db = TuningDatabase(db.directory, TARGET, keep_per_workload=2)
    assert db.validate() == 9 == db.record_count()  # nothing lost: moved, and still counted
    assert db.records_path.read_text() == one[0] + zero[1] + zero[3] + one[1]  # file order kept
    archived = db.archive_path.read_text().splitlines(keepends=True)
    assert sorted(archived) == sorted(set(lines) - {zero[1], one[0], zero[3], one[1]})
    before = db.archive_path.read_text()
    assert db.validate() == 9 and db.archive_path.read_text() == before  # compact: left alone


def test_database_with_no_workload_over_the_limit_is_not_rewritten(tmp_path):
    content = "".join(timed(w, [s]) for w in (0, 1) for s in (3e-5, 1e-5))  # 2 per workload, keep 2
    db = TuningDatabase(make_db(tmp_path, content).directory, TARGET, keep_per_workload=2)
    assert db.validate() == 4
    assert db.records_path.read_text() == content and not db.archive_path.exists()


def test_compaction_keeps_more_than_tuning_and_retiming_read():
    from workbench.compiler.database import KEEP_PER_WORKLOAD
    from workbench.compiler.measure import POPULATION
    from workbench.compiler.retime import POOL

    init_measured_ratio = 0.2  # EvolutionarySearch's default, which search_strategy keeps
    assert KEEP_PER_WORKLOAD >= max(int(POPULATION * init_measured_ratio), POOL)


def test_record_whose_time_is_not_a_number_names_the_line(tmp_path):
    content = timed(0, [1e-5]) + timed(0, ["fast"])
    db = make_db(tmp_path, content)
    with pytest.raises(DatabaseError, match=r"database_tuning_record.json:2 is corrupt"):
        db.validate()
    assert db.records_path.read_text() == content and not db.archive_path.exists()
