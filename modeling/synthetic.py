"""Synthetic runs that follow the metrics.csv contract, for tests and classroom exercises.

`synthetic_run(scenario, seed)` simulates the lab's target under a scenario (the same
stages, faults and SLO as a real run) with a small queueing model, one row per second:

- Load: Locust-like users ramp to each stage's `users` at its `spawn_rate`; each user
  thinks about `think_s` seconds between requests and waits for each response, so only
  thinking users send — a closed loop, like a real load generator.
- Capacity: a pool of `cores` servers (an M/M/c queue) that completes `capacity_rps`
  requests per second. Below capacity the wait is Erlang C's, which rises steeply as the
  utilisation approaches 1; above capacity the excess is kept as a backlog that makes
  every later request wait, and that drains when the load falls (recovery).
- Faults (target_app/faults.py semantics): `latency` adds up to 2 s per request and holds
  the target's threads (so capacity drops too); `errors` fails that share of requests;
  `cpu` burns cores and slows CPU-bound work; `memory` leaks up to 20 MB/s per worker and
  slows requests slightly.
- Client figures by the collector's own estimator: each completed request gets a response
  time (an endpoint drawn from the scenario's `[load.mix]`, its low-load latency slowed by
  the fault, plus its wait: the backlog's, and Erlang C's exponential wait for the share of
  requests that queue) and an outcome, and the second's p50/p95/p99 and the pooled
  `*_window` figures over `slo.window_s` are `collector.clientstats`'s percentiles of those
  requests. So the per-second p95 of a few requests is as noisy as a real one
  (tests/test_modeling_synthetic.py checks it against a recorded run).
- Noise besides: Poisson request counts, occasional spurious errors, and collector gaps (a
  scrape that failed: server columns empty, `target_up=0`; a lost second: every measurement
  empty).
- `slo_violation` follows docs/contract.md: the pooled window's p95 above the SLO or its error
  rate above it (a closed scenario without `window_s` pools one second); a second without
  data is not a violation.

The model is a teaching device calibrated to the built-in scenarios' capacity story
(about 60-80 users on the default 2 x 4 target), not a replica of any machine; a scenario
with a bigger `[target]` gets proportionally more capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from collector.clientstats import TrailingWindow, client_stats
from contract.scenario import CLOSED_DEFAULT_WINDOW_S, DEFAULT_MIX, load_scenario
from contract.schema import COLUMNS, slo_limits, violates_slo
from contract.errors import BadInput
from contract.runfolder import METRICS_CSV, atomic_write_text, write_run_json

T0 = pd.Timestamp("2026-01-01T00:00:00Z")

# The endpoints the lab's Locust tasks request: weight in the closed default mix
# (contract.scenario.DEFAULT_MIX), the response time at low load as a lognormal (median,
# sigma; measured per endpoint from the raw samples of course/data/signal's noise run at 30
# requests/s) or, for /stress, the uniform 0.5-2.0 s wait target_app/app.py draws; and
# the CPU cost of a request.
ENDPOINTS: dict[str, dict[str, float]] = {
    "/products": {"weight": 5, "median_ms": 6.1, "sigma": 0.35, "cpu_ms": 2.0},
    "/products/[id]": {"weight": 4, "median_ms": 7.3, "sigma": 0.31, "cpu_ms": 2.0},
    "/products/search": {"weight": 2, "median_ms": 95.0, "sigma": 0.30, "cpu_ms": 9.0},
    "/checkout": {"weight": 1, "median_ms": 58.5, "sigma": 0.33, "cpu_ms": 38.0},
    "/stress": {"weight": 1, "median_ms": 1250.0, "sigma": 0.3, "cpu_ms": 1.0,
                "uniform_min_ms": 502.0, "uniform_max_ms": 2002.0},
}
# The spread (sd of the log) of the slowdown all of a second's requests share, at full
# utilisation: fitted so that a steady second's p95 and the pooled 10 s p95 scatter as in the
# recorded noise run at 30 and 90 requests/s (tests/test_modeling_synthetic.py).
CONTENTION_SIGMA = 0.3
# The endpoint each Locust task requests (loadtests/locustfile.py).
TASK_ENDPOINTS = {"browse": "/products", "product": "/products/[id]", "search": "/products/search",
                  "checkout": "/checkout", "stress": "/stress"}


@dataclass(frozen=True)
class TargetModel:
    """The simulated target's capacity and cost figures."""
    capacity_rps: float = 70.0      # completions per second at full CPU
    cores: int = 2                  # servers of the M/M/c queue
    base_p50_ms: float = 9.0        # server-side (srv_*) percentiles of the default mix with no
    base_p95_ms: float = 1050.0     # queueing: /stress (0.5-2.0 s) is 1 in 13 requests, so it
    base_p99_ms: float = 1800.0     # sets p95 (the client's come from its requests, _Client)
    base_mean_ms: float | None = None   # mean response time with no queueing (None: the scenario's mix's)
    think_s: float = 1.0            # mean user wait between requests
    cpu_idle_pct: float = 3.0
    rss_base_mb: float = 140.0
    workers: int = 2                # the target size capacity_rps refers to
    threads: int = 4
    base_error_prob: float = 3e-4   # spurious failures (resets, timeouts) per request
    gap_rate: float = 0.004         # chance per second that the collector loses a scrape
    long_gap_share: float = 0.15    # share of gaps that last 6-12 s instead of 1-3 s
    jitter: float = 0.08            # per-seed relative jitter of capacity and plan


