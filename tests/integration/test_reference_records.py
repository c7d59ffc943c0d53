"""Reference records for real: tuned under the family's baseline CPU, re-keyed to this machine's
target, built and gated; the order a build takes schedules in; damaged folders."""

import json
import shutil

import pytest

from tests.helpers import load_script, workbench_cli
from workbench.compiler import reference_records
from workbench.compiler.builder import CompileRequest, compile_model
from workbench.compiler.buildkey import workload_keys
from workbench.compiler.database import TuningDatabase
from workbench.compiler.importer import make_target
from workbench.compiler.tasks import extract, prepared_modules
from workbench.compiler.tuner import TuneRequest
from workbench.compiler.tuner import tune as run_tune
from workbench.models import load, resolve
from workbench.targets import get_profile
from workbench.tuneview import TuneDisplay

pytestmark = [pytest.mark.build, pytest.mark.slow]

HOST = get_profile("host")
FAMILY = reference_records.family(HOST)
pytestmark.append(pytest.mark.skipif(FAMILY is None, reason="this CPU belongs to no family of reference records"))


def tune(profile, database_dir, trials: int, **options):
    return run_tune(TuneRequest(resolve("mlp"), profile, trials, (1,), database_dir, **options),
                    TuneDisplay(enabled=False))


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory):
    """mlp tuned under the family's baseline profile (not this machine's mcpu), as shipped."""
    root = tmp_path_factory.mktemp("reference")
    tune(get_profile(reference_records.FAMILY_PROFILES[FAMILY]), root / FAMILY, 9, reference=False)
    return root


@pytest.fixture
def with_reference(project, reference_root, monkeypatch):
    monkeypatch.setenv(reference_records.ENV, str(reference_root))
    return project


def mlp_tasks():
    target = make_target(HOST.resolved_target())
    return extract(prepared_modules(load(resolve("mlp")), (1,), target), target), target


def test_records_tuned_for_another_mcpu_build_here_and_pass_the_gate(with_reference):
    db_dir = with_reference / "tuning_logs" / "host"
    out = with_reference / "build"
    manifest = compile_model(CompileRequest(resolve("mlp"), HOST, (1,), db_dir, out))
    assert manifest["correctness"]["checked"]
    assert all(c["passed"] for cs in manifest["correctness"]["per_batch"].values() for c in cs)
    tuning = manifest["tuning"]
    assert tuning["schedules"]["reference"] == {"kernels": 3, "flops_share": 1.0}
    assert tuning["kernels_from_records"] == {"1": 3} and tuning["untuned_tasks"] == []
    assert tuning["reference"]["family"] == FAMILY and tuning["reference"]["machines"]
    # The records were stored for the family's baseline CPU, and built for this one.
    stored = {json.loads(line)[1][2]["mcpu"] for line in
              (reference_records.root() / FAMILY / "database_tuning_record.json").read_text().splitlines()}
    assert stored == {get_profile(reference_records.FAMILY_PROFILES[FAMILY]).target["mcpu"]}


def test_the_cli_names_where_the_schedules_came_from_and_can_turn_reference_off(with_reference, reference_root):
    env = {reference_records.ENV: str(reference_root)}
    used = workbench_cli("compile", "--model", "mlp", "--target", "host", "--batch-sizes", "1", home=with_reference,
                         extra_env=env)
    assert used.returncode == 0, used.stderr
    assert f"Schedules: 3 of 3 kernels (100% of the FLOPs) from reference records {FAMILY} (tuned on " in used.stdout
    off = workbench_cli("compile", "--model", "mlp", "--target", "host", "--batch-sizes", "1", "--no-reference",
                        home=with_reference, extra_env=env)
    assert off.returncode == 0, off.stderr
    assert "Schedules: 0 of 3 kernels (0% of the FLOPs) from reference records; 0 (0%) from local tuning; " \
           "3 (100%) TVM's default schedules" in off.stdout


