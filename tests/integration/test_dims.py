"""Dynamic non-batch dimensions (issue #32, item 2): `--dims seq=8,16` compiles a variant per
sequence length of a tiny encoder built here; a server answers both lengths and refuses another
with 400 naming the compiled shapes; a model with a dynamic dimension and no --dims is one line."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.helpers import assert_one_line_error, call, model_config, start_server, workbench_cli
from workbench.serving.protocol import encode_request

HIDDEN = 16


def encoder(path) -> None:
    """Self-attention without heads: h = x W, softmax(h h^T) h, over [batch, seq, hidden]."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array((rng.standard_normal((HIDDEN, HIDDEN)) / 4).astype("float32"), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["h", "ht"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["attention"], axis=-1),
             helper.make_node("MatMul", ["attention", "h"], ["y"])]
    graph = helper.make_graph(nodes, "encoder",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
                              [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture
def encoder_project(project):
    encoder(project / "models" / "enc.onnx")
    return project


def _request(seq: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, seq, HIDDEN)).astype("float32")


def _infer(server, seq: int, seed: int | None = None):
    x = _request(seq, seq if seed is None else seed)
    status, _, body = call(f"{server.url}/v2/models/enc/infer", encode_request({"x": x}),
                           {"content-type": "application/json"})
    return status, json.loads(body)


@pytest.mark.build
def test_dims_compiles_each_sequence_length_and_the_server_refuses_others(encoder_project, tmp_path):
    result = workbench_cli("compile", "--model", "enc", "--target", "host", "--batch-sizes", "1",
                           "--dims", "seq=8,16", home=encoder_project)
    assert result.returncode == 0, result.stdout + result.stderr
    build = encoder_project / "build" / "enc" / "host"
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["dims"] == {"seq": [8, 16]}
    assert set(manifest["libraries"]) == {"b1-seq8", "b1-seq16"}
    assert manifest["libraries"]["b1-seq16"]["dims"] == {"seq": 16}
    assert manifest["libraries"]["b1-seq16"]["shapes"] == {"x": [1, 16, HIDDEN]}
    assert set(manifest["correctness"]["per_batch"]) == {"b1-seq8", "b1-seq16"}
    server = start_server(tmp_path, model_config("enc", engine="tvm",
                                                 build_dir=str(build), max_batch=1, threads=1))
    try:
        for seq in (8, 16):
            status, answer = _infer(server, seq)
            assert status == 200, answer
            assert answer["outputs"][0]["shape"] == [1, seq, HIDDEN]
        status, answer = _infer(server, 12)
        assert status == 400
        assert "x [batch, 8, 16]" in answer["error"] and "x [batch, 16, 16]" in answer["error"], answer
        assert "x [batch, 12, 16]" in answer["error"], answer
        metadata = json.loads(call(f"{server.url}/v2/models/enc")[2])
        assert metadata["parameters"]["shapes"] == [{"x": [-1, 8, 16]}, {"x": [-1, 16, 16]}]
        assert metadata["inputs"][0]["shape"] == [-1, -1, 16]
        assert metadata["parameters"]["engine_threads"] == 1  # TVM's pool, sized for the server process
    finally:
        server.stop()


@pytest.mark.parametrize("verb", ["compile", "tune", "bench", "export"])
def test_a_dynamic_dimension_without_dims_is_one_line(encoder_project, verb):
    result = workbench_cli(verb, "--model", "enc", "--target", "host", home=encoder_project)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "input 'x' axis 1",
                          "dynamic dimension 'seq'", "pass --dims seq=<sizes>")


@pytest.mark.parametrize("dims, fragments", [
    ("len=8", ("--dims names 'len'", "'seq'")),
    ("seq=0", ("positive integers",)),
    ("seq=8,x", ("positive integers",)),
    ("seq", ("name=sizes",)),
])
def test_bad_dims_are_one_line(encoder_project, dims, fragments):
    result = workbench_cli("compile", "--model", "enc", "--target", "host", "--dims", dims, home=encoder_project)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, *fragments)


@pytest.mark.build
def test_bench_measures_each_dims_combination(encoder_project):
    from workbench import verdict
    from workbench.bench import BenchConfig, run_bench
    from workbench.benchview import BenchDisplay
    from workbench.dims import parse_dims
    from workbench.load.direct import DirectSpec

    config = BenchConfig("enc", "host", engines=("tvm", "onnxruntime", "server-tvm"), batch_sizes=(1,),
                         dims=parse_dims("seq=8,16"), duration_s=0.5, warmup_s=0.1, min_requests=5,
                         concurrency=(2,), direct_spec=DirectSpec(min_runs=5, min_time_s=0.1, offline_s=0.2,
                                                                  paired_s=0.1))
    run_dir, records = run_bench(config, BenchDisplay(enabled=False))
    seen = {(r["engine"], r["scenario"]["kind"], r["scenario"]["dims"]["seq"]) for r in records}
    for seq in (8, 16):
        assert {("tvm", "latency", seq), ("onnxruntime", "latency", seq), ("server-tvm", "closed", seq)} <= seen
    for record in records:
        assert record["status"] == "ok", (record["engine"], record["scenario"], record.get("note"))
        assert record["correctness"]["passed"] is True
    assert len(list((run_dir / "records").glob("*.json"))) == len(records)  # no combination overwrote another
    assert verdict.decide(records).figure.endswith(", seq 8")  # engines compared at one shape, and it is named


