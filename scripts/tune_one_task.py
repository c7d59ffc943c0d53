"""Tune one task of a model in isolation, to compare layouts and search settings on one kernel.

    python scripts/tune_one_task.py fused_conv2d1_add1_relu1 192 --layout nchw --settings workbench
    python scripts/tune_one_task.py fused_conv2d8_add7_relu4 128 --layout nhwc --prepack

--layout nhwc lowers the model as `workbench tune` does (compiler/importer.py `prepare`: NHWC/HWIO
convolutions), less its weight prepacking; --prepack marks the constant weights layout-free (TVM's
cpu_weight_prepack), as `prepare` does on CPUs, so schedules may rewrite their layout. --settings tvm uses
TVM's default search and runner; workbench uses ours (compiler/measure.py). Prints one JSON line
with the best kernel time and GFLOP/s, then MetaSchedule's profile of where the time went.
"""

import argparse
import json
import tempfile
import time

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops

from workbench.compiler.importer import import_model, make_target, prepare
from workbench.compiler.intrinsics import register_tensor_intrinsics
from workbench.compiler.measure import reused_pool_builder, runner_for, search_strategy
from workbench.models import load, resolve
from workbench.targets import get_profile


def without_prepacking(mod):
    for gv, func in list(mod.functions.items()):
        if isinstance(func, tvm.tirx.PrimFunc) and func.attrs is not None and func.attrs.get("layout_free_buffers"):
            mod[gv] = func.without_attr("layout_free_buffers")
    return mod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="task name as `workbench tune` prints it, without @b1")
    parser.add_argument("trials", type=int)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--layout", choices=["nchw", "nhwc"], default="nchw")
    parser.add_argument("--prepack", action="store_true")
    parser.add_argument("--settings", choices=["workbench", "tvm"], default="workbench")
    args = parser.parse_args()

    profile = get_profile("host")
    target = make_target(profile.resolved_target())
    mod = import_model(load(resolve(args.model)), 1)
    if args.layout == "nhwc":
        mod = prepare(mod, target)  # which prepacks the weights on CPUs, as `workbench tune` lowers them
    else:
        with target:
            mod = tvm.transform.Sequential([relax.transform.DecomposeOpsForInference(),
                                            relax.transform.CanonicalizeBindings(), relax.get_pipeline("zero")])(mod)
        if args.prepack:
            mod = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
    if not args.prepack:
        mod = without_prepacking(mod)
    tasks = ms.relax_integration.extract_tasks(mod, target)
    matches = [t for t in tasks if t.task_name in (args.task, args.task + "1")]  # prepacking renames with a 1
    if not matches:
        raise SystemExit(f"no task {args.task}; tasks: {', '.join(t.task_name for t in tasks)}")
    kernel = matches[0].dispatched[0]

    register_tensor_intrinsics("llvm")
    builder = reused_pool_builder("llvm", 2, link_here=True)
    ours = args.settings == "workbench"
    start = time.time()
    with ms.Profiler() as profiler:
        db = ms.tune_tir(kernel, target, tempfile.mkdtemp(), max_trials_global=args.trials, num_trials_per_iter=64,
                         builder=builder, runner=runner_for(profile) if ours else ms.runner.LocalRunner(),
                         strategy=search_strategy(64) if ours else "evolutionary", num_tuning_cores="physical")
    builder.shutdown()
    best = db.get_top_k(db.commit_workload(kernel), 1)[0]
    seconds = sum(float(s) for s in best.run_secs) / len(best.run_secs)
    print(json.dumps({"task": args.task, "layout": args.layout, "prepack": args.prepack, "settings": args.settings,
                      "trials": args.trials, "best_ms": round(seconds * 1e3, 3),
                      "gflops": round(estimate_tir_flops(kernel) / seconds / 1e9, 1),
                      "minutes": round((time.time() - start) / 60, 2)}))
    print(profiler.table())


if __name__ == "__main__":
    main()
