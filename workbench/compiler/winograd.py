"""Winograd F(2x2, 3x3) for the channels-last 3x3 convolutions where it pays, as three Relax ops.

A 3x3 stride-1 convolution computes each 2x2 output tile from a 4x4 input tile; Winograd's
transforms turn that into 16 independent products over the channels, so the convolution becomes
a batched matrix multiply of 16 x (tiles x in-channels) x (in-channels x out-channels): 16 multiply-
adds per tile and channel pair where the direct convolution does 36 (2.25x fewer). The weights'
transform runs here, once, in float64; the input's and output's transforms are small injective
kernels, so the bias, residual add and ReLU after the convolution fuse into the output transform.
The multiply is a plain `matmul` with a constant operand, which MetaSchedule tunes and prepacks
like any other.

Where it pays was measured, not assumed (docs/BENCHMARKS.md, "How the compiler gap closed" and
"Tried and not kept"): `pays` says which shapes.
"""

import functools

import numpy as np

TILE = 2  # output tile: F(2x2, 3x3). 14x14 splits evenly only into 2x2 tiles, and its transforms
# have coefficients 0, +-1 and +-1/2, exact in float32 (F(4x4)'s are not)
ALPHA = TILE + 2  # input tile


@functools.cache
def _transform_matrices():
    """TOPI's Cook-Toom matrices for F(2, 3): input tile d -> B^T d B, weights g -> G g G^T, and
    the product m -> A^T m A."""
    from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

    return _cook_toom_convolution(_interpolation_points(ALPHA), TILE, 3)


def pays(in_channels: int, out_channels: int, height: int, width: int) -> bool:
    """Where Winograd measured faster inside resnet18 (three kernels per convolution against the
    tuned direct one; docs/BENCHMARKS.md, "How the compiler gap closed"): 128 channels at 28x28 and
    256 at 14x14. Left direct, by prediction: 64 channels at 56x56 (its input transform
    is twice the work per multiply) and 512 at 7x7 (16 MB of transformed weights against 9.4
    MB, and those convolutions already wait on their weights)."""
    return 128 <= min(in_channels, out_channels) and max(in_channels, out_channels) <= 256 and height * width <= 28 * 28


def _static(shape) -> list[int] | None:
    try:
        return [int(d) for d in shape]
    except TypeError:  # a symbolic dimension: the rewrite needs the tiles' count
        return None


def candidate_shape(call) -> tuple[int, int, int, int, int] | None:
    """(n, h, w, in_channels, out_channels) of a 3x3 stride-1 'same' float32 convolution,
    channels-last, one group, no dilation, static shapes; None for any other."""
    attrs = call.attrs
    kernel, data, out = (_static(t.ty.shape) for t in (call.args[1], call.args[0], call))
    if not (attrs.data_layout == "NHWC" and attrs.kernel_layout == "HWIO" and attrs.out_layout == "NHWC"
            and int(attrs.groups) == 1 and [int(s) for s in attrs.strides] == [1, 1]
            and [int(d) for d in attrs.dilation] == [1, 1] and [int(p) for p in attrs.padding] == [1, 1, 1, 1]
            and all(t.ty.dtype == "float32" for t in (call.args[0], call.args[1], call))
            and None not in (kernel, data, out) and kernel[:2] == [3, 3]):
        return None
    return (*data, out[3])


def transformed_weights(hwio: np.ndarray) -> np.ndarray:
    """G g G^T for every (in, out) channel pair: (16, in, out), computed in float64."""
    _, _, G = _transform_matrices()
    packed = np.einsum("ek,nl,klio->enio", G, G, hwio.astype(np.float64))
    return packed.reshape(ALPHA * ALPHA, *hwio.shape[2:]).astype(np.float32)


def _tiles(size: int) -> int:
    return (size + TILE - 1) // TILE


def _pick(values, index, dtype: str = "float32"):
    """values[index] for a loop variable `index`, as a chain of selects on constants. The index is
    an outer loop's, so the compiler hoists the choice out of the vectorized channel loop. (A
    constant table passed in as a buffer was marked layout-free like the weights, and with the
    tuned schedules resnet18 failed the correctness gate, max abs error 8.4; with selects it passes.)"""
    from tvm import tirx

    cast = float if dtype.startswith("float") else int
    picked = tirx.const(cast(values[-1]), dtype)
    for i in reversed(range(len(values) - 1)):
        picked = tirx.Select(index == i, tirx.const(cast(values[i]), dtype), picked)
    return picked


