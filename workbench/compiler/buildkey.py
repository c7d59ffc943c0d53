"""When a build is stale: the records its own kernels are built from, not the whole database.

The database of a target is shared by every model tuned for it (compiler/database.py), so a digest
of its files changes whenever any model is tuned, and every other model's build looked stale and
was rebuilt. A build reads, per kernel (workload) it contains, the overlay's choice, else tuning's
best record; this digest covers exactly those, so tuning another model's kernels leaves it current,
and a better record (or a new choice) for one of its own makes it stale.

Plain JSON: `bench` asks it before deciding to load the compiler at all.
"""

import hashlib
import json
import re
from collections.abc import Iterable
from itertools import product
from pathlib import Path

from workbench.compiler.database import RECORDS, SELECTED, WORKLOADS, mean_run_secs
from workbench.compiler.reference_records import shipped_file
from workbench.fingerprint import sha256_file

_INDEX = re.compile(rb"\s*\[\s*(\d+)\s*,")  # a record line begins with its workload's line number


def workload_keys(tasks) -> list[str]:
    """The database key (MetaSchedule's structural hash, as its workload file writes it) of each
    task's kernel, whether or not the database holds it yet."""
    from tvm.s_tir import meta_schedule as ms

    return sorted({str(ms.database.Workload(t.mod).as_json()[0]) for t in tasks})


def _workload_lines(directory: Path) -> list[str]:
    path = directory / WORKLOADS
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [str(json.loads(raw)[0]) for raw in f if raw.strip()]


def _best_records(directory: Path, keys: set[str]) -> dict[str, bytes]:
    """Per key among `keys`, the record line MetaSchedule ranks first in this folder's database
    (the lowest mean time; the earlier line among equals)."""
    by_index = {i: key for i, key in enumerate(_workload_lines(directory)) if key in keys}
    path = directory / RECORDS
    if not by_index or not path.exists():
        return {}
    best: dict[str, tuple[float, bytes]] = {}
    with open(path, "rb") as f:
        for raw in f:
            match = _INDEX.match(raw)
            if match is None or int(match.group(1)) not in by_index:
                continue  # another model's kernel: not parsed at all
            run_secs = json.loads(raw)[1][1]
            seconds = mean_run_secs(run_secs) if run_secs else float("inf")
            key = by_index[int(match.group(1))]
            if key not in best or seconds < best[key][0]:
                best[key] = (seconds, raw.strip())
    return {key: line for key, (_, line) in best.items()}


def records_digest(directory: Path, keys: Iterable[str], reference: Path | None = None) -> str:
    """A digest of what a build of these kernels reads from the database in `directory` (the
    overlay's record and tuning's best for each; the workload's line number is left out, since the
    overlay is rewritten whole, and its numbering with it) and from the reference records in
    `reference`."""
    keys = set(keys)
    digest = hashlib.sha256()
    if reference is not None:  # shipped whole and regenerated rarely: its files, not each kernel's records
        for sub, name in product(("", SELECTED), (WORKLOADS, RECORDS)):
            # The file the build reads: the shipped .gz over a plain one, which only a regeneration
            # in progress writes.
            if (path := shipped_file(reference / sub / name)) is not None:
                digest.update(f"reference/{sub}/{path.name}:{sha256_file(path)}\n".encode())
    for label, folder in (("selected", directory / SELECTED), ("tuning", directory)):
        for key, line in sorted(_best_records(folder, keys).items()):
            digest.update(f"{label}/{key}:".encode() + _INDEX.sub(b"[", line, count=1) + b"\n")
    return digest.hexdigest()
