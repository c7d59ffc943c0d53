"""manifest.json: what a compiled model says about itself, in a build folder (`compile`) or a
bundle (`export`). The keys both kinds carry are the compiled model (COMPILED_PROPERTIES: target,
device, signature, batch sizes, libraries, tuning); each kind adds its own in its schema. Read
against a JSON Schema, so a damaged or edited file is one line naming the field, not a KeyError."""

import json
from pathlib import Path

from workbench.dims import TAG_PATTERN
from workbench.errors import WorkbenchError

MANIFEST = "manifest.json"
BUILD_FORMAT = 1
BUILD_DIMS_FORMAT = 2  # a build with --dims: libraries keyed by their variant's tag (TAG_KEY), naming their shapes

TEXT = {"type": "string", "minLength": 1}
BATCH_KEY = {"pattern": "^[1-9][0-9]*$"}
TAG_KEY = {"pattern": TAG_PATTERN}  # dims.Variant.tag: b1-seq128
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
POSITIVE = {"type": "integer", "minimum": 1}
TENSORS = {"type": "array", "items": {
    "type": "object", "required": ["name", "dtype", "shape"],
    "properties": {"name": TEXT, "dtype": TEXT,
                   "shape": {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": -1},
                                                                  {"type": "string"}]}}}}}
ENTRY = {"type": "object", "required": ["file", "sha256"], "properties": {"file": TEXT, "sha256": SHA256}}
DIMS_ENTRY = {"type": "object", "required": ["batch", "dims", "shapes"],
              "properties": {"batch": POSITIVE,
                             "dims": {"type": "object", "minProperties": 1, "additionalProperties": POSITIVE},
                             "shapes": {"type": "object", "additionalProperties": {
                                 "type": "array", "items": {"type": "integer", "minimum": 0}}}}}
# Libraries are keyed all by batch size (no --dims) or all by variant tag, each entry then naming
# its batch, dims and full input shapes: a mix would pass a per-key check and fail in the engine.
LIBRARIES = {"type": "object", "minProperties": 1, "propertyNames": {"anyOf": [BATCH_KEY, TAG_KEY]},
             "additionalProperties": ENTRY,
             "if": {"propertyNames": BATCH_KEY},
             "else": {"propertyNames": TAG_KEY, "additionalProperties": DIMS_ENTRY}}
DIMS = {"type": "object", "minProperties": 1, "additionalProperties": {
    "type": "array", "minItems": 1, "uniqueItems": True, "items": POSITIVE}}
COMPILED_REQUIRED = ["target", "target_json", "device", "inputs", "outputs", "batch_sizes", "libraries"]
COMPILED_PROPERTIES = {
    "target": TEXT, "target_json": {"type": "object"}, "device": {"enum": ["cpu", "cuda"]},
    "inputs": TENSORS, "outputs": {**TENSORS, "minItems": 1},  # a model may take no input (all constants)
    "batch_sizes": {"type": "array", "minItems": 1, "uniqueItems": True, "items": POSITIVE},
    "libraries": LIBRARIES, "dims": DIMS,
    "tuning": {"type": "object"}, "correctness": {"type": "object"},
}
COMPILED_SCHEMA = {"type": "object", "required": COMPILED_REQUIRED, "properties": COMPILED_PROPERTIES}


def keyed_by_format(field: str, dims_format: int) -> dict:
    """The schema part saying a manifest of `dims_format` keys its libraries by tag and lists its
    dims, and one of another format keys them by batch size (stray dims: libraries_problem)."""
    return {"if": {"required": [field], "properties": {field: {"const": dims_format}}},
            "then": {"required": ["dims"], "properties": {"libraries": {"propertyNames": TAG_KEY}}},
            "else": {"properties": {"libraries": {"propertyNames": BATCH_KEY}}}}


BUILD_SCHEMA = {"type": "object", "required": [*COMPILED_REQUIRED, "format", "model", "model_sha256"],
                "properties": {**COMPILED_PROPERTIES, "format": {"enum": [BUILD_FORMAT, BUILD_DIMS_FORMAT]},
                               "model": TEXT,
                               "model_sha256": TEXT},
                **keyed_by_format("format", BUILD_DIMS_FORMAT)}


def problem(manifest, schema: dict) -> str | None:
    """The most relevant way the manifest breaks the schema, as "field: what is wrong", or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(manifest))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    if error.validator == "required":  # "lacks name", "model lacks file"
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{where + ' ' if where else ''}lacks {', '.join(missing)}"
    message, shown = error.message, repr(error.instance)
    if len(shown) > 60 and message.startswith(shown):  # a long value shortened, the complaint kept
        message = shown[:50] + " ..." + message[len(shown):]
    message = " ".join(message.split())
    return f"{where + ': ' if where else ''}{message[:200] + ' ...' if len(message) > 200 else message}"


def read_compiled(directory: Path) -> dict:
    """The compiled-model part of a build's or a bundle's manifest, checked before it is used."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise WorkbenchError(f"{directory} has no {MANIFEST}; compile the model first (workbench compile)") from None
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"{path} cannot be read ({exc}); compile the model again") from None
    if (why := problem(manifest, COMPILED_SCHEMA)) is not None:
        raise WorkbenchError(f"{path}: {why}; compile the model again")
    return manifest


def library_entry(variant, file: str, sha256: str, shapes: dict[str, list[int]]) -> tuple[str, dict]:
    """A library's key and entry in a manifest: keyed by its batch size as ever without --dims; with
    them by its variant's tag, the entry naming its batch, dims and full input shapes (BUILD_DIMS_FORMAT)."""
    if not variant.dims:
        return str(variant.batch), {"file": file, "sha256": sha256}
    return variant.tag, {"file": file, "sha256": sha256, "batch": variant.batch, "dims": dict(variant.dims),
                         "shapes": shapes}


def library_variants(manifest: dict) -> dict:
    """Each library's key -> its Variant: what every reader uses, never int() of a key."""
    from workbench.dims import Variant

    return {key: Variant(entry["batch"], tuple(entry.get("dims", {}).items())) if "batch" in entry
            else Variant(int(key)) for key, entry in manifest["libraries"].items()}


def libraries_problem(manifest: dict) -> str | None:
    """After the schema: the libraries are exactly one per batch size x dims combination, each
    under its variant's tag and with the shapes it runs; else what is wrong, as "libraries: ..."."""
    from workbench.dims import manifest_shapes, variants

    found = library_variants(manifest)
    for key, variant in found.items():
        entry = manifest["libraries"][key]
        if key != (variant.tag if variant.dims else str(variant.batch)):
            return f"libraries: '{key}' holds the library of {variant.tag}"
        if variant.dims and entry["shapes"] != manifest_shapes(manifest["inputs"], variant):
            return f"libraries.{key}.shapes: {entry['shapes']} are not the inputs at batch {variant}"
    dims = tuple((name, tuple(sizes)) for name, sizes in (manifest.get("dims") or {}).items())
    wanted = variants(manifest["batch_sizes"], dims)
    if sorted(found.values()) != wanted:
        missing = [v.tag for v in wanted if v not in found.values()]
        extra = [v.tag for v in found.values() if v not in wanted]
        return (f"libraries: none for {', '.join(missing)}" if missing
                else f"libraries: {', '.join(extra)} beyond the batch sizes and dims")
    return None


def build_problem(manifest) -> str | None:
    """What is wrong with a build's manifest (schema, then its libraries), or None."""
    return problem(manifest, BUILD_SCHEMA) or libraries_problem(manifest)
