"""Returns zeros of the right shapes at once: what is left is the harness's own cost."""

import numpy as np

from workbench.engines import Engine
from workbench.engines.registry import NULL


def null_engine(outputs: list[dict]) -> Engine:
    def run(inputs):
        batch = next(iter(inputs.values())).shape[0]
        return [np.zeros((batch, *spec["shape"][1:]), spec["dtype"]) for spec in outputs]

    return Engine(NULL, run, None, {}, tuple(spec["name"] for spec in outputs))


def open(*, outputs: list[dict], **_) -> Engine:
    return null_engine(outputs)
