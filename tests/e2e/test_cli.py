"""The CLI end to end, as a user runs it: list, tune, compile on the tiny model."""

import json

import pytest

from tests.helpers import assert_one_line_error, records_in, workbench_cli

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

    tuned = workbench_cli("tune", "--model", "mlp", "--target", "host", "--trials", "9", "--batch-sizes", "1",
                          home=project)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "trials/min" in tuned.stdout and "Estimated end-to-end latency" in tuned.stdout
    assert records_in(project / "tuning_logs" / "host") > 0

    compiled = workbench_cli("compile", "--model", "mlp", "--target", "host", "--batch-sizes", "1,2", home=project)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "Correctness gate passed" in compiled.stdout
    # Batch 1 was tuned, batch 2 was not: the warning names exactly those three tasks.
    assert "3 of 6 tasks have no tuning records" in " ".join(compiled.stderr.split())
    manifest = json.loads((project / "build" / "mlp" / "host" / "manifest.json").read_text())
    assert sorted(manifest["libraries"]) == ["1", "2"]
    assert manifest["tuning"]["tasks_tuned"] == 3 and manifest["provenance"]["machine"]["cpu_model"]
    assert manifest["tuning"]["kernels_from_records"] == {"1": 3, "2": 0}

    missing = workbench_cli("compile", "--model", "nowhere.onnx", "--target", "host", home=project)
    assert_one_line_error(missing.returncode, missing.stderr, "model 'nowhere.onnx' not found")


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
