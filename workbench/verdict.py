"""What to deploy: from a run's records, the engine that wins the deciding figure, its factor over
the runner-up with a block-bootstrap interval, and "too close to call" when the interval spans 1.

Deciding figures (`--decide-by`):
  latency          direct latency at the smallest batch, from the paired rounds (the default);
  throughput-c<N>  served closed-loop throughput at concurrency N;
  slo              the highest open-loop rate whose p99 stays under the bound.
Only engines that passed the correctness gate count; the null engines measure the harness, not a
model, and never do.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from workbench import bootstrap, scenarios
from workbench.dims import describe_dims, smallest_dims
from workbench.engines import registry
from workbench.errors import WorkbenchError

DEFAULT = "latency"
SLO_CLOSE = 0.10  # one bisection per engine, no interval: a lead under 10% is not called


@dataclass
class Decision:
    decided_by: str  # the option value: latency, throughput-c64, slo
    figure: str  # what was compared, in words
    engine: str | None = None  # the winner; None when nothing could be compared
    runner_up: str | None = None
    factor: float | None = None  # the winner's figure over the runner-up's (latency: < 1 is better)
    low: float | None = None
    high: float | None = None
    close: bool = False  # too close to call
    lower_is_better: bool = True
    flag: str | None = None  # why this figure cannot decide (a flagged measurement)
    others: dict[str, float] = field(default_factory=dict)  # the winner's factor over every other candidate
    empty: dict[str, str] = field(default_factory=dict)  # engines timed that completed nothing, and why
    sentence: str = ""

    @property
    def runtime(self) -> str | None:
        """The in-process runtime a bundle would serve the winner with."""
        return registry.ENGINES[self.engine].runtime if self.engine in registry.ENGINES else None

    def as_dict(self) -> dict:
        return {**asdict(self), "runtime": self.runtime}


def _ok(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r.get("status") == "ok" and r.get("result") and r["scenario"]["kind"] == kind
            and (r.get("correctness") or {}).get("passed", True) and not registry.is_null(r["engine"])]


def _block_medians(record: dict) -> np.ndarray:
    result = record["result"]
    if result.get("block_medians_ms"):
        return np.asarray(result["block_medians_ms"], np.float64)
    raw = np.asarray(result["raw_latency_us"], np.float64) / 1000  # records made before block medians were kept
    block = int(result.get("block") or record["scenario"].get("block") or 1)
    return np.median(raw[: len(raw) // block * block].reshape(-1, block), axis=1)


def _ratio_of_medians(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(a / b)) if len(a) == len(b) else float(np.median(a) / np.median(b))


def _latency(records: list[dict]) -> tuple[str, dict[str, np.ndarray], str | None]:
    paired = _ok(records, scenarios.PAIRED)
    if paired:
        batch = min(r["scenario"]["batch"] for r in paired)
        chosen = [r for r in paired if r["scenario"]["batch"] == batch]
        flags = [f"{r['engine']}: {r['result']['flag']}" for r in chosen if r["result"].get("flag")]
        return (f"direct p50 latency at batch {batch}, paired rounds",
                {r["engine"]: _block_medians(r) for r in chosen}, "; ".join(flags) or None)
    latency = [r for r in _ok(records, scenarios.LATENCY) if r["result"].get("raw_latency_us")]
    if not latency:
        return "direct p50 latency", {}, None
    batch = min(r["scenario"]["batch"] for r in latency)
    return (f"direct p50 latency at batch {batch}, one engine after another (not paired)",
            {r["engine"]: np.asarray(r["result"]["raw_latency_us"], np.float64) / 1000
             for r in latency if r["scenario"]["batch"] == batch}, None)


def _throughput(records: list[dict], concurrency: int) -> tuple[str, dict[str, np.ndarray], str | None]:
    """Closed loop at one concurrency: by Little's law throughput is concurrency over the mean
    latency, so the ratio of mean latencies (bootstrapped in blocks) is the inverse throughput ratio."""
    closed = _ok(records, scenarios.CLOSED)
    levels = sorted({r["scenario"].get("concurrency") for r in closed})
    if concurrency not in levels:
        have = ", ".join(f"throughput-c{c}" for c in levels) or "none (no served engine was measured)"
        raise WorkbenchError(f"this run has no closed-loop figure at concurrency {concurrency}; "
                             f"--decide-by choices here: latency, {have}")
    chosen = [r for r in closed if r["scenario"]["concurrency"] == concurrency and r["result"].get("raw_latency_us")]
    flags = [f"{r['engine']}: {r['result']['flag']}" for r in chosen if r["result"].get("flag")]
    return (f"served throughput at concurrency {concurrency}, engines measured one after another",
            {r["engine"]: np.asarray(r["result"]["raw_latency_us"], np.float64) / 1000 for r in chosen},
            "; ".join(flags) or None)


def _completed_nothing(records: list[dict], concurrency: int) -> dict[str, str]:
    """Served engines timed at this concurrency that completed no request: the worst result, not a gap."""
    return {r["engine"]: ", ".join(f"{n} {kind}" for kind, n in (r["result"].get("errors") or {}).items())
            or "no response" for r in _ok(records, scenarios.CLOSED)
            if r["scenario"]["concurrency"] == concurrency and not r["result"].get("raw_latency_us")}


def parse(decide_by: str | None) -> tuple[str, int | None]:
    text = (decide_by or DEFAULT).strip().lower()
    if text in ("latency", "slo"):
        return text, None
    if text.startswith("throughput-c") and text[len("throughput-c"):].isdigit() and int(text[12:]) > 0:
        return "throughput", int(text[12:])
    raise WorkbenchError(f"--decide-by must be latency, throughput-c<concurrency> (e.g. throughput-c64) or slo "
                         f"(got {decide_by!r})")


def _name(decide_by: str | None) -> str:
    kind, concurrency = parse(decide_by)
    return f"throughput-c{concurrency}" if kind == "throughput" else kind


def decide(records: list[dict], decide_by: str | None = None) -> Decision:
    """The engine to deploy by one deciding figure (see the module's docstring)."""
    kind, concurrency = parse(decide_by)
    records, at = _first_dims(records)
    if kind == "slo":
        return _decide_slo(records, at)
    figure, series, flag = _latency(records) if kind == "latency" else _throughput(records, concurrency)
    figure += at
    latency = kind == "latency"
    decision = Decision(_name(decide_by), figure, lower_is_better=latency, flag=flag)
    if not latency:
        decision.empty = _completed_nothing(records, concurrency)
    usable = {e: s for e, s in series.items() if len(s) >= 2}
    # Cost: lower is better. Latency compares medians (per round when paired); served throughput
    # compares mean latencies at the same concurrency, its inverse by Little's law.
    center = np.median if latency else np.mean
    ranked = sorted(usable, key=lambda e: center(usable[e]))
    if ranked:
        decision.engine = ranked[0]
    if len(ranked) > 1:
        best, runner = usable[ranked[0]], usable[ranked[1]]
        statistic = _ratio_of_medians if latency else (lambda a, b: float(np.mean(a) / np.mean(b)))
        cost, low, high = bootstrap.interval(statistic, best, runner)
        if latency:
            decision.factor, decision.low, decision.high = cost, low, high
        else:
            decision.factor, decision.low, decision.high = 1 / cost, 1 / high, 1 / low
        decision.runner_up = ranked[1]
        decision.close = decision.low <= 1 <= decision.high
        for other in ranked[1:]:
            ratio = statistic(best, usable[other])
            decision.others[other] = ratio if latency else 1 / ratio
    decision.sentence = sentence(decision, _model(records))
    return decision


def _first_dims(records: list[dict]) -> tuple[list[dict], str]:
    """A run with --dims measured each combination: the decision compares engines at the smallest
    one (never one engine's figure at one shape with another's at another), and says which."""
    first = smallest_dims(r["scenario"].get("dims") or {} for r in records)
    if not first:
        return records, ""
    return [r for r in records if (r["scenario"].get("dims") or {}) == first], describe_dims(first)


def _decide_slo(records: list[dict], at: str = "") -> Decision:
    searches = _ok(records, scenarios.SLO_SEARCH)
    rates = {r["engine"]: r["result"]["max_rate_rps"] for r in searches if r["result"].get("max_rate_rps")}
    bound = next((r["scenario"].get("slo_p99_ms") for r in searches), None)
    flags = [f"{r['engine']}: {r['result']['flag']}" for r in records
             if r["scenario"]["kind"] == scenarios.SLO_SEARCH and (r.get("result") or {}).get("flag")]
    figure = (f"highest open-loop rate with p99 under {bound:g} ms, one search per engine (no interval)"
              if bound is not None else "highest open-loop rate under the p99 bound") + at
    decision = Decision("slo", figure, lower_is_better=False, flag="; ".join(flags) or None)
    ranked = sorted(rates, key=rates.get, reverse=True)
    if ranked:
        decision.engine = ranked[0]
    if len(ranked) > 1:
        decision.runner_up = ranked[1]
        decision.factor = rates[ranked[0]] / rates[ranked[1]]
        decision.close = decision.factor < 1 + SLO_CLOSE
        decision.others = {e: rates[ranked[0]] / rates[e] for e in ranked[1:]}
    decision.sentence = sentence(decision, _model(records))
    return decision


def _model(records: list[dict]) -> str:
    return records[0]["model"]["name"] if records else "this model"


def times(factor: float) -> str:
    """2.31x, 0.14x, 0.0092x: two decimals hide a factor below 0.1."""
    return f"{factor:.2f}x" if factor >= 0.1 else f"{factor:.2g}x"


def _factor_text(d: Decision, factor: float, other: str) -> str:
    return f"{times(factor)} the {'latency' if d.lower_is_better else 'throughput'} of {other}"


def sentence(d: Decision, model: str) -> str:
    """One line a log keeps: what to deploy, by how much, and from which figure."""
    if d.engine is None:
        return f"No verdict: no engine has a timed, correct figure for {d.figure} in this run."
    if d.runner_up is None:
        return (f"Only {d.engine} has a timed, correct figure for {d.figure}: nothing to compare it with "
                "(bench more engines to get a verdict).")
    interval = f" (95% CI {d.low:.2f}-{d.high:.2f})" if d.low is not None else ""
    lead = _factor_text(d, d.factor, d.runner_up) + interval
    if d.flag:
        return (f"No safe verdict by {d.figure}: {d.flag}. The figures say {d.engine} at {lead}; "
                "rerun on a quiet machine.")
    if d.close:
        return f"Too close to call by {d.figure}: {d.engine} is {lead}, inside this run's noise."
    rest = "".join(f", {_factor_text(d, f, e)}" for e, f in list(d.others.items())[1:])
    return f"Deploy {d.engine} for {model} on this machine: {lead}{rest}; decided by {d.figure}."


def tvm_line(d: Decision, with_figure: bool = True) -> str | None:
    """Where TVM stands when it did not win: the loss a user must not miss."""
    def is_tvm(engine):
        return engine in registry.ENGINES and registry.ENGINES[engine].runtime == registry.TVM

    by = f" by {d.figure}" if with_figure else ""
    if failed := [e for e in d.empty if is_tvm(e)]:
        return f"{failed[0]} completed no request ({d.empty[failed[0]]}){by}."
    lost = [e for e in d.others if is_tvm(e)]
    if d.engine is None or not lost or d.flag:
        return None
    engine, factor = lost[0], d.others[lost[0]]
    if d.lower_is_better:
        return f"{engine} is {times(1 / factor)} the latency of {d.engine}{by}."
    return f"{engine} reaches {times(1 / factor)} the throughput of {d.engine}{by}."


def available(records: list[dict]) -> list[str]:
    """Every --decide-by value this run's records can answer, the default first."""
    names = ["latency"] if _ok(records, scenarios.PAIRED) or _ok(records, scenarios.LATENCY) else []
    names += [f"throughput-c{c}" for c in sorted({r["scenario"]["concurrency"]
                                                    for r in _ok(records, scenarios.CLOSED)})]
    return names + (["slo"] if _ok(records, scenarios.SLO_SEARCH) else [])
