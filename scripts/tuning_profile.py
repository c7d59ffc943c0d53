"""Where a `workbench tune` session's time goes: one session into a fresh database, inside
MetaSchedule's profiler (search, build, run, cost-model update).

    python scripts/tuning_profile.py --model resnet18 --trials 608
    python scripts/tuning_profile.py --model resnet18 --trials 8000 --minutes 6
"""

import argparse
import sys
import tempfile
from pathlib import Path

from tvm.s_tir import meta_schedule as ms

from workbench.compiler.tuner import TuneRequest, tune
from workbench.errors import WorkbenchError
from workbench.models import resolve
from workbench.targets import get_profile
from workbench.tuneview import TuneDisplay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--trials", type=int, default=608)
    parser.add_argument("--minutes", type=float, help="stop tuning after this many minutes (a large budget)")
    args = parser.parse_args()
    database = Path(tempfile.mkdtemp(prefix="tuning-profile-"))
    try:
        request = TuneRequest(resolve(args.model), get_profile("host"), args.trials, (1,), database,
                              minutes=args.minutes)
        with ms.Profiler() as profiler:
            summary = tune(request, TuneDisplay())
    except WorkbenchError as exc:
        sys.exit(str(exc))
    print(f"{summary.trials} trials in {summary.seconds / 60:.1f} min ({summary.trials_per_minute:.1f}/min), "
          f"choice {summary.retime_seconds:.0f} s, database {database}")
    print(profiler.table())


if __name__ == "__main__":
    main()
