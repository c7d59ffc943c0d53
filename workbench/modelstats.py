"""Parameter count and FLOPs per inference, computed from the ONNX graph with shape inference.

Convention (as in the papers the zoo follows): a multiply-add is 2 FLOPs in Conv, Gemm and MatMul;
every other op costs one FLOP per output element. Shapes are taken at batch 1.
"""

from dataclasses import dataclass

import numpy as np

from workbench.errors import ModelError
from workbench.models import input_specs

_FREE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant", "Transpose",
             "Concat", "Gather", "Cast", "Slice", "Split", "Dropout"}


@dataclass(frozen=True)
class ModelStats:
    parameters: int
    flops: int  # per inference at batch 1

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _static_model(model):
    """A copy whose dynamic batch dimension is fixed at 1, so shape inference yields numbers."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for spec, value in zip(input_specs(model), [i for i in fixed.graph.input
                                                  if i.name not in {t.name for t in model.graph.initializer}]):
        fixed_batch = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) else 1
        for dim, size in zip(value.type.tensor_type.shape.dim, spec.with_batch(fixed_batch)):
            dim.Clear()
            dim.dim_value = size
    return onnx.shape_inference.infer_shapes(fixed, data_prop=True)


def count_parameters(model) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def compute_stats(model) -> ModelStats:
    params = count_parameters(model)
    inferred = _static_model(model)
    shapes = {}
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    for t in inferred.graph.initializer:
        shapes[t.name] = list(t.dims)

    flops = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0])
        if out is None:
            raise ModelError(f"cannot infer the shape of '{node.output[0]}' ({node.op_type}) to count FLOPs")
        out_elems = int(np.prod(out))
        if node.op_type in ("Conv", "MatMul", "Gemm") and not all(i in shapes for i in node.input[:2]):
            raise ModelError(f"cannot infer the input shapes of {node.op_type} '{node.name}' to count FLOPs")
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # (cout, cin/group, kh, kw)
            flops += 2 * out_elems * int(np.prod(w[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a = shapes[node.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if trans_a else a[-1]
            flops += 2 * out_elems * k
        elif node.op_type not in _FREE_OPS:
            flops += out_elems
    return ModelStats(parameters=params, flops=flops)
