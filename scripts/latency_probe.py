"""Side-by-side direct latency: compiled TVM libraries vs ONNX Runtime, in one process.

    .venv/bin/python scripts/latency_probe.py --model resnet18 --batch 1 --runs 30 \\
        untuned=/tmp/r18-t0 tuned-500=/tmp/r18-t500 tuned-2000=build/resnet18/host

Each LABEL=DIR is a `workbench compile` output directory. Engines run in interleaved rounds
(one call each per round) so machine noise hits them alike; warm-up calls are discarded; the
medians and p90 come from the raw per-call times. Outputs are checked against ONNX Runtime
before any timing is reported. A stopgap until `workbench bench` (issue 3) owns this.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from workbench import reference
from workbench.compiler.runtime import CompiledModel
from workbench.models import input_specs, load, resolve, sample_inputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("engines", nargs="+", help="LABEL=compile-output-dir")
    args = parser.parse_args()

    source = resolve(args.model)
    model = load(source)
    inputs = sample_inputs(model, args.batch)
    ordered = [inputs[s.name] for s in input_specs(model)]
    session = reference.session(source.path)
    expected = session.run(None, inputs)

    engines = {"onnxruntime": lambda: session.run(None, inputs)}
    for spec in args.engines:
        label, directory = spec.split("=", 1)
        manifest = json.loads((Path(directory) / "manifest.json").read_text())
        compiled = CompiledModel(Path(directory) / manifest["libraries"][str(args.batch)]["file"])
        checks = reference.compare([o["name"] for o in manifest["outputs"]], compiled(ordered), expected, 1e-4, 1e-5)
        assert all(c.passed for c in checks), f"{label} disagrees with ONNX Runtime: {checks}"
        engines[label] = lambda compiled=compiled: compiled(ordered)

    times: dict[str, list[float]] = {label: [] for label in engines}
    for round_index in range(args.warmup + args.runs):
        for label, call in engines.items():
            start = time.perf_counter()
            call()
            if round_index >= args.warmup:
                times[label].append(time.perf_counter() - start)

    ort_median = float(np.median(times["onnxruntime"]))
    print(f"{args.model} batch {args.batch}: {args.runs} interleaved runs after {args.warmup} warm-up")
    for label, samples in times.items():
        median, p90 = float(np.median(samples)), float(np.percentile(samples, 90))
        print(f"  {label:>14}: median {median * 1e3:9.2f} ms  p90 {p90 * 1e3:9.2f} ms  "
              f"{median / ort_median:6.2f}x ONNX Runtime")


if __name__ == "__main__":
    main()
