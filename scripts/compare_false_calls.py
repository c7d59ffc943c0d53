"""How often `report --compare` calls a change between runs of ONE build: the false-call rate.

    .venv/bin/python scripts/compare_false_calls.py reports/<run-1> reports/<run-2> ... [--sets 400]

Give 2k or more bench runs of the same build, taken one after another (for example
`for i in $(seq 20); do workbench bench --model mlp --target host --engines tvm --batch-sizes 1,8; done`).
For k = 1, 2, 3 runs a side, it draws --sets random splits of those runs into A and B, compares them
as `workbench report --compare` does, and prints the share of sets with any row called a change and
each row's share. Every call it counts is false: the build never changed.
"""

import argparse
import random
from pathlib import Path

from workbench.report.compare import NO_CHANGE, TOO_FEW, _by_key, changes, run_figure
from workbench.report.run import load_run


def false_calls(runs: list, k: int, sets: int, seed: int = 0) -> tuple[float, dict[str, float]]:
    """The share of random A/B splits (k runs a side) with any change called, and each row's share."""
    rng = random.Random(seed)
    called_sets, rows = 0, {}
    for _ in range(sets):
        drawn = rng.sample(runs, 2 * k)
        a, b = drawn[:k], drawn[k:]
        found = changes(a, b)[0]
        called = [key for key, (_, _, c) in found.items() if c.verdict not in (NO_CHANGE, TOO_FEW)]
        called_sets += bool(called)
        for engine, scenario in called:
            rows[f"{engine} {scenario}"] = rows.get(f"{engine} {scenario}", 0) + 1 / sets
    return called_sets / sets, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench run folders of one build")
    parser.add_argument("--sets", type=int, default=400, help="random A/B splits per k")
    args = parser.parse_args()
    runs = [load_run(path) for path in args.runs]
    for key, (series, _) in _by_key(runs, runs[:1])[0].items():
        print(f"{' '.join(key)}: each run's mean", " ".join(f"{run_figure(s):.4g}" for s in series))
    for k in (1, 2, 3):
        if 2 * k > len(runs):
            break
        share, rows = false_calls(runs, k, args.sets)
        print(f"{k} run(s) a side: {share:.1%} of {args.sets} sets called a change;",
              ", ".join(f"{row} {value:.1%}" for row, value in sorted(rows.items())) or "no row")


if __name__ == "__main__":
    main()
