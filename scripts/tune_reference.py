"""Produce the reference tuning records shipped under tuning_logs/reference/<family>/ (issue #30).

    .venv/bin/python scripts/tune_reference.py tune --family x86-64-avx512 [--minutes-per-run N]
                                                    [--only resnet18@1,mlp@8] [--force]
    .venv/bin/python scripts/tune_reference.py compact --family x86-64-avx512   (or: compact <folder>)
    .venv/bin/python scripts/tune_reference.py summary [--family x86-64-avx512]

tune runs `workbench tune --no-reference` once per (model, batch), in the issue's priority order,
for a fixed number of minutes each, into the family's folder (an ordinary tuning database folder),
skips what the folder's sessions.jsonl shows done (a session of that model and batch that was not
interrupted; --force runs it again), and compacts the folder after each run so that each commit
stays small. Before each run it unpacks the shipped .gz files to the plain ones the tuner appends
to (plain files already there are an interrupted run's newer work and are kept). Run it on a quiet
machine and time nothing else while it runs (no benchmark, build or test suite): tuning times every
candidate on this machine's cores, and a busy machine's timings choose the schedules that everyone
then gets. One family per run: the family's profile names the CPU the code is built for, and the
machine must run it (avx512: skylake-avx512, avx2: haswell).

compact rewrites a folder to what is shipped, under the database's lock: each workload's best
KEEP records (ranked as the database's own compaction ranks them), the workloads they belong to
(and those selected/ holds a choice for) renumbered in order, selected/, sessions.jsonl and
lowering.json; the archive, logs/, set-aside torn lines and stale staging folders are deleted.
Kept lines are byte for byte as they were, apart from a record's renumbered workload index.
selected/'s records are renumbered to the folder's workload lines, so selected/ ships its records
only (unpack writes its workloads file back as a copy of the folder's). The database files are then
shipped gzip-compressed, the workloads' base64 TIR compressing ~14x: database_workload.json.gz and
database_tuning_record.json.gz, written deterministically (no time or name in the gzip header; an
unchanged file is not rewritten) so compacting an unchanged folder changes no byte, and the plain
files deleted (.gitignore keeps them out). A folder holding only the .gz files, or both, is unpacked first.

summary prints each family's sessions (model, batch, CPU, date, commit, trials, minutes) and the sizes
of what is shipped (the .gz files and the rest).
"""

import argparse
import fcntl
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

from workbench.compiler.database import (
    ARCHIVE,
    LOCK,
    RECORDS,
    SELECTED,
    WORKLOADS,
    _best_per_workload,
    _check_lines,
    _identity,
    _repair_torn_tail,
    mean_run_secs,
    read_sessions,
)
from workbench.compiler.reference_records import FAMILY_PROFILES
from workbench.errors import WorkbenchError
from workbench.fingerprint import describe_cpu

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tuning_logs" / "reference"
FAMILIES = FAMILY_PROFILES  # family folder: the target profile its records are tuned with
PRIORITY = [("resnet18", 1), ("mobilenetv2", 1), ("bert-mini", 1),
            ("resnet18", 8), ("mobilenetv2", 8), ("bert-mini", 8),
            ("squeezenet1.1", 1), ("mlp", 1), ("squeezenet1.1", 8), ("mlp", 8), ("resnet50", 1), ("resnet50", 8)]
MINUTES = {"resnet18": 40, "mobilenetv2": 40, "bert-mini": 25, "squeezenet1.1": 20, "mlp": 3, "resnet50": 60}
DEFAULT_MINUTES = 20  # a model --only names that the table does not
TRIALS = 100000  # never the limit: each run ends at its minutes
KEEP = 4  # records shipped per workload: a build takes the best, re-timing the best few
STAGING = ".ship.compacting"  # suffix of the files compaction writes before swapping them in
GZ = ".gz"  # the shipped form of WORKLOADS and RECORDS: NAME.gz
GZIP_STAGING = ".gzip.compacting"  # suffix of the files packing and unpacking write before os.replace


# --- what to tune ---------------------------------------------------------------------------------

def parse_runs(text: str) -> list[tuple[str, int]]:
    """"resnet18@1,mlp@8" as [("resnet18", 1), ("mlp", 8)], in the order given."""
    runs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        model, _, batch = item.rpartition("@")
        if not model or not batch.isdigit() or int(batch) < 1:
            raise SystemExit(f"--only: {item!r} is not MODEL@BATCH (e.g. resnet18@1)")
        runs.append((model, int(batch)))
    return runs


