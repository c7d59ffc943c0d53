"""ONNX -> Relax, one static-shape module per batch size, prepared identically for tuning and build."""

import contextlib
import io
import json
from contextlib import contextmanager

import onnx

from workbench.dims import describe_dims
from workbench.errors import ModelError, TargetError, first_line
from workbench.models import input_specs, static_shapes


def supported_operators() -> set[str]:
    from tvm.relax.frontend.onnx import onnx_frontend

    from workbench.compiler.converters import converters

    # the importer's own table (no private copy of it), and ours
    return set(onnx_frontend._get_convert_map()) | set(converters())


def unsupported_operators(model: onnx.ModelProto) -> list[str]:
    supported = supported_operators()
    return sorted({n.op_type for n in model.graph.node if n.op_type not in supported})


def _constant_bound(expr) -> float | None:
    """A Clip bound the importer holds as a constant scalar (not NaN), else None."""
    import numpy as np

    value = getattr(expr, "value", None)
    array = value.numpy() if hasattr(value, "numpy") else None
    return float(array) if array is not None and array.size == 1 and not np.isnan(array).any() else None


def _clamp(bb, x, low: float, high: float):
    """max(x, low) then min(., high) as relax's broadcasting ops; an infinite bound is left out."""
    from tvm import relax

    if low != -float("inf"):
        x = bb.normalize(relax.op.maximum(x, relax.const(low, x.ty.dtype)))
    if high != float("inf"):
        x = bb.normalize(relax.op.minimum(x, relax.const(high, x.ty.dtype)))
    return x


@contextmanager
def _clip_as_relax_ops():
    """The importer lowers Clip (mobilenetv2's ReLU6) straight to TIR kernels, which the layout
    pass cannot see into: channels-last wrapped every ReLU6 in a transpose to NCHW and back, and
    no ReLU6 fused into its convolution. With constant bounds Clip becomes relax's maximum and
    minimum, which every pass understands; any other Clip keeps the importer's own lowering.
    HardSwish (MobileNetV3's activation, torch's nn.Hardswish) clips the same way inside. The
    importer has no hook for one operator, so its table is swapped for the one import."""
    from tvm.relax.frontend.onnx import onnx_frontend

    is_float = onnx_frontend._relax_dtype_is_floating_point
    inf = float("inf")

    class ClipWithConstantBounds(onnx_frontend.Clip):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            if not is_float(inputs[0].ty.dtype):
                return super()._impl_v1(bb, inputs, attr, params)
            return _clamp(bb, inputs[0], float(attr.get("min", -inf)), float(attr.get("max", inf)))

        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            bounds = (list(inputs[1:3]) + [None, None])[:2]
            values = [_constant_bound(b) if b is not None else default for b, default in zip(bounds, (-inf, inf))]
            if not is_float(inputs[0].ty.dtype) or None in values:
                return super()._impl_v13(bb, inputs, attr, params)
            return _clamp(bb, inputs[0], *values)

    class HardSwishWithoutClip(onnx_frontend.HardSwish):
        @classmethod
        def _impl_v14(cls, bb, inputs, attr, params):
            from tvm import relax

            x = inputs[0]
            if not is_float(x.ty.dtype):
                return super()._impl_v14(bb, inputs, attr, params)
            gate = _clamp(bb, bb.normalize(relax.op.add(x, relax.const(3, x.ty.dtype))), 0.0, 6.0)
            return relax.op.multiply(x, relax.op.divide(gate, relax.const(6, x.ty.dtype)))

    from workbench.compiler.converters import converters

    original = onnx_frontend._get_convert_map
    ours = converters()  # operators the importer lacks or gets wrong: compiler/converters.py
    onnx_frontend._get_convert_map = lambda: {**original(), "Clip": ClipWithConstantBounds,
                                              "HardSwish": HardSwishWithoutClip, **ours}
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original


def import_model(model: onnx.ModelProto, batch: int, sizes: dict[str, int] | None = None):
    """The Relax module for one batch size (and `sizes` of named dynamic dimensions: --dims),
    weights bound as constants so they fold at build time."""
    from tvm.relax.frontend.onnx import from_onnx

    from workbench.compiler.converters import fold_constant_nodes
    from workbench.compiler.shapefold import fold_shape_arithmetic

    shapes = {name: list(shape) for name, shape in static_shapes(input_specs(model), batch, sizes).items()}
    model = fold_constant_nodes(fold_shape_arithmetic(model, shapes), supported_operators())
    missing = unsupported_operators(model)
    if missing:
        raise ModelError(f"TVM's ONNX importer does not support operator(s) {', '.join(missing)}; "
                         "replace them in the model (or export with a different opset) and retry")
    dtypes = {spec.name: spec.dtype for spec in input_specs(model)}
    printed = io.StringIO()  # the importer prints its failures to stdout before raising them
    try:
        with _clip_as_relax_ops(), contextlib.redirect_stdout(printed):
            return from_onnx(model, shape_dict=shapes, dtype_dict=dtypes)
    except Exception as exc:  # the importer raises bare TVM errors
        from workbench.compiler.failures import tvm_failure

        at = f"{batch}{describe_dims(sizes or {})}"
        raise tvm_failure("import", exc, at, printed.getvalue()) from None