def test_a_local_record_replaces_a_reference_one_only_once_timed_beside_it(with_reference):
    db_dir = with_reference / "tuning_logs" / "host"
    # A tiny local run, never timed against the reference records: it does not shadow them.
    tune(HOST, db_dir, 3, reference=False, retime_pool=0)
    database = TuningDatabase(db_dir, HOST.resolved_target())
    tasks, target = mlp_tasks()
    reference = reference_records.load(HOST, HOST.resolved_target(), workload_keys(tasks))
    build_db = database.open_for_build(database.open(), reference.database())
    assert reference_records.sources(tasks, build_db, target, reference) == ["reference"] * 3

    # tune starts by timing each task's reference records beside its local best, side by side;
    # the winner is the task's choice, and a reference winner seeds the search as a local record.
    summary = tune(HOST, db_dir, 3)
    assert summary.reference["seeded_tasks"] == 3 and summary.reference["family"] == FAMILY
    (_, session) = database.sessions()
    assert session["reference"]["seeded_tasks"] == 3 and sum(s["kernels"] for s in session["schedules"].values()) == 3
    chosen = database.selected_records()
    assert len(chosen) == 3
    main = database.open()
    build_db = database.open_for_build(main, reference.database())
    for task in tasks:
        record = build_db.query_tuning_record(task.mod, target, task.name.split("@")[0])
        assert str(record.trace) == str(chosen[database.workload_key(record.workload)].trace)
        if reference.holds(record):  # stored locally too, where the search found it
            local = main.get_top_k(main.commit_workload(task.mod), 1000)
            assert any(str(r.trace) == str(record.trace) for r in local)

    # A local record chosen side by side wins over the reference one.
    task = tasks[0]
    local = [r for r in main.get_top_k(main.commit_workload(task.mod), 1000) if not reference.holds(r)][0]
    database.write_selected({**{key: (record, 1.0) for key, record in chosen.items()},
                             database.workload_key(local.workload): (local, 1e-6)})
    build_db = database.open_for_build(database.open(), reference.database())
    assert reference_records.sources(tasks[:1], build_db, target, reference) == ["local"]


def test_damaged_missing_and_foreign_folders_get_one_line_each(with_reference, reference_root, tmp_path, capsys,
                                                               monkeypatch):
    tasks, _ = mlp_tasks()
    keys = workload_keys(tasks)
    damaged = tmp_path / "damaged"
    shutil.copytree(reference_root / FAMILY, damaged / FAMILY)
    records = damaged / FAMILY / "database_tuning_record.json"
    lines = records.read_text().splitlines()
    foreign = json.loads(lines[0])
    foreign[1][2] = {**foreign[1][2], "mtriple": "aarch64-linux-gnu"}
    records.write_text("\n".join([*lines, "{not json", json.dumps([0, ["not a trace"]]), json.dumps(foreign)]) + "\n")
    monkeypatch.setenv(reference_records.ENV, str(damaged))
    reference = reference_records.load(HOST, HOST.resolved_target(), keys)
    err = capsys.readouterr().err
    assert len(reference.keys) == len(lines)  # every valid record still applies
    assert "skipped 1 line(s) that are not JSON" in err and "skipped 1 corrupt reference record line(s)" in err
    assert "skipped records for another architecture (aarch64-linux-gnu)" in err
    assert len([line for line in err.splitlines() if line.startswith("warning:")]) == 3

    monkeypatch.setenv(reference_records.ENV, str(tmp_path / "nowhere"))
    assert reference_records.load(HOST, HOST.resolved_target(), keys) is None
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"no reference tuning records for {FAMILY}" in err
    assert reference_records.load(HOST, HOST.resolved_target(), keys, enabled=False) is None
    assert capsys.readouterr().err == ""


def test_a_shipped_folder_gives_the_records_of_the_folder_tuned(reference_root, tmp_path, monkeypatch):
    """Compacted and packed as shipped (selected/ without a workloads file of its own, its records
    numbering the folder's), a folder gives a build the same records, choices first."""
    tasks, _ = mlp_tasks()
    keys = workload_keys(tasks)
    monkeypatch.setenv(reference_records.ENV, str(reference_root))
    tuned = reference_records.load(HOST, HOST.resolved_target(), keys)
    assert tuned.selected is not None
    shipped = tmp_path / "shipped"
    shutil.copytree(reference_root / FAMILY, shipped / FAMILY)
    load_script("tune_reference").compact_folder(shipped / FAMILY, keep=1000)
    assert sorted(p.name for p in (shipped / FAMILY / "selected").iterdir()) == ["database_tuning_record.json.gz"]

    monkeypatch.setenv(reference_records.ENV, str(shipped))
    compacted = reference_records.load(HOST, HOST.resolved_target(), keys)

    assert compacted.keys == tuned.keys
    for task in tasks:
        assert [str(r.trace) for r in compacted.candidates(task.mod)] == \
            [str(r.trace) for r in tuned.candidates(task.mod)]
