"""A small ONNX graph builder with seeded weights, for the built-in model zoo.

Weights are drawn with He / Xavier-like scaling so activations keep a sane range through deep
networks; that keeps the correctness gate's relative errors meaningful.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BATCH = "batch"  # the dynamic batch dimension every zoo model has


class GraphBuilder:
    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def input(self, name: str, elem_type: int, shape: list) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, elem_type: int, shape: list) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def normal(self, shape: tuple, std: float, prefix: str = "w") -> str:
        return self.const(self.rng.normal(0.0, std, size=shape).astype(np.float32), prefix)

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.fresh(op_type), **attrs))
        return out

    # -- layers ----------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None,
             group: int = 1, bias: bool = True, gain: float = 1.0) -> str:
        """Conv as exporters emit it with BatchNorm folded in: weight plus bias.

        `gain` scales the weights as a folded BatchNorm's gamma would; residual branches end with a
        small gain (as in "zero-init residual" training) so activations stay O(1) through deep nets.
        """
        pad = k // 2 if pad is None else pad
        fan_in = cin // group * k * k
        w = self.normal((cout, cin // group, k, k), gain * np.sqrt(2.0 / fan_in))
        inputs = [x, w]
        if bias:
            inputs.append(self.normal((cout,), 0.01, "b"))
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4, group=group)

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def relu6(self, x: str) -> str:
        lo = self.const(np.array(0.0, np.float32), "min")
        hi = self.const(np.array(6.0, np.float32), "max")
        return self.op("Clip", [x, lo, hi])

    def maxpool(self, x: str, k: int, stride: int, pad: int = 0, ceil: bool = False) -> str:
        return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                       ceil_mode=int(ceil))

    def global_avgpool_flatten(self, x: str) -> str:
        return self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)

    def gemm(self, x: str, cin: int, cout: int) -> str:
        """Linear layer as torch exports it: Gemm with the weight stored [out, in] and transB=1."""
        w = self.normal((cout, cin), np.sqrt(1.0 / cin))
        b = self.normal((cout,), 0.01, "b")
        return self.op("Gemm", [x, w, b], transB=1)

    def linear(self, x: str, cin: int, cout: int) -> str:
        """Linear layer on a 3-D activation as transformer exporters emit it: MatMul then Add."""
        w = self.normal((cin, cout), np.sqrt(1.0 / cin))
        b = self.normal((cout,), 0.01, "b")
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def layernorm(self, x: str, dim: int) -> str:
        scale = self.const(np.ones(dim, np.float32) + self.rng.normal(0, 0.02, dim).astype(np.float32))
        shift = self.normal((dim,), 0.02, "b")
        return self.op("LayerNormalization", [x, scale, shift], axis=-1, epsilon=1e-12)

    def gelu_erf(self, x: str) -> str:
        """GELU as BERT exporters emit it: x * 0.5 * (1 + erf(x / sqrt(2)))."""
        inv_sqrt2 = self.const(np.array(1 / np.sqrt(2.0), np.float32), "c")
        one = self.const(np.array(1.0, np.float32), "c")
        half = self.const(np.array(0.5, np.float32), "c")
        erf = self.op("Erf", [self.op("Mul", [x, inv_sqrt2])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [erf, one])]), half])

    def build(self, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="workbench-zoo")
        model.ir_version = 8
        for key, value in (metadata or {}).items():
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
        onnx.checker.check_model(model)
        return model


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
