"""Served benches and the URLs they build (#29 item 8): a model whose file name has a space is
served and benched (its name quoted in every URL, routed by both servers), and `bench --url`
against a server without the model is one line naming the models it has, with no run folder left."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, model_config, start_server, workbench_cli
from workbench import models
from workbench.records import read_records
from workbench.serving.process import free_port

QUICK = ("--concurrency", "1", "--duration", "0.5", "--warmup", "0.1", "--min-requests", "10")


def _runs(home: Path) -> list[Path]:
    return sorted((home / "reports").glob("run-*")) if (home / "reports").exists() else []


def test_a_model_file_named_with_a_space_is_served_and_benched(project):
    folder = project / "my models"
    folder.mkdir()
    spaced = folder / "my mlp.onnx"
    shutil.copy(models.resolve("mlp").path, spaced)
    result = workbench_cli("bench", "--model", str(spaced), "--engines", "server-onnxruntime,flask-naive",
                           *QUICK, "--json", home=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    records = read_records(Path(json.loads(result.stdout)["run_dir"]))
    assert {r["engine"] for r in records} == {"server-onnxruntime", "flask-naive"}
    for record in records:
        assert record["model"]["name"] == "my mlp"
        assert record["status"] == "ok" and record["correctness"]["passed"], record
        assert record["result"]["good"] > 0 and not record["result"]["errors"]


def test_bench_url_without_the_model_names_the_models_the_server_has(project, tmp_path):
    server = start_server(tmp_path, replace(model_config("mlp"), name="classifier"))
    try:
        result = workbench_cli("bench", "--model", "mlp", "--url", server.url, *QUICK, home=project)
    finally:
        server.stop()
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "has no model 'mlp'",
                          "classifier")  # from its repository index, or its 404 naming what it has
    assert _runs(project) == []  # no empty run folder left behind


def test_bench_url_with_nothing_listening_is_one_line_and_leaves_no_run(project):
    url = f"http://127.0.0.1:{free_port()}"
    result = workbench_cli("bench", "--model", "mlp", "--url", url, *QUICK, home=project)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, f"the check request to {url} failed",
                          "is a server for 'mlp' running there?")
    assert _runs(project) == []


@pytest.mark.parametrize("name", ["my mlp", "mlp"])
def test_bench_url_drives_a_server_whose_model_name_needs_quoting(project, tmp_path, name):
    """The same quoting against an external server: a name with a space reaches its model."""
    served = folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(models.resolve("mlp").path, served / f"{name}.onnx")
    server = start_server(tmp_path, replace(model_config("mlp"), name=name,
                                            model_path=str(served / f"{name}.onnx")))
    try:
        result = workbench_cli("bench", "--model", str(served / f"{name}.onnx"), "--url", server.url, *QUICK,
                               "--json", home=project)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = read_records(Path(json.loads(result.stdout)["run_dir"]))
    assert record["engine"] == "remote" and record["status"] == "ok" and record["correctness"]["passed"]
