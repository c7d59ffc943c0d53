"""The report as a person sees it: rendered from a short real run, opened in headless Chromium."""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.browser import chromium, inspect
from tests.helpers import assert_one_line_error, make_project, workbench_cli
from workbench.report.page import SECTIONS

# CI sets WORKBENCH_REQUIRE_BROWSER so a missing browser fails there instead of skipping quietly.
pytestmark = [pytest.mark.build,
              pytest.mark.skipif(chromium() is None and not os.environ.get("WORKBENCH_REQUIRE_BROWSER"),
                                 reason="needs chromium (apt-get install chromium)")]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("report-home"))


@pytest.fixture(scope="module")
def run_dir(home) -> Path:
    """A small tune, then a short bench with direct, served, open-loop and SLO-search scenarios."""
    tuned = workbench_cli("tune", "--model", "mlp", "--target", "host", "--trials", "9", "--batch-sizes", "1",
                          home=home)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    bench = workbench_cli("bench", "--model", "mlp", "--engines", "tvm,onnxruntime,flask-naive,server-onnxruntime",
                          "--batch-sizes", "1,4", "--concurrency", "1,4", "--duration", "1", "--warmup", "0.2",
                          "--min-requests", "20", "--rate", "100", "--slo-p99-ms", "50", "--json", home=home)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    return Path(json.loads(bench.stdout)["run_dir"])


def test_report_opens_in_a_browser_with_every_section_and_image(run_dir, home):
    result = workbench_cli("report", home=home)  # the latest run
    assert result.returncode == 0, result.stdout + result.stderr
    page = run_dir / "index.html"
    assert str(page) in " ".join(result.stdout.split())
    seen = inspect(page)
    assert seen["errors"] == []
    assert seen["sections"] == [key for key, _ in SECTIONS]
    assert len(seen["images"]) >= 6 and all(i["complete"] and i["width"] > 0 for i in seen["images"]), seen["images"]
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html  # offline, no JavaScript
    for expected in ("deciding figure", "verdict-sentence", "server-onnxruntime", "GFLOP/s", "trials/min",
                     "SLO p99 &le; 50", "Stability verdicts", "workbench bench", "Paired (the engines",
                     "Measured in this run in alternating blocks"):
        assert expected in html, expected


def test_the_browser_check_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="data:image/png;base64,AAAA">'
                   '<script>console.error("boom")</script></body></html>')
    seen = inspect(bad)
    assert seen["errors"] and seen["images"][0]["width"] == 0


def _copy_run(run_dir: Path, into: Path) -> Path:
    copy = into / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def _edit_records(run: Path, change) -> None:
    for path in (run / "records").glob("*.json"):
        record = json.loads(path.read_text())
        change(path.name, record)
        path.write_text(json.dumps(record))


def test_a_failed_engine_is_marked_and_never_the_winner(run_dir, home, tmp_path):
    run = _copy_run(run_dir, tmp_path)

    def fail_server(name, record):
        if record["engine"] == "server-onnxruntime":
            record.update(status="failed", result=None, note="server exited with code 1 before it was ready")

    _edit_records(run, fail_server)
    result = workbench_cli("report", str(run), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    html = (run / "index.html").read_text()
    assert "Not eligible" in html and "server exited with code 1" in html
    verdict = html.split('id="verdict"')[1].split("</table>")[0]
    assert "<b>server-onnxruntime</b>" not in verdict


def test_compare_flags_a_different_machine_and_gives_intervals(run_dir, home, tmp_path):
    other = _copy_run(run_dir, tmp_path)

    def elsewhere(name, record):
        record["run_id"] += "-elsewhere"  # another run: a copy under the same id is refused as given twice
        record["provenance"]["fingerprint_id"] = "0123456789ab"
        record["provenance"]["machine"]["cpu_model"] = "Another CPU"

    _edit_records(other, elsewhere)
    result = workbench_cli("report", "--compare", str(run_dir), str(other), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    page = other / f"compare-{run_dir.name}.html"
    html = page.read_text()
    assert "different machines" in html and "Another CPU" in html and "95% interval" in html
    assert "no verdict: different machines" in html  # no change is called across machines
    assert inspect(page)["errors"] == []


@pytest.mark.parametrize("make, fragment", [
    (lambda tmp: tmp / "nowhere", "no run directory at"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "has no records"),
])
def test_missing_or_empty_runs_get_one_line(home, tmp_path, make, fragment):
    result = workbench_cli("report", str(make(tmp_path)), home=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, fragment)


def test_records_of_an_older_format_get_one_line(run_dir, home, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    _edit_records(run, lambda name, record: record.update(format=0))
    result = workbench_cli("report", str(run), home=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "format 0", "rerun `workbench bench`")


def test_no_runs_at_all_gets_one_line(tmp_path):
    (tmp_path / "targets").mkdir()
    result = workbench_cli("report", home=tmp_path)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "no bench runs under")


def test_runs_added_to_a_comparison_need_compare_and_each_run_once(run_dir, home):
    result = workbench_cli("report", "--also-a", str(run_dir), home=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "--also-a and --also-b add runs",
                          "--compare A B")
    result = workbench_cli("report", "--compare", str(run_dir), str(run_dir), home=home)
    assert_one_line_error(result.returncode, result.stdout + result.stderr, "given already as")
