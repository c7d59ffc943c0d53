"""Convolutional image classifiers with the published layer shapes (torchvision's definitions)."""

import json

import onnx

from workbench.zoo.builder import BATCH, FLOAT, GraphBuilder

# What a server must do to an image before it reaches these models (torchvision's ImageNet recipe).
IMAGENET_PREPROCESS = json.dumps({"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                                  "std": [0.229, 0.224, 0.225], "layout": "NCHW", "scale": 1 / 255})


RESIDUAL_GAIN = 0.25


def _classifier(name: str, seed: int, body) -> onnx.ModelProto:
    g = GraphBuilder(name, seed)
    x = g.input("input", FLOAT, [BATCH, 3, 224, 224])
    features, channels = body(g, x)
    g.op("Identity", [g.gemm(g.global_avgpool_flatten(features), channels, 1000)], out="logits")
    g.output("logits", FLOAT, [BATCH, 1000])
    return g.build({"workbench.task": "image-classification", "workbench.preprocess": IMAGENET_PREPROCESS})


def _resnet_stem(g: GraphBuilder, x: str) -> str:
    return g.maxpool(g.relu(g.conv(x, 3, 64, 7, stride=2, pad=3)), 3, 2, pad=1)


def _basic_block(g: GraphBuilder, x: str, cin: int, cout: int, stride: int) -> str:
    out = g.conv(g.relu(g.conv(x, cin, cout, 3, stride)), cout, cout, 3, gain=RESIDUAL_GAIN)
    shortcut = g.conv(x, cin, cout, 1, stride, pad=0) if stride != 1 or cin != cout else x
    return g.relu(g.op("Add", [out, shortcut]))


def _bottleneck(g: GraphBuilder, x: str, cin: int, width: int, stride: int) -> str:
    cout = width * 4
    out = g.relu(g.conv(x, cin, width, 1, pad=0))
    out = g.relu(g.conv(out, width, width, 3, stride))
    out = g.conv(out, width, cout, 1, pad=0, gain=RESIDUAL_GAIN)
    shortcut = g.conv(x, cin, cout, 1, stride, pad=0) if stride != 1 or cin != cout else x
    return g.relu(g.op("Add", [out, shortcut]))


def resnet18() -> onnx.ModelProto:
    def body(g: GraphBuilder, x: str):
        x, cin = _resnet_stem(g, x), 64
        for i, width in enumerate((64, 128, 256, 512)):
            for j in range(2):
                x = _basic_block(g, x, cin, width, 2 if i > 0 and j == 0 else 1)
                cin = width
        return x, 512

    return _classifier("resnet18", 18, body)


def resnet50() -> onnx.ModelProto:
    def body(g: GraphBuilder, x: str):
        x, cin = _resnet_stem(g, x), 64
        for i, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
            for j in range(blocks):
                x = _bottleneck(g, x, cin, width, 2 if i > 0 and j == 0 else 1)
                cin = width * 4
        return x, 2048

    return _classifier("resnet50", 50, body)


def mobilenetv2() -> onnx.ModelProto:
    # (expansion t, channels c, repeats n, first stride s) from the MobileNetV2 paper, table 2.
    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def body(g: GraphBuilder, x: str):
        x, cin = g.relu6(g.conv(x, 3, 32, 3, stride=2)), 32
        for t, c, n, s in settings:
            for i in range(n):
                stride, hidden = (s if i == 0 else 1), cin * t
                out = g.relu6(g.conv(x, cin, hidden, 1, pad=0)) if t != 1 else x
                out = g.relu6(g.conv(out, hidden, hidden, 3, stride, group=hidden))
                out = g.conv(out, hidden, c, 1, pad=0)
                x = g.op("Add", [x, out]) if stride == 1 and cin == c else out
                cin = c
        return g.relu6(g.conv(x, cin, 1280, 1, pad=0)), 1280

    return _classifier("mobilenetv2", 2, body)


def squeezenet1_1() -> onnx.ModelProto:
    g = GraphBuilder("squeezenet1.1", 11)
    x = g.input("input", FLOAT, [BATCH, 3, 224, 224])

    def fire(x: str, cin: int, squeeze: int, expand: int) -> str:
        s = g.relu(g.conv(x, cin, squeeze, 1, pad=0))
        e1 = g.relu(g.conv(s, squeeze, expand, 1, pad=0))
        e3 = g.relu(g.conv(s, squeeze, expand, 3))
        return g.op("Concat", [e1, e3], axis=1)

    x = g.maxpool(g.relu(g.conv(x, 3, 64, 3, stride=2, pad=0)), 3, 2, ceil=True)
    x = fire(fire(x, 64, 16, 64), 128, 16, 64)
    x = g.maxpool(x, 3, 2, ceil=True)
    x = fire(fire(x, 128, 32, 128), 256, 32, 128)
    x = g.maxpool(x, 3, 2, ceil=True)
    x = fire(fire(fire(fire(x, 256, 48, 192), 384, 48, 192), 384, 64, 256), 512, 64, 256)
    # torchvision's classifier: a 1x1 conv to the classes, ReLU, global average pool.
    x = g.relu(g.conv(x, 512, 1000, 1, pad=0))
    g.op("Flatten", [g.op("GlobalAveragePool", [x])], out="logits", axis=1)
    g.output("logits", FLOAT, [BATCH, 1000])
    return g.build({"workbench.task": "image-classification", "workbench.preprocess": IMAGENET_PREPROCESS})
