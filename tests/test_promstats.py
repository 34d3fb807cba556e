"""Server-side arithmetic: parsing /metrics, rates, error rate, histogram quantiles, resets."""

from __future__ import annotations

import math

from dataclasses import replace

import pytest

from collector.promstats import (
    SERVER_KEYS, ScrapeError, Snapshot, histogram_quantile, incidents_between, increase, parse_snapshot,
    server_stats,
)

# Scrape at t=100, single-process layout (with the _created gauges prometheus_client adds).
# Series: api.index 200 (70), api.product 200 (30), api.product 500 (4), None 404 (6).
PREV = """\
# HELP flask_exporter_info Information about the Prometheus Flask exporter
# TYPE flask_exporter_info gauge
flask_exporter_info{version="0.23.2"} 1.0
# HELP flask_http_request_duration_seconds Flask HTTP request duration in seconds
# TYPE flask_http_request_duration_seconds histogram
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.05",method="GET",status="200"} 40.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.1",method="GET",status="200"} 60.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.25",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.5",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="1.0",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="+Inf",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_count{endpoint="api.index",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_sum{endpoint="api.index",method="GET",status="200"} 3.5
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.05",method="GET",status="200"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.1",method="GET",status="200"} 10.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.25",method="GET",status="200"} 20.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.5",method="GET",status="200"} 30.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="1.0",method="GET",status="200"} 30.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="+Inf",method="GET",status="200"} 30.0
flask_http_request_duration_seconds_count{endpoint="api.product",method="GET",status="200"} 30.0
flask_http_request_duration_seconds_sum{endpoint="api.product",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.05",method="GET",status="500"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.1",method="GET",status="500"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.25",method="GET",status="500"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.5",method="GET",status="500"} 2.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="1.0",method="GET",status="500"} 4.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="+Inf",method="GET",status="500"} 4.0
flask_http_request_duration_seconds_count{endpoint="api.product",method="GET",status="500"} 4.0
flask_http_request_duration_seconds_sum{endpoint="api.product",method="GET",status="500"} 3.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.05",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.1",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.25",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.5",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="1.0",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="+Inf",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_count{endpoint="None",method="GET",status="404"} 6.0
flask_http_request_duration_seconds_sum{endpoint="None",method="GET",status="404"} 0.06
# HELP flask_http_request_duration_seconds_created Flask HTTP request duration in seconds
# TYPE flask_http_request_duration_seconds_created gauge
flask_http_request_duration_seconds_created{endpoint="api.index",method="GET",status="200"} 1.7e+09
flask_http_request_duration_seconds_created{endpoint="api.product",method="GET",status="200"} 1.7e+09
flask_http_request_duration_seconds_created{endpoint="api.product",method="GET",status="500"} 1.7e+09
flask_http_request_duration_seconds_created{endpoint="None",method="GET",status="404"} 1.7e+09
# HELP flask_http_request_total Total number of HTTP requests
# TYPE flask_http_request_total counter
flask_http_request_total{method="GET",status="200"} 100.0
flask_http_request_total{method="GET",status="500"} 4.0
flask_http_request_total{method="GET",status="404"} 6.0
# HELP flask_http_request_created Total number of HTTP requests
# TYPE flask_http_request_created gauge
flask_http_request_created{method="GET",status="200"} 1.7e+09
flask_http_request_created{method="GET",status="500"} 1.7e+09
flask_http_request_created{method="GET",status="404"} 1.7e+09
# HELP flask_http_request_exceptions_total Total number of HTTP requests which resulted in an exception
# TYPE flask_http_request_exceptions_total counter
# HELP lab_http_requests_in_flight Requests being served right now
# TYPE lab_http_requests_in_flight gauge
lab_http_requests_in_flight 1.0
# HELP lab_target_workers Live worker processes of the target
# TYPE lab_target_workers gauge
lab_target_workers 2.0
# HELP lab_fault_active 1 while a fault of this kind is injected
# TYPE lab_fault_active gauge
lab_fault_active{kind="latency"} 0.0
lab_fault_active{kind="errors"} 0.0
lab_fault_active{kind="cpu"} 0.0
lab_fault_active{kind="memory"} 0.0
# HELP lab_fault_intensity Intensity 0..1 of the injected fault
# TYPE lab_fault_intensity gauge
lab_fault_intensity{kind="latency"} 0.0
lab_fault_intensity{kind="errors"} 0.0
lab_fault_intensity{kind="cpu"} 0.0
lab_fault_intensity{kind="memory"} 0.0
"""

