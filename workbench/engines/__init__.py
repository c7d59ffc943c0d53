"""Engines: one callable interface over TVM, ONNX Runtime, OpenVINO and a null engine.

An engine takes the model's inputs as a dict of numpy arrays whose first dimension is the batch
and returns the outputs as a list in the model's output order. `batch_sizes` is the set of batch
sizes it can run (None: any), so the batcher pads to a compiled size and never past it.
`registry.py` names every engine bench measures; each in-process runtime has an adapter module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # the registry lives in this package, and `workbench --help` must not load numpy for it
    import numpy as np


@dataclass
class Engine:
    kind: str
    run: Callable[[dict[str, np.ndarray]], list[np.ndarray]]
    batch_sizes: tuple[int, ...] | None
    settings: dict = field(default_factory=dict)
    output_names: tuple[str, ...] = ()
    # Run on the server's event-loop thread instead of a worker thread. TVM needs it: called from a
    # worker thread while the loop runs it stalls (docs/BENCHMARKS.md, "Serving and the generator").
    on_loop_thread: bool = False
    # The engine's own offline-throughput mode, when a back-to-back synchronous call is not how it is
    # run for throughput: (inputs, batch, DirectSpec) -> (settings, result as load.direct.offline's).
    # OpenVINO's: the THROUGHPUT hint and an AsyncInferQueue. None: back-to-back calls of `run`.
    offline: Callable[..., tuple[dict, dict]] | None = None
    # The request shapes it runs (dims.signature: each input's shape less the batch), when
    # not any: a TVM build with --dims runs its compiled shapes only. None: any shape.
    shapes: frozenset | None = None

    def __call__(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.run(inputs)
