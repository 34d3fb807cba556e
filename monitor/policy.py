"""Turn one prediction per second into a recommendation: scale up or down, alert, or nothing.

Two rules, with the same alert episodes:

- `Policy` acts on the forecast: the probability that the SLO is violated at some second
  within the horizon (and the predicted p95 per horizon to size a scale-up), with
  hysteresis, cool-downs and bounds.
- `ReactivePolicy` acts on what is observed now, like the rules most teams run: the
  Kubernetes HPA rule of `monitor.hpa.HpaScaler` (the closed loop's `reactive` scaler) on
  CPU per worker and/or the observed p95, plus a threshold alert that fires once the SLO
  is broken.

Both are pure and deterministic: time is the prediction's own timestamp, never the
clock, so a hand-made sequence always gives the same decisions. "N consecutive
seconds" means N consecutive predictions (the monitor predicts at 1 Hz); a jump in the
timestamps larger than `max_gap_s` breaks a streak.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping

from contract.errors import BadInput
from contract.schema import violates_slo

from .config import apply_values, read_toml
from .hpa import DEFAULT_TIME_FACTOR, HpaConfig, HpaScaler, Step


class Action(StrEnum):
    NONE = "none"
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    ALERT = "alert"


ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)


@dataclass(frozen=True)
class Prediction:
    """One second of monitor input: the model's forecast and what is observed now.

    `probability` is P(SLO violated at some second within the horizon); `p95_ms[h-1]`
    is the predicted latency p95 h seconds ahead (the median), `p95_upper_ms[h-1]` its
    upper quantile (models with an upper head); `stability_percent` defaults to
    100 x (1 - probability). The observed values are the newest second's; `cpu_percent`
    is the target's whole process tree in % of one core (the collector's column).
    """

    timestamp: float
    probability: float | None = None
    p95_ms: tuple[float, ...] = ()
    p95_upper_ms: tuple[float, ...] | None = None
    stability_percent: float | None = None
    observed_p95_ms: float | None = None
    observed_error_rate: float | None = None
    slo_violation: bool | None = None
    workers: int | None = None
    cpu_percent: float | None = None
    target_up: bool = True
    regime: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "p95_ms", tuple(float(v) for v in self.p95_ms))
        if self.p95_upper_ms is not None:
            object.__setattr__(self, "p95_upper_ms", tuple(float(v) for v in self.p95_upper_ms))
        p = self.probability
        if p is not None and math.isfinite(p):
            if not (-1e-6 <= p <= 1.0 + 1e-6):
                raise ValueError(f"probability must be within 0..1, got {p}")
            p = min(max(float(p), 0.0), 1.0)    # float32 rounding of a sigmoid
            object.__setattr__(self, "probability", p)
        if self.stability_percent is None and p is not None:
            object.__setattr__(self, "stability_percent", 100.0 * (1.0 - p))

    @property
    def horizon_s(self) -> int:
        return len(self.p95_ms)

    def snapshot(self) -> dict[str, Any]:
        """Return the prediction as a JSON-safe dict (NaN becomes None)."""
        out = asdict(self)
        out["p95_ms"] = [_finite(v) for v in self.p95_ms]
        if self.p95_upper_ms is not None:
            out["p95_upper_ms"] = [_finite(v) for v in self.p95_upper_ms]
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = _finite(value)
        return out


@dataclass(frozen=True)
class Decision:
    """What to do this second, why, and the prediction that caused it.

    `action` is what to do now (`amount` workers for a scale action, 0 otherwise).
    `withheld` names an action the rule wanted but held back (cool-down, max_workers);
    then `action` is `none` and `reason` says why. `alert_active` is true while an
    alert episode lasts (from the alert until the risk has stayed low), so a sink can
    keep an alert alive and resolve it.
    """

    action: Action
    amount: int
    reason: str
    prediction: dict[str, Any]
    timestamp: float = 0.0
    withheld: Action | None = None
    workers: int | None = None
    desired_workers: int | None = None
    alert_active: bool = False
    policy: str = ""

    @property
    def taken(self) -> bool:
        return self.action is not Action.NONE

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-safe dict."""
        out = asdict(self)
        out["action"] = str(self.action)
        out["withheld"] = str(self.withheld) if self.withheld else None
        return out


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds of the predictive policy (probabilities are P(SLO violation within horizon)).

    Hysteresis: a scale-up needs the probability above `up_probability` for `up_for_s`
    consecutive seconds, a scale-down below `down_probability` for `down_for_s`. After
    any scale action, scale-ups wait `cooldown_up_s` and scale-downs `cooldown_down_s`.
    A scale-up adds `step` workers, or, when `slo_latency_p95_ms` is set, enough to
    bring the predicted peak p95 back under the SLO if latency fell in proportion to
    workers (at most `max_step`). A scale-down removes `down_step` only while the
    observed SLO holds and the CPU per remaining worker stays under
    `down_max_cpu_percent` (% of one core; None ignores CPU).
    """

    preset: str = "default"
    up_probability: float = 0.5
    up_for_s: int = 3
    down_probability: float = 0.1
    down_for_s: int = 30
    alert_probability: float = 0.8
    alert_for_s: int = 5
    alert_clear_probability: float = 0.5
    alert_clear_for_s: int = 10
    alert_repeat_s: float = 60.0
    alert_at_max_workers: bool = True
    cooldown_up_s: float = 15.0
    cooldown_down_s: float = 60.0
    min_workers: int = 1
    max_workers: int = 8
    step: int = 1
    max_step: int = 2
    down_step: int = 1
    slo_latency_p95_ms: float | None = None
    down_max_cpu_percent: float | None = 60.0
    max_gap_s: float = 2.5

    def validate(self, origin: str = "policy") -> "PolicyConfig":
        _check_probabilities(self, origin, ("up_probability", "down_probability",
                                            "alert_probability", "alert_clear_probability"))
        _check_at_least(self, origin, 1, ("up_for_s", "down_for_s", "alert_for_s",
                                          "alert_clear_for_s", "min_workers", "step", "down_step"))
        _check_at_least(self, origin, 0, ("alert_repeat_s", "cooldown_up_s", "cooldown_down_s"))
        _check_common(self, origin)
        if self.down_probability > self.up_probability:
            _fail(origin, "down_probability", f"{self.down_probability:g} is above up_probability "
                  f"{self.up_probability:g}; the scale-down threshold must be the lower one")
        if self.alert_clear_probability > self.alert_probability:
            _fail(origin, "alert_clear_probability", f"{self.alert_clear_probability:g} is above "
                  f"alert_probability {self.alert_probability:g}")
        if self.down_max_cpu_percent is not None and self.down_max_cpu_percent <= 0:
            _fail(origin, "down_max_cpu_percent", "must be positive")
        return self


@dataclass(frozen=True)
class ReactiveConfig:
    """The reactive policy's file: Kubernetes' HPA rule (`monitor.hpa.HpaScaler`) and the SLO alert.

    `metric` is "cpu" (CPU per worker against `target_cpu_percent`), "slo" (the observed
    p95 against `slo_latency_p95_ms`) or "cpu_or_slo" (both; the larger recommendation
    wins, and a missing reading blocks a scale-down, as the HPA does with several metrics).
    Every sync: desired = ceil(workers x metric / target), or no change while the ratio is
    within `tolerance` of 1; a scale-down takes the highest recommendation of the last
    `stabilization_down_s` seconds (the count at the first prediction counts as one);
    scale-ups within any `cooldown_up_s` seconds add at most max(`max_step`, 100 % of the
    count) workers; always within `min_workers`..`max_workers`.

    The periods are the HPA's defaults times `time_factor`, the closed loop's 1/15 by
    default (sync 1 s, window 20 s, scale-up period 4 s; 1.0 gives a cluster's 15 s, 300 s,
    60 s). `stabilization_down_s` and `cooldown_up_s`, when set, are the monitor's seconds
    and replace the scaled default: `cooldown_up_s` is the HPA's scale-up period, not a
    pause. `slo_for_s` > 1 makes the "slo" metric the lowest p95 of the last `slo_for_s`
    seconds, so a scale-up on the SLO needs that many seconds in a row above it.

    The alert is the SLO state, not the HPA: it fires after `alert_for_s` seconds in
    violation (`slo_violation`, or the observed p95 / error rate against
    `slo_latency_p95_ms` / `slo_error_rate`), repeats every `alert_repeat_s` and clears
    after `alert_clear_for_s` seconds without. The earlier rule's `step`, `ok_for_s` and
    `cooldown_down_s` mean nothing to the HPA and are refused (`RETIRED_REACTIVE`).
    """

    preset: str = "hpa"
    metric: str = "cpu"
    target_cpu_percent: float = 70.0
    tolerance: float = 0.1
    time_factor: float = DEFAULT_TIME_FACTOR
    stabilization_down_s: float | None = None     # None: 300 s x time_factor
    cooldown_up_s: float | None = None            # None: 60 s x time_factor
    max_step: int = 4
    slo_for_s: int = 1
    alert_for_s: int = 5
    alert_clear_for_s: int = 10
    alert_repeat_s: float = 60.0
    min_workers: int = 1
    max_workers: int = 8
    slo_latency_p95_ms: float = 800.0
    slo_error_rate: float = 0.02
    max_gap_s: float = 2.5

    def validate(self, origin: str = "policy") -> "ReactiveConfig":
        if self.metric not in REACTIVE_METRICS:
            _fail(origin, "metric", f"{self.metric!r}; expected one of {', '.join(REACTIVE_METRICS)}")
        _check_at_least(self, origin, 1, ("slo_for_s", "alert_for_s", "alert_clear_for_s",
                                          "min_workers", "max_step"))
        _check_at_least(self, origin, 0, ("tolerance", "alert_repeat_s", "slo_error_rate"))
        for name in ("target_cpu_percent", "slo_latency_p95_ms", "time_factor", "cooldown_up_s"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                _fail(origin, name, "must be positive")
        if self.stabilization_down_s is not None and self.stabilization_down_s < 0:
            _fail(origin, "stabilization_down_s", "must not be negative")
        if self.max_workers < self.min_workers:
            _fail(origin, "max_workers", f"{self.max_workers} is below min_workers {self.min_workers}")
        if self.max_gap_s < 1:
            _fail(origin, "max_gap_s", f"{self.max_gap_s:g} is below 1 (predictions come at 1 Hz)")
        return self

    def hpa(self, metric: str) -> HpaConfig:
        """The `HpaScaler` parameters of one metric ("cpu" or "slo"); HpaConfig keeps cluster seconds."""
        f = self.time_factor
        base = HpaConfig(metric=metric, target=self.target_cpu_percent if metric == "cpu" else self.slo_latency_p95_ms,
                         tolerance=self.tolerance, up_pods=self.max_step, time_factor=f,
                         min_workers=self.min_workers, max_workers=self.max_workers)
        own = {"stabilization_down_s": self.stabilization_down_s, "up_period_s": self.cooldown_up_s}
        return replace(base, **{k: v / f for k, v in own.items() if v is not None})


# Keys of the reactive rule before it became the HPA's: refused, with what to set instead.
RETIRED_REACTIVE = {
    "step": "the HPA rule sizes a scale-up as ceil(workers x metric / target), at most max(max_step, 100 %) "
            "per cooldown_up_s",
    "ok_for_s": "a scale-down waits for the stabilization_down_s window of lower recommendations; set that",
    "cooldown_down_s": "a scale-down waits for the stabilization_down_s window, not a cool-down; set that",
}


REACTIVE_METRICS = ("cpu", "slo", "cpu_or_slo")

PRESETS: dict[str, PolicyConfig] = {
    "default": PolicyConfig(),
    # The guide's rule, "scale up when the predicted stability drops below 80 %"
    # (probability above 0.2), acted on at once; the cool-downs and the low scale-down
    # threshold are the least that keeps it from flapping.
    "guide": PolicyConfig(preset="guide", up_probability=0.2, up_for_s=1,
                          down_probability=0.05, down_for_s=30, alert_probability=0.5,
                          alert_for_s=5, alert_clear_probability=0.2, cooldown_up_s=10.0,
                          cooldown_down_s=60.0),
}

REACTIVE_PRESETS: dict[str, ReactiveConfig] = {
    "hpa": ReactiveConfig(),
    "slo": ReactiveConfig(preset="slo", metric="slo"),
    "cpu_or_slo": ReactiveConfig(preset="cpu_or_slo", metric="cpu_or_slo"),
}

KINDS = ("predictive", "reactive")


# ---------------------------------------------------------------- the rules


class _Streak:
    """Consecutive predictions for which a condition held."""

    def __init__(self):
        self.count = 0

    def update(self, holds: bool, broken: bool) -> int:
        self.count = (1 if broken else self.count + 1) if holds else 0
        return self.count


class _Rules:
    """Streaks, alert episodes and the decision record of both policies; the predictive one's bounds and cool-downs."""

    kind = ""

    def __init__(self, config):
        self.config = config.validate()
        self.reset()

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.config.preset}"

    def reset(self) -> None:
        """Forget all state (streaks, cool-downs, alert episode)."""
        self._last_t: float | None = None
        self._workers: int | None = None
        self._last_scale_t: float | None = None
        self._last_alert_t: float | None = None
        self._alert_active = False
        self._streaks: dict[str, _Streak] = {}

    def decide(self, p: Prediction) -> Decision:
        """Return the decision for this second's prediction."""
        if self._last_t is not None and p.timestamp <= self._last_t:
            raise ValueError(f"prediction timestamps must increase: {p.timestamp} after {self._last_t}")
        self._broken = self._last_t is None or p.timestamp - self._last_t > self.config.max_gap_s
        self._last_t = p.timestamp
        if p.workers is not None:
            self._workers = int(p.workers)
        if not p.target_up:
            self._streaks.clear()
            return self._none(p, "target down: no action on missing data")
        return self._decide(p)

    def _decide(self, p: Prediction) -> Decision:
        raise NotImplementedError

    def _streak(self, name: str, holds: bool) -> int:
        return self._streaks.setdefault(name, _Streak()).update(holds, self._broken)

    # decisions

    def _decision(self, p: Prediction, action: Action, amount: int, reason: str,
                  withheld: Action | None = None, desired: int | None = None) -> Decision:
        return Decision(action=action, amount=amount, reason=reason, prediction=p.snapshot(),
                        timestamp=p.timestamp, withheld=withheld, workers=self._workers,
                        desired_workers=desired, alert_active=self._alert_active, policy=self.name)

    def _none(self, p: Prediction, reason: str) -> Decision:
        return self._decision(p, Action.NONE, 0, reason)

    def _since_scale(self, t: float) -> float:
        return math.inf if self._last_scale_t is None else t - self._last_scale_t

    def _scale_up(self, p: Prediction, amount: int, why: str) -> Decision:
        c, w = self.config, self._workers
        wait = c.cooldown_up_s - self._since_scale(p.timestamp)
        if wait > 0:
            return self._decision(p, Action.NONE, 0, f"{why}; held: cool-down, {wait:g} s left",
                                  withheld=Action.SCALE_UP)
        if w is not None:
            if w >= c.max_workers:
                return self._decision(p, Action.NONE, 0, f"{why}; held: at max_workers {c.max_workers}",
                                      withheld=Action.SCALE_UP, desired=w)
            amount = min(amount, c.max_workers - w)
        self._scaled(p.timestamp, None if w is None else w + amount)
        return self._decision(p, Action.SCALE_UP, amount, why,
                              desired=None if w is None else w + amount)

    def _scale_down(self, p: Prediction, amount: int, why: str) -> Decision:
        c, w = self.config, self._workers
        if w is None:
            return self._none(p, f"{why}; no scale-down while the worker count is unknown")
        if w <= c.min_workers:
            # The steady state of an idle service: not worth a "held" line every second.
            return self._none(p, f"{why}; at min_workers {c.min_workers}")
        wait = c.cooldown_down_s - self._since_scale(p.timestamp)
        if wait > 0:
            return self._decision(p, Action.NONE, 0, f"{why}; held: cool-down, {wait:g} s left",
                                  withheld=Action.SCALE_DOWN)
        amount = min(amount, w - c.min_workers)
        self._scaled(p.timestamp, w - amount)
        return self._decision(p, Action.SCALE_DOWN, amount, why, desired=w - amount)

    def _scaled(self, t: float, workers: int | None) -> None:
        self._last_scale_t = t
        if workers is not None:
            self._workers = workers
        # A new level needs a full streak before the next move in either direction.
        self._streaks.pop("up", None)
        self._streaks.pop("down", None)

    def _alert(self, p: Prediction, why: str) -> Decision | None:
        """Start or repeat an alert episode; None while a repeat is not yet due."""
        t = p.timestamp
        if self._alert_active and self._last_alert_t is not None \
                and t - self._last_alert_t < self.config.alert_repeat_s:
            return None
        self._alert_active = True
        self._last_alert_t = t
        return self._decision(p, Action.ALERT, 0, why)

    def _clear_alert(self) -> None:
        self._alert_active = False
        self._last_alert_t = None


