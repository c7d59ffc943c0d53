"""The report's verdict on committed runs (tests/fixtures/runs, made by scripts/verdict_fixtures.py
on a 2-core AMD EPYC Zen 5 with untuned TVM builds): the sentence a person reads first, opened in
a real browser. The report reads records only, so these pages are the same on every machine."""

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.browser import chromium, inspect
from tests.helpers import workbench_cli
from workbench.report.page import SECTIONS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runs"
needs_browser = pytest.mark.skipif(chromium() is None and not os.environ.get("WORKBENCH_REQUIRE_BROWSER"),
                                   reason="needs chromium (apt-get install chromium)")


def _report(tmp_path: Path, name: str, *args: str, keep=lambda path: True) -> str:
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run, ignore=lambda d, files: [f for f in files if not keep(Path(d) / f)])
    result = workbench_cli("report", str(run), *args, home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return (run / "index.html").read_text()


def _sentence(html: str) -> str:
    return html.split('id="verdict-sentence"><b>')[1].split("</b>")[0]


@needs_browser
@pytest.mark.parametrize("name, sentence, tvm", [
    ("mlp", "Deploy onnxruntime for mlp on this machine: 0.11x the latency of tvm (95% CI 0.11-0.12), 0.24x the "
            "latency of openvino; decided by direct p50 latency at batch 1, paired rounds.",
     "tvm is 9.00x the latency of onnxruntime"),
    ("resnet18", "Deploy openvino for resnet18 on this machine: 0.81x the latency of onnxruntime",
     "tvm is 71.85x the latency of openvino"),
    ("smallcnn", "Deploy onnxruntime for smallcnn on this machine: 0.37x the latency of openvino (95% CI 0.37-0.38), "
                 "0.028x the latency of tvm; decided by direct p50 latency at batch 1, paired rounds.",
     "tvm is 35.97x the latency of onnxruntime"),
])
def test_the_verdict_leads_the_report_and_says_where_tvm_loses(tmp_path, name, sentence, tvm):
    html = _report(tmp_path, name)
    assert _sentence(html).startswith(sentence)
    verdict = html.split('<section id="verdict">')[1].split("</section>")[0]
    assert tvm in verdict
    seen = inspect(tmp_path / name / "index.html")
    assert seen["errors"] == [] and seen["sections"] == [key for key, _ in SECTIONS]


def test_served_figures_decide_when_asked_and_a_tvm_server_that_answered_nothing_is_named(tmp_path):
    html = _report(tmp_path, "resnet18", "--decide-by", "throughput-c64")
    assert _sentence(html).startswith("Deploy server-openvino for resnet18 on this machine: 1.35x the throughput "
                                      "of server-onnxruntime (95% CI 1.26-1.43)")
    assert "server-tvm completed no request (2 timeout)" in html
    html = _report(tmp_path / "again", "mlp", "--decide-by", "throughput-c64")
    assert _sentence(html).startswith("Too close to call by served throughput at concurrency 64")


def test_a_run_without_flask_or_a_served_model_still_reports(tmp_path):
    """Once a TypeError: the verdict looked up flask-naive's row, which this run does not have."""
    wanted = ("tvm__", "onnxruntime__", "server-null__")
    html = _report(tmp_path, "mlp", keep=lambda p: p.is_dir() or not p.suffix == ".json" or p.name.startswith(wanted)
                   or p.parent.name != "records")
    assert _sentence(html).startswith("Deploy onnxruntime for mlp on this machine: 0.11x the latency of tvm")


def test_a_bad_decide_by_is_one_line(tmp_path):
    shutil.copytree(FIXTURES / "mlp", tmp_path / "mlp")
    result = workbench_cli("report", str(tmp_path / "mlp"), "--decide-by", "throughput-c4", home=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no closed-loop figure at concurrency 4" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_warnings_fold_into_one_line_and_an_slo_label_is_escaped_once(tmp_path):
    run = tmp_path / "mlp"
    shutil.copytree(FIXTURES / "mlp", run)
    record = json.loads((run / "records" / "tvm__latency-b1.json").read_text())
    record.update(engine="server-tvm", scenario={"kind": "slo-search", "slo_p99_ms": 20.0}, status="failed",
                  result=None, note="the server process had exited; not measured")
    (run / "records" / "server-tvm__slo-search-p99-20.json").write_text(json.dumps(record))
    result = workbench_cli("report", str(run), home=tmp_path)
    assert result.returncode == 0, result.stderr
    html = (run / "index.html").read_text()
    assert "&amp;le;" not in html and "&amp;lt;" not in html
    summary = html.split('<details class="warn" id="warnings"><summary>')[1].split("</summary>")[0]
    assert "the most severe: server-tvm SLO p99 &lt;= 20 ms: failed" in summary
    assert html.count('class="warn"') == 1  # one box, the list folded under it
