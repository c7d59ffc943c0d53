"""Serve and verify bundles: `workbench serve` and `workbench verify`."""

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench import reference
from workbench.bundle.archive import Bundle, BundleError, open_bundle
from workbench.console import err_console
from workbench.dims import Variant, manifest_shapes
from workbench.errors import WorkbenchError, first_line
from workbench.manifest import library_variants

# What a bundle can be served with: its compiled libraries (tvm) or its ONNX model (the others).
SERVE_ENGINES = ("tvm", "onnxruntime", "openvino")


def parse_models(text: str) -> list[tuple[str, Path]]:
    """`name=path,name=path` as given to --models."""
    pairs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise WorkbenchError(f"--models takes name=bundle pairs separated by commas, e.g. "
                                 f"a=bundles/a.tar.gz,b=bundles/b.tar.gz (got {part!r})")
        pairs.append((name.strip(), Path(path.strip())))
    names = [n for n, _ in pairs]
    if not pairs or len(set(names)) != len(names):
        raise WorkbenchError(f"--models needs at least one name=bundle pair and distinct names (got {text!r})")
    return pairs


def model_config(bundle: Bundle, name: str, engine: str | None, max_batch: int, max_delay_ms: float,
                 max_queue_rows: int, threads: int = 0):
    from workbench.serving.server import ModelConfig

    m = bundle.manifest
    # unnamed: what the bench that made the bundle's perf card recommended here, else the compiled libraries
    engine = engine or (m.get("recommended") or {}).get("engine") or "tvm"
    if engine not in SERVE_ENGINES:
        raise WorkbenchError(f"--engine must be one of {', '.join(SERVE_ENGINES)} (got {engine!r})")
    extra = {k: m[k] for k in ("preprocess", "labels") if m.get(k)}
    return ModelConfig(name, engine, str(bundle.root / m["model"]["file"]), m["inputs"], m["outputs"],
                       build_dir=str(bundle.root) if engine == "tvm" else None,
                       batch_sizes=m["batch_sizes"] if engine == "tvm" else None, max_batch=max_batch,
                       max_delay_ms=max_delay_ms, max_queue_rows=max_queue_rows, threads=threads, extra=extra)


def serve_bundles(named: list[tuple[str | None, Path]], *, engine: str | None, host: str, port: int, max_batch: int,
                  max_delay_ms: float, max_queue_rows: int, workers: int, max_body_bytes: int,
                  grpc_port: int | None = None, engine_threads: int = 0) -> None:
    """Open (and verify) every bundle first, then serve them all from one server until SIGTERM."""
    from workbench.serving.server import ServerConfig, run

    with contextlib.ExitStack() as stack:
        configs = []
        for name, path in named:
            bundle = stack.enter_context(open_bundle(path))
            configs.append(model_config(bundle, name or bundle.manifest["model"]["name"], engine, max_batch,
                                        max_delay_ms, max_queue_rows, engine_threads))
            err_console.print(f"{configs[-1].name}: served with {configs[-1].engine}", markup=False)
        run(ServerConfig(configs, host=host, port=port, grpc_port=grpc_port, workers=workers,
                         max_body_bytes=max_body_bytes))


@dataclass
class BatchCheck:
    batch: int | str  # the batch size; with --dims the variant: "1, seq 128"
    passed: bool
    max_abs_error: float
    max_rel_error: float
    p50_ms: float | None


def load_samples(bundle: Bundle, batch: int, key: str | None = None) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The stored inputs and outputs for one library (its key; default: the batch size's), each of
    the manifest's dtype and shape."""
    m = bundle.manifest
    variant = library_variants(m)[key] if key else Variant(batch)
    named = f"the {variant.tag} sample" if variant.dims else f"the batch-{batch} sample"  # "the b1-seq8 sample"
    try:
        with np.load(bundle.root / m["samples"][key or str(batch)], allow_pickle=False) as data:
            inputs = {s["name"]: data[f"input_{i}"] for i, s in enumerate(m["inputs"])}
            outputs = [data[f"output_{i}"] for i in range(len(m["outputs"]))]
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{bundle.source}: {named} cannot be read ({exc}); export the bundle again") from None
    # the batch (and --dims) sizes where the manifest names them; any other named dimension may be anything
    shapes = {**manifest_shapes(m["outputs"], variant), **manifest_shapes(m["inputs"], variant)}
    for spec, array in zip(m["inputs"] + m["outputs"], list(inputs.values()) + outputs):
        shape = shapes[spec["name"]]
        fits = len(array.shape) == len(shape) and all(not isinstance(d, int) or d == a
                                                       for d, a in zip(shape, array.shape))
        if not fits or str(array.dtype) != spec["dtype"]:
            raise BundleError(f"{bundle.source}: {named} of '{spec['name']}' is {array.dtype} "
                              f"{list(array.shape)}, not {spec['dtype']} {shape} as the manifest says; "
                              "export the bundle again")
    return inputs, outputs


def verify(bundle: Bundle) -> list[BatchCheck]:
    """Each compiled batch size run on the stored samples and compared with the stored ONNX Runtime
    outputs at the export's tolerance; then its median latency here."""
    from workbench.engines.tvm_engine import tvm_engine
    from workbench.load.direct import DirectSpec, latency

    m = bundle.manifest
    engine = tvm_engine(bundle.root)
    names = [s["name"] for s in m["outputs"]]
    checks = []
    for key, variant in sorted(library_variants(m).items(), key=lambda kv: kv[1]):
        batch = variant.batch
        inputs, expected = load_samples(bundle, batch, key)
        try:
            actual = engine(inputs)
        except Exception as exc:  # TVM's own errors: a library whose signature is not the manifest's
            raise BundleError(f"{bundle.source}: {m['libraries'][key]['file']} cannot run its batch-{variant} "
                              f"sample ({first_line(exc)}); the bundle does not match its manifest") from None
        results = reference.compare(names, actual, expected, m["tolerance"]["rtol"], m["tolerance"]["atol"])
        passed = all(r.passed for r in results)
        p50 = None
        if passed:
            spec = DirectSpec(min_runs=10, min_time_s=0.3, max_time_s=10)
            p50 = latency(engine, inputs, spec)["latency_ms"]["p50_ms"]
        checks.append(BatchCheck(batch if not variant.dims else str(variant), passed,
                                 max(r.max_abs_error for r in results),
                                 max(r.max_rel_error for r in results), p50))
    return checks
