"""The HPA rule and the forecast-led scaler on canned metric series (no processes)."""

from __future__ import annotations

import pytest

from contract.errors import BadInput
from monitor.hpa import HpaConfig, HpaScaler, LeadConfig, LeadScaler


def run(scaler, current, values, start=0.0, dt=1.0):
    """Feed one value per second, applying each decision; return the worker count after each."""
    counts = []
    for i, v in enumerate(values):
        step = scaler.step(start + i * dt, current, v)
        current = step.desired
        counts.append(current)
    return counts


def test_periods_are_the_defaults_times_one_factor():
    c = HpaConfig()
    assert (c.sync_period_s, c.stabilization_down_s, c.up_period_s, c.tolerance) == (15, 300, 60, 0.1)
    assert c.lab("sync_period_s") == pytest.approx(1.0)
    assert c.lab("stabilization_down_s") == pytest.approx(20.0)
    assert c.lab("up_period_s") == pytest.approx(4.0)
    slow = HpaConfig(time_factor=1.0)
    assert slow.lab("stabilization_down_s") == 300


def test_tolerance_keeps_the_count_within_ten_percent():
    hpa = HpaScaler(HpaConfig(target=100.0, max_workers=20))
    assert hpa.step(0, 4, 109.0).desired == 4          # ratio 1.09: within the tolerance
    assert hpa.step(1, 4, 91.0).desired == 4           # ratio 0.91: within it too
    assert hpa.step(2, 4, 112.0).desired == 5          # ceil(4 x 1.12) = 5


def test_desired_is_ceil_of_current_times_ratio():
    hpa = HpaScaler(HpaConfig(target=100.0, max_workers=20))
    step = hpa.step(0, 3, 250.0)
    assert step.recommended == 8 and "ceil(3 x 2.50) = 8" in step.reason
    assert step.desired == 7                           # the rate limit: max(3 + 4, 2 x 3)
    assert HpaScaler(HpaConfig(target=100.0)).step(0, 3, 150.0).desired == 5   # ceil(4.5)


def test_syncs_only_once_per_scaled_period():
    hpa = HpaScaler(HpaConfig(target=100.0, time_factor=2 / 15))   # sync every 2 s
    assert hpa.step(0, 2, 200.0).synced
    later = hpa.step(1, 4, 400.0)
    assert not later.synced and later.desired == 4
    assert hpa.step(2, 4, 400.0).synced


def test_scale_down_waits_for_the_stabilisation_window():
    hpa = HpaScaler(HpaConfig(target=100.0, max_workers=10))
    counts = run(hpa, 2, [200.0] + [10.0] * 30)        # one high second, then far below target
    assert counts[0] == 4
    # the high recommendation (4) holds for the 20 s window, then the count falls
    assert counts[1:20] == [4] * 19
    assert counts[20] == 1 and counts[-1] == 1


def test_scale_down_follows_the_highest_recommendation_of_the_window():
    hpa = HpaScaler(HpaConfig(target=100.0, max_workers=10))
    hpa.step(0, 6, 100.0)                              # recommends 6
    hpa.step(10, 6, 50.0)                              # recommends 3: held at 6
    assert hpa.step(21, 6, 10.0).desired == 3          # the 6 left the window; the 3 is the highest
    assert hpa.step(31, 3, 10.0).desired == 1          # ceil(3 x 0.1) = 1


def test_scale_up_is_limited_to_four_pods_or_double_per_period():
    hpa = HpaScaler(HpaConfig(target=100.0, max_workers=100))
    first = hpa.step(0, 1, 5000.0)                     # wants 50
    assert first.desired == 5 and "rate limit" in first.reason     # max(1 + 4, 2 x 1)
    assert hpa.step(1, 5, 5000.0).desired == 5         # still in the 4 s period started with 1
    assert hpa.step(4, 5, 5000.0).desired == 10        # new period: max(5 + 4, 2 x 5)
    assert hpa.step(8, 10, 5000.0).desired == 20       # 100 % of 10


def test_no_scale_down_on_the_first_readings():
    hpa = HpaScaler(HpaConfig(target=100.0))
    counts = run(hpa, 3, [10.0] * 25)                   # a run's first, nearly empty windows
    assert counts[:19] == [3] * 19 and counts[-1] == 1  # the starting count holds for the window


def test_bounds_clamp_the_count():
    hpa = HpaScaler(HpaConfig(target=100.0, min_workers=2, max_workers=3))
    assert hpa.step(0, 2, 900.0).desired == 3
    hpa2 = HpaScaler(HpaConfig(target=100.0, min_workers=2, stabilization_down_s=0))
    assert hpa2.step(0, 3, 1.0).desired == 2


def test_missing_readings_change_nothing():
    hpa = HpaScaler()
    step = hpa.step(0, 3, None)
    assert step.desired == 3 and "no slo reading" in step.reason


def test_bad_configs_are_refused():
    with pytest.raises(BadInput, match="metric"):
        HpaScaler(HpaConfig(metric="memory"))
    with pytest.raises(BadInput, match="time_factor"):
        HpaScaler(HpaConfig(time_factor=0))
    with pytest.raises(BadInput, match="up_probability"):
        LeadScaler(HpaScaler(), LeadConfig(up_probability=0))


# ---------------------------------------------------------------- the forecast-led scaler

SLO = 2500.0
STEP_AT = 30       # a planned step: the p95 breaks the SLO from this second on


def canned_forecast(t: int, horizon: int) -> tuple[float, ...]:
    """A model that sees the planned step coming: p95 at t+h is 1900 ms before it, 6000 after."""
    return tuple(6000.0 if t + h >= STEP_AT else 1900.0 for h in range(1, horizon + 1))


