"""ONNX Runtime as a user would tune it: all graph optimisations, one intra-op thread per physical core."""

from pathlib import Path

from workbench import fingerprint
from workbench.engines import Engine
from workbench.engines.registry import ONNXRUNTIME


def onnxruntime_engine(model_path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                       threads: int = 0) -> Engine:
    from workbench import reference

    threads = threads or fingerprint.physical_cores()
    session = reference.session(model_path, providers, threads)

    def run(inputs):
        return session.run(None, inputs)

    settings = {"providers": session.get_providers(), "intra_op_num_threads": threads,
                "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL",
                "execution_mode": "sequential"}
    return Engine(ONNXRUNTIME, run, None, settings, tuple(o.name for o in session.get_outputs()))


def open(*, model_path: Path, providers: tuple[str, ...], **_) -> Engine:
    return onnxruntime_engine(model_path, providers)
