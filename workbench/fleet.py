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


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkbenchError(f"--rpc takes the tracker as host:port, e.g. 127.0.0.1:9190 (got {text!r})")
    return host, int(port)


def profile_with_rpc(profile, rpc: str | None, rpc_key: str | None):
    """The profile measured through a tracker: --rpc/--rpc-key override the profile's [rpc]."""
    import dataclasses

    from workbench.targets import RpcConfig

    if rpc is None and rpc_key is None:
        return profile
    if rpc is None and profile.rpc is None:
        raise WorkbenchError("--rpc-key needs --rpc host:port (or an [rpc] section in the profile)")
    host, port = parse_tracker(rpc) if rpc else (profile.rpc.tracker_host, profile.rpc.tracker_port)
    key = rpc_key or (profile.rpc.key if profile.rpc else None)
    if not key:
        raise WorkbenchError("--rpc needs --rpc-key, the key the devices registered under (e.g. cpu-local)")
    return dataclasses.replace(profile, rpc=RpcConfig(host, port, key))


def summary(host: str, port: int, timeout_s: float = 5) -> dict:
    """The tracker's view: servers by key, and per key how many are free and how many requests wait."""
    from tvm import rpc

    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return rpc.connect_tracker(host, port).summary()
    except (OSError, RuntimeError) as exc:
        raise WorkbenchError(f"cannot reach the RPC tracker at {host}:{port} ({getattr(exc, 'strerror', None) or exc}); "
                             "start one with `workbench fleet up` or python -m tvm.exec.rpc_tracker") from None


def check_wait(timeout_s: float) -> None:
    """--rpc-wait: NaN would never reach the deadline, so a missing device would hang the run."""
    if not 0 <= timeout_s < float("inf"):
        raise WorkbenchError(f"--rpc-wait must be a non-negative number of seconds (got {timeout_s})")


def wait_for_devices(host: str, port: int, key: str, timeout_s: float) -> int:
    """How many devices are registered under key, waiting up to timeout_s for at least one."""
    check_wait(timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        info = summary(host, port)
        count = registered(info, key)
        if count or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if not count:
        known = sorted(info.get("queue_info", {}))
        raise WorkbenchError(f"no device registered under key '{key}' at the tracker {host}:{port} within "
                             f"{timeout_s:g} s (keys there: {', '.join(known) or 'none'}); start one with "
                             f"python -m tvm.exec.rpc_server --tracker={host}:{port} --key={key}")
    return count


def registered(info: dict, key: str) -> int:
    """Servers registered under key, free or busy (the tracker lists each as "server:<key>")."""
    listed = sum(1 for s in info.get("server_info", []) if s.get("key") == f"server:{key}")
    return max(listed, int(info.get("queue_info", {}).get(key, {}).get("free", 0)))


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
