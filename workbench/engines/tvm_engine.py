"""The libraries `compile` wrote, one per batch size, as one engine; a call runs the one for its batch."""

import os
from pathlib import Path

from workbench.engines import Engine
from workbench.engines.registry import TVM
from workbench.errors import WorkbenchError
from workbench.manifest import library_variants, read_compiled


def build_settings(build_dir: Path) -> dict:
    """What a record says about a compiled build (a build folder or a bundle), including what a perf card matches
    on: the sha256 of each library, so figures belong to these exact libraries."""
    manifest = read_compiled(build_dir)
    return {"build_dir": str(build_dir), "target": manifest["target"], "target_json": manifest["target_json"],
            "tuning_records": manifest.get("tuning", {}).get("records"),
            "kernels_from_records": manifest.get("tuning", {}).get("kernels_from_records"),
            "libraries_sha256": {b: entry["sha256"] for b, entry in manifest["libraries"].items()}}


def _dynamic_first(shape: list) -> bool:
    """A symbolic first dimension: a name in a build's manifest, -1 in a bundle's signature."""
    return bool(shape) and not (isinstance(shape[0], int) and shape[0] >= 0)


def tvm_engine(build_dir: Path) -> Engine:
    from workbench.engines.compiled import CompiledModel

    manifest = read_compiled(build_dir)
    names = [spec["name"] for spec in manifest["inputs"]]
    device = "cuda" if manifest.get("device") == "cuda" else "cpu"
    variants = library_variants(manifest)
    if any(v.dims for v in variants.values()):
        return _shaped_engine(build_dir, manifest, variants, device)
    libraries = {variants[key].batch: CompiledModel(build_dir / entry["file"], device)
                 for key, entry in manifest["libraries"].items()}

    # The inputs that share the dynamic first dimension say the batch; a model without one has one library.
    batched = [spec["name"] for spec in manifest["inputs"] if _dynamic_first(spec["shape"])]

    def run(inputs):
        if not batched and len(libraries) == 1:
            return next(iter(libraries.values()))([inputs[n] for n in names])
        batch = inputs[batched[0] if batched else names[0]].shape[0]
        library = libraries.get(batch)
        if library is None:
            raise WorkbenchError(f"no library compiled for batch {batch} (compiled: {sorted(libraries)})")
        return library([inputs[n] for n in names])

    return Engine(TVM, run, tuple(sorted(libraries)), _settings(build_dir),
                  tuple(s["name"] for s in manifest["outputs"]), on_loop_thread=True)


def _settings(build_dir: Path) -> dict:
    import tvm

    return {**build_settings(build_dir), "threads": int(tvm.get_global_func("runtime.NumThreads")())}


def _shaped_engine(build_dir: Path, manifest: dict, variants: dict, device: str) -> Engine:
    """A build with --dims: a call runs the library of its exact input shapes, and the engine says
    which request shapes (less the batch) it has, so a server refuses any other up front."""
    from workbench.dims import signature
    from workbench.engines.compiled import CompiledModel

    names = [spec["name"] for spec in manifest["inputs"]]
    libraries = {tuple(tuple(entry["shapes"][n]) for n in names): CompiledModel(build_dir / entry["file"], device)
                 for entry in manifest["libraries"].values()}

    def run(inputs):
        library = libraries.get(tuple(tuple(inputs[n].shape) for n in names))
        if library is None:
            shapes = ", ".join(str(list(inputs[n].shape)) for n in names)
            raise WorkbenchError(f"no library compiled for input shapes {shapes} (compiled: "
                                 f"{'; '.join(', '.join(map(str, map(list, k))) for k in sorted(libraries))})")
        return library([inputs[n] for n in names])

    shapes = frozenset(signature({n: shape for n, shape in zip(names, key)}) for key in libraries)
    batches = tuple(sorted({v.batch for v in variants.values()}))
    return Engine(TVM, run, batches, _settings(build_dir), tuple(s["name"] for s in manifest["outputs"]),
                  on_loop_thread=True, shapes=shapes)


def open(*, build_dir: Path | None, threads: int = 0, **_) -> Engine:
    if build_dir is None:
        raise WorkbenchError("the tvm engine needs a compiled build directory")
    if threads:  # TVM's pool is the process's, sized from TVM_NUM_THREADS when it starts
        os.environ["TVM_NUM_THREADS"] = str(threads)
    engine = tvm_engine(build_dir)
    if threads and engine.settings["threads"] != threads:
        raise WorkbenchError(f"TVM's thread pool already runs {engine.settings['threads']} threads in this process, "
                             f"not {threads}: a process's engines share one pool, so give them one --engine-threads")
    return engine
