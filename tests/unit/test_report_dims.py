"""A --dims run in the report: every row and figure series per batch size (or concurrency) is also
per dims combination, labelled, and lookups by batch size take the combination into account.

The run is the committed mlp run (tests/fixtures/runs) with every record measured twice, at seq=8
and at seq=16 (twice as slow): the report reads records only, so the model need not have a seq."""

import json
import shutil
from pathlib import Path

import pytest

from workbench import scenarios
from workbench.report import figures
from workbench.report.page import render
from workbench.report.run import load_run
from workbench.report.tuning import measured_p50

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "runs" / "mlp"
SESSION = {"seconds": 60, "trials": 10, "batch_sizes": [1], "curve": [[0, 0, 0.002], [60, 10, 0.0001]]}


def _slower(result: dict, factor: float) -> None:
    for key, value in (result.get("latency_ms") or {}).items():
        result["latency_ms"][key] = value * factor if isinstance(value, (int, float)) else value
    for key in ("throughput_sps", "throughput_rps"):
        if result.get(key):
            result[key] /= factor


def _dims_run(tmp_path: Path) -> Path:
    run = tmp_path / "dims-run"
    shutil.copytree(FIXTURE, run)
    for path in sorted((run / "records").glob("*.json")):
        record = json.loads(path.read_text())
        path.unlink()
        for seq, factor in ((8, 1.0), (16, 2.0)):
            copy = json.loads(json.dumps(record))
            copy["scenario"]["dims"] = {"seq": seq}
            if copy.get("result"):
                _slower(copy["result"], factor)
            if copy["scenario"]["kind"] == "paired" and copy["engine"] == "tvm":  # as a bench of three runtimes
                copy["result"]["ratio_to_best_other"] = {"engine": "onnxruntime", "ratio_p50": 9.0 * factor}
            name = f"{copy['engine']}__{copy['scenario']['kind']}{scenarios.file_suffix(copy['scenario'])}.json"
            (run / "records" / name).write_text(json.dumps(copy))
    context = json.loads((run / "context.json").read_text())
    context["tuning"]["sessions"] = [SESSION]
    (run / "context.json").write_text(json.dumps(context))
    return run


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """Every figure the page draws, by its first title, instead of its PNG."""
    import matplotlib.pyplot as plt

    found = {}

    def keep(fig):
        found[fig.axes[0].get_title()] = fig
        return "data:image/png;base64,"

    monkeypatch.setattr(figures, "_encode", keep)
    yield found
    for fig in found.values():
        plt.close(fig)


def _section(html: str, key: str) -> str:
    return html.split(f'<section id="{key}">')[1].split("</section>")[0]


def _rows(section: str) -> list[list[str]]:
    return [[cell.split("</td>")[0] for cell in row.split("<td>")[1:]] for row in section.split("<tr>")[1:]
            if "<td>" in row]


def test_a_dims_run_has_a_labelled_row_per_combination_and_no_series_mixes_them(tmp_path, drawn):
    run = load_run(_dims_run(tmp_path))
    html = render(run)
    direct = _section(html, "direct")
    assert direct.count("<th>dims</th>") == 3  # latency, paired and offline tables
    latency = [r for r in _rows(direct.split("<h3>")[0]) if r[0] == "tvm"]
    assert [r[1:3] for r in latency] == [["1", "seq=8"], ["1", "seq=16"], ["8", "seq=8"], ["8", "seq=16"]]
    assert float(latency[1][3]) == pytest.approx(2 * float(latency[0][3]), rel=0.01)  # each row its own record
    assert "tvm b1 seq=8: " in direct and "tvm b1 seq=16: " in direct  # the paired ratio to the fastest other
    served = [r for r in _rows(_section(html, "served")) if r[0] == "server-tvm"]
    assert [r[1:3] for r in served] == [["1", "seq=8"], ["1", "seq=16"], ["64", "seq=8"], ["64", "seq=16"]]

    bars = drawn["Direct latency: bar = p50, black tick = p99"].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["b1 seq=8", "b1 seq=16", "b8 seq=8", "b8 seq=16"]
    assert len(bars.patches) == len(run.ok(kind="latency"))  # one bar per record: none left out, none drawn twice
    for title in ("Throughput", "Latency by percentile at concurrency 64"):
        lines = drawn[title].axes[0].get_lines()
        labels = [line.get_label().split(" (n=")[0] for line in lines]
        assert {"server-tvm seq=8", "server-tvm seq=16"} <= set(labels) and len(labels) == len(set(labels))
        # one point per concurrency on a served line, one per request on a percentile curve: never two records
        assert all(len(set(line.get_xdata())) == len(line.get_xdata()) for line in lines)
    served_lines = drawn["Throughput"].axes[0].get_lines()
    assert len(served_lines) == len({(r["engine"], r["scenario"]["dims"]["seq"]) for r in run.ok(kind="closed")})


def test_lookups_by_batch_size_take_the_dims_and_tuning_compares_at_the_smallest(tmp_path, drawn):
    run = load_run(_dims_run(tmp_path))
    at_8, at_16 = (measured_p50(run, "onnxruntime", 1, {"seq": seq}) for seq in (8, 16))
    assert at_8 is not None and at_16 == pytest.approx(2 * at_8)
    assert measured_p50(run, "onnxruntime", 1) is None  # no record without dims in this run
    tuning = _section(render(run), "tuning")
    assert f"ONNX Runtime's measured b1 seq=8 p50 of {at_8:.2f} ms" in tuning and "batch 1, seq 8)" in tuning
    lines = [line.get_label() for line in drawn["Tuning progress by trials"].axes[0].get_lines()]
    assert "onnxruntime measured b1 seq=8 p50" in lines and not any("seq=16" in label for label in lines)


def test_a_run_without_dims_has_no_dims_column(drawn):
    html = render(load_run(FIXTURE))
    assert "<th>dims</th>" not in html and "seq=" not in html
    ticks = drawn["Direct latency: bar = p50, black tick = p99"].axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == ["batch 1", "batch 8"]