class Policy(_Rules):
    """Predictive policy: act on the forecast's probability of an SLO violation within the horizon."""

    kind = "predictive"

    def __init__(self, config: PolicyConfig | None = None, **overrides):
        base = config or PRESETS["default"]
        super().__init__(apply_values(base, overrides, "policy", "policy.") if overrides else base)

    @classmethod
    def preset(cls, name: str, **overrides) -> "Policy":
        """Return the policy of a named preset ("default", "guide"), with overrides."""
        return cls(policy_config(name, overrides))

    def risk(self, p: Prediction) -> float | None:
        """P(violation within the horizon); without one, 1/0 from the predicted p95 vs the SLO."""
        if p.probability is not None and math.isfinite(p.probability):
            return float(p.probability)
        slo = self.config.slo_latency_p95_ms
        peak = _peak(p.p95_ms)
        if slo is not None and peak is not None:
            return 1.0 if peak > slo else 0.0
        return None

    def _decide(self, p: Prediction) -> Decision:
        c = self.config
        risk = self.risk(p)
        if risk is None:
            self._streaks.clear()
            return self._none(p, "no forecast yet")
        up = self._streak("up", risk > c.up_probability)
        down = self._streak("down", risk < c.down_probability)
        hot = self._streak("hot", risk > c.alert_probability)
        cold = self._streak("cold", risk < c.alert_clear_probability)
        if self._alert_active and cold >= c.alert_clear_for_s:
            self._clear_alert()

        held: Decision | None = None
        alert_why = None
        if hot >= c.alert_for_s:
            alert_why = f"probability {risk:.2f} > {c.alert_probability:g} for {hot} s"
        if up >= c.up_for_s:
            why = f"probability {risk:.2f} > {c.up_probability:g} for {up} s"
            decision = self._scale_up(p, self._up_amount(p), why)
            if decision.taken:
                return decision
            held = decision
            if c.alert_at_max_workers and self._workers is not None and self._workers >= c.max_workers:
                alert_why = alert_why or f"{why}, but already at max_workers {c.max_workers}"
        if alert_why:
            decision = self._alert(p, alert_why)
            if decision is not None:
                return decision
        if held is not None:
            return held
        if down >= c.down_for_s:
            why = f"probability {risk:.2f} < {c.down_probability:g} for {down} s"
            blocker = self._down_blocker(p)
            if blocker:
                return self._none(p, f"{why}; {blocker}")
            return self._scale_down(p, c.down_step, why)
        return self._none(p, f"probability {risk:.2f}")

    def _up_amount(self, p: Prediction) -> int:
        c, w = self.config, self._workers
        peak = _peak(p.p95_ms)
        if c.slo_latency_p95_ms is None or peak is None or not w:
            return c.step
        need = math.ceil(w * peak / c.slo_latency_p95_ms - 1e-9) - w
        return max(c.step, min(c.max_step, need))

    def _down_blocker(self, p: Prediction) -> str | None:
        c, w = self.config, self._workers
        if p.slo_violation:
            return "held: the SLO is violated now"
        if c.down_max_cpu_percent is not None and p.cpu_percent is not None and w and w > c.min_workers:
            left = max(w - c.down_step, c.min_workers)
            per = p.cpu_percent / left
            if per >= c.down_max_cpu_percent:
                return (f"CPU would be {per:.0f} % per worker on {left} workers "
                        f"(limit {c.down_max_cpu_percent:g} %)")
        return None


