"""A bundle's manifest.json, never trusted: its shape (a JSON Schema), the paths it names (inside
the bundle and checksummed), and what it says about the model (the bundled ONNX model's own
signature, the libraries it lists). Each failure is one line naming the field."""

import json
from pathlib import Path, PurePosixPath

from workbench.bundle import BUNDLE_DIMS_FORMAT, FORMAT, BundleError
from workbench.manifest import (
    BATCH_KEY,
    COMPILED_PROPERTIES,
    COMPILED_REQUIRED,
    MANIFEST,
    TAG_KEY,
    TEXT,
    keyed_by_format,
    libraries_problem,
    library_variants,
    problem,
)

READABLE_FORMATS = (1, FORMAT, BUNDLE_DIMS_FORMAT)  # format 1 has no per-file sizes: archives get only the total cap


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["bundle_format", "name", "model", *COMPILED_REQUIRED, "requires", "tolerance", "samples", "files"],
    "properties": {
        **COMPILED_PROPERTIES,
        "bundle_format": {"enum": list(READABLE_FORMATS)},
        "name": TEXT, "version": {"type": "string"},
        "model": {"type": "object", "required": ["name", "file"],
                  "properties": {"name": TEXT, "file": TEXT, "sha256": {"type": "string"}}},
        "requires": {"type": "object", "required": ["machine", "device", "cpu_flags"],
                     "properties": {"machine": TEXT, "device": {"enum": ["cpu", "cuda"]},
                                    "cpu_flags": {"type": "array", "items": {"type": "string"}},
                                    "gpu_arch": {"type": ["string", "null"]}, "python": {"type": "string"}}},
        "tolerance": {"type": "object", "required": ["rtol", "atol"],
                      "properties": {"rtol": {"type": "number", "minimum": 0},
                                     "atol": {"type": "number", "minimum": 0}}},
        "samples": {"type": "object", "propertyNames": {"anyOf": [BATCH_KEY, TAG_KEY]}, "additionalProperties": TEXT},
        "files": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "sizes": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "perf_card": {"type": "object", "required": ["file"], "properties": {"file": TEXT}},
        "example_request": TEXT,
        "recommended": {"type": "object", "required": ["engine"],
                        "properties": {"engine": {"enum": [None, "tvm", "onnxruntime", "openvino"]}}},
        "preprocess": {"type": ["object", "null"]},
        "labels": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "allOf": [
        # From format 2 on, every file's size is recorded, so an archive is checked before extraction.
        {"if": {"properties": {"bundle_format": {"enum": [FORMAT, BUNDLE_DIMS_FORMAT]}}},
         "then": {"required": ["sizes"]}},
        keyed_by_format("bundle_format", BUNDLE_DIMS_FORMAT),
    ],
}


def parse(text: bytes, source) -> dict:
    """The manifest's JSON, of a format this workbench reads, valid against SCHEMA; one line otherwise."""
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{source}: {MANIFEST} is not valid JSON ({exc}); export the bundle again") from None
    found = manifest.get("bundle_format") if isinstance(manifest, dict) else None
    if found not in READABLE_FORMATS or isinstance(found, bool):
        raise BundleError(f"{source}: bundle format {found!r} is not supported (this workbench reads formats "
                          f"{', '.join(map(str, READABLE_FORMATS))}); export it again with this version")
    _validate(manifest, source)
    return manifest


def _validate(manifest: dict, source) -> None:
    why = problem(manifest, SCHEMA)
    if why is not None:  # "manifest.json lacks name", "manifest.json: inputs: 'x' is not of type 'array'"
        separator = " " if why.startswith("lacks ") else ": "
        raise BundleError(f"{source}: {MANIFEST}{separator}{why}; the bundle is damaged or was modified, so export "
                          "it again")


def named_paths(manifest: dict) -> dict[str, str]:
    """Every file the manifest names, by the field naming it."""
    named = {"model.file": manifest["model"]["file"]}
    named.update({f"libraries.{b}.file": entry["file"] for b, entry in manifest["libraries"].items()})
    named.update({f"samples.{b}": path for b, path in manifest["samples"].items()})
    if "perf_card" in manifest:
        named["perf_card.file"] = manifest["perf_card"]["file"]
    if "example_request" in manifest:
        named["example_request"] = manifest["example_request"]
    return named


