"""Where a compiled model's time goes, kernel by kernel, inside the Relax VM.

    python scripts/kernel_profile.py build/bert-mini/host/bert-mini-b1.so bert-mini [runs]

Times every call the VM makes (through its instrument hook) on the model's seeded inputs and prints
the total per kernel per inference, heaviest first. Compare with `workbench tune`'s table of best
kernel times: a kernel much slower here than when tuned was judged on unrepresentative inputs
(bert-mini's libm erf) or pays for cold caches.
"""

import sys
import time
from collections import Counter

import tvm
from tvm import relax

from workbench.errors import WorkbenchError
from workbench.models import input_specs, load, resolve, sample_inputs


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(f"usage: python {sys.argv[0]} <library.so> <model> [runs]")
    library, model_name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 50
    try:
        model = load(resolve(model_name))
    except WorkbenchError as exc:
        sys.exit(str(exc))
    device = tvm.cpu(0)
    try:
        vm = relax.VirtualMachine(tvm.runtime.load_module(library), device)
    except Exception as exc:  # TVM raises its own error types for a missing or foreign file
        sys.exit(f"cannot load {library}: {str(exc).splitlines()[0]}")
    inputs = sample_inputs(model, 1)
    args = [tvm.runtime.tensor(inputs[spec.name], device) for spec in input_specs(model)]
    for _ in range(10):
        vm["main"](*args)
    start = time.perf_counter()
    for _ in range(runs):
        vm["main"](*args)
    plain = (time.perf_counter() - start) / runs

    totals, calls, began = Counter(), Counter(), {}

    def instrument(func, symbol, before, result, *call_args):
        now = time.perf_counter()
        if before:
            began[symbol] = now
        else:
            totals[symbol] += now - began[symbol]
            calls[symbol] += 1
        return 0  # carry on with the call

    vm.set_instrument(tvm.runtime.convert(instrument))
    for _ in range(runs):
        vm["main"](*args)
    print(f"whole call {plain * 1e3:.2f} ms; sum over the VM's calls {sum(totals.values()) / runs * 1e3:.2f} ms "
          f"(the hook adds a little to each)")
    for symbol, seconds in totals.most_common():
        print(f"{symbol:64s} x{calls[symbol] // runs:<3d} {seconds / runs * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
