"""Builder and runner choices for MetaSchedule on a small machine.

TVM's LocalBuilder starts a fresh process pool for every batch of candidates, and each fresh
worker spends ~25 s registering tensor intrinsics before its first build (measured on the 2-core
reference machine; a build itself takes ~50 ms). So a batch of 1 to 64 candidates took ~30 s,
and candidates hit the 30 s build timeout. ReusedPoolBuilder keeps its workers across batches
(recycled every `recycle_after` builds, which bounds the leak that made TVM restart them) and
registers only the target's intrinsics in each (in the initializer, outside the build timeout).
The timeout stays TVM's 30 s: a few candidates take minutes to compile and are not worth it.
"""

import signal

from workbench.compiler.intrinsics import register_tensor_intrinsics
from workbench.targets import TargetProfile


def _ignore_ctrl_c() -> None:
    """Workers leave Ctrl-C to the tuning process, which stops cleanly after the current batch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_build_worker(target_kind: str) -> None:
    _ignore_ctrl_c()
    register_tensor_intrinsics(target_kind)


def reused_pool_builder(target_kind: str, max_workers: int, timeout_sec: float = 30.0, recycle_after: int = 2048):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder, local_builder
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class ReusedPoolBuilder(PyBuilder):
        def __init__(self):
            super().__init__()
            self._pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec,
                                           initializer=_init_build_worker, initargs=(target_kind,),
                                           maximum_process_uses=recycle_after)

        def build(self, build_inputs):
            jobs = [(None, None, b.mod, b.target, local_builder._serialize_params(b.params)) for b in build_inputs]
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


def runner_for(profile: TargetProfile, devices: int = 1):
    """Local measurement, or the profile's RPC tracker: one connection per device under the key,
    so more devices measure more candidates at once."""
    from tvm.s_tir import meta_schedule as ms

    if profile.rpc is None:
        return ms.runner.LocalRunner(initializer=_ignore_ctrl_c)
    config = ms.runner.RPCConfig(tracker_host=profile.rpc.tracker_host, tracker_port=profile.rpc.tracker_port,
                                 tracker_key=profile.rpc.key, session_timeout_sec=120)
    return ms.runner.RPCRunner(rpc_config=config, max_workers=max(1, devices))
