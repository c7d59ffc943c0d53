"""Converters for ONNX operators TVM's importer lacks or gets wrong (issue #32), and constant
folding of operators whose inputs are all constants.

TVM's ONNX importer has no Swish, Celu, SwiGLU, LpNormalization, ReverseSequence, CenterCropPad,
BitCast; its RMSNormalization fails to lower and its Upsample fails on scales given as an input;
its Tile computes garbage with mcpu=znver4/znver5 (the correctness gate caught it). Each is
written here with Relax operators every pass understands. An operator no converter handles whose
inputs are all constants (MelWeightMatrix, for one) is computed once with ONNX's reference
implementation and becomes a constant, as an exporter folding constants would have left it.
"""

import numpy as np

ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}


def _constant(expr) -> np.ndarray | None:
    value = getattr(expr, "value", None)
    return value.numpy() if hasattr(value, "numpy") else None


def _shape(expr) -> list[int]:
    return [int(d) for d in expr.ty.shape]


def _data_and_constant(inputs, what: str) -> tuple:
    """The data input, its static shape and the second input's constant value: operators whose
    indices are computed here from a constant refuse a runtime one in one line."""
    value = _constant(inputs[1])
    if value is None:
        raise ValueError(f"{what} must be a constant")
    return inputs[0], _shape(inputs[0]), value


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def converters() -> dict:
    """ONNX operator -> converter class, for the importer's table."""
    from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter

    from workbench.compiler.recurrent import recurrent_converters

    return {**_activations(OnnxOpConverter), **_normalizations(OnnxOpConverter),
            **_layout_converters(OnnxOpConverter), **_index_converters(OnnxOpConverter),
            **recurrent_converters(OnnxOpConverter)}


def _const(value, like):
    from tvm import relax

    return relax.const(value, like.ty.dtype)


def _activations(base) -> dict:
    from tvm.relax import op

    def swish(x, alpha):
        return op.multiply(x, op.sigmoid(op.multiply(x, _const(alpha, x))))

    class Swish(base):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return swish(inputs[0], float(attr.get("alpha", 1.0)))

    class SwiGLU(base):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return op.multiply(swish(inputs[0], float(attr.get("alpha", 1.0))), inputs[1])

    class Celu(base):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            x, alpha = inputs[0], float(attr.get("alpha", 1.0))
            negative = op.multiply(_const(alpha, x), op.subtract(op.exp(op.divide(x, _const(alpha, x))),
                                                                 _const(1.0, x)))
            return op.add(op.maximum(x, _const(0.0, x)), op.minimum(negative, _const(0.0, x)))

    return {"Swish": Swish, "SwiGLU": SwiGLU, "Celu": Celu}


def _normalizations(base) -> dict:
    from tvm.relax import op

    class LpNormalization(base):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            x, p = inputs[0], int(attr.get("p", 2))
            axis = [_axis(int(attr.get("axis", -1)), len(x.ty.shape))]
            if p == 1:
                norm = op.sum(op.abs(x), axis, keepdims=True)
            else:
                norm = op.sqrt(op.sum(op.multiply(x, x), axis, keepdims=True))
            zero = op.equal(norm, _const(0.0, x))  # a zero vector stays zero (ONNX), not 0/0
            return op.where(zero, op.zeros_like(x), op.divide(x, op.where(zero, op.ones_like(norm), norm)))

    class RMSNormalization(base):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            x, scale = inputs[0], inputs[1]
            rank = len(x.ty.shape)
            axes = list(range(_axis(int(attr.get("axis", -1)), rank), rank))
            mean_square = op.mean(op.multiply(x, x), axes, keepdims=True)
            eps = _const(float(attr.get("epsilon", 1e-5)), x)
            return op.multiply(op.divide(x, op.sqrt(op.add(mean_square, eps))), scale)

    return {"LpNormalization": LpNormalization, "RMSNormalization": RMSNormalization}