@pytest.mark.build
def test_a_bundle_with_dims_verifies_and_serves_its_shapes(encoder_project, tmp_path):
    import os
    import sys
    from pathlib import Path

    from workbench.bundle.archive import open_bundle
    from workbench.serving.process import ServerProcess, free_port

    result = workbench_cli("export", "--model", "enc", "--target", "host", "--batch-sizes", "1",
                           "--dims", "seq=8,16", "--out", str(tmp_path / "bundles"), home=encoder_project)
    assert result.returncode == 0, result.stdout + result.stderr
    archive = tmp_path / "bundles" / "enc-host.tar.gz"
    verified = workbench_cli("verify", str(archive), home=encoder_project)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "1, seq 8" in verified.stdout and "1, seq 16" in verified.stdout, verified.stdout
    port = free_port()
    argv = [str(Path(sys.executable).parent / "workbench"), "serve", str(archive), "--engine", "tvm",
            "--port", str(port)]
    server = ServerProcess("bundle-server", argv, port, tmp_path / "serve.log",
                           env={**os.environ, "WORKBENCH_HOME": str(encoder_project)}).start()
    try:
        assert [_infer(server, seq)[0] for seq in (8, 16)] == [200, 200]
        status, answer = _infer(server, 12)
        assert status == 400 and "x [batch, 8, 16] or x [batch, 16, 16]" in answer["error"], answer
    finally:
        server.stop()
    one = workbench_cli("export", "--model", "enc", "--target", "host", "--batch-sizes", "1", "--dims", "seq=16",
                        "--out", str(tmp_path / "one"), home=encoder_project)  # a subset of the build's variants
    assert one.returncode == 0, one.stdout + one.stderr
    with open_bundle(tmp_path / "one" / "enc-host.tar.gz") as opened:
        assert set(opened.manifest["libraries"]) == {"b1-seq16"} and opened.manifest["dims"] == {"seq": [16]}
        assert opened.manifest["bundle_format"] == 3


@pytest.mark.build
def test_tune_with_dims_tunes_every_variant_and_compile_uses_the_records(encoder_project):
    tuned = workbench_cli("tune", "--model", "enc", "--target", "host", "--batch-sizes", "1", "--dims", "seq=8,16",
                          "--trials", "10", "--retime-pool", "0", "--no-reference", home=encoder_project)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    assert "batch size 1, seq 8, 16)" in tuned.stdout and "@b1-seq16" in tuned.stdout, tuned.stdout
    built = workbench_cli("compile", "--model", "enc", "--target", "host", "--batch-sizes", "1",
                          "--dims", "seq=8,16", "--no-reference", home=encoder_project)
    assert built.returncode == 0, built.stdout + built.stderr
    tuning = json.loads((encoder_project / "build" / "enc" / "host" / "manifest.json").read_text())["tuning"]
    assert tuning["tasks_tuned"] == tuning["tasks"] > 0
    assert set(tuning["kernels"]) == {"b1-seq8", "b1-seq16"}


@pytest.mark.build
def test_concurrent_requests_of_two_shapes_are_batched_apart_and_answered_right(encoder_project, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from workbench import reference

    result = workbench_cli("compile", "--model", "enc", "--target", "host", "--batch-sizes", "1,2",
                           "--dims", "seq=8,16", home=encoder_project)
    assert result.returncode == 0, result.stdout + result.stderr
    server = start_server(tmp_path, model_config("enc", engine="tvm", build_dir=str(encoder_project / "build" / "enc"
                                                                                    / "host"),
                                                 max_batch=2, max_delay_ms=50))
    try:
        seqs = [8, 16, 16, 8, 16, 8, 8, 16]
        with ThreadPoolExecutor(len(seqs)) as pool:
            # each request its own inputs (seeded by its index), so rows swapped within a batch would show
            answers = list(pool.map(lambda i: _infer(server, seqs[i], seed=i), range(len(seqs))))
        metrics = call(f"{server.url}/metrics")[2].decode()
        engine_calls = next(line for line in metrics.splitlines() if line.startswith("workbench_batch_size_count"))
        assert float(engine_calls.split()[-1]) < len(seqs), metrics  # some requests shared an engine call
    finally:
        server.stop()
    model_path = encoder_project / "models" / "enc.onnx"
    for i, (seq, (status, answer)) in enumerate(zip(seqs, answers)):
        assert status == 200, answer
        (expected,) = reference.run(model_path, {"x": _request(seq, i)})
        got = np.asarray(answer["outputs"][0]["data"], np.float32).reshape(answer["outputs"][0]["shape"])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