# A scale the target has not shown this long after the decision failed or was refused (a
# bound, nobody acting on it): the count the target reports stands again.
PENDING_S = 5.0


class ReactivePolicy(_Rules):
    """Reactive policy: `HpaScaler` on current CPU and/or p95, and the classic alert once the SLO is broken.

    A thin wrapper: the scaler decides the worker count (tolerance, stabilisation, rate
    limits, bounds), the wrapper turns its `Step` into a `Decision`. Its clock is whole
    seconds since the first prediction (the monitor's 1 Hz ticks, so a tick's jitter never
    skips a sync). As the HPA reads the count it asked for (the scale's spec), the count a
    scale decision asked for stands until the target reports it, at most `PENDING_S`.
    """

    kind = "reactive"

    def __init__(self, config: ReactiveConfig | None = None, **overrides):
        base = config or REACTIVE_PRESETS["hpa"]
        if overrides:
            _refuse_retired(overrides, "policy")
            base = apply_values(base, overrides, "policy", "policy.")
        super().__init__(base)

    @classmethod
    def preset(cls, name: str, **overrides) -> "ReactivePolicy":
        """Return the reactive policy of a named preset ("hpa", "slo", "cpu_or_slo")."""
        return cls(reactive_config(name, overrides))

    def reset(self) -> None:
        super().reset()
        c = self.config
        self.hpa = HpaScaler(c.hpa("slo" if c.metric == "slo" else "cpu"))
        # cpu_or_slo: the second metric's recommendation (its `raw` only), the larger one wins.
        self._slo_rule = HpaScaler(c.hpa("slo")) if c.metric == "cpu_or_slo" else None
        self._t0: float | None = None
        self._p95s: deque[float | None] = deque(maxlen=c.slo_for_s)
        self._asked: tuple[float, int] | None = None

    def violated(self, p: Prediction) -> bool | None:
        """The current second's SLO state: given, or from the observed p95 and error rate."""
        if p.slo_violation is not None:
            return bool(p.slo_violation)
        c = self.config
        known = [v for v in (p.observed_p95_ms, p.observed_error_rate) if v is not None and math.isfinite(v)]
        if not known:
            return None
        return bool(violates_slo(p.observed_p95_ms, p.observed_error_rate,
                                 {"latency_p95_ms": c.slo_latency_p95_ms, "error_rate": c.slo_error_rate}))

    def _decide(self, p: Prediction) -> Decision:
        c = self.config
        bad = self.violated(p)
        in_violation = self._streak("bad", bad is True)
        fine = self._streak("ok", bad is False)
        if self._alert_active and fine >= c.alert_clear_for_s:
            self._clear_alert()
        if self._broken:
            self._p95s.clear()
        self._p95s.append(_finite(p.observed_p95_ms))
        if self._workers is None:
            return self._none(p, "worker count unknown")
        w = self._workers = self._current(p.timestamp, self._workers)
        step = self._step(p, w)
        alert = f"SLO violated for {in_violation} s" if in_violation >= c.alert_for_s else None
        if step.desired > w:
            return self._scaled_to(p, step, Action.SCALE_UP)
        if step.recommended is not None and step.recommended > w:
            # Held by the rate limit or at max_workers: said once by the sinks, as a hold.
            bound = f"; held: at max_workers {c.max_workers}" if w >= c.max_workers else ""
            held = self._decision(p, Action.NONE, 0, step.reason + bound, withheld=Action.SCALE_UP, desired=w)
            fired = self._alert(p, alert) if alert else None
            return fired or held
        if alert:
            fired = self._alert(p, alert)
            if fired is not None:
                return fired
        if step.desired < w:
            return self._scaled_to(p, step, Action.SCALE_DOWN)
        floor = (f"; at min_workers {c.min_workers}"
                 if step.recommended is not None and step.recommended < w <= c.min_workers else "")
        return self._none(p, step.reason + floor)

    def _step(self, p: Prediction, w: int) -> Step:
        """The scaler's sync for this second on CPU per worker (of `w`, the closed loop's reading) and/or the p95."""
        c = self.config
        cpu = p.cpu_percent / w if w > 0 and p.cpu_percent is not None and math.isfinite(p.cpu_percent) else None
        window = list(self._p95s)
        p95 = min(window) if len(window) == c.slo_for_s and None not in window else None
        t = self._clock(p.timestamp)
        if self._slo_rule is None:
            return self.hpa.step(t, w, p95 if c.metric == "slo" else cpu)
        extra = None
        if self.hpa.due(t):
            recommended, why = self._slo_rule.raw(w, p95)
            if recommended is None:
                extra = (w, f"{why}: no scale-down") if cpu is not None else None
            elif cpu is None and recommended < w:
                extra = (w, f"{why}; no cpu reading: no scale-down")
            else:
                extra = (recommended, why)
        return self.hpa.step(t, w, cpu, extra=extra)

    def _clock(self, timestamp: float) -> float:
        if self._t0 is None:
            self._t0 = timestamp
        return float(round(timestamp - self._t0))

    def _current(self, timestamp: float, reported: int) -> int:
        if self._asked is not None:
            at, count = self._asked
            if reported != count and timestamp - at < PENDING_S:
                return count
            self._asked = None
        return reported

    def _scaled_to(self, p: Prediction, step: Step, action: Action) -> Decision:
        self._asked = (p.timestamp, step.desired)
        c = self.config
        bound = (f"; at most max_workers {c.max_workers}"
                 if step.recommended is not None and step.recommended > step.desired == c.max_workers else "")
        return self._decision(p, action, abs(step.change), step.reason + bound, desired=step.desired)


