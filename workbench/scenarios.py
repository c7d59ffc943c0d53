"""The scenario kinds a bench record can hold: what names the load of each, how its record file
is named, what unit its throughput is in, and how people read it."""

from dataclasses import dataclass

LATENCY, OFFLINE, PAIRED = "latency", "offline", "paired"  # in-process, per batch size
CLOSED, OPEN, SLO_SEARCH = "closed", "open", "slo-search"  # served, per concurrency / rate / p99 bound


@dataclass(frozen=True)
class Kind:
    name: str
    load: str  # the scenario field that says how much load: batch, concurrency, rate, slo_p99_ms
    file_tag: str  # record file suffix before the load's value: b8, c64, r100, p99-20
    unit: str  # what its throughput counts

    def label(self, scenario: dict, html: bool = False) -> str:
        value = scenario.get(self.load)
        if self.name == SLO_SEARCH:
            return f"SLO p99 {'&le;' if html else '<='} {value:g} ms" if value is not None else "SLO search"
        if self.name == OPEN:
            return f"open {value:g}/s" if value is not None else "open"
        return f"{self.name} {self.file_tag}{value}" if value is not None else self.name


KINDS = {k.name: k for k in (
    Kind(LATENCY, "batch", "b", "samples/s"), Kind(OFFLINE, "batch", "b", "samples/s"),
    Kind(PAIRED, "batch", "b", "samples/s"), Kind(CLOSED, "concurrency", "c", "requests/s"),
    Kind(OPEN, "rate", "r", "requests/s"), Kind(SLO_SEARCH, "slo_p99_ms", "p99-", "requests/s"))}


def label(scenario: dict, html: bool = False) -> str:
    """How a report or a table names a record's scenario: "latency b8", "closed c64", "open 100/s";
    a --dims combination follows: "closed c64 seq=128"."""
    kind = KINDS.get(scenario["kind"])
    dims = dims_label(scenario)
    return (kind.label(scenario, html) if kind else scenario["kind"]) + (f" {dims}" if dims else "")


def dims_label(scenario: dict) -> str:
    """The --dims combination a record measured, "seq=128" or "seq=128 width=8"; '' without --dims."""
    return " ".join(f"{n}={v}" for n, v in (scenario.get("dims") or {}).items())


def file_suffix(scenario: dict) -> str:
    """The part of a record's file name after the kind: "-b8", "-c64", "" when the load is unset."""
    kind = KINDS.get(scenario["kind"])
    value = scenario.get(kind.load) if kind else None
    dims = "".join(f"-{n}{v}" for n, v in (scenario.get("dims") or {}).items())
    return (f"-{kind.file_tag}{value:g}" if value is not None else "") + dims
