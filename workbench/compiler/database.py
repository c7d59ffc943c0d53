"""The per-target tuning database under tuning_logs/<target>/.

One MetaSchedule JSON database per target profile, shared by every model tuned for it: a workload
(a fused kernel at given shapes) tuned once serves every model that contains it. The files are
append-only JSON lines, so a killed run loses at most its last half-written line, which we set
aside (never delete) before MetaSchedule reads the file. sessions.jsonl records each tuning run.
selected/ is a second, small database: per workload, the record chosen by re-timing the best few
side by side as the model runs them (compiler/retime.py); builds look there first.

MetaSchedule parses every record of the file when it opens it (traces, index maps, structural
hashes), which grows with the history (minutes at tens of thousands of records: docs/BENCHMARKS.md,
"Tuning throughput"). But tuning and builds only ever read each workload's best few, so validate()
moves all but each workload's best KEEP_PER_WORKLOAD to the archive file beside it (appended, never
rewritten: the history is kept) and rewrites the file with the rest. Per workload, not per file:
in a database shared by several models, one model's new records must not wait for the others'
workloads to fill up (a whole-file threshold left a shared database slow to open).
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
ARCHIVE = "database_tuning_record.archive.json"  # records compaction moved out of RECORDS
SESSIONS = "sessions.jsonl"
SELECTED = "selected"  # the overlay of records chosen by re-timing (compiler/retime.py)
LOCK = ".lock"
# Records kept per workload by compaction: more than anything reads. The evolutionary search seeds
# each round with the best population x init_measured_ratio (256 x 0.2 = 51, compiler/measure.py);
# re-timing takes the best 8 (compiler/retime.py); a build, the best one.
KEEP_PER_WORKLOAD = 64

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


def _best_per_workload(records: list, keep: int) -> set[int]:
    """The line numbers (0-based) of each workload's `keep` fastest records, as MetaSchedule ranks
    them (mean time; a record without a valid time last), earlier lines first among equals."""
    by_workload: dict[int, list[tuple[float, int]]] = {}
    for line, record in enumerate(records):
        run_secs = record[1][1]
        seconds = mean_run_secs(run_secs) if run_secs else float("inf")
        by_workload.setdefault(record[0], []).append((seconds, line))
    return {line for ranked in by_workload.values() for _, line in sorted(ranked)[:keep]}


def _fsync_write(path: Path, lines: list[bytes], mode: str) -> None:
    with open(path, mode) as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def mean_run_secs(run_secs) -> float:
    """A record's time as MetaSchedule ranks it: the mean of its timings."""
    secs = [float(s) for s in run_secs]
    return sum(secs) / len(secs)


def _check_session(session) -> None:
    if not isinstance(session, dict) or not isinstance(session.get("machine", {}), dict):
        raise ValueError


