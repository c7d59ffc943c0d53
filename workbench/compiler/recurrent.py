"""RNN, GRU and LSTM, which TVM's ONNX importer lacks, unrolled over the (static) sequence length.

Speech and time-series models use them. Each time step is a matrix multiply of the hidden state
with R plus the input's projection (one matmul for the whole sequence, X W^T + Wb), then the
cell's gates; `sequence_lens` (a constant) masks the steps past each sequence's end, which keeps
the state and writes zeros, as ONNX says. Layout 0 and the default activations only; anything
else is refused in one line by the converter.
"""

import numpy as np

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_converters(base) -> dict:
    def converter(kind):
        class Recurrent(base):
            @classmethod
            def _impl_v7(cls, bb, inputs, attr, params):
                return _recurrent(bb, kind, list(inputs) + [None] * 8, attr)

        Recurrent.__name__ = kind
        return Recurrent

    return {kind: converter(kind) for kind in GATES}


def _text(value, default: str) -> str:
    value = default if value is None else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _recurrent(bb, kind: str, inputs: list, attr: dict):
    from tvm import relax
    from tvm.relax import op

    from workbench.compiler.converters import _constant, _shape

    x, w, r, b, lengths, h0 = inputs[:6]
    if int(attr.get("layout", 0)) != 0 or "clip" in attr or "activations" in attr:
        raise ValueError(f"{kind}: only layout 0 and the default activations, without clip, are converted")
    if lengths is not None and _constant(lengths) is None:
        raise ValueError(f"{kind}: sequence_lens must be a constant")
    direction = _text(attr.get("direction"), "forward")
    directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    mask = None if lengths is None else _constant(lengths).astype(np.int64)
    results = []
    for d, name in enumerate(directions):
        def pick(t, index=d):
            return None if t is None else bb.normalize(op.squeeze(op.strided_slice(t, [0], [index], [index + 1]),
                                                                  [0]))

        step = _Steps(bb, kind, int(attr["hidden_size"]), _shape(x), str(x.ty.dtype),
                      int(attr.get("linear_before_reset", 0)), mask)
        results.append(step.run(x, pick(w), pick(r), pick(b), pick(h0),
                                pick(inputs[6]), pick(inputs[7]), name == "reverse"))

    def stacked(parts, axis):
        return op.concat([op.expand_dims(p, [axis]) for p in parts], axis)

    outputs = [stacked([y for y, _, _ in results], 1), stacked([h for _, h, _ in results], 0)]
    if kind == "LSTM":
        outputs.append(stacked([c for _, _, c in results], 0))
    return relax.Tuple(outputs)


class _Steps:
    """One direction of one recurrent layer, unrolled."""

    def __init__(self, bb, kind, hidden, shape, dtype, linear_before_reset, lengths):
        self.bb, self.kind, self.hidden, self.dtype = bb, kind, hidden, dtype
        self.steps, self.batch = shape[0], shape[1]
        self.linear_before_reset, self.lengths = linear_before_reset, lengths

    def emit(self, expr):
        return self.bb.normalize(expr)

    def part(self, value, k, count=1):
        from tvm.relax import op

        return self.emit(op.strided_slice(value, [len(value.ty.shape) - 1], [k * self.hidden],
                                          [(k + count) * self.hidden]))

    def zeros(self):
        from tvm import relax

        return relax.const(np.zeros((self.batch, self.hidden), self.dtype))

    def run(self, x, w, r, b, h, c, peepholes, reverse: bool):
        from tvm import relax
        from tvm.relax import op

        gates = GATES[self.kind] * self.hidden
        projected = self.emit(op.matmul(x, op.permute_dims(w)))  # (T, B, gates)
        if b is not None:
            projected = self.emit(op.add(projected, self.part(b, 0, GATES[self.kind])))
            recurrent_bias = self.part(b, GATES[self.kind], GATES[self.kind])
        else:
            recurrent_bias = None
        r_t = self.emit(op.permute_dims(r))  # (H, gates)
        h = self.zeros() if h is None else h
        c = self.zeros() if c is None else c
        outputs = [None] * self.steps
        for t in (reversed(range(self.steps)) if reverse else range(self.steps)):
            x_t = self.emit(op.squeeze(op.strided_slice(projected, [0], [t], [t + 1]), [0]))
            new_h, new_c = self.cell(x_t, h, c, r_t, recurrent_bias, peepholes, gates)
            if self.lengths is not None:
                alive = relax.const(np.broadcast_to((t < self.lengths)[:, None], (self.batch, self.hidden)).copy())
                new_h = self.emit(op.where(alive, new_h, h))
                new_c = self.emit(op.where(alive, new_c, c))
                outputs[t] = self.emit(op.where(alive, new_h, self.zeros()))
            else:
                outputs[t] = new_h
            h, c = new_h, new_c
        return self.emit(op.concat([op.expand_dims(o, [0]) for o in outputs], 0)), h, c

    def cell(self, x_t, h, c, r_t, rb, peepholes, gates):
        from tvm.relax import op

        def recur(state, k=0, count=GATES[self.kind]):
            product = op.matmul(state, self.part(r_t, k, count))
            return self.emit(op.add(product, self.part(rb, k, count)) if rb is not None else product)

        if self.kind == "RNN":
            return self.emit(op.tanh(op.add(x_t, recur(h)))), c
        if self.kind == "GRU":
            zr = self.emit(op.sigmoid(op.add(self.part(x_t, 0, 2), recur(h, 0, 2))))
            z, reset = self.part(zr, 0), self.part(zr, 1)
            if self.linear_before_reset:
                candidate = op.multiply(reset, recur(h, 2, 1))
            else:
                candidate = recur(self.emit(op.multiply(reset, h)), 2, 1)
            h_tilde = self.emit(op.tanh(op.add(self.part(x_t, 2), candidate)))
            one = op.subtract(op.ones_like(z), z)
            return self.emit(op.add(op.multiply(one, h_tilde), op.multiply(z, h))), c
        total = self.emit(op.add(x_t, recur(h)))  # LSTM gates i, o, f, c

        def peep(k, state):
            gate = self.part(total, k)
            return gate if peepholes is None else op.add(gate, op.multiply(self.part(peepholes, k), state))

        i, f = self.emit(op.sigmoid(peep(0, c))), self.emit(op.sigmoid(peep(2, c)))
        new_c = self.emit(op.add(op.multiply(f, c), op.multiply(i, op.tanh(self.part(total, 3)))))
        o = self.emit(op.sigmoid(peep(1, new_c)))
        return self.emit(op.multiply(o, op.tanh(new_c))), new_c
