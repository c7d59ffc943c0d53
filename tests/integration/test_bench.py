"""A short real bench on mlp with every engine: the records hold what the issue asks, no timing thresholds."""

import os
import subprocess
import sys

import pytest

from tests.helpers import assert_one_line_error, invoke, short_served_bench
from workbench.bench import BenchConfig, run_bench
from workbench.benchview import BenchDisplay
from workbench.engines.registry import NAMES as ENGINES
from workbench.fingerprint import physical_cores
from workbench.load.direct import DirectSpec
from workbench.records import CSV_COLUMNS, read_csv, read_records

pytestmark = pytest.mark.build  # builds or tunes with TVM

QUICK = dict(duration_s=1.0, warmup_s=0.2, min_requests=5, concurrency=(1, 4),
             direct_spec=DirectSpec(min_runs=5, min_time_s=0.1, offline_s=0.5, paired_s=0.1))


@pytest.mark.slow
def test_bench_all_engines_writes_records_and_csv(project):
    run_dir, records = run_bench(BenchConfig("mlp", "host", rate=100.0, **QUICK), BenchDisplay(enabled=False))
    on_disk = read_records(run_dir)
    assert len(on_disk) == len(records)
    kinds = {(r["engine"], r["scenario"]["kind"], r["scenario"].get("batch") or r["scenario"].get("concurrency"))
             for r in on_disk}
    for engine in ("tvm", "onnxruntime", "openvino", "null"):
        assert {(engine, "latency", 1), (engine, "latency", 8), (engine, "offline", 8)} <= kinds
    for engine in ("tvm", "onnxruntime", "openvino"):  # null measures the harness: it is not paired
        assert {(engine, "paired", 1), (engine, "paired", 8)} <= kinds
    paired = [r for r in on_disk if r["scenario"]["kind"] == "paired"]
    assert len(paired) == 6 and all(r["result"]["reference"] == "onnxruntime" for r in paired)
    assert all(r["result"]["ratio_p50"] == 1.0 for r in paired if r["engine"] == "onnxruntime")
    best = [r["result"]["ratio_to_best_other"]["engine"] for r in paired if r["engine"] == "tvm"]
    assert len(best) == 2 and set(best) <= {"onnxruntime", "openvino"}
    from workbench.report.page import render
    from workbench.report.run import load_run

    assert "the fastest other runtime" in render(load_run(run_dir))
    for engine in ("flask-naive", "server-tvm", "server-onnxruntime", "server-openvino", "server-null"):
        assert {(engine, "closed", 1), (engine, "closed", 4), (engine, "open", None)} <= kinds
    assert {r["engine"] for r in on_disk} == set(ENGINES)
    for record in on_disk:
        assert record["status"] == "ok", record.get("note")
        assert record["provenance"]["machine"]["cpu_model"] and record["model"]["sha256"]
        result = record["result"]
        assert result["latency_ms"]["count"] > 0 and result["latency_ms"]["p50_ms"] > 0
        if "raw_latency_us" in result:  # nothing is sent before it is due: no latency at or below zero
            assert min(result["raw_latency_us"]) > 0
        if record["engine"] not in ("null", "server-null"):
            assert record["correctness"]["passed"] is True
        if record["scenario"]["kind"] in ("closed", "open"):
            assert result["good"] > 0 and result["throughput_rps"] > 0 and len(result["windows"]) >= 3
            assert isinstance(result["stability"]["stable"], bool) and result["stability"]["reason"]
            assert len(result["raw_latency_us"]) == result["good"] and 0 < result["generator_cpu"] < 1.5
            assert record["settings"]["wire"] == "json"
        if record["scenario"]["kind"] == "open":
            assert result["service_time_ms"]["count"] == result["good"]
            assert result["requests"] == result["scheduled_requests"]  # every request due was sent and counted
    server_tvm = next(r for r in on_disk if r["engine"] == "server-tvm")
    assert server_tvm["settings"]["batching"]["batch_sizes"] == [1, 8]
    onnxruntime = next(r for r in on_disk if r["engine"] == "onnxruntime")
    assert onnxruntime["settings"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    tvm = next(r for r in on_disk if r["engine"] == "tvm")  # both engines get every physical core
    assert tvm["settings"]["threads"] == onnxruntime["settings"]["intra_op_num_threads"] == physical_cores()
    table = read_csv(run_dir)
    assert set(table.engine) == set(ENGINES)
    assert list(table.columns) == list(CSV_COLUMNS) and len(table) == len(records)


@pytest.mark.slow
def test_slo_search_finds_a_rate_under_the_bound(project):
    config = BenchConfig("mlp", "host", engines=("server-null",), slo_p99_ms=50.0,
                         **{**QUICK, "concurrency": (4,)})
    run_dir, records = run_bench(config, BenchDisplay(enabled=False))
    search = next(r for r in records if r["scenario"]["kind"] == "slo-search")
    trials = search["result"]["trials"]
    assert len(trials) >= 6 and search["result"]["max_rate_rps"] is not None  # 6 steps, and any repeats
    assert all(t["p99_ms"] <= 50.0 for t in trials if t["passed"])
    assert search["result"]["max_rate_rps"] == max(t["rate"] for t in trials if t["passed"])


@pytest.mark.parametrize("args, fragment", [
    (("--concurrency", "0"), "--concurrency takes comma-separated positive integers"),
    (("--concurrency", "four"), "--concurrency takes comma-separated positive integers"),
    (("--rate", "-5"), "--rate must be a positive number"),
    (("--rate", "inf"), "--rate must be a positive number"),
    (("--seed", "-1"), "--seed and --min-requests must be non-negative"),
    (("--engines", ","), "--engines names no engine"),
    (("--slo-p99-ms", "0"), "--slo-p99-ms must be a positive number"),
    (("--engines", "tensorrt"), "unknown engine 'tensorrt'"),
    (("--duration", "0"), "--duration must be positive"),
    (("--target", "nowhere"), "unknown target 'nowhere'"),
    (("--model", "missing.onnx"), "model 'missing.onnx' not found"),
    (("--wire", "xml"), "--wire must be json or binary"),
    (("--engine-threads", "-1"), "--engine-threads must be 0 (one per physical core) or a thread count"),
    (("--wire", "binary"), "flask-naive speaks JSON only"),
])
def test_bench_bad_options_get_one_line(project, args, fragment):
    assert_one_line_error(*invoke("bench", "--model", "mlp", *args), fragment)


def test_bench_refuses_a_target_this_machine_cannot_run(project):
    from workbench.fingerprint import gpus

    if gpus():
        pytest.skip("this machine has a GPU")
    assert_one_line_error(*invoke("bench", "--model", "mlp", "--target", "cuda", "--engines", "tvm"),
                          "target 'cuda' cannot run on this machine")


def test_bench_url_with_no_server_is_a_clear_error(project):
    from workbench.serving.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert_one_line_error(*invoke("bench", "--model", "mlp", "--url", url, "--duration", "0.5"),
                          f"the check request to {url} failed", "is a server for 'mlp' running there?")


def test_bench_binary_wire_serves_and_records_it(project):
    assert short_served_bench(project, "--wire", "binary")["settings"]["wire"] == "binary"


def test_tvm_gets_one_thread_per_physical_core_unless_the_user_sets_tvm_num_threads():
    """TVM alone would take half the hardware threads: one core of two on a machine without SMT."""
    env = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    code = "import workbench, tvm; print(tvm.get_global_func('runtime.NumThreads')())"

    def threads(extra: dict) -> int:
        return int(subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True,
                                  text=True, check=True).stdout)

    assert threads({}) == physical_cores()
    assert threads({"TVM_NUM_THREADS": "1"}) == 1