def _take_wrapping_indices(bb, call):
    """Relax's default "fast" take reads outside the table on an out-of-range index (the importer
    already maps ONNX's negative indices). A served model then answered a bad token id with
    garbage read from memory or a crash, and MetaSchedule's random test inputs never gave
    bert-mini's embedding lookup one valid run. "wrap" changes nothing for valid indices and keeps
    every read inside the table."""
    from tvm import topi

    return bb.call_te(topi.take, call.args[0], call.args[1], call.attrs.axis, mode="wrap")


# Convolutions on CPUs run channels-last: NHWC activations, HWIO weights. The output channels are
# then the innermost, contiguous axis of the weights and the result, which the tuned kernels
# vectorize and block in registers (about 3x faster on resnet18's 512-channel 3x3 convolution:
# docs/BENCHMARKS.md, "How the compiler gap closed"). The weight transposes fold into the
# constants at build time; only the model's input and output are transposed at run time.
CPU_CONV_LAYOUTS = {"relax.nn.conv2d": ["NHWC", "HWIO"]}


def _layout_passes(target) -> list:
    from tvm import relax

    return [relax.transform.ConvertLayout(CPU_CONV_LAYOUTS)]


def _winograd_passes(target) -> list:
    """After the layout pass, which the rewrite reads (channels-last); see compiler/winograd.py.
    Dead-code elimination then drops the direct convolutions' weight transposes the rewrite left
    unused (and any function no exported one reaches, which the build would not keep either)."""
    from tvm import relax

    from workbench.compiler.winograd import winograd_pass

    return [winograd_pass(), relax.transform.DeadCodeElimination()]


# Weight prepacking on CPUs: the weights (constants) are marked layout-free, so a tuned schedule
# may store them in whatever order it reads them (tiled to its register blocks), and the build
# folds that rewrite into the constants (`prepacked_weights`). It pays with weights cold, as the
# model meets them, not timed warm: the weights' order matters when they stream from memory
# (docs/BENCHMARKS.md, "How the compiler gap closed" and "Tried and not kept").
def _prepack_passes(target) -> list:
    from tvm import relax

    return [relax.transform.AttachAttrLayoutFreeBuffers()]


def prepacked_weights(target, prepack: bool = True) -> list:
    """After the records are applied: each schedule's weight rewrite split into its own kernel,
    then run once at build time on the constant weights."""
    from tvm import relax

    if target.kind.name != "llvm" or not prepack:
        return []
    return [relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant()]


def _fast_math_passes(target) -> list:
    """erf, exp, tanh and softmax as TVM's branch-free approximations. The default erf calls libm
    once per element, and libm takes a shortcut on the large values of MetaSchedule's random
    inputs, so tuning misjudged bert-mini's GELU matmul (far slower in the model than when tuned).
    The approximations vectorize and cost the same on every input; the correctness gate checks
    them against ONNX Runtime."""
    from tvm import relax

    return [relax.transform.FastMathTransform()]


def lower(mod, target, passes: tuple[str, ...]):
    """The inference-only rewrites, with our passes named in `passes` (compiler/passes.py), run
    before task extraction and before the build, so workloads match. Raises TVM's own errors."""
    import tvm
    from tvm import relax

    from workbench.compiler import passes as ours

    def if_on(name, make):
        return make(target) if name in passes else []

    with target:
        return tvm.transform.Sequential([
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            *if_on(ours.CHANNELS_LAST, _layout_passes),
            *if_on(ours.WINOGRAD, _winograd_passes),
            *if_on(ours.FAST_MATH, _fast_math_passes),
            relax.transform.LegalizeOps({"relax.take": _take_wrapping_indices}),
            relax.get_pipeline("zero"),
            *if_on(ours.PREPACK, _prepack_passes),
        ])(mod)


def prepare(mod, target, passes: tuple[str, ...] | None = None):
    """`lower` with the given passes (default: every one that applies), TVM's failure as one line."""
    from workbench.compiler.failures import tvm_failure
    from workbench.compiler.passes import applicable

    try:
        return lower(mod, target, applicable(mod, target).passes if passes is None else passes)
    except Exception as exc:
        raise tvm_failure("lower", exc) from None


def make_target(target_json: dict):
    import tvm

    try:
        return tvm.target.Target(target_json)
    except Exception as exc:
        raise TargetError(f"TVM rejects the target {json.dumps(target_json)}: {first_line(exc)}; "
                          "fix the profile's [target] / [host] tables") from None