def observed(t: int) -> float:
    """The SLO window's p95 as measured: the breach shows only once it is there."""
    return 6000.0 if t >= STEP_AT else 1900.0


@pytest.mark.parametrize("lead_s", [1.0, 3.0, 5.0])
def test_predictive_acts_ahead_of_a_planned_step_by_at_least_the_boot_time(lead_s):
    horizon = 8
    lead = LeadScaler(HpaScaler(HpaConfig(target=SLO)), LeadConfig(slo_p95_ms=SLO, lead_s=lead_s))
    reactive = HpaScaler(HpaConfig(target=SLO))
    first_lead = first_reactive = None
    w_lead = w_reactive = 2
    for t in range(60):
        s = lead.step(t, w_lead, observed(t), canned_forecast(t, horizon))
        r = reactive.step(t, w_reactive, observed(t))
        if s.desired > w_lead and first_lead is None:
            first_lead = t
        if r.desired > w_reactive and first_reactive is None:
            first_reactive = t
        w_lead, w_reactive = s.desired, r.desired
    assert first_reactive == STEP_AT
    assert first_lead is not None and STEP_AT - first_lead >= lead_s
    assert w_lead >= 3


def test_predictive_uses_the_upper_quantile_and_the_probability():
    lead = LeadScaler(HpaScaler(HpaConfig(target=SLO)), LeadConfig(slo_p95_ms=SLO, up_probability=0.6))
    assert lead.warning((2000.0, 2100.0), 0.2) is None
    assert lead.warning((2000.0, 2600.0), 0.2) is not None        # breaks in 2 s: within 1 s lead + 1 sync
    assert lead.warning((2000.0, 2000.0, 2000.0, 2600.0), 0.2) is None   # too far ahead to act yet
    assert "P(SLO violation" in lead.warning((2000.0, 2000.0), 0.7)[1]


def test_predictive_waits_for_a_new_worker_before_the_next_forecast_scale_up():
    lead = LeadScaler(HpaScaler(HpaConfig(target=SLO, max_workers=20)), LeadConfig(slo_p95_ms=SLO, settle_s=5))
    counts, w = [], 2
    for t in range(8):       # the forecast stays high (the model does not see the new workers yet)
        w = lead.step(t, w, 1900.0, (3000.0, 3000.0)).desired
        counts.append(w)
    assert counts == [3, 3, 3, 3, 3, 4, 4, 4]


# ---------------------------------------------------------------- as the autoscaler's policy

def test_scaler_policy_reads_its_metric_from_rows_and_keeps_the_asked_count_while_busy():
    from monitor.hpa import ScalerPolicy
    from monitor.policy import Action, Prediction

    policy = ScalerPolicy(HpaScaler(HpaConfig(target=SLO)), "slo")
    decisions = []
    for t, (p95, live) in enumerate([(1900.0, 2), (6000.0, 2), (6000.0, None), (2600.0, 5)]):
        policy.observe({"elapsed_s": t, "latency_p95_window_ms": p95, "target_workers": 2}, live)
        decisions.append(policy.decide(Prediction(timestamp=1000.0 + t)))
    assert [d.action for d in decisions] == [Action.NONE, Action.SCALE_UP, Action.SCALE_UP, Action.NONE]
    assert decisions[1].desired_workers == 5            # ceil(2 x 2.4), within max(2 + 4, 4)
    # busy (no live count): from the 5 asked for, ceil(5 x 2.4) = 12, limited to max 6
    assert decisions[2].amount == 1 and decisions[2].desired_workers == 6
    cpu = ScalerPolicy(HpaScaler(HpaConfig(metric="cpu", target=70.0)), "cpu")
    cpu.observe({"elapsed_s": 0, "cpu_percent": 280.0}, 2)       # 140 % per worker
    assert cpu.decide(Prediction(timestamp=1.0)).desired_workers == 4


def test_scaler_policy_acts_on_the_upper_quantile_when_the_model_has_one():
    from monitor.hpa import ScalerPolicy
    from monitor.policy import Prediction

    policy = ScalerPolicy(LeadScaler(HpaScaler(HpaConfig(target=SLO)), LeadConfig(slo_p95_ms=SLO)), "slo")
    policy.observe({"elapsed_s": 0, "latency_p95_window_ms": 1900.0}, 2)
    median_only = Prediction(timestamp=1.0, probability=0.1, p95_ms=(2000.0, 2100.0))
    assert not policy.decide(median_only).taken
    policy.observe({"elapsed_s": 1, "latency_p95_window_ms": 1900.0}, 2)
    upper = Prediction(timestamp=2.0, probability=0.1, p95_ms=(2000.0, 2100.0), p95_upper_ms=(2400.0, 3000.0))
    d = policy.decide(upper)
    assert d.taken and d.desired_workers == 3 and "forecast p95 3000" in d.reason


def test_the_autoscaler_serves_a_plan_ahead_model_the_scenario_plan_of_its_horizon():
    from contract.scenario import load_scenario

    # The autoscaler hands OnlineModel `plan=scenario.plan_of(<the model's plan column>)`;
    # OnlineModel asks it for the H seconds after the newest row (tests/test_monitor_live.py).
    scenario = load_scenario("scale-spike")          # 3/s until 20 s, 11/s from 21 s (1 s ramp)
    plan = scenario.plan_of("planned_rate")
    ahead = [plan(17 + h) for h in range(1, 5)]
    assert ahead == [scenario.planned(s).rate for s in (18, 19, 20, 21)] and ahead[0] == 3 and ahead[-1] == 11
    assert [plan(58 + h) for h in range(1, 5)] == [3.0] * 4      # past the end: the last second's plan
    assert all(v != v for v in (scenario.plan_of("planned_users")(s) for s in (0, 30)))   # open model: no users

