"""Print a run's results.csv as Markdown tables (the per-run detail behind docs/BENCHMARKS.md).

    python scripts/bench_table.py reports/<run-id>
"""

import json
import sys
from pathlib import Path

from workbench.records import read_csv


def main(run_dir: Path) -> None:
    table = read_csv(run_dir)
    first = json.loads(next((run_dir / "records").glob("*.json")).read_text())
    machine = first["provenance"]["machine"]
    print(f"Run `{run_dir.name}`: `{first['command']}`  ")
    print(f"Machine: {machine.get('cpu_model')}, {machine.get('physical_cores')} physical cores "
          f"(fingerprint `{first['provenance'].get('fingerprint_id', '?')}`), "
          f"commit `{first['provenance'].get('git_commit')}`\n")
    direct = table[table.scenario.isin(["latency", "offline"])]
    if len(direct):
        print("| engine | scenario | throughput (samples/s) | p50 ms | p90 ms | p99 ms | correct |")
        print("|---|---|---:|---:|---:|---:|---|")
        for r in direct.itertuples():
            label = f"{r.scenario} b{int(r.batch)}"
            tput = f"{r.throughput:,.0f}" if r.scenario == "offline" else ""
            print(f"| {r.engine} | {label} | {tput} | {r.p50_ms:.3f} | {r.p90_ms:.3f} | {r.p99_ms:.3f} | {r.correct} |")
        print()
    served = table[~table.scenario.isin(["latency", "offline"])]
    if len(served):
        print("| engine | scenario | throughput (req/s) | p50 ms | p99 ms | p99.9 ms | errors | stable "
              "| generator CPU |")
        print("|---|---|---:|---:|---:|---:|---:|---|---:|")
        for r in served.itertuples():
            label = f"closed c{int(r.concurrency)}" if r.scenario == "closed" else r.scenario
            print(f"| {r.engine} | {label} | {r.throughput:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                  f"{r.p99_9_ms:.2f} | {r.errors} | {r.stable} | {r.generator_cpu:.0%} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
