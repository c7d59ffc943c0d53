"""`workbench export`: a compiled model, its samples, perf card and runtime packed as one bundle."""

import json
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from workbench import fingerprint, models, records, reference
from workbench.bundle import BUNDLE_DIMS_FORMAT, FORMAT, MANIFEST, kserve, templates
from workbench.bundle.archive import ARCHIVE_SUFFIX, file_digests, file_sizes, pack
from workbench.compiler.builder import CompileRequest, ensure_build
from workbench.errors import WorkbenchError
from workbench.manifest import library_variants
from workbench.paths import make_directory, project_root

# What serving a bundle imports; each is pinned to the version installed here, with what it needs.
SERVING_DISTRIBUTIONS = ("apache-tvm", "apache-tvm-ffi", "onnxruntime", "numpy", "ml_dtypes", "psutil", "orjson",
                         "uvicorn", "uvloop", "httptools", "pillow", "typer", "rich", "jsonschema",
                         # --grpc-port: grpcio, and the OIP v2 messages tritonclient ships compiled (with the
                         # protobuf runtime and packaging, which its grpc package imports)
                         "grpcio", "protobuf", "tritonclient", "packaging")
REQUEST_FILE = "request.json"
_SOURCE = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ExportRequest:
    build: CompileRequest  # build.out_dir is the compiled build reused or made for the bundle
    bundles_dir: Path
    version: str = "1"
    labels: Path | None = None
    reports_dir: Path | None = None


def bundle_name(model: str, target: str) -> str:
    return f"{model}-{target}"


def pinned_requirements(names=SERVING_DISTRIBUTIONS) -> list[str]:
    """`name==version` for each distribution and everything it requires here, markers evaluated."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins, pending = {}, list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in pins:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise WorkbenchError(f"{name} is not installed, and serving a bundle needs it; "
                                 "reinstall workbench (make install)") from None
        pins[name] = dist.version
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def serving_distributions(engine: str | None = None) -> tuple[str, ...]:
    """What serving a bundle imports; OpenVINO too when it is the engine the bundle is to be served with."""
    return (*SERVING_DISTRIBUTIONS, "openvino") if engine == "openvino" else SERVING_DISTRIBUTIONS


def python_version() -> str:
    """major.minor of this Python: the requirements are pinned to what is installed here."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def required_cpu_flags(request: CompileRequest) -> list[str]:
    """The ISA a library may use: the profile's stated flags, and for a CPU detected here ("auto")
    every relevant flag this CPU has, since LLVM may emit any of them."""
    flags = set(request.profile.requires_cpu_flags)
    if request.profile.device == "cpu" and request.profile.target.get("mcpu") == "auto":
        flags |= set(fingerprint.machine_fingerprint()["cpu_flags"])
    return sorted(flags)


def timing_run(reports_dir: Path, model_sha256: str, libraries_sha256: dict[str, str]):
    """The latest bench run that timed these exact libraries: (its folder, its records), or None."""
    for run_dir in sorted((p for p in reports_dir.glob("run-*") if (p / "records").is_dir()), reverse=True):
        run = records.read_records(run_dir)
        if any(r["engine"] in ("tvm", "server-tvm") and r.get("status") == "ok"
               and r["model"]["sha256"] == model_sha256 and _same_libraries(r, libraries_sha256) for r in run):
            return run_dir, run
    return None


def exported_only(timed, variants):
    """The timing run's records of the exported --dims combinations: a bundle exported with a subset
    of the build's dims shows no row, and bases no verdict, on a shape it does not hold."""
    if timed is None:
        return None
    served = {frozenset(v.dims) for v in variants}
    run_dir, run = timed
    kept = [r for r in run if frozenset((r["scenario"].get("dims") or {}).items()) in served]
    return (run_dir, kept) if kept else None


