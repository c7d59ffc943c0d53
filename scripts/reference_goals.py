"""TVM against ONNX Runtime and OpenVINO from the shipped reference records, before and after a
few minutes of local tuning (issue #30's goals table), as a new user gets it.

    python scripts/reference_goals.py [--models resnet18,mobilenetv2,bert-mini] [--minutes 10]
                                      [--batch 1] [--target host] [--no-reference] [--dims seq=128]

Each model runs in a fresh project (an empty tuning_logs/, the shipped targets): `workbench bench`
with tvm, onnxruntime and openvino at one batch size (0 minutes of local tuning: the build's
schedules come from the reference records of this CPU's family), then `workbench tune --minutes N`,
then the same bench again. `--no-reference` does the same from an empty database, the baseline.
Prints one markdown row per bench: the schedules' sources, TVM's paired p50 ratio to ONNX Runtime
(10th-90th percentile of the rounds) and to OpenVINO, the direct p50s beside them, and the tuning
session's estimate curve against ONNX Runtime's measured latency. Nothing else may load the cores
while it runs: the figures are only as quiet as the machine.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKBENCH = str(Path(sys.executable).parent / "workbench")


def run(home: Path, *args: str, reference: bool = True) -> str:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "COLUMNS": "200"}
    if not reference:  # every verb, bench's build included, finds no reference records
        env["WORKBENCH_REFERENCE_DIR"] = str(home / "no-reference")
    done = subprocess.run([WORKBENCH, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"workbench {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return done.stdout


def project(model: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=f"goals-{model}-"))
    shutil.copytree(REPO / "targets", home / "targets")
    (home / "models" / "zoo").mkdir(parents=True)
    (home / "tuning_logs").mkdir()
    zoo = REPO / "models" / "zoo" / f"{model}.onnx"
    if zoo.exists():  # generated before: saves regenerating it
        shutil.copy(zoo, home / "models" / "zoo" / zoo.name)
    exported = REPO / "models" / "exported" / f"{model}.onnx"
    if exported.exists():  # torch-cnn, torch-encoder: a user's model, not the zoo's
        shutil.copy(exported, home / "models" / exported.name)
    return home


def latest_run(home: Path) -> Path:
    return max((home / "reports").glob("run-*"), key=lambda p: p.stat().st_mtime)


def latest_records(home: Path, batch: int) -> dict[tuple[str, str], dict]:
    run_dir = latest_run(home)
    records = {}
    for path in (run_dir / "records").glob(f"*-b{batch}*.json"):  # -b1-seq128 with --dims
        record = json.loads(path.read_text())
        records[(record["engine"], record["scenario"]["kind"])] = record
    return records


def bench_row(home: Path, model: str, batch: int, minutes: float, reference: bool, target: str,
              dims: tuple[str, ...]) -> str:
    run(home, "bench", "--model", model, "--target", target, "--engines", "tvm,onnxruntime,openvino",
        "--batch-sizes", str(batch), *dims, "--concurrency", "1", "--duration", "5", "--warmup", "1",
        reference=reference)
    return describe_run(home, model, batch, minutes, reference, target)


def describe_run(home: Path, model: str, batch: int, minutes: float, reference: bool, target: str) -> str:
    """The markdown row of the project's latest bench."""
    records = latest_records(home, batch)
    manifest = json.loads((home / "build" / model / target / "manifest.json").read_text())
    share = manifest["tuning"]["schedules"]["reference"]["flops_share"]
    local = manifest["tuning"]["schedules"]["local"]["flops_share"]
    tvm = records.get(("tvm", "paired"), {}).get("result") or {}
    p50 = {engine: (records.get((engine, "latency"), {}).get("result") or {}).get("latency_ms", {}).get("p50_ms")
           for engine in ("tvm", "onnxruntime", "openvino")}
    paired = {engine: (records.get((engine, "paired"), {}).get("result") or {}).get("latency_ms", {}).get("p50_ms")
              for engine in ("tvm", "onnxruntime", "openvino")}
    flag = records.get(("tvm", "paired"), {}).get("flag") or ""
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"  # noqa: E731
    context = json.loads((latest_run(home) / "context.json").read_text())
    flops, peak = context["model"].get("flops_per_sample"), (context.get("machine_peak") or {}).get("peak_gflops")
    gflops = " / ".join(f"{flops * batch / (paired[e] / 1e3) / 1e9:.0f}" if flops and paired[e] else "-"
                        for e in ("tvm", "onnxruntime", "openvino")) + (f" (peak {peak:.0f})" if peak else "")
    return (f"| {model} | {batch} | {minutes:g} | {'reference' if reference else 'empty'} | {share:.0%} ref, "
            f"{local:.0%} local | {tvm.get('ratio_p50', float('nan')):.2f}x ({tvm.get('ratio_p10', float('nan')):.2f}-"
            f"{tvm.get('ratio_p90', float('nan')):.2f}) | {ratio(paired['tvm'], paired['openvino'])} | "
            f"{ratio(p50['tvm'], p50['onnxruntime'])} | {p50['tvm'] or float('nan'):.2f} / "
            f"{p50['onnxruntime'] or float('nan'):.2f} / {p50['openvino'] or float('nan'):.2f} | {gflops} | {flag} |")


def curve(home: Path, target: str) -> str:
    """The tuning session's estimate against ONNX Runtime's measured latency, by minute."""
    (session,) = [json.loads(line) for line in (home / "tuning_logs" / target / "sessions.jsonl").read_text()
                  .splitlines()][-1:]
    ort = session.get("onnxruntime_latency_s")
    points = [f"{s / 60:.1f} min: {lat / ort:.2f}x" for s, _, lat in session["curve"] if lat and ort]
    ref = session.get("reference") or {}
    return (f"estimate/ORT by minute ({len(points)} points, first, then every fifth, last): "
            f"{', '.join(points[:1] + points[1:-1:5] + points[-1:])}; reference won {ref.get('reference_won')} "
            f"of {ref.get('seeded_tasks')} tasks in {ref.get('seconds', 0) / 60:.1f} min of seeding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18,mobilenetv2,bert-mini")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--target", default="host",
                        help="x86-avx2 measures x86-64-avx2's records on an AVX-512 CPU")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--dims", help="passed to bench and tune: seq=128 for torch-encoder")
    args = parser.parse_args()
    reference = not args.no_reference
    dims = ("--dims", args.dims) if args.dims else ()
    print("| model | batch | local tuning (min) | start | schedules (FLOPs) | TVM/ORT paired p50 (p10-p90) | "
          "TVM/OpenVINO paired | TVM/ORT direct | direct p50 ms tvm / ort / ov | "
          "paired GFLOP/s tvm / ort / ov | flag |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        home = project(model)
        print(bench_row(home, model, args.batch, 0, reference, args.target, dims), flush=True)
        if args.minutes > 0:
            run(home, "tune", "--model", model, "--target", args.target, "--batch-sizes", str(args.batch), *dims,
                "--minutes", str(args.minutes), "--trials", "100000", reference=reference)
            print(bench_row(home, model, args.batch, args.minutes, reference, args.target, dims), flush=True)
            print(f"<!-- {model}: {curve(home, args.target)} -->", flush=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
