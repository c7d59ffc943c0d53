"""The tvm engine on a device reached through an RPC tracker: `bench --rpc`.

Libraries are uploaded over the session and timed with TVM's device-side timer
(time_evaluator), so the figures are the device's, not the network's. Outputs come back once, for
the correctness gate against ONNX Runtime run here.
"""

from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError
from workbench.targets import RpcConfig

SESSION_TIMEOUT_S = 600


class RemoteDevice:
    """One session on one device under the key, held for every library: a second session would
    wait for the same device."""

    def __init__(self, rpc: RpcConfig, device_kind: str):
        from tvm import rpc as tvm_rpc

        self.rpc, self.device_kind = rpc, device_kind
        try:
            tracker = tvm_rpc.connect_tracker(rpc.tracker_host, rpc.tracker_port)
            self.session = tracker.request(rpc.key, priority=1, session_timeout=SESSION_TIMEOUT_S, max_retry=2)
        except Exception as exc:  # TVM raises its own error types across the RPC boundary
            raise WorkbenchError(f"could not open a session on a '{rpc.key}' device via "
                                 f"{rpc.tracker_host}:{rpc.tracker_port}: {str(exc).splitlines()[0]}") from None
        self.device = self.session.cuda(0) if device_kind == "cuda" else self.session.cpu(0)

    def load(self, library: Path) -> "RemoteModel":
        try:
            self.session.upload(str(library))
            module = self.session.load_module(library.name)
        except Exception as exc:
            raise WorkbenchError(f"could not load {library.name} on the '{self.rpc.key}' device: "
                                 f"{str(exc).splitlines()[0]}") from None
        return RemoteModel(module, self.device)


class RemoteModel:
    """One compiled library (one batch size) loaded on a remote device."""

    def __init__(self, module, device):
        from tvm import relax

        self.device = device
        self._vm = relax.VirtualMachine(module, device)

    def _arguments(self, inputs: list[np.ndarray]):
        import tvm

        return [tvm.runtime.tensor(x, self.device) for x in inputs]

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        out = self._vm["main"](*self._arguments(inputs))
        return [o.numpy() for o in ([out] if hasattr(out, "numpy") else list(out))]

    def time(self, inputs: list[np.ndarray], repeats: int, min_repeat_ms: float) -> np.ndarray:
        """Seconds per call: one mean per repeat, each repeat at least min_repeat_ms long on the device
        (TVM grows the call count to reach it); the first run warms up and is discarded."""
        evaluator = self._vm.time_evaluator("main", self.device, number=1, repeat=repeats + 1,
                                            min_repeat_ms=min_repeat_ms)
        return np.asarray(evaluator(*self._arguments(inputs)).results[1:])
