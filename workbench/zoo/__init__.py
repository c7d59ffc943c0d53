"""The built-in model zoo: generated deterministically (seeded weights), never downloaded."""

from collections.abc import Callable

import onnx

from workbench.zoo.cnn import mobilenetv2, resnet18, resnet50, squeezenet1_1
from workbench.zoo.transformer import bert_mini, mlp

BUILDERS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp": mlp,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenetv2": mobilenetv2,
    "squeezenet1.1": squeezenet1_1,
    "bert-mini": bert_mini,
}
