"""Trials per minute: TVM's stock `static_shape_tuning` pipeline against `workbench tune`.

Same model, batch size 1, target and trial budget, one after the other, each into a fresh
database. The stock pipeline is what TVM's docs show: LocalBuilder, LocalRunner, the gradient
task scheduler and default search settings, with max_trials_per_task set so every task is tuned.
It runs in a child process stopped after --stock-minutes (its first batches can take that long
here); its counts come from its scheduler log: candidates sent to the builder, and those that
built and went to the runner ("valid").

    python scripts/trial_throughput.py --model resnet18 --trials 608 --per-task 32
    python scripts/trial_throughput.py --model resnet18 --trials 8000 --per-task 512 --stock-minutes 8 --ours-minutes 8
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_stock(model: str, trials: int, per_task: int, work_dir: Path) -> None:
    from tvm import relax

    from workbench.compiler.importer import import_model, make_target
    from workbench.models import load, resolve
    from workbench.targets import get_profile

    mod = import_model(load(resolve(model)), 1)
    target = make_target(get_profile("host").resolved_target())
    relax.get_pipeline("static_shape_tuning", total_trials=trials, target=target,
                       work_dir=str(work_dir), max_trials_per_task=per_task)(mod)


def stock(args, work_dir: Path) -> tuple[int, int, float]:
    start = time.monotonic()
    # Its own process group, so stopping it also stops its build and run workers, and nothing else.
    child = subprocess.Popen([sys.executable, __file__, "--stock-child", str(work_dir), "--model", args.model,
                              "--trials", str(args.trials), "--per-task", str(args.per_task)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        child.wait(timeout=args.stock_minutes * 60)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    seconds = time.monotonic() - start
    log = (work_dir / "logs" / "tvm.s_tir.meta_schedule.logging.task_scheduler.log").read_text()
    sent = sum(int(n) for n in re.findall(r"Sending (\d+) sample\(s\) to builder", log))
    valid = sum(int(n) for n in re.findall(r"Sending (\d+) valid sample\(s\) to runner", log))
    return sent, valid, seconds


def ours(args, database: Path) -> tuple[int, int, float]:
    limit = ["--minutes", str(args.ours_minutes)] if args.ours_minutes else []
    subprocess.run([sys.executable, "-m", "workbench", "tune", "--model", args.model, "--target", "host",
                    "--trials", str(args.trials), "--batch-sizes", "1", "--database", str(database), *limit],
                   check=True, stdout=subprocess.DEVNULL)
    session = json.loads((database / "sessions.jsonl").read_text().splitlines()[-1])
    return session["trials"], session["trials"] - session["errors"], session["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--trials", type=int, default=608)
    parser.add_argument("--per-task", type=int, default=32, help="the stock pipeline's max_trials_per_task")
    parser.add_argument("--stock-minutes", type=float, default=12)
    parser.add_argument("--ours-minutes", type=float, help="stop workbench tune after this many minutes too "
                        "(a large budget, compared over the same time)")
    parser.add_argument("--stock-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stock_child:
        run_stock(args.model, args.trials, args.per_task, args.stock_child)
        return

    root = Path(tempfile.mkdtemp(prefix="throughput-"))
    rows = {"stock static_shape_tuning": stock(args, root / "stock"), "workbench tune": ours(args, root / "ours")}
    rates = {}
    for name, (sent, valid, seconds) in rows.items():
        rates[name] = valid / (seconds / 60)
        print(f"{name:26s} {sent:5d} trials, {valid:5d} valid, in {seconds / 60:5.1f} min = "
              f"{sent / (seconds / 60):6.1f} trials/min, {rates[name]:6.1f} valid/min")
    stock_rate = rates["stock static_shape_tuning"]
    ratio = f"{rates['workbench tune'] / stock_rate:.1f}x" if stock_rate else "stock had no valid trial"
    print(f"valid trials per minute, workbench over stock: {ratio}   (logs: {root})")


if __name__ == "__main__":
    main()
