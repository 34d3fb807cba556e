"""Client-side arithmetic: tailing sample files, per-second bins, percentiles, the SLO rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contract.schema import violates_slo
from collector.clientstats import (
    CLIENT_KEYS, SAMPLE_HEADERS, WINDOW_KEYS, ClientSecond, Sample, SampleTailer, SecondBinner, client_stats,
    endpoint_stats, parse_sample,
)

HEADER = SAMPLE_HEADERS[0] + "\n"


def append(path, text: str) -> None:
    with open(path, "a", newline="") as fh:
        fh.write(text)


# ------------------------------------------------------------------ parse_sample
def test_parse_sample():
    assert parse_sample("1700000000.1234,12.50,1,/products/[id]") == Sample(
        1700000000.1234, 12.5, True, "/products/[id]")
    assert parse_sample("1.0,3,0,search, by name") == Sample(1.0, 3.0, False, "search, by name")


@pytest.mark.parametrize("line", [
    "1700000000.1,12.5,1",            # too few fields
    "abc,12.5,1,/",                   # bad timestamp
    "1700000000.1,,1,/",              # empty response time
    "1700000000.1,12.5,yes,/",        # ok must be 0 or 1
    "1700000000.1,-1,1,/",            # negative response time
    "1700000000.1,nan,1,/",
    "inf,12.5,1,/",
])
def test_parse_sample_refuses_malformed_lines(line):
    assert parse_sample(line) is None


# ------------------------------------------------------------------ SampleTailer
def test_tailer_keeps_a_partial_line_for_the_next_call(tmp_path):
    path = tmp_path / "samples-101.csv"
    append(path, HEADER + "1700000000.5,10.0,1,/\n1700000000.7,2")
    tailer = SampleTailer(tmp_path)
    assert tailer.read_new() == [Sample(1700000000.5, 10.0, True, "/")]
    assert tailer.read_new() == []                      # still incomplete
    append(path, "0.25,0,/checkout\n")
    assert tailer.read_new() == [Sample(1700000000.7, 20.25, False, "/checkout")]
    assert tailer.read_new() == []
    assert tailer.malformed == 0                        # header and torn line are not errors


def test_tailer_reads_several_files_and_files_that_appear_later(tmp_path):
    append(tmp_path / "samples-1.csv", HEADER + "10.0,1,1,/a\n")
    append(tmp_path / "samples-2.csv", HEADER + "10.5,2,1,/b\n11.0,3,0,/b\n")
    append(tmp_path / "status-1.csv", "ts,users\n10.0,5\n")   # not a sample file
    tailer = SampleTailer(tmp_path)
    first = tailer.read_new()
    assert sorted((s.ts, s.name) for s in first) == [(10.0, "/a"), (10.5, "/b"), (11.0, "/b")]
    append(tmp_path / "samples-1.csv", "12.0,4,1,/a\n")
    append(tmp_path / "samples-3.csv", HEADER + "12.5,5,1,/c\n")
    assert sorted(s.name for s in tailer.read_new()) == ["/a", "/c"]


def test_tailer_counts_malformed_lines_and_tolerates_crlf(tmp_path):
    append(tmp_path / "samples-1.csv", HEADER + "10.0,1,1,/a\r\nbroken\n\n10.5,x,1,/a\n11.0,2,0,/a\n")
    tailer = SampleTailer(tmp_path)
    samples = tailer.read_new()
    assert [s.ts for s in samples] == [10.0, 11.0]
    assert samples[0].name == "/a"
    assert tailer.malformed == 2


def test_tailer_rereads_a_truncated_file_and_survives_a_missing_folder(tmp_path):
    path = tmp_path / "samples-1.csv"
    append(path, HEADER + "10.0,1,1,/a\n10.1,1,1,/a\n")
    tailer = SampleTailer(tmp_path)
    assert len(tailer.read_new()) == 2
    path.write_text(HEADER + "20.0,1,1,/z\n", newline="")   # shorter than what was read
    assert [s.ts for s in tailer.read_new()] == [20.0]
    assert SampleTailer(tmp_path / "absent").read_new() == []


def test_tailer_custom_pattern(tmp_path):
    append(tmp_path / "run-a.csv", "1.0,1,1,/\n")
    append(tmp_path / "samples-1.csv", "2.0,1,1,/\n")
    assert [s.ts for s in SampleTailer(tmp_path, pattern="run-*.csv").read_new()] == [1.0]


# ------------------------------------------------------------------ client_stats
def test_client_stats_hand_computed_percentiles():
    stats = client_stats(np.array([50.0, 10.0, 40.0, 20.0, 30.0]), np.array([1, 1, 0, 1, 1]))
    # Sorted 10..50; linear: p95 at index 3.8 -> 40 + 0.8*10, p99 at 3.96 -> 40 + 0.96*10.
    assert stats == {"rps": 5.0, "failures": 1, "error_rate": pytest.approx(0.2),
                     "latency_p50_ms": pytest.approx(30.0), "latency_p95_ms": pytest.approx(48.0),
                     "latency_p99_ms": pytest.approx(49.6)}
    assert isinstance(stats["rps"], float) and isinstance(stats["failures"], int)


def test_client_stats_two_and_one_requests():
    two = client_stats(np.array([100.0, 200.0]), np.array([True, True]))
    assert (two["latency_p50_ms"], two["latency_p95_ms"], two["latency_p99_ms"]) == pytest.approx(
        (150.0, 195.0, 199.0))
    assert two["error_rate"] == 0.0
    one = client_stats(np.array([42.0]), np.array([False]))
    assert one["latency_p50_ms"] == one["latency_p99_ms"] == 42.0
    assert one["error_rate"] == 1.0


def test_client_stats_without_requests():
    assert client_stats(np.array([]), np.array([], dtype=bool)) == {
        "rps": 0.0, "failures": 0, "error_rate": None,
        "latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None}


def test_endpoint_stats():
    stats = endpoint_stats(np.array([10.0, 30.0, 5.0]), np.array([1, 0, 1]),
                           np.array(["/a", "/a", "/b"], dtype=object))
    assert stats["/a"] == {"count": 2, "failures": 1, "p50": pytest.approx(20.0), "p95": pytest.approx(29.0)}
    assert stats["/b"] == {"count": 1, "failures": 0, "p50": 5.0, "p95": 5.0}


# ------------------------------------------------------------------ SecondBinner
T0 = 1_700_000_000.25


def sample(offset_s: float, ms: float, ok: bool = True, name: str = "/") -> Sample:
    return Sample(T0 + offset_s, ms, ok, name)


def test_binner_groups_by_whole_seconds_since_t0():
    binner = SecondBinner(T0)
    binner.extend([sample(0.0, 10), sample(0.5, 20, ok=False), sample(0.99, 30, name="/b"),
                   sample(1.0, 99), sample(2.5, 7)])
    second0 = binner.pop(0)
    assert isinstance(second0, ClientSecond)
    assert second0.rps == 3.0 and second0.failures == 1
    assert second0.error_rate == pytest.approx(1 / 3)
    assert second0.latency_p50_ms == pytest.approx(20.0)
    assert second0.latency_p95_ms == pytest.approx(29.0)       # index 1.9 -> 20 + 0.9*10
    assert second0.by_name == {"/": {"count": 2, "failures": 1, "p50": pytest.approx(15.0),
                                     "p95": pytest.approx(19.5)},
                               "/b": {"count": 1, "failures": 0, "p50": 30.0, "p95": 30.0}}
    assert binner.pop(1).latency_p50_ms == 99.0
    assert binner.pop(2).rps == 1.0


def test_binner_counts_late_and_early_samples():
    binner = SecondBinner(T0)
    binner.add(sample(0.2, 10))
    binner.pop(0)
    binner.add(sample(0.9, 500))          # arrived after second 0 was written
    binner.add(sample(-0.1, 10))          # completed before the scenario's t=0
    binner.add(sample(1.1, 10))
    assert (binner.late, binner.early) == (1, 1)
    assert binner.pop(1).rps == 1.0


def test_binner_empty_second():
    second = SecondBinner(T0).pop(7)
    assert dict(second) == {"rps": 0.0, "failures": 0, "error_rate": None, "latency_p50_ms": None,
                            "latency_p95_ms": None, "latency_p99_ms": None,
                            "latency_p95_window_ms": None, "latency_p99_window_ms": None,
                            "error_rate_window": None, "window_requests": 0}
    assert second.by_name == {}


def test_client_second_updates_a_row_with_flat_columns():
    row = {"target_up": 1}
    binner = SecondBinner(T0)
    binner.add(sample(0.1, 12.0))
    row.update(binner.pop(0))
    assert set(row) == {"target_up", *CLIENT_KEYS, *WINDOW_KEYS}
    assert row["latency_p95_ms"] == 12.0


def test_tailer_into_binner_end_to_end(tmp_path):
    append(tmp_path / "samples-1.csv", HEADER + f"{T0 + 0.1:.4f},100.00,1,/\n{T0 + 0.2:.4f},300.00,0,/\n")
    append(tmp_path / "samples-2.csv", HEADER + f"{T0 + 0.3:.4f},200.00,1,/\n{T0 + 1.5:.4f},5.00,1,/\n")
    binner = SecondBinner(T0)
    binner.extend(SampleTailer(tmp_path).read_new())
    row = binner.pop(0)
    assert (row["rps"], row["failures"], row["latency_p50_ms"]) == (3.0, 1, pytest.approx(200.0))
    assert row["latency_p99_ms"] == pytest.approx(298.0)


# ------------------------------------------------------------------ slo_violation
@pytest.mark.parametrize("row, expected", [
    ({"latency_p95_ms": 800.0, "error_rate": 0.02}, 0),       # equal to the SLO is within it
    ({"latency_p95_ms": 800.001, "error_rate": 0.0}, 1),
    ({"latency_p95_ms": 100.0, "error_rate": 0.0201}, 1),
    ({"latency_p95_ms": 900.0, "error_rate": 0.5}, 1),
    ({"latency_p95_ms": 799.9, "error_rate": 0.019}, 0),
    ({"latency_p95_ms": None, "error_rate": None}, 0),        # no requests in the second
    ({}, 0),
    ({"latency_p95_ms": math.nan, "error_rate": math.nan}, 0),
    ({"latency_p95_ms": None, "error_rate": 1.0}, 1),
])
def test_slo_violation(row, expected):
    slo = {"latency_p95_ms": 800.0, "error_rate": 0.02}
    assert violates_slo(row.get("latency_p95_ms"), row.get("error_rate"), slo) == expected


def test_slo_violation_unset_limit_is_never_violated():
    assert violates_slo(5000.0, 0.0, {"latency_p95_ms": None, "error_rate": 0.02}) == 0
    assert violates_slo(5000.0, 0.0, {"latency_p95_ms": 800.0, "error_rate": None}) == 1


# ------------------------------------------------------------------ pooled SLO windows
def test_window_pools_the_trailing_seconds_including_an_empty_one():
    binner = SecondBinner(T0, window_s=3)
    for ms in (100, 200, 300):                 # second 0
        binner.add(sample(0.5, ms))
    binner.add(sample(2.5, 1000, ok=False))   # second 2; second 1 has no request
    binner.add(sample(3.5, 400))              # second 3
    s0, s1, s2, s3 = (binner.pop(k) for k in range(4))
    # Second 1 has no request of its own but its window (0..1) still holds second 0's three.
    assert s1.rps == 0.0 and s1.latency_p95_ms is None
    assert s1.window_requests == 3
    assert s1.latency_p95_window_ms == pytest.approx(np.percentile([100, 200, 300], 95))
    # Second 2 pools 0..2: four requests, one failed.
    assert s2.window_requests == 4 and s2.error_rate_window == pytest.approx(0.25)
    assert s2.latency_p99_window_ms == pytest.approx(np.percentile([100, 200, 300, 1000], 99))
    # Second 3 pools 1..3: second 0 has left the window.
    assert s3.window_requests == 2
    assert s3.latency_p95_window_ms == pytest.approx(np.percentile([1000, 400], 95))
    assert s3.error_rate_window == pytest.approx(0.5)


def test_window_of_one_second_is_the_per_second_figure():
    binner = SecondBinner(T0, window_s=1)
    for ms in (10, 20, 30, 40, 900):
        binner.add(sample(0.2, ms))
    binner.add(sample(1.2, 50))
    s0, s1 = binner.pop(0), binner.pop(1)
    assert s0.latency_p95_window_ms == s0.latency_p95_ms
    assert s1.latency_p95_window_ms == s1.latency_p95_ms == 50.0


def test_window_with_no_request_at_all_is_empty_not_zero():
    binner = SecondBinner(T0, window_s=10)
    second = binner.pop(0)
    assert second.latency_p95_window_ms is None and second.error_rate_window is None


def test_window_must_be_at_least_one_second():
    with pytest.raises(ValueError):
        SecondBinner(T0, window_s=0)


def test_parse_sample_reads_the_open_model_layout():
    s = parse_sample(f"{T0 + 1:.4f},2100.50,1,/products/search,95.25,{T0 - 1.1:.4f}")
    assert s == Sample(T0 + 1, 2100.5, True, "/products/search")
    old = parse_sample(f"{T0:.4f},12.5,0,/a,b")       # older layout: a comma in the name stays
    assert old is not None and old.name == "/a,b" and old.ok is False


def test_tailer_skips_the_open_model_header(tmp_path):
    append(tmp_path / "samples-1.csv", SAMPLE_HEADERS[1] + "\n"
           + f"{T0 + 0.1:.4f},100.00,1,/,40.0,{T0:.4f}\n")
    tailer = SampleTailer(tmp_path)
    assert [s.response_time_ms for s in tailer.read_new()] == [100.0]
    assert tailer.malformed == 0
