"""The SLO search (LoadGen's Server scenario): the highest open-loop rate whose p99 stays under a
bound, with no errors, found by bisecting the rate.

A bisection trusts every step: one step caught in a slow spell of a shared machine lowers the
upper bound for good, and the search then "finds" a fraction of the real figure (server-null, the
harness's own ceiling, once reached 677 requests/s beside server-tvm's 3,317). So a step is
measured again, and the repeat replaces it, when
- it breaks monotonicity: it failed with a p99 well above that of a faster step (or with errors
  where the faster step had none), which more load cannot explain;
- it is the boundary the search ends on (the slowest failed rate): a failure there decides the
  figure, so it must repeat. When the repeat passes, the search goes on above it.
Every measurement stays in `trials` (a repeated one `superseded`, its repeat `remeasured`). A
failure that repeats is the server's; a search left with a failure that broke monotonicity and
was not repeated, or whose failures kept not repeating until the repeats ran out (its boundary
unconfirmed), is flagged. Nothing is clamped: the figure is always a rate measured to pass.
"""

from collections.abc import Callable

from workbench import scenarios
from workbench.engines import registry

STEPS = 6  # bisection steps
REMEASURES = 3  # at most this many repeats per search
RESUME_STEPS = 3  # bisection steps above a boundary whose failure did not repeat
MONOTONIC_TOLERANCE = 0.5  # a failed step's p99 1.5x a faster step's breaks monotonicity

Measure = Callable[[float, str | None], dict]  # (rate, why it is a repeat or None) -> a load summary


def _trial(rate: float, result: dict, bound: float) -> dict:
    p99 = result["latency_ms"]["p99_ms"]
    return {"rate": rate, "p99_ms": p99, "errors": result["errors"], "throughput_rps": result["throughput_rps"],
            "passed": bool(p99 <= bound) and not result["errors"]}


class _Search:
    def __init__(self, measure: Measure, bound: float):
        self.measure, self.bound = measure, bound
        self.trials: list[dict] = []
        self.results: dict[float, dict] = {}  # rate -> the summary of its latest measurement
        self.contradicted = 0  # repeats whose pass/fail differed from the measurement they replaced

    def effective(self) -> list[dict]:
        return [t for t in self.trials if not t.get("superseded")]

    def low(self) -> float:
        return max((t["rate"] for t in self.effective() if t["passed"]), default=0.0)

    def high(self) -> float | None:
        """The slowest failed rate above the best passed one: the boundary."""
        low = self.low()
        return min((t["rate"] for t in self.effective() if not t["passed"] and t["rate"] > low), default=None)

    def next_rate(self) -> float:
        high = self.high()
        return 2 * self.low() if high is None else (self.low() + high) / 2

    def step(self, rate: float, why: str | None = None) -> dict:
        result = self.measure(rate, why)
        trial = _trial(rate, result, self.bound)
        if why is not None:
            earlier = next(t for t in reversed(self.trials) if t["rate"] == rate and not t.get("superseded"))
            earlier["superseded"] = True
            self.contradicted += earlier["passed"] != trial["passed"]
            trial.update(remeasured=True, why=why)
        self.trials.append(trial)
        self.results[rate] = result
        return trial

    def breaks_monotonicity(self, trial: dict) -> dict | None:
        """A faster step that did better than this failed one: the failure is not the load's doing."""
        if trial["passed"]:
            return None
        for other in self.effective():
            if other["rate"] > trial["rate"] and (other["p99_ms"] * (1 + MONOTONIC_TOLERANCE) < trial["p99_ms"]
                                                 or (trial["errors"] and not other["errors"])):
                return other
        return None


def _describe(trial: dict) -> str:
    errors = sum(trial["errors"].values())
    return f"{trial['rate']:,.0f} requests/s (p99 {trial['p99_ms']:.1f} ms{f', {errors} errors' if errors else ''})"


def search(measure: Measure, bound: float, start: float, steps: int = STEPS, remeasures: int = REMEASURES) -> dict:
    """The search's result: the summary at the highest rate that passed, `max_rate_rps` (None when
    none passed), every measurement in `trials`, and `flag` (None, or why the figure is not to be trusted)."""
    s = _Search(measure, bound)
    budget = remeasures

    def advance(rate: float) -> None:
        nonlocal budget
        trial = s.step(rate)
        faster = s.breaks_monotonicity(trial)
        if faster is not None and budget > 0:
            budget -= 1
            s.step(rate, f"failed where the faster {_describe(faster)} did better")

    advance(start)
    for _ in range(steps - 1):
        advance(s.next_rate())
    while budget > 0 and (boundary := s.high()) is not None:
        latest = next(t for t in reversed(s.trials) if t["rate"] == boundary)
        if latest.get("remeasured"):
            break  # its failure already repeated
        budget -= 1
        if not s.step(boundary, "confirming the boundary")["passed"]:
            break
        for _ in range(RESUME_STEPS):
            if s.high() is None:
                break
            advance(s.next_rate())
    low, flag = s.low(), _flag(s)
    best = s.results.get(low) if low > 0 else None
    return {**(best or {}), "max_rate_rps": low if best else None, "trials": s.trials, "at_max_rate": best,
            "flag": flag}


def _flag(s: _Search) -> str | None:
    """Why the search cannot be trusted: a failure that broke monotonicity and was never repeated (the
    repeats ran out), or failures that did not repeat, leaving the boundary unconfirmed. A failure that
    repeats is the server's, whatever its p99 beside a faster step's."""
    for trial in s.effective():
        faster = s.breaks_monotonicity(trial)
        if faster is not None and not trial.get("remeasured"):
            return (f"p99 is not monotonic in the rate and the repeats ran out: {_describe(trial)} failed where "
                    f"the faster {_describe(faster)} did better; the machine was too noisy for this search")
    boundary = s.high()
    if s.contradicted and boundary is not None:
        latest = next(t for t in reversed(s.trials) if t["rate"] == boundary)
        if not latest.get("remeasured"):
            return (f"{s.contradicted} re-measured step(s) did not repeat their first result and the repeats ran "
                    f"out before the boundary at {boundary:,.0f} requests/s was confirmed; the machine was too "
                    "noisy for this search")
    return None


def ceiling_flag(records: list[dict]) -> str | None:
    """Why a run's SLO figures cannot be compared: server-null (the harness's own ceiling) searched
    below another served engine. None when it did not, or when the run has no null search."""
    searches = [r for r in records if r["scenario"]["kind"] == scenarios.SLO_SEARCH
                and r.get("status", "ok") == "ok" and r.get("result")]
    nulls = [r for r in searches if registry.is_null(r["engine"])]
    if not nulls:
        return None
    ceiling = nulls[0]["result"].get("max_rate_rps") or 0.0
    rates = [(r["result"].get("max_rate_rps") or 0.0, r["engine"]) for r in searches
             if not registry.is_null(r["engine"])]
    above = [(rate, engine) for rate, engine in rates if rate > ceiling]
    if not above:
        return None
    rate, engine = max(above)
    return (f"the harness ceiling (server-null's SLO search, {ceiling:,.0f} requests/s) was measured below "
            f"{engine} ({rate:,.0f} requests/s); the SLO figures of this run are not comparable")
