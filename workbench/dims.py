"""Dynamic non-batch dimensions (`--dims seq=64,128`): parse the option, find a model's symbolic
dimensions, and name the variants a build compiles (one per batch size and dims combination).

A variant is static: TVM compiles fixed shapes, so every combination is its own library. Pure
code (no tvm, no onnx import): the CLI, the server and the bundle readers all use it.
"""

import itertools
import re
from dataclasses import dataclass

from workbench.errors import ModelError, WorkbenchError

# ':' between dimensions needs no quoting in a shell (';' would end the command).
SEPARATOR = ":"
DIMS_HELP = ("Sizes of the model's dynamic non-batch dimensions, one variant compiled per combination with the "
             f"batch sizes: name=sizes, dimensions separated by '{SEPARATOR}', e.g. seq=64,128 or seq=64,128{SEPARATOR}"
             "width=8 (names as the model's inputs give them)")

Dims = tuple[tuple[str, tuple[int, ...]], ...]  # ordered, hashable: (("seq", (64, 128)), ...)


def parse_dims(text: str | None) -> Dims:
    """`seq=64,128:width=8` as (("seq", (64, 128)), ("width", (8,))); None or empty: no dims."""
    if text is None or not text.strip():
        return ()
    parsed: dict[str, tuple[int, ...]] = {}
    for part in text.split(SEPARATOR):
        name, equals, sizes = part.strip().partition("=")
        name = name.strip()
        if not equals or not name:
            raise WorkbenchError(f"--dims takes name=sizes, dimensions separated by '{SEPARATOR}', "
                                 f"e.g. seq=64,128 (got {part.strip()!r})")
        if name in parsed:
            raise WorkbenchError(f"--dims names '{name}' twice; give its sizes once, e.g. {name}=64,128")
        values = [v.strip() for v in sizes.split(",") if v.strip()]
        # fullmatch, not isdigit(): "²".isdigit() is true and int("²") raises
        if not values or not all(re.fullmatch(r"[0-9]+", v) and int(v) > 0 for v in values):
            raise WorkbenchError(f"--dims {name} takes comma-separated positive integers, e.g. {name}=64,128 "
                                 f"(got {sizes!r})")
        parsed[name] = tuple(sorted({int(v) for v in values}))
    return tuple(parsed.items())


def describe_dims(dims) -> str:
    """How messages name dims after the batch sizes: ", seq 64, 128" ('' without dims). Takes Dims,
    {name: sizes} (a manifest's "dims") or {name: size} (one combination)."""
    items = dims.items() if isinstance(dims, dict) else dims
    return "".join(f", {name} {', '.join(map(str, sizes)) if isinstance(sizes, (list, tuple)) else sizes}"
                   for name, sizes in items)


def signature(inputs: dict) -> tuple:
    """What requests batched together must share, and what a --dims engine dispatches on: each
    input's shape less the batch dimension (arrays or shapes given)."""
    return tuple(sorted((name, tuple(getattr(x, "shape", x))[1:]) for name, x in inputs.items()))


def symbolic_dims(specs) -> dict[str, list[tuple[str, int]]]:
    """The model's dynamic dimensions other than the batch, by name: where each appears (input,
    axis). The batch is a batched input's dynamic first dimension; its name is the batch wherever
    it appears. An unnamed dynamic dimension is listed as '?'."""
    batch_names = {s.shape[0] for s in specs if s.batched}
    found: dict[str, list[tuple[str, int]]] = {}
    for spec in specs:
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int) or (axis == 0 and spec.batched) or d in batch_names:
                continue
            found.setdefault(d, []).append((spec.name, axis))
    return found


def check_dims(specs, dims: Dims) -> Dims:
    """Every symbolic dimension named and nothing else: one line saying which and how, otherwise.
    Returns the dims in the model's order, so `a=1:b=2` and `b=2:a=1` are one build."""
    found = symbolic_dims(specs)
    listed = ", ".join(f"'{n}'" for n in found) or "none"
    batch_names = {s.shape[0] for s in specs if s.batched}
    for name, sizes in dims:
        if name in batch_names:
            raise WorkbenchError(f"--dims names '{name}', the model's batch dimension; give its sizes with "
                                 f"--batch-sizes {','.join(map(str, sizes))}")
        if name not in found:
            raise WorkbenchError(f"--dims names '{name}', which is not a dynamic dimension of the model's inputs "
                                 f"(its dynamic non-batch dimensions: {listed})")
    if "?" in found:
        where, axis = found["?"][0]
        raise ModelError(f"input '{where}' axis {axis} is dynamic and unnamed; --dims needs a name: export the "
                         "model with a named (dim_param) or fixed dimension there")
    named = dict(dims)
    for name, places in found.items():
        if name not in named:
            where, axis = places[0]
            raise ModelError(f"input '{where}' axis {axis} is the dynamic dimension '{name}'; "
                             f"pass --dims {name}=<sizes> (e.g. --dims {name}=128) to compile it at those sizes")
    return tuple((name, named[name]) for name in found)


@dataclass(frozen=True, order=True)
class Variant:
    """One static shape a build compiles: a batch size and a size for each named dimension."""

    batch: int
    dims: tuple[tuple[str, int], ...] = ()

    @property
    def tag(self) -> str:
        """Short, file-name safe and a manifest's library key: b8, b8-seq128. A name's other
        characters become '_' (tf2onnx's 'input_ids:0'); the variants of one build share their
        names and order, and '-' ends each size, so their tags stay distinct."""
        return "-".join([f"b{self.batch}", *(f"{re.sub(r'[^A-Za-z0-9_]', '_', n)}{v}" for n, v in self.dims)])

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.dims)

    @property
    def digest_key(self) -> str:
        """Its key among a build's kernel digests: the batch alone for a model without dims, as before."""
        return self.tag if self.dims else str(self.batch)

    def __str__(self) -> str:  # follows "batch " in messages: "batch 8", "batch 8, seq 128"
        return f"{self.batch}" + "".join(f", {n} {v}" for n, v in self.dims)


def variants(batch_sizes, dims: Dims = ()) -> list[Variant]:
    """Every batch size with every combination of the dims' sizes, smallest first."""
    names = [name for name, _ in dims]
    combos = itertools.product(*(sizes for _, sizes in dims))
    return sorted(Variant(b, tuple(zip(names, combo))) for combo in combos for b in batch_sizes)


# A variant's tag as a manifest key (Variant.tag of a variant with dims).
TAG_PATTERN = "^b[1-9][0-9]*(-[A-Za-z0-9_]*[0-9]+)+$"


def manifest_shapes(inputs: list[dict], variant: Variant) -> dict[str, list[int]]:
    """Each input of a manifest ({"name", "shape"}) at one variant: a symbolic first dimension (a
    name, or -1 in a bundle) is the batch, and so is its name wherever it appears; other names
    take the variant's sizes (models.static_shapes is the same rule on an ONNX model's specs)."""
    batch_names = {s["shape"][0] for s in inputs if s["shape"] and isinstance(s["shape"][0], str)}
    named = {**variant.sizes, **{name: variant.batch for name in batch_names}}
    return {s["name"]: [variant.batch if axis == 0 and (s["shape"][0] == -1 or s["shape"][0] in batch_names)
                        else named.get(d, d) if isinstance(d, str) else d for axis, d in enumerate(s["shape"])]
            for s in inputs}


def smallest_dims(found) -> dict:
    """The smallest of some --dims combinations (dicts), by their sizes in order: where the verdict
    and the report compare engines; {} for none."""
    return dict(min((tuple(d.items()) for d in found), key=lambda d: [v for _, v in d], default=()))
