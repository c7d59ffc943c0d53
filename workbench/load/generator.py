"""Closed-loop and open-loop (Poisson) load over HTTP, measured from the scheduled send time.

Closed loop: `concurrency` requests are always outstanding; each starts when the previous one on
its slot finished, so scheduled and sent times are the same. Open loop: requests are due at the
arrival times of a seeded Poisson process whatever the server does; latency counts from the due
time (coordinated-omission safe), service time from the actual send, and a send that leaves more
than LATE_SLOT_S after its due time is counted as a missed slot.
Warm-up requests are recorded but marked, so the summary can leave them out.
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from workbench.load.http import Connection, Endpoint, connect
from workbench.load.schedule import poisson_arrivals
from workbench.load.stats import stability, summarize, window_length, windows

LATE_SLOT_S = 0.002  # uvloop timers tick in 1 ms; later than two ticks is a slot the generator missed
STATUS_CONNECTION = 0  # could not connect, or the connection broke
STATUS_TIMEOUT = -1
ERROR_BACKOFF_S = 0.01  # a dead server refuses at once; do not spin the CPU counting refusals
MAX_EXTENSION = 3.0  # a run may go on to reach its minimum request count, up to 3x its duration


@dataclass
class LoadSpec:
    endpoint: Endpoint
    requests: list[bytes]  # cycled; built once
    duration_s: float
    warmup_s: float
    min_requests: int = 0
    timeout_s: float = 30.0
    progress: Callable[[int, float], None] | None = None  # (requests done, seconds since start)


@dataclass
class LoadResult:
    scheduled: np.ndarray
    sent: np.ndarray
    done: np.ndarray
    status: np.ndarray
    measure_start: float
    measure_end: float
    cpu_fraction: float
    missed_slots: int = 0
    extras: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Figures over the requests due in the measured window; warm-up requests are left out."""
        measured = self.scheduled >= self.measure_start
        good = measured & (self.status == 200)
        elapsed = self.measure_end - self.measure_start
        latency, service = (self.done - self.scheduled)[good], (self.done - self.sent)[good]
        in_window = good & (self.done <= self.measure_end)
        window_s = window_length(elapsed)
        per_window = windows(self.done[in_window], (self.done - self.scheduled)[in_window],
                             self.measure_start, self.measure_end, window_s)
        codes, counts = np.unique(self.status[measured & (self.status != 200)], return_counts=True)
        names = {STATUS_CONNECTION: "connection", STATUS_TIMEOUT: "timeout"}
        return {
            "requests": int(measured.sum()), "good": int(good.sum()),
            "errors": {names.get(int(c), str(int(c))): int(n) for c, n in zip(codes, counts)},
            "throughput_rps": float(in_window.sum() / elapsed), "measured_s": elapsed,
            "latency_ms": summarize(latency), "service_time_ms": summarize(service),
            "window_s": window_s, "windows": per_window, "stability": stability(per_window),
            "missed_slots": self.missed_slots, "generator_cpu": self.cpu_fraction, **self.extras,
            "raw_latency_us": np.round(latency * 1e6).astype(int).tolist(),
        }


class _Recorder:
    def __init__(self):
        self.scheduled, self.sent, self.done, self.status = [], [], [], []

    def add(self, scheduled: float, sent: float, done: float, status: int) -> None:
        self.scheduled.append(scheduled)
        self.sent.append(sent)
        self.done.append(done)
        self.status.append(status)

    def result(self, origin: float, start: float, end: float, cpu: float, **kw) -> LoadResult:
        as_array = lambda xs: np.asarray(xs, np.float64) - origin  # noqa: E731
        return LoadResult(as_array(self.scheduled), as_array(self.sent), as_array(self.done),
                          np.asarray(self.status, np.int32), start - origin, end - origin, cpu, **kw)


class _Client:
    """One keep-alive connection that reconnects when it breaks; times out stuck requests."""

    def __init__(self, endpoint: Endpoint, timeout_s: float):
        self.endpoint, self.timeout_s = endpoint, timeout_s
        self.conn: Connection | None = None
        self.deadline = float("inf")
        self.timed_out = False

    async def request(self, payload: bytes) -> int:
        try:
            if self.conn is None or self.conn.closed:
                # an Endpoint speaks HTTP; a GrpcEndpoint (load/grpc_client.py) opens its own connections
                grpc = hasattr(self.endpoint, "connect")
                self.conn = await (self.endpoint.connect() if grpc else connect(self.endpoint))
            self.deadline = time.perf_counter() + self.timeout_s
            return await self.conn.send(payload)
        except (ConnectionError, OSError):
            self.conn = None
            status = STATUS_TIMEOUT if self.timed_out else STATUS_CONNECTION
            self.timed_out = False
            if status == STATUS_CONNECTION:
                await asyncio.sleep(ERROR_BACKOFF_S)
            return status
        finally:
            self.deadline = float("inf")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.transport.close()

    def expire(self, now: float) -> None:
        if now > self.deadline and self.conn is not None:
            self.timed_out = True
            self.conn.transport.close()


