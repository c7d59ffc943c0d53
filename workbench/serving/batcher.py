"""Dynamic batching: requests queue up and leave as one engine call in a compiled batch size.

`BatchQueue` is pure (the clock is injected) so the rules are unit-tested with a fake clock:
- a batch leaves when it holds `max_batch` rows, or when its oldest request has waited `max_delay_s`;
- a batch is padded up to the next size the engine was compiled for, and the padding is cut off
  the answers;
- a batch holds requests of one shape only (less the batch: a --dims build's sequence lengths);
  a shape is due when it fills a batch or its oldest request has waited `max_delay_s`, and of the
  due shapes the one with the oldest request leaves first, so no shape starves another;
- the queue is bounded in rows: a request that does not fit is refused (the server answers 503),
  so a burst far above capacity cannot grow memory without bound.
`Batcher` drives a queue from asyncio and runs the engine on one worker thread, so the event loop
keeps accepting requests while a batch computes and the next batch forms meanwhile.
"""

import asyncio
import time
from bisect import bisect_left
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from workbench.dims import signature

# An engine call this short costs less than handing it to the worker thread and back, so it runs
# on the event loop (the loop stalls for at most this long per batch).
INLINE_BELOW_S = 0.0002


class QueueFull(Exception):
    """The bounded queue cannot take the request now; the client should retry later."""


class BatchTooLarge(ValueError):
    """A single request holds more rows than the largest batch the engine can run."""


def largest_batch(requested: int, compiled: tuple[int, ...] | list[int] | None) -> int:
    """The largest batch a server runs: what was asked, capped at the largest compiled size."""
    return min(requested, max(compiled)) if compiled else requested


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int
    max_delay_s: float
    max_queue_rows: int
    batch_sizes: tuple[int, ...] | None = None  # compiled sizes; None: any size up to max_batch
    # Inputs every request sends whole (not batched: a scale, a shape) and outputs every request gets
    # whole (by position): never joined or cut; requests share a batch only when those inputs are equal
    whole_inputs: frozenset = frozenset()
    whole_outputs: frozenset = frozenset()

    def __post_init__(self):
        if self.max_batch < 1 or self.max_delay_s < 0 or self.max_queue_rows < self.max_batch:
            raise ValueError("max_batch >= 1, max_delay_s >= 0 and max_queue_rows >= max_batch are required")
        if self.batch_sizes is not None and max(self.batch_sizes) < self.max_batch:
            raise ValueError(f"max_batch {self.max_batch} is larger than every compiled size {self.batch_sizes}")

    def padded(self, rows: int) -> int:
        """The batch size a group of `rows` rows runs at: the next compiled size up."""
        if self.batch_sizes is None:
            return rows
        sizes = sorted(self.batch_sizes)
        return sizes[bisect_left(sizes, rows)]


@dataclass
class Pending:
    inputs: dict[str, np.ndarray]
    rows: int
    enqueued: float
    handle: Any = None  # what the driver needs to answer this request (an asyncio future)
    queue_s: float = 0.0  # set by Batcher before it answers: the time this request waited for its batch,
    compute_s: float = 0.0  # and the engine time of that batch
    shape: tuple = ()  # its signature: only requests of one shape share a batch


