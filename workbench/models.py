"""Models: resolve a zoo name or a path to a checked ONNX file, describe it, make seeded inputs."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.errors import ModelError, first_line
from workbench.fingerprint import sha256_file
from workbench.paths import models_dir, zoo_dir

ONNX_TO_NUMPY = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                 10: "float16", 11: "float64"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple  # ints, or a str for a named dynamic dimension

    @property
    def batched(self) -> bool:
        """Whether the first dimension is dynamic: the batch, which --batch-sizes sets."""
        return bool(self.shape) and not isinstance(self.shape[0], int)

    def with_batch(self, batch: int, sizes: dict[str, int] | None = None) -> tuple[int, ...]:
        """The static shape at one batch size: a dynamic first dimension is the batch; an input
        whose first dimension is fixed (a constant fed as an input, a shape, indices, a scale)
        keeps its own shape whatever the batch. `sizes` fixes named dimensions (--dims)."""
        dims = list(self.shape)
        if self.batched:
            dims[0] = batch
        dims = [(sizes or {}).get(d, d) if isinstance(d, str) else d for d in dims]
        dynamic = [d for d in dims if not isinstance(d, int)]
        if dynamic:
            raise ModelError(f"input '{self.name}' has dynamic dimensions beyond the batch ('{dynamic[0]}'"
                             f" in shape {list(self.shape)}); pass --dims {dynamic[0]}=<sizes> to compile it at "
                             "those sizes")
        return tuple(dims)


def static_shapes(specs, batch: int, sizes: dict[str, int] | None = None) -> dict[str, tuple[int, ...]]:
    """Each input's static shape at one variant. The batch's name is the batch wherever it appears,
    on any input's any axis (`bias [4, seq, batch]` beside `x [batch, seq]`), as dims.symbolic_dims
    reads it; `sizes` fixes the --dims."""
    named = {**(sizes or {}), **{s.shape[0]: batch for s in specs if s.batched}}
    return {s.name: s.with_batch(batch, named) for s in specs}


@dataclass(frozen=True)
class ModelSource:
    name: str
    path: Path
    builtin: bool

    def sha256(self) -> str:
        return sha256_file(self.path)


def builtin_names() -> list[str]:
    from workbench.zoo import BUILDERS

    return list(BUILDERS)


def user_model_paths() -> list[Path]:
    """ONNX files a user dropped under models/ (the generated zoo excluded)."""
    root = models_dir()
    return sorted(p for p in root.rglob("*.onnx") if zoo_dir() not in p.parents)


def _generate_builtin(name: str) -> Path:
    import onnx

    from workbench.zoo import BUILDERS

    path = zoo_dir() / f"{name}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".onnx.tmp")
        onnx.save(BUILDERS[name](), tmp)
        tmp.replace(path)  # atomic: a killed generation never leaves half a model behind
    return path


def _listed(name: str) -> Path | None:
    """The file under models/ that `workbench models` lists by this name (its stem), if one does.
    Two files listed by the same name are refused: the name would pick one at random."""
    matches = [p for p in user_model_paths() if p.stem == name]
    if len(matches) > 1:
        raise ModelError(f"model '{name}' is ambiguous: {', '.join(str(p) for p in matches)} are all listed "
                         "by that name; pass the path")
    return matches[0] if matches else None


def resolve(model: str) -> ModelSource:
    """A built-in name (generated on first use), a path to an ONNX file (as given, or under
    models/), or the name `workbench models` lists a file under models/ by."""
    if model in builtin_names():
        return ModelSource(model, _generate_builtin(model), builtin=True)
    path = Path(model)
    if not path.exists() and (models_dir() / model).exists():
        path = models_dir() / model
    if not path.exists() and models_dir().is_dir():
        path = _listed(model) or path
    if not path.exists():
        raise ModelError(f"model '{model}' not found: not a built-in ({', '.join(builtin_names())}), "
                         "no such file, and no models/**/<name>.onnx (see `workbench models`)")
    if path.is_dir():
        raise ModelError(f"model path {path} is a directory; pass the .onnx file")
    return ModelSource(path.stem, path, builtin=False)


def load(source: ModelSource):
    """Load and check the ONNX file; a clear ModelError for anything that is not a valid model."""
    import onnx

    try:
        model = onnx.load(str(source.path))
    except Exception as exc:  # protobuf raises several unrelated types for garbage input
        raise ModelError(f"{source.path} is not an ONNX model ({type(exc).__name__}); "
                         "export it with torch.onnx.export or tf2onnx") from None
    if not model.graph.node:
        raise ModelError(f"{source.path} is not an ONNX model (no graph nodes); check the file")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{source.path} is not a valid ONNX model: {first_line(exc)}") from None
    return model


def _specs(values, initializer_names: set[str]) -> list[TensorSpec]:
    specs = []
    for v in values:
        if v.name in initializer_names:
            continue
        t = v.type.tensor_type
        dtype = ONNX_TO_NUMPY.get(t.elem_type)
        if dtype is None:
            raise ModelError(f"tensor '{v.name}' has an unsupported element type ({t.elem_type})")
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)
        specs.append(TensorSpec(v.name, dtype, shape))
    return specs


def input_specs(model) -> list[TensorSpec]:
    return _specs(model.graph.input, {i.name for i in model.graph.initializer})


def output_specs(model) -> list[TensorSpec]:
    return _specs(model.graph.output, set())


def spec_dicts(specs: list[TensorSpec]) -> list[dict]:
    """Specs as JSON: symbolic dimensions (the batch) become -1, as the v2 protocol writes them."""
    return [{"name": s.name, "dtype": s.dtype, "shape": [d if isinstance(d, int) else -1 for d in s.shape]}
            for s in specs]


def metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def fixed_batch(model) -> int | None:
    """The batch size the model's inputs fix (their shared static first dimension), None when the
    batch is dynamic: a request to it carries that many rows, not one."""
    firsts = {s.shape[0] for s in input_specs(model) if s.shape}
    if len(firsts) == 1 and isinstance(first := firsts.pop(), int) and first > 0:
        return first
    return None


def has_dynamic_batch(model) -> bool:
    return any(s.batched for s in input_specs(model))


def batch_sizes(model, requested: tuple[int, ...] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """The batch sizes to build: the requested (else the profile's) when inputs share a dynamic
    first dimension; a model without one compiles once, at its own shapes, labelled by the first
    dimension its inputs share (else 1). Asking such a model for other sizes is refused with a
    hint that cannot loop: leave the option out."""
    if has_dynamic_batch(model):
        return tuple(requested or default)
    own = fixed_batch(model) or 1
    if requested and tuple(requested) != (own,):
        shapes = ", ".join(f"{s.name} {list(s.shape)}" for s in input_specs(model))
        raise ModelError(f"the model has no dynamic batch dimension (inputs: {shapes[:200]}); it compiles at its "
                         f"own shapes, so leave --batch-sizes out (or pass {own})")
    return (own,)


def sample_inputs(model, batch: int, seed: int = 0, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs every engine is fed: normal floats, integers within the model's stated range;
    `sizes` fixes the named dynamic dimensions (a --dims variant)."""
    ranges = json.loads(metadata(model).get("workbench.input_ranges", "{}"))
    rng = np.random.default_rng(seed)
    inputs, specs = {}, input_specs(model)
    shapes = static_shapes(specs, batch, sizes)
    for spec in specs:
        shape = shapes[spec.name]
        if spec.dtype.startswith("float"):
            inputs[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            inputs[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            low, high = ranges.get(spec.name, (0, 2))
            inputs[spec.name] = rng.integers(low, high, shape).astype(spec.dtype)
    return inputs
