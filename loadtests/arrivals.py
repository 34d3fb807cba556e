"""Open-model arrival times: a Poisson process at the scenario's planned rate, drawn from the seed.

A Poisson process with rate r(t) is a unit-rate process read on the clock of the expected
arrivals L(t) (the integral of r from 0 to t): running sums of unit-rate exponential draws
E1 < E2 < ... are mapped back through the inverse, t_k = L^-1(E_k). The planned rate is
piecewise linear (`Scenario.rate_knots()`), so L is piecewise quadratic and its inverse has
a closed form on each segment.

Worker k of N Locust processes sends the share r(t)/N with its own stream, seeded from
(seed, N, k): together the N processes are a Poisson process at the full rate, and the same
seed gives every process the same schedule on every run. Pure (no locust import), so the
schedule can be tested and reproduced outside Locust.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Keeps the arrival streams apart from any other use of the run's seed.
_STREAM = 0x6172726976   # "arriv"


def arrival_times(knots: Sequence[tuple[float, float]], seed: int, worker: int = 0,
                  workers: int = 1, end_s: float | None = None) -> np.ndarray:
    """Return the sorted arrival times (s since t=0) of worker `worker` of `workers` for a rate plan.

    `knots` are (t, requests/s) points with the rate linear between them (two at the same t
    are a step), as `Scenario.rate_knots()` gives; the rate holds its last value after the
    last knot. Arrivals fall in [knots[0].t, end_s), end_s defaulting to the last knot.
    """
    if workers < 1 or not 0 <= worker < workers:
        raise ValueError(f"worker {worker} of {workers}: need 0 <= worker < workers")
    t, r = _segments(knots, end_s)
    cumulative = np.concatenate([[0.0], np.cumsum((r[:-1] + r[1:]) / 2 * np.diff(t))])
    total = float(cumulative[-1])
    if total <= 0:
        return np.empty(0)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_STREAM, workers, worker)))
    # This worker sees 1/workers of the expected arrivals: its unit-rate clock runs
    # `workers` times slower on the L axis.
    points = _unit_poisson_points(rng, total / workers) * workers
    times = _invert(points, t, r, cumulative)
    # An earlier end is a prefix of the same schedule (the mapping keeps the order).
    return times if end_s is None or end_s >= t[-1] else times[times < end_s]


def scenario_arrivals(scenario, seed: int | None = None, worker: int = 0, workers: int = 1) -> np.ndarray:
    """Return the arrival times of an open scenario for one of `workers` load-generator processes."""
    knots = scenario.rate_knots()
    if not knots:
        raise ValueError(f"scenario {scenario.name!r} uses the {scenario.load_model} model; "
                         "arrival times are for the open model")
    seed = scenario.seed if seed is None else seed
    return arrival_times(knots, seed or 0, worker, workers, end_s=scenario.duration_s)


def in_flight_share(max_in_flight: int, worker: int, workers: int) -> int:
    """Return worker `worker`'s part of `max_in_flight`: parts add up to it, and each is at least 1."""
    base, extra = divmod(max_in_flight, workers)
    return max(1, base + (1 if worker < extra else 0))


def _segments(knots: Sequence[tuple[float, float]], end_s: float | None) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(knots, dtype=float).reshape(-1, 2)
    if len(points) == 0:
        raise ValueError("a rate plan needs at least one knot")
    t, r = points[:, 0], points[:, 1]
    if np.any(np.diff(t) < 0) or np.any(r < 0) or not np.all(np.isfinite(points)):
        raise ValueError("rate knots must have non-decreasing times and finite rates >= 0")
    if end_s is not None and end_s > t[-1]:
        t, r = np.append(t, float(end_s)), np.append(r, r[-1])
    return t, r


def _unit_poisson_points(rng: np.random.Generator, expected: float) -> np.ndarray:
    """Return the points of a unit-rate Poisson process on [0, expected)."""
    chunk = int(expected + 6 * np.sqrt(expected) + 16)
    sums = np.cumsum(rng.standard_exponential(chunk))
    while sums[-1] < expected:
        sums = np.concatenate([sums, sums[-1] + np.cumsum(rng.standard_exponential(chunk))])
    return sums[sums < expected]


def _invert(points: np.ndarray, t: np.ndarray, r: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """Map expected-arrival values back to times through the inverse of the cumulative rate."""
    # side="right": a value on a flat stretch of L (zero rate, or a step) belongs after it.
    seg = np.clip(np.searchsorted(cumulative, points, side="right") - 1, 0, len(t) - 2)
    t0, r0, dt = t[seg], r[seg], t[seg + 1] - t[seg]
    slope = np.divide(r[seg + 1] - r0, dt, out=np.zeros_like(dt), where=dt > 0)
    d = points - cumulative[seg]
    # Solves r0*u + slope*u^2/2 = d for u >= 0, in the form that is stable when slope ~ 0.
    root = np.sqrt(np.maximum(r0 * r0 + 2 * slope * d, 0.0))
    denom = r0 + root
    u = np.divide(2 * d, denom, out=np.zeros_like(d), where=denom > 0)
    return np.clip(t0 + u, t0, t[seg + 1])
