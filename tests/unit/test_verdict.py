"""The verdict's rules on synthetic records: who wins, by how much, and when it is too close to call."""

import numpy as np
import pytest

from workbench import bootstrap, verdict
from workbench.errors import WorkbenchError


def _record(engine, kind, result, passed=True, **scenario):
    return {"engine": engine, "model": {"name": "m"}, "status": "ok", "scenario": {"kind": kind, **scenario},
            "correctness": {"passed": passed}, "result": result}


def _paired(engine, medians, batch=1, flag=None):
    return _record(engine, "paired", {"block_medians_ms": list(medians), "flag": flag}, batch=batch)


def _closed(engine, latencies_ms, concurrency=64):
    raw = (np.asarray(latencies_ms) * 1000).astype(int).tolist()
    return _record(engine, "closed", {"raw_latency_us": raw, "throughput_rps": concurrency / np.mean(latencies_ms)},
                   concurrency=concurrency)


def _noisy(center, n=60, spread=0.05, seed=0):
    return center * (1 + spread * np.random.default_rng(seed).standard_normal(n))


def test_a_clear_lead_is_called_with_its_interval_and_tvm_s_loss_is_said():
    records = [_paired("tvm", _noisy(2.0, seed=1)), _paired("onnxruntime", _noisy(1.0, seed=2))]
    d = verdict.decide(records)
    assert d.engine == "onnxruntime" and d.runner_up == "tvm" and not d.close
    assert d.low < d.factor < d.high < 0.6
    assert d.sentence.startswith("Deploy onnxruntime for m on this machine: 0.")
    assert "paired rounds" in d.sentence and "95% CI" in d.sentence
    assert verdict.tvm_line(d).startswith("tvm is 2.")


def test_a_lead_inside_the_noise_is_too_close_to_call():
    base = _noisy(1.0, spread=0.2, seed=3)
    records = [_paired("tvm", base * 0.99), _paired("onnxruntime", base[::-1])]
    d = verdict.decide(records)
    assert d.close and d.low <= 1 <= d.high
    assert d.sentence.startswith("Too close to call")


def test_paired_rounds_cancel_the_machine_s_drift():
    # both engines slow down together 3x halfway: the per-round ratio stays 0.8
    drift = np.r_[np.ones(30), 3 * np.ones(30)]
    records = [_paired("tvm", 0.8 * drift), _paired("onnxruntime", drift)]
    d = verdict.decide(records)
    assert d.engine == "tvm" and d.factor == pytest.approx(0.8) and d.high < 0.81


def test_a_flagged_figure_gives_no_safe_verdict():
    records = [_paired("tvm", _noisy(0.5), flag="disagrees with the direct p50s"), _paired("onnxruntime", _noisy(1))]
    d = verdict.decide(records)
    assert d.flag and d.sentence.startswith("No safe verdict") and "disagrees" in d.sentence


def test_failed_and_null_engines_never_count():
    records = [_paired("tvm", _noisy(0.1)), _paired("onnxruntime", _noisy(1.0)), _paired("null", _noisy(0.01))]
    records[0]["correctness"]["passed"] = False
    d = verdict.decide(records)
    assert d.engine == "onnxruntime" and d.runner_up is None
    assert d.sentence.startswith("Only onnxruntime")


def test_throughput_uses_the_named_concurrency_and_says_the_engines_ran_one_after_another():
    records = [_closed("server-tvm", _noisy(20, 400, seed=4)), _closed("flask-naive", _noisy(10, 400, seed=5)),
               _closed("server-onnxruntime", _noisy(5, 400, seed=6)), _closed("server-null", _noisy(1, 400))]
    d = verdict.decide(records, "throughput-c64")
    assert d.engine == "server-onnxruntime" and d.runner_up == "flask-naive" and not d.lower_is_better
    assert 1.8 < d.low < d.factor < d.high < 2.2
    assert verdict.tvm_line(d).startswith("server-tvm reaches 0.2")
    assert verdict.available(records) == ["throughput-c64"]
    with pytest.raises(WorkbenchError, match="no closed-loop figure at concurrency 4.*throughput-c64"):
        verdict.decide(records, "throughput-c4")


def test_a_served_tvm_that_completed_nothing_is_said_not_skipped():
    records = [_closed("server-onnxruntime", _noisy(5, 400)), _closed("flask-naive", _noisy(10, 400, seed=1)),
               _record("server-tvm", "closed", {"raw_latency_us": [], "errors": {"timeout": 2}}, concurrency=64)]
    d = verdict.decide(records, "throughput-c64")
    assert d.engine == "server-onnxruntime" and "server-tvm" not in d.others
    assert verdict.tvm_line(d, with_figure=False) == "server-tvm completed no request (2 timeout)."


def test_factors_below_a_tenth_keep_their_digits():
    assert verdict.times(0.0092) == "0.0092x" and verdict.times(0.14) == "0.14x" and verdict.times(7.4) == "7.40x"


def test_slo_compares_the_searched_rates_and_calls_a_small_lead_close():
    def search(engine, rate, flag=None):
        return _record(engine, "slo-search", {"max_rate_rps": rate, "flag": flag}, slo_p99_ms=20.0)

    d = verdict.decide([search("server-tvm", 1000), search("server-onnxruntime", 950)], "slo")
    assert d.engine == "server-tvm" and d.close and "no interval" in d.figure
    d = verdict.decide([search("server-tvm", 1000), search("server-onnxruntime", 500),
                        search("server-null", 400, flag="below server-tvm")], "slo")
    assert d.flag and "below server-tvm" in d.sentence


def test_the_slo_decision_of_a_dims_run_names_the_combination_it_compared():
    def search(engine, rate, seq):
        return _record(engine, "slo-search", {"max_rate_rps": rate}, slo_p99_ms=20.0, dims={"seq": seq})

    d = verdict.decide([search("server-tvm", 1000, 8), search("server-onnxruntime", 500, 8),
                        search("server-tvm", 100, 16), search("server-onnxruntime", 900, 16)], "slo")
    assert d.engine == "server-tvm" and d.figure.endswith(", seq 8")


@pytest.mark.parametrize("bad", ["fastest", "throughput-c0", "throughput-cX", "throughput"])
def test_a_bad_decide_by_is_refused_in_one_line(bad):
    with pytest.raises(WorkbenchError, match="--decide-by must be latency, throughput-c<concurrency>"):
        verdict.parse(bad)


def test_older_paired_records_are_read_from_their_raw_blocks():
    raw = [1000, 1100, 900, 2000, 2100, 1900]  # two rounds of three
    record = _record("tvm", "paired", {"raw_latency_us": raw, "block": 3}, batch=1)
    assert verdict._block_medians(record).tolist() == [1.0, 2.0]


def test_the_block_bootstrap_widens_the_interval_of_correlated_values():
    rng = np.random.default_rng(0)
    slow_spells = np.repeat(rng.lognormal(0, 0.3, 20), 25)  # 20 spells of 25 correlated calls
    naive = np.percentile([np.median(rng.choice(slow_spells, len(slow_spells))) for _ in range(500)], [2.5, 97.5])
    _, low, high = bootstrap.interval(np.median, slow_spells)
    assert high - low > 1.5 * (naive[1] - naive[0])
