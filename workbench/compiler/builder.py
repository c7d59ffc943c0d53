"""`workbench compile`: apply tuning records, build per batch size, export, check against ONNX Runtime."""

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from workbench import fingerprint, reference
from workbench.compiler import reference_records
from workbench.compiler.buildkey import records_digest, workload_keys
from workbench.compiler.database import TuningDatabase
from workbench.compiler.failures import compiling, tvm_failure
from workbench.compiler.importer import make_target, prepacked_weights
from workbench.compiler.passes import PREPACK
from workbench.compiler.tasks import extract, kernel_digests, prepared_modules
from workbench.console import warn
from workbench.dims import Dims, Variant
from workbench.errors import CorrectnessError, ModelError, TargetError, WorkbenchError
from workbench.manifest import BUILD_DIMS_FORMAT, BUILD_FORMAT, MANIFEST, build_problem, library_entry, library_variants
from workbench.models import ModelSource, input_specs, load, output_specs, sample_inputs, static_shapes
from workbench.paths import make_directory, project_root, source_root
from workbench.targets import TargetProfile
from workbench.tolerance import DEFAULT_ATOL, DEFAULT_RTOL, check_tolerance


@dataclass(frozen=True)
class CompileRequest:
    source: ModelSource
    profile: TargetProfile
    batch_sizes: tuple[int, ...]
    database_dir: Path
    out_dir: Path
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    layout: bool | None = None  # channels-last: --layout-pass / --no-layout-pass; None: as tuning chose
    reference: bool = True  # read the shipped reference records where the local database lacks a kernel
    dims: Dims = ()  # --dims: sizes of the model's dynamic non-batch dimensions, a variant per combination

    @property
    def variants(self) -> list[Variant]:
        from workbench.dims import variants

        return variants(self.batch_sizes, self.dims)

    @property
    def reference_dir(self) -> Path | None:
        return reference_records.folder(self.profile, self.reference)


def library_name(model: str, variant: Variant) -> str:
    return f"{model}-{variant.tag}.so"  # model-b8.so; with --dims model-b8-seq128.so


def _export(executable, path: Path, profile: TargetProfile) -> None:
    if profile.cross_compiler:
        from tvm.contrib import cc

        if not shutil.which(profile.cross_compiler):
            raise TargetError(f"cross compiler '{profile.cross_compiler}' for '{profile.name}' is not installed "
                              f"(Debian: apt-get install g++-aarch64-linux-gnu); named in {profile.path}")
        executable.export_library(str(path), fcompile=cc.cross_compiler(profile.cross_compiler))
    else:
        executable.export_library(str(path))


class _Schedules:
    """What a build schedules its kernels from: the local database's overlay and records, and the
    reference records of the kernels of the modules it lowers (compiler/reference_records.py)."""

    def __init__(self, request: CompileRequest, database: TuningDatabase, main, target, target_json: dict):
        self.request, self.database, self.main, self.target, self.target_json = (request, database, main, target,
                                                                                 target_json)
        self.tasks, self.reference, self.db = [], None, None

    def __call__(self, modules: dict):
        self.tasks = extract(modules, self.target)
        self.reference = reference_records.load(self.request.profile, self.target_json, workload_keys(self.tasks),
                                                self.request.reference)
        self.db = self.database.open_for_build(self.main, self.reference.database() if self.reference else None)
        return self.db


def _coverage(request: CompileRequest, schedules: _Schedules) -> dict:
    """Where each task's schedule comes from; warn with the untuned ones and their share of the FLOPs."""
    tasks, reference = schedules.tasks, schedules.reference
    labels = reference_records.sources(tasks, schedules.db, schedules.target, reference)
    untuned = [t for t, label in zip(tasks, labels) if label == "default"]
    total = sum(t.flops * t.weight for t in tasks) or 1.0
    share = sum(t.flops * t.weight for t in untuned) / total
    if untuned:
        hint = ("GPU default schedules (dlight) apply" if request.profile.device == "cuda"
                else "they run TVM's slow default schedule")
        warn(f"{len(untuned)} of {len(tasks)} tasks have no tuning records ({share:.0%} of the FLOPs; {hint}): "
             f"{', '.join(t.name for t in untuned[:6])}{' ...' if len(untuned) > 6 else ''}. "
             f"Run: workbench tune --model {request.source.name} --target {request.profile.name}")
    # What makes this build stale: its own kernels' records (compiler/buildkey.py), not the shared file.
    workloads = workload_keys(tasks)
    return {"tasks": len(tasks), "tasks_tuned": len(tasks) - len(untuned), "untuned_flops_share": share,
            "untuned_tasks": [t.name for t in untuned], "kernels": kernel_digests(tasks),
            "schedules": reference_records.flop_shares(tasks, labels),
            "reference": {**reference.as_dict(), "directory": _project_path(reference.directory, source_root())}
            if reference else None,
            "workloads": workloads,
            "records_sha256": records_digest(request.database_dir, workloads, request.reference_dir)}


