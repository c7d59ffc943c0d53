"""The machine fingerprint: CPU generations that share a marketing name get different ids, and
records and tuning sessions from before (the older kind) still load and compare, with a note."""

import json
import os
import subprocess
import sys
from pathlib import Path

from workbench import fingerprint
from workbench.fingerprint import fingerprint_id, older_fingerprint_id, same_machine

FLAGS = ["avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512bw", "avx512f", "avx512vl", "fma", "sse4_2"]
# The machine of issue 27 as a record made before the change holds it; its id is the one reported there.
OLDER = {"cpu_model": "AMD EPYC", "cpu_flags": FLAGS, "physical_cores": 2, "logical_cores": 2,
         "machine": "x86_64", "os": "Linux", "gpus": []}
ZEN5 = {**OLDER, "cpu_id": {"vendor": "AuthenticAMD", "family": "26", "model": "2", "stepping": "1"},
        "llvm_cpu": None}
ZEN4 = {**ZEN5, "cpu_id": {"vendor": "AuthenticAMD", "family": "25", "model": "17", "stepping": "1"}}


def block(machine: dict, kind: int | None = fingerprint.FINGERPRINT_KIND) -> dict:
    """A provenance block as records and sessions hold it; kind None: written before kinds existed."""
    return {"machine": machine, "fingerprint_id": fingerprint_id(machine),
            **({"fingerprint_kind": kind} if kind else {})}


def test_cpu_generations_sharing_a_name_get_different_ids():
    assert older_fingerprint_id(ZEN4) == older_fingerprint_id(ZEN5) == "feaad033cc24"
    assert fingerprint_id(ZEN4) != fingerprint_id(ZEN5)
    assert same_machine(block(ZEN4), block(ZEN5)) == (False, False)
    assert same_machine(block(ZEN5), block(dict(ZEN5))) == (True, False)
    # the id does not depend on whether TVM was loaded when it was made
    assert fingerprint_id({**ZEN5, "llvm_cpu": "znver5"}) == fingerprint_id(ZEN5)


def test_this_machine_records_its_cpu_identity():
    here = fingerprint.here()
    assert here["fingerprint_kind"] == 2 and "cpu_id" in here["machine"] and "llvm_cpu" in here["machine"]
    if Path("/proc/cpuinfo").exists() and "cpu family" in Path("/proc/cpuinfo").read_text():
        assert {"family", "model", "stepping"} <= set(here["machine"]["cpu_id"])
    assert same_machine(here, fingerprint.provenance()) == (True, False)


def test_an_older_kind_block_matches_by_the_older_id_and_says_so():
    older = block(OLDER, kind=None)
    assert older["fingerprint_id"] == "feaad033cc24" and fingerprint.fingerprint_kind(older) == 1
    assert same_machine(older, block(ZEN5)) == (True, True)  # same name, flags, cores: maybe another generation
    assert same_machine(block(ZEN4), older) == (True, True)
    assert same_machine(older, block({**ZEN5, "physical_cores": 8})) == (False, True)
    assert same_machine({}, block(ZEN5)) == (False, True)  # a session with no fingerprint at all


def test_describe_cpu_tells_generations_apart():
    assert fingerprint.describe_cpu({**ZEN4, "llvm_cpu": "znver4"}) == \
        "AMD EPYC (family 25, model 17, stepping 1; LLVM znver4)"
    assert fingerprint.describe_cpu(OLDER) == "AMD EPYC"


def _write_run(directory: Path, machine: dict, kind: int | None) -> Path:
    from workbench import records

    record = {"run_id": directory.name, "model": {"name": "mlp", "sha256": "0" * 64}, "target": "host",
              "command": "workbench bench", "provenance": {**block(machine, kind), "versions": {"onnx": "1"},
                                                           "git_commit": None},
              "engine": "onnxruntime", "scenario": {"kind": "latency", "batch": 1}, "settings": {},
              "correctness": None, "result": {"latency_ms": {"p50_ms": 1.0}, "raw_latency_us": [1000, 1100]},
              "status": "ok", "note": None}
    records.write_record(directory, record)
    return directory


def test_an_older_run_still_loads_and_comparing_it_notes_the_older_kind(tmp_path):
    from workbench.report.compare import compare
    from workbench.report.page import environment
    from workbench.report.run import load_run

    older = load_run(_write_run(tmp_path / "run-older", OLDER, kind=None))
    newer = load_run(_write_run(tmp_path / "run-newer", ZEN5, kind=2))
    html = compare([older], [newer])
    assert "different machines" not in html
    assert "The fingerprint of run A (run-older) is the older kind" in html
    assert "cannot tell apart CPU generations that share a name" in html
    assert "older kind" in environment(older) and "older kind" not in environment(newer)
    assert "family 26, model 2" in environment(newer)
    zen4 = load_run(_write_run(tmp_path / "run-zen4", ZEN4, kind=2))
    html = compare([zen4], [newer])
    assert "different machines" in html and "family 25, model 17" in html and "older kind" not in html


def test_an_older_tuning_session_still_loads_with_a_note(tmp_path, monkeypatch):
    from workbench.compiler import database

    warnings = []
    monkeypatch.setattr(database, "warn", warnings.append)
    db = database.TuningDatabase(tmp_path / "db", {"kind": "llvm", "mcpu": "znver5", "num-cores": 2})
    db.directory.mkdir()
    here = fingerprint.machine_fingerprint()
    older_here = {"machine": {k: v for k, v in here.items() if k not in ("cpu_id", "llvm_cpu")},
                  "fingerprint_id": older_fingerprint_id(here), "trials": 8}
    db.sessions_path.write_text(json.dumps(older_here) + "\n")
    db.validate()
    assert len(warnings) == 1 and "1 tuning session(s) is the older kind" in warnings[0]
    warnings.clear()
    db.sessions_path.write_text(json.dumps({**fingerprint.here(), "trials": 8}) + "\n")
    db.validate()
    assert warnings == []
    db.sessions_path.write_text(json.dumps(block({**ZEN4, "cpu_model": "Other CPU"})) + "\n")
    db.validate()
    assert len(warnings) == 1 and "tuned on another machine (Other CPU (family 25, model 17" in warnings[0]


def test_bench_report_and_targets_fingerprint_without_importing_tvm():
    code = ("import sys, workbench.cli, workbench.bench, workbench.report.write, workbench.report.compare\n"
            "from workbench import fingerprint, targets\n"
            "p = fingerprint.provenance(); [t.runs_here() for t in map(targets.load_profile, "
            "targets.profile_paths().values())]\n"
            "assert 'tvm' not in sys.modules, 'tvm imported'\n"
            "assert p['machine']['llvm_cpu'] is None\n"
            "from workbench.compiler.hostinfo import llvm_host_cpu\n"
            "llvm_host_cpu()  # the first TVM use; from here on the fingerprint names LLVM's CPU\n"
            "q = fingerprint.provenance()\n"
            "assert q['machine']['llvm_cpu'] == llvm_host_cpu() and q['fingerprint_id'] == p['fingerprint_id']\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                          env={**os.environ, "WORKBENCH_HOME": str(root)})
    assert done.returncode == 0, done.stderr