# ---------------------------------------------------------------- building from presets and files


def policy_config(preset: str = "default", overrides: Mapping[str, Any] | None = None,
                  origin: str = "policy") -> PolicyConfig:
    """Return the predictive preset `preset` with `overrides` applied and validated."""
    base = _preset(PRESETS, preset, origin)
    return apply_values(base, dict(overrides or {}), origin, "policy.").validate(origin)


def reactive_config(preset: str = "hpa", overrides: Mapping[str, Any] | None = None,
                    origin: str = "policy") -> ReactiveConfig:
    """Return the reactive preset `preset` with `overrides` applied and validated."""
    base = _preset(REACTIVE_PRESETS, preset, origin)
    values = dict(overrides or {})
    _refuse_retired(values, origin)
    return apply_values(base, values, origin, "policy.").validate(origin)


def load_policy(path: str | Path | None = None, *, kind: str | None = None,
                preset: str | None = None, **overrides) -> Policy | ReactivePolicy:
    """Build a policy from the `[policy]` table of a TOML file and/or options.

    Options win over the file; an option left as None keeps the file's value. The
    table's `kind` is "predictive" (default) or "reactive"; `preset` picks the starting
    thresholds ("default"/"guide", or "hpa"/"slo"/"cpu_or_slo").
    """
    origin = "policy"
    table: dict[str, Any] = {}
    if path is not None:
        origin = str(path)
        data = read_toml(path)
        raw = data.get("policy", {})
        if not isinstance(raw, Mapping):
            raise BadInput(f"{origin}: policy: expected a table, got {type(raw).__name__}")
        table = dict(raw)
    kind = kind or table.pop("kind", None) or "predictive"
    table.pop("kind", None)
    if kind not in KINDS:
        raise BadInput(f"{origin}: policy.kind: {kind!r}; expected one of {', '.join(KINDS)}")
    preset = preset or table.pop("preset", None)
    table.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise BadInput(f"{origin}: policy.preset: expected a string, got {preset!r}")
    table.update({k: v for k, v in overrides.items() if v is not None})
    if kind == "reactive":
        return ReactivePolicy(reactive_config(preset or "hpa", table, origin))
    return Policy(policy_config(preset or "default", table, origin))


