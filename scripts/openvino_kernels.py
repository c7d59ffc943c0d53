"""Where OpenVINO's time goes: its per-node profile (PERF_COUNT) for a model at one batch size,
with the engine's settings (LATENCY hint, one thread per physical core, f32).

    .venv/bin/python scripts/openvino_kernels.py resnet18 --batch 1 --runs 200 --top 15

Prints each node's median time per inference over the runs (OpenVINO's real_time), its layer and
kernel type (exec_type, e.g. brgconv_avx512_1x1 or jit_avx2), its share of the total, and the total.
"""

import argparse
import statistics
from collections import defaultdict

from workbench import fingerprint, models
from workbench.engines.openvino_engine import LATENCY, PRECISION, read


def profile(model_name: str, batch: int, runs: int) -> tuple[list[tuple[str, str, str, float]], float]:
    source = models.resolve(model_name)
    inputs = models.sample_inputs(models.load(source), batch)
    core, model = read(source.path)
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": LATENCY, "PERF_COUNT": True,
                                                 "INFERENCE_NUM_THREADS": fingerprint.physical_cores(),
                                                 "INFERENCE_PRECISION_HINT": PRECISION})
    request = compiled.create_infer_request()
    for _ in range(5):  # warm-up
        request.infer(inputs, share_inputs=True)
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for _ in range(runs):
        request.infer(inputs, share_inputs=True)
        for info in request.get_profiling_info():
            if info.status.name == "EXECUTED":
                times[(info.node_name, info.node_type, info.exec_type)].append(info.real_time.total_seconds() * 1e3)
    rows = sorted(((*key, statistics.median(v)) for key, v in times.items()), key=lambda r: -r[3])
    return rows, sum(r[3] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    rows, total = profile(args.model, args.batch, args.runs)
    print(f"{args.model} batch {args.batch}: {total:.3f} ms per inference over {len(rows)} executed nodes "
          f"(medians of {args.runs} runs)")
    print("| node | type | kernel | ms | share |\n|---|---|---|---|---|")
    for name, kind, kernel, ms in rows[:args.top]:
        print(f"| {name} | {kind} | {kernel} | {ms:.3f} | {ms / total:.1%} |")
    by_type: dict[str, float] = defaultdict(float)
    for _, kind, _, ms in rows:
        by_type[kind] += ms
    print("\nby layer type: " + ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(by_type.items(),
                                                                                     key=lambda kv: -kv[1])[:6]))


if __name__ == "__main__":
    main()
