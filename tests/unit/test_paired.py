"""Paired latency: engines in alternating blocks, on a fake clock each call advances."""

import pytest

from workbench.load import direct
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