def _preset(presets: Mapping[str, Any], name: str, origin: str):
    if name not in presets:
        raise BadInput(f"{origin}: policy.preset: unknown preset {name!r}; expected one of "
                       f"{', '.join(presets)}")
    return presets[name]


def _refuse_retired(values: Mapping[str, Any], origin: str) -> None:
    for key, instead in RETIRED_REACTIVE.items():
        if values.get(key) is not None:
            _fail(origin, key, f"not read by the reactive policy since it is the HPA rule: {instead}")


def _check_probabilities(config, origin: str, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            _fail(origin, name, f"{value:g} is not a probability within 0..1")


def _check_at_least(config, origin: str, low: float, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if value < low:
            _fail(origin, name, f"{value:g} is below {low:g}")


def _check_common(config, origin: str) -> None:
    if config.max_workers < config.min_workers:
        _fail(origin, "max_workers", f"{config.max_workers} is below min_workers {config.min_workers}")
    if config.max_step < config.step:
        _fail(origin, "max_step", f"{config.max_step} is below step {config.step}")
    if config.max_gap_s < 1:
        _fail(origin, "max_gap_s", f"{config.max_gap_s:g} is below 1 (predictions come at 1 Hz)")
    if config.slo_latency_p95_ms is not None and config.slo_latency_p95_ms <= 0:
        _fail(origin, "slo_latency_p95_ms", "must be positive")


def _fail(origin: str, key: str, problem: str):
    raise BadInput(f"{origin}: policy.{key}: {problem}")


def _peak(values: tuple[float, ...]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None
