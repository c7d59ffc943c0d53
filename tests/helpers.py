"""What the tests share: a fresh project, the CLI run as a user runs it, the one-line error check,
a workbench server on a free loopback port and plain HTTP calls to it."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from workbench import models
from workbench.serving.process import ServerProcess, free_port, python_module
from workbench.serving.server import ModelConfig, ServerConfig

REPO = Path(__file__).resolve().parent.parent


def make_project(root: Path) -> Path:
    """A fresh workbench project directory: the shipped targets, empty models/ and tuning_logs/."""
    shutil.copytree(REPO / "targets", root / "targets")
    (root / "models").mkdir()
    (root / "tuning_logs").mkdir()
    return root


def load_script(name: str):
    """A script of scripts/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_reference(root: Path) -> dict:
    """Environment for CLI runs that find no shipped reference records: an untuned build stays untuned
    on a CPU whose family the repo ships records for (they apply to every host build, tests' too)."""
    empty = root / "no-reference"
    empty.mkdir(exist_ok=True)
    return {"WORKBENCH_REFERENCE_DIR": str(empty)}


def workbench_cli(*args: str, home: Path, timeout: float = 600, extra_env: dict | None = None,
                  **kwargs) -> subprocess.CompletedProcess:
    """The installed console script, run as a user runs it."""
    exe = Path(sys.executable).parent / "workbench"
    env = {**os.environ, "WORKBENCH_HOME": str(home), "COLUMNS": "200", **(extra_env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def invoke(*args: str):
    """The CLI in-process (Typer's runner): exit code and output."""
    from workbench.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def assert_one_line_error(returncode: int, output: str, *fragments: str) -> None:
    """A bad input ends with a non-zero exit and one 'error:' line naming the problem, no traceback."""
    assert returncode != 0, output
    assert "Traceback" not in output, output
    assert sum(line.startswith("error:") for line in output.splitlines()) == 1, output
    flat = " ".join(output.split())
    for fragment in fragments:
        assert fragment in flat, output


def records_in(directory: Path) -> int:
    path = directory / "database_tuning_record.json"
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def model_config(name: str, **kw) -> ModelConfig:
    source = models.resolve(name)
    model = models.load(source)
    extra = {}
    if recipe := models.metadata(model).get("workbench.preprocess"):
        extra["preprocess"] = json.loads(recipe)
    return ModelConfig(name, kw.pop("engine", "onnxruntime"), str(source.path),
                       models.spec_dicts(models.input_specs(model)), models.spec_dicts(models.output_specs(model)),
                       extra=extra, **kw)


def start_server(tmp_path, *model_configs, **server_kw) -> ServerProcess:
    port = free_port()
    config = tmp_path / "server.json"
    config.write_text(ServerConfig(list(model_configs), port=port, **server_kw).to_json())
    return ServerProcess("test-server", python_module("workbench.serving.server", str(config)), port,
                         tmp_path / "server.log").start()


def call(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def mlp_tensor(**over):
    base = {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0.0] * 64}
    return json.dumps({"inputs": [{**base, **over}]}).encode()


SHA = "0" * 64
BUNDLE_FILES = ["lib/m-b1.so", "lib/m-b4.so", "model/m.onnx", "samples/b1.npz", "samples/b4.npz", "perf.json",
                "request.json"]
VALID_BUNDLE_MANIFEST = {  # a bundle manifest as export writes one, for the bundle rules' tests

    "bundle_format": 2, "name": "m-host", "version": "1", "target": "llvm", "target_json": {"kind": "llvm"},
    "device": "cpu",
    "model": {"name": "m", "file": "model/m.onnx", "sha256": SHA, "task": None},
    "requires": {"machine": "x86_64", "device": "cpu", "cpu_flags": ["avx2"], "gpu_arch": None, "python": "3.11"},
    "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 64]}],
    "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}],
    "batch_sizes": [1, 4],
    "libraries": {"1": {"file": "lib/m-b1.so", "sha256": SHA}, "4": {"file": "lib/m-b4.so", "sha256": SHA}},
    "tolerance": {"rtol": 1e-4, "atol": 1e-5},
    "samples": {"1": "samples/b1.npz", "4": "samples/b4.npz"},
    "perf_card": {"file": "perf.json", "run_id": None}, "example_request": "request.json",
    "files": {f: SHA for f in BUNDLE_FILES}, "sizes": {f: 10 for f in BUNDLE_FILES},
}


def short_served_bench(home: Path, *options: str) -> dict:
    """A half-second bench of server-onnxruntime with `options`; checks its one row is correct and
    error-free, with the server's CPU per request read from its process, and returns its record."""
    result = workbench_cli("bench", "--model", "mlp", "--engines", "server-onnxruntime", *options,
                           "--concurrency", "4", "--duration", "0.5", "--warmup", "0.1", "--min-requests", "20",
                           "--json", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["status"] == "ok" and row["correct"] and row["errors"] == 0 and row["throughput"] > 0
    assert row["server_cpu_us_per_request"] > 0
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    return json.loads(next((run_dir / "records").glob("server-onnxruntime__*")).read_text())


STAT_PHASES = ("success", "queue", "compute_input", "compute_infer", "compute_output")


def statistics_under_load(counts, send, workers: int = 8) -> tuple[dict, dict]:
    """Run send(i) for i < workers on as many threads while another reads counts() over and over;
    every snapshot must have moved Triton's five phases by the same count (perf_analyzer aborts
    otherwise, issue #33). Returns the counts before and after; send returns its HTTP statuses."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    before, snapshots, stop = counts(), [], threading.Event()

    def read():
        while not stop.is_set():
            snapshots.append(counts())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with ThreadPoolExecutor(workers) as pool:
            statuses = [status for sent in pool.map(send, range(workers)) for status in sent]
    finally:
        stop.set()
        reader.join()
    assert set(statuses) == {200}, statuses
    after = counts()
    snapshots.append(after)
    torn = [s for s in snapshots if len({s[k] - before[k] for k in STAT_PHASES}) != 1]
    assert not torn, f"{len(torn)} of {len(snapshots)} snapshots count phases apart, e.g. {torn[0]}"
    assert after["success"] - before["success"] == len(statuses) and after["fail"] == before["fail"]
    return before, after
