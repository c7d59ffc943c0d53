"""Trials per minute: TVM's stock `static_shape_tuning` pipeline against `workbench tune`.

Same model, batch size, target and trial budget, one after the other, each into a fresh
database. The stock pipeline is what TVM's docs show: LocalBuilder, LocalRunner, the gradient
task scheduler and default search settings, with max_trials_per_task set so every task is tuned.

    python scripts/trial_throughput.py --model resnet18 --trials 608 --per-task 32
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stock(model_path: Path, target_json: dict, trials: int, per_task: int, work_dir: Path) -> tuple[int, float]:
    import onnx
    from tvm import relax

    from workbench.compiler.importer import import_model, make_target

    mod = import_model(onnx.load(model_path), 1)
    start = time.monotonic()
    relax.get_pipeline("static_shape_tuning", total_trials=trials, target=make_target(target_json),
                       work_dir=str(work_dir), max_trials_per_task=per_task)(mod)
    seconds = time.monotonic() - start
    log = (work_dir / "logs" / "tvm.s_tir.meta_schedule.logging.task_scheduler.log").read_text()
    return int(re.findall(r"Total trials: (\d+)", log)[-1]), seconds


def ours(model: str, trials: int, database: Path) -> tuple[int, float]:
    subprocess.run([sys.executable, "-m", "workbench", "tune", "--model", model, "--target", "host",
                    "--trials", str(trials), "--batch-sizes", "1", "--database", str(database)],
                   check=True, stdout=subprocess.DEVNULL)
    session = json.loads((database / "sessions.jsonl").read_text().splitlines()[-1])
    return session["trials"], session["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--trials", type=int, default=608)
    parser.add_argument("--per-task", type=int, default=32, help="the stock pipeline's max_trials_per_task")
    args = parser.parse_args()

    from workbench.models import resolve
    from workbench.targets import get_profile

    root = Path(tempfile.mkdtemp(prefix="throughput-"))
    rows = {}
    rows["stock static_shape_tuning"] = stock(resolve(args.model).path, get_profile("host").resolved_target(),
                                              args.trials, args.per_task, root / "stock")
    rows["workbench tune"] = ours(args.model, args.trials, root / "ours")
    rates = {}
    for name, (trials, seconds) in rows.items():
        rates[name] = trials / (seconds / 60)
        print(f"{name:26s} {trials:5d} trials in {seconds / 60:5.1f} min = {rates[name]:6.1f} trials/min")
    print(f"ratio: {rates['workbench tune'] / rates['stock static_shape_tuning']:.2f}x   (logs: {root})")


if __name__ == "__main__":
    main()
