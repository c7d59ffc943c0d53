"""Small models: the test MLP and a BERT-mini encoder with the op patterns exporters emit."""

import json

import numpy as np
import onnx

from workbench.zoo.builder import BATCH, FLOAT, INT64, GraphBuilder


def mlp() -> onnx.ModelProto:
    g = GraphBuilder("mlp", 7)
    x = g.input("input", FLOAT, [BATCH, 64])
    x = g.relu(g.gemm(x, 64, 256))
    x = g.relu(g.gemm(x, 256, 256))
    g.op("Identity", [g.gemm(x, 256, 10)], out="logits")
    g.output("logits", FLOAT, [BATCH, 10])
    return g.build({"workbench.task": "classification"})


def bert_mini(layers: int = 4, hidden: int = 256, heads: int = 4, seq: int = 128,
              vocab: int = 30522, intermediate: int = 1024) -> onnx.ModelProto:
    g = GraphBuilder("bert-mini", 4)
    ids = g.input("input_ids", INT64, [BATCH, seq])
    mask = g.input("attention_mask", INT64, [BATCH, seq])
    head_dim = hidden // heads

    word = g.normal((vocab, hidden), 0.02, "word_embeddings")
    pos = g.normal((1, seq, hidden), 0.02, "position_embeddings")
    x = g.layernorm(g.op("Add", [g.op("Gather", [word, ids], axis=0), pos]), hidden)

    # The additive mask: (1 - mask) * -10000, broadcast over heads and query positions.
    axes = g.const(np.array([1, 2], np.int64), "axes")
    maskf = g.op("Cast", [g.op("Unsqueeze", [mask, axes])], to=FLOAT)
    one = g.const(np.array(1.0, np.float32), "c")
    neg = g.const(np.array(-10000.0, np.float32), "c")
    additive_mask = g.op("Mul", [g.op("Sub", [one, maskf]), neg])

    split_heads = g.const(np.array([0, 0, heads, head_dim], np.int64), "shape")
    merge_heads = g.const(np.array([0, 0, hidden], np.int64), "shape")
    scale = g.const(np.array(np.sqrt(head_dim), np.float32), "c")

    def heads_of(t: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [t, split_heads])], perm=perm)

    for _ in range(layers):
        q = heads_of(g.linear(x, hidden, hidden), [0, 2, 1, 3])
        k = heads_of(g.linear(x, hidden, hidden), [0, 2, 3, 1])
        v = heads_of(g.linear(x, hidden, hidden), [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), scale]), additive_mask])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        x = g.layernorm(g.op("Add", [g.linear(context, hidden, hidden), x]), hidden)
        ffn = g.linear(g.gelu_erf(g.linear(x, hidden, intermediate)), intermediate, hidden)
        x = g.layernorm(g.op("Add", [ffn, x]), hidden)

    g.op("Identity", [x], out="last_hidden_state")
    g.output("last_hidden_state", FLOAT, [BATCH, seq, hidden])
    # Sample inputs must be valid token ids; the mask is all ones (no padding).
    ranges = {"input_ids": [0, vocab], "attention_mask": [1, 2]}
    return g.build({"workbench.task": "feature-extraction", "workbench.input_ranges": json.dumps(ranges)})
