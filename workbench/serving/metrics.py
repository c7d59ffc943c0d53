"""Prometheus text exposition for the server: counters and histograms, no client library needed."""

import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def label_key(**labels) -> tuple:
    """A series' key: its labels in name order."""
    return tuple(sorted(labels.items()))


def _labels(labels: tuple) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple):
        self.name, self.help, self.buckets = name, help_text, buckets
        self._counts: dict[tuple, list[int]] = defaultdict(lambda: [0] * (len(buckets) + 1))
        self._sums: dict[tuple, float] = defaultdict(float)

    def observe(self, value: float, **labels) -> None:
        self.add(label_key(**labels), value)

    def add(self, key: tuple, value: float) -> None:
        """observe() for a key made once (label_key): the request path observes five series per answer."""
        self._counts[key][bisect_left(self.buckets, value)] += 1
        self._sums[key] += value

    def total(self, **labels) -> tuple[int, float]:
        """How many values were observed with these labels, and their sum."""
        key = label_key(**labels)
        return (sum(self._counts[key]), self._sums[key]) if key in self._counts else (0, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self._counts.items()):
            base, running = _labels(key), 0
            sep = "," if base else ""
            for bound, count in zip(self.buckets, counts):
                running += count
                lines.append(f'{self.name}_bucket{{{base}{sep}le="{bound}"}} {running}')
            running += counts[-1]
            lines.append(f'{self.name}_bucket{{{base}{sep}le="+Inf"}} {running}')
            lines.append(f"{self.name}_sum{{{base}}} {self._sums[key]}")
            lines.append(f"{self.name}_count{{{base}}} {running}")
        return lines


class Counter:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self._values: dict[tuple, float] = defaultdict(float)

    def inc(self, amount: float = 1, **labels) -> None:
        self._values[label_key(**labels)] += amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{{{_labels(k)}}} {v}" for k, v in sorted(self._values.items())]
        return lines


@dataclass
class InferTimes:
    """One inference request's phases in seconds, filled in as it goes (decode; the batcher's queue wait
    and its batch's engine time; encode) and observed all at once when it is answered with success."""
    decode: float = 0.0
    queue: float = 0.0
    compute: float = 0.0
    encode: float = 0.0


class ServerMetrics:
    """The server's counters. Every observation and every read (/metrics, /stats, gRPC ModelStatistics)
    happens on the event loop's thread, in code that does not await in between (the batcher hands its
    times back to the loop; the engine thread touches none of this), so a reader sees all of an
    `answered` call or none of it: no lock is needed."""

    def __init__(self):
        self.requests = Counter("workbench_requests_total", "Requests answered, by model and HTTP status")
        self.latency = Histogram("workbench_request_latency_seconds", "Time from request read to answer",
                                 LATENCY_BUCKETS_S)
        # Per request, as Triton counts: latency, queue, decode, request_compute and encode count the
        # inference requests (REST and gRPC) answered with success, each observed once, all together, by
        # `answered`; a refused or failed one counts in `failed` only (its decode time is part of that
        # latency). The batch-level compute, batch and padded count every engine call.
        self.queue = Histogram("workbench_queue_seconds",
                               "Time a successful inference request waited in the batch queue", LATENCY_BUCKETS_S)
        self.compute = Histogram("workbench_compute_seconds", "Engine time per batch", LATENCY_BUCKETS_S)
        self.batch = Histogram("workbench_batch_size", "Rows per engine call, before padding", BATCH_BUCKETS)
        self.padded = Counter("workbench_padding_rows_total", "Rows of padding added to reach a compiled size")
        # Triton's statistics (/v2/models/<m>/stats, gRPC ModelStatistics) are read from these and the above.
        self.failed = Histogram("workbench_failed_request_latency_seconds",
                                "Time from request read to a refusal or failure, inference requests only",
                                LATENCY_BUCKETS_S)
        self.decode = Histogram("workbench_decode_seconds",
                                "Time to decode a successful inference request's tensors (a refused request's "
                                "is in workbench_failed_request_latency_seconds)", LATENCY_BUCKETS_S)
        self.request_compute = Histogram("workbench_request_compute_seconds",
                                         "Engine time of the batch each successful inference request ran in, "
                                         "per request", LATENCY_BUCKETS_S)
        self.encode = Histogram("workbench_encode_seconds", "Time to encode a successful inference response",
                                LATENCY_BUCKETS_S)
        self.last_inference_ms: dict[str, int] = {}  # per model: wall-clock ms of the last answered inference

    def answered(self, model: str, seconds: float, times: InferTimes) -> None:
        """One inference answered with success: its latency and its phases, at once (no await in between,
        so no statistics snapshot counts it in some and not the others)."""
        key = label_key(model=model)
        self.latency.add(key, seconds)
        self.queue.add(key, times.queue)
        self.decode.add(key, times.decode)
        self.request_compute.add(key, times.compute)
        self.encode.add(key, times.encode)
        self.last_inference_ms[model] = time.time_ns() // 1_000_000

    def durations(self, model: str) -> dict[str, tuple[int, float]]:
        """Per Triton statistic, (count, seconds) for one model: what /stats reports."""
        return {"success": self.latency.total(model=model), "fail": self.failed.total(model=model),
                "queue": self.queue.total(model=model), "compute_input": self.decode.total(model=model),
                "compute_infer": self.request_compute.total(model=model),
                "compute_output": self.encode.total(model=model)}

    def render(self, queue_depths: dict[str, int]) -> str:
        lines = []
        for metric in (self.requests, self.latency, self.queue, self.compute, self.batch, self.padded, self.failed,
                       self.decode, self.request_compute, self.encode):
            lines += metric.render()
        lines += ["# HELP workbench_queue_depth Rows waiting in the batch queue", "# TYPE workbench_queue_depth gauge"]
        lines += [f'workbench_queue_depth{{model="{m}"}} {d}' for m, d in sorted(queue_depths.items())]
        return "\n".join(lines) + "\n"