# The next scrape, gunicorn multiprocess layout (sum first, no _created, in-flight per
# worker). In the interval: index +50, product 200 +40, product 500 +5, 404 +5 = 100
# requests, 5 of them 5xx. Summed bucket increases: 0.05:25 0.1:45 0.25:75 0.5:95 1:98 +Inf:100.
CUR = """\
# HELP lab_http_requests_in_flight Multiprocess metric
# TYPE lab_http_requests_in_flight gauge
lab_http_requests_in_flight{pid="101"} 1.0
lab_http_requests_in_flight{pid="102"} 2.0
# HELP lab_target_workers Multiprocess metric
# TYPE lab_target_workers gauge
lab_target_workers 2.0
# HELP flask_http_request_total Multiprocess metric
# TYPE flask_http_request_total counter
flask_http_request_total{method="GET",status="200"} 190.0
flask_http_request_total{method="GET",status="404"} 11.0
flask_http_request_total{method="GET",status="500"} 9.0
# HELP flask_http_request_duration_seconds Multiprocess metric
# TYPE flask_http_request_duration_seconds histogram
flask_http_request_duration_seconds_sum{endpoint="api.index",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.05",method="GET",status="200"} 60.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.1",method="GET",status="200"} 100.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.25",method="GET",status="200"} 120.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.5",method="GET",status="200"} 120.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="1.0",method="GET",status="200"} 120.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="+Inf",method="GET",status="200"} 120.0
flask_http_request_duration_seconds_count{endpoint="api.index",method="GET",status="200"} 120.0
flask_http_request_duration_seconds_sum{endpoint="api.product",method="GET",status="200"} 18.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.05",method="GET",status="200"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.1",method="GET",status="200"} 10.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.25",method="GET",status="200"} 40.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.5",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="1.0",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="+Inf",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_count{endpoint="api.product",method="GET",status="200"} 70.0
flask_http_request_duration_seconds_sum{endpoint="api.product",method="GET",status="500"} 11.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.05",method="GET",status="500"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.1",method="GET",status="500"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.25",method="GET",status="500"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="0.5",method="GET",status="500"} 2.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="1.0",method="GET",status="500"} 7.0
flask_http_request_duration_seconds_bucket{endpoint="api.product",le="+Inf",method="GET",status="500"} 9.0
flask_http_request_duration_seconds_count{endpoint="api.product",method="GET",status="500"} 9.0
flask_http_request_duration_seconds_sum{endpoint="None",method="GET",status="404"} 0.11
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.05",method="GET",status="404"} 11.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.1",method="GET",status="404"} 11.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.25",method="GET",status="404"} 11.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="0.5",method="GET",status="404"} 11.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="1.0",method="GET",status="404"} 11.0
flask_http_request_duration_seconds_bucket{endpoint="None",le="+Inf",method="GET",status="404"} 11.0
flask_http_request_duration_seconds_count{endpoint="None",method="GET",status="404"} 11.0
# HELP lab_fault_active 1 while a fault of this kind is injected
# TYPE lab_fault_active gauge
lab_fault_active{kind="latency"} 1.0
lab_fault_active{kind="errors"} 0.0
lab_fault_active{kind="cpu"} 0.0
lab_fault_active{kind="memory"} 0.0
# HELP lab_fault_intensity Intensity 0..1 of the injected fault
# TYPE lab_fault_intensity gauge
lab_fault_intensity{kind="latency"} 0.5
lab_fault_intensity{kind="errors"} 0.0
lab_fault_intensity{kind="cpu"} 0.0
lab_fault_intensity{kind="memory"} 0.0
"""

