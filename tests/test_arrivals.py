"""Open-model arrival schedules: seeded Poisson arrivals at the planned, possibly ramping, rate."""

from __future__ import annotations

import numpy as np
import pytest

from loadtests.arrivals import arrival_times, in_flight_share, scenario_arrivals
from contract.scenario import parse_scenario

PLAN = """\
name = "plan"
duration_s = 200
seed = 5

[[stages]]
name = "steady"
until_s = 50
rate = 40

[[stages]]
name = "quiet"
until_s = 80
rate = 0

[[stages]]
name = "ramp"
until_s = 180
rate = 100
ramp_s = 100

[[stages]]
name = "spike"
until_s = 200
rate = 300
"""


@pytest.fixture
def plan():
    return parse_scenario(PLAN)


def within_poisson(count: int, expected: float, sds: float = 4.5) -> bool:
    return abs(count - expected) <= sds * np.sqrt(max(expected, 1.0))


def test_the_same_seed_gives_the_same_schedule(plan):
    a, b = scenario_arrivals(plan), scenario_arrivals(plan)
    assert len(a) > 1000 and np.array_equal(a, b)
    assert np.all(np.diff(a) >= 0) and a[0] >= 0 and a[-1] < plan.duration_s


def test_seeds_and_workers_give_different_schedules(plan):
    base = scenario_arrivals(plan, seed=1)
    assert not np.array_equal(base[:100], scenario_arrivals(plan, seed=2)[:100])
    w0, w1 = (scenario_arrivals(plan, seed=1, worker=k, workers=2) for k in (0, 1))
    assert not np.array_equal(w0[:100], w1[:100])
    assert not np.array_equal(w0[:100], base[:100]), "a worker's stream is not the single process's"


@pytest.mark.parametrize("seed", range(10))
def test_counts_per_stage_are_within_poisson_bounds(plan, seed):
    times = scenario_arrivals(plan, seed=seed)
    start = 0
    for stage in plan.stages:
        expected = plan.expected_arrivals(start, stage.until_s)
        count = int(np.count_nonzero((times >= start) & (times < stage.until_s)))
        if expected == 0:
            assert count == 0, f"{stage.name}: arrivals in a zero-rate stage"
        else:
            assert within_poisson(count, expected), (stage.name, count, expected)
        start = stage.until_s


def test_arrival_density_follows_a_ramp(plan):
    # The ramp stage climbs 0 -> 100/s over 80..180 s: expected arrivals in 10 s bins grow linearly.
    times = np.concatenate([scenario_arrivals(plan, seed=s) for s in range(5)])
    edges = np.arange(80, 181, 10)
    counts, _ = np.histogram(times, edges)
    expected = np.array([5 * plan.expected_arrivals(a, a + 10) for a in edges[:-1]])
    assert expected == pytest.approx([5 * 10 * (5 + 10 * i) for i in range(10)])
    assert all(within_poisson(int(c), e) for c, e in zip(counts, expected)), (counts, expected)
    assert np.corrcoef(counts, expected)[0, 1] > 0.99
    # Within the ramp, arrivals lean to its end: mean position 2/3 of the way for a ramp from 0.
    in_ramp = times[(times >= 80) & (times < 180)]
    assert np.mean(in_ramp - 80) == pytest.approx(200 / 3, abs=1.0)


def test_workers_split_the_rate_and_together_are_poisson():
    knots = ((0.0, 60.0), (300.0, 60.0))
    parts = [arrival_times(knots, seed=3, worker=k, workers=3) for k in range(3)]
    assert all(within_poisson(len(p), 300 * 60 / 3) for p in parts), [len(p) for p in parts]
    merged = np.sort(np.concatenate(parts))
    assert within_poisson(len(merged), 300 * 60)
    counts = np.bincount(merged.astype(int), minlength=300)
    # Poisson counts per second: variance ~ mean (a paced, evenly spaced sender would give ~0).
    assert 0.8 < counts.var() / counts.mean() < 1.25
    gaps = np.diff(merged)
    assert np.mean(gaps) == pytest.approx(1 / 60, rel=0.05)
    assert np.std(gaps) == pytest.approx(np.mean(gaps), rel=0.1), "exponential gaps: sd = mean"


def test_steps_and_holds_in_the_knots():
    knots = ((0.0, 0.0), (10.0, 0.0), (10.0, 50.0), (20.0, 50.0))
    times = arrival_times(knots, seed=1)
    assert times.min() >= 10.0 and within_poisson(len(times), 500)
    held = arrival_times(knots, seed=1, end_s=30.0)
    assert np.array_equal(held[:len(times)], times) and within_poisson(len(held) - len(times), 500)
    assert np.array_equal(arrival_times(knots, seed=1, end_s=15.0), times[times < 15.0])
    assert len(arrival_times(((0.0, 0.0), (10.0, 0.0)), seed=1)) == 0


def test_a_truncated_scenario_keeps_the_prefix_of_the_schedule(plan):
    full = scenario_arrivals(plan)
    cut = scenario_arrivals(plan.truncated(130))
    assert np.array_equal(cut, full[full < 130])


def test_bad_arguments_are_refused(plan):
    with pytest.raises(ValueError, match="worker 2 of 2"):
        scenario_arrivals(plan, worker=2, workers=2)
    with pytest.raises(ValueError, match="non-decreasing"):
        arrival_times(((5.0, 1.0), (1.0, 1.0)), seed=1)
    with pytest.raises(ValueError, match="closed model"):
        scenario_arrivals(parse_scenario('name = "c"\nduration_s = 5\n[[stages]]\nname = "a"\n'
                                         'until_s = 5\nusers = 2\nspawn_rate = 1\n'))


def test_in_flight_share_adds_up():
    assert [in_flight_share(1000, k, 3) for k in range(3)] == [334, 333, 333]
    assert sum(in_flight_share(7, k, 2) for k in range(2)) == 7
    assert in_flight_share(1, 1, 2) == 1, "every process may keep one request in flight"