def _layout_converters(base) -> dict:
    from tvm import topi
    from tvm.relax import op

    class Tile(base):
        """Each axis d with repeats r as (r, d) broadcast, then merged: injective kernels only."""

        @classmethod
        def _impl_v6(cls, bb, inputs, attr, params):
            x, repeats = inputs[0], _constant(inputs[1])
            if repeats is None:
                from tvm.relax.frontend.onnx.onnx_frontend import Tile as Stock

                return Stock.get_converter(13)(bb, inputs, attr, params)
            shape, repeats = _shape(x), [int(r) for r in repeats]
            spread = [v for d in shape for v in (1, d)]
            target = [v for r, d in zip(repeats, shape) for v in (r, d)]
            tiled = op.broadcast_to(op.reshape(x, spread), target)
            return op.reshape(tiled, [r * d for r, d in zip(repeats, shape)])

    class BitCast(base):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return bb.call_te(topi.reinterpret, inputs[0], ONNX_DTYPES[int(attr["to"])])

    class Upsample(base):
        @classmethod
        def _impl_v9(cls, bb, inputs, attr, params):
            x, scales = inputs[0], _constant(inputs[1])
            mode = attr.get("mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            shape = _shape(x)
            if scales is None or len(shape) != 4 or list(scales[:2]) != [1, 1]:
                raise ValueError("Upsample: only constant scales of 1 on the batch and channel axes are supported")
            size = [int(np.floor(d * s)) for d, s in zip(shape[2:], scales[2:])]
            return op.image.resize2d(x, size, layout="NCHW", coordinate_transformation_mode="asymmetric",
                                     method="nearest_neighbor" if mode == "nearest" else "linear",
                                     rounding_method="floor" if mode == "nearest" else "")

    return {"Tile": Tile, "BitCast": BitCast, "Upsample": Upsample}


def _index_converters(base) -> dict:
    """Converters that compute their indices here, from constant inputs and static shapes."""
    from tvm import relax

    op = relax.op

    class ReverseSequence(base):
        @classmethod
        def _impl_v10(cls, bb, inputs, attr, params):
            x, shape, lengths = _data_and_constant(inputs, "ReverseSequence: sequence_lens")
            time, batch = int(attr.get("time_axis", 0)), int(attr.get("batch_axis", 1))
            t = np.arange(shape[time]).reshape([-1 if a == time else 1 for a in range(len(shape))])
            n = lengths.astype(np.int64).reshape([-1 if a == batch else 1 for a in range(len(shape))])
            index = np.broadcast_to(np.where(t < n, n - 1 - t, t), shape).astype("int64")
            return op.gather_elements(x, relax.const(index), time)

    class CenterCropPad(base):
        @classmethod
        def _impl_v18(cls, bb, inputs, attr, params):
            x, shape, wanted = _data_and_constant(inputs, "CenterCropPad: shape")
            axes = [_axis(int(a), len(shape)) for a in attr.get("axes", range(len(shape)))]
            begin, end, pads = [0] * len(shape), list(shape), [0] * (2 * len(shape))
            for axis, size in zip(axes, (int(w) for w in wanted)):
                if size < shape[axis]:
                    begin[axis] = (shape[axis] - size) // 2
                    end[axis] = begin[axis] + size
                else:
                    pads[axis] = (size - shape[axis]) // 2
                    pads[len(shape) + axis] = size - shape[axis] - pads[axis]
            cropped = op.strided_slice(x, list(range(len(shape))), begin, end)
            pad_width = [v for a in range(len(shape)) for v in (pads[a], pads[len(shape) + a])]
            return op.nn.pad(cropped, pad_width) if any(pads) else cropped

    return {"ReverseSequence": ReverseSequence, "CenterCropPad": CenterCropPad, **_fixed_converters(base)}


LAYER_NORM_WITH_STATS = "WorkbenchLayerNormalizationWithStats"  # a LayerNormalization whose Mean is used


def _fixed_converters(base) -> dict:
    """The importer's own converters with their bugs worked around."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend as stock

    op = relax.op

    class OneHot(stock.OneHot):
        """A float depth (ONNX allows any numeric type) reached relax.one_hot as a float."""

        @classmethod
        def _impl_v11(cls, bb, inputs, attr, params):
            depth, values = _constant(inputs[1]), _constant(inputs[2])
            if depth is None or values is None:
                return super()._impl_v11(bb, inputs, attr, params)
            off, on = (relax.prim_value(tvm.tirx.const(v, str(values.dtype))) for v in values.tolist())
            indices, size = inputs[0], int(depth.reshape(-1)[0])
            if "int" not in str(indices.ty.dtype):  # ONNX takes indices of any numeric type
                indices = bb.normalize(op.astype(indices, "int64"))
            dtype = indices.ty.dtype
            indices = op.where(op.less(indices, relax.const(0, dtype)),
                               op.add(indices, relax.const(size, dtype)), indices)
            axis = int(attr.get("axis", -1))  # negative: counted on the output, one axis more than indices
            return op.one_hot(indices, on, off, size, axis + len(inputs[0].ty.shape) + 1 if axis < 0 else axis)

    class LayerNormalizationWithStats(base):
        """The importer returns placeholders for Mean and InvStdDev; here they are computed."""

        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            x, scale, bias = (list(inputs) + [None, None])[:3]
            rank = len(x.ty.shape)
            axes = list(range(_axis(int(attr.get("axis", -1)), rank), rank))
            mean = bb.normalize(op.mean(x, axes, keepdims=True))
            centered = bb.normalize(op.subtract(x, mean))
            variance = op.mean(op.multiply(centered, centered), axes, keepdims=True)
            eps = relax.const(float(attr.get("epsilon", 1e-5)), x.ty.dtype)
            inverse = bb.normalize(op.divide(relax.const(1.0, x.ty.dtype), op.sqrt(op.add(variance, eps))))
            y = op.multiply(op.multiply(centered, inverse), scale)
            return relax.Tuple([op.add(y, bias) if bias is not None else y, mean, inverse])

    return {"OneHot": OneHot, LAYER_NORM_WITH_STATS: LayerNormalizationWithStats}


def _layer_norm_stats(model):
    """LayerNormalization nodes whose Mean or InvStdDev output is used, renamed for our converter."""
    import onnx

    used = [i for i, n in enumerate(model.graph.node)
            if n.op_type == "LayerNormalization" and any(o for o in n.output[1:])]
    if not used:
        return model
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    for i in used:
        renamed.graph.node[i].op_type = LAYER_NORM_WITH_STATS
    return renamed


def fold_constant_nodes(model, supported: set[str]):
    """A copy of the model in which each node TVM cannot convert whose inputs are all constants is
    replaced by its outputs, computed by ONNX's reference implementation; the model itself when
    there are none. A node the reference cannot run is left for the importer to refuse."""
    import onnx
    from onnx import numpy_helper

    from workbench.compiler.shapefold import evaluate, replace_with_constants

    model = _layer_norm_stats(model)
    constants = {t.name for t in model.graph.initializer}
    if not any(_foldable(n, supported, constants) for n in model.graph.node):
        return model
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    done = []
    for node in [n for n in folded.graph.node if _foldable(n, supported, constants)]:
        outputs = evaluate(node, values)
        if outputs is not None:
            values.update(zip(node.output, outputs))
            done.append(node)
    replace_with_constants(folded.graph, done, values)
    return folded


def _foldable(node, supported: set[str], constants: set[str]) -> bool:
    return node.op_type not in supported and node.domain in ("", "ai.onnx") and \
        all(i in constants or not i for i in node.input)