def _inside(path: str) -> bool:
    """A plain relative POSIX path below the bundle folder: no '/', '..', '.', '\\' or empty parts."""
    parts = path.split("/")
    return (bool(path) and "\\" not in path and not PurePosixPath(path).is_absolute()
            and all(part not in ("", ".", "..") for part in parts))


def check_consistent(manifest: dict, source) -> None:
    """What the manifest says agrees with itself: every path it names is inside the bundle and
    checksummed, every listed file is a plain relative path, the libraries are one per batch
    size (x dims combination) under their keys, and the samples name the same libraries. Checked
    before any file is read or extracted."""
    files = manifest["files"]
    for path in files:
        if not _inside(path):
            raise BundleError(f"{source}: refused, {MANIFEST} lists '{path}', which is not a path inside the "
                              "bundle; the manifest was modified")
    for field, path in named_paths(manifest).items():
        if not _inside(path):
            raise BundleError(f"{source}: refused, {MANIFEST} {field} '{path}' points outside the bundle; "
                              "the manifest was modified")
        if path not in files:
            raise BundleError(f"{source}: refused, {MANIFEST} {field} '{path}' is not among the checksummed "
                              "files; the manifest was modified")
    if "sizes" in manifest and set(manifest["sizes"]) != set(files):
        odd = sorted(set(manifest["sizes"]) ^ set(files))[0]
        raise BundleError(f"{source}: refused, {MANIFEST} records a checksum or a size for {odd} but not both; "
                          "the manifest was modified")
    batches = sorted(manifest["batch_sizes"])
    variants = library_variants(manifest)
    listed = sorted({v.batch for v in variants.values()})
    if listed != batches:
        raise BundleError(f"{source}: refused, {MANIFEST} batch_sizes are {batches} but its libraries are for "
                          f"{listed}; the manifest was modified")
    if (why := libraries_problem(manifest)) is not None:  # one per batch size x dims combination, nothing else
        raise BundleError(f"{source}: refused, {MANIFEST} {why}; the manifest was modified")
    if set(manifest["samples"]) != set(variants):  # a sample per library, under the library's key
        keys = list(manifest["samples"])
        shown = sorted(map(int, keys)) if all(k.isdigit() for k in keys) else sorted(keys)
        raise BundleError(f"{source}: refused, {MANIFEST} batch_sizes are {batches} but its samples are for "
                          f"{shown}; the manifest was modified")


# ONNX Runtime's element types, as numpy names (what models.TensorSpec.dtype holds).
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
               "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
               "tensor(int64)": "int64", "tensor(bool)": "bool"}


def model_signature(model_path: Path, source) -> tuple[list[dict], list[dict]]:
    """The ONNX model's inputs and outputs as the manifest writes them, read by ONNX Runtime (a
    serving requirement; the onnx package is not) without optimising the graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind types
        raise BundleError(f"{source}: ONNX Runtime cannot read the bundled model {model_path.name} "
                          f"({' '.join(str(exc).split())[:200]}); export the bundle again") from None

    def specs(values) -> list[dict]:
        return [{"name": v.name, "dtype": _ORT_DTYPES.get(v.type, v.type),
                 "shape": ["?" if d is None else d for d in v.shape]} for v in values]

    return specs(session.get_inputs()), specs(session.get_outputs())


def check_signature(manifest: dict, root: Path, source) -> None:
    """The manifest's inputs and outputs are the bundled model's, name, dtype and shape: the server
    checks every request against the manifest, so a changed shape would refuse every valid one."""
    inputs, outputs = model_signature(root / manifest["model"]["file"], source)
    for field, actual in (("inputs", inputs), ("outputs", outputs)):
        stated = [{k: s.get(k) for k in ("name", "dtype", "shape")} for s in manifest[field]]
        if len(stated) != len(actual):
            raise BundleError(f"{source}: refused, {MANIFEST} lists {len(stated)} {field} but the bundled model "
                              f"has {len(actual)}; the manifest was modified")
        for i, (said, real) in enumerate(zip(stated, actual)):
            if said != real:
                raise BundleError(
                    f"{source}: refused, {MANIFEST} {field}[{i}] is '{said['name']}' {said['dtype']} {said['shape']} "
                    f"but the bundled model's is '{real['name']}' {real['dtype']} {real['shape']}; the manifest "
                    "was modified")