# The target restarted between scrapes: 7 requests since, 1 of them a 503.
RESTARTED = """\
# TYPE flask_http_request_total counter
flask_http_request_total{method="GET",status="200"} 6.0
flask_http_request_total{method="POST",status="503"} 1.0
# TYPE flask_http_request_duration_seconds histogram
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.05",method="GET",status="200"} 2.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.1",method="GET",status="200"} 4.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.25",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="0.5",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="1.0",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_bucket{endpoint="api.index",le="+Inf",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_count{endpoint="api.index",method="GET",status="200"} 6.0
flask_http_request_duration_seconds_sum{endpoint="api.index",method="GET",status="200"} 0.5
flask_http_request_duration_seconds_bucket{endpoint="api.checkout",le="0.05",method="POST",status="503"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.checkout",le="0.1",method="POST",status="503"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.checkout",le="0.25",method="POST",status="503"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.checkout",le="0.5",method="POST",status="503"} 0.0
flask_http_request_duration_seconds_bucket{endpoint="api.checkout",le="1.0",method="POST",status="503"} 1.0
flask_http_request_duration_seconds_bucket{endpoint="api.checkout",le="+Inf",method="POST",status="503"} 1.0
flask_http_request_duration_seconds_count{endpoint="api.checkout",method="POST",status="503"} 1.0
flask_http_request_duration_seconds_sum{endpoint="api.checkout",method="POST",status="503"} 0.8
# TYPE lab_http_requests_in_flight gauge
lab_http_requests_in_flight 0.0
"""

INF = math.inf


@pytest.fixture
def prev() -> Snapshot:
    return parse_snapshot(PREV, 100.0)


# ------------------------------------------------------------------ parse_snapshot
def test_parse_sums_the_counter_over_labels_and_splits_5xx(prev):
    assert prev.t == 100.0
    assert prev.requests_total == 110.0
    assert prev.requests_5xx == 4.0           # 404 is not a server error
    assert prev.exceptions_total == 0.0       # declared, no series yet


def test_parse_sums_histogram_buckets_over_endpoints_and_statuses(prev):
    assert prev.buckets == {0.05: 46.0, 0.1: 76.0, 0.25: 96.0, 0.5: 108.0, 1.0: 110.0, INF: 110.0}
    assert prev.count == 110.0
    assert prev.sum_s == pytest.approx(12.56)


def test_parse_keeps_per_endpoint_histograms(prev):
    assert set(prev.endpoint_buckets) == {"api.index", "api.product", "None"}
    # api.product is the sum of its 200 and 500 series.
    assert prev.endpoint_buckets["api.product"] == {0.05: 0.0, 0.1: 10.0, 0.25: 20.0, 0.5: 32.0,
                                                    1.0: 34.0, INF: 34.0}
    assert prev.endpoint_counts == {"api.index": 70.0, "api.product": 34.0, "None": 6.0}


def test_parse_reads_gauges(prev):
    cur = parse_snapshot(CUR, 101.0)
    assert prev.in_flight == 1.0 and prev.workers == 2.0
    assert cur.in_flight == 3.0               # per-worker series are summed
    assert cur.fault_active == {"latency": 1.0, "errors": 0.0, "cpu": 0.0, "memory": 0.0}
    assert cur.fault_intensity["latency"] == 0.5


def test_parse_ignores_created_gauges_and_unrelated_metrics(prev):
    # The _created gauges (~1.7e9) would dwarf every sum if they were counted.
    assert prev.requests_total < 1e6 and prev.count < 1e6


@pytest.mark.parametrize("text", ["", "\n", "# TYPE up gauge\nup 1.0\n"])
def test_parse_missing_metrics_gives_none_and_empty(text):
    snap = parse_snapshot(text, 5.0)
    assert snap == Snapshot(t=5.0)
    assert snap.requests_total is None and snap.requests_5xx is None and snap.in_flight is None
    assert snap.buckets == {} and snap.endpoint_buckets == {} and snap.fault_active == {}
    assert server_stats(snap, parse_snapshot(text, 6.0)) == dict.fromkeys(SERVER_KEYS)


@pytest.mark.parametrize("text", [
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    'flask_http_request_total{method="GET",status="200" 3.0\n',
    "flask_http_request_total{method=\"GET\",status=\"200\"} three\n",
    '# TYPE flask_http_request_duration_seconds histogram\n'
    'flask_http_request_duration_seconds_bucket{le="fast"} 1.0\n',
    '# TYPE flask_http_request_duration_seconds histogram\n'
    'flask_http_request_duration_seconds_bucket{endpoint="a"} 1.0\n',
])
def test_parse_malformed_text_raises_scrape_error(text):
    with pytest.raises(ScrapeError):
        parse_snapshot(text, 1.0)
    assert issubclass(ScrapeError, Exception)


