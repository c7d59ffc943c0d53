"""Tuning tasks of a model (its fused kernels) and what the database knows about each."""

import hashlib
from dataclasses import dataclass

from workbench.compiler.database import mean_run_secs
from workbench.compiler.importer import import_model, prepare
from workbench.dims import Dims, Variant, variants


@dataclass
class Task:
    name: str  # "fused_conv2d_add_relu@b8": TVM's name, then the variant it comes from (@b8-seq128)
    batch: int
    mod: object  # the TIR IRModule MetaSchedule tunes
    weight: int  # times the model calls it per inference
    flops: float
    variant: Variant | None = None  # None: Variant(batch)

    def best_seconds(self, database) -> float | None:
        """Mean run time of the best measured schedule, None when the task has no valid record."""
        if not database.has_workload(self.mod):
            return None
        top = database.get_top_k(database.commit_workload(self.mod), 1)
        if not top or not top[0].run_secs:
            return None
        return mean_run_secs(top[0].run_secs)


class PreparedModules(dict):
    """Variant (a batch size, and sizes of --dims) -> fused Relax module, and the Lowering (our
    passes) they were lowered with."""

    lowering = None


def prepared_modules(model, batch_sizes: tuple[int, ...], target, database_dir=None,
                     layout: bool | None = None, lowering=None, dims: Dims = ()) -> PreparedModules:
    """One fused Relax module per variant (batch size x --dims combination): what tuning extracts
    from and what the build compiles.
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
        for variant in variants(batch_sizes, dims):
            mod = import_model(model, variant.batch, variant.sizes)
            if modules.lowering is None:
                modules[variant], modules.lowering = _first(mod, target, layout, kept)
            else:
                modules[variant] = prepare(mod, target, modules.lowering.passes)
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


def extract(modules: dict[Variant, object], target) -> list[Task]:
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    tasks = []
    for variant, mod in modules.items():
        try:
            extracted_tasks = ms.relax_integration.extract_tasks(mod, target)
        except Exception as exc:
            from workbench.compiler.failures import tvm_failure

            raise tvm_failure("split", exc, variant) from None
        for extracted in extracted_tasks:
            tir_mod = extracted.dispatched[0]
            tasks.append(Task(name=f"{extracted.task_name}@{variant.tag}", batch=variant.batch, mod=tir_mod,
                              weight=int(extracted.weight), flops=float(estimate_tir_flops(tir_mod)),
                              variant=variant))
    return tasks


def estimated_latency(tasks: list[Task], best: list[float | None]) -> float | None:
    """Sum of weight x best kernel time over the smallest variant's tasks, if every one is known."""
    smallest = min((_variant(t) for t in tasks), default=None)
    chosen = [(t, b) for t, b in zip(tasks, best) if _variant(t) == smallest]
    if not chosen or any(b is None for _, b in chosen):
        return None
    return sum(t.weight * b for t, b in chosen)


def kernel_digests(tasks: list[Task]) -> dict[str, str]:
    """Per batch size, one digest of the kernels tuning sees. A change to how models are lowered
    (a layout, a fusion) changes the kernels, and the sessions tuned before it no longer describe
    the build: the report's tuning curve must not add them up with the new ones."""
    from tvm_ffi import structural_hash

    per_variant: dict[Variant, list[str]] = {}
    for task in tasks:
        per_variant.setdefault(_variant(task), []).append(f"{structural_hash(task.mod):x}")
    return {variant.digest_key: hashlib.sha256(",".join(sorted(hashes)).encode()).hexdigest()[:16]
            for variant, hashes in sorted(per_variant.items())}


def _variant(task) -> Variant:
    return getattr(task, "variant", None) or Variant(task.batch)


def same_kernels(session: dict | None, build: dict | None) -> bool:
    """Whether a tuning session tuned the kernels of a build: equal digests at every batch size
    both have, and at least one shared. A build from before digests existed matches any session;
    a session from before them matches no build that has them."""
    if build is None:
        return True
    shared = set(session or {}) & set(build)
    return bool(shared) and all(session[b] == build[b] for b in shared)