def _scenario_dict(scenario: Any) -> dict[str, Any]:
    if isinstance(scenario, str):
        data = load_scenario(scenario).to_dict()
    elif hasattr(scenario, "to_dict"):
        data = scenario.to_dict()
    elif isinstance(scenario, Mapping):
        data = dict(scenario)
        for key in ("duration_s", "stages"):
            if key not in data:
                raise BadInput(f"<scenario>: {key}: missing")
    else:
        raise BadInput(f"<scenario>: expected a name, a Scenario or a dict, got {type(scenario).__name__}")
    if data.get("load_model") == "open" or any("rate" in st for st in data["stages"]):
        # The generator's users think between requests: the closed model only, for now.
        raise BadInput(f"{data.get('name', '<scenario>')}: the synthetic generator simulates the closed "
                       f"model (stages with users); use a closed scenario such as spike-closed")
    return data


def _erlang_c(rate: float, capacity: float, servers: int) -> tuple[float, float]:
    """Return the M/M/c chance that a request queues and its mean wait (s) when it does.

    Erlang C: with arrival `rate` and total `capacity`, a request waits with probability
    P_wait, and then for an exponential time of mean 1 / (capacity - rate).
    """
    if rate <= 0:
        return 0.0, 0.0
    rho = min(rate / capacity, 0.95)  # the backlog term takes over near and past capacity
    a = rho * servers                  # offered load in Erlangs
    top = a ** servers / math.factorial(servers) / (1 - rho)
    below = sum(a ** k / math.factorial(k) for k in range(servers))
    return top / (below + top), 1.0 / (capacity * (1 - rho))


