"""The CLI end to end, as a user runs it: list, tune, compile on the tiny model."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO, assert_one_line_error, records_in, workbench_cli

pytestmark = [pytest.mark.build, pytest.mark.slow]


def test_targets_models_tune_compile(project):
    targets = workbench_cli("targets", home=project)
    assert targets.returncode == 0, targets.stderr
    assert "This machine:" in targets.stdout and "x86-avx512" in targets.stdout and "cuda-sm90" in targets.stdout

    models = workbench_cli("models", home=project)
    assert models.returncode == 0, models.stderr
    for name in ("mlp", "resnet18", "resnet50", "mobilenetv2", "squeezenet1.1", "bert-mini"):
        assert name in models.stdout
    assert "11.68 M" in models.stdout  # resnet18's parameters, counted from the graph

    tuned = workbench_cli("tune", "--model", "mlp", "--target", "host", "--trials", "2", "--batch-sizes", "1",
                          home=project, extra_env={"COLUMNS": "60"})
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    _check_tune_output(tuned.stdout, project / "tuning_logs" / "host")

    compiled = workbench_cli("compile", "--model", "mlp", "--target", "host", "--batch-sizes", "1,2", home=project)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "Correctness gate passed" in compiled.stdout
    assert re.search(r"^Schedules: \d+ of 6 kernels \(\d+% of the FLOPs\) from reference records", compiled.stdout,
                     re.M), compiled.stdout
    # Batch 1 was tuned, batch 2 was not: the warning names exactly those three tasks.
    assert "3 of 6 tasks have no tuning records" in " ".join(compiled.stderr.split())
    manifest = json.loads((project / "build" / "mlp" / "host" / "manifest.json").read_text())
    assert sorted(manifest["libraries"]) == ["1", "2"]
    assert manifest["tuning"]["tasks_tuned"] == 3 and manifest["provenance"]["machine"]["cpu_model"]
    assert manifest["tuning"]["kernels_from_records"] == {"1": 3, "2": 0}

    missing = workbench_cli("compile", "--model", "nowhere.onnx", "--target", "host", home=project)
    assert_one_line_error(missing.returncode, missing.stderr, "model 'nowhere.onnx' not found")


def _check_tune_output(stdout: str, database) -> None:
    """Issue #29, item 7: the plan (and why it is not --trials) comes first; the summary shows ONNX
    Runtime's measured latency beside the estimates and says which to trust, each on one line
    however narrow the terminal, so scripts/fleet_throughput.sh reads a rate, not a blank."""
    plan = stdout.index("Plan: 3 trials over 3 tasks")
    assert "--trials 2 is raised to 3 because every task needs at least one trial" in stdout
    assert plan < stdout.index("mlp on host")  # before the table, and so before any trial's result
    assert re.search(r"^Trials: 3 of the 3 planned \(--trials 2: see the plan above\)", stdout, re.M)
    assert re.search(r"^  [0-9.]+ ms  tuning's estimate ", stdout, re.M)
    assert re.search(r"^  [0-9.]+ ms  ONNX Runtime, measured now \(the whole model, p50\)$", stdout, re.M)
    assert re.search(r"^Trust the re-timed estimate over tuning's", stdout, re.M)
    assert records_in(database) > 0
    session = json.loads((database / "sessions.jsonl").read_text().splitlines()[-1])
    assert session["trials_planned"] == 3 and session["onnxruntime_latency_s"] > 0
    rate = subprocess.run(["bash", str(REPO / "scripts" / "fleet_throughput.sh"), "--rate", str(database)],
                          capture_output=True, text=True, env={**os.environ, "PY": sys.executable}, check=True)
    assert rate.stdout == f"{session['trials_per_minute']:.1f} trials/min\n"
    assert re.search(rf"= {rate.stdout.strip()}", stdout)  # the terminal's figure, whole on its line


def test_bench_cli_json(project):
    result = workbench_cli("bench", "--model", "mlp", "--target", "host", "--engines", "onnxruntime,server-onnxruntime",
                           "--concurrency", "2", "--duration", "0.5", "--warmup", "0.1", "--min-requests", "5",
                           "--json", home=project)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {r["engine"] for r in summary["results"]} == {"onnxruntime", "server-onnxruntime"}
    assert all(r["status"] == "ok" and r["correct"] for r in summary["results"])
    run_dir = project / "reports" / summary["run_dir"].rsplit("/", 1)[-1]
    assert (run_dir / "results.csv").exists() and len(list((run_dir / "records").glob("*.json"))) == 4
