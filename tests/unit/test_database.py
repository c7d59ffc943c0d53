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
