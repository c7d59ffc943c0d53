"""Reference tuning records: shipped per CPU family, read where the local database lacks a kernel.

A machine the tuner has never seen starts from an empty database, and TVM's default schedules are
tens of times slower than ONNX Runtime; tuning to parity took 30-50 minutes per model. A schedule
is a program transformation, not a machine: one tuned on an AVX-512 CPU builds on any other and is
usually close to good there. So tuning_logs/reference/<family>/ ships records tuned by
`workbench tune` itself (scripts/tune_reference.py), per family of CPUs that run the same code.

Records match kernels by the structural hash of the kernel after our passes, which does not
depend on the target's mcpu (the family's records are re-keyed to this machine's target when
read). A build takes, per kernel: the local overlay's choice (timed side by side on this machine,
reference candidates included, by `tune`), else the reference record, else tuning's local best;
a local record that was never timed against the reference one does not shadow it. The
correctness gate decides, as always.
"""

import gzip
import json
import os
import platform
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from workbench.compiler.database import RECORDS, SELECTED, WORKLOADS
from workbench.console import warn
from workbench.paths import source_root

ENV = "WORKBENCH_REFERENCE_DIR"  # another folder of families (tests, a private set of records)
# Each family: the CPU flags a CPU needs to run its code. The first one a target has is its family.
FAMILIES = (("x86-64-avx512", ("avx512f", "avx512bw", "avx512vl")), ("x86-64-avx2", ("avx2", "fma")))
# The profile each family's records are tuned with (targets/): its baseline CPU, so the code runs on all.
FAMILY_PROFILES = {"x86-64-avx512": "x86-avx512", "x86-64-avx2": "x86-avx2"}
CANDIDATES = 4  # reference records per kernel timed against each other (and the local best) by tune
_X86 = ("x86_64", "amd64")


def root() -> Path:
    return Path(os.environ[ENV]) if os.environ.get(ENV) else source_root() / "tuning_logs" / "reference"


def family(profile) -> str | None:
    """The family whose records a profile's builds can use: from the CPU flags the profile requires,
    or this CPU's when the profile compiles for the host (mcpu auto). None off x86 or on a GPU."""
    from workbench import fingerprint

    if profile.device != "cpu" or profile.rpc is not None or profile.cross_compiler:
        return None
    triple = str(profile.target.get("mtriple") or "")
    arch = triple.split("-")[0] if triple else platform.machine()
    if arch.lower() not in _X86:
        return None
    if profile.requires_cpu_flags:
        flags = set(profile.requires_cpu_flags)
    elif profile.target.get("mcpu") in (None, "auto"):
        flags = fingerprint.cpu_flags()
    else:
        return None
    return next((name for name, needs in FAMILIES if set(needs) <= flags), None)


def folder(profile, enabled: bool = True) -> Path | None:
    """The family's folder of reference records for this profile, None when there is none to read."""
    name = family(profile) if enabled else None
    return root() / name if name else None


def machines(directory: Path) -> list[str]:
    """The CPUs the folder's records were tuned on, as sessions.jsonl names them (no TVM needed)."""
    from workbench import fingerprint

    seen: list[str] = []
    try:
        lines = (directory / "sessions.jsonl").read_text().splitlines()
    except OSError:
        return seen
    for line in lines:
        try:
            cpu = fingerprint.describe_cpu(json.loads(line).get("machine") or {})
        except (ValueError, AttributeError):
            continue
        if cpu not in seen:
            seen.append(cpu)
    return seen