def _check(request: CompileRequest, model, libraries: dict[Variant, Path]) -> dict:
    """The correctness gate: each variant against ONNX Runtime on the same seeded inputs."""
    from workbench.engines.compiled import CompiledModel

    runs, why = request.profile.runs_here()
    if not runs:
        warn(f"correctness not checked here ({why}); run `workbench compile` where the target runs")
        return {"checked": False, "reason": why}
    names = [o.name for o in output_specs(model)]
    per_batch = {}
    for variant, library in libraries.items():
        inputs = sample_inputs(model, variant.batch, sizes=variant.sizes)
        expected = reference.run(request.source.path, inputs)
        actual = CompiledModel(library, request.profile.device)([inputs[s.name] for s in input_specs(model)])
        results = reference.compare(names, actual, expected, request.rtol, request.atol)
        per_batch[variant.digest_key] = [r.as_dict() for r in results]
        failed = [r for r in results if not r.passed]
        if failed:
            worst = failed[0]
            raise CorrectnessError(
                f"batch {variant}: output '{worst.output}' differs from ONNX Runtime ({worst.summary()})" +
                (f" beyond rtol {request.rtol:g} / atol {request.atol:g}; loosen with --rtol/--atol only if "
                 "that is expected" if worst.reason is None and worst.max_rel_error < 1 else
                 "; the correctness gate caught TVM computing this model wrongly (a compiler bug no tolerance "
                 "covers): try --no-layout-pass or another opset, or report it to Apache TVM"))
    return {"checked": True, "rtol": request.rtol, "atol": request.atol, "per_batch": per_batch}


def compile_model(request: CompileRequest) -> dict:
    """Build into a staging directory and put it in place only once the gate has passed, so a
    failed build never leaves a library beside a manifest that does not describe it."""
    check_tolerance(request.rtol, request.atol)
    out_dir = request.out_dir.resolve()
    _check_replaceable(out_dir)
    model = load(request.source)
    target_json = request.profile.resolved_target()
    database = TuningDatabase(request.database_dir, target_json)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    with database.exclusive():  # a tune writing the same files could be cut mid-line by the check
        records = database.validate()
        target = make_target(target_json)
        schedules = _Schedules(request, database, database.open(), target, target_json)
        shutil.rmtree(staging, ignore_errors=True)
        make_directory(staging, "output directory")
        try:
            with compiling(model):
                modules, libraries, from_records = _lower_and_build(request, model, target, schedules, staging)
            coverage = _coverage(request, schedules)
            coverage.update(lowering=modules.lowering.as_dict(), selected=database.selected_count(),
                            kernels_from_records=from_records, records=records)
            manifest = _manifest(request, model, target_json, database, coverage, libraries,
                                 _check(request, model, libraries))
            if (why := build_problem(manifest)) is not None:  # else every later bench/export would rebuild it
                raise WorkbenchError(f"compiling {request.source.name} wrote a {MANIFEST} its own schema "
                                     f"refuses ({why}); please report it")
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
            shutil.rmtree(out_dir, ignore_errors=True)
            staging.rename(out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


def ensure_build(request: CompileRequest, on_compile=lambda: None) -> dict:
    """The manifest in request.out_dir, compiled now when missing or stale: another model, a batch
    size not built, records of its own kernels that changed since (another model's tuning in the
    shared database does not count), or a gate looser than the one asked for."""
    manifest = _existing(request.out_dir)
    if manifest is not None:
        if (manifest["model_sha256"] == request.source.sha256()
                and set(request.variants) <= set(library_variants(manifest).values())
                and _records_unchanged(manifest.get("tuning", {}), request)
                and _gate_covers(manifest.get("correctness", {}), request)
                and request.layout in (None, manifest.get("tuning", {}).get("lowering", {}).get("layout", True))):
            return manifest
    on_compile()
    return compile_model(request)


def _records_unchanged(tuning: dict, request: CompileRequest) -> bool:
    """Whether the records the build's own kernels read are those it was built from; another
    model's tuning in the shared database leaves it current. A build from before the manifest
    named its kernels' workloads is rebuilt once."""
    workloads = tuning.get("workloads")
    return workloads is not None and tuning.get("records_sha256") == records_digest(
        request.database_dir, workloads, request.reference_dir)


def _existing(out_dir: Path) -> dict | None:
    """The build already in out_dir when its manifest is whole; a damaged one is rebuilt, not trusted."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if build_problem(manifest) is None else None


def _gate_covers(correctness: dict, request: CompileRequest) -> bool:
    """A build checked with tolerances at least as strict as the request's (or one this machine
    could not check, which a rebuild here would not check either)."""
    if not correctness.get("checked"):
        return True
    return (correctness.get("rtol", float("inf")) <= request.rtol
            and correctness.get("atol", float("inf")) <= request.atol)


def _check_replaceable(out_dir: Path) -> None:
    """A successful compile replaces --out whole, so it must be new, empty or an earlier build."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise WorkbenchError(f"--out {out_dir} is a file; pass a directory")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists():
        raise WorkbenchError(f"--out {out_dir} holds files that are not a workbench build (no {MANIFEST}); "
                             "pass a new or empty directory, since a build replaces it whole")


