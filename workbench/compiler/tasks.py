"""Tuning tasks of a model (its fused kernels) and what the database knows about each."""

import hashlib
from dataclasses import dataclass

from workbench.compiler.database import mean_run_secs
from workbench.compiler.importer import import_model, prepare
from workbench.errors import ModelError, first_line


@dataclass
class Task:
    name: str  # "fused_conv2d_add_relu@b8": TVM's name, then the batch variant it comes from
    batch: int
    mod: object  # the TIR IRModule MetaSchedule tunes
    weight: int  # times the model calls it per inference
    flops: float

    def best_seconds(self, database) -> float | None:
        """Mean run time of the best measured schedule, None when the task has no valid record."""
        if not database.has_workload(self.mod):
            return None
        top = database.get_top_k(database.commit_workload(self.mod), 1)
        if not top or not top[0].run_secs:
            return None
        return mean_run_secs(top[0].run_secs)


def prepared_modules(model, batch_sizes: tuple[int, ...], target) -> dict[int, object]:
    """One fused Relax module per batch size: what tuning extracts from and what the build compiles."""
    return {batch: prepare(import_model(model, batch), target) for batch in batch_sizes}


def extract(modules: dict[int, object], target) -> list[Task]:
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    tasks = []
    for batch, mod in modules.items():
        try:
            extracted_tasks = ms.relax_integration.extract_tasks(mod, target)
        except Exception as exc:
            raise ModelError(f"TVM cannot split the model into kernels at batch {batch}: {first_line(exc)}") from None
        for extracted in extracted_tasks:
            tir_mod = extracted.dispatched[0]
            tasks.append(Task(name=f"{extracted.task_name}@b{batch}", batch=batch, mod=tir_mod,
                              weight=int(extracted.weight), flops=float(estimate_tir_flops(tir_mod))))
    return tasks


def estimated_latency(tasks: list[Task], best: list[float | None]) -> float | None:
    """Sum of weight x best kernel time over the smallest batch's tasks, if every one is known."""
    smallest = min((t.batch for t in tasks), default=None)
    chosen = [(t, b) for t, b in zip(tasks, best) if t.batch == smallest]
    if not chosen or any(b is None for _, b in chosen):
        return None
    return sum(t.weight * b for t, b in chosen)


def kernel_digests(tasks: list[Task]) -> dict[str, str]:
    """Per batch size, one digest of the kernels tuning sees. A change to how models are lowered
    (a layout, a fusion) changes the kernels, and the sessions tuned before it no longer describe
    the build: the report's tuning curve must not add them up with the new ones."""
    from tvm_ffi import structural_hash

    per_batch: dict[int, list[str]] = {}
    for task in tasks:
        per_batch.setdefault(task.batch, []).append(f"{structural_hash(task.mod):x}")
    return {str(batch): hashlib.sha256(",".join(sorted(hashes)).encode()).hexdigest()[:16]
            for batch, hashes in sorted(per_batch.items())}


def same_kernels(session: dict | None, build: dict | None) -> bool:
    """Whether a tuning session tuned the kernels of a build: equal digests at every batch size
    both have, and at least one shared. A build from before digests existed matches any session;
    a session from before them matches no build that has them."""
    if build is None:
        return True
    shared = set(session or {}) & set(build)
    return bool(shared) and all(session[b] == build[b] for b in shared)
