"""Paired latency: engines in alternating blocks, on a fake clock each call advances."""

import pytest

from workbench.load import direct, pairguard
from workbench.load.direct import DirectSpec


class FakeClock:
    def __init__(self):
        self.now, self.calls = 0.0, []

    def perf_counter(self) -> float:
        return self.now

    def engine(self, name: str, seconds):
        """A call that takes `seconds` (a number, or a function of how often it has run)."""
        count = [0]

        def call(_inputs):
            self.calls.append(name)
            self.now += seconds(count[0]) if callable(seconds) else seconds
            count[0] += 1

        return call


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(direct.time, "perf_counter", fake.perf_counter)
    return fake


def test_blocks_alternate_with_an_untimed_call_first(clock):
    spec = DirectSpec(min_runs=4, paired_s=0.0, paired_block=2, paired_rounds=1)
    direct.paired({"tvm": clock.engine("tvm", 0.002), "onnxruntime": clock.engine("ort", 0.001)}, None, spec)
    warmup = ["tvm"] * direct.WARMUP_CALLS + ["ort"] * direct.WARMUP_CALLS
    assert clock.calls == warmup + ["tvm"] * 3 + ["ort"] * 3 + ["tvm"] * 3 + ["ort"] * 3


def test_ratio_is_to_the_last_engine_and_survives_a_slow_spell(clock):
    spec = DirectSpec(min_runs=40, paired_s=0.0, paired_block=4, paired_rounds=1)
    # Both engines run three times slower from their 30th call on: a slow spell of the machine.
    slow = lambda base: (lambda n: base * (3 if n >= 30 else 1))  # noqa: E731
    out = direct.paired({"tvm": clock.engine("tvm", slow(0.002)), "onnxruntime": clock.engine("ort", slow(0.004))},
                        None, spec)
    assert out["tvm"]["reference"] == "onnxruntime" and out["onnxruntime"]["ratio_p50"] == 1.0
    assert out["tvm"]["ratio_p50"] == pytest.approx(0.5) and out["tvm"]["ratio_p90"] == pytest.approx(0.5)
    assert out["tvm"]["runs"] == out["tvm"]["rounds"] * 4 == len(out["tvm"]["raw_latency_us"]) >= 40
    # The spell shows in each engine's own figures (19 of the 40 timed calls at 6 ms), not in the ratio.
    assert out["tvm"]["latency_ms"]["mean_ms"] == pytest.approx((21 * 2 + 19 * 6) / 40)


def test_a_slow_engine_stops_at_the_time_cap(clock):
    spec = DirectSpec(min_runs=1000, paired_s=0.0, max_time_s=1.0, paired_block=5)
    out = direct.paired({"a": clock.engine("a", 0.1), "b": clock.engine("b", 0.1)}, None, spec)
    assert out["a"]["rounds"] == 1 and clock.now >= 1.0


def test_slow_calls_still_get_enough_rounds_for_the_ratio_percentiles(clock):
    # 0.3 s calls: min_runs and paired_s are met after 6 rounds, which would leave the 10th-90th
    # percentile of the ratio resting on one round at each end.
    spec = DirectSpec(min_runs=30, paired_s=6.0, max_time_s=600.0, paired_block=5, paired_rounds=20)
    out = direct.paired({"a": clock.engine("a", 0.3), "b": clock.engine("b", 0.3)}, None, spec)
    assert out["a"]["rounds"] == 20


def test_block_medians_are_kept_per_round_aligned_across_engines(clock):
    spec = DirectSpec(min_runs=4, paired_s=0.0, paired_block=2, paired_rounds=3)
    out = direct.paired({"tvm": clock.engine("tvm", 0.002), "onnxruntime": clock.engine("ort", 0.004)}, None, spec)
    assert out["tvm"]["block_medians_ms"] == pytest.approx([2.0] * out["tvm"]["rounds"])
    assert len(out["onnxruntime"]["block_medians_ms"]) == out["tvm"]["rounds"] >= 3
    assert out["onnxruntime"]["block_medians_ms"] == pytest.approx([4.0] * out["tvm"]["rounds"])


# ---- the guard: the paired ratio against the same run's direct p50s (load/pairguard.py) ----------

def test_agreement_is_within_a_quarter_of_the_direct_ratio():
    assert pairguard.agrees(1.25, 1.0) and pairguard.agrees(0.75, 1.0) and pairguard.agrees(2.4, 2.0)
    assert not pairguard.agrees(1.26, 1.0) and not pairguard.agrees(0.74, 1.0)
    # The case: 528.52x paired against TVM and ONNX Runtime's direct p50s (0.027 / 0.0118 ms).
    assert not pairguard.agrees(528.52, 0.027 / 0.0118)
    assert pairguard.agrees(99.0, None)  # nothing to check against: not a disagreement


def _latency_record(engine, batch, p50, status="ok", kind="latency"):
    return {"engine": engine, "scenario": {"kind": kind, "batch": batch}, "status": status,
            "result": {"latency_ms": {"p50_ms": p50}} if status == "ok" else None}


def test_direct_ratios_come_from_the_latency_records_at_that_batch():
    records = [_latency_record("tvm", 1, 0.02), _latency_record("tvm", 8, 0.03),
               _latency_record("onnxruntime", 8, 0.01),
               _latency_record("onnxruntime", 8, 9.0, kind="offline"), _latency_record("openvino", 8, 0, "failed")]
    p50s = pairguard.direct_p50s(records, 8)
    assert p50s == {"tvm": 0.03, "onnxruntime": 0.01}
    ratios = pairguard.direct_ratios(p50s, ["tvm", "openvino", "onnxruntime"], "onnxruntime")
    assert ratios == {"tvm": pytest.approx(3.0), "openvino": None, "onnxruntime": 1.0}