def test_parse_the_real_target_exposition(client):
    for path in ["/", "/", "/products", "/products/99999"]:
        client.get(path)
    snap = parse_snapshot(client.get("/metrics").get_data(as_text=True), 1.0)
    assert snap.requests_total == 4.0 and snap.requests_5xx == 0.0
    assert snap.count == 4.0 and snap.buckets[INF] == 4.0
    assert snap.endpoint_counts["api.index"] == 2.0
    assert snap.workers == 1.0 and snap.in_flight == 0.0
    assert set(snap.fault_active) == {"latency", "errors", "cpu", "memory", "threads"}
    assert snap.incidents == {"worker_killed": 0.0, "pool_exhausted": 0.0}


def test_queue_time_and_incidents_between_real_scrapes(client):
    import time

    first = parse_snapshot(client.get("/metrics").get_data(as_text=True), 1.0)
    stamp = int((time.time() - 0.25) * 1e6)          # sent a quarter of a second ago
    for _ in range(4):
        client.get("/", headers={"X-Request-Start": f"t={stamp}"})
    second = parse_snapshot(client.get("/metrics").get_data(as_text=True), 2.0)
    stats = server_stats(first, second)
    assert 200.0 <= stats["srv_queue_p95_ms"] <= 400.0
    assert incidents_between(first, second) == "none"
    killed = replace(second, incidents={**second.incidents, "worker_killed": 1.0})
    assert incidents_between(second, killed) == "worker_killed"
    assert incidents_between(None, killed) is None              # a missing scrape: unknown
    restarted = replace(killed, incidents={"worker_killed": 0.0, "pool_exhausted": 1.0})
    assert incidents_between(killed, restarted) == "pool_exhausted"   # a reset counts from zero


# ------------------------------------------------------------------ server_stats
def test_server_stats_over_one_second(prev):
    stats = server_stats(prev, parse_snapshot(CUR, 101.0))
    assert stats["srv_rps"] == pytest.approx(100.0)
    assert stats["srv_error_rate"] == pytest.approx(0.05)
    # p50: rank 50 in (0.1, 0.25] holding 45..75 -> 0.1 + 0.15 * 5/30 = 0.125 s
    assert stats["srv_latency_p50_ms"] == pytest.approx(125.0)
    # p95: rank 95 is exactly the 0.5 bucket's count -> its upper bound
    assert stats["srv_latency_p95_ms"] == pytest.approx(500.0)
    # p99: rank 99 lies in +Inf (98 below 1.0) -> the highest finite bound
    assert stats["srv_latency_p99_ms"] == pytest.approx(1000.0)
    assert stats["srv_in_flight"] == 3.0


def test_server_stats_over_two_seconds_halves_the_rate_only(prev):
    stats = server_stats(prev, parse_snapshot(CUR, 102.0))
    assert stats["srv_rps"] == pytest.approx(50.0)
    assert stats["srv_error_rate"] == pytest.approx(0.05)
    assert stats["srv_latency_p50_ms"] == pytest.approx(125.0)


def test_server_stats_counter_reset_uses_the_current_values(prev):
    stats = server_stats(prev, parse_snapshot(RESTARTED, 101.0))
    assert stats["srv_rps"] == pytest.approx(7.0)
    assert stats["srv_error_rate"] == pytest.approx(1 / 7)
    # Buckets after the restart: 0.05:2 0.1:4 0.25:6 0.5:6 1:7 +Inf:7; p50 rank 3.5 in (0.05, 0.1]
    assert stats["srv_latency_p50_ms"] == pytest.approx((0.05 + 0.05 * 1.5 / 2) * 1000)
    assert stats["srv_latency_p95_ms"] == pytest.approx((0.5 + 0.5 * (6.65 - 6) / 1) * 1000)
    assert all(v is None or v >= 0 for v in stats.values())


def test_server_stats_partial_histogram_decrease_resets_the_whole_histogram():
    before = Snapshot(t=0.0, requests_total=10.0, requests_5xx=0.0,
                      buckets={0.1: 10.0, 1.0: 10.0, INF: 10.0})
    # One bucket went down (a worker's data vanished): the deltas would be 0.1:-5, 1:+5.
    after = Snapshot(t=1.0, requests_total=15.0, requests_5xx=0.0,
                     buckets={0.1: 5.0, 1.0: 15.0, INF: 15.0})
    stats = server_stats(before, after)
    assert stats["srv_rps"] == pytest.approx(5.0)
    # Quantiles from cur alone: rank 7.5 in (0.1, 1.0] holding 5..15 -> 0.1 + 0.9 * 2.5/10
    assert stats["srv_latency_p50_ms"] == pytest.approx(325.0)
    assert all(v is None or v >= 0 for v in stats.values())


