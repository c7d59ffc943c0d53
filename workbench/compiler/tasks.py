"""Tuning tasks of a model (its fused kernels) and what the database knows about each."""

import hashlib
from dataclasses import dataclass

from workbench.compiler.database import mean_run_secs
from workbench.compiler.importer import import_model, prepare


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


class PreparedModules(dict):
    """Batch size -> fused Relax module, and the Lowering (our passes) they were lowered with."""

    lowering = None


def prepared_modules(model, batch_sizes: tuple[int, ...], target, database_dir=None,
                     layout: bool | None = None, lowering=None) -> PreparedModules:
    """One fused Relax module per batch size: what tuning extracts from and what the build compiles.
    Our passes are chosen once, on the smallest batch (compiler/passes.py): the choice kept in
    `database_dir` for this model when there is one and `layout` (--[no-]layout-pass) does not
    override it, else every pass that applies, less any that fails on the model. `lowering` (a
    passes.Lowering) forces the choice: the build's fallback when a pass fails only in the build."""
    from workbench.compiler import passes
    from workbench.compiler.failures import compiling

    key = hashlib.sha256(model.SerializeToString()).hexdigest()
    kept = lowering.as_dict() if lowering is not None else passes.remembered(database_dir, key)
    if layout is None:
        layout = kept["layout"] if kept else True
    modules = PreparedModules()
    with compiling(model):
        for batch in sorted(batch_sizes):
            mod = import_model(model, batch)
            if modules.lowering is None:
                modules[batch], modules.lowering = _first(mod, target, layout, kept)
            else:
                modules[batch] = prepare(mod, target, modules.lowering.passes)
    passes.remember(database_dir, key, modules.lowering)
    return modules


def _first(mod, target, layout: bool, kept: dict | None):
    """The smallest batch lowered with the kept choice when it still lowers, else decided afresh."""
    from workbench.compiler import passes
    from workbench.compiler.failures import tvm_failure
    from workbench.compiler.importer import lower

    if kept and kept.get("layout") == layout and "passes" in kept:
        chosen = passes.Lowering(tuple(kept["passes"]), kept.get("skipped", {}), layout)
        try:
            return lower(mod, target, chosen.passes), chosen
        except Exception:  # a newer TVM, a changed pipeline: decide again
            pass
    try:
        return passes.decide(mod, target, lower, layout)
    except Exception as exc:  # stock TVM's pipeline fails too
        raise tvm_failure("lower", exc) from None


def extract(modules: dict[int, object], target) -> list[Task]:
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    tasks = []
    for batch, mod in modules.items():
        try:
            extracted_tasks = ms.relax_integration.extract_tasks(mod, target)
        except Exception as exc:
            from workbench.compiler.failures import tvm_failure

            raise tvm_failure("split", exc, batch) from None
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