async def _watch(clients, spec: LoadSpec, origin: float, count: Callable[[], int], stop: asyncio.Event):
    while not stop.is_set():
        now = time.perf_counter()
        for client in clients:
            client.expire(now)
        if spec.progress:
            spec.progress(count(), now - origin)
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except TimeoutError:
            pass


async def closed_loop(spec: LoadSpec, concurrency: int) -> LoadResult:
    recorder, stop = _Recorder(), asyncio.Event()
    clients = [_Client(spec.endpoint, spec.timeout_s) for _ in range(concurrency)]
    origin = time.perf_counter()
    start = origin + spec.warmup_s
    finished = False

    async def worker(index: int, client: _Client):
        i = index
        while not finished:
            sent = time.perf_counter()
            status = await client.request(spec.requests[i % len(spec.requests)])
            recorder.add(sent, sent, time.perf_counter(), status)
            i += concurrency

    watcher = asyncio.ensure_future(_watch(clients, spec, origin, lambda: len(recorder.done), stop))
    workers = [asyncio.ensure_future(worker(i, c)) for i, c in enumerate(clients)]
    await asyncio.sleep(spec.warmup_s)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    first_measured = len(recorder.done)
    end_by, hard_end = start + spec.duration_s, start + spec.duration_s * MAX_EXTENSION
    while True:
        await asyncio.sleep(min(0.05, max(0.0, end_by - time.perf_counter())))
        now = time.perf_counter()
        if now >= hard_end or (now >= end_by and len(recorder.done) - first_measured >= spec.min_requests):
            break
    end = time.perf_counter()
    cpu = (time.process_time() - cpu0) / (end - wall0)
    finished = True
    await asyncio.gather(*workers)
    stop.set()
    await watcher
    for client in clients:
        client.close()
    return recorder.result(origin, start, end, cpu)


async def open_loop(spec: LoadSpec, rate: float, seed: int = 0, max_in_flight: int = 1024) -> LoadResult:
    duration = max(spec.duration_s, spec.min_requests / rate)
    arrivals = poisson_arrivals(rate, spec.warmup_s + duration, seed)
    recorder, stop = _Recorder(), asyncio.Event()
    idle: list[_Client] = []
    clients: list[_Client] = []
    slots = asyncio.Semaphore(max_in_flight)
    late = 0
    origin = time.perf_counter()

    async def fire(i: int, due: float):
        nonlocal late
        async with slots:
            client = idle.pop() if idle else None
            if client is None:
                client = _Client(spec.endpoint, spec.timeout_s)
                clients.append(client)
            # Never before it is due: the scheduler sends under a tick early and uvloop's sleep can
            # wake early, which made latency (done - due) shorter than the service time, even negative.
            while (early := due - time.perf_counter()) > 0:
                await asyncio.sleep(early if early > 0.001 else 0)
            sent = time.perf_counter()
            if sent - due > LATE_SLOT_S and due >= origin + spec.warmup_s:
                late += 1
            status = await client.request(spec.requests[i % len(spec.requests)])
            recorder.add(due, sent, time.perf_counter(), status)
            idle.append(client)

    watcher = asyncio.ensure_future(_watch(clients, spec, origin, lambda: len(recorder.done), stop))
    tasks = []
    cpu0 = wall0 = None
    for i, offset in enumerate(arrivals):
        due = origin + offset
        if cpu0 is None and offset >= spec.warmup_s:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        wait = due - time.perf_counter()
        if wait > 0.001:
            await asyncio.sleep(wait)
        elif i % 64 == 0:
            await asyncio.sleep(0)  # let responses in even when the schedule is behind
        tasks.append(asyncio.ensure_future(fire(i, due)))
    end = origin + spec.warmup_s + duration
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    cpu = (time.process_time() - (cpu0 or time.process_time())) / max(1e-9, time.perf_counter() - (wall0 or end))
    await asyncio.gather(*tasks)
    stop.set()
    await watcher
    for client in clients:
        client.close()
    return recorder.result(origin, origin + spec.warmup_s, end, cpu, missed_slots=late,
                           extras={"scheduled_requests": int((arrivals >= spec.warmup_s).sum())})


def run(coro):
    """Run a scenario on uvloop: the stock asyncio loop costs the generator about half its rate."""
    import uvloop

    return uvloop.run(coro)
