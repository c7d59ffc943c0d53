"""Where a compiled model's time goes, kernel by kernel, inside the Relax VM.

    python scripts/kernel_profile.py build/bert-mini/host/bert-mini-b1.so bert-mini [runs] [--batch 1] [--context]

Times every call the VM makes (through its instrument hook) on the model's seeded inputs and prints
the total per kernel per inference, heaviest first. Compare with `workbench tune`'s table of best
kernel times: a kernel much slower here than when tuned was judged on unrepresentative inputs
(bert-mini's libm erf) or pays for cold caches.

--context (CPU) also replays every kernel on the arguments it had in the model, interleaved with
the model's own runs, in three states: repeated (warm, as tuning times without a flush), with every
argument but the input flushed from the caches (as tuning times with cold weights), and right after
the kernel that precedes it in the model (the model's cache state, without the VM). A kernel whose
time in the model matches "after predecessor" but not "flushed" loses to the model's cache state,
which tuning does not see.
"""

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict

import tvm
from tvm import relax

from workbench.compiler.retime import FLUSH_WEIGHTS  # how tuning's choice times with cold weights
from workbench.errors import WorkbenchError
from workbench.models import input_specs, load, resolve, sample_inputs

CONTEXT_ROUNDS = 15


def profile(vm, args, runs: int, on_call=None) -> tuple[Counter, Counter]:
    """Seconds and calls per symbol over `runs` inferences; on_call(symbol, call_args) before each call."""
    totals, calls, began = Counter(), Counter(), {}

    def instrument(func, symbol, before, result, *call_args):
        now = time.perf_counter()
        if before:
            if on_call:
                on_call(symbol, call_args)
            began[symbol] = time.perf_counter()
        else:
            totals[symbol] += now - began[symbol]
            calls[symbol] += 1
        return 0  # carry on with the call

    vm.set_instrument(tvm.runtime.convert(instrument))
    for _ in range(runs):
        vm["main"](*args)
    return totals, calls


def context(library, vm, args, device) -> None:
    """The --context table: each kernel in the model against its replays (module docstring)."""
    sequence = []  # (symbol, copies of its arguments), in the model's order

    def capture(symbol, call_args):
        if not symbol.startswith("vm."):
            sequence.append((symbol, [tvm.runtime.tensor(a.numpy(), device) for a in call_args]))

    profile(vm, args, 1, capture)
    kernels = library.imports[0]
    count = Counter(symbol for symbol, _ in sequence)
    call = {s: kernels.get_function(s) for s in count}
    warm = {s: kernels.time_evaluator(s, device, number=10, repeat=1) for s in count}
    cold = {s: kernels.time_evaluator(s, device, number=1, repeat=5, f_preproc=FLUSH_WEIGHTS) for s in count}
    samples = defaultdict(lambda: defaultdict(list))
    for _ in range(CONTEXT_ROUNDS):  # interleaved, so a slow spell on a shared machine hits every column
        totals, _ = profile(vm, args, 5)
        for symbol, seconds in totals.items():
            samples[symbol]["model"].append(seconds / 5 / count.get(symbol, 1))
        for i, (symbol, call_args) in enumerate(sequence):
            samples[symbol]["warm"].append(warm[symbol](*call_args).mean)
            samples[symbol]["flushed"].append(statistics.median(cold[symbol](*call_args).results))
            if i > 0:
                previous, previous_args = sequence[i - 1]
                call[previous](*previous_args)
            began = time.perf_counter()
            call[symbol](*call_args)
            samples[symbol]["after predecessor"].append(time.perf_counter() - began)
    columns = ["model", "warm", "flushed", "after predecessor"]
    rows = sorted(((s, [statistics.median(samples[s][c]) * n * 1e3 for c in columns]) for s, n in count.items()),
                  key=lambda row: -row[1][0])
    print(f"\nper inference, ms (median of {CONTEXT_ROUNDS} interleaved rounds)")
    print(f"{'kernel':52s}" + "".join(f"{c:>19s}" for c in columns))
    for symbol, values in rows:
        print(f"{symbol:52s}" + "".join(f"{v:19.3f}" for v in values))
    print(f"{'sum':52s}" + "".join(f"{sum(r[1][i] for r in rows):19.3f}" for i in range(len(columns))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("model")
    parser.add_argument("runs", type=int, nargs="?", default=50)
    parser.add_argument("--batch", type=int, default=1, help="the batch size the library was compiled for")
    parser.add_argument("--context", action="store_true")
    options = parser.parse_args()
    library_path, runs = options.library, options.runs
    try:
        model = load(resolve(options.model))
    except WorkbenchError as exc:
        sys.exit(str(exc))
    device = tvm.cpu(0)
    try:
        library = tvm.runtime.load_module(library_path)
        vm = relax.VirtualMachine(library, device)
    except Exception as exc:  # TVM raises its own error types for a missing or foreign file
        sys.exit(f"cannot load {library_path}: {str(exc).splitlines()[0]}")
    inputs = sample_inputs(model, options.batch)
    args = [tvm.runtime.tensor(inputs[spec.name], device) for spec in input_specs(model)]
    for _ in range(10):
        vm["main"](*args)
    start = time.perf_counter()
    for _ in range(runs):
        vm["main"](*args)
    plain = (time.perf_counter() - start) / runs

    totals, calls = profile(relax.VirtualMachine(library, device), args, runs)
    print(f"whole call {plain * 1e3:.2f} ms; sum over the VM's calls {sum(totals.values()) / runs * 1e3:.2f} ms "
          f"(the hook adds a little to each)")
    for symbol, seconds in totals.most_common():
        print(f"{symbol:64s} x{calls[symbol] // runs:<3d} {seconds / runs * 1e3:8.3f} ms")
    if options.context:
        context(library, relax.VirtualMachine(library, device), args, device)


if __name__ == "__main__":
    main()
