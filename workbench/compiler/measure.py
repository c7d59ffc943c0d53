"""Builder and runner choices for MetaSchedule on a small machine.

TVM's LocalBuilder starts a fresh process pool for every batch of candidates, and each fresh
worker spends ~25 s importing `tvm.s_tir.tensor_intrin` before its first build (measured on
the 2-core reference machine; a build itself takes ~50 ms). So a batch of 1 to 64 candidates
took ~30 s, and candidates often hit the 30 s build timeout. ReusedPoolBuilder keeps its workers
across batches and recycles them only every `recycle_after` candidates, which bounds the memory
leak that made TVM restart them.
"""

from workbench.targets import TargetProfile


def _warm_worker() -> None:
    import tvm.s_tir.tensor_intrin  # noqa: F401  (the slow import, paid once per worker)


def reused_pool_builder(max_workers: int, timeout_sec: float = 120.0, recycle_after: int = 4096):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder import local_builder
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class ReusedPoolBuilder(PyBuilder):
        def __init__(self):
            super().__init__()
            self._pool = None
            self._built = 0

        def _get_pool(self):
            if self._pool is None or self._built >= recycle_after:
                if self._pool is not None:
                    self._pool.shutdown()
                self._pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec,
                                               initializer=_warm_worker)
                self._built = 0
            return self._pool

        def build(self, build_inputs):
            pool = self._get_pool()
            self._built += len(build_inputs)
            jobs = [(None, None, b.mod, b.target, local_builder._serialize_params(b.params)) for b in build_inputs]
            results = []
            for outcome in pool.map_with_error_catching(lambda job: local_builder._worker_func(*job), jobs):
                if outcome.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(outcome.value, None))
                elif outcome.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"build timed out after {timeout_sec:g} s"))
                else:
                    results.append(BuilderResult(None, f"build failed: {outcome.value}"))
            return results

        def shutdown(self):
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    return ReusedPoolBuilder()


def runner_for(profile: TargetProfile):
    """Local measurement, or the profile's RPC tracker for devices elsewhere."""
    from tvm.s_tir import meta_schedule as ms

    if profile.rpc is None:
        return "local"
    config = ms.runner.RPCConfig(tracker_host=profile.rpc.tracker_host, tracker_port=profile.rpc.tracker_port,
                                 tracker_key=profile.rpc.key, session_timeout_sec=120)
    return ms.runner.RPCRunner(rpc_config=config)