@dataclass
class Batch:
    items: list[Pending]
    rows: int
    size: int  # rows after padding
    whole_inputs: frozenset = frozenset()
    whole_outputs: frozenset = frozenset()

    def assemble(self) -> dict[str, np.ndarray]:
        """Concatenate the requests along the batch axis and pad with zeros up to `size`; an input
        sent whole is the same in every request of the batch, so the first one's is the batch's."""
        assembled = {}
        for name, first in self.items[0].inputs.items():
            if name in self.whole_inputs:
                assembled[name] = first
                continue
            parts = [item.inputs[name] for item in self.items]
            if self.size > self.rows:
                first = parts[0]
                parts.append(np.zeros((self.size - self.rows, *first.shape[1:]), first.dtype))
            assembled[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return assembled

    def split(self, outputs: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Each request's slice of every output; the padding rows are dropped."""
        answers, start = [], 0
        for item in self.items:
            answers.append([out if i in self.whole_outputs else out[start:start + item.rows]
                            for i, out in enumerate(outputs)])
            start += item.rows
        return answers


@dataclass
class BatchQueue:
    policy: BatchPolicy
    clock: Callable[[], float] = time.monotonic
    # One deque per request shape (a model without --dims has one), so taking a batch touches only
    # its own requests: O(batch), not O(queue), on the event loop.
    _queues: dict = field(default_factory=dict)  # signature -> deque of Pending, oldest first
    _shape_rows: dict = field(default_factory=dict)  # signature -> rows waiting with that shape
    _rows: int = 0
    _count: int = 0

    def __len__(self) -> int:
        return self._count

    @property
    def rows(self) -> int:
        return self._rows

    def put(self, inputs: dict[str, np.ndarray], rows: int, handle: Any = None, shape: tuple | None = None) -> Pending:
        if rows > self.policy.max_batch:
            raise BatchTooLarge(f"a request holds {rows} rows; the largest batch is {self.policy.max_batch}")
        if self._rows + rows > self.policy.max_queue_rows:
            raise QueueFull(f"queue full ({self._rows} rows waiting)")
        shape = signature(inputs) if shape is None else shape
        if self.policy.whole_inputs:  # requests join a batch only when their whole inputs are equal
            shape = (shape, tuple(inputs[n].tobytes() for n in sorted(self.policy.whole_inputs) if n in inputs))
        item = Pending(inputs, rows, self.clock(), handle, shape=shape)
        self._queues.setdefault(item.shape, deque()).append(item)
        self._shape_rows[item.shape] = self._shape_rows.get(item.shape, 0) + rows
        self._rows += rows
        self._count += 1
        return item

    def _due_at(self, shape) -> float:
        """When this shape's batch is due: now if it fills a batch, else when its oldest has waited max_delay."""
        if self._shape_rows[shape] >= self.policy.max_batch:
            return float("-inf")
        return self._queues[shape][0].enqueued + self.policy.max_delay_s

    def wait_s(self) -> float | None:
        """Seconds until a batch is due (0: due now), or None when the queue is empty."""
        if not self._count:
            return None
        return max(0.0, min(map(self._due_at, self._queues)) - self.clock())

    def take(self) -> Batch:
        """The oldest requests of one shape that fit in one batch, in arrival order. Of the shapes
        due now (full, or waited max_delay) the one whose oldest request is oldest: a full batch of
        one shape never jumps a request of another that has waited its max_delay (starvation)."""
        now = self.clock()
        due = [s for s in self._queues if self._due_at(s) <= now]
        shape = min(due or self._queues, key=lambda s: self._queues[s][0].enqueued)
        queue, items, rows = self._queues[shape], [], 0
        while queue and rows + queue[0].rows <= self.policy.max_batch:
            item = queue.popleft()
            items.append(item)
            rows += item.rows
        if not queue:
            del self._queues[shape], self._shape_rows[shape]
        else:
            self._shape_rows[shape] -= rows
        self._rows -= rows
        self._count -= len(items)
        return Batch(items, rows, self.policy.padded(rows), self.policy.whole_inputs, self.policy.whole_outputs)


class Batcher:
    """Feeds an engine from a BatchQueue; `observe(batch, queue_s, compute_s)` sees every batch (queue_s:
    the wait of its oldest request), `infer_timed` gives a request's own queue and compute time."""

    def __init__(self, engine: Callable, policy: BatchPolicy, observe: Callable | None = None):
        self.queue = BatchQueue(policy)
        self._engine = engine
        self._observe = observe
        self._wake = asyncio.Event()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._task: asyncio.Task | None = None
        self._compute_ema_s = float("inf")  # unknown: use the worker thread until measured
        self._on_loop = getattr(engine, "on_loop_thread", False)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._worker.shutdown(wait=True)

    async def infer(self, inputs: dict[str, np.ndarray], rows: int) -> list[np.ndarray]:
        return (await self.infer_timed(inputs, rows))[0]

    async def infer_timed(self, inputs: dict[str, np.ndarray], rows: int,
                          shape: tuple | None = None) -> tuple[list[np.ndarray], float, float]:
        """The request's outputs, the seconds it waited in the queue and the engine seconds of its batch;
        `shape`: its signature when the caller has it already."""
        future = asyncio.get_running_loop().create_future()
        item = self.queue.put(inputs, rows, future, shape)  # raises QueueFull / BatchTooLarge before anything waits
        self._wake.set()
        outputs = await future
        return outputs, item.queue_s, item.compute_s

    def _timed(self, inputs):
        started = time.perf_counter()
        outputs = self._engine(inputs)
        return outputs, time.perf_counter() - started

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self.queue.wait_s()
            if wait is None or wait > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            batch = self.queue.take()
            started = time.monotonic()
            try:
                if self._on_loop or self._compute_ema_s < INLINE_BELOW_S:
                    outputs, compute_s = self._timed(batch.assemble())
                else:
                    outputs, compute_s = await loop.run_in_executor(self._worker, self._timed, batch.assemble())
            except Exception as exc:  # an engine failure fails this batch's requests, not the server
                for item in batch.items:
                    if not item.handle.done():
                        item.handle.set_exception(exc)
                continue
            ema = self._compute_ema_s
            self._compute_ema_s = compute_s if ema == float("inf") else 0.9 * ema + 0.1 * compute_s
            if self._observe:
                self._observe(batch, started - batch.items[0].enqueued, compute_s)
            for item, answer in zip(batch.items, batch.split(outputs)):
                item.queue_s, item.compute_s = started - item.enqueued, compute_s
                if not item.handle.done():
                    item.handle.set_result(answer)
            await asyncio.sleep(0)  # after a batch run on this thread: let answers out and requests in