@dataclass(frozen=True)
class _Wait:
    """How long this second's requests wait before they are served."""
    backlog_s: float    # every request waits behind the backlog
    p_queue: float      # share that also queues (Erlang C)
    queue_s: float      # mean of that exponential queueing wait

    @property
    def mean_s(self) -> float:
        return self.backlog_s + self.p_queue * self.queue_s

    def draw_s(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw the waits of n requests."""
        queued = rng.random(n) < self.p_queue
        return self.backlog_s + queued * rng.exponential(max(self.queue_s, 1e-9), n)


@dataclass(frozen=True)
class _Mix:
    """A scenario's request mix: which endpoint a request hits and its low-load latency."""
    names: tuple[str, ...]  # the endpoints with a weight above 0, in the order `draw_ms` indexes
    p: np.ndarray           # chance of each endpoint
    median_ms: np.ndarray
    sigma: np.ndarray
    lo_ms: np.ndarray       # uniform bounds (NaN where the latency is lognormal)
    hi_ms: np.ndarray

    @classmethod
    def of(cls, weights: Mapping[str, float], endpoints: Mapping[str, Mapping[str, float]] = ENDPOINTS) -> "_Mix":
        names = [e for e, w in weights.items() if w > 0]
        w = np.array([weights[e] for e in names], dtype=float)
        get = lambda key, default=np.nan: np.array([endpoints[e].get(key, default) for e in names], dtype=float)
        return cls(tuple(names), w / w.sum(), get("median_ms"), get("sigma"), get("uniform_min_ms"), get("uniform_max_ms"))

    @property
    def mean_ms(self) -> float:
        """Mean low-load response time of a request of the mix."""
        each = np.where(np.isnan(self.lo_ms), self.median_ms * np.exp(self.sigma ** 2 / 2), (self.lo_ms + self.hi_ms) / 2)
        return float(self.p @ each)

    def draw_ms(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw n requests' endpoints (indices) and low-load response times (ms)."""
        pick = rng.choice(self.p.size, size=n, p=self.p)
        lognormal = self.median_ms[pick] * np.exp(self.sigma[pick] * rng.normal(0, 1, n))
        lo, hi = self.lo_ms[pick], self.hi_ms[pick]
        uniform = lo + (hi - lo) * rng.random(n)
        return pick, np.where(np.isnan(lo), lognormal, uniform)


def _scenario_mix(sc: Mapping[str, Any]) -> _Mix:
    """The endpoint mix of the scenario's `[load.mix]` (the closed default when it sets none)."""
    mix = (sc.get("load") or {}).get("mix") or DEFAULT_MIX
    unknown = sorted(set(mix) - set(TASK_ENDPOINTS))
    if unknown:
        raise BadInput(f"{sc.get('name', '<scenario>')}: load.mix: unknown task {unknown[0]!r} "
                       f"(known: {', '.join(TASK_ENDPOINTS)})")
    return _Mix.of({TASK_ENDPOINTS[task]: float(w) for task, w in mix.items()})


def _window_s(sc: Mapping[str, Any]) -> int:
    """The SLO window the labels pool over (a closed scenario without one: one second)."""
    return int((sc.get("slo") or {}).get("window_s") or CLOSED_DEFAULT_WINDOW_S)


def _jittered(value: float, rng: np.random.Generator, rel: float) -> float:
    return float(value * (1 + rng.uniform(-rel, rel)))


def synthetic_run(scenario: Any = "spike-closed", seed: int | None = None, *,
                  model: TargetModel | None = None, duration_s: int | None = None,
                  gaps: bool = True) -> pd.DataFrame:
    """Simulate one run of `scenario`; return its metrics.csv frame (run metadata in `.attrs`).

    Parameters
    ----------
    scenario : str, Scenario or dict
        A built-in scenario name, a `contract.scenario.Scenario`, or a dict shaped like
        `Scenario.to_dict()`.
    seed : int, optional
        Seed of the noise and of the per-seed jitter (capacity, stage users, fault
        times); the scenario's own seed when None.
    model : TargetModel, optional
        Capacity and cost figures of the simulated target.
    duration_s : int, optional
        Cut the run after this many seconds.
    gaps : bool
        Simulate collector gaps (empty cells, `target_up=0`).

    Returns
    -------
    pandas.DataFrame
        Columns `contract.schema.COLUMNS`, one row per second; `attrs` holds `run_id`,
        `scenario` (name), `slo` (dict), `seed` and `meta` (a run.json-like dict).
    """
    sc = _scenario_dict(scenario)
    seed = int(sc.get("seed") or 0) if seed is None else int(seed)
    # One generator for the whole run, drawn from in a fixed order: a seed gives the same frame.
    rng = np.random.default_rng(seed)
    mix = _scenario_mix(sc)
    m = _target_model(sc, model or TargetModel(), rng)
    if m.base_mean_ms is None:
        m = replace(m, base_mean_ms=mix.mean_ms)
    slo = _scenario_slo(sc)
    n = int(sc["duration_s"]) if duration_s is None else min(int(duration_s), int(sc["duration_s"]))
    if n < 1:
        raise BadInput(f"<scenario>: duration_s: must be at least 1, got {n}")
    plan_users, spawn, phase = _load_plan(sc, n, m.jitter, rng)
    fault, intensity = _fault_schedule(sc, n, rng)
    cols = _simulate(m, plan_users, spawn, fault, intensity, _Client(mix, _window_s(sc), slo), rng)

    frame = pd.DataFrame(cols)
    frame.insert(0, "timestamp", [(T0 + pd.Timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ")
                                  for s in range(n)])
    frame["phase"], frame["fault"] = phase, fault
    frame["planned_users"] = plan_users.astype("float64")      # the plan: known in advance
    if gaps:
        _add_gaps(frame, rng, m)
    frame = frame[COLUMNS]
    for c in ("elapsed_s", "slo_violation", "target_up"):
        frame[c] = frame[c].astype("int64")
    run_id = f"synthetic-{sc['name']}-s{seed}"
    frame.attrs.update(run_id=run_id, scenario=str(sc["name"]), slo=slo, seed=seed,
                       meta={"run_id": run_id, "scenario": sc, "seed": seed, "status": "complete",
                             "synthetic": {f.name: getattr(m, f.name) for f in fields(m)},
                             "warnings": []})
    return frame


# ---------------------------------------------------------------- the run's plan


def _target_model(sc: Mapping[str, Any], base: TargetModel, rng: np.random.Generator) -> TargetModel:
    """Size the model to the scenario's [target] and its users' think time; jitter the capacity."""
    target = sc.get("target") or {}
    workers = int(target.get("workers") or base.workers)
    threads = int(target.get("threads") or base.threads)
    # A bigger target has proportionally more capacity; jitter makes seeds differ.
    scale = workers * threads / (base.workers * base.threads)
    m = replace(base, workers=workers, threads=threads,
                capacity_rps=_jittered(base.capacity_rps * min(scale, 4.0), rng, base.jitter))
    load = sc.get("load") or {}
    if load.get("wait_min_s") is not None and load.get("wait_max_s") is not None:
        m = replace(m, think_s=(float(load["wait_min_s"]) + float(load["wait_max_s"])) / 2)
    return m


def _scenario_slo(sc: Mapping[str, Any]) -> dict[str, float]:
    """Return the scenario's SLO thresholds, the default SLO where it sets none."""
    return slo_limits(sc.get("slo"))


def _load_plan(sc: Mapping[str, Any], n: int, jitter: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the planned users (jittered per stage), spawn rate and phase name of each second."""
    stages = sorted(sc["stages"], key=lambda s: s["until_s"])
    plan_users = np.zeros(n)
    spawn = np.ones(n)
    phase = np.empty(n, dtype=object)
    start = 0
    for st in stages:
        end = min(int(st["until_s"]), n)
        users = max(0.0, _jittered(float(st["users"]), rng, jitter))
        plan_users[start:end], spawn[start:end], phase[start:end] = users, float(st["spawn_rate"]), st["name"]
        start = end
    if start < n:  # the last stage holds to the end
        plan_users[start:], spawn[start:], phase[start:] = plan_users[start - 1], spawn[start - 1], phase[start - 1]
    return plan_users, spawn, phase


def _fault_schedule(sc: Mapping[str, Any], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return the fault kind ("none" outside faults) and intensity of each second; starts move by ±3 s."""
    fault = np.array(["none"] * n, dtype=object)
    intensity = np.zeros(n)
    for f in sc.get("faults") or []:
        shift = int(rng.integers(-3, 4))
        a = max(0, int(f["start_s"]) + shift)
        b = min(n, a + int(f["duration_s"]))
        fault[a:b], intensity[a:b] = f["kind"], float(f["intensity"])
    return fault, intensity


# ---------------------------------------------------------------- one second after another


@dataclass(frozen=True)
class _Effects:
    """What the fault in force does to one second's requests and to the target's capacity."""
    add_s: float        # latency a `latency` fault adds to each request
    cpu_hog: float      # cores a `cpu` fault burns
    slow: float         # slowdown of every request under a `memory` fault
    cpu_slow: float     # slowdown of CPU-bound work while cores are burned
    service_s: float    # mean time a request spends being served
    cap: float          # completions per second the target can sustain

    def latency_ms(self, base_ms: float, waited_s: float) -> float:
        """Return a response time (ms): a base percentile slowed by the fault, plus time added and waited."""
        return base_ms * self.slow * self.cpu_slow + 1000 * (self.add_s + waited_s)


def _fault_effects(kind: str, k: float, m: TargetModel) -> _Effects:
    """Return the effects of a fault of `kind` at intensity `k` (target_app/faults.py semantics)."""
    add_s = 2.0 * k if kind == "latency" else 0.0
    cpu_hog = k * m.workers if kind == "cpu" else 0.0
    slow = 1.0 + (0.3 * k if kind == "memory" else 0.0)
    cpu_slow = 1.0 + 1.5 * cpu_hog / m.cores
    service_s = (m.base_mean_ms / 1000) * slow * cpu_slow + add_s
    # CPU capacity shrinks with the hog; thread capacity shrinks when requests sleep.
    cpu_cap = m.capacity_rps * max(0.15, 1 - 0.6 * cpu_hog / m.cores) / slow
    thread_cap = m.workers * m.threads / (m.base_mean_ms / 1000 + add_s)
    return _Effects(add_s, cpu_hog, slow, cpu_slow, service_s, max(1.0, min(cpu_cap, thread_cap)))


def send_rate(think_s: float) -> float:
    """Requests a thinking user sends per second: below 1, and the loop feeds it a smoothed count
    of the users held in service, so it settles instead of oscillating every second."""
    return min(0.9, 1.0 / max(think_s, 1e-3))


class _ClosedLoop:
    """Users that think, send and wait, and the target's backlog: the state carried between seconds."""
    def __init__(self, m: TargetModel):
        self.m = m
        self.users = 0.0
        self.queued = 0.0        # users whose request waits beyond capacity (the backlog)
        self.busy_rate = 0.0     # smoothed completions per second, for users held by slow requests
        self.arrival_rate = 0.0  # smoothed arrivals per second: the steady state Erlang C describes
        self.send = send_rate(m.think_s)

    def ramp(self, planned: float, spawn_rate: float) -> float:
        """Move the user count towards the plan at the spawn rate; return it."""
        if self.users < planned:
            self.users = min(planned, self.users + spawn_rate)
        else:
            self.users = max(planned, self.users - spawn_rate)
        return self.users

    def serve(self, fx: _Effects, rng: np.random.Generator) -> tuple[int, _Wait]:
        """Send this second's requests and complete what capacity allows; return (completed, waits)."""
        self.queued = min(self.queued, self.users)
        thinking = max(0.0, self.users - self.queued - self.busy_rate * fx.service_s)
        arrivals = float(rng.poisson(thinking * self.send)) if thinking > 0 else 0.0
        service = float(rng.poisson(fx.cap))
        done = min(arrivals + self.queued, service)
        self.queued = max(0.0, self.queued + arrivals - done)
        self.busy_rate = 0.7 * self.busy_rate + 0.3 * done
        self.arrival_rate = 0.7 * self.arrival_rate + 0.3 * arrivals
        p_queue, queue_s = _erlang_c(self.arrival_rate, fx.cap, self.m.cores)
        return int(done), _Wait(self.queued / fx.cap, p_queue, queue_s)


class _Client:
    """The load generator's side: each second's requests, their percentiles and the pooled window."""
    def __init__(self, mix: _Mix, window_s: int, slo: Mapping[str, float]):
        self.mix, self.slo = mix, slo
        self.window = TrailingWindow(window_s)

    def second(self, t: int, n: int, wait: _Wait, fx: _Effects, error_prob: float,
               rng: np.random.Generator) -> dict[str, float | int | None]:
        """Draw second t's n completed requests; return the collector's client columns and the SLO label."""
        _, base_ms = self.mix.draw_ms(n, rng)
        # Contention for the cores slows every request of a second alike, more as they fill.
        shared = float(np.exp(rng.normal(0, CONTENTION_SIGMA * min(1.0, n / fx.cap))))
        latency_ms = base_ms * shared * fx.slow * fx.cpu_slow + 1000 * (fx.add_s + wait.draw_s(n, rng))
        ok = rng.random(n) >= error_prob
        stats = client_stats(latency_ms, ok)
        stats.update(self.window.add(t, latency_ms, ok))
        stats["slo_violation"] = violates_slo(stats["latency_p95_window_ms"], stats["error_rate_window"], self.slo)
        return stats


def _simulate(m: TargetModel, plan_users: np.ndarray, spawn: np.ndarray, fault: np.ndarray,
              intensity: np.ndarray, client: _Client, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Run the closed loop second by second; return column -> values (all but timestamp, phase, fault)."""
    n = len(plan_users)
    cols = {c: np.full(n, np.nan) for c in COLUMNS if c not in ("timestamp", "phase", "fault")}
    loop = _ClosedLoop(m)
    leak_mb = 0.0
    # The backlog and the closed loop make each second depend on the last.
    for t in range(n):
        users = loop.ramp(plan_users[t], spawn[t])
        kind, k = fault[t], intensity[t]
        fx = _fault_effects(kind, k, m)
        leak_mb = (min(leak_mb + 20.0 * k * m.workers, 1024.0 * m.workers) if kind == "memory"
                   else max(0.0, leak_mb - 200.0))
        rps, wait = loop.serve(fx, rng)
        error_prob = min(1.0, m.base_error_prob + (k if kind == "errors" else 0.0))
        for col, value in client.second(t, rps, wait, fx, error_prob, rng).items():
            cols[col][t] = np.nan if value is None else value
        err, wait_s = cols["error_rate"][t], wait.mean_s
        cols["elapsed_s"][t] = t
        cols["users"][t] = round(users)
        cols["fault_intensity"][t] = k
        cols["target_up"][t] = 1
        # The server's and the process's figures draw their noise in this order, after the client's.
        busy = min(1.0, rps / max(fx.cap, 1e-9))
        cpu = min(100.0 * m.cores, m.cpu_idle_pct + 100 * m.cores * busy * 0.85 + 100 * fx.cpu_hog)
        cpu *= float(np.exp(rng.normal(0, 0.05)))
        in_flight = min(m.workers * m.threads, rps * min(fx.service_s + wait_s, 5.0) + loop.queued)
        _server_columns(cols, t, rps, err, wait_s, fx, kind, m, rng)
        _process_columns(cols, t, cpu, rps, in_flight, leak_mb, m, rng)
    return cols


def _server_columns(cols: dict[str, np.ndarray], t: int, rps: float, err: float, wait_s: float,
                    fx: _Effects, kind: str, m: TargetModel, rng: np.random.Generator) -> None:
    """Fill the server-side (srv_*) columns of second t, as the target's /metrics would show them."""
    srv_wait = min(wait_s, m.workers * m.threads / fx.cap)  # the accept queue is not counted server-side
    cols["srv_rps"][t] = rps * float(np.exp(rng.normal(0, 0.03)))
    cols["srv_error_rate"][t] = err * (1.0 if kind == "errors" else 0.5) if rps >= 1 else np.nan
    for col, base_ms, spread in (("srv_latency_p95_ms", m.base_p95_ms, 1.6), ("srv_latency_p50_ms", m.base_p50_ms, 0.7),
                                 ("srv_latency_p99_ms", m.base_p99_ms, 2.3)):
        cols[col][t] = fx.latency_ms(base_ms, spread * srv_wait) * float(np.exp(rng.normal(0, 0.08)))
    cols["target_workers"][t] = m.workers


def _process_columns(cols: dict[str, np.ndarray], t: int, cpu: float, rps: float, in_flight: float,
                     leak_mb: float, m: TargetModel, rng: np.random.Generator) -> None:
    """Fill the target process's and the host's columns of second t (CPU, memory, threads, fds)."""
    cols["cpu_percent"][t] = cpu
    cols["rss_mb"][t] = m.rss_base_mb + 0.4 * in_flight + leak_mb + rng.normal(0, 1.5)
    cols["threads"][t] = m.workers * (m.threads + 3) + 1
    cols["sys_cpu_percent"][t] = min(100.0, 4 + (cpu + 8 + 0.5 * rps) / m.cores + rng.normal(0, 2))
    cols["loadgen_cpu_percent"][t] = max(0.0, 8 + 0.5 * rps + rng.normal(0, 2))
    cols["srv_in_flight"][t] = round(in_flight)
    cols["fds"][t] = 25 + m.workers * 6 + round(in_flight)
    cols["sys_mem_percent"][t] = 38 + (cols["rss_mb"][t] + 300) / 80


SERVER_ONLY = ["srv_rps", "srv_error_rate", "srv_latency_p95_ms", "srv_latency_p50_ms",
               "srv_latency_p99_ms", "srv_in_flight", "target_workers"]


def _add_gaps(frame: pd.DataFrame, rng: np.random.Generator, m: TargetModel) -> None:
    """Blank some seconds like a collector would: failed scrapes and lost seconds."""
    n = len(frame)
    # The labels and the plan (known in advance) stay: the collector writes them for every second.
    measured = [c for c in COLUMNS if c not in ("timestamp", "elapsed_s", "phase", "users", "fault",
                                                  "fault_intensity", "slo_violation", "target_up",
                                                  "planned_users", "planned_rate")]
    for t in np.flatnonzero(rng.random(n) < m.gap_rate):
        length = int(rng.integers(6, 13)) if rng.random() < m.long_gap_share else int(rng.integers(1, 4))
        rows = frame.index[t:t + length]
        if rng.random() < 0.5:
            frame.loc[rows, SERVER_ONLY] = np.nan        # /metrics did not answer
        else:
            frame.loc[rows, measured] = np.nan           # the whole second was lost
            frame.loc[rows, "slo_violation"] = 0         # no data is not a violation
        frame.loc[rows, "target_up"] = 0


def write_run(frame: pd.DataFrame, folder: str | Path) -> Path:
    """Write a synthetic frame as a run folder (run.json + metrics.csv) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / METRICS_CSV, frame[COLUMNS].to_csv(index=False, float_format="%.4f"))
    meta = dict(frame.attrs.get("meta") or {"run_id": folder.name, "status": "complete"})
    n = len(frame)
    meta.update(started_at=frame["timestamp"].iloc[0] if n else None,
                ended_at=(T0 + pd.Timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    write_run_json(folder, meta)
    return folder


def synthetic_samples(duration_s: int = 60, rps: float = 30.0, seed: int = 0,
                      endpoints: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """Simulate Locust's per-request samples (ts, response_time_ms, ok, name) for endpoint profiling."""
    rng = np.random.default_rng(seed)
    endpoints = endpoints or ENDPOINTS
    count = int(rng.poisson(rps * duration_s))
    mix = _Mix.of({e: endpoints[e]["weight"] for e in endpoints}, endpoints)
    pick, latency_ms = mix.draw_ms(count, rng)
    names = mix.names
    fail = np.array([endpoints[e].get("error_prob", 0.002) for e in names])[pick]
    return pd.DataFrame({
        "ts": 1_767_225_600.0 + np.sort(rng.uniform(0, duration_s, count)),
        "response_time_ms": np.round(latency_ms, 2),
        "ok": (rng.random(count) >= fail).astype(int),
        "name": np.array(names, dtype=object)[pick],
    })
