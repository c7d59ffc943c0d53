import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.records import (
    CSV_COLUMNS,
    RECORD_FORMAT,
    read_records,
    record_name,
    row,
    upgrade,
    write_csv,
    write_record,
)


def record(kind, **scenario):
    return {"engine": "tvm", "scenario": {"kind": kind, **scenario}}


@pytest.mark.parametrize("rec, name", [
    (record("latency", batch=1), "tvm__latency-b1.json"),
    (record("offline", batch=32), "tvm__offline-b32.json"),
    (record("closed", concurrency=64), "tvm__closed-c64.json"),
    (record("open", rate=2000.0), "tvm__open-r2000.json"),
    (record("open", rate=12.5), "tvm__open-r12.5.json"),
    (record("slo-search", slo_p99_ms=50), "tvm__slo-search-p99-50.json"),
    (record("closed"), "tvm__closed.json"),
    (record("closed", concurrency=None), "tvm__closed.json"),
])
def test_record_name(rec, name):
    assert record_name(rec) == name


def test_row_of_an_open_run():
    rec = {**record("open", rate=2000), "status": "ok", "correctness": {"passed": True},
           "result": {"throughput_rps": 1990.5, "errors": {"503": 2, "timeout": 1},
                      "latency_ms": {"p50_ms": 1.0, "p99_ms": 4.0, "p99_9_ms": 9.0, "mean_ms": 2.0},
                      "stability": {"stable": True}, "generator_cpu": 0.4, "missed_slots": 0}}
    r = row(rec)
    assert set(r) == set(CSV_COLUMNS)
    assert (r["engine"], r["scenario"], r["rate"], r["concurrency"], r["batch"]) == ("tvm", "open", 2000, None, None)
    assert (r["throughput"], r["throughput_unit"]) == (1990.5, "requests/s")
    assert (r["p50_ms"], r["p99_ms"], r["p99_9_ms"], r["p90_ms"]) == (1.0, 4.0, 9.0, None)
    assert (r["errors"], r["stable"], r["correct"], r["generator_cpu"], r["missed_slots"]) == (3, True, True, 0.4, 0)


def test_row_of_an_offline_run_counts_samples():
    r = row({**record("offline", batch=8), "result": {"throughput_sps": 800.0, "stability": {"stable": False}},
             "correctness": {"passed": False}})
    assert (r["throughput"], r["throughput_unit"], r["batch"]) == (800.0, "samples/s", 8)
    assert (r["stable"], r["correct"], r["errors"], r["status"]) == (False, False, 0, "ok")


def test_row_of_a_failed_run():
    r = row({**record("closed", concurrency=4), "status": "failed", "result": None})
    assert (r["throughput"], r["throughput_unit"], r["errors"], r["status"]) == (None, None, 0, "failed")
    assert r["stable"] is None and r["correct"] is None and r["p99_ms"] is None


def test_write_and_read_records(tmp_path):
    first = {**record("open", rate=100), "result": {"throughput_rps": 99.0}}
    second = {**record("closed", concurrency=8), "result": {"throughput_rps": 50.0}}
    paths = [write_record(tmp_path, first), write_record(tmp_path, second)]
    assert [p.name for p in paths] == ["tvm__open-r100.json", "tvm__closed-c8.json"]
    assert read_records(tmp_path) == [{"format": RECORD_FORMAT, **second}, {"format": RECORD_FORMAT, **first}]


def test_read_records_of_an_empty_run(tmp_path):
    assert read_records(tmp_path) == []


def test_write_csv_columns(tmp_path):
    records = [{**record("open", rate=100), "result": {"throughput_rps": 99.0}},
               {**record("offline", batch=4), "result": {"throughput_sps": 400.0}}]
    path = write_csv(tmp_path, records)
    table = pd.read_csv(path)
    assert tuple(table.columns) == CSV_COLUMNS
    assert table["throughput_unit"].tolist() == ["requests/s", "samples/s"]
    assert table["throughput"].tolist() == [99.0, 400.0]


def test_the_previous_format_is_upgraded_in_one_place():
    old = {"format": RECORD_FORMAT - 1, "engine": "tvm", "provenance": {"fingerprint_id": "feaad033cc24"}}
    new = upgrade(old, "r.json")
    assert new["format"] == RECORD_FORMAT and new["provenance"] == {"fingerprint_id": "feaad033cc24",
                                                                     "fingerprint_kind": 1}
    assert upgrade(new, "r.json") is new


@pytest.mark.parametrize("found", [0, RECORD_FORMAT + 1, None, "2", True])
def test_other_formats_are_refused_in_one_line(found):
    with pytest.raises(WorkbenchError) as refused:
        upgrade({"format": found}, "r.json")
    assert "r.json is a record of format" in str(refused.value) and "\n" not in str(refused.value)


def test_a_record_of_an_unknown_scenario_kind_still_makes_a_row():
    r = row({"engine": "x", "scenario": {"kind": "other"}, "result": {"throughput_rps": 1.0}})
    assert r["scenario"] == "other" and r["throughput"] == 1.0 and r["throughput_unit"] is None


def test_rows_of_two_dims_combinations_differ_in_their_dims_column(tmp_path):
    records = [{**record("latency", batch=1, dims={"seq": seq}), "result": {"latency_ms": {"p50_ms": seq / 8}}}
               for seq in (8, 16)]
    assert [row(r)["dims"] for r in records] == ["seq=8", "seq=16"]
    assert row(record("latency", batch=1))["dims"] is None
    table = pd.read_csv(write_csv(tmp_path, records))
    assert table["dims"].tolist() == ["seq=8", "seq=16"]


def test_a_bundle_of_some_dims_shows_only_their_timed_records(tmp_path):
    from workbench.bundle.export import exported_only, perf_card
    from workbench.dims import Variant

    run = [{**record("latency", batch=1, dims={"seq": seq}), "run_id": "run-1", "command": "workbench bench",
            "provenance": {"fingerprint_id": "f", "machine": {"cpu_model": "c"}}, "status": "ok"} for seq in (8, 16)]
    kept = exported_only((tmp_path, run), [Variant(1, (("seq", 16),))])
    assert [r["dims"] for r in perf_card(kept)["rows"]] == ["seq=16"]
    assert exported_only((tmp_path, run), [Variant(1, (("seq", 32),))]) is None  # no row for a shape not timed
    assert exported_only((tmp_path, [record("latency", batch=1)]), [Variant(1)])[1] == [record("latency", batch=1)]
