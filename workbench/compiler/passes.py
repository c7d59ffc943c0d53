"""Our graph passes (channels-last, Winograd, fast math, prepacking): which apply to a model, the
pipeline without any that fails on it, and the choice kept beside the tuning records.

Each pass runs only where it applies: channels-last (and Winograd, which reads channels-last) on
CPUs for models with convolutions, fast math where there is an exp, erf, tanh or softmax to
approximate, prepacking on CPUs where a convolution or matrix multiply has constant weights. If
the pipeline still fails, the build drops our passes one at a time until it lowers (stock TVM's
pipeline last), and says in one warning line which pass it dropped: our passes never make a model
fail that TVM alone builds. The choice is made once per model and target and stored in
tuning_logs/<target>/lowering.json, so `tune` and `compile` lower alike (otherwise no tuning
record would apply to the build's kernels).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

CHANNELS_LAST, WINOGRAD, FAST_MATH, PREPACK = "channels-last", "winograd", "fast-math", "prepack"
ORDER = (CHANNELS_LAST, WINOGRAD, FAST_MATH, PREPACK)
LOWERING_FILE = "lowering.json"
_FAST_MATH_OPS = {"relax.exp", "relax.erf", "relax.tanh", "relax.nn.softmax"}
_WEIGHTED_OPS = {"relax.nn.conv2d", "relax.matmul", "relax.linear"}


@dataclass(frozen=True)
class Lowering:
    passes: tuple[str, ...]  # ours that run, in ORDER
    skipped: dict = field(default_factory=dict)  # pass -> why it does not run
    layout: bool = True  # channels-last allowed (--no-layout-pass turns it off)

    def as_dict(self) -> dict:
        return {"passes": list(self.passes), "skipped": dict(self.skipped), "layout": self.layout}

    def without(self, name: str, why: str) -> "Lowering":
        dropped = {name, WINOGRAD} if name == CHANNELS_LAST else {name}
        return Lowering(tuple(p for p in self.passes if p not in dropped),
                        {**self.skipped, **{p: why for p in dropped if p in self.passes}}, self.layout)


def _contents(mod) -> tuple[set[str], bool]:
    """The Relax operators the module calls, and whether it holds a constant of two or more dimensions."""
    import tvm
    from tvm import relax
    from tvm.relax.analysis import post_order_visit

    ops, weights = set(), []

    def visit(expr):
        if isinstance(expr, relax.Call) and hasattr(expr.op, "name"):
            ops.add(expr.op.name)
        elif isinstance(expr, tvm.ir.GenericConst) and len(expr.value.shape) >= 2:
            weights.append(True)

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            post_order_visit(func, visit)
    return ops, bool(weights)


def applicable(mod, target, layout: bool = True) -> Lowering:
    """The passes that apply to this (imported, not yet lowered) module on this target."""
    cpu = target.kind.name == "llvm"
    ops, weights = _contents(mod)
    why = {}
    if not cpu:
        why.update({p: "not a CPU target" for p in (CHANNELS_LAST, WINOGRAD, PREPACK)})
    elif not layout:
        why.update({CHANNELS_LAST: "off (--no-layout-pass)", WINOGRAD: "off (--no-layout-pass)"})
    elif "relax.nn.conv2d" not in ops:
        why.update({CHANNELS_LAST: "no convolution", WINOGRAD: "no convolution"})
    if not ops & _FAST_MATH_OPS:
        why[FAST_MATH] = "no exp, erf, tanh or softmax"
    if cpu and not (weights and ops & _WEIGHTED_OPS):
        why[PREPACK] = "no constant weights"
    return Lowering(tuple(p for p in ORDER if p not in why), why, layout)


def fallbacks(plan: Lowering, why: str):
    """(what was dropped, the pipeline) to try after the full one failed: each of our passes
    dropped alone (Winograd goes with channels-last, which it reads), then none of ours."""
    for name in plan.passes:
        if name != WINOGRAD or CHANNELS_LAST not in plan.passes:
            yield f"{name} pass", plan.without(name, why)
    stock = plan
    for name in plan.passes:
        stock = stock.without(name, why)
    yield f"passes ({', '.join(plan.passes)})", stock


def decide(mod, target, lower, layout: bool = True):
    """The module lowered by `lower(mod, target, passes)` with every pass that applies, else with
    the first fallback that lowers (one warning line naming the pass dropped); the Lowering used.
    When even stock TVM's pipeline fails, its error is raised."""
    from workbench.console import warn
    from workbench.errors import first_line

    plan = applicable(mod, target, layout)
    try:
        return lower(mod, target, plan.passes), plan
    except Exception as exc:
        if not plan.passes:
            raise
        message = first_line(exc)[:160]
    error = None
    for dropped, fallback in fallbacks(plan, f"failed: {message}"):
        try:
            lowered = lower(mod, target, fallback.passes)
        except Exception as exc:
            error = exc
            continue
        warn(f"our {dropped} failed on this model ({message}); building without, as stock TVM would")
        return lowered, fallback
    raise error


def remembered(directory: Path | None, model_sha256: str) -> dict | None:
    """The lowering chosen for this model in this target's database folder, if one was."""
    if directory is None:
        return None
    try:
        return json.loads((Path(directory) / LOWERING_FILE).read_text()).get(model_sha256)
    except (OSError, ValueError, AttributeError):
        return None


def prefer_layout(directory: Path | None, model, layout: bool) -> None:
    """--layout-pass / --no-layout-pass for this model on this target, before the passes are chosen
    (tune): the next lowering, and every one after it, follows it."""
    import hashlib

    key = hashlib.sha256(model.SerializeToString()).hexdigest()
    kept = remembered(directory, key)
    if kept is None or kept.get("layout") != layout:
        _store(directory, key, {"layout": layout})


def remember(directory: Path | None, model_sha256: str, lowering: Lowering) -> None:
    """Keep the choice beside the tuning records (best effort: a read-only folder only loses the memo)."""
    _store(directory, model_sha256, lowering.as_dict())


def _store(directory: Path | None, model_sha256: str, entry: dict) -> None:
    if directory is None or not Path(directory).is_dir():
        return
    path = Path(directory) / LOWERING_FILE
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
        if known.get(model_sha256) == entry:
            return
        known[model_sha256] = entry
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        tmp.replace(path)
    except (OSError, ValueError):
        pass
