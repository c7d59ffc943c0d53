"""Which tuning sessions describe a build: the rule behind the report's cumulative tuning curve."""

from workbench.compiler.tasks import same_kernels


def test_a_session_matches_a_build_with_the_same_kernels_at_a_shared_batch():
    assert same_kernels({"1": "a"}, {"1": "a", "8": "b"})
    assert same_kernels({"1": "a", "8": "b"}, {"1": "a", "8": "b"})


def test_kernels_lowered_differently_since_do_not_match():
    assert not same_kernels({"1": "old"}, {"1": "new"})
    assert not same_kernels({"1": "a", "8": "old"}, {"1": "a", "8": "new"})


def test_no_shared_batch_size_is_no_match():
    assert not same_kernels({"8": "b"}, {"1": "a"})


def test_sessions_from_before_digests_match_only_builds_from_before_them():
    assert not same_kernels(None, {"1": "a"})
    assert not same_kernels({}, {"1": "a"})
    assert same_kernels(None, None) and same_kernels({"1": "a"}, None)