@dataclass(frozen=True)
class TuningDatabase:
    directory: Path
    target: dict  # the resolved target this database must hold records for
    keep_per_workload: int = KEEP_PER_WORKLOAD

    @property
    def records_path(self) -> Path:
        return self.directory / RECORDS

    @property
    def workloads_path(self) -> Path:
        return self.directory / WORKLOADS

    @property
    def archive_path(self) -> Path:
        return self.directory / ARCHIVE

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
            return _count_lines(self.archive_path)
        want = _identity(self.target)

        def check_record(record):
            # four fields (trace, times, target, argument info), as MetaSchedule reads them; the last is not checked
            workload_index, (trace, run_secs, target, _args_info) = record[0], record[1][:4]
            if not isinstance(workload_index, int) or not isinstance(trace, list) or not isinstance(target, dict):
                raise ValueError
            mean_run_secs(run_secs or [0])  # compaction ranks by it: a time that is not a number is corrupt
            got = _identity(target)
            if got != want:
                raise DatabaseError(
                    f"{self.directory} holds records tuned for {got}, not for this target {want}; "
                    "point --database at the matching target's directory or tune into a new one")

        in_file = self._compact(_check_lines(self.records_path, check_record), self.keep_per_workload)
        return in_file + _count_lines(self.archive_path)

    def _compact(self, records: list, keep: int) -> int:
        """Move all but each workload's `keep` best records to the archive (module docstring). The
        archive is appended first: a kill before the rewrite leaves some records in both files
        (counted twice, never lost). Returns how many records the file holds."""
        kept = _best_per_workload(records, keep)
        if len(kept) == len(records):  # no workload over `keep`: the file stays as it is
            return len(records)
        with open(self.records_path, "rb") as f:
            lines = [raw if raw.endswith(b"\n") else raw + b"\n" for raw in f if raw.strip()]
        _fsync_write(self.archive_path, [raw for i, raw in enumerate(lines) if i not in kept], "ab")
        staging = self.records_path.with_name(RECORDS + ".compacting")
        _fsync_write(staging, [raw for i, raw in enumerate(lines) if i in kept], "wb")
        os.replace(staging, self.records_path)
        return len(kept)

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
        from workbench import fingerprint

        here = fingerprint.here()
        judged = [(s, *fingerprint.same_machine(s, here)) for s in sessions]
        others = {fingerprint.describe_cpu(s.get("machine", {})) for s, same, _ in judged if not same}
        if others:
            warn(f"{self.directory} holds records tuned on another machine ({', '.join(sorted(others))}); "
                 "they apply, but timings and the best schedules may differ here")
        older = sum(same and by_older for _, same, by_older in judged)
        if older:
            warn(f"{self.directory}: the fingerprint of {older} tuning session(s) is {fingerprint.OLDER_KIND_NOTE}; "
                 f"they match this machine's name, flags and cores, but may come from another generation of "
                 f"{here['machine']['cpu_model']}")

    def open(self):
        """The MetaSchedule JSONDatabase over these files (call validate first)."""
        from tvm.s_tir import meta_schedule as ms

        try:
            return ms.database.JSONDatabase(work_dir=str(self.directory), module_equality="structural")
        except Exception as exc:
            raise DatabaseError(f"MetaSchedule cannot load the database in {self.directory}: {first_line(exc)}; "
                                "move the directory aside to start afresh") from None

    def digest(self) -> str | None:
        """Of what a build reads: tuning's records and the overlay's choices."""
        if not self.records_path.exists():
            return None
        selected = self.selected_dir / RECORDS
        return sha256_file(self.records_path) + (f"+{sha256_file(selected)}" if selected.exists() else "")

    def record_count(self) -> int:
        """Every record tuning wrote here, the archived ones included."""
        return _count_lines(self.records_path) + _count_lines(self.archive_path)

    @staticmethod
    def record_key(record) -> tuple[str, str]:
        """What tells two MetaSchedule records apart: their workload and their trace.

        The trace as printed, decisions included: a prepacked schedule's trace holds an IndexMap,
        which MetaSchedule's own JSON conversion cannot write."""
        return TuningDatabase.workload_key(record.workload), str(record.trace)

    @staticmethod
    def workload_key(workload) -> str:
        return str(workload.as_json()[0])

    @property
    def selected_dir(self) -> Path:
        return self.directory / SELECTED

    def _open_selected(self):
        from tvm.s_tir import meta_schedule as ms

        if not (self.selected_dir / RECORDS).exists():
            return None
        return ms.database.JSONDatabase(work_dir=str(self.selected_dir), module_equality="structural")

    def selected_records(self) -> dict:
        """The overlay's record per workload (compiler/retime.py chooses them)."""
        overlay = self._open_selected()
        return {self.workload_key(r.workload): r for r in overlay.get_all_tuning_records()} if overlay else {}

    def selected_count(self) -> int:
        return _count_lines(self.selected_dir / RECORDS)

    def write_selected(self, chosen: dict) -> None:
        """Make the overlay hold exactly {workload key: (record, seconds)}. Written whole beside the
        old overlay and swapped in: a kill leaves the old one or none (then builds take tuning's
        bests), never a half-written one."""
        import shutil

        from tvm.s_tir import meta_schedule as ms

        staging, old = self.directory / (SELECTED + ".new"), self.directory / (SELECTED + ".old")
        for path in (staging, old):
            shutil.rmtree(path, ignore_errors=True)
        staging.mkdir()
        overlay = ms.database.JSONDatabase(work_dir=str(staging), module_equality="structural")
        for record, seconds in chosen.values():
            workload = overlay.commit_workload(record.workload.mod)
            overlay.commit_tuning_record(ms.database.TuningRecord(record.trace, workload, [seconds], record.target,
                                                                   record.args_info))
        del overlay  # each commit is already a line on disk; this only lets go of the object
        if self.selected_dir.exists():
            self.selected_dir.rename(old)
        staging.rename(self.selected_dir)
        shutil.rmtree(old, ignore_errors=True)

    def open_for_build(self, main=None, reference=None):
        """What a build schedules from: the overlay's choice where it has one (timed side by side on
        this machine), else the `reference` records' (compiler/reference_records.py), else tuning's
        best (`main`, the database from open(), when the caller has it already). A local record
        never timed against the reference one does not shadow it."""
        from tvm.s_tir import meta_schedule as ms

        main = main or self.open()
        chain = [db for db in (self._open_selected(), reference, main) if db is not None]
        return ms.database.OrderedUnionDatabase(*chain) if len(chain) > 1 else main

    def append_session(self, session: dict) -> None:
        with open(self.sessions_path, "a") as f:
            f.write(json.dumps(session) + "\n")

    def sessions(self) -> list[dict]:
        return read_sessions(self.directory)


def read_sessions(directory: Path) -> list[dict]:
    """The tuning sessions recorded in a database folder: needs neither TVM nor the resolved target,
    so bench and report read them without loading the compiler."""
    path = directory / SESSIONS
    return _check_lines(path, _check_session) if path.exists() else []
