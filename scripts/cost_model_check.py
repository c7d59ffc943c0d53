"""Does a cost model trained on earlier tuning records make a new tune faster? (#30 item 4)

    .venv/bin/python scripts/cost_model_check.py train DB_FOLDER --target x86-avx2 --out model.tar [--sample 3000]
    .venv/bin/python scripts/cost_model_check.py tune [--cost-model model.tar] -- <workbench tune arguments>
    .venv/bin/python scripts/cost_model_check.py curves TUNING_DB_FOLDER...

`train` fits MetaSchedule's XGBModel on the records of a tuning database folder (plain
database_workload.json and database_tuning_record.json, all of a run's records, not the shipped
best 4 per workload: a model learns to rank only from bad schedules beside good ones), each
workload's records one group, as tuning itself feeds it, and saves it (XGBModel.save). `tune` runs
`workbench tune` with MetaSchedule's cost model replaced by the saved one (without --cost-model,
the stock fresh model: the control). `curves` prints each folder's tuning estimate by minute.
Time nothing else while a tune runs.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path


def train(folder: Path, profile_name: str, out: Path, sample: int, seed: int = 0) -> None:
    import tvm
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.utils import shash2hex

    from workbench.compiler.importer import make_target
    from workbench.targets import get_profile

    target = make_target(get_profile(profile_name).resolved_target())
    database = ms.database.JSONDatabase(str(folder / "database_workload.json"),
                                        str(folder / "database_tuning_record.json"), allow_missing=False)
    records = [r for r in database.get_all_tuning_records() if r.run_secs]
    random.Random(seed).shuffle(records)
    records = records[:sample]
    by_workload = {}
    for record in records:
        by_workload.setdefault(shash2hex(record.workload.mod), []).append(record)
    model = ms.cost_model.XGBModel(adaptive_training=True)
    started, used = time.monotonic(), 0
    for group in by_workload.values():
        context = ms.TuneContext(mod=group[0].workload.mod, target=target)
        candidates, results = [], []
        for record in group:
            schedule = tvm.s_tir.Schedule(record.workload.mod)
            try:
                record.trace.apply_to_schedule(schedule, remove_postproc=False)
            except Exception:  # a trace that no longer applies teaches nothing
                continue
            candidates.append(ms.MeasureCandidate(schedule, record.args_info))
            results.append(ms.runner.RunnerResult(run_secs=record.run_secs, error_msg=None))
        model.update(context, candidates, results)
        used += len(candidates)
    model.save(str(out))
    print(f"trained on {used} records of {len(by_workload)} workloads in {time.monotonic() - started:.0f} s; "
          f"saved {out} ({out.stat().st_size / 1e6:.1f} MB)")


def tune(cost_model: Path | None, arguments: list[str]) -> None:
    from tvm.s_tir import meta_schedule as ms

    if cost_model is not None:
        model = ms.cost_model.XGBModel(adaptive_training=True)
        model.load(str(cost_model))
        stock = ms.tune.tune_tasks

        def with_model(**kwargs):
            return stock(**{**kwargs, "cost_model": model})

        ms.tune.tune_tasks = with_model
    from workbench.cli import app

    sys.argv = ["workbench", "tune", *arguments]
    app()


def curves(folders: list[Path]) -> None:
    for folder in folders:
        for line in (folder / "sessions.jsonl").read_text().splitlines():
            session = json.loads(line)
            points = session.get("curve") or []
            by_minute = []
            for minute in (1, 2, 3, 4, 5, 10):
                known = [p for p in points if p[0] <= minute * 60 and p[2] is not None]
                if points and points[-1][0] >= minute * 60 - 30:
                    by_minute.append(f"{minute} min {known[-1][2] * 1000:.2f} ms" if known else f"{minute} min -")
            print(f"{folder}: {session.get('model')} b{session.get('batch_sizes')} {session.get('trials')} trials:",
                  "; ".join(by_minute))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("train")
    fit.add_argument("folder", type=Path)
    fit.add_argument("--target", required=True, help="the profile the records were tuned for")
    fit.add_argument("--out", type=Path, required=True)
    fit.add_argument("--sample", type=int, default=3000, help="records drawn at random to train on")
    run = sub.add_parser("tune")
    run.add_argument("--cost-model", type=Path)
    run.add_argument("arguments", nargs=argparse.REMAINDER)
    show = sub.add_parser("curves")
    show.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    if args.command == "train":
        train(args.folder, args.target, args.out, args.sample)
    elif args.command == "tune":
        tune(args.cost_model, [a for a in args.arguments if a != "--"])
    else:
        curves(args.folders)


if __name__ == "__main__":
    main()
