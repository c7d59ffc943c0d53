"""Dynamic non-batch dimensions (`--dims seq=64,128`): parse the option, find a model's symbolic
dimensions, and name the variants a build compiles (one per batch size and dims combination).

A variant is static: TVM compiles fixed shapes, so every combination is its own library. Pure
code (no tvm, no onnx import): the CLI, the server and the bundle readers all use it.
"""

import itertools
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
        if not values or not all(v.isdigit() and int(v) > 0 for v in values):
            raise WorkbenchError(f"--dims {name} takes comma-separated positive integers, e.g. {name}=64,128 "
                                 f"(got {sizes!r})")
        parsed[name] = tuple(sorted({int(v) for v in values}))
    return tuple(parsed.items())


def format_dims(dims: Dims) -> str:
    return SEPARATOR.join(f"{name}={','.join(map(str, sizes))}" for name, sizes in dims)


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


def check_dims(specs, dims: Dims) -> None:
    """Every symbolic dimension named and nothing else: one line saying which and how, otherwise."""
    found = symbolic_dims(specs)
    listed = ", ".join(f"'{n}'" for n in found) or "none"
    for name, _ in dims:
        if name not in found:
            raise WorkbenchError(f"--dims names '{name}', which is not a dynamic dimension of the model's inputs "
                                 f"(its dynamic non-batch dimensions: {listed})")
    if "?" in found:
        where, axis = found["?"][0]
        raise ModelError(f"input '{where}' axis {axis} is dynamic and unnamed; --dims needs a name: export the "
                         "model with a named (dim_param) or fixed dimension there")
    named = {name for name, _ in dims}
    for name, places in found.items():
        if name not in named:
            where, axis = places[0]
            raise ModelError(f"input '{where}' axis {axis} is the dynamic dimension '{name}'; "
                             f"pass --dims {name}=<sizes> (e.g. --dims {name}=128) to compile it at those sizes")


@dataclass(frozen=True, order=True)
class Variant:
    """One static shape a build compiles: a batch size and a size for each named dimension."""

    batch: int
    dims: tuple[tuple[str, int], ...] = ()

    @property
    def tag(self) -> str:
        """Short and file-name safe: b8, b8-seq128."""
        return "-".join([f"b{self.batch}", *(f"{n}{v}" for n, v in self.dims)])

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


def shape_key(shapes: dict[str, list[int]]) -> str:
    """A library's key in a manifest with dims: its full input shapes, `x:1x128x64;mask:1x128`."""
    return ";".join(f"{name}:{'x'.join(map(str, shape))}" for name, shape in shapes.items())
