"""The HTML pieces every report page shares: the style, escaping, numbers, tables, images, and the
labels of the scenarios and --dims combinations rows are measured at."""

import html

import numpy as np

from workbench import scenarios

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.warn { background: #fff4e0; border-left: 4px solid #e69500; padding: .5em 1em; margin: .5em 0; }
.bad { color: #b00020; font-weight: bold; } .good { color: #1b7f3a; font-weight: bold; }
.lead { font-size: 1.15em; } details.warn summary { cursor: pointer; }
.muted { color: #666; } img { max-width: 100%; } pre { background: #f7f7f7; padding: .6em; overflow-x: auto; }
"""


def esc(value) -> str:
    return html.escape(str(value))


def num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image(uri: str | None, alt: str) -> str:
    return f'<p><img src="{uri}" alt="{esc(alt)}"></p>' if uri else f'<p class="muted">No data for: {esc(alt)}.</p>'


def scenario_label(record: dict) -> str:
    return scenarios.label(record["scenario"], html=True)


# ---- --dims: one row, series and lookup per batch size (or load) and dims combination ----------
def dims_of(scenario: dict) -> dict:
    """The --dims combination a record measured, {"seq": 8}; {} without --dims."""
    return scenario.get("dims") or {}


def at_label(batch: int, dims: dict | None = None) -> str:
    """Where a per-batch figure was measured: "b1", or "b1 seq=8" under --dims."""
    named = scenarios.dims_label({"dims": dims})
    return f"b{batch}" + (f" {named}" if named else "")


def in_order(found: list[dict]) -> list[dict]:
    """Records as the run lists them, the --dims combinations of one engine, kind and load
    together and by size (file names put seq16 before seq8); a run without --dims keeps its order."""
    def group(r):
        return r["engine"], r["scenario"]["kind"], scenarios.file_suffix({**r["scenario"], "dims": None})

    first: dict = {}
    for i, r in enumerate(found):
        first.setdefault(group(r), i)
    return sorted(found, key=lambda r: (first[group(r)], list(dims_of(r["scenario"]).values())))


def dims_table(headers: list[str], after: str, rows: list[list], dims: list[str | None]) -> str:
    """A table with a "dims" column after the column `after` when any row was measured at a --dims
    combination (dims: each row's label, "seq=8"); a run without --dims keeps its columns."""
    if any(dims):
        i = headers.index(after) + 1
        headers = [*headers[:i], "dims", *headers[i:]]
        rows = [[*row[:i], esc(d or "-"), *row[i:]] for row, d in zip(rows, dims)]
    return table(headers, rows)
