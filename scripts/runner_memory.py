"""The tuning runner's memory and timings: TVM's stock LocalRunner against workbench's, side by side.

    .venv/bin/python scripts/runner_memory.py [--rounds 50] [--variant recycled|mmap]

Builds the reference records' 12 kernels with the largest arguments (resnet50 at batch 8 in the
x86-64-avx512 folder: 30-60 MB each) once, then times them in rounds, alternating between two
runners (which goes first alternates too): TVM's stock LocalRunner and workbench's (`recycled`:
compiler/measure.py's, whose worker is replaced every RUNNER_RECYCLE_AFTER timings; `mmap`: the
stock runner with glibc's mmap threshold pinned at 128 KB in its worker, the route not taken).
Prints each worker's resident memory every 5 rounds, each kernel's median timing under both,
and the seconds each spent in run(). Time nothing else while it runs.
"""

import argparse
import ctypes
import statistics
import time

import numpy as np
import psutil

from workbench.compiler import measure, reference_records
from workbench.compiler.database import mean_run_secs
from workbench.compiler.importer import make_target
from workbench.compiler.retime import _build_all
from workbench.targets import get_profile

KERNELS = 12


def _pinned_mmap_worker() -> None:
    measure._ignore_ctrl_c()
    ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD; a fixed value also stops its growth


def argument_bytes(record) -> int:
    return sum(int(np.prod(a.as_json()[2])) * np.dtype(a.as_json()[1]).itemsize for a in record.args_info)


def _largest_kernels(profile) -> list:
    """Each workload's fastest reference record (ranked as the database ranks them), the KERNELS
    whose arguments are largest."""
    reference = reference_records.load(profile, profile.resolved_target())
    if reference is None:
        raise SystemExit("no x86-64-avx512 reference records to time (tuning_logs/reference/x86-64-avx512)")
    best = {}
    for record in reference.tuned.get_all_tuning_records():
        key = str(record.workload.as_json()[0])
        if key not in best or mean_run_secs(record.run_secs) < mean_run_secs(best[key].run_secs):
            best[key] = record
    return sorted(best.values(), key=argument_bytes, reverse=True)[:KERNELS]


def _worker_mb(runner) -> float:
    return sum(psutil.Process(w._proc.pid).memory_info().rss for w in runner.pool._worker_map.values() if w._proc) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--variant", choices=("recycled", "mmap"), default="recycled")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    profile = get_profile("x86-avx512")
    kernels = _largest_kernels(profile)
    builder = measure.reused_pool_builder("llvm", 2, link_here=True)
    artifacts = _build_all(kernels, make_target(profile.resolved_target()), builder)  # as the choice step builds
    builder.shutdown()
    if None in artifacts:
        raise SystemExit(f"{artifacts.count(None)} of the {len(kernels)} kernels did not build here")
    inputs = [RunnerInput(artifact, "cpu", r.args_info) for artifact, r in zip(artifacts, kernels)]
    evaluator = measure.evaluator_config(profile.cold_weights)
    ours = (measure.runner_for(profile) if args.variant == "recycled"
            else ms.runner.LocalRunner(evaluator_config=evaluator, initializer=_pinned_mmap_worker))
    runners = {"stock": ms.runner.LocalRunner(evaluator_config=evaluator, initializer=measure._ignore_ctrl_c),
               args.variant: ours}
    costs = {name: [[] for _ in inputs] for name in runners}
    spent = dict.fromkeys(runners, 0.0)
    for done in range(1, args.rounds + 1):
        for name in (list(runners)[::-1] if done % 2 else list(runners)):
            began = time.perf_counter()
            for i, future in enumerate(runners[name].run(inputs)):
                result = future.result()
                if result.error_msg:
                    raise SystemExit(f"{name} could not time kernel {i}: {result.error_msg.splitlines()[-1]}")
                costs[name][i].append(statistics.median(float(s) for s in result.run_secs))
            spent[name] += time.perf_counter() - began
        if done % 5 == 0:
            print(f"round {done} ({done * len(inputs)} timings each): worker MB "
                  + ", ".join(f"{n} {_worker_mb(r):.0f}" for n, r in runners.items()), flush=True)
    ratios = []
    for i, record in enumerate(kernels):
        stock, other = (statistics.median(costs[n][i]) for n in runners)
        ratios.append(other / stock)
        print(f"kernel {i}: {argument_bytes(record) / 1e6:.0f} MB of arguments, stock {stock * 1e3:.3f} ms, "
              f"{args.variant} {other * 1e3:.3f} ms ({other / stock:.3f}x)")
    print(f"median {args.variant}/stock {statistics.median(ratios):.3f}; seconds in run(): "
          + ", ".join(f"{n} {s:.1f}" for n, s in spent.items()))


if __name__ == "__main__":
    main()
