from workbench.serving.metrics import Counter, Histogram, ServerMetrics


def test_histogram_buckets_are_cumulative():
    h = Histogram("h", "help text", (1, 2, 5))
    for value in (0.5, 1, 3, 10):
        h.observe(value, model="a")
    assert h.render() == [
        "# HELP h help text", "# TYPE h histogram",
        'h_bucket{model="a",le="1"} 2', 'h_bucket{model="a",le="2"} 2', 'h_bucket{model="a",le="5"} 3',
        'h_bucket{model="a",le="+Inf"} 4', 'h_sum{model="a"} 14.5', 'h_count{model="a"} 4',
    ]


def test_histogram_keeps_label_sets_apart_and_works_without_labels():
    h = Histogram("h", "help", (1,))
    h.observe(2, model="b")
    h.observe(0.5, model="a")
    lines = h.render()
    assert lines.index('h_bucket{model="a",le="1"} 1') < lines.index('h_bucket{model="b",le="1"} 0')
    assert 'h_count{model="b"} 1' in lines
    bare = Histogram("g", "help", (1,))
    bare.observe(0.5)
    assert bare.render()[2:] == ['g_bucket{le="1"} 1', 'g_bucket{le="+Inf"} 1', "g_sum{} 0.5", "g_count{} 1"]


def test_counter_renders_labels():
    c = Counter("c_total", "requests")
    c.inc(model="m", status=200)
    c.inc(model="m", status=200)
    c.inc(3, status=503, model="m")
    assert c.render() == ["# HELP c_total requests", "# TYPE c_total counter",
                          'c_total{model="m",status="200"} 2.0', 'c_total{model="m",status="503"} 3.0']


def test_server_metrics_include_queue_depth_gauge():
    metrics = ServerMetrics()
    metrics.requests.inc(model="resnet", status=200)
    metrics.batch.observe(3, model="resnet")
    text = metrics.render({"resnet": 3, "bert": 0})
    lines = text.splitlines()
    assert text.endswith("\n")
    assert "# TYPE workbench_queue_depth gauge" in lines
    assert 'workbench_queue_depth{model="resnet"} 3' in lines and 'workbench_queue_depth{model="bert"} 0' in lines
    assert 'workbench_requests_total{model="resnet",status="200"} 1.0' in lines
    assert 'workbench_batch_size_bucket{model="resnet",le="4"} 1' in lines


def test_an_answered_inference_counts_in_success_and_every_phase_at_once_a_refusal_in_fail_only():
    from workbench.serving.metrics import InferTimes

    metrics = ServerMetrics()
    metrics.answered("mlp", 0.004, InferTimes(decode=0.0001, queue=0.001, compute=0.002, encode=0.0002))
    metrics.failed.observe(0.0003, model="mlp")
    durations = metrics.durations("mlp")
    assert {k: count for k, (count, _) in durations.items()} == {
        "success": 1, "fail": 1, "queue": 1, "compute_input": 1, "compute_infer": 1, "compute_output": 1}
    assert durations["compute_infer"][1] == 0.002 and durations["compute_input"][1] == 0.0001
    assert metrics.last_inference_ms["mlp"] > 0
