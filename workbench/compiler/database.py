"""The per-target tuning database under tuning_logs/<target>/.

One MetaSchedule JSON database per target profile, shared by every model tuned for it: a workload
(a fused kernel at given shapes) tuned once serves every model that contains it. The files are
append-only JSON lines, so a killed run loses at most its last half-written line, which we set
aside (never delete) before MetaSchedule reads the file. sessions.jsonl records each tuning run.
"""

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.console import warn
from workbench.errors import DatabaseError, first_line
from workbench.fingerprint import sha256_file
from workbench.paths import make_directory

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
SESSIONS = "sessions.jsonl"
LOCK = ".lock"

# Target keys that change the code generated; num-cores only changes the parallel split.
_IDENTITY_KEYS = ("kind", "mcpu", "mtriple", "arch")


def _identity(target: dict) -> dict:
    return {k: target.get(k) for k in _IDENTITY_KEYS if target.get(k) is not None}


def _repair_torn_tail(path: Path) -> None:
    """Set aside a last line without its newline that does not parse: a write cut off by a kill."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        json.loads(tail)
        with open(path, "ab") as f:  # a complete record that only lacks its newline
            f.write(b"\n")
        return
    except ValueError:
        pass
    torn = path.with_name(path.name + ".torn")
    with open(torn, "ab") as f:
        f.write(tail + b"\n")
    with open(path, "r+b") as f:
        f.truncate(cut)
    warn(f"{path}: set aside a half-written last line from an interrupted run (kept in {torn.name})")


def _check_lines(path: Path, check) -> list:
    """Every line parsed and checked; a bad one is reported with its line number."""
    values = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
                check(value)
            except (ValueError, TypeError, IndexError, KeyError, AttributeError):  # UnicodeDecodeError is a ValueError
                raise DatabaseError(f"{path}:{lineno} is corrupt (not a tuning database line); "
                                    "move that line out of the file and rerun (the other records are kept)") from None
            values.append(value)
    return values


def trace_key(value) -> str:
    """One spelling of a trace: the file writes its flags as 1/0, TVM's as_json gives True/False."""
    def plain(v):
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return json.dumps(plain(value), separators=(",", ":"), sort_keys=True)


def _check_session(session) -> None:
    if not isinstance(session, dict) or not isinstance(session.get("machine", {}), dict):
        raise ValueError


@dataclass(frozen=True)
class TuningDatabase:
    directory: Path
    target: dict  # the resolved target this database must hold records for

    @property
    def records_path(self) -> Path:
        return self.directory / RECORDS

    @property
    def workloads_path(self) -> Path:
        return self.directory / WORKLOADS

    @property
    def sessions_path(self) -> Path:
        return self.directory / SESSIONS

    def validate(self) -> int:
        """Repair torn tails, refuse corrupt lines and foreign targets; return the record count."""
        self._make_directory()
        for path in (self.workloads_path, self.records_path, self.sessions_path):
            if path.exists():
                _repair_torn_tail(path)
        if self.workloads_path.exists():
            _check_lines(self.workloads_path, lambda w: (str(w[0]), str(w[1])))
        if self.sessions_path.exists():
            self._warn_if_other_machine(_check_lines(self.sessions_path, _check_session))
        if not self.records_path.exists():
            return 0
        want = _identity(self.target)

        def check_record(record):
            workload_index, (trace, run_secs, target, args) = record[0], record[1][:4]
            if not isinstance(workload_index, int) or not isinstance(trace, list) or not isinstance(target, dict):
                raise ValueError
            got = _identity(target)
            if got != want:
                raise DatabaseError(
                    f"{self.directory} holds records tuned for {got}, not for this target {want}; "
                    "point --database at the matching target's directory or tune into a new one")

        return len(_check_lines(self.records_path, check_record))

    @contextmanager
    def exclusive(self):
        """One writer per database: two tuning runs would number their workloads independently, and
        a compile repairing a torn tail could cut a line a tuning run is writing."""
        self._make_directory()
        with open(self.directory / LOCK, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "?"
                raise DatabaseError(f"another workbench process (pid {holder}) is using {self.directory}; "
                                    "wait for it to finish or pass --database to use another directory") from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield

    def _make_directory(self) -> None:
        if self.directory.exists() and not self.directory.is_dir():
            raise DatabaseError(f"tuning database path {self.directory} is a file; pass a directory")
        make_directory(self.directory, "tuning database directory")

    def _warn_if_other_machine(self, sessions: list[dict]) -> None:
        from workbench.fingerprint import fingerprint_id, machine_fingerprint

        here = fingerprint_id(machine_fingerprint())
        others = {str(s.get("machine", {}).get("cpu_model", "?")) for s in sessions if s.get("fingerprint_id") != here}
        if others:
            warn(f"{self.directory} holds records tuned on another machine ({', '.join(sorted(others))}); "
                 "they apply, but timings and the best schedules may differ here")

    def open(self):
        """The MetaSchedule JSONDatabase over these files (call validate first)."""
        from tvm.s_tir import meta_schedule as ms

        try:
            return ms.database.JSONDatabase(work_dir=str(self.directory), module_equality="structural")
        except Exception as exc:
            raise DatabaseError(f"MetaSchedule cannot load the database in {self.directory}: {first_line(exc)}; "
                                "move the directory aside to start afresh") from None

    def digest(self) -> str | None:
        return sha256_file(self.records_path) if self.records_path.exists() else None

    def record_count(self) -> int:
        if not self.records_path.exists():
            return 0
        with open(self.records_path) as f:
            return sum(1 for line in f if line.strip())

    @staticmethod
    def record_key(record) -> tuple[str, str]:
        """A MetaSchedule TuningRecord as the records file names it: its workload's structural hash
        and its trace."""
        return str(record.workload.as_json()[0]), trace_key(record.as_json()[0])

    def replace_run_secs(self, new_times: dict[tuple[str, str], list[float]]) -> int:
        """Give the records named by record_key new measured times; every other line is kept as
        it was. The file is rewritten beside itself and swapped in, so a kill leaves either the old
        file or the new one. Returns how many lines changed."""
        if not new_times or not self.records_path.exists():
            return 0
        with open(self.workloads_path) as f:
            hashes = [str(json.loads(line)[0]) for line in f if line.strip()]
        lines, changed = [], 0
        with open(self.records_path) as f:
            for line in f:
                record = json.loads(line) if line.strip() else None
                secs = record and new_times.get((hashes[record[0]], trace_key(record[1][0])))
                if secs is not None:
                    record[1][1] = secs
                    line = json.dumps(record, separators=(",", ":")) + "\n"
                    changed += 1
                lines.append(line)
        staging = self.records_path.with_name(self.records_path.name + ".new")
        staging.write_text("".join(lines))
        os.replace(staging, self.records_path)
        return changed

    def append_session(self, session: dict) -> None:
        with open(self.sessions_path, "a") as f:
            f.write(json.dumps(session) + "\n")

    def sessions(self) -> list[dict]:
        return _check_lines(self.sessions_path, _check_session) if self.sessions_path.exists() else []
