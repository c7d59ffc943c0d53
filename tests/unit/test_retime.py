"""Re-timing the best records side by side: the interleaving and the median."""

from workbench.compiler.retime import interleaved_medians


def test_timings_are_interleaved_and_the_median_counts():
    order = []

    def timer(name, values):
        it = iter(values)
        return lambda: order.append(name) or next(it)

    medians = interleaved_medians({0: timer("a", [5, 1, 2]), 1: timer("b", [3, 3, 90])}, rounds=3)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert medians == {0: 2, 1: 3}
