import asyncio

import numpy as np
import pytest

from workbench.serving.batcher import Batch, Batcher, BatchPolicy, BatchQueue, BatchTooLarge, Pending, QueueFull


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_queue(max_batch=4, max_delay_s=0.01, max_queue_rows=8, batch_sizes=None):
    clock = FakeClock()
    return BatchQueue(BatchPolicy(max_batch, max_delay_s, max_queue_rows, batch_sizes), clock=clock), clock


def x(rows, value=1.0):
    return {"x": np.full((rows, 2), value, np.float32)}


def test_empty_queue_has_nothing_due():
    q, _ = make_queue()
    assert q.wait_s() is None


def test_due_when_rows_reach_max_batch():
    q, _ = make_queue(max_batch=4)
    q.put(x(2), 2)
    assert q.wait_s() > 0
    q.put(x(2), 2)
    assert q.wait_s() == 0


def test_due_once_the_oldest_has_waited_max_delay():
    q, clock = make_queue(max_delay_s=0.01)
    q.put(x(1), 1)
    assert q.wait_s() == pytest.approx(0.01)
    clock.now = 0.006
    q.put(x(1), 1)
    assert q.wait_s() == pytest.approx(0.004)
    clock.now = 0.01
    assert q.wait_s() == 0
    clock.now = 0.5
    assert q.wait_s() == 0


def test_take_oldest_first_and_never_over_max_batch():
    q, _ = make_queue(max_batch=4)
    for name, rows in (("a", 1), ("b", 2), ("c", 2)):
        q.put(x(rows), rows, handle=name)
    batch = q.take()
    assert [i.handle for i in batch.items] == ["a", "b"] and batch.rows == 3
    assert len(q) == 1 and q.rows == 2
    batch = q.take()
    assert [i.handle for i in batch.items] == ["c"] and batch.rows == 2
    assert len(q) == 0 and q.rows == 0


@pytest.mark.parametrize("rows, size", [(1, 1), (2, 8), (3, 8), (8, 8), (9, 32), (32, 32)])
def test_padding_to_the_next_compiled_size(rows, size):
    policy = BatchPolicy(32, 0.01, 64, batch_sizes=(1, 8, 32))
    assert policy.padded(rows) == size
    q = BatchQueue(policy, clock=FakeClock())
    q.put(x(rows), rows)
    assert q.take().size == size


def test_no_compiled_sizes_means_no_padding():
    assert BatchPolicy(16, 0.01, 16).padded(5) == 5


def test_assemble_concatenates_and_pads_with_zeros():
    a = Pending({"x": np.array([[1, 2]], np.int32), "y": np.array([7.0])}, 1, 0.0)
    b = Pending({"x": np.array([[3, 4], [5, 6]], np.int32), "y": np.array([8.0, 9.0])}, 2, 0.0)
    inputs = Batch([a, b], rows=3, size=4).assemble()
    assert inputs["x"].dtype == np.int32
    assert inputs["x"].tolist() == [[1, 2], [3, 4], [5, 6], [0, 0]]
    assert inputs["y"].tolist() == [7.0, 8.0, 9.0, 0.0]


def test_assemble_single_request_without_padding():
    a = Pending(x(2, 3.0), 2, 0.0)
    assert np.array_equal(Batch([a], rows=2, size=2).assemble()["x"], np.full((2, 2), 3.0))


def test_split_gives_each_request_its_rows_and_drops_padding():
    batch = Batch([Pending(x(1), 1, 0.0), Pending(x(2), 2, 0.0)], rows=3, size=8)
    out = np.arange(8 * 3).reshape(8, 3)
    first, second = batch.split([out, out[:, 0]])
    assert first[0].tolist() == [[0, 1, 2]] and first[1].tolist() == [0]
    assert second[0].tolist() == [[3, 4, 5], [6, 7, 8]] and second[1].tolist() == [3, 6]


def test_queue_full_leaves_the_queue_unchanged():
    q, _ = make_queue(max_batch=4, max_queue_rows=5)
    q.put(x(4), 4)
    with pytest.raises(QueueFull):
        q.put(x(2), 2)
    assert q.rows == 4 and len(q) == 1
    q.put(x(1), 1)
    assert q.rows == 5


def test_request_over_max_batch_refused():
    q, _ = make_queue(max_batch=4)
    with pytest.raises(BatchTooLarge, match="5 rows"):
        q.put(x(5), 5)
    assert q.rows == 0 and len(q) == 0


@pytest.mark.parametrize("args", [
    (0, 0.01, 8, None), (4, -0.001, 8, None), (4, 0.01, 3, None), (16, 0.01, 32, (1, 8)),
])
def test_policy_validation(args):
    with pytest.raises(ValueError):
        BatchPolicy(*args)


POLICY = BatchPolicy(max_batch=4, max_delay_s=0.005, max_queue_rows=16, batch_sizes=(1, 4))
HANG_GUARD_S = 30  # a lost answer fails the test instead of blocking the run


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, HANG_GUARD_S))