def _paired_result(ratio, p50):
    return {"ratio_p50": ratio, "latency_ms": {"p50_ms": p50}, "reference": "onnxruntime"}


def test_a_disagreement_is_flagged_in_one_line_and_an_agreement_is_not():
    results = {"tvm": _paired_result(528.52, 6.26), "openvino": _paired_result(1.1, 0.013),
               "onnxruntime": _paired_result(1.0, 0.0118)}
    p50s = {"tvm": 0.027, "openvino": 0.012, "onnxruntime": 0.0118}
    ratios = pairguard.direct_ratios(p50s, list(results), "onnxruntime")
    assert pairguard.disagreeing(results, ratios) == ["tvm"]
    out = pairguard.annotate(results, ratios, p50s, repeats=1)
    assert out["openvino"]["flag"] is None and out["onnxruntime"]["flag"] is None
    assert out["tvm"]["repeats"] == out["onnxruntime"]["repeats"] == 1
    assert out["tvm"]["direct_ratio"] == pytest.approx(0.027 / 0.0118) and out["onnxruntime"]["direct_ratio"] == 1.0
    flag = out["tvm"]["flag"]
    assert "\n" not in flag and "528.52x" in flag and "2.29x" in flag and "after a repeat" in flag
    # which engine moved: tvm's paired p50 against its direct one, and the reference's
    assert "tvm 6.26 ms against 0.027 ms" in flag and "onnxruntime 0.0118 ms against 0.0118 ms" in flag
    assert out["tvm"]["ratio_p50"] == 528.52  # the figures are kept; the flag says not to trust them


def test_without_direct_figures_nothing_is_flagged():
    results = {"tvm": _paired_result(50.0, 1.0), "onnxruntime": _paired_result(1.0, 0.02)}
    out = pairguard.annotate(results, {"tvm": None, "onnxruntime": None}, {}, repeats=0)
    assert out["tvm"]["flag"] is None and out["tvm"]["direct_ratio"] is None and out["tvm"]["repeats"] == 0


def _paired_on(clock, spec, tvm_seconds):
    return lambda: direct.paired({"tvm": clock.engine("tvm", tvm_seconds), "onnxruntime": clock.engine("ort", 0.001)},
                                 None, spec)


def test_a_disturbed_paired_run_is_measured_again_and_the_repeat_kept(clock):
    # Direct p50s say tvm takes 2 ms to ONNX Runtime's 1 ms. The first paired run is disturbed
    # (tvm at 50 ms, as when the other engine's threads spun on into its blocks); the repeat is not.
    spec = DirectSpec(min_runs=4, paired_s=0.0, paired_block=2, paired_rounds=3)
    runs = iter([_paired_on(clock, spec, 0.05), _paired_on(clock, spec, 0.002)])
    pauses = []
    p50s = {"tvm": 2.0, "onnxruntime": 1.0}
    ratios = pairguard.direct_ratios(p50s, ["tvm", "onnxruntime"], "onnxruntime")
    out = pairguard.guarded(lambda: next(runs)(), ratios, p50s, lambda: pauses.append(clock.now))
    assert len(pauses) == 1 and out["tvm"]["repeats"] == 1
    assert out["tvm"]["ratio_p50"] == pytest.approx(2.0) and out["tvm"]["flag"] is None


def test_a_disagreement_that_survives_the_repeat_is_flagged(clock):
    spec = DirectSpec(min_runs=4, paired_s=0.0, paired_block=2, paired_rounds=3)
    p50s = {"tvm": 2.0, "onnxruntime": 1.0}
    ratios = pairguard.direct_ratios(p50s, ["tvm", "onnxruntime"], "onnxruntime")
    calls = []
    out = pairguard.guarded(lambda: calls.append(1) or _paired_on(clock, spec, 0.05)(), ratios, p50s)
    assert len(calls) == 2 and out["tvm"]["repeats"] == out["onnxruntime"]["repeats"] == 1
    assert out["tvm"]["ratio_p50"] == pytest.approx(50.0) and "50.00x" in out["tvm"]["flag"]
    assert out["onnxruntime"]["flag"] is None


def test_an_agreeing_paired_run_is_measured_once(clock):
    spec = DirectSpec(min_runs=4, paired_s=0.0, paired_block=2, paired_rounds=3)
    p50s = {"tvm": 2.2, "onnxruntime": 1.0}  # 2.2x direct against 2.0x paired: within 25%
    ratios = pairguard.direct_ratios(p50s, ["tvm", "onnxruntime"], "onnxruntime")
    calls = []
    out = pairguard.guarded(lambda: calls.append(1) or _paired_on(clock, spec, 0.002)(), ratios, p50s)
    assert len(calls) == 1 and out["tvm"]["repeats"] == 0 and out["tvm"]["flag"] is None
    assert out["tvm"]["direct_ratio"] == pytest.approx(2.2)


def test_tvm_is_also_compared_with_the_fastest_other_runtime():
    from workbench.bench.direct import best_others

    results = {"tvm": {"block_medians_ms": [2.0, 4.0, 2.2]}, "openvino": {"block_medians_ms": [1.0, 2.0, 1.0]},
               "onnxruntime": {"block_medians_ms": [4.0, 8.0, 4.4]}}
    assert best_others(results) == {"tvm": {"engine": "openvino", "ratio_p50": 2.0}}
    assert best_others({"onnxruntime": {"block_medians_ms": [1.0]}}) == {}
