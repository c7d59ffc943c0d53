"""Load an exported TVM library and run it: the in-process TVM engine's core."""

from pathlib import Path

import numpy as np


class CompiledModel:
    """A compiled library for one batch size on one device, called with numpy arrays.

    Per call the overhead around the kernels is what matters for small models, so inputs are copied
    into tensors kept from the first call and outputs handed over by DLPack instead of allocating and
    copying each call (docs/BENCHMARKS.md, "Serving and the generator").
    Not thread-safe: one caller at a time (the batcher and bench both call from one thread).
    """

    def __init__(self, library: Path, device_kind: str = "cpu"):
        import tvm
        from tvm import relax

        self.device = tvm.cuda(0) if device_kind == "cuda" else tvm.cpu(0)
        self._cpu = device_kind != "cuda"
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), self.device)
        self._main = self._vm["main"]
        self._inputs: list = []  # device tensors reused across calls
        self._views: list[np.ndarray] = []  # numpy views of them (CPU), to spot outputs that alias an input

    def _arguments(self, inputs: list[np.ndarray]) -> list:
        import tvm

        # np.asarray, not np.ascontiguousarray: that one turns a scalar input into a 1-element vector.
        if len(self._inputs) != len(inputs) or any(t.shape != x.shape or t.dtype != str(x.dtype)
                                                   for t, x in zip(self._inputs, inputs)):
            self._inputs = [tvm.runtime.tensor(np.asarray(x, order="C"), self.device) for x in inputs]
            self._views = [np.from_dlpack(t) for t in self._inputs] if self._cpu else []
            return self._inputs
        for tensor, x in zip(self._inputs, inputs):
            tensor.copyfrom(np.asarray(x, order="C"))
        return self._inputs

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = _values(self._main(*self._arguments(inputs)))
        if not self._cpu:
            return [o.numpy() if hasattr(o, "numpy") else _scalar_or_shape(o) for o in outputs]
        arrays = [np.from_dlpack(o) if hasattr(o, "__dlpack__") else _scalar_or_shape(o) for o in outputs]
        # An output that is (a view of) an input would change on the next call: copy those.
        return [a.copy() if any(np.may_share_memory(a, v) for v in self._views) else a for a in arrays]


def _values(out) -> list:
    """The VM's result as one value per output: a tensor, a shape (a model whose output is
    ONNX's Shape) or a scalar are one output; anything else is a tuple of them."""
    from tvm_ffi import Shape

    if hasattr(out, "numpy") or isinstance(out, (Shape, bool, int, float)):
        return [out]
    return list(out)


def _scalar_or_shape(value) -> np.ndarray:
    """A shape or scalar output as the array ONNX Runtime returns: int64 for shapes and integers."""
    if isinstance(value, bool):
        return np.array(value, dtype=bool)
    if isinstance(value, float):
        return np.array(value, dtype=np.float32)
    if isinstance(value, int):
        return np.array(value, dtype=np.int64)
    return np.array([int(d) for d in value], dtype=np.int64)
