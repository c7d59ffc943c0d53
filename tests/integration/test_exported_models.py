"""Models torch exported (models/exported/, written by scripts/export_torch_models.py), not our
GraphBuilder: each compiles the way a user would compile it and passes the correctness gate against
ONNX Runtime (issues #30 item 3 and #32); the encoder's dynamic sequence length is named in one
line until --dims fixes it."""

import shutil
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, workbench_cli

EXPORTED = Path(__file__).resolve().parents[2] / "models" / "exported"

pytestmark = pytest.mark.build


@pytest.fixture
def exported_project(project):
    for path in EXPORTED.glob("*.onnx"):
        shutil.copy(path, project / "models" / path.name)
    return project


@pytest.mark.parametrize("model, options", [("torch-cnn", ()), ("torch-encoder", ("--dims", "seq=16"))])
def test_a_torch_exported_model_compiles_and_passes_the_gate(exported_project, model, options):
    result = workbench_cli("compile", "--model", model, "--target", "host", "--batch-sizes", "1", *options,
                           home=exported_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Correctness gate passed" in result.stdout


def test_the_encoders_sequence_length_is_named_until_dims_fixes_it(exported_project):
    result = workbench_cli("compile", "--model", "torch-encoder", "--target", "host", "--batch-sizes", "1",
                           home=exported_project)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "seq", "--dims")


def test_models_lists_the_encoders_inputs_and_says_its_cost_needs_dims(exported_project):
    """`workbench models` once put the --dims error in the encoder's inputs column and hid its inputs."""
    listed = workbench_cli("models", home=exported_project)
    assert listed.returncode == 0, listed.stderr
    row = " ".join(line for line in listed.stdout.splitlines() if "torch-encoder" in line or "int64" in line)
    assert "int64[batchxseq]" in row.replace(" ", "") and "at --dims seq" in listed.stdout, listed.stdout
    assert "error" not in listed.stdout.lower() and "pass --dims" not in listed.stdout, listed.stdout
