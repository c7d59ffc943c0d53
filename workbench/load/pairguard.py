"""The paired ratio checked against the same run's direct figures (docs/BENCHMARKS.md, "How the paired
ratio is protected").

A paired run calls the engines in alternating blocks so that a slow spell of the machine falls on all of
them; its ratio should then agree with the ratio of the engines' direct p50s, measured one engine after
another earlier in the same run. When the two disagree by more than TOLERANCE, one of them was disturbed
(another process took the cores, or one engine's threads ran on into the other's block): the paired run is
repeated once, and a disagreement that survives the repeat is flagged, never printed as the answer.
"""

from typing import Callable

TOLERANCE = 0.25  # the paired ratio may differ from the direct ratio by this share of the direct ratio


def agrees(paired_ratio: float, direct_ratio: float | None, tolerance: float = TOLERANCE) -> bool:
    """True when the paired ratio lies within `tolerance` (a share) of the direct ratio, or when there is
    no direct ratio to check it against (None)."""
    if direct_ratio is None:
        return True
    return abs(paired_ratio - direct_ratio) <= tolerance * direct_ratio


def direct_p50s(records: list[dict], batch: int) -> dict[str, float]:
    """Each engine's direct p50 (ms) at this batch size, from the run's latency records that succeeded."""
    return {r["engine"]: r["result"]["latency_ms"]["p50_ms"] for r in records
            if r["scenario"].get("kind") == "latency" and r["scenario"].get("batch") == batch
            and r.get("status") == "ok" and r.get("result") and r["result"].get("latency_ms")}


def direct_ratios(p50s: dict[str, float], engines: list[str], reference: str) -> dict[str, float | None]:
    """Each engine's direct p50 over the reference's (None where either is missing or zero)."""
    ref = p50s.get(reference)
    return {e: (p50s[e] / ref if ref and p50s.get(e) else None) for e in engines}


def disagreeing(results: dict[str, dict], ratios: dict[str, float | None]) -> list[str]:
    """The engines of a paired run whose ratio disagrees with their direct ratio."""
    return [e for e, r in results.items() if not agrees(r["ratio_p50"], ratios.get(e))]


def flag(engine: str, results: dict[str, dict], direct_ratio: float, p50s: dict[str, float],
         repeats: int = 1) -> str:
    """One line saying why this paired figure is not to be trusted, with each engine's paired p50 against
    its direct one, so that the line shows which of them moved."""
    result = results[engine]
    line = (f"paired ratio {result['ratio_p50']:.2f}x disagrees with the direct p50s' {direct_ratio:.2f}x by more "
            f"than {TOLERANCE:.0%}" + (" after a repeat" if repeats else ""))
    moved = [f"{e} {results[e]['latency_ms']['p50_ms']:.3g} ms against {p50s[e]:.3g} ms"
             for e in (engine, result.get("reference")) if e in results and e in p50s]
    if moved:
        line += f" (paired p50 against direct: {', '.join(moved)})"
    return line + "; the machine was busy or the engines disturbed each other, so neither figure is the answer"


def annotate(results: dict[str, dict], ratios: dict[str, float | None], p50s: dict[str, float],
             repeats: int) -> dict[str, dict]:
    """The paired results with the guard's fields: `flag` (None, or why not to trust the figure),
    `direct_ratio` and `repeats` (how many times the paired run was measured again)."""
    out = {}
    for engine, result in results.items():
        direct = ratios.get(engine)
        bad = not agrees(result["ratio_p50"], direct)
        out[engine] = {**result, "direct_ratio": direct, "repeats": repeats,
                       "flag": flag(engine, results, direct, p50s, repeats) if bad else None}
    return out


def guarded(measure: Callable[[], dict[str, dict]], ratios: dict[str, float | None], p50s: dict[str, float],
            before_repeat: Callable[[], None] = lambda: None) -> dict[str, dict]:
    """A paired run (`measure`), measured again once when any engine's ratio disagrees with its direct
    ratio (`before_repeat` runs first: a pause, a message); the second run is kept whatever it shows,
    and what still disagrees is flagged."""
    results, repeats = measure(), 0
    if disagreeing(results, ratios):
        before_repeat()
        results, repeats = measure(), 1
    return annotate(results, ratios, p50s, repeats)
