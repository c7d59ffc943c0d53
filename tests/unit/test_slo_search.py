"""The SLO search's rules (#29 item 3) with a scripted load: a server whose p99 is low below its
capacity and high above it, and a shared machine that spoils chosen measurements. The search must
measure a spoiled step again instead of trusting it, flag what it cannot resolve, never clamp,
and a run whose server-null searched below another engine is flagged as a whole."""

import json
from types import SimpleNamespace

import pytest

from workbench.bench import slo
from workbench.bench.run import _check_slo_ceiling

BOUND = 20.0


class ScriptedServer:
    """p99 2 ms up to `capacity` requests/s, 200 ms above; measurement i (0-based) in `spoiled`
    gets p99 `spoiled[i]` instead, as a slow spell of the machine would give it."""

    def __init__(self, capacity: float, spoiled: dict[int, float] | None = None, always_spoiled=()):
        self.capacity, self.spoiled, self.always_spoiled = capacity, spoiled or {}, always_spoiled
        self.calls: list[tuple[float, str | None]] = []

    def __call__(self, rate: float, why: str | None) -> dict:
        index = len(self.calls)
        self.calls.append((rate, why))
        p99 = 2.0 if rate <= self.capacity else 200.0
        if index in self.spoiled:
            p99 = self.spoiled[index]
        if any(abs(rate - r) < 1e-6 for r in self.always_spoiled):
            p99 = 900.0
        return {"latency_ms": {"p99_ms": p99}, "errors": {}, "throughput_rps": rate, "raw_latency_us": [index]}


def passed_rates(found: dict) -> set[float]:
    return {t["rate"] for t in found["trials"] if t["passed"]}


def test_a_quiet_machine_bisects_and_confirms_the_boundary_without_a_flag():
    server = ScriptedServer(capacity=2600)
    found = slo.search(server, BOUND, start=4000)
    assert found["flag"] is None
    assert 2600 * 0.95 < found["max_rate_rps"] <= 2600
    assert found["max_rate_rps"] in passed_rates(found)  # a rate measured to pass, never a clamp
    repeats = [t for t in found["trials"] if t.get("remeasured")]
    assert len(repeats) == 1 and repeats[0]["why"] == "confirming the boundary" and not repeats[0]["passed"]
    assert found["at_max_rate"]["raw_latency_us"] == found["raw_latency_us"]  # the summary at the figure


def test_one_spoiled_step_is_measured_again_and_the_search_goes_on_above_it():
    # the case: the second step (2,000/s, well under capacity) caught a slow spell. A plain
    # bisection never measures above it again and reports under 2,000/s.
    server = ScriptedServer(capacity=3400, spoiled={1: 45.0})
    found = slo.search(server, BOUND, start=4000)
    assert found["flag"] is None
    assert found["max_rate_rps"] >= 3000  # above the spoiled step: the repeat passed, the search went on
    spoiled = [t for t in found["trials"] if t["rate"] == 2000]
    assert [t.get("superseded", False) for t in spoiled] == [True, False]
    assert spoiled[1]["remeasured"] and spoiled[1]["passed"]


def test_a_failure_worse_than_a_faster_steps_breaks_monotonicity_and_is_repeated_at_once():
    server = ScriptedServer(capacity=1500, spoiled={1: 900.0})  # 2,000/s: 900 ms, where 4,000/s gave 200 ms
    found = slo.search(server, BOUND, start=4000)
    assert server.calls[2][0] == 2000 and "did better" in server.calls[2][1]  # the very next measurement
    assert found["flag"] is None and 1500 * 0.9 < found["max_rate_rps"] <= 1500


def test_a_failure_that_repeats_is_the_servers_and_is_not_flagged():
    server = ScriptedServer(capacity=3400, always_spoiled=(2000.0,))  # every measurement at 2,000/s fails
    found = slo.search(server, BOUND, start=4000)
    assert [t.get("remeasured", False) for t in found["trials"] if t["rate"] == 2000] == [False, True]
    assert found["flag"] is None
    assert found["max_rate_rps"] < 2000 and found["max_rate_rps"] in passed_rates(found)  # not clamped up


def test_a_search_left_non_monotonic_when_the_repeats_run_out_is_flagged_not_clamped():
    # every first measurement under capacity is spoiled far above the overloaded first step's p99
    server = ScriptedServer(capacity=3400, spoiled={i: 900.0 for i in range(1, 20)})
    found = slo.search(server, BOUND, start=8000, remeasures=2)
    assert found["flag"] and "not monotonic in the rate and the repeats ran out" in found["flag"]
    assert found["max_rate_rps"] is None or found["max_rate_rps"] in passed_rates(found)


def test_failures_that_keep_not_repeating_until_the_repeats_run_out_are_flagged():
    # every first measurement of a rate fails and every repeat passes: a machine too noisy to search
    server = ScriptedServer(capacity=10_000)
    first = {}
    original = server.__call__

    def flaky(rate, why):
        result = original(rate, why)
        if why is None and rate not in first:
            first[rate] = True
            result["latency_ms"]["p99_ms"] = 50.0
        return result

    found = slo.search(flaky, BOUND, start=4000)
    assert found["flag"] and "did not repeat" in found["flag"]
    assert sum(1 for t in found["trials"] if t.get("remeasured")) == slo.REMEASURES


def test_a_first_step_that_passes_doubles_instead_of_measuring_it_again():
    server = ScriptedServer(capacity=9000)
    found = slo.search(server, BOUND, start=1000)
    assert [rate for rate, _ in server.calls[:4]] == [1000, 2000, 4000, 8000]
    assert found["max_rate_rps"] >= 8000 and found["flag"] is None


def _search_record(engine: str, rate: float | None, flag: str | None = None) -> dict:
    return {"run_id": "run-x", "engine": engine, "status": "ok", "note": None,
            "scenario": {"kind": "slo-search", "slo_p99_ms": BOUND},
            "result": {"max_rate_rps": rate, "trials": [], "flag": flag}}


def test_the_null_servers_ceiling_below_another_engine_flags_every_slo_record(tmp_path):
    records = [_search_record("server-tvm", 3317.0), _search_record("server-onnxruntime", 2000.0, "noisy"),
               _search_record("server-null", 677.0)]
    why = slo.ceiling_flag(records)
    assert why == ("the harness ceiling (server-null's SLO search, 677 requests/s) was measured below server-tvm "
                   "(3,317 requests/s); the SLO figures of this run are not comparable")
    run = SimpleNamespace(records=records, run_dir=tmp_path)
    _check_slo_ceiling(run)
    assert [r["result"]["flag"] for r in records] == [why, f"noisy; {why}", why]
    on_disk = json.loads((tmp_path / "records" / "server-tvm__slo-search-p99-20.json").read_text())
    assert on_disk["result"]["flag"] == why


@pytest.mark.parametrize("null_rate, others", [
    (5000.0, [("server-tvm", 3317.0), ("server-onnxruntime", 5000.0)]),  # at or above every engine
    (None, []),  # only the null server searched
])
def test_a_null_ceiling_at_or_above_the_others_flags_nothing(null_rate, others):
    records = [_search_record(e, r) for e, r in others] + [_search_record("server-null", null_rate)]
    assert slo.ceiling_flag(records) is None
    assert slo.ceiling_flag([_search_record("server-tvm", 10.0)]) is None  # no null search in the run
