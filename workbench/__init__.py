"""workbench: tune, compile, benchmark and serve ONNX models with Apache TVM."""

import os as _os

__version__ = "0.1.0"


def _tvm_threads_per_physical_core() -> None:
    """TVM sizes its thread pool at half the hardware threads on x86, assuming hyper-threading. On
    a machine without it that is half the cores, so TVM ran on one core where ONNX Runtime used
    two (docs/BENCHMARKS.md, "How the compiler gap closed", 2026-12-01). Set here, before anything
    imports TVM, so this process, MetaSchedule's measuring workers and the servers and RPC servers
    it starts all inherit it. A TVM_NUM_THREADS the user set wins."""
    from workbench.fingerprint import physical_cores

    _os.environ.setdefault("TVM_NUM_THREADS", str(physical_cores()))


_tvm_threads_per_physical_core()
