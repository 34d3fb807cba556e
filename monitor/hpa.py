"""The two scalers of the closed loop: Kubernetes' HPA rule, and the same rule led by the forecast.

`HpaScaler` is the Horizontal Pod Autoscaler's algorithm with its default behaviour
(Kubernetes autoscaling/v2), over one metric series:

- every sync period (15 s) it computes desired = ceil(current x metric / target), or keeps
  `current` when metric / target is within the tolerance (10 %) of 1;
- a scale-down takes the highest recommendation of the last 300 s (the stabilisation
  window), so a dip does not remove workers a moment before they are needed again; the
  count it starts with counts as recommended at its first sync (no scale-down on the
  first, warming-up readings);
- a scale-up adds at most max(4 pods, 100 % of the count at the period's start) per 60 s,
  and a scale-down removes at most 100 % per 15 s (the defaults), within min/max.

A cluster's seconds are not a 60 s lab run's: every period is multiplied by ONE factor,
`time_factor` (default 1/15), so the sync period is 1 s (one collector row), the
stabilisation window 20 s and the scale-up period 4 s. The metric is "slo" (the SLO
window's p95 latency against the SLO's p95 limit), "queue" (the server's p95 queue time
against `target`) or "cpu" (CPU per worker in % of one core against 70 %).

`LeadScaler` is the predictive scaler: the same HPA (its scale-downs, stabilisation and
rate limits), plus a scale-up as soon as the forecast says the SLO will break before a
new worker could be ready: the forecast p95 (its upper quantile when the model has one)
above the SLO at a horizon within `lead_s` + one sync period, or the calibrated warning
probability at least `up_probability`. `lead_s` is the time from TTIN to a new worker
serving, measured on this machine by benchmarks/worker_boot.py (default 1 s: at most
0.8 s there, see benchmarks/README.md). The forecast's scale-up asks for
ceil(current x forecast peak / SLO) workers (at least one more) and enters the
stabilisation window like any recommendation; after one, the next forecast-driven
scale-up waits `settle_s`, the time for the new worker to serve and the model's input
window to show it (the forecaster does not know the worker count).

Both are pure: time is the caller's, and `step` takes the metric (and forecast) of
one moment, so a canned series always gives the same decisions (tests/test_hpa.py).
`monitor.policy.ReactivePolicy` (a reactive policy file of `lab.py monitor`) wraps the
same `HpaScaler`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

from contract.errors import BadInput

HPA_METRICS = ("slo", "queue", "cpu")
DEFAULT_TIME_FACTOR = 1.0 / 15.0
# Measured by benchmarks/worker_boot.py: TTIN -> first answer of the new worker, at most 0.8 s.
DEFAULT_BOOT_LEAD_S = 1.0


@dataclass(frozen=True)
class HpaConfig:
    """The HPA's defaults in cluster seconds; `time_factor` scales every period to the lab's."""

    metric: str = "slo"
    target: float = 2500.0            # ms for slo and queue, % of one core per worker for cpu
    tolerance: float = 0.1
    sync_period_s: float = 15.0
    stabilization_down_s: float = 300.0
    up_pods: int = 4
    up_percent: float = 100.0
    up_period_s: float = 60.0
    down_percent: float = 100.0
    down_period_s: float = 15.0
    time_factor: float = DEFAULT_TIME_FACTOR
    min_workers: int = 1
    max_workers: int = 6

    def validate(self, origin: str = "hpa") -> "HpaConfig":
        if self.metric not in HPA_METRICS:
            raise BadInput(f"{origin}: metric: {self.metric!r}; expected one of {', '.join(HPA_METRICS)}")
        for name in ("target", "time_factor", "sync_period_s", "up_period_s", "down_period_s"):
            if not getattr(self, name) > 0:
                raise BadInput(f"{origin}: {name}: must be positive")
        for name in ("tolerance", "stabilization_down_s", "up_pods", "up_percent", "down_percent"):
            if getattr(self, name) < 0:
                raise BadInput(f"{origin}: {name}: must not be negative")
        if self.min_workers < 1 or self.max_workers < self.min_workers:
            raise BadInput(f"{origin}: min_workers {self.min_workers} and max_workers {self.max_workers}: "
                           f"need 1 <= min_workers <= max_workers")
        return self

    def lab(self, name: str) -> float:
        """A period in the lab's seconds (the cluster's times `time_factor`)."""
        return getattr(self, name) * self.time_factor


@dataclass(frozen=True)
class Step:
    """One sync of a scaler: the worker count to have now, what the rule alone asked, and why."""

    time: float
    current: int
    desired: int
    recommended: int | None
    reason: str
    synced: bool = True

    @property
    def change(self) -> int:
        return self.desired - self.current


class HpaScaler:
    """The HPA algorithm over one metric, pure: `step(t, current, value)` once per moment."""

    def __init__(self, config: HpaConfig | None = None, **overrides):
        self.config = replace(config or HpaConfig(), **overrides).validate()
        self.reset()

    def reset(self) -> None:
        self._last_sync: float | None = None
        self._recommendations: deque[tuple[float, int]] = deque()
        self._events: deque[tuple[float, int]] = deque()     # (time, change) of each scale

    def due(self, t: float) -> bool:
        """Whether a sync is due at `t` (the first call always syncs)."""
        return self._last_sync is None or t - self._last_sync >= self.config.lab("sync_period_s") - 1e-9

    def raw(self, current: int, value: float | None) -> tuple[int | None, str]:
        """desired = ceil(current x value / target), or current within the tolerance; None without a value."""
        c = self.config
        if value is None or not math.isfinite(value):
            return None, f"no {c.metric} reading"
        ratio = value / c.target
        if abs(ratio - 1.0) <= c.tolerance:
            return current, f"{c.metric} {value:.0f} / target {c.target:g} = {ratio:.2f}, within the tolerance"
        desired = math.ceil(current * ratio - 1e-9)
        return desired, f"{c.metric} {value:.0f} / target {c.target:g} = {ratio:.2f}: ceil({current} x {ratio:.2f}) = {desired}"

    def step(self, t: float, current: int, value: float | None, *, extra: tuple[int, str] | None = None) -> Step:
        """Sync at `t` if due: the stabilised, rate-limited worker count to have (`extra` adds a recommendation)."""
        if not self.due(t):
            return Step(t, current, current, None, "between syncs", synced=False)
        if self._last_sync is None:
            # The count it starts with stands for a whole window, as a running deployment's
            # history would: no scale-down on the first, warming-up readings.
            self._recommendations.append((t, current))
        self._last_sync = t
        recommended, why = self.raw(current, value)
        if extra is not None and (recommended is None or extra[0] > recommended):
            recommended, why = extra
        if recommended is None:
            return Step(t, current, current, None, why)
        self._remember(t, recommended)
        desired, note = self._stabilised(current, recommended)
        desired, limit = self._limited(t, current, desired)
        desired = min(max(desired, self.config.min_workers), self.config.max_workers)
        if desired != current:
            self._events.append((t, desired - current))
        longest = max(self.config.lab("up_period_s"), self.config.lab("down_period_s"))
        while self._events and self._events[0][0] <= t - longest:
            self._events.popleft()
        return Step(t, current, desired, recommended, "; ".join(x for x in (why, note, limit) if x))

    def _remember(self, t: float, recommended: int) -> None:
        self._recommendations.append((t, recommended))
        window = self.config.lab("stabilization_down_s")
        while self._recommendations and self._recommendations[0][0] <= t - window:
            self._recommendations.popleft()

    def _stabilised(self, current: int, recommended: int) -> tuple[int, str]:
        """Scale-down: the highest recommendation of the window (scale-up: no window, as the default)."""
        if recommended >= current:
            return recommended, ""
        highest = max((r for _, r in self._recommendations), default=recommended)
        stable = min(current, highest)
        if stable > recommended:
            return stable, f"stabilised at {stable} (highest of the last {self.config.lab('stabilization_down_s'):g} s)"
        return stable, ""

    def _limited(self, t: float, current: int, desired: int) -> tuple[int, str]:
        """The default policies: up by max(4 pods, 100 %) per period, down by 100 % per period."""
        c = self.config
        if desired > current:
            start = current - self._changed_since(t - c.lab("up_period_s"), up=True)
            limit = max(start + c.up_pods, math.floor(start * (1 + c.up_percent / 100.0)))
            if desired > limit:
                return limit, f"rate limit: at most {limit} within {c.lab('up_period_s'):g} s"
        elif desired < current:
            start = current - self._changed_since(t - c.lab("down_period_s"), up=False)
            limit = math.ceil(start * (1 - c.down_percent / 100.0))
            if desired < limit:
                return limit, f"rate limit: at least {limit} within {c.lab('down_period_s'):g} s"
        return desired, ""

    def _changed_since(self, since: float, up: bool) -> int:
        return sum(d for t, d in self._events if t > since and (d > 0) == up)


@dataclass(frozen=True)
class LeadConfig:
    """When the forecast makes the predictive scaler act (times in the lab's seconds)."""

    slo_p95_ms: float = 2500.0
    lead_s: float = DEFAULT_BOOT_LEAD_S
    up_probability: float = 0.5
    settle_s: float = 5.0
    use_upper: bool = True

    def validate(self, origin: str = "lead") -> "LeadConfig":
        if not self.slo_p95_ms > 0:
            raise BadInput(f"{origin}: slo_p95_ms: must be positive")
        if self.lead_s < 0 or self.settle_s < 0:
            raise BadInput(f"{origin}: lead_s and settle_s must not be negative")
        if not 0.0 < self.up_probability <= 1.0:
            raise BadInput(f"{origin}: up_probability: {self.up_probability:g} is not within (0, 1]")
        return self


class LeadScaler:
    """The HPA led by the forecast: scale up before the SLO breaks, by at least the boot time."""

    def __init__(self, hpa: HpaScaler, config: LeadConfig | None = None):
        self.hpa = hpa
        self.config = (config or LeadConfig()).validate()
        self._last_lead_up: float | None = None

    def warning(self, forecast: tuple[float, ...], probability: float | None) -> tuple[float, str] | None:
        """(forecast peak, why) when the SLO is forecast to break within lead + one sync, else None."""
        c = self.config
        reach = c.lead_s + self.hpa.config.lab("sync_period_s")
        finite = [(h, v) for h, v in enumerate(forecast, start=1) if math.isfinite(v)]
        peak = max((v for _, v in finite), default=math.nan)
        first = next((h for h, v in finite if v > c.slo_p95_ms), None)
        if first is not None and first <= math.ceil(reach - 1e-9):
            return peak, f"forecast p95 {forecast[first - 1]:.0f} ms > SLO {c.slo_p95_ms:g} in {first} s (lead {c.lead_s:g} s)"
        if probability is not None and math.isfinite(probability) and probability >= c.up_probability:
            return peak, f"P(SLO violation ahead) {probability:.2f} >= {c.up_probability:g}"
        return None

    def step(self, t: float, current: int, value: float | None, forecast: tuple[float, ...] = (),
             probability: float | None = None) -> Step:
        """One moment: the HPA's decision, raised to the forecast's recommendation when it warns."""
        extra = None
        if self.hpa.due(t):
            warned = self.warning(forecast, probability)
            settled = self._last_lead_up is None or t - self._last_lead_up >= self.config.settle_s
            if warned is not None and settled:
                peak, why = warned
                ratio = peak / self.config.slo_p95_ms if math.isfinite(peak) else 1.0
                extra = (max(current + 1, math.ceil(current * ratio - 1e-9)), why)
        step = self.hpa.step(t, current, value, extra=extra)
        if extra is not None and step.desired > current and step.recommended == extra[0]:
            self._last_lead_up = t
        return step


# ---------------------------------------------------------------- as the autoscaler's policy

# The collector's column each metric reads (cpu is divided by the worker count: per worker).
METRIC_COLUMNS = {"slo": ("latency_p95_window_ms", "latency_p95_ms"), "queue": ("srv_queue_p95_ms",),
                  "cpu": ("cpu_percent",)}


def metric_value(row: dict, metric: str, workers: int | None) -> float | None:
    """The metric of one collector row: the first column with a finite value (CPU per worker)."""
    for column in METRIC_COLUMNS[metric]:
        value = _finite_or_none(row.get(column))
        if value is not None:
            if metric == "cpu":
                return value / workers if workers else None
            return value
    return None


class ScalerPolicy:
    """An `HpaScaler` or `LeadScaler` as the autoscaler's policy: rows in, `Decision`s out.

    `observe(row, workers)` takes the metric from the newest row and the worker count the
    target has now (None while an action is still in progress: then the count the last
    decision asked for stands, as the HPA reads the scale's spec, not the ready pods).
    """

    def __init__(self, scaler: HpaScaler | LeadScaler, metric: str):
        self.scaler, self.metric = scaler, metric
        self.predictive = isinstance(scaler, LeadScaler)
        self.name = f"{'lead' if self.predictive else 'hpa'}:{metric}"
        self._value: float | None = None
        self._workers: int | None = None
        self._time: float | None = None

    def observe(self, row: dict, workers: int | None = None) -> None:
        if workers is not None:
            self._workers = workers
        elif self._workers is None:
            seen = _finite_or_none(row.get("target_workers"))
            self._workers = int(seen) if seen is not None else None
        self._value = metric_value(row, self.metric, self._workers)
        # The row's second is the clock: 1 s apart exactly, where the wall clock jitters.
        self._time = _finite_or_none(row.get("elapsed_s"))

    def decide(self, p):
        from .policy import Action, Decision

        w, t = self._workers, self._time if self._time is not None else p.timestamp
        if w is None or not p.target_up:
            return Decision(Action.NONE, 0, "worker count unknown" if w is None else "target down",
                            p.snapshot(), p.timestamp, policy=self.name)
        if self.predictive:
            upper = p.p95_upper_ms if self.scaler.config.use_upper else None
            step = self.scaler.step(t, w, self._value, upper or p.p95_ms, p.probability)
        else:
            step = self.scaler.step(t, w, self._value)
        action = Action.NONE if step.change == 0 else Action.SCALE_UP if step.change > 0 else Action.SCALE_DOWN
        self._workers = step.desired
        return Decision(action, abs(step.change), step.reason, p.snapshot(), p.timestamp, workers=w,
                        desired_workers=step.desired, policy=self.name)


def _finite_or_none(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
