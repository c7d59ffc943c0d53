"""TVM is imported only by the compiler and the engines that run it: benchmarking ONNX Runtime,
reporting and listing targets work where `import tvm` fails, even after a tune has left a tuning
database for the target (bench reads its sessions for the report's curves)."""

import pytest

from tests.helpers import workbench_cli

pytestmark = pytest.mark.build  # builds or tunes with TVM


@pytest.mark.slow
def test_bench_report_and_targets_run_where_tvm_cannot_be_imported(project, tmp_path):
    tuned = workbench_cli("tune", "--model", "mlp", "--target", "host", "--trials", "4", "--batch-sizes", "1",
                          home=project)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert (project / "tuning_logs" / "host" / "sessions.jsonl").is_file()

    blocked = tmp_path / "blocked"
    (blocked / "tvm").mkdir(parents=True)
    (blocked / "tvm" / "__init__.py").write_text("raise ImportError('import tvm is blocked by this test')\n")
    env = {"PYTHONPATH": str(blocked)}

    def run(*args):
        result = workbench_cli(*args, home=project, extra_env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, output
        return output

    run("bench", "--model", "mlp", "--target", "host", "--engines", "onnxruntime,server-onnxruntime",
        "--batch-sizes", "1", "--concurrency", "1", "--duration", "1", "--warmup", "0.2", "--min-requests", "10")
    run("report")
    listing = run("targets")
    assert "TVM cannot be imported" in listing and "mcpu=auto" in listing