@dataclass
class Reference:
    family: str
    directory: Path
    selected: object | None  # MemoryDatabase: per kernel, the record chosen side by side where tuned
    tuned: object  # MemoryDatabase: each kernel's best few records, re-keyed to this target
    keys: set = field(default_factory=set)  # (workload key, trace) of every record, to tell them apart
    machines: list[str] = field(default_factory=list)

    def database(self):
        from tvm.s_tir import meta_schedule as ms

        return ms.database.OrderedUnionDatabase(self.selected, self.tuned) if self.selected else self.tuned

    def candidates(self, mod, k: int = CANDIDATES) -> list:
        """This kernel's reference records: the side-by-side choice first, then the fastest others."""
        found = []
        for db in (self.selected, self.tuned):
            if db is not None and db.has_workload(mod):
                found += db.get_top_k(db.commit_workload(mod), k)
        unique = {}
        for record in found:
            unique.setdefault(_record_key(record), record)
        return list(unique.values())[:k]

    def holds(self, record) -> bool:
        return _record_key(record) in self.keys

    def as_dict(self) -> dict:
        return {"family": self.family, "machines": self.machines}


def _record_key(record) -> tuple[str, str]:
    from workbench.compiler.database import TuningDatabase

    return TuningDatabase.record_key(record)


def load(profile, target_json: dict, wanted=None, enabled: bool = True) -> Reference | None:
    """The reference records for this profile, re-keyed to `target_json`; only those of the kernels
    whose workload keys are in `wanted` when given (a folder covers every zoo model, and parsing
    kernels costs time). None when off, when the profile has no family, or when the folder is
    missing (said in one line). Corrupt lines and records of another architecture are skipped with
    one line each; the rest apply."""
    directory = folder(profile, enabled)
    if directory is None:
        return None
    if shipped_file(directory / RECORDS) is None:
        warn(f"no reference tuning records for {directory.name} in {directory}; kernels without local "
             "records run TVM's default schedules (scripts/tune_reference.py makes them)")
        return None
    from workbench.compiler.importer import make_target

    target = make_target(target_json)
    wanted = set(wanted) if wanted is not None else None
    workloads = _workloads(directory / WORKLOADS, wanted)
    tuned, keys = _read(directory, target, wanted, workloads)
    selected, chosen = None, directory / SELECTED
    if (records := shipped_file(chosen / RECORDS)) is not None:
        # A compacted folder's selected/ ships no workloads: its records number the folder's (a plain
        # copy beside shipped records is the regeneration script's, maybe stale).
        own = (chosen / (WORKLOADS + ".gz")).is_file() or (records.suffix != ".gz" and (chosen / WORKLOADS).is_file())
        selected, selected_keys = _read(chosen, target, wanted, _workloads(chosen / WORKLOADS, wanted) if own
                                        else workloads)
        keys |= selected_keys
    return Reference(directory.name, directory, selected, tuned, keys, machines(directory))


def _workloads(path: Path, wanted: set | None) -> dict:
    """Line number -> Workload, of the `wanted` kernels' lines in a workloads file."""
    from tvm.s_tir import meta_schedule as ms

    def parse(line):
        return ms.database.Workload.from_json(line) if wanted is None or str(line[0]) in wanted else None

    return {i: w for i, w in _parsed_lines(path, parse).items() if w}


def _read(directory: Path, target, wanted: set | None, workloads: dict):
    """A MemoryDatabase of the folder's valid records (of the `wanted` kernels, whose `workloads`
    are given by line number) with `target` as theirs, and their keys."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.MemoryDatabase()
    committed = {}  # workload index -> the workload as this database holds it, for those with a record
    foreign, bad, keys = set(), 0, set()
    for _, line in _json_lines(directory / RECORDS):
        try:
            workload_index, entry = line
            if workload_index not in workloads and wanted is not None:
                continue  # another model's kernel (or a damaged workload line, already reported)
            other = _foreign(entry[2])
            if other:
                foreign.add(other)
                continue
            record = ms.database.TuningRecord.from_json(entry, workloads[workload_index])
        except Exception:  # a line that does not parse as a record, or names a missing workload
            bad += 1
            continue
        if workload_index not in committed:
            committed[workload_index] = db.commit_workload(workloads[workload_index].mod)
        rekeyed = ms.database.TuningRecord(record.trace, committed[workload_index], record.run_secs, target,
                                           record.args_info)
        db.commit_tuning_record(rekeyed)
        keys.add(_record_key(rekeyed))
    if bad:
        warn(f"{directory}: skipped {bad} corrupt reference record line(s); the others apply "
             "(regenerate the folder with scripts/tune_reference.py)")
    if foreign:
        warn(f"{directory}: skipped records for another architecture ({', '.join(sorted(foreign))}); "
             "reference records apply only to the CPUs they were tuned for")
    return db, keys


def _foreign(target: dict) -> str | None:
    """What a record's target is when it is not x86-64 LLVM code, else None."""
    if not isinstance(target, dict):
        raise ValueError("not a target")
    if target.get("kind") != "llvm":
        return str(target.get("kind"))
    triple = str(target.get("mtriple") or "")
    return triple if triple and triple.split("-")[0].lower() not in _X86 else None


