"""Distributed tuning for real: TVM's tracker and two RPC servers on loopback, a server killed
mid-run, and the clear lines for an unreachable tracker and a key with no devices."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, records_in, workbench_cli
from workbench.fingerprint import physical_cores

pytestmark = [pytest.mark.build, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_tune_through_two_servers_survives_one_dying(project):
    up = workbench_cli("fleet", "up", "--servers", "2", "--key", "cpu-test", home=project)
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((project / ".workbench" / "fleet.json").read_text())
    tracker = f"{state['host']}:{state['port']}"
    try:
        status = workbench_cli("fleet", "status", home=project)
        assert status.returncode == 0 and "cpu-test" in status.stdout and "│ 2 " in status.stdout, status.stdout
        split = f"TVM_NUM_THREADS={max(1, physical_cores() // 2)}".encode()  # two servers share the cores
        assert all(split in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") for pid in state["server_pids"])
        database = project / "tuning_logs" / "host"
        exe = str(Path(sys.executable).parent / "workbench")
        tune = subprocess.Popen([exe, "tune", "--model", "mlp", "--target", "host", "--trials", "36",
                                 "--batch-sizes", "1,8", "--rpc", tracker, "--rpc-key", "cpu-test"],
                                env={**os.environ, "WORKBENCH_HOME": str(project), "COLUMNS": "200"},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 300
        while records_in(database) < 6 and tune.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tune.poll() is None, "tuning ended before a server could be killed: " + tune.stdout.read()
        os.kill(state["server_pids"][0], signal.SIGKILL)  # mid-run: its in-flight trials are lost
        output, _ = tune.communicate(timeout=600)
        assert tune.returncode == 0, output
        assert "Trials:" in output and records_in(database) >= 12, output
        from workbench.compiler.database import TuningDatabase
        from workbench.targets import get_profile

        db = TuningDatabase(database, get_profile("host").resolved_target())
        assert db.validate() == records_in(database) and len(db.open().get_all_tuning_records()) > 0
        session = db.sessions()[-1]
        assert session["measured_on"] == {"rpc_tracker": tracker, "rpc_key": "cpu-test", "devices": 2}

        bench = workbench_cli("bench", "--model", "mlp", "--target", "host", "--batch-sizes", "1", "--rpc", tracker,
                              "--rpc-key", "cpu-test", "--json", home=project)
        assert bench.returncode == 0, bench.stdout + bench.stderr
        rows = json.loads(bench.stdout)["results"]
        assert {(r["engine"], r["scenario"]) for r in rows} == {("tvm", "latency"), ("tvm", "offline")}
        assert all(r["correct"] and r["p50_ms"] > 0 for r in rows)
        records = Path(json.loads(bench.stdout)["run_dir"]) / "records"
        record = json.loads(next(records.glob("tvm__latency*")).read_text())
        assert record["settings"]["measured_on"]["rpc_key"] == "cpu-test"
        assert "time_evaluator" in record["settings"]["timer"]
    finally:
        down = workbench_cli("fleet", "down", home=project)
    assert down.returncode == 0 and "stopped" in down.stdout
    for pid in (state["supervisor_pid"], *state["server_pids"]):
        assert not _alive(pid), f"process {pid} outlived fleet down"


def test_unreachable_tracker_and_unknown_key_get_one_line(project):
    from workbench.serving.process import free_port

    port = free_port()
    result = workbench_cli("tune", "--model", "mlp", "--target", "host", "--trials", "3",
                           "--rpc", f"127.0.0.1:{port}", "--rpc-key", "cpu-test", home=project)
    assert_one_line_error(result.returncode, result.stdout + result.stderr,
                          f"cannot reach the RPC tracker at 127.0.0.1:{port}")

    up = workbench_cli("fleet", "up", "--servers", "1", "--key", "cpu-test", home=project)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        tracker = "127.0.0.1:" + str(json.loads((project / ".workbench" / "fleet.json").read_text())["port"])
        result = workbench_cli("tune", "--model", "mlp", "--target", "host", "--trials", "3", "--rpc", tracker,
                               "--rpc-key", "no-such-board", "--rpc-wait", "1", home=project)
        assert_one_line_error(result.returncode, result.stdout + result.stderr,
                              "no device registered under key 'no-such-board'", "cpu-test")
        again = workbench_cli("fleet", "up", home=project)
        assert_one_line_error(again.returncode, again.stdout + again.stderr, "a fleet is already up")
    finally:
        workbench_cli("fleet", "down", home=project)
    for args, fragment in ((["tune", "--model", "mlp", "--target", "host", "--rpc", "nohost"], "host:port"),
                           (["tune", "--model", "mlp", "--target", "host", "--rpc-key", "k"], "--rpc-key needs --rpc"),
                           (["bench", "--model", "mlp", "--rpc", "127.0.0.1:1", "--rpc-key", "k", "--engines",
                             "onnxruntime"], "pass --engines tvm"),
                           (["fleet", "status"], "no fleet is up here")):
        result = workbench_cli(*args, home=project)
        assert_one_line_error(result.returncode, result.stdout + result.stderr, fragment)