def perf_card(timed) -> dict:
    """The figures of the timing run (timing_run), with every engine of that run for comparison; or a
    note saying how to make one."""
    if timed is None:
        return {"run_id": None, "note": "no bench run has timed these libraries; run `workbench bench` with the "
                                        "same model and target, then export again"}
    first = timed[1][0]
    return {"run_id": first["run_id"], "command": first["command"],
            "fingerprint_id": first["provenance"]["fingerprint_id"],
            "cpu_model": first["provenance"]["machine"]["cpu_model"],
            "rows": [records.row(r) for r in timed[1]]}


def recommendation(timed) -> dict:
    """What the timing run's verdict says to deploy (by the figure bench chose): the engine `serve`
    defaults to. None when there was no run, no clear call, or the winner is not something a bundle
    serves (flask-naive, say)."""
    from workbench.bundle.serve import SERVE_ENGINES
    from workbench.report.run import read_choice
    from workbench.verdict import decide

    if timed is None:
        return {"engine": None, "sentence": "no bench run has timed these libraries, so nothing was compared"}
    run_dir, run = timed
    decision = decide(run, read_choice(run_dir))
    called = decision.runner_up is not None and not decision.close and not decision.flag
    engine = decision.runtime if called and decision.runtime in SERVE_ENGINES else None
    return {"engine": engine, "measured_engine": decision.engine, "decided_by": decision.decided_by,
            "sentence": decision.sentence, "run_id": run[0]["run_id"]}


def _same_libraries(record: dict, libraries_sha256: dict[str, str]) -> bool:
    """The record timed at least one of these libraries, and no other build at those batch sizes."""
    timed = (record.get("settings") or {}).get("libraries_sha256") or {}
    shared = set(timed) & set(libraries_sha256)
    return bool(shared) and all(timed[b] == libraries_sha256[b] for b in shared)


def _write_samples(root: Path, model, source_path: Path, variants: dict) -> dict[str, str]:
    """Seeded inputs and ONNX Runtime's outputs per library (its key -> Variant): what `verify` checks against."""
    files = {}
    for key, variant in variants.items():
        inputs = models.sample_inputs(model, variant.batch, sizes=variant.sizes)
        outputs = reference.run(source_path, inputs)
        path = root / "samples" / f"{variant.tag}.npz"
        path.parent.mkdir(exist_ok=True)
        arrays = {f"input_{i}": inputs[s.name] for i, s in enumerate(models.input_specs(model))}
        arrays.update({f"output_{i}": out for i, out in enumerate(outputs)})
        np.savez(path, **arrays)
        files[key] = path.relative_to(root).as_posix()
    return files


def _example_request(inputs: dict[str, np.ndarray]) -> str:
    """Sample inputs as a v2 JSON request body: what the README's curl sends."""
    from workbench.serving.protocol import DATATYPE_OF

    return json.dumps({"inputs": [{"name": name, "shape": list(a.shape), "datatype": DATATYPE_OF[str(a.dtype)],
                                   "data": a.ravel().tolist()} for name, a in inputs.items()]})


def _copy_runtime(root: Path) -> None:
    shutil.copytree(_SOURCE, root / "runtime" / "workbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.onnx"))


def _labels(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"cannot read --labels {path}: {getattr(exc, 'strerror', None) or exc}; "
                             "pass a text file with one class name per line") from None
    if not labels:
        raise WorkbenchError(f"--labels {path} is empty; pass a text file with one class name per line")
    return labels


