"""Every bad input of the foundation issue: one clear line, non-zero exit, no traceback, nothing lost."""

import json

import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers import assert_one_line_error, invoke
from workbench.fingerprint import gpus


def seeded_database(directory, target: dict, extra: str = "") -> str:
    directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps([0, [[[], []], [1e-5], target, [["TENSOR", "float32", [1, 64]]]]]) + "\n"
    content = line + extra + line
    (directory / "database_tuning_record.json").write_text(content)
    return content


def test_missing_model_file(project):
    assert_one_line_error(*invoke("tune", "--model", "missing.onnx", "--target", "host", "--trials", "4"),
                          "model 'missing.onnx' not found")


def test_file_that_is_not_onnx(project):
    bad = project / "models" / "notes.onnx"
    bad.write_text("just some text, not a model")
    assert_one_line_error(*invoke("compile", "--model", str(bad), "--target", "host"), "is not an ONNX model")


def test_operator_the_importer_does_not_support(project):
    node = helper.make_node("Det", ["x"], ["y"])  # Celu was the example until we converted it (#32)
    graph = helper.make_graph([node], "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])])
    path = project / "models" / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert_one_line_error(*invoke("tune", "--model", str(path), "--target", "host", "--trials", "4"),
                          "does not support operator(s) Det")


def test_unknown_target(project):
    assert_one_line_error(*invoke("tune", "--model", "mlp", "--target", "tpu", "--trials", "4"),
                          "unknown target 'tpu'", "host", "x86-avx512")


def test_malformed_target_toml(project):
    text = (project / "targets" / "host.toml").read_text().replace('name = "host"', 'name = "broken"')
    (project / "targets" / "broken.toml").write_text(text.replace("total_trials = 2000", "total_trials = \"lots\""))
    assert_one_line_error(*invoke("compile", "--model", "mlp", "--target", "broken"),
                          "broken.toml", "'tuning.total_trials'")


def test_targets_lists_the_rest_beside_a_broken_profile(project):
    (project / "targets" / "broken.toml").write_text("name = \n")
    code, output = invoke("targets")
    assert code == 0 and "Traceback" not in output
    assert "malformed" in output and "host" in output and "cuda-sm90" in output


@pytest.mark.parametrize("trials", ["0", "-3"])
def test_non_positive_trials_touch_nothing(project, trials):
    from workbench.compiler.hostinfo import llvm_host_cpu

    content = seeded_database(project / "tuning_logs" / "host", {"kind": "llvm", "mcpu": llvm_host_cpu()})
    assert_one_line_error(*invoke("tune", "--model", "mlp", "--target", "host", "--trials", trials),
                          "--trials must be a positive number")
    assert (project / "tuning_logs" / "host" / "database_tuning_record.json").read_text() == content


def test_database_for_another_target(project):
    db = project / "cuda-db"
    content = seeded_database(db, {"kind": "cuda", "arch": "sm_90"})
    assert_one_line_error(*invoke("compile", "--model", "mlp", "--target", "host", "--database", str(db)),
                          "holds records tuned for", "not for this target")
    assert (db / "database_tuning_record.json").read_text() == content


def test_corrupt_database_line(project):
    from workbench.compiler.hostinfo import llvm_host_cpu

    db = project / "tuning_logs" / "host"
    content = seeded_database(db, {"kind": "llvm", "mcpu": llvm_host_cpu()}, extra="{not json\n")
    assert_one_line_error(*invoke("tune", "--model", "mlp", "--target", "host", "--trials", "4"),
                          "database_tuning_record.json:2 is corrupt")
    assert (db / "database_tuning_record.json").read_text() == content


def test_bad_batch_sizes(project):
    assert_one_line_error(*invoke("compile", "--model", "mlp", "--target", "host", "--batch-sizes", "1,x"),
                          "--batch-sizes must be comma-separated positive integers")


@pytest.mark.skipif(bool(gpus()), reason="this machine has a GPU")
def test_tune_cuda_without_gpu_suggests_rpc(project):
    assert_one_line_error(*invoke("tune", "--model", "mlp", "--target", "cuda", "--trials", "4"),
                          "cannot tune for 'cuda' here: no NVIDIA GPU", "RPC")


def test_target_tvm_rejects(project):
    text = (project / "targets" / "host.toml").read_text().replace('name = "host"', 'name = "odd"')
    (project / "targets" / "odd.toml").write_text(text.replace('kind = "llvm"', 'kind = "llvmx"'))
    assert_one_line_error(*invoke("compile", "--model", "mlp", "--target", "odd"), "TVM rejects the target")


def test_fixed_batch_model_refuses_other_batch_sizes(project):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = project / "models" / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert_one_line_error(*invoke("compile", "--model", str(path), "--target", "host", "--batch-sizes", "1,8"),
                          "no dynamic batch dimension", "leave --batch-sizes out")


@pytest.mark.parametrize("args, message", [
    (("tune", "--model", "mlp", "--target", "host", "--trials", "4", "--seed", "-1"), "--seed must be between"),
    (("tune", "--model", "mlp", "--target", "host", "--minutes", "nan"), "--minutes must be a positive number"),
    (("tune", "--model", "mlp", "--target", "host", "--minutes", "0"), "--minutes must be a positive number"),
    (("tune", "--model", "mlp", "--target", "host", "--retime-pool", "-1"), "--retime-pool must be 0 (off)"),
    (("compile", "--model", "mlp", "--target", "host", "--database", "no/such/db"), "no tuning database at"),
    (("compile", "--model", "mlp", "--target", "host", "--rtol", "-1"), "--rtol and --atol must be non-negative"),
    (("bench", "--model", "mlp", "--engines", "tvm", "--atol", "nan"), "--rtol and --atol must be non-negative"),
    (("compile", "--model", "mlp", "--target", "host", "--batch-sizes", "[/x]"), "--batch-sizes must be"),
    # NaN never reaches the wait's deadline: without the check a missing device hung the run.
    (("tune", "--model", "mlp", "--target", "host", "--rpc", "127.0.0.1:1", "--rpc-key", "k", "--rpc-wait", "nan"),
     "--rpc-wait must be a non-negative number"),
    (("bench", "--model", "mlp", "--engines", "tvm", "--rpc", "127.0.0.1:1", "--rpc-key", "k", "--rpc-wait", "-1"),
     "--rpc-wait must be a non-negative number"),
])
def test_bad_options(project, args, message):
    assert_one_line_error(*invoke(*args), message)


def test_database_path_that_is_a_file(project):
    (project / "db-file").write_text("x")
    assert_one_line_error(*invoke("tune", "--model", "mlp", "--target", "host", "--trials", "4",
                                  "--database", str(project / "db-file")), "is a file")


def test_out_directory_with_other_files_is_not_replaced(project):
    out = project / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_one_line_error(*invoke("compile", "--model", "mlp", "--target", "host", "--out", str(out)),
                          "not a workbench build")
    assert (out / "notes.txt").read_text() == "keep me"


def test_out_directory_that_cannot_be_created(project):
    (project / "a-file").write_text("x")
    assert_one_line_error(*invoke("compile", "--model", "mlp", "--target", "host", "--out",
                                  str(project / "a-file" / "sub")), "cannot create the output directory")


def test_bench_empty_batch_sizes(project):
    assert_one_line_error(*invoke("bench", "--model", "mlp", "--batch-sizes", ""),
                          "--batch-sizes must be comma-separated positive integers")