def test_increase_of_a_group():
    assert increase({"a": 1.0, "b": 5.0}, {"a": 3.0, "b": 5.0}) == {"a": 2.0, "b": 0.0}
    assert increase({"a": 1.0, "b": 5.0}, {"a": 3.0, "b": 4.0}) == {"a": 3.0, "b": 4.0}
    assert increase({}, {"a": 3.0}) == {"a": 3.0}          # series born in the interval
    assert increase({"a": 2.0}, {}) == {}                  # series gone: a reset


def test_server_stats_failed_scrape_gives_empty_values(prev):
    assert server_stats(prev, None) == dict.fromkeys(SERVER_KEYS)
    assert server_stats(None, None) == dict.fromkeys(SERVER_KEYS)


def test_server_stats_without_previous_scrape_has_only_in_flight():
    stats = server_stats(None, parse_snapshot(CUR, 101.0))
    assert stats == {**dict.fromkeys(SERVER_KEYS), "srv_in_flight": 3.0}


def test_server_stats_non_increasing_time_gives_no_rates(prev):
    stats = server_stats(prev, parse_snapshot(CUR, 100.0))
    assert stats["srv_rps"] is None and stats["srv_latency_p95_ms"] is None
    assert stats["srv_in_flight"] == 3.0


def test_server_stats_idle_interval(prev):
    stats = server_stats(prev, parse_snapshot(PREV, 101.0))
    assert stats["srv_rps"] == 0.0
    assert stats["srv_error_rate"] is None    # no requests: no error rate
    assert stats["srv_latency_p50_ms"] is None and stats["srv_latency_p99_ms"] is None


def test_server_stats_counter_born_between_scrapes():
    empty = parse_snapshot("# TYPE lab_http_requests_in_flight gauge\nlab_http_requests_in_flight 0\n", 0.0)
    stats = server_stats(empty, parse_snapshot(RESTARTED, 2.0))
    assert stats["srv_rps"] == pytest.approx(3.5)
    assert stats["srv_error_rate"] == pytest.approx(1 / 7)


# ------------------------------------------------------------------ histogram_quantile
def test_quantile_lowest_bucket_interpolates_from_zero():
    assert histogram_quantile(0.5, {0.1: 10.0, INF: 10.0}) == pytest.approx(0.05)
    assert histogram_quantile(0.25, {0.2: 4.0, 0.4: 8.0, INF: 8.0}) == pytest.approx(0.1)


def test_quantile_interpolates_inside_a_bucket():
    buckets = {0.1: 20.0, 0.2: 60.0, 0.4: 100.0, INF: 100.0}
    # rank 50: (0.1, 0.2] holds 40, 30 of them below rank -> 0.1 + 0.1 * 30/40
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.175)
    # rank 90: (0.2, 0.4] holds 40, 30 below rank -> 0.2 + 0.2 * 30/40
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.35)
    assert histogram_quantile(1.0, buckets) == pytest.approx(0.4)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    assert histogram_quantile(0.99, {0.1: 50.0, 0.5: 90.0, INF: 100.0}) == 0.5


def test_quantile_without_observations_or_inf_bucket_is_none():
    assert histogram_quantile(0.5, {0.1: 0.0, INF: 0.0}) is None
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {0.1: 5.0, 1.0: 10.0}) is None   # no +Inf bucket
    assert histogram_quantile(0.5, {INF: 10.0}) is None             # no finite bound


def test_quantile_fixes_non_monotonic_counts_and_unordered_keys():
    assert histogram_quantile(0.5, {INF: 10.0, 0.2: 8.0, 0.1: 10.0}) == pytest.approx(0.05)


def test_quantile_edges():
    assert histogram_quantile(0.0, {0.1: 0.0, 0.2: 4.0, INF: 4.0}) == pytest.approx(0.1)
    assert histogram_quantile(0.5, {-1.0: 10.0, 0.5: 10.0, INF: 10.0}) == -1.0
    with pytest.raises(ValueError):
        histogram_quantile(1.5, {0.1: 1.0, INF: 1.0})
