"""The SLO search in a real bench (#29 item 3): server-null, the harness's own ceiling, searched at or
above every other served engine, or every SLO record of the run flagged as not comparable; the
boundary re-measured and marked; the figure always a rate measured to pass (never clamped)."""

import json
from pathlib import Path

from tests.helpers import workbench_cli
from workbench.records import read_records


def test_the_null_servers_search_bounds_the_others_or_the_run_is_flagged(project):
    result = workbench_cli("bench", "--model", "mlp", "--engines", "server-onnxruntime,server-null",
                           "--concurrency", "1,8", "--duration", "0.6", "--warmup", "0.1", "--min-requests", "10",
                           "--slo-p99-ms", "20", "--json", home=project)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    searches = {r["engine"]: r for r in read_records(run_dir) if r["scenario"]["kind"] == "slo-search"}
    assert set(searches) == {"server-onnxruntime", "server-null"}
    for record in searches.values():
        found = record["result"]
        passed = {t["rate"] for t in found["trials"] if t["passed"] and not t.get("superseded")}
        assert found["max_rate_rps"] is None or found["max_rate_rps"] in passed  # measured, not clamped
        if any(not t["passed"] for t in found["trials"]):  # a boundary to confirm
            assert any(t.get("remeasured") for t in found["trials"]), found["trials"]
    null, other = (searches[e]["result"]["max_rate_rps"] or 0 for e in ("server-null", "server-onnxruntime"))
    if null < other:  # a loaded machine spoiled the null server's search: every SLO figure is flagged
        assert all("harness ceiling" in (r["result"]["flag"] or "") for r in searches.values())
        assert "harness ceiling" in result.stderr  # and the terminal says so
    else:
        assert all("harness ceiling" not in (r["result"]["flag"] or "") for r in searches.values())
