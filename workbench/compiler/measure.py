"""Builder and runner choices for MetaSchedule on a small machine.

TVM's LocalBuilder starts a fresh process pool for every batch of candidates, and each fresh
worker spends tens of seconds registering tensor intrinsics before its first build (a build
itself takes milliseconds), so on a 2-core machine candidates hit the 30 s build timeout and TVM's
stock pipeline built nothing (docs/BENCHMARKS.md, "Tuning throughput"). ReusedPoolBuilder keeps
its workers across batches (recycled every `recycle_after` builds, which bounds the leak that made
TVM restart them) and registers only the target's intrinsics in each (in the initializer, outside
the build timeout).
The timeout stays TVM's 30 s: a few candidates take minutes to compile and are not worth it.

Where the candidate runs on this machine, the builder links it into a shared library with `ld`
itself. TVM exports a tar of object files instead, and its runner, which times candidates one at
a time, untars it and links it with g++ before every timing; `ld` alone costs a fraction of that
(docs/BENCHMARKS.md, "Tuning throughput").
"""

import os
import shutil
import signal
import subprocess
import tempfile

from workbench.compiler.intrinsics import register_tensor_intrinsics
from workbench.targets import TargetProfile


def _ignore_ctrl_c() -> None:
    """Workers leave Ctrl-C to the tuning process, which stops cleanly after the current batch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_build_worker(target_kind: str) -> None:
    _ignore_ctrl_c()
    register_tensor_intrinsics(target_kind)


def export_shared_library(rt_mod) -> str:
    """A built candidate as a shared library in a directory of its own, linked by `ld` directly
    (the kernel's few undefined symbols, memset and TVM's error hook, resolve when it is loaded)."""
    directory = tempfile.mkdtemp()  # removed after timing by TVM's RemoveBuildArtifact callback
    obj, library = os.path.join(directory, "kernel.o"), os.path.join(directory, "kernel.so")
    try:
        rt_mod.write_to_file(obj)
        linked = subprocess.run(["ld", "-shared", "-o", library, obj], capture_output=True, text=True)
        if linked.returncode != 0:  # the builder records this as the candidate's build error
            raise RuntimeError(f"ld could not link the candidate: {linked.stderr.strip() or linked.returncode}")
        os.remove(obj)
    except BaseException:  # a failed candidate is never timed, so nothing else would remove its directory
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return library


def reused_pool_builder(target_kind: str, max_workers: int, timeout_sec: float = 30.0, recycle_after: int = 2048,
                        link_here: bool = False):
    """link_here: the candidates run on this machine, so they are exported as shared libraries
    (`export_shared_library`) rather than TVM's tar; only for CPU kernels, with `ld` installed."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder, local_builder
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    export = export_shared_library if link_here and target_kind == "llvm" and shutil.which("ld") else None

    @derived_object
    class ReusedPoolBuilder(PyBuilder):
        def __init__(self):
            super().__init__()
            self._pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec,
                                           initializer=_init_build_worker, initargs=(target_kind,),
                                           maximum_process_uses=recycle_after)

        def build(self, build_inputs):
            jobs = [(None, export, b.mod, b.target, local_builder._serialize_params(b.params)) for b in build_inputs]
            results = []
            for outcome in self._pool.map_with_error_catching(lambda job: local_builder._worker_func(*job), jobs):
                if outcome.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(outcome.value, None))
                elif outcome.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"build timed out after {timeout_sec:g} s"))
                else:
                    results.append(BuilderResult(None, f"build failed: {outcome.value}"))
            return results

        def shutdown(self):
            self._pool.shutdown()

    return ReusedPoolBuilder()


# Each timing repeats the kernel until it has run for this long (TVM's default is 100 ms): 40 ms
# cut the runner's time by about 40% (docs/BENCHMARKS.md, "Tuning throughput"), and a 5 ms
# convolution is still averaged over 8 runs.
MIN_REPEAT_MS = 40
# The evolutionary search's population and rounds (TVM: 512 and 4): search was nearly half of a
# convolution's tuning time on 2 cores (docs/BENCHMARKS.md, "Tuning throughput").
POPULATION = 256
GENETIC_ROUNDS = 3
# A round's search costs the same whatever it sends to be measured, so the population follows the
# batch: 2 candidates searched per one measured, which ran more trials a minute than 4 with as good
# an estimate (docs/BENCHMARKS.md, "Tuning throughput").
SEARCHED_PER_MEASURED = 2
MIN_POPULATION = 64


def population_for(trials_per_round: int) -> int:
    return min(POPULATION, max(MIN_POPULATION, SEARCHED_PER_MEASURED * trials_per_round))


def search_strategy(trials_per_round: int):
    from tvm.s_tir import meta_schedule as ms

    return ms.search_strategy.EvolutionarySearch(population_size=population_for(trials_per_round),
                                                 genetic_num_iters=GENETIC_ROUNDS)


# With cold weights each timing is single calls, each after a flush of every argument but the
# input (TVM's cache_flush_cpu_non_first_arg); repeating a call back to back would warm them again.
COLD_CALLS = 5


def evaluator_config(cold_weights: bool):
    from tvm.s_tir import meta_schedule as ms

    if cold_weights:
        return ms.runner.EvaluatorConfig(number=1, repeat=COLD_CALLS, min_repeat_ms=0, enable_cpu_cache_flush=True)
    return ms.runner.EvaluatorConfig(number=1, repeat=1, min_repeat_ms=MIN_REPEAT_MS)


# TVM's LocalRunner times every candidate of a tune in one worker process, which allocates each
# candidate's arguments afresh. glibc keeps the freed blocks of those sizes in its heap rather than
# giving them back, and the holes rarely fit the next kernel's: timing resnet50's batch-8 kernels
# (30-60 MB of arguments each) grew the worker by ~5 MB a candidate, to 21.8 GB after an hour's
# tune, which stalled the machine (docs/BENCHMARKS.md, "The runner's memory"). A fresh worker after
# this many timings bounds that (at 4.3 GB in resnet50@8's next hour), for a ~1.8 s restart. (Making
# glibc map every large block instead also bounds it, but changed the timing of a memory-bound
# kernel by 25-37%, so the candidates would no longer be measured as the shipped records were.)
RUNNER_RECYCLE_AFTER = 256


def local_runner(evaluator, recycle_after: int = RUNNER_RECYCLE_AFTER):
    """TVM's LocalRunner whose worker is replaced after every `recycle_after` timings."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.support.popen_pool import PopenPoolExecutor

    # LocalRunner always starts its own pool (and checks its worker runs); that one worker, kept for
    # the whole tune, is never recycled, so it is stopped and the pool replaced: one extra worker
    # start per tune.
    runner = ms.runner.LocalRunner(evaluator_config=evaluator, initializer=_ignore_ctrl_c)
    runner.pool.shutdown()
    runner.pool = PopenPoolExecutor(max_workers=1, timeout=runner.timeout_sec, initializer=_ignore_ctrl_c,
                                    maximum_process_uses=recycle_after, stderr=subprocess.DEVNULL)
    return runner


def runner_for(profile: TargetProfile, devices: int = 1):
    """Local measurement, or the profile's RPC tracker: one connection per device under the key,
    so more devices measure more candidates at once."""
    from tvm.s_tir import meta_schedule as ms

    evaluator = evaluator_config(profile.cold_weights)
    if profile.rpc is None:
        return local_runner(evaluator)
    config = ms.runner.RPCConfig(tracker_host=profile.rpc.tracker_host, tracker_port=profile.rpc.tracker_port,
                                 tracker_key=profile.rpc.key, session_timeout_sec=120)
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator, max_workers=max(1, devices))
