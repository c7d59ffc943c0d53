"""The shipped reference records still match the kernels our passes make.

Records match kernels by structural hash after our graph passes, so a change to a pass (or to
TVM) silently orphans them: compiles fall back to default schedules, tens of times slower, and
nothing else fails. This test does: every zoo model the family's records were tuned for still
finds most of its FLOPs in them at batch 1.
"""

import re

import pytest

from tests.helpers import workbench_cli
from workbench.compiler import reference_records
from workbench.compiler.buildkey import workload_keys
from workbench.compiler.database import read_sessions
from workbench.compiler.importer import make_target
from workbench.compiler.tasks import extract, prepared_modules
from workbench.models import builtin_names, load, resolve
from workbench.targets import get_profile

pytestmark = pytest.mark.build

HOST = get_profile("host")
FOLDER = reference_records.folder(HOST)
MOST = 0.9  # of the FLOPs: a kernel or two may be new to the records, not the model's bulk


def tuned_at_batch_1() -> set[str]:
    if FOLDER is None or not FOLDER.is_dir():
        return set()
    return {s["model"] for s in read_sessions(FOLDER) if 1 in s.get("batch_sizes", [])}


@pytest.mark.parametrize("model", builtin_names())
def test_each_zoo_model_finds_most_of_its_flops_in_the_reference_records(model):
    if model not in tuned_at_batch_1():
        pytest.skip(f"no reference records for {model} at batch 1 in {FOLDER} yet (scripts/tune_reference.py)")
    target = make_target(HOST.resolved_target())
    tasks = extract(prepared_modules(load(resolve(model)), (1,), target), target)
    reference = reference_records.load(HOST, HOST.resolved_target(), workload_keys(tasks))
    labels = reference_records.sources(tasks, reference.database(), target, reference)
    shares = reference_records.flop_shares(tasks, labels)
    missing = [t.name for t, label in zip(tasks, labels) if label != "reference"]
    assert shares["reference"]["flops_share"] >= MOST, f"{model}: kernels without reference records: {missing}"


def test_the_priority_models_are_shipped_for_this_family():
    """resnet18, mobilenetv2 and bert-mini come first in scripts/tune_reference.py's order."""
    if FOLDER is None or not FOLDER.is_dir():
        pytest.skip(f"no reference records for this CPU's family ({FOLDER}) yet")
    assert {"resnet18", "mobilenetv2", "bert-mini"} <= tuned_at_batch_1(), f"{FOLDER} lacks a priority model"


@pytest.mark.slow
def test_a_fresh_project_compiles_resnet18_from_the_reference_records(project):
    """The demo's path: no tuning here, yet the build's schedules come from the shipped records,
    re-keyed to this machine, and pass the correctness gate."""
    if "resnet18" not in tuned_at_batch_1():
        pytest.skip(f"no reference records for resnet18 in {FOLDER} yet")
    compiled = workbench_cli("compile", "--model", "resnet18", "--target", "host", "--batch-sizes", "1", home=project)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "Correctness gate passed" in compiled.stdout
    line = next(line for line in compiled.stdout.splitlines() if line.startswith("Schedules: "))
    share = int(re.search(r"kernels \((\d+)% of the FLOPs\) from reference records", line).group(1))
    assert share >= MOST * 100 and f"from reference records {FOLDER.name} (tuned on " in line, line
    assert not list((project / "tuning_logs").glob("*/database_tuning_record.json")) or \
        not (project / "tuning_logs" / "host" / "database_tuning_record.json").read_text().strip()
