"""Serving bundles for real: export through the CLI, verify, serve (archive, directory, several
models, deployed as its README says in a fresh virtual environment), and refuse tampered,
truncated, unsafe or foreign bundles and manifests that do not tell the truth."""

import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import assert_one_line_error, call, make_project, workbench_cli
from workbench import models, reference
from workbench.bundle.archive import file_digests, file_sizes
from workbench.bundle.export import python_version
from workbench.serving.process import ServerProcess, free_port
from workbench.serving.protocol import encode_request

pytestmark = pytest.mark.build  # builds or tunes with TVM


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("bundle-home"))


@pytest.fixture(scope="module")
def archive(home) -> Path:
    """mlp at batch sizes 1 and 4, benchmarked first so the bundle carries a perf card."""
    bench = workbench_cli("bench", "--model", "mlp", "--engines", "tvm", "--batch-sizes", "1,4", "--json", home=home)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    result = workbench_cli("export", "--model", "mlp", "--target", "host", "--batch-sizes", "1,4",
                           "--out", str(home / "bundles"), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    path = home / "bundles" / "mlp-host.tar.gz"
    assert path.exists() and str(path) in " ".join(result.stdout.split())
    return path


def _unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "mlp-host"


def _serve(home: Path, *args: str, log: Path) -> ServerProcess:
    port = free_port()
    argv = [str(Path(sys.executable).parent / "workbench"), "serve", *args, "--port", str(port)]
    return ServerProcess("bundle-server", argv, port, log, env={**os.environ, "WORKBENCH_HOME": str(home)}).start()


def _infer_matches_onnxruntime(url: str, model: str) -> None:
    inputs = models.sample_inputs(models.load(models.resolve("mlp")), 3, seed=11)
    status, _, body = call(f"{url}/v2/models/{model}/infer", encode_request(inputs))
    assert status == 200, body
    out = json.loads(body)["outputs"][0]
    expected = reference.run(models.resolve("mlp").path, inputs)[0]
    np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(3, 10), expected, rtol=1e-4, atol=1e-5)


def test_export_writes_a_complete_checksummed_bundle(archive, tmp_path):
    root = _unpack(archive, tmp_path)
    text = (root / "manifest.json").read_text()
    manifest = json.loads(text)
    assert manifest["bundle_format"] == 2
    assert manifest["files"] == file_digests(root) and manifest["sizes"] == file_sizes(root)
    assert manifest["batch_sizes"] == [1, 4] and sorted(manifest["libraries"]) == ["1", "4"]
    assert {"lib/mlp-b1.so", "lib/mlp-b4.so", "model/mlp.onnx", "samples/b1.npz", "perf.json", "requirements.txt",
            "Dockerfile", "README.md", "runtime/workbench/serving/server.py",
            "deploy/kserve.yaml"} <= set(manifest["files"])
    service = yaml.safe_load((root / "deploy" / "kserve.yaml").read_text())
    assert service["kind"] == "InferenceService" and service["metadata"]["name"] == "mlp-host"
    assert manifest["requires"]["machine"] and manifest["tuned_on"]["fingerprint_id"]
    assert "apache-tvm-ffi==0.1.14.post1" in (root / "requirements.txt").read_text().splitlines()
    card = json.loads((root / "perf.json").read_text())
    assert card["run_id"] and any(r["engine"] == "tvm" and r["scenario"] == "latency" for r in card["rows"])
    assert card["run_id"] in (root / "README.md").read_text()
    pins = (root / "requirements.txt").read_text()
    assert "\njsonschema==" in pins  # the manifest is validated against its schema where it is served