def test_batcher_answers_each_request_with_its_own_rows():
    sizes = []

    async def main():
        batcher = Batcher(lambda inputs: [inputs["x"] * 2], POLICY, observe=lambda b, q, c: sizes.append(b.size))
        batcher.start()
        try:
            xs = [np.full((1, 3), i, np.float32) for i in (1, 2, 3)]
            return xs, await asyncio.gather(*(batcher.infer({"x": v}, 1) for v in xs))
        finally:
            await batcher.stop()

    xs, answers = run(main())
    for v, answer in zip(xs, answers):
        assert len(answer) == 1 and answer[0].shape == (1, 3)
        assert np.array_equal(answer[0], v * 2)
    assert sizes and set(sizes) <= {1, 4}


def test_batcher_engine_failure_fails_the_request_and_keeps_serving():
    calls = []

    def engine(inputs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("engine exploded")
        return [inputs["x"] * 2]

    async def main():
        batcher = Batcher(engine, POLICY)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="engine exploded"):
                await batcher.infer(x(1, 5.0), 1)
            return await batcher.infer(x(1, 5.0), 1)
        finally:
            await batcher.stop()

    answer = run(main())
    assert np.array_equal(answer[0], np.full((1, 2), 10.0)) and len(calls) == 2


def test_infer_timed_gives_each_request_its_queue_wait_and_its_batchs_engine_time():
    seen = []  # (oldest request's queue wait, engine time) per batch, as the observer sees them

    async def main():
        batcher = Batcher(lambda inputs: [inputs["x"] * 2], POLICY, observe=lambda b, q, c: seen.append((q, c)))
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.infer_timed(x(1, float(i)), 1) for i in range(6)))
        finally:
            await batcher.stop()

    answers = run(main())
    computes = {c for _, c in seen}
    for i, (outputs, queue_s, compute_s) in enumerate(answers):
        assert np.array_equal(outputs[0], np.full((1, 2), 2.0 * i))
        assert queue_s >= 0 and compute_s in computes
    assert seen[0] in {(q, c) for _, q, c in answers}  # the first batch's oldest request: the observer's wait


def test_a_full_batch_of_one_shape_never_starves_a_due_request_of_another():
    # One seq-8 request, then a full pair of seq-16 each second, one batch taken per second (a busy
    # engine): the seq-8 request leaves at the first take after its max_delay, not never.
    q, clock = make_queue(max_batch=2, max_delay_s=0.01, max_queue_rows=64)
    q.put({"x": np.zeros((1, 8), np.float32)}, 1, handle="seq8")
    taken = []
    for second in range(1, 6):
        clock.now = float(second)
        for _ in range(2):
            q.put({"x": np.zeros((1, 16), np.float32)}, 1, handle=f"seq16@{second}")
        assert q.wait_s() == 0
        taken.append([i.handle for i in q.take().items])
    assert taken[0] == ["seq8"]
    assert taken[1] == ["seq16@1", "seq16@1"]  # then the oldest due shape, in arrival order


def test_wait_s_is_the_earliest_due_time_over_the_shapes():
    q, clock = make_queue(max_batch=2, max_delay_s=0.01)
    q.put({"x": np.zeros((1, 8), np.float32)}, 1)
    clock.now = 0.004
    q.put({"x": np.zeros((1, 16), np.float32)}, 1)
    assert q.wait_s() == pytest.approx(0.006)
    q.put({"x": np.zeros((1, 16), np.float32)}, 1)  # seq 16 fills a batch: due now
    assert q.wait_s() == 0
    assert q.take().rows == 2 and q.wait_s() == pytest.approx(0.006)


def test_unbatched_inputs_are_sent_whole_and_only_equal_ones_share_a_batch():
    clock = FakeClock()
    policy = BatchPolicy(8, 0.01, 16, whole_inputs=frozenset({"scale"}), whole_outputs=frozenset({1}))
    q = BatchQueue(policy, clock=clock)
    for rows, scale in ((1, 2.0), (2, 3.0), (3, 2.0)):
        q.put({"x": np.full((rows, 2), scale, np.float32), "scale": np.array([scale], np.float32)}, rows)
    clock.now = 1.0
    batch = q.take()  # the oldest's scale, 2.0: the first and third requests
    assert batch.rows == 4 and [item.rows for item in batch.items] == [1, 3]
    assembled = batch.assemble()
    assert assembled["x"].shape == (4, 2) and assembled["scale"].tolist() == [2.0]
    y, shift = np.arange(8, dtype=np.float32).reshape(4, 2), np.array([3.0], np.float32)
    (y1, s1), (y3, s3) = batch.split([y, shift])
    assert y1.shape == (1, 2) and y3.shape == (3, 2) and s1.tolist() == s3.tolist() == [3.0]
    assert q.take().rows == 2  # the request with scale 3.0, alone
