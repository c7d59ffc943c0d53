"""Questions to a TVM RPC tracker: which devices are registered under a key, waiting for one."""

import socket
import time

from workbench.errors import WorkbenchError


def summary(host: str, port: int, timeout_s: float = 5) -> dict:
    """The tracker's view: servers by key, and per key how many are free and how many requests wait."""
    from tvm import rpc

    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return rpc.connect_tracker(host, port).summary()
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise WorkbenchError(f"cannot reach the RPC tracker at {host}:{port} ({reason}); "
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
