"""Build an Engine of each kind. tvm and onnxruntime are imported only here, when asked for."""

import json
from pathlib import Path

import numpy as np

from workbench import fingerprint
from workbench.engines import ENGINE_KINDS, Engine
from workbench.errors import WorkbenchError


def onnxruntime_engine(model_path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                       threads: int = 0) -> Engine:
    """ORT as a user would tune it: all graph optimisations, one intra-op thread per physical core."""
    from workbench import reference

    threads = threads or fingerprint.physical_cores()
    session = reference.session(model_path, providers, threads)

    def run(inputs):
        return session.run(None, inputs)

    settings = {"providers": session.get_providers(), "intra_op_num_threads": threads,
                "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL",
                "execution_mode": "sequential"}
    return Engine("onnxruntime", run, None, settings, tuple(o.name for o in session.get_outputs()))


def build_settings(build_dir: Path) -> dict:
    """What a record says about a compiled build, including what a perf card matches on: the
    sha256 of each library, so figures belong to these exact libraries."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    return {"build_dir": str(build_dir), "target": manifest["target"], "target_json": manifest["target_json"],
            "tuning_records": manifest["tuning"].get("records"),
            "kernels_from_records": manifest["tuning"].get("kernels_from_records"),
            "libraries_sha256": {b: entry["sha256"] for b, entry in manifest["libraries"].items()}}


def tvm_engine(build_dir: Path) -> Engine:
    """The libraries `compile` wrote, one per batch size; a call runs the one for its batch."""
    from workbench.engines.compiled import CompiledModel

    manifest = json.loads((build_dir / "manifest.json").read_text())
    names = [spec["name"] for spec in manifest["inputs"]]
    device = "cuda" if manifest.get("device") == "cuda" else "cpu"
    libraries = {int(b): CompiledModel(build_dir / entry["file"], device)
                 for b, entry in manifest["libraries"].items()}

    def run(inputs):
        batch = next(iter(inputs.values())).shape[0]
        library = libraries.get(batch)
        if library is None:
            raise WorkbenchError(f"no library compiled for batch {batch} (compiled: {sorted(libraries)})")
        return library([inputs[n] for n in names])

    import tvm

    settings = {**build_settings(build_dir), "threads": int(tvm.get_global_func("runtime.NumThreads")())}
    return Engine("tvm", run, tuple(sorted(libraries)), settings, tuple(s["name"] for s in manifest["outputs"]),
                  on_loop_thread=True)


def null_engine(outputs: list[dict]) -> Engine:
    """Returns zeros of the right shapes at once: what is left is the harness's own cost."""
    def run(inputs):
        batch = next(iter(inputs.values())).shape[0]
        return [np.zeros((batch, *spec["shape"][1:]), spec["dtype"]) for spec in outputs]

    return Engine("null", run, None, {}, tuple(spec["name"] for spec in outputs))


def open_engine(kind: str, *, model_path: Path, build_dir: Path | None, outputs: list[dict],
                providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> Engine:
    if kind == "onnxruntime":
        return onnxruntime_engine(model_path, providers)
    if kind == "tvm":
        if build_dir is None:
            raise WorkbenchError("the tvm engine needs a compiled build directory")
        return tvm_engine(build_dir)
    if kind == "null":
        return null_engine(outputs)
    raise WorkbenchError(f"unknown engine '{kind}'; choose one of: {', '.join(ENGINE_KINDS)}")
