"""Per-call cost of the in-process TVM engine, old call path against CompiledModel, interleaved.

    python scripts/call_overhead.py build/mlp/host    (a `workbench compile` output directory)

The old path allocated fresh input tensors and copied outputs out every call. TVM's own timer
gives the floor: the VM call without any Python around it.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from workbench.engines.compiled import CompiledModel


def median_us(call, x, calls: int = 2000) -> float:
    for _ in range(200):
        call(x)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def main(build: Path) -> None:
    manifest = json.loads((build / "manifest.json").read_text())
    shape = manifest["inputs"][0]["shape"]
    for batch, entry in sorted(manifest["libraries"].items(), key=lambda kv: int(kv[0])):
        library = build / entry["file"]
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu(0))
        vm_main = vm["main"]
        compiled = CompiledModel(library)
        x = np.random.default_rng(0).standard_normal((int(batch), *shape[1:])).astype(manifest["inputs"][0]["dtype"])
        paths = {"old": lambda a: [vm_main(tvm.runtime.tensor(a, tvm.cpu(0))).numpy()],
                 "new": lambda a: compiled([a])}
        rounds = {name: [] for name in paths}
        for _ in range(5):
            for name, call in paths.items():
                rounds[name].append(median_us(call, x))
        kernels = vm.time_evaluator("main", tvm.cpu(0), number=1000, repeat=5)(tvm.runtime.tensor(x, tvm.cpu(0)))
        print(f"batch {batch}: old {np.median(rounds['old']):.1f} us, new {np.median(rounds['new']):.1f} us per call "
              f"(median of 5 interleaved rounds of 2000 calls); the call inside the VM (time_evaluator, median "
              f"of 5 x 1000): {kernels.median * 1e6:.1f} us")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
