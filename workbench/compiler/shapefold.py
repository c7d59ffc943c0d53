"""Shape arithmetic folded to constants at the fixed shapes a variant is compiled at.

Exporters compute reshape targets at run time: torch's exporter writes Shape -> Squeeze -> Mul ->
Reshape -> Concat -> Reshape for every attention head split. TVM's importer turns a Shape into a
symbolic value and fails on some of the chains built on it ("Reshape expects the input data to be a
Tensor. However, the given input is ir.PrimType"). Each variant is imported at static shapes, so
those chains are constants there: this pass computes them with ONNX's reference implementation and
leaves literal shapes for the importer, as onnx-simplifier would, without touching float tensors.
"""

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# Integer (and boolean) element types: what shape arithmetic computes, and all this pass folds.
_INTEGER_TYPES = {TensorProto.INT64, TensorProto.INT32, TensorProto.INT16, TensorProto.INT8,
                  TensorProto.UINT64, TensorProto.UINT32, TensorProto.UINT16, TensorProto.UINT8, TensorProto.BOOL}
_LARGEST = 1 << 16  # elements: a shape or an index list, never a tensor of data


def fold_shape_arithmetic(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """A copy of the model, its inputs fixed to `shapes`, in which every Shape node of a tensor whose
    shape is then known, and every integer-valued node computed only from constants, is replaced by
    its value; the model itself when it has no Shape node."""
    if not any(n.op_type == "Shape" and n.domain in ("", "ai.onnx") for n in model.graph.node):
        return model
    static = _with_input_shapes(model, shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(static, data_prop=True)
    except Exception:  # an invalid model: the importer names what is wrong with it
        return model
    types = {v.name: v.type.tensor_type for v in (*inferred.graph.value_info, *inferred.graph.input,
                                                  *inferred.graph.output)}
    values = {t.name: numpy_helper.to_array(t) for t in static.graph.initializer if _small(t.dims)}
    outputs = {o.name for o in static.graph.output}
    folded = []
    for node in static.graph.node:
        value = _fold(node, values, types) if not set(node.output) & outputs else None
        if value is not None:
            values.update(zip(node.output, value))
            folded.append(node)
    if not folded:
        return model
    replace_with_constants(static.graph, folded, values)
    return static


def evaluate(node, values: dict) -> list[np.ndarray] | None:
    """The node's outputs, computed by ONNX's reference implementation from `values`; None when it
    cannot compute them (the node is then left for the importer, which names what it cannot take)."""
    from onnx.reference import ReferenceEvaluator

    try:
        return [np.asarray(r) for r in ReferenceEvaluator(node).run(None, {i: values[i] for i in node.input if i})]
    except Exception:
        return None


def replace_with_constants(graph, nodes: list, values: dict) -> None:
    """Each of `nodes` removed from `graph`, its outputs becoming initializers holding their `values`."""
    for node in nodes:
        graph.node.remove(node)
        graph.initializer.extend(numpy_helper.from_array(values[o], o) for o in node.output)


def _fold(node, values: dict, types: dict) -> list | None:
    if node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Shape":
        dims = _known_dims(types.get(node.input[0]))
        if dims is None:
            return None
        attrs = {a.name: a.i for a in node.attribute}
        return [np.array(dims[attrs.get("start", 0):attrs.get("end")], np.int64)]  # ONNX slices as Python does
    if not all(i in values for i in node.input if i) or not all(_integer(types.get(o)) for o in node.output):
        return None
    result = evaluate(node, values)
    return result if result is not None and all(r.size <= _LARGEST for r in result) else None


def _with_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    static = onnx.ModelProto()
    static.CopyFrom(model)
    for graph_input in static.graph.input:
        if graph_input.name in shapes:
            dims = graph_input.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[graph_input.name]):
                dim.Clear()
                dim.dim_value = size
    return static


def _known_dims(tensor_type) -> list[int] | None:
    if tensor_type is None or not tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    return None if None in dims else dims


def _integer(tensor_type) -> bool:
    return tensor_type is not None and tensor_type.elem_type in _INTEGER_TYPES


def _small(dims) -> bool:
    return int(np.prod(dims, dtype=np.int64)) <= _LARGEST
