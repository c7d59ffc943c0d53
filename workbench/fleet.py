"""`workbench fleet`: TVM's own RPC tracker and RPC servers on this machine, for trying the
distributed path and for tests. Real devices join the same way (see the README).

`fleet up` starts a supervisor process that owns a `tvm.exec.rpc_tracker` and N
`tvm.exec.rpc_server` processes bound to loopback, and returns. Its children die with it (Linux
parent-death signal), so `fleet down`, or killing the supervisor, leaves no orphans.
"""

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.engines.rpc import registered, summary
from workbench.errors import WorkbenchError
from workbench.fingerprint import physical_cores
from workbench.paths import project_root
from workbench.serving.process import free_port

_PR_SET_PDEATHSIG = 1


@dataclass
class FleetState:
    supervisor_pid: int
    host: str
    port: int
    key: str
    servers: int
    server_pids: list[int]
    log: str

    @property
    def tracker(self) -> str:
        return f"{self.host}:{self.port}"


def state_path() -> Path:
    return project_root() / ".workbench" / "fleet.json"


def log_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".log")


def read_state() -> FleetState | None:
    path = state_path()
    if not path.exists():
        return None
    state = FleetState(**json.loads(path.read_text()))
    if not _alive(state.supervisor_pid):
        path.unlink(missing_ok=True)  # a supervisor that died took its children with it
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_listening(host: str, port: int, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkbenchError(f"the RPC tracker exited with code {process.returncode} before listening")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise WorkbenchError(f"the RPC tracker did not listen on {host}:{port} within {timeout_s:g} s")


def _tvm_threads() -> int:
    """TVM's thread count for this process; a value that is not a positive integer means TVM's own
    default, as TVM reads it (atoi), which workbench/__init__.py replaces with the physical cores."""
    value = os.environ.get("TVM_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else physical_cores()


def supervise(host: str, port: int, key: str, servers: int, state_file: Path) -> None:
    """The supervisor: tracker, then servers; writes the state with every pid; stops all on SIGTERM."""
    python = sys.executable
    children = [subprocess.Popen([python, "-m", "tvm.exec.rpc_tracker", "--host", host, "--port", str(port),
                                  "--port-end", str(port + 1), "--silent"], preexec_fn=_die_with_parent)]
    _wait_listening(host, port, 30, children[0])
    # The servers share this machine's cores, and MetaSchedule measures on all of them at once:
    # split TVM's threads between them so one server's timing does not steal another's core.
    threads = max(1, _tvm_threads() // servers)
    env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
    for _ in range(servers):
        server_port = free_port(host)
        children.append(subprocess.Popen(
            [python, "-m", "tvm.exec.rpc_server", "--host", host, "--port", str(server_port),
             "--port-end", str(server_port + 1), "--tracker", f"{host}:{port}", "--key", key, "--silent"],
            env=env, preexec_fn=_die_with_parent))

    def stop(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = FleetState(os.getpid(), host, port, key, servers, [c.pid for c in children[1:]],
                       str(log_path(state_file)))
    state_file.write_text(json.dumps(asdict(state)))
    while True:
        signal.pause()


def up(servers: int, key: str, host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 60) -> FleetState:
    if servers < 1 or not key or ":" in key:
        raise WorkbenchError("--servers must be at least 1 and --key a name without ':' (e.g. cpu-local)")
    if (existing := read_state()) is not None:
        raise WorkbenchError(f"a fleet is already up (tracker {existing.tracker}, key '{existing.key}', "
                             f"{existing.servers} servers); run `workbench fleet down` first")
    port = port or free_port(host)
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    log = log_path(path)
    with open(log, "wb") as out:  # the supervisor keeps its own descriptor
        process = subprocess.Popen([sys.executable, "-m", "workbench.fleet", host, str(port), key, str(servers),
                                    str(path)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkbenchError(f"the fleet supervisor exited with code {process.returncode}; log {log}")
        if path.exists():
            try:
                if registered(summary(host, port, timeout_s=2), key) >= servers:
                    return FleetState(**json.loads(path.read_text()))
            except WorkbenchError:
                pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    raise WorkbenchError(f"the fleet did not come up within {timeout_s:g} s; log {log}")


def down() -> FleetState | None:
    state = read_state()
    if state is None:
        return None
    try:
        os.killpg(state.supervisor_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 20
    while _alive(state.supervisor_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(state.supervisor_pid):
        os.killpg(state.supervisor_pid, signal.SIGKILL)
    state_path().unlink(missing_ok=True)
    return state


if __name__ == "__main__":
    supervise(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