def apply_records(mod, target, db, gpu: bool, prepack: bool = True):
    """Schedule each fused kernel from its best record: the module to compile, and how many
    kernels were scheduled from records.

    The kernels are looked up exactly as `prepare` left them, which is how tuning extracted them.
    (TVM's `compile_relax` re-runs AnnotateTIROpPattern first, which adds an attribute to every
    kernel, so no record matched and the build silently used default schedules.)
    """
    import tvm
    from tvm.relax.transform import MetaScheduleApplyDatabase
    from tvm.s_tir import dlight as dl

    with target, db, tvm.transform.PassContext(opt_level=3):
        mod = MetaScheduleApplyDatabase(enable_warning=False)(mod)
        from_records = sum(1 for f in mod.functions.values()
                           if f.attrs is not None and f.attrs.get("tirx.is_scheduled"))
        mod = tvm.transform.Sequential(prepacked_weights(target, prepack))(mod)
        if gpu:  # kernels without records get dlight's GPU schedules; a GPU cannot run unscheduled TIR
            mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                          dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
    return mod, from_records


def _lower_and_build(request: CompileRequest, model, target, schedules: _Schedules, staging: Path):
    """The modules lowered with our passes and built; when the build fails with them (prepacking
    a kernel TVM cannot rewrite, say) and not without, the pipeline without the pass that broke it,
    with one warning line (passes.fallbacks: each pass dropped alone, then all of ours)."""
    from workbench.compiler.passes import fallbacks

    modules = prepared_modules(model, request.batch_sizes, target, request.database_dir, request.layout,
                               dims=request.dims)
    try:
        return (modules, *_build_all(request, modules, target, schedules(modules), staging))
    except ModelError as exc:
        if not modules.lowering.passes:
            raise
        failure, message = exc, str(exc).split(": ", 1)[-1].split("; try:")[0][:160]
    for dropped, lowering in fallbacks(modules.lowering, f"failed in the build: {message}"):
        modules = prepared_modules(model, request.batch_sizes, target, request.database_dir, request.layout,
                                   lowering, request.dims)
        try:
            built = _build_all(request, modules, target, schedules(modules), staging)
        except ModelError:
            continue
        warn(f"the build failed with our {dropped} ({message}); built without, as stock TVM would")
        return (modules, *built)
    raise failure


def _build_all(request: CompileRequest, modules: dict, target, db, directory: Path) -> tuple[dict[Variant, Path], dict]:
    """The library per variant, and per variant how many kernels were scheduled from records."""
    import tvm

    libraries, from_records = {}, {}
    prepack = PREPACK in modules.lowering.passes
    for variant, mod in modules.items():
        try:
            scheduled, from_records[variant.digest_key] = apply_records(
                mod, target, db, request.profile.device == "cuda", prepack)
            with target, tvm.transform.PassContext(opt_level=3):
                executable = tvm.compile(scheduled, target=target)
        except Exception as exc:
            raise tvm_failure("build", exc, variant) from None
        libraries[variant] = directory / library_name(request.source.name, variant)
        _export(executable, libraries[variant], request.profile)
    return libraries, from_records


def _project_path(path: Path, root: Path | None = None) -> str | None:
    """A path relative to the project (or `root`), or None outside it: a manifest travels (in
    bundles), and the build machine's directory layout is neither useful nor anyone else's business."""
    try:
        return Path(path).resolve().relative_to((root or project_root()).resolve()).as_posix()
    except ValueError:
        return None


def _manifest(request: CompileRequest, model, target_json: dict, database: TuningDatabase, coverage: dict,
              libraries: dict[Variant, Path], correctness: dict) -> dict:
    specs = input_specs(model)
    entries = dict(library_entry(v, p.name, fingerprint.sha256_file(p),
                                 {n: list(shape) for n, shape in static_shapes(specs, v.batch, v.sizes).items()})
                   for v, p in sorted(libraries.items()))
    return {
        "format": BUILD_DIMS_FORMAT if request.dims else BUILD_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": request.source.name, "model_path": str(request.source.path),
        "model_sha256": request.source.sha256(),
        "target": request.profile.name, "target_json": target_json, "device": request.profile.device,
        "batch_sizes": list(request.batch_sizes),
        **({"dims": {name: list(sizes) for name, sizes in request.dims}} if request.dims else {}),
        "libraries": entries,
        "parameters": "bound into each library as constants (folded at build time)",
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in input_specs(model)],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in output_specs(model)],
        "tuning": {"database": _project_path(request.database_dir), "database_sha256": database.digest(),
                   **coverage},
        "correctness": correctness,
        "provenance": fingerprint.provenance(),
    }
