"""scripts/tune_reference.py: what a shipped reference folder keeps (gzip-compressed), and which tuning
runs are left."""

import argparse
import fcntl
import gzip
import json
import os
from pathlib import Path

import pytest

from tests.helpers import load_script

TARGET = {"keys": ["cpu"], "kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2, "tag": ""}


@pytest.fixture(scope="module")
def script():
    return load_script("tune_reference")


def workload_line(name: str) -> bytes:
    return json.dumps([name, f"base64-module-of-{name}=="]).encode() + b"\n"


def record_line(index: int, workload: str, secs: list, target=TARGET) -> bytes:
    # MetaSchedule writes records without spaces: [index,[trace,run_secs,target,args_info]]. The trace
    # names its workload so a test can tell whether the index still points at it.
    trace = [[["GetSBlock", [], [workload, "main"], ["b0"]]], []]
    value = [index, [trace, secs, target, [["TENSOR", "float32", [1, 64]]]]]
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


# Workload hash: record times in file order ([] = a failed measurement, ranked last).
TIMES = {"w0": [[5e-6], [1e-6, 3e-6], [], [4e-6], [9e-6], [3e-6]],  # 6 records: keeps 4
         "w1": [],  # no record, but selected/ chose one: kept
         "w2": [],  # no record anywhere: dropped
         "w3": [[7e-6], [2e-6]]}  # 2 records: both kept, index 3 becomes 2


def make_folder(root: Path) -> Path:
    folder = root / "x86-64-avx512"
    (folder / "logs" / "logs").mkdir(parents=True)
    (folder / "logs" / "logs" / "task_00.log").write_text("log\n")
    names = list(TIMES)
    (folder / "database_workload.json").write_bytes(b"".join(workload_line(n) for n in names))
    lines = [record_line(names.index(n), n, secs) for n, all_secs in TIMES.items() for secs in all_secs]
    lines = lines[::2] + lines[1::2]  # interleaved, as several sessions append them
    (folder / "database_tuning_record.json").write_bytes(b"".join(lines))
    (folder / "database_tuning_record.archive.json").write_bytes(record_line(0, "w0", [1.0]))
    (folder / "database_tuning_record.json.torn").write_text("[0,[[\n")
    (folder / "sessions.jsonl").write_text(json.dumps({"model": "resnet18", "batch_sizes": [1]}) + "\n")
    (folder / "lowering.json").write_text('{"abc": {"layout": true}}')
    (folder / ".lock").write_text("4242")
    selected = folder / "selected"
    selected.mkdir()
    (selected / "database_workload.json").write_bytes(workload_line("w1") + workload_line("w-stale"))
    (selected / "database_tuning_record.json").write_bytes(record_line(0, "w1", [6e-6]))
    for stale in ("selected.new", "selected.old"):
        (folder / stale).mkdir()
        (folder / stale / "database_workload.json").write_bytes(workload_line("w9"))
    return folder


DATABASE_FILES = ("database_workload.json", "database_tuning_record.json")


def shipped_bytes(path: Path) -> bytes:
    """What a compacted folder ships for the plain file path: path.gz, uncompressed; path itself gone."""
    assert not path.exists(), f"{path} is left unpacked"
    return gzip.decompress(path.with_name(path.name + ".gz").read_bytes())


def read_json_lines(path: Path) -> list:
    return [json.loads(line) for line in shipped_bytes(path).decode().splitlines() if line.strip()]


def database_files(folder: Path, suffix: str = "") -> dict:
    """The plain (or, with suffix ".gz", packed) database files of the folder and its selected/: path: bytes."""
    paths = [d / (name + suffix) for d in (folder, folder / "selected") for name in DATABASE_FILES]
    return {p: p.read_bytes() for p in paths if p.exists()}


def test_compaction_keeps_each_workloads_best_and_renumbers(script, tmp_path):
    folder = make_folder(tmp_path)
    before = (folder / "database_tuning_record.json").read_bytes().splitlines(keepends=True)

    kept = script.compact_folder(folder, keep=4, profile=None)

    assert kept == sum(min(4, len(t)) for t in TIMES.values()) == 6
    workloads = [w[0] for w in read_json_lines(folder / "database_workload.json")]
    assert workloads == ["w0", "w1", "w3"]
    records = read_json_lines(folder / "database_tuning_record.json")
    for index, (trace, *_rest) in records:
        assert trace[0][0][2][0] == workloads[index]  # each record still points at its own workload
    w0_secs = sorted(r[1][1] for r in records if r[1][0][0][0][2][0] == "w0")
    assert w0_secs == sorted([[1e-6, 3e-6], [3e-6], [4e-6], [5e-6]])  # the failed and the slowest dropped
    # kept lines are the original bytes but for the renumbered index, in their original order
    after = shipped_bytes(folder / "database_tuning_record.json").splitlines(keepends=True)
    old_lines = {script._renumber(line, 0): line for line in before}
    originals = [old_lines[script._renumber(line, 0)] for line in after]
    assert [script._renumber(old, json.loads(new)[0]) for old, new in zip(originals, after)] == after
    assert originals == [line for line in before if line in originals]
    assert shipped_bytes(folder / "database_workload.json") == b"".join(workload_line(n) for n in workloads)


def test_compaction_drops_what_is_not_shipped_and_keeps_the_rest(script, tmp_path):
    folder = make_folder(tmp_path)
    sessions, lowering = (folder / "sessions.jsonl").read_bytes(), (folder / "lowering.json").read_bytes()

    script.compact_folder(folder, keep=4)

    for gone in ("logs", "database_tuning_record.archive.json", "database_tuning_record.json.torn",
                 "selected.new", "selected.old"):
        assert not (folder / gone).exists(), gone
    assert (folder / "sessions.jsonl").read_bytes() == sessions
    assert (folder / "lowering.json").read_bytes() == lowering
    assert (folder / ".lock").read_text() == "4242"
    # selected/ keeps its choice, numbered as the folder's workloads (w0, w1, w3), and ships no workloads
    assert shipped_bytes(folder / "selected" / "database_tuning_record.json") == record_line(1, "w1", [6e-6])
    assert not list((folder / "selected").glob("database_workload.json*"))
    assert not list(folder.rglob("*.compacting"))
    assert not database_files(folder)  # the plain files are packed: only the .gz files are left


def test_selected_ships_its_records_only_and_unpacks_with_the_folders_workloads(script, tmp_path):
    folder = make_folder(tmp_path)
    with open(folder / "selected" / "database_tuning_record.json", "ab") as f:  # a second choice, of w3
        f.write(record_line(2, "w3", [2e-6]))
    (folder / "selected" / "database_workload.json").write_bytes(
        workload_line("w1") + workload_line("w-stale") + workload_line("w3"))

    script.compact_folder(folder, keep=4)

    assert not (folder / "selected" / "database_workload.json.gz").exists()
    script.unpack_folder(folder)
    workloads = (folder / "database_workload.json").read_bytes()
    assert (folder / "selected" / "database_workload.json").read_bytes() == workloads
    names = [json.loads(line)[0] for line in workloads.splitlines()]
    chosen = [json.loads(line) for line in (folder / "selected" / DATABASE_FILES[1]).read_text().splitlines()]
    assert [(names[index], trace[0][0][2][0]) for index, (trace, *_rest) in chosen] == [("w1", "w1"), ("w3", "w3")]
    script.pack_folder(folder)  # packed again: still no copy of the workloads in selected/
    assert sorted(p.name for p in (folder / "selected").iterdir()) == ["database_tuning_record.json.gz"]


def test_unpacking_rewrites_a_stale_copy_of_the_workloads_but_keeps_a_runs_own(script, tmp_path):
    folder = make_folder(tmp_path)
    script.compact_folder(folder, keep=4)
    chosen = folder / "selected"
    (chosen / "database_workload.json").write_bytes(workload_line("w-old"))  # left by a kill, before a pull

    script.unpack_folder(folder)
    assert (chosen / "database_workload.json").read_bytes() == (folder / "database_workload.json").read_bytes()

    # an interrupted run re-timed and wrote selected/ whole: its plain files belong together
    (chosen / "database_workload.json").write_bytes(workload_line("w3"))
    (chosen / "database_tuning_record.json").write_bytes(record_line(0, "w3", [1e-7]))
    script.unpack_folder(folder)
    assert (chosen / "database_workload.json").read_bytes() == workload_line("w3")
    script.compact_folder(folder, keep=4)  # and compaction numbers the run's choice as the folder's w3
    names = [w[0] for w in read_json_lines(folder / "database_workload.json")]
    assert names == ["w0", "w3"]  # w1, chosen no more and without records, is dropped
    assert shipped_bytes(chosen / "database_tuning_record.json") == record_line(1, "w3", [1e-7])


def test_compaction_is_idempotent(script, tmp_path):
    folder = make_folder(tmp_path)
    script.compact_folder(folder, keep=4)
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert script.compact_folder(folder, keep=4) == 6
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files


def test_a_compaction_killed_between_its_swaps_is_finished(script, tmp_path, monkeypatch):
    expected = make_folder(tmp_path / "expected")
    script.compact_folder(expected, keep=4)
    folder = make_folder(tmp_path / "killed")
    swaps = []

    def killed_at_the_second_swap(src, dst):
        swaps.append(dst)
        if len(swaps) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    real_replace = script.os.replace
    monkeypatch.setattr(script.os, "replace", killed_at_the_second_swap)
    with pytest.raises(KeyboardInterrupt):
        script.compact_database(folder, 4, frozenset({"w1"}))
    monkeypatch.setattr(script.os, "replace", real_replace)
    assert swaps[0].name == "database_workload.json"  # the records no longer match the workloads
    script.compact_folder(folder, keep=4)
    for name in DATABASE_FILES:
        assert (folder / (name + ".gz")).read_bytes() == (expected / (name + ".gz")).read_bytes(), name


def test_records_for_another_target_are_refused(script, tmp_path):
    folder = make_folder(tmp_path)
    with open(folder / "database_tuning_record.json", "ab") as f:
        f.write(record_line(0, "w0", [1e-7], {"kind": "llvm", "mcpu": "haswell"}))
    with pytest.raises(SystemExit, match="several targets"):
        script.compact_folder(folder, keep=4)
    clean = make_folder(tmp_path / "clean")
    with pytest.raises(SystemExit, match="not for the family's target"):
        script.compact_folder(clean, keep=4, profile="x86-avx2")
    assert script.compact_folder(clean, keep=4, profile="x86-avx512") == 6


def test_a_folder_in_use_is_left_alone(script, tmp_path):
    folder = make_folder(tmp_path)
    before = (folder / "database_tuning_record.json").read_bytes()
    with open(folder / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match="pid 4242"):
            script.compact_folder(folder, keep=4)
    assert (folder / "database_tuning_record.json").read_bytes() == before


def test_runs_left_follow_the_priority_and_skip_finished_sessions(script):
    sessions = [{"model": "resnet18", "batch_sizes": [1], "interrupted": False},
                {"model": "mobilenetv2", "batch_sizes": [1], "interrupted": True},  # Ctrl-C: run again
                {"model": "bert-mini", "batch_sizes": [1, 8], "interrupted": False},  # not a one-batch run
                {"model": "mlp", "batch_sizes": [8], "out_of_time": True}]  # stopped at --minutes: done
    left = script.runs_left(script.PRIORITY, sessions)
    assert left == [("mobilenetv2", 1), ("bert-mini", 1), ("resnet18", 8), ("mobilenetv2", 8), ("bert-mini", 8),
                    ("squeezenet1.1", 1), ("mlp", 1), ("squeezenet1.1", 8), ("resnet50", 1), ("resnet50", 8)]
    assert script.runs_left(script.PRIORITY, sessions, force=True) == script.PRIORITY
    assert script.runs_left(script.PRIORITY, []) == script.PRIORITY
    only = script.parse_runs("mlp@8, resnet18@8,mlp@1,mlp@8")
    assert script.runs_left(only, sessions) == [("resnet18", 8), ("mlp", 1)]
    with pytest.raises(SystemExit, match="MODEL@BATCH"):
        script.parse_runs("resnet18")


def test_the_tune_command_turns_reference_reading_off(script):
    command = script.tune_command("resnet18", 8, "x86-64-avx2", 40)
    assert command[1:] == ["tune", "--model", "resnet18", "--target", "x86-avx2", "--database",
                           str(script.REFERENCE / "x86-64-avx2"), "--batch-sizes", "8", "--trials", "100000",
                           "--minutes", "40", "--no-reference"]
    assert Path(command[0]).name == "workbench"


def test_summary_rows_name_the_machine(script):
    session = {"model": "resnet18", "batch_sizes": [1], "started": "2026-12-06T04:01:00+00:00",
               "git_commit": "a66132b0123456789", "trials": 1234, "seconds": 2400.0,
               "machine": {"cpu_model": "Intel Xeon", "physical_cores": 2, "llvm_cpu": "skylake-avx512"}}
    assert script.summary_rows([session]) == [["resnet18", "1", "Intel Xeon (LLVM skylake-avx512)", "2",
                                               "2026-12-06", "a66132b012", "1234", "40.0", ""]]


def test_tune_runs_whats_left_compacts_after_each_and_stops_at_a_failure(script, tmp_path, monkeypatch, capsys):
    folder = make_folder(tmp_path)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setattr(script, "REFERENCE", tmp_path)
    ran, unpacked = [], []

    def run(command):
        ran.append(command)
        unpacked.append(sorted(p.name for p in database_files(folder)))
        return 130 if len(ran) == 2 else 0

    monkeypatch.setattr(script, "_run", run)
    args = argparse.Namespace(family="x86-64-avx512", only="resnet18@1,mlp@1,mlp@8", minutes_per_run=None,
                              force=False)
    assert script.cmd_tune(args) == 130  # the second run was interrupted: the third is not started
    assert [(c[c.index("--model") + 1], c[c.index("--minutes") + 1]) for c in ran] == [("mlp", "3")] * 2
    assert not (folder / "logs").exists()  # compacted after the run
    # the tuner appends to plain files: the second run found them unpacked from the first's .gz files
    assert unpacked == [sorted(DATABASE_FILES * 2)] * 2
    assert not database_files(folder) and len(database_files(folder, ".gz")) == 3  # selected/: its records only
    out = capsys.readouterr().out
    assert "resnet18@1: already in" in out and "exited 130" in out and "6 records kept" in out


def test_pack_and_unpack_round_trip(script, tmp_path):
    folder = make_folder(tmp_path)
    plain = database_files(folder)
    assert len(plain) == 4

    script.pack_folder(folder)

    assert not database_files(folder)
    packed = database_files(folder, ".gz")
    for path, data in packed.items():
        assert data[3] == 0 and data[4:8] == bytes(4), path  # no file name, no time in the header
        assert gzip.decompress(data) == plain[path.with_name(path.name.removesuffix(".gz"))]
    script.unpack_folder(folder)
    assert database_files(folder) == plain  # byte for byte
    assert database_files(folder, ".gz") == packed  # unpacking leaves the shipped files as they are


def test_packing_gives_the_same_bytes_every_time(script, tmp_path):
    first, second = make_folder(tmp_path / "first"), make_folder(tmp_path / "second")
    os.utime(second / "database_workload.json", ns=(10**18, 10**18))  # another file time: not in the .gz
    script.pack_folder(first)
    script.pack_folder(second)
    assert {p.relative_to(first): b for p, b in database_files(first, ".gz").items()} == \
        {p.relative_to(second): b for p, b in database_files(second, ".gz").items()}

    # compacting again writes the same bytes, also where the .gz files are written anew
    script.compact_folder(first, keep=4)
    packed = database_files(first, ".gz")
    script.compact_folder(first, keep=4)
    assert database_files(first, ".gz") == packed
    script.unpack_folder(first)
    for path in packed:
        path.unlink()
    script.compact_folder(first, keep=4)
    assert database_files(first, ".gz") == packed


def test_compaction_of_a_folder_holding_only_the_gz_files(script, tmp_path):
    expected = make_folder(tmp_path / "expected")
    script.compact_folder(expected, keep=4)
    folder = make_folder(tmp_path / "packed")
    script.pack_folder(folder)  # shipped before compaction: only .gz files, every record in them
    assert not database_files(folder)

    assert script.compact_folder(folder, keep=4) == 6

    assert not database_files(folder)
    assert {p.relative_to(folder): b for p, b in database_files(folder, ".gz").items()} == \
        {p.relative_to(expected): b for p, b in database_files(expected, ".gz").items()}


def test_unpacking_keeps_plain_files_newer_than_the_gz_files(script, tmp_path):
    folder = make_folder(tmp_path)
    script.compact_folder(folder, keep=4)
    script.unpack_folder(folder)
    records = folder / "database_tuning_record.json"
    new = record_line(2, "w3", [1e-7])  # an interrupted run's record: the new best of w3
    with open(records, "ab") as f:
        f.write(new)
    newer = (folder / "database_tuning_record.json.gz").stat().st_mtime_ns + 10**9
    os.utime(records, ns=(newer, newer))
    interrupted = records.read_bytes()

    script.unpack_folder(folder)
    assert records.read_bytes() == interrupted  # kept, not overwritten by the older .gz

    assert script.compact_folder(folder, keep=4) == 7  # both files present: the plain ones are compacted
    assert new in shipped_bytes(records).splitlines(keepends=True)


def test_a_stale_plain_file_older_than_its_gz_is_refused(script, tmp_path):
    folder = make_folder(tmp_path)
    script.compact_folder(folder, keep=4)
    records = folder / "database_tuning_record.json"
    packed = records.with_name(records.name + ".gz")
    older = packed.stat().st_mtime_ns - 10**9
    records.write_bytes(gzip.decompress(packed.read_bytes()))  # what the .gz holds (a kill inside pack)
    os.utime(records, ns=(older, older))
    script.unpack_folder(folder)  # the same bytes: fine
    records.write_bytes(record_line(0, "w0", [1e-7]))  # other records, from before the .gz (a pull)
    os.utime(records, ns=(older, older))
    with pytest.raises(SystemExit, match="older than database_tuning_record.json.gz"):
        script.compact_folder(folder, keep=4)
    assert records.read_bytes() == record_line(0, "w0", [1e-7])  # neither file is touched


def test_sizes_count_what_is_shipped(script, tmp_path):
    folder = make_folder(tmp_path)
    script.compact_folder(folder, keep=4)
    packed, rest, unpacked = script.shipped_sizes(folder)
    assert packed == sum(len(b) for b in database_files(folder, ".gz").values()) and unpacked == 0
    assert rest == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) - packed - len("4242")
    script.unpack_folder(folder)
    assert script.shipped_sizes(folder) == (packed, rest, sum(len(b) for b in database_files(folder).values()))
    assert script.shipped_size(folder) == packed + rest
    assert not script.shipped(folder / "selected" / "database_workload.json", folder)
    assert "not packed yet" in script.describe_sizes(folder)