def done_runs(sessions: list[dict]) -> set[tuple[str, int]]:
    """The (model, batch) runs a folder holds: sessions of one batch size that were not interrupted."""
    return {(s.get("model"), s["batch_sizes"][0]) for s in sessions
            if not s.get("interrupted") and len(s.get("batch_sizes") or []) == 1}


def runs_left(plan: list[tuple[str, int]], sessions: list[dict], force: bool = False) -> list[tuple[str, int]]:
    """The plan's runs still to do, in the plan's order, each once."""
    done = set() if force else done_runs(sessions)
    left = []
    for run in plan:
        if run not in done and run not in left:
            left.append(run)
    return left


def tune_command(model: str, batch: int, family: str, minutes: float) -> list[str]:
    workbench = Path(sys.executable).parent / "workbench"  # the venv's console script, beside its python
    return [str(workbench), "tune", "--model", model, "--target", FAMILIES[family],
            "--database", str(REFERENCE / family), "--batch-sizes", str(batch), "--trials", str(TRIALS),
            "--minutes", f"{minutes:g}", "--no-reference"]


def _run(command: list[str]) -> int:
    """The tuning run's exit code. Ctrl-C reaches it too and it stops after its current batch,
    keeping everything measured: wait for that instead of killing it (subprocess.run would)."""
    print("+", " ".join(command), flush=True)
    process = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            print("waiting for workbench tune to stop after its current batch", flush=True)


def cmd_tune(args) -> int:
    folder = REFERENCE / args.family
    plan = parse_runs(args.only) if args.only else PRIORITY
    todo = runs_left(plan, read_sessions(folder), args.force)
    for model, batch in (run for run in plan if run not in todo):
        print(f"{model}@{batch}: already in {folder.relative_to(ROOT)}/sessions.jsonl, skipped (--force runs it)")
    for model, batch in todo:
        minutes = args.minutes_per_run or MINUTES.get(model, DEFAULT_MINUTES)
        if folder.is_dir():
            with locked(folder):
                unpack_folder(folder)  # the tuner appends to the plain files
        code = _run(tune_command(model, batch, args.family, minutes))
        kept = compact_folder(folder, KEEP, FAMILIES[args.family]) if folder.is_dir() else 0
        status = "" if code == 0 else f", workbench tune exited {code}"
        print(f"{model}@{batch}: tuned {minutes:g} min{status}; {kept} records kept "
              f"({KEEP} per workload); {folder.relative_to(ROOT)} is {_megabytes(shipped_size(folder))}", flush=True)
        if code != 0:
            return code
    return 0


# --- compaction -----------------------------------------------------------------------------------

