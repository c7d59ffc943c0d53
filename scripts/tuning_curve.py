"""Save a bench run's tuning curve (as `workbench report` draws it) as a PNG, for docs.

    python scripts/tuning_curve.py reports/<run-id> docs/img/tuning-resnet18.png
"""

import base64
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.report.run import load_run
from workbench.report.tuning import tuning_figure


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(f"usage: python {sys.argv[0]} reports/<run-id> <out.png>")
    run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        uri = tuning_figure(load_run(run_dir))
    except WorkbenchError as exc:
        sys.exit(str(exc))
    if uri is None:
        sys.exit(f"{run_dir} has no tuning curve: no session of its model in which every task had a valid "
                 "schedule (an estimate needs them all)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
    print(out)


if __name__ == "__main__":
    main()
