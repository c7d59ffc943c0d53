"""manifest.json: what a compiled model says about itself, in a build folder (`compile`) or a
bundle (`export`). The keys both kinds carry are the compiled model (COMPILED_PROPERTIES: target,
device, signature, batch sizes, libraries, tuning); each kind adds its own in its schema. Read
against a JSON Schema, so a damaged or edited file is one line naming the field, not a KeyError."""

import json
from pathlib import Path

from workbench.errors import WorkbenchError

MANIFEST = "manifest.json"
BUILD_FORMAT = 1
DIMS_FORMAT = 2  # a build with --dims: libraries keyed by their full input shapes (LIBRARY_KEY)

TEXT = {"type": "string", "minLength": 1}
BATCH_KEY = {"pattern": "^[1-9][0-9]*$"}
SHAPE_KEY = {"pattern": "^[^:;]+:[0-9]+(x[0-9]+)*(;[^:;]+:[0-9]+(x[0-9]+)*)*$"}  # dims.shape_key
LIBRARY_KEY = {"anyOf": [BATCH_KEY, SHAPE_KEY]}
TENSORS = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["name", "dtype", "shape"],
    "properties": {"name": TEXT, "dtype": TEXT,
                   "shape": {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": -1},
                                                                  {"type": "string"}]}}}}}
COMPILED_REQUIRED = ["target", "target_json", "device", "inputs", "outputs", "batch_sizes", "libraries"]
COMPILED_PROPERTIES = {
    "target": TEXT, "target_json": {"type": "object"}, "device": {"enum": ["cpu", "cuda"]},
    "inputs": TENSORS, "outputs": TENSORS,
    "batch_sizes": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "integer", "minimum": 1}},
    "libraries": {"type": "object", "minProperties": 1, "propertyNames": LIBRARY_KEY,
                  "additionalProperties": {"type": "object", "required": ["file", "sha256"],
                                           "properties": {"file": TEXT,
                                                          "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                                          "batch": {"type": "integer", "minimum": 1},
                                                          "dims": {"type": "object", "additionalProperties": {
                                                              "type": "integer", "minimum": 1}},
                                                          "shapes": {"type": "object"}}}},
    "tuning": {"type": "object"}, "correctness": {"type": "object"},
}
COMPILED_SCHEMA = {"type": "object", "required": COMPILED_REQUIRED, "properties": COMPILED_PROPERTIES}
BUILD_SCHEMA = {"type": "object", "required": [*COMPILED_REQUIRED, "format", "model", "model_sha256"],
                "properties": {**COMPILED_PROPERTIES, "format": {"enum": [BUILD_FORMAT, DIMS_FORMAT]},
                               "model": TEXT,
                               "model_sha256": TEXT}}


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
    them by its full input shapes, the entry naming its batch, dims and shapes (DIMS_FORMAT)."""
    from workbench.dims import shape_key

    if not variant.dims:
        return str(variant.batch), {"file": file, "sha256": sha256}
    return shape_key(shapes), {"file": file, "sha256": sha256, "batch": variant.batch, "dims": dict(variant.dims),
                               "shapes": shapes}


def library_variants(manifest: dict) -> dict:
    """Each library's key -> its Variant: what every reader uses, never int() of a key."""
    from workbench.dims import Variant

    return {key: Variant(entry["batch"], tuple(entry.get("dims", {}).items())) if "batch" in entry
            else Variant(int(key)) for key, entry in manifest["libraries"].items()}