def _nonzeros(matrix: np.ndarray) -> list[tuple[list[int], list[float]]]:
    """B's nonzeros as terms: term u holds, for every column, the row and coefficient of that
    column's u-th nonzero. F(2, 3)'s B has two per column, so each transformed value sums 2 x 2
    inputs, not 4 x 4 (written with all 16 terms, most of them zero, the input transform was slower)."""
    columns = [np.flatnonzero(matrix[:, j]) for j in range(matrix.shape[1])]
    return [([int(c[u]) if u < len(c) else 0 for c in columns],  # a shorter column adds zero terms
             [float(matrix[c[u], j]) if u < len(c) else 0.0 for j, c in enumerate(columns)])
            for u in range(max(len(c) for c in columns))]


def data_pack(x):
    """(n, h, w, c) -> (16, tiles, c): each 4x4 input tile d as B^T d B, flattened (eps, nu)."""
    from tvm import te, topi

    _, B, _ = _transform_matrices()
    terms = _nonzeros(B)
    n, h, w, c = (int(s) for s in x.shape)
    th, tw = _tiles(h), _tiles(w)
    padded = topi.nn.pad(x, [0, 1, 1, 0], [0, th * TILE + 1 - h, tw * TILE + 1 - w, 0], name="winograd_pad")

    def pack(e, p, ci):
        eps, nu = e // ALPHA, e % ALPHA
        batch, tile = p // (th * tw), p % (th * tw)
        row, col = (tile // tw) * TILE, (tile % tw) * TILE
        return sum(_pick(row_coefficients, eps) * _pick(col_coefficients, nu)
                   * padded[batch, row + _pick(rows, eps, "int32"), col + _pick(cols, nu, "int32"), ci]
                   for rows, row_coefficients in terms for cols, col_coefficients in terms)

    return te.compute((ALPHA * ALPHA, n * th * tw, c), pack, name="winograd_data_pack")


def inverse(product, n: int, h: int, w: int):
    """(16, tiles, c) -> (n, h, w, c): each tile's 4x4 product m as A^T m A, the output picking
    its place in the 2x2 tile."""
    from tvm import te

    A, _, _ = _transform_matrices()
    th, tw = _tiles(h), _tiles(w)

    def unpack(batch, y, x, co):
        p = batch * th * tw + (y // TILE) * tw + x // TILE
        return sum(_pick(A[i], y % TILE) * _pick(A[j], x % TILE) * product[i * ALPHA + j, p, co]
                   for i in range(ALPHA) for j in range(ALPHA))

    return te.compute((n, h, w, int(product.shape[2])), unpack, name="winograd_inverse")


# FuseOps' pattern for the input transform: nothing fuses into it. It reads each input 16 times
# (4x4 tiles overlapping by 2), so a fused producer (the previous output transform and its ReLU)
# would be recomputed 16 times over. TVM's OpPatternKind.kOpaque.
OP_PATTERN_OPAQUE = 8


def _constant_weights(expr, lookup) -> np.ndarray | None:
    """The HWIO weights as numpy when they are a constant, possibly behind ConvertLayout's
    permute_dims; None otherwise."""
    import tvm
    from tvm import relax

    while isinstance(expr, relax.Var) and lookup(expr) is not None:
        expr = lookup(expr)
    if isinstance(expr, tvm.ir.GenericConst):
        return expr.value.numpy()
    if isinstance(expr, relax.Call) and getattr(expr.op, "name", "") == "relax.permute_dims":
        inner = _constant_weights(expr.args[0], lookup)
        if inner is not None:
            axes = expr.attrs.axes
            return np.transpose(inner, [int(a) for a in axes] if axes is not None else None)
    return None


def winograd_pass(chosen=pays):
    """The Relax pass: every candidate convolution with constant weights whose shape is `chosen`
    (in_channels, out_channels, height, width), rewritten as data_pack -> matmul -> inverse."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Rewriter(PyExprMutator):
        def visit_call_(self, call):
            call = self.builder_.normalize(super().visit_call_(call))  # a remapped argument leaves it untyped
            shape = candidate_shape(call) if getattr(call.op, "name", "") == "relax.nn.conv2d" else None
            if shape is None or not chosen(*shape[3:], *shape[1:3]):
                return call
            n, h, w = shape[:3]
            weights = _constant_weights(call.args[1], self.lookup_binding)
            if weights is None:
                return call
            packed = self.builder_.emit(self.builder_.call_te(
                data_pack, call.args[0], primfunc_name_hint="winograd_data_pack",
                primfunc_attrs={"op_pattern": OP_PATTERN_OPAQUE}))
            product = self.builder_.emit(relax.op.matmul(packed, relax.const(transformed_weights(weights))))
            return self.builder_.call_te(inverse, product, n, h, w,
                                         primfunc_name_hint="winograd_inverse")

    @tvm.transform.module_pass(opt_level=0, name="WinogradConv2d")
    def rewrite(mod, ctx):
        rewriter = Rewriter(mod)
        for global_var, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(global_var, rewriter.visit_expr(func))
        return rewriter.builder_.get()

    return rewrite