def export_bundle(request: ExportRequest, on_compile=lambda: None) -> tuple[Path, dict]:
    """Build (or reuse a current build), assemble the bundle in a staging folder, pack it, and
    only then replace an earlier archive of the same name."""
    build = request.build
    labels = _labels(request.labels)
    built = ensure_build(build, on_compile)
    model = models.load(build.source)
    name = bundle_name(build.source.name, build.profile.name)
    make_directory(request.bundles_dir, "bundle output directory")
    staging_parent = request.bundles_dir / f".{name}.staging"
    shutil.rmtree(staging_parent, ignore_errors=True)
    root = staging_parent / name
    try:
        (root / "lib").mkdir(parents=True)
        libraries, wanted = {}, set(build.variants)
        variants = {k: v for k, v in library_variants(built).items() if v in wanted}  # the build may hold more
        for key in variants:
            entry = built["libraries"][key]
            shutil.copy2(build.out_dir / entry["file"], root / "lib" / entry["file"])
            libraries[key] = {**entry, "file": f"lib/{entry['file']}"}
        model_file = f"model/{build.source.path.name}"
        (root / "model").mkdir()
        shutil.copy2(build.source.path, root / model_file)
        samples = _write_samples(root, model, build.source.path, variants)
        # the smallest variant's sample inputs, so the answer can be checked against samples/
        smallest = min(variants.values())
        (root / REQUEST_FILE).write_text(_example_request(models.sample_inputs(model, smallest.batch,
                                                                               sizes=smallest.sizes)))
        reports_dir = request.reports_dir or project_root() / "reports"
        timed = exported_only(timing_run(reports_dir, built["model_sha256"],
                                         {b: e["sha256"] for b, e in libraries.items()}), variants.values())
        card = perf_card(timed)
        (root / "perf.json").write_text(json.dumps(card, indent=2))
        recommended = recommendation(timed)
        requirements = pinned_requirements(serving_distributions(recommended["engine"]))
        (root / "requirements.txt").write_text(templates.requirements_txt(requirements))
        (root / "Dockerfile").write_text(templates.dockerfile(name, python_version()))
        _copy_runtime(root)
        manifest = _manifest(request, built, model, name, libraries, model_file, samples, card, labels)
        manifest["recommended"] = recommended
        (root / "README.md").write_text(templates.readme(manifest, card))
        (root / "deploy").mkdir()  # the sizes of lib/ and model/ set its memory request
        (root / "deploy" / "kserve.yaml").write_text(kserve.kserve_yaml({**manifest, "sizes": file_sizes(root)}))
        manifest["files"] = file_digests(root)
        manifest["sizes"] = file_sizes(root)
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2))
        archive = request.bundles_dir / f"{name}{ARCHIVE_SUFFIX}"
        pack(root, archive)
    finally:
        shutil.rmtree(staging_parent, ignore_errors=True)
    return archive, recommended


def _manifest(request: ExportRequest, built: dict, model, name: str, libraries: dict, model_file: str,
              samples: dict, card: dict, labels: list[str] | None) -> dict:
    build = request.build
    metadata = models.metadata(model)
    preprocess = json.loads(metadata["workbench.preprocess"]) if "workbench.preprocess" in metadata else None
    gpu_arch = built["target_json"].get("arch") if build.profile.device == "cuda" else None
    return {
        "bundle_format": BUNDLE_DIMS_FORMAT if build.dims else FORMAT, "name": name, "version": request.version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": build.source.name, "file": model_file, "sha256": built["model_sha256"],
                  "task": metadata.get("workbench.task")},
        "target": built["target"], "target_json": built["target_json"], "device": built["device"],
        "requires": {"machine": platform.machine(), "device": build.profile.device,
                     "cpu_flags": required_cpu_flags(build) if build.profile.device == "cpu" else [],
                     "gpu_arch": gpu_arch, "python": python_version()},
        "tuned_on": {"fingerprint_id": built["provenance"]["fingerprint_id"],
                     "machine": built["provenance"]["machine"]},
        "versions": fingerprint.versions(),
        "inputs": built["inputs"], "outputs": built["outputs"],
        "batch_sizes": list(build.batch_sizes), "libraries": libraries,
        **({"dims": {name: list(sizes) for name, sizes in build.dims}} if build.dims else {}),
        "parameters": built["parameters"],
        "preprocess": preprocess, "labels": labels,
        "tuning": built["tuning"], "correctness": built["correctness"],
        "tolerance": {"rtol": build.rtol, "atol": build.atol},
        "samples": samples, "perf_card": {"file": "perf.json", "run_id": card.get("run_id")},
        "example_request": REQUEST_FILE,
        "serve": "pip install -r requirements.txt && PYTHONPATH=runtime python -m workbench serve . --port 8080",
    }
