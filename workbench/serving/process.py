"""Start a server as a child process on a free loopback port, wait until it answers, always stop it.

A server that exits or never becomes ready is reported with the engine's name and the last lines
of its log. The child gets its own process group, so stopping it (SIGTERM, then SIGKILL) also
stops anything it started; an atexit hook covers paths that never reach `stop`.
"""

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from workbench.errors import WorkbenchError

READY_PATH = "/v2/health/ready"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class ServerProcess:
    def __init__(self, label: str, argv: list[str], port: int, log_path: Path, host: str = "127.0.0.1",
                 cwd: Path | None = None, env: dict | None = None):
        self.label, self.argv, self.port, self.host, self.log_path = label, argv, port, host, log_path
        self.cwd, self.env = cwd, env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 180) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            cwd=self.cwd, env=self.env)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise WorkbenchError(f"{self.label} server exited with code {code} before it was ready; "
                                     f"log {self.log_path}: {log_tail(self.log_path)}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise WorkbenchError(f"{self.label} server was not ready after {timeout_s:.0f} s; log {self.log_path}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + READY_PATH, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_mb(self) -> float | None:
        """Resident memory of the server and its worker processes, in MiB."""
        return self._summed(lambda p: p.memory_info().rss / (1 << 20))

    def cpu_seconds(self) -> float | None:
        """CPU time (user and system) the server and its worker processes have used so far."""
        return self._summed(lambda p: sum(p.cpu_times()[:2]))

    def _summed(self, measure) -> float | None:
        import psutil

        if not self.alive():
            return None
        try:
            root = psutil.Process(self.process.pid)
            return sum(measure(p) for p in (root, *root.children(recursive=True)))
        except psutil.Error:
            return None

    def stop(self, grace_s: float = 10) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        atexit.unregister(self.stop)
        return self.process.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
