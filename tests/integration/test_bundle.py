"""Serving bundles for real: export through the CLI, verify, serve (archive, directory, several
models, a fresh virtual environment), and refuse tampered, truncated, unsafe or foreign bundles."""

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_one_line_error, make_project, workbench_cli
from tests.integration.test_server import call
from workbench import models, reference
from workbench.bench import v2_request
from workbench.bundle.archive import file_digests
from workbench.serving.process import ServerProcess, free_port


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
    status, _, body = call(f"{url}/v2/models/{model}/infer", v2_request(inputs))
    assert status == 200, body
    out = json.loads(body)["outputs"][0]
    expected = reference.run(models.resolve("mlp").path, inputs)[0]
    np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(3, 10), expected, rtol=1e-4, atol=1e-5)


def test_export_writes_a_complete_checksummed_bundle(archive, tmp_path):
    root = _unpack(archive, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["files"] == file_digests(root)
    assert manifest["batch_sizes"] == [1, 4] and sorted(manifest["libraries"]) == ["1", "4"]
    assert {"lib/mlp-b1.so", "lib/mlp-b4.so", "model/mlp.onnx", "samples/b1.npz", "perf.json", "requirements.txt",
            "Dockerfile", "README.md", "runtime/workbench/serving/server.py"} <= set(manifest["files"])
    assert manifest["requires"]["machine"] and manifest["tuned_on"]["fingerprint_id"]
    assert "apache-tvm-ffi==0.1.14.post1" in (root / "requirements.txt").read_text().splitlines()
    card = json.loads((root / "perf.json").read_text())
    assert card["run_id"] and any(r["engine"] == "tvm" and r["scenario"] == "latency" for r in card["rows"])
    assert card["run_id"] in (root / "README.md").read_text()


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


@pytest.mark.parametrize("change, fragment", [
    (_flip_a_byte, "checksum of lib/mlp-b1.so does not match"),
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
    (["verify", "README.md"], "neither a bundle directory nor a .tar.gz"),
    (["export", "--model", "mlp", "--target", "host", "--labels", "no-such-labels.txt"], "cannot read --labels"),
])
def test_bad_bundle_commands_get_one_line(home, args, fragment):
    (home / "README.md").write_text("not a bundle")
    result = workbench_cli(*args, home=home, cwd=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, fragment)


def test_a_fresh_virtualenv_with_only_requirements_txt_serves_the_bundle(archive, tmp_path):
    """No workbench install: the bundle's pinned requirements and its runtime/ copy are enough."""
    root = _unpack(archive, tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                              "-r", str(root / "requirements.txt")], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_HOME", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(root / "runtime")
    argv = [str(venv / "bin" / "python"), "-m", "workbench", "serve", ".", "--port", str(port)]
    server = ServerProcess("fresh-venv", argv, port, tmp_path / "fresh.log", cwd=root, env=env).start()
    try:
        _infer_matches_onnxruntime(server.url, "mlp")
    finally:
        server.stop()