@contextmanager
def locked(folder: Path):
    """The lock `workbench tune` and `compile` take on a database (TuningDatabase.exclusive), its
    contents (the holder's pid) left as they are."""
    with open(folder / LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise SystemExit(f"another process (pid {lock.read().strip() or '?'}) is using {folder}; "
                             "wait for it to finish") from None
        yield


def _raw_lines(path: Path) -> list[bytes]:
    """The file's non-blank lines as bytes, each with its newline: as _check_lines numbers them."""
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [raw if raw.endswith(b"\n") else raw + b"\n" for raw in f if raw.strip()]


def _renumber(raw: bytes, index: int) -> bytes:
    """A record line with its workload index (the first number) replaced, nothing else changed."""
    found = re.match(rb"\s*\[\s*(\d+)", raw)
    return raw[:found.start(1)] + str(index).encode() + raw[found.end(1):]


def _read_records(directory: Path, workloads: int) -> list:
    def check(record):
        index, run_secs, target = record[0], record[1][1], record[1][2]
        if not isinstance(index, int) or not 0 <= index < workloads or not isinstance(target, dict):
            raise ValueError
        mean_run_secs(run_secs or [0])

    path = directory / RECORDS
    return _check_lines(path, check) if path.exists() else []


def _check_target(records: list, directory: Path, want: dict | None) -> None:
    """One target's records, the family profile's when given: a shipped folder must not mix them."""
    found = {json.dumps(_identity(r[1][2]), sort_keys=True) for r in records}
    if len(found) > 1:
        raise SystemExit(f"{directory} holds records for several targets ({', '.join(sorted(found))})")
    got = json.loads(found.pop()) if found else {}
    if want is not None and records and any(got.get(k) != v for k, v in want.items()):
        raise SystemExit(f"{directory} holds records for {got}, not for the family's target {want}")


def _stage(path: Path, lines: list[bytes]) -> Path:
    staging = path.with_name(path.name + STAGING)
    with open(staging, "wb") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    return staging


def _roll_forward(directory: Path) -> None:
    """Finish or undo a compaction a kill cut short. Both files are staged, then the workloads are
    swapped in, then the records: a staged records file alone is complete and belongs to the
    workloads now in place; a staged workloads file means nothing was swapped yet."""
    workloads, records = (directory / (name + STAGING) for name in (WORKLOADS, RECORDS))
    if workloads.exists():
        workloads.unlink()
        records.unlink(missing_ok=True)
    elif records.exists():
        os.replace(records, directory / RECORDS)


def compact_database(directory: Path, keep: int, keep_hashes: frozenset = frozenset(),
                     want: dict | None = None) -> tuple[int, list[str]]:
    """Rewrite one MetaSchedule JSON database to each workload's `keep` best records and the
    workloads that have one (or whose hash is in keep_hashes). Returns (records kept, the kept
    workloads' hashes)."""
    _roll_forward(directory)
    paths = {name: directory / name for name in (WORKLOADS, RECORDS)}
    for path in paths.values():
        if path.exists():
            _repair_torn_tail(path)
    hashes = [str(w[0]) for w in _check_lines(paths[WORKLOADS], lambda w: (str(w[0]), str(w[1])))] \
        if paths[WORKLOADS].exists() else []
    records = _read_records(directory, len(hashes))
    _check_target(records, directory, want)
    kept = sorted(_best_per_workload(records, keep))
    used = {records[line][0] for line in kept}
    workloads = [w for w, h in enumerate(hashes) if w in used or h in keep_hashes]
    if len(kept) == len(records) and len(workloads) == len(hashes):
        return len(kept), hashes  # nothing to drop: the files stay as they are
    new_index = {old: new for new, old in enumerate(workloads)}
    workload_lines, record_lines = _raw_lines(paths[WORKLOADS]), _raw_lines(paths[RECORDS])
    _swap(directory, [workload_lines[w] for w in workloads],
          [_renumber(record_lines[line], new_index[records[line][0]]) for line in kept])
    return len(kept), [hashes[w] for w in workloads]


def _swap(directory: Path, workload_lines: list[bytes], record_lines: list[bytes]) -> None:
    """Replace a database's two files: both staged, then the workloads swapped in, then the records
    (the order _roll_forward relies on)."""
    staged_workloads = _stage(directory / WORKLOADS, workload_lines)
    staged_records = _stage(directory / RECORDS, record_lines)
    os.replace(staged_workloads, directory / WORKLOADS)
    os.replace(staged_records, directory / RECORDS)


def share_workloads(folder: Path) -> None:
    """Renumber selected/'s records to the folder's own workload lines and make selected/'s workloads
    file a copy of the folder's, which pack then leaves out and unpack writes back: the same TIR was
    shipped twice, half of a family's size. compact_database keeps every workload selected/ holds a
    choice for; one whose line is not byte for byte in the folder leaves selected/ as it is."""
    chosen = folder / SELECTED
    if not (chosen / RECORDS).exists():
        return
    _roll_forward(chosen)
    own = _raw_lines(folder / WORKLOADS)
    position = {line: i for i, line in enumerate(own)}
    theirs = _raw_lines(chosen / WORKLOADS)
    if any(line not in position for line in theirs):
        return
    lines = _raw_lines(chosen / RECORDS)
    renumbered = [_renumber(line, position[theirs[record[0]]])
                  for line, record in zip(lines, _read_records(chosen, len(theirs)))]
    if renumbered != lines or theirs != own:
        _swap(chosen, own, renumbered)


def _remove_leftovers(folder: Path) -> None:
    """What is not shipped: the archive, MetaSchedule's logs, torn lines set aside, a staging file
    or overlay that a killed run left (the lock is held: nothing is writing them)."""
    for directory in (folder / "logs", folder / (SELECTED + ".new"), folder / (SELECTED + ".old")):
        shutil.rmtree(directory, ignore_errors=True)
    for directory in (folder, folder / SELECTED):
        for path in [directory / ARCHIVE, *directory.glob("*.torn"), *directory.glob("*.compacting")]:
            path.unlink(missing_ok=True)


def compact_folder(folder: Path, keep: int = KEEP, profile: str | None = None) -> int:
    """Rewrite a tuning database folder to what is shipped (module docstring); the records kept."""
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a tuning database folder")
    want = _profile_identity(profile) if profile else None
    with locked(folder):
        unpack_folder(folder)
        chosen = folder / SELECTED
        selected = compact_database(chosen, keep, want=want)[1] if chosen.is_dir() else []
        kept, _ = compact_database(folder, keep, frozenset(selected), want)
        share_workloads(folder)
        _remove_leftovers(folder)
        pack_folder(folder)
    return kept


# --- the shipped form: gzip ----------------------------------------------------------------------

def gzip_bytes(data: bytes) -> bytes:
    """data gzip-compressed, the same bytes every time: no modification time, no file name."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    """path holding data, or (killed part way) as it was: a temp file, then os.replace."""
    staging = path.with_name(path.name + GZIP_STAGING)
    with open(staging, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, path)


def _unpacked(packed: Path) -> bytes:
    try:
        return gzip.decompress(packed.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise SystemExit(f"{packed}: not a readable gzip file ({exc})") from None


def pack(directory: Path, shared: Path | None = None) -> None:
    """Replace the directory's plain WORKLOADS and RECORDS by NAME.gz. Every .gz file is in place
    before a plain file is deleted, so a kill leaves plain files that unpack keeps; a .gz that
    already holds the plain file's bytes is left as it is (no change for git, whatever zlib).
    A WORKLOADS file holding what `shared` holds (selected/'s copy of the folder's) is not shipped:
    it and any .gz of it are deleted once the records' .gz is in place."""
    workloads = directory / WORKLOADS
    copy = shared is not None and shared.exists() and workloads.exists() and workloads.read_bytes() == \
        shared.read_bytes()
    plain = [directory / name for name in (WORKLOADS, RECORDS) if (directory / name).exists()]
    for path in plain:
        packed = path.with_name(path.name + GZ)
        if path == workloads and copy:
            continue
        data = path.read_bytes()
        if not packed.exists() or _unpacked(packed) != data:
            _write_atomically(packed, gzip_bytes(data))
    if copy:
        workloads.with_name(WORKLOADS + GZ).unlink(missing_ok=True)
    for path in plain:
        path.unlink()


def unpack(directory: Path, shared: Path | None = None) -> None:
    """Write the directory's plain WORKLOADS and RECORDS from NAME.gz. A plain file already there
    is kept: newer than its .gz it is a run's work not yet packed (an interrupted run), or a kill
    between pack's writes left it, holding what the .gz holds. One older than its .gz that differs
    from it (a stale file from before a pull of new records, say) is refused: which one is wanted
    is not ours to guess. Records shipped without their WORKLOADS number `shared`'s lines (see
    pack): the plain WORKLOADS is written as a copy of it, unless the plain records are a run's work."""
    records, packed_records = directory / RECORDS, directory / (RECORDS + GZ)
    run_work = records.exists() and (not packed_records.exists() or records.read_bytes() != _unpacked(packed_records))
    for name in (WORKLOADS, RECORDS):
        path, packed = directory / name, directory / (name + GZ)
        if not packed.exists():
            continue
        if not path.exists():
            _write_atomically(path, _unpacked(packed))
        elif path.stat().st_mtime_ns < packed.stat().st_mtime_ns and path.read_bytes() != _unpacked(packed):
            raise SystemExit(f"{path} is older than {packed.name} and differs from it: delete the plain file "
                             f"to use {packed.name} (the shipped records), or {packed.name} to keep the plain "
                             "file's records (an interrupted run's)")
    workloads = directory / WORKLOADS
    if shared is not None and shared.exists() and not workloads.with_name(WORKLOADS + GZ).exists() \
            and records.exists() and not (run_work and workloads.exists()):
        _write_atomically(workloads, shared.read_bytes())


def unpack_folder(folder: Path) -> None:
    unpack(folder)
    if (folder / SELECTED).is_dir():
        unpack(folder / SELECTED, shared=folder / WORKLOADS)


def pack_folder(folder: Path) -> None:
    if (folder / SELECTED).is_dir():
        pack(folder / SELECTED, shared=folder / WORKLOADS)
    pack(folder)


def _profile_identity(profile: str) -> dict:
    from workbench.targets import get_profile

    return {k: v for k, v in _identity(get_profile(profile).target).items() if v != "auto"}


# --- summary --------------------------------------------------------------------------------------

def shipped(path: Path, folder: Path) -> bool:
    """Whether .gitignore lets a file of a family folder into the repository (the database files as
    .gz only)."""
    parts = path.relative_to(folder).parts
    if parts[0] in ("logs", SELECTED + ".new", SELECTED + ".old"):
        return False
    return not (path.name in (LOCK, WORKLOADS, RECORDS)
                or path.name.endswith((".archive.json", ".torn", ".compacting")))


def shipped_size(folder: Path) -> int:
    packed, rest, _unpacked = shipped_sizes(folder)
    return packed + rest


def shipped_sizes(folder: Path) -> tuple[int, int, int]:
    """(the .gz database files, the rest shipped, plain database files not packed yet) in bytes."""
    packed = rest = unpacked = 0
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    for path in files:
        size = path.stat().st_size
        if path.name in (WORKLOADS + GZ, RECORDS + GZ) and shipped(path, folder):
            packed += size
        elif path.name in (WORKLOADS, RECORDS) and path.parent in (folder, folder / SELECTED):
            unpacked += size
        elif shipped(path, folder):
            rest += size
    return packed, rest, unpacked


def describe_sizes(folder: Path) -> str:
    packed, rest, unpacked = shipped_sizes(folder)
    text = (f"{_megabytes(packed + rest)} shipped ({_megabytes(packed)} gzip-compressed records, "
            f"{_megabytes(rest)} the rest)")
    if unpacked:
        text += f"; {_megabytes(unpacked)} of plain records not packed yet (compact packs them)"
    return text


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def summary_rows(sessions: list[dict]) -> list[list[str]]:
    rows = []
    for s in sessions:
        machine = s.get("machine") or {}
        rows.append([s.get("model", "?"), ",".join(map(str, s.get("batch_sizes") or [])), describe_cpu(machine),
                     str(machine.get("physical_cores", "?")), str(s.get("started") or "?")[:10],
                     str(s.get("git_commit") or "?")[:10], str(s.get("trials", "?")),
                     f"{float(s.get('seconds') or 0) / 60:.1f}", "interrupted" if s.get("interrupted") else ""])
    return rows


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_summary(args) -> int:
    families = [args.family] if args.family else sorted(p.name for p in REFERENCE.glob("*") if p.is_dir())
    for family in families:
        folder = REFERENCE / family
        print(f"{family} (profile {FAMILIES.get(family, '?')}): {describe_sizes(folder)}")
        _print_table(["model", "batch", "CPU", "cores", "date", "commit", "trials", "minutes", ""],
                     summary_rows(read_sessions(folder)))
        print()
    total = sum(shipped_size(REFERENCE / f) for f in (p.name for p in REFERENCE.glob("*") if p.is_dir()))
    print(f"tuning_logs/reference in all: {_megabytes(total)} (the goal is about 5 MB)")
    return 0


def cmd_compact(args) -> int:
    if bool(args.family) == bool(args.folder):
        raise SystemExit("compact: name one folder, as --family F or as a path")
    folder = REFERENCE / args.family if args.family else Path(args.folder)
    kept = compact_folder(folder, args.keep, FAMILIES[args.family] if args.family else None)
    print(f"{folder}: {kept} records kept ({args.keep} per workload), {describe_sizes(folder)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser("tune", help="tune the family's reference records, model by model")
    tune.add_argument("--family", required=True, choices=FAMILIES)
    tune.add_argument("--minutes-per-run", type=float, help=f"minutes per (model, batch) (default: {MINUTES})")
    tune.add_argument("--only", help="these runs, in this order: MODEL@BATCH,... (default: the priority order)")
    tune.add_argument("--force", action="store_true", help="run again what sessions.jsonl shows done")
    compact = commands.add_parser("compact", help="rewrite a folder to what is shipped")
    compact.add_argument("folder", nargs="?")
    compact.add_argument("--family", choices=FAMILIES)
    compact.add_argument("--keep", type=int, default=KEEP, help=f"records per workload (default {KEEP})")
    summary = commands.add_parser("summary", help="what each family holds, and the sizes")
    summary.add_argument("--family", choices=FAMILIES)
    args = parser.parse_args(argv)
    try:
        return {"tune": cmd_tune, "compact": cmd_compact, "summary": cmd_summary}[args.command](args)
    except WorkbenchError as exc:  # a corrupt line, an unknown profile: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