def test_the_bundle_says_which_python_and_ships_an_example_request(archive, tmp_path):
    root = _unpack(archive, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    readme = (root / "README.md").read_text()
    assert manifest["requires"]["python"] == python_version()
    assert f"Python {python_version()}" in readme and f"python{python_version()} -m venv" in readme
    assert f"FROM python:{python_version()}-slim" in (root / "Dockerfile").read_text()
    assert manifest["example_request"] == "request.json" and "request.json" in manifest["files"]
    assert "-d @request.json" in readme
    request = json.loads((root / "request.json").read_text())
    with np.load(root / "samples" / "b1.npz") as sample:
        assert request["inputs"][0]["shape"] == [1, 64] and request["inputs"][0]["datatype"] == "FP32"
        np.testing.assert_array_equal(np.asarray(request["inputs"][0]["data"], np.float32),
                                      sample["input_0"].ravel())


def test_the_manifest_records_no_path_of_the_build_machine(archive, home, tmp_path):
    root = _unpack(archive, tmp_path)
    text = (root / "manifest.json").read_text()
    assert json.loads(text)["tuning"]["database"] == "tuning_logs/host"
    assert str(home) not in text and str(home.resolve()) not in text


def test_verify_passes_on_a_fresh_bundle(archive, home):
    result = workbench_cli("verify", str(archive), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout and "match" in result.stdout


def test_serve_an_archive_and_a_directory_as_two_models(archive, home, tmp_path):
    directory = _unpack(archive, tmp_path / "unpacked")
    before = set(Path(tempfile.gettempdir()).glob("workbench-bundle-*"))
    server = _serve(home, "--models", f"first={archive},second={directory}", log=tmp_path / "serve.log")
    try:
        _infer_matches_onnxruntime(server.url, "first")
        _infer_matches_onnxruntime(server.url, "second")
        status, _, body = call(server.url + "/v2/models/first")
        assert status == 200 and json.loads(body)["parameters"]["batch_sizes"] == [1, 4]
        assert call(server.url + "/v2/models/mlp")[0] == 404
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert set(Path(tempfile.gettempdir()).glob("workbench-bundle-*")) == before  # extraction cleaned up


def test_serve_with_openvino_runs_the_bundled_onnx_model(archive, home, tmp_path):
    server = _serve(home, str(archive), "--engine", "openvino", log=tmp_path / "serve.log")
    try:
        _infer_matches_onnxruntime(server.url, "mlp")
        assert json.loads(call(server.url + "/v2/models/mlp")[2])["platform"] == "workbench-openvino"
    finally:
        server.stop()
    assert server.process.returncode == 0
    readme = (_unpack(archive, tmp_path) / "README.md").read_text()
    assert "serve . --port 8080 --engine openvino" in readme and "openvino==2026.4.*" in readme


def _rewrite_archive(archive: Path, out: Path, change) -> Path:
    """A copy of the archive with `change(root)` applied to its extracted folder."""
    root = _unpack(archive, out / "x")
    change(root)
    target = out / "changed.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    return target


def _flip_a_byte(root: Path) -> None:
    lib = root / "lib" / "mlp-b1.so"
    data = bytearray(lib.read_bytes())
    data[len(data) // 2] ^= 0xFF
    lib.write_bytes(bytes(data))


def _edit_manifest(edit):
    """A change that edits manifest.json (and nothing else, so every checksum still matches)."""
    def change(root: Path) -> None:
        manifest = json.loads((root / "manifest.json").read_text())
        edit(manifest)
        (root / "manifest.json").write_text(json.dumps(manifest))
    return change


def _outside_library(where: str):
    """The manifest's batch-1 library pointed at a copy outside the bundle."""
    def edit(manifest: dict) -> None:
        manifest["libraries"]["1"]["file"] = where
    return edit


def _grow(root: Path) -> None:
    with open(root / "samples" / "b1.npz", "ab") as f:
        f.write(bytes(1 << 20))


def _foreign_cache(root: Path) -> None:
    (root / "runtime" / "workbench" / "__pycache__").mkdir()
    (root / "runtime" / "workbench" / "__pycache__" / "cli.cpython-39.pyc").write_bytes(b"\x61\x0d\x0d\x0a" * 8)


@pytest.mark.parametrize("change, fragment", [
    (_flip_a_byte, "checksum of lib/mlp-b1.so does not match"),
    (_edit_manifest(_outside_library("/tmp/workbench-outside.so")),
     "libraries.1.file '/tmp/workbench-outside.so' points outside the bundle"),
    (_edit_manifest(_outside_library("../../outside.so")), "libraries.1.file '../../outside.so' points outside"),
    (_edit_manifest(lambda m: m["model"].update(file="/etc/hostname")), "model.file '/etc/hostname' points outside"),
    (_edit_manifest(lambda m: m["inputs"][0].update(shape=["batch", 65])),
     "manifest.json inputs[0] is 'input' float32 ['batch', 65] but the bundled model's is 'input' float32 "
     "['batch', 64]"),
    (_edit_manifest(lambda m: m["outputs"][0].update(dtype="float16")), "manifest.json outputs[0] is 'logits' float16"),
    (_edit_manifest(lambda m: m.update(inputs="x")), "manifest.json: inputs: 'x' is not of type 'array'"),
    (_edit_manifest(lambda m: m.update(batch_sizes=[1, 4, 8])), "batch_sizes are [1, 4, 8] but its libraries"),
    (_grow, "bytes in the archive but"),
    (_foreign_cache, "cli.cpython-39.pyc was written by another Python (cpython-39"),
    (lambda root: (root / "samples" / "b4.npz").unlink(), "samples/b4.npz is missing"),
    (lambda root: (root / "lib" / "extra.so").write_bytes(b"x"), "lib/extra.so is not in the manifest"),
    (lambda root: (root / "manifest.json").unlink(), "not a workbench bundle (no manifest.json)"),
    (lambda root: (root / "manifest.json").write_text("{"), "manifest.json is not valid JSON"),
    (lambda root: (root / "manifest.json").write_text('{"bundle_format": 1}'), "manifest.json lacks name"),
])
def test_a_modified_bundle_is_refused_by_verify_and_serve(archive, home, tmp_path, change, fragment):
    changed = _rewrite_archive(archive, tmp_path, change)
    for command in (["verify", str(changed)], ["serve", str(changed), "--port", str(free_port())]):
        result = workbench_cli(*command, home=home, timeout=120)
        assert_one_line_error(result.returncode, result.stdout + result.stderr, fragment)


def test_a_truncated_archive_is_refused(archive, home, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    result = workbench_cli("verify", str(cut), home=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "cannot read the archive", "truncated")


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("mlp-host")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _member(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member, fragment", [
    (_member("mlp-host/../../escaped.txt"), "unsafe path"),
    (_member("/tmp/absolute.txt"), "unsafe path"),
    (_member("mlp-host/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link or special file"),
    (_member("mlp-host/hard", tarfile.LNKTYPE, "/etc/passwd"), "is a link or special file"),
])
def test_unsafe_archives_are_refused_before_anything_is_written(home, tmp_path, member, fragment):
    archive = _tar_with(tmp_path / "evil.tar.gz", member, b"evil")
    result = workbench_cli("verify", str(archive), home=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, fragment)
    assert not (tmp_path.parent / "escaped.txt").exists() and not Path("/tmp/absolute.txt").exists()


def test_a_bundle_for_a_gpu_is_refused_on_a_cpu_only_machine(home):
    from workbench.fingerprint import gpus

    if gpus():
        pytest.skip("this machine has a GPU")
    result = workbench_cli("export", "--model", "mlp", "--target", "cuda", "--batch-sizes", "1",
                           "--out", str(home / "bundles"), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    for command in ("verify", "serve"):
        result = workbench_cli(command, str(home / "bundles" / "mlp-cuda.tar.gz"), home=home)
        assert_one_line_error(result.returncode, result.stdout + result.stderr, "cannot run on this machine",
                              "NVIDIA GPU")


@pytest.mark.parametrize("args, fragment", [
    (["serve", "no/such/bundle.tar.gz"], "no bundle at no/such/bundle.tar.gz"),
    (["serve"], "name one bundle"),
    (["serve", "--models", "a"], "--models takes name=bundle pairs"),
    (["serve", "--models", "a=x.tar.gz,a=y.tar.gz"], "distinct names"),
    (["serve", "x.tar.gz", "--port", "0"], "--port must be 1-65535"),
    (["serve", "x.tar.gz", "--engine-threads", "-2"], "--engine-threads must be 0 (one per physical core)"),
    (["verify", "README.md"], "neither a bundle directory nor a .tar.gz"),
    (["export", "--model", "mlp", "--target", "host", "--labels", "no-such-labels.txt"], "cannot read --labels"),
])
def test_bad_bundle_commands_get_one_line(home, args, fragment):
    (home / "README.md").write_text("not a bundle")
    result = workbench_cli(*args, home=home, cwd=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, fragment)


def test_a_format_1_bundle_still_opens(archive, home, tmp_path):
    """Bundles exported before per-file sizes were recorded: checksums as before, the total cap only."""
    def edit(manifest: dict) -> None:
        del manifest["sizes"]
        manifest["bundle_format"] = 1
    old = _rewrite_archive(archive, tmp_path, _edit_manifest(edit))
    result = workbench_cli("verify", str(old), home=home)
    assert result.returncode == 0 and "verified" in result.stdout, result.stdout + result.stderr


def _readme_steps(root: Path) -> list[str]:
    """The first code block of the README's "Run it" section, as a user pastes it."""
    section = (root / "README.md").read_text().split("## Run it", 1)[1]
    block = section.split("\n    ", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines()]


def _dockerfile_cmd(root: Path, port: int) -> tuple[list[str], str, dict]:
    """The Dockerfile's CMD argv with the bundle path, --host 127.0.0.1 and --port substituted,
    its WORKDIR (the bundle here) and its ENV lines (the bundle path substituted)."""
    lines = (root / "Dockerfile").read_text().splitlines()
    workdir = next(line.split()[1] for line in lines if line.startswith("WORKDIR "))
    env = dict(line.split(None, 1)[1].split("=", 1) for line in lines if line.startswith("ENV "))
    argv = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    substitute = {workdir: str(root), argv[argv.index("--host") + 1]: "127.0.0.1",
                  argv[argv.index("--port") + 1]: str(port), argv[argv.index("--grpc-port") + 1]: str(free_port())}
    return ([substitute.get(a, a) for a in argv], workdir,
            {k: v.replace(workdir, str(root)) for k, v in env.items()})


def _env_i(**variables: str) -> list[str]:
    """`env -i` with only these set: nothing from this test's environment (PYTHONDONTWRITEBYTECODE
    above all) reaches the command."""
    return ["env", "-i", *(f"{k}={v}" for k, v in variables.items())]


def _serves_its_sample(server: ServerProcess, root: Path) -> None:
    """Ready, and request.json answered with the stored ONNX Runtime outputs of the batch-1 sample."""
    assert call(server.url + "/v2/health/ready")[0] == 200
    status, _, body = call(f"{server.url}/v2/models/mlp/infer", (root / "request.json").read_bytes(),
                           {"Content-Type": "application/json"})
    assert status == 200, body
    with np.load(root / "samples" / "b1.npz") as sample:
        expected = sample["output_0"]
    out = json.loads(body)["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(expected.shape), expected,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_bundle_deploys_as_its_readme_says_with_a_stock_python(archive, tmp_path):
    """What a user does: unpack, run the README's steps (a fresh venv from the stock python3.X,
    requirements.txt, verify, serve, serve again), then the Dockerfile's CMD, each under `env -i`
    with only PATH, HOME and PYTHONPATH, so Python writes its bytecode caches into runtime/ as it
    does by default. (pip's wheel cache under $HOME is reused between runs.)"""
    with tarfile.open(archive) as tar:  # as `tar xzf` does
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "mlp-host"
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not Path(p).resolve().is_relative_to(Path(sys.prefix).resolve()))
    user = {"PATH": path, "HOME": os.environ["HOME"], "PYTHONPATH": "runtime"}
    setup, verify, serve = _readme_steps(root)

    def shell(line: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([*_env_i(**user), "bash", "-c", line], cwd=root, capture_output=True, text=True,
                              timeout=timeout)

    installed = shell(setup, timeout=900)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    checked = shell(verify, timeout=300)
    assert checked.returncode == 0 and "verified" in checked.stdout, checked.stdout + checked.stderr
    assert list((root / "runtime" / "workbench").glob("__pycache__/*.pyc"))  # caches were written and accepted

    argv = shlex.split(serve, comments=True)
    argv = [a for a in argv if not a.startswith("PYTHONPATH=")]  # set in the environment instead
    for attempt in ("first", "second"):  # the second start meets the caches the first one wrote
        port = free_port()
        argv[argv.index("--port") + 1] = str(port)
        server = ServerProcess(f"readme-{attempt}", _env_i(**user) + argv, port, tmp_path / f"{attempt}.log",
                               cwd=root).start()
        try:
            _serves_its_sample(server, root)
        finally:
            assert server.stop() == 0, (tmp_path / f"{attempt}.log").read_text()[-2000:]

    port = free_port()
    cmd, _, image_env = _dockerfile_cmd(root, port)
    words = shlex.split(setup)
    venv_bin = (root / words[words.index("venv") + 1] / "bin").resolve()  # python3.X -m venv <dir> && ...
    docker_env = {**image_env, "PATH": f"{venv_bin}{os.pathsep}{path}", "HOME": os.environ["HOME"]}
    server = ServerProcess("dockerfile-cmd", _env_i(**docker_env) + cmd, port, tmp_path / "docker.log",
                           cwd=root).start()
    try:
        _serves_its_sample(server, root)
    finally:
        assert server.stop() == 0

    # An added file that matches no shipped source is still refused, cache-like name or not.
    stray = root / "runtime" / "workbench" / "__pycache__" / f"extra.{sys.implementation.cache_tag}.pyc"
    stray.write_bytes(next((root / "runtime" / "workbench").glob("__pycache__/*.pyc")).read_bytes())
    refused = shell(verify, timeout=300)
    assert_one_line_error(refused.returncode, refused.stdout + refused.stderr, f"{stray.name} is not in the manifest")
