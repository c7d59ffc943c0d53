"""Load an exported library and run it: the in-process TVM engine's core."""

from pathlib import Path

import numpy as np


class CompiledModel:
    """A compiled library for one batch size on one device, called with numpy arrays."""

    def __init__(self, library: Path, device_kind: str = "cpu"):
        import tvm
        from tvm import relax

        self.device = tvm.cuda(0) if device_kind == "cuda" else tvm.cpu(0)
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), self.device)
        self._main = self._vm["main"]

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import tvm

        out = self._main(*[tvm.runtime.tensor(x, self.device) for x in inputs])
        outputs = [out] if hasattr(out, "numpy") else list(out)  # one tensor, or a tuple of them
        return [o.numpy() for o in outputs]