def shipped_file(path: Path) -> Path | None:
    """The file as shipped, gzip-compressed (the workloads' TIR compresses ~14x), else plain: what a
    build reads, and what compiler/buildkey.py digests."""
    packed = path.with_name(path.name + ".gz")
    return packed if packed.is_file() else path if path.is_file() else None


def _json_lines(path: Path):
    """(line number, parsed JSON) of each line of the shipped file that parses; one warning for
    those that do not, or for a file that cannot be read past some line (a damaged gzip)."""
    path = shipped_file(path)
    if path is None:
        return
    bad, number = 0, -1
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            for raw in f:
                if not raw.strip():  # not a line, as MetaSchedule and the regeneration script number them
                    continue
                number += 1
                try:
                    value = json.loads(raw)
                except ValueError:
                    bad += 1
                    continue
                yield number, value
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        warn(f"{path} is damaged ({exc}); the reference records after that point are skipped "
             "(regenerate the folder with scripts/tune_reference.py)")
    if bad:
        warn(f"{path}: skipped {bad} line(s) that are not JSON; the other reference records apply")


def _parsed_lines(path: Path, parse) -> dict:
    """Line number -> parsed object, for the lines `parse` accepts (the others are skipped)."""
    parsed, bad = {}, 0
    for number, value in _json_lines(path):
        try:
            parsed[number] = parse(value)
        except Exception:  # a damaged workload: its records are skipped as lines naming a missing one
            bad += 1
    if bad:
        warn(f"{path}: skipped {bad} corrupt workload line(s); records of the other kernels apply")
    return parsed


SOURCES = ("reference", "local", "default")


def sources(tasks, build_db, target, reference: Reference | None) -> list[str]:
    """Where each task's schedule comes from in a build reading `build_db`: a reference record
    (also once `tune` stored it locally), local tuning, or TVM's default schedule."""
    labels = []
    for task in tasks:
        record = build_db.query_tuning_record(task.mod, target, task.name.split("@")[0])
        labels.append("default" if record is None else
                      "reference" if reference is not None and reference.holds(record) else "local")
    return labels


def flop_shares(tasks, labels: list[str]) -> dict:
    """Per source, the share of the model's FLOPs (calls x FLOPs per call) and the kernel count."""
    total = sum(t.flops * t.weight for t in tasks) or 1.0
    return {source: {"kernels": sum(label == source for label in labels),
                     "flops_share": sum(t.flops * t.weight for t, label in zip(tasks, labels) if label == source)
                     / total}
            for source in SOURCES}


def describe_shares(shares: dict, reference: dict | None) -> str:
    """One line: how many kernels, and what share of the FLOPs, each source gave the build;
    `reference` is the manifest's block ({"family", "machines"}) or None."""
    ref, local, default = (shares[s] for s in SOURCES)
    total = sum(s["kernels"] for s in shares.values())
    where = (f" {reference['family']} (tuned on {'; '.join(reference.get('machines') or ['an unrecorded machine'])})"
             if reference else "")
    return (f"Schedules: {ref['kernels']} of {total} kernels ({ref['flops_share']:.0%} of the FLOPs) from reference "
            f"records{where}; {local['kernels']} ({local['flops_share']:.0%}) from local tuning; "
            f"{default['kernels']} ({default['flops_share']:.0%}) TVM's default schedules")
