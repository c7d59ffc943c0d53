"""ONNX Runtime as a user would tune it: all graph optimisations, one intra-op thread per physical core.

Its intra-op threads spin while a call runs, as by default, but stop when the call returns
(`session.force_spinning_stop`): left spinning after the call (the default), they ran on into the
next engine's block of a paired run and stalled TVM's thread pool for whole scheduler slices (mlp:
TVM's paired p50 over twice its direct p50 in 8 of 12 runs, up to 529x); it costs ONNX Runtime's own
direct latency nothing measurable (docs/BENCHMARKS.md, "How the paired ratio is protected")."""

from pathlib import Path

from workbench import fingerprint
from workbench.engines import Engine
from workbench.engines.registry import ONNXRUNTIME


def onnxruntime_engine(model_path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                       threads: int = 0) -> Engine:
    from workbench import reference

    threads = threads or fingerprint.physical_cores()
    session = reference.session(model_path, providers, threads, stop_spinning=True)

    def run(inputs):
        return session.run(None, inputs)

    settings = {"providers": session.get_providers(), "intra_op_num_threads": threads,
                "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL",
                "execution_mode": "sequential", "intra_op_allow_spinning": True, "force_spinning_stop": True}
    return Engine(ONNXRUNTIME, run, None, settings, tuple(o.name for o in session.get_outputs()))


def open(*, model_path: Path, providers: tuple[str, ...], threads: int = 0, **_) -> Engine:
    return onnxruntime_engine(model_path, providers, threads)
