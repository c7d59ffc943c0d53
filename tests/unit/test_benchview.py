"""The bench's terminal output: tables that never cut a figure, and a verdict that survives a log."""

import io

import pytest
from rich.console import Console

import workbench.console
from workbench import benchview


def _record(engine, kind, result, **scenario):
    return {"engine": engine, "scenario": {"kind": kind, **scenario}, "status": "ok", "correctness": {"passed": True},
            "result": result}


RECORDS = [
    _record("server-onnxruntime", "closed", {"throughput_rps": 12345.678, "latency_ms": {"p50_ms": 3.0512}},
            concurrency=64),
    _record("tvm", "paired", {"ratio_p50": 3.0512, "latency_ms": {"p50_ms": 12.3456}}, batch=8),
]


@pytest.mark.parametrize("terminal", [True, False])
def test_at_80_columns_no_cell_is_cut(monkeypatch, terminal):
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=terminal, color_system=None)
    monkeypatch.setattr(benchview, "console", console)
    monkeypatch.setattr(workbench.console, "console", console)  # where for_tables looks
    benchview.print_tables(RECORDS)
    text = out.getvalue()
    assert "…" not in text
    for figure in ("server-onnxruntime", "closed c64", "3.05x ref", "paired b8", "12,346 rps", "3.05", "12.35"):
        assert figure in text, figure


def test_the_verdict_prints_as_whole_lines(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(benchview, "console", Console(file=out, width=60, color_system=None))
    sentence = ("Deploy onnxruntime for mlp on this machine: 0.14x the latency of tvm (95% CI 0.13-0.14); "
                "decided by direct p50 latency at batch 1, paired rounds.")
    benchview.print_verdict({"sentence": sentence, "engine": "onnxruntime", "runner_up": "tvm", "factor": 0.14,
                             "others": {"tvm": 0.14}, "decided_by": "latency", "figure": "direct p50 latency"})
    lines = out.getvalue().splitlines()
    assert lines[0] == f"verdict: {sentence}"
    assert lines[1] == "tvm: tvm is 7.14x the latency of onnxruntime by direct p50 latency."
