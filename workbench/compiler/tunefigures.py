"""The figures a tuning session ends with, and which of them to trust.

Tuning estimates the model's latency twice, and neither is a measurement of the model:
- tuning's estimate: each kernel's best timing during the search, times its calls, summed. Each
  candidate is timed once (5 cold calls, averaged), so on a shared machine whose speed drifts
  the best of a task's few timings can be far from its typical time, either way;
- the re-timed estimate: the chosen schedules timed again side by side in interleaved rounds, the
  median counting (compiler/retime.py), so a slow spell hits every candidate alike. The better of
  the two, and still a sum of kernels timed alone with every weight cold, not the model.
Beside them, ONNX Runtime runs the whole model at the same batch, measured here and now: the
figure tuning has to beat, and a check of the machine's state.
"""

from pathlib import Path

DISAGREE = 1.5  # the two estimates differ by more than this factor: the machine drifted while tuning


def measure_onnxruntime(path: Path, model, batch: int, providers: tuple[str, ...],
                        sizes: dict[str, int] | None = None) -> tuple[float | None, str]:
    """ONNX Runtime's p50 latency of the whole model at `batch` (seconds), as bench runs it (all
    graph optimisations, one thread per physical core), or None and why not."""
    from workbench.engines.onnxruntime_engine import onnxruntime_engine
    from workbench.load.direct import DirectSpec, latency
    from workbench.models import sample_inputs

    try:
        engine = onnxruntime_engine(path, providers)
        result = latency(engine, sample_inputs(model, batch, sizes=sizes),
                         DirectSpec(min_runs=10, min_time_s=0.5, max_time_s=10))
    except Exception as exc:  # a model ONNX Runtime cannot run here loses this one line, not the session
        return None, f"ONNX Runtime could not run the model here ({type(exc).__name__})"
    return result["latency_ms"]["p50_ms"] / 1e3, ""


def trust_note(tuned: float | None, retimed: float | None, onnxruntime: float | None, bench_hint: str) -> str:
    """One sentence on which figure to believe (seconds in; None where a figure is missing)."""
    if tuned is None and retimed is None:
        return f"No estimate: some tasks have no valid schedule yet. {bench_hint}"
    if retimed is not None:
        text = ("Trust the re-timed estimate over tuning's: its kernels were timed side by side in repeated "
                "rounds (the median counts); tuning's are one timing each, the best of a task's candidates at "
                "whatever speed the machine ran at the time.")
        if tuned is not None and max(tuned, retimed) > DISAGREE * min(tuned, retimed):
            text += (f" They differ by {max(tuned, retimed) / min(tuned, retimed):.1f}x: this machine's speed "
                     "changed while tuning (another process?), so treat tuning's loosely.")
    else:
        text = "Tuning's estimate is one timing of each kernel's best schedule; nothing re-timed it."
    estimate = retimed if retimed is not None else tuned
    if onnxruntime:
        ratio = estimate / onnxruntime
        text += (f" The estimate is {ratio:.2f}x ONNX Runtime's measured latency" if ratio >= 1 else
                 f" The estimate is {1 / ratio:.2f}x faster than ONNX Runtime's measured latency")
        text += ", but it sums kernels timed alone with every weight cold, not the model:"
    else:
        text += " Either sums kernels timed alone with every weight cold, not the model:"
    return f"{text} {bench_hint}"


def expected_minutes(sessions: list[dict], trials: int, model: str | None = None,
                     batch_sizes: list[int] | None = None) -> str:
    """How long `trials` take at the rate of this machine's last finished session in the database
    ("" when none), the closest one first: the same model at the same batch sizes, then any model at
    those batch sizes, then any (a candidate at batch 8 takes several times one at batch 1: resnet50@8
    was told 45.7 min from resnet50@1's 370 trials/min and ran at about 150). The rate alone: the
    choice after tuning takes its own time. An interrupted session's rate is passed over: it counts
    whatever stalled or stopped it (a 12-minute stall gave resnet50@8 an estimate of 85.9 min; it
    searched for 51.4)."""
    from workbench import fingerprint

    here = fingerprint.here()
    usable = [s for s in sessions if (s.get("trials_per_minute") or 0) > 0 and not s.get("interrupted")
              and fingerprint.same_machine(s, here)[0]]
    batches = sorted(batch_sizes) if batch_sizes else None
    for closest in ([s for s in usable if s.get("model") == model and sorted(s.get("batch_sizes") or []) == batches],
                    [s for s in usable if sorted(s.get("batch_sizes") or []) == batches], usable):
        if closest:
            session, rate = closest[-1], closest[-1]["trials_per_minute"]
            at = ",".join(str(b) for b in session.get("batch_sizes") or []) or "?"
            return (f"about {trials / rate:.1f} min of search at the {rate:.1f} trials/min of the last session "
                    f"here like it ({session.get('model', '?')} at batch {at})")
    return ""
