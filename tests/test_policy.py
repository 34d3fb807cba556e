"""The monitor's policies on hand-made prediction sequences: hysteresis, cool-down, bounds, presets."""

from __future__ import annotations

import pytest

from contract.errors import BadInput
from monitor.policy import (
    Action, Policy, PolicyConfig, Prediction, ReactivePolicy, load_policy, policy_config,
)

T0 = 1_800_000_000.0


def run(policy, probabilities, workers=2, cpu=None, start=0, **extra):
    """Feed one prediction per second; return the decisions."""
    return [policy.decide(Prediction(timestamp=T0 + start + i, probability=p, workers=workers,
                                     cpu_percent=cpu, **extra))
            for i, p in enumerate(probabilities)]


def taken(decisions):
    return [(i, str(d.action), d.amount) for i, d in enumerate(decisions) if d.taken]


# ---------------------------------------------------------------- predictive: hysteresis


def test_scale_up_needs_n_consecutive_seconds_above_the_up_threshold():
    policy = Policy(up_for_s=3, alert_probability=1.0)
    # Two risky seconds then a calm one: no action; the third consecutive risky second acts.
    decisions = run(policy, [0.9, 0.9, 0.2, 0.9, 0.9, 0.9])
    assert taken(decisions) == [(5, "scale_up", 1)]
    assert decisions[5].desired_workers == 3
    assert "for 3 s" in decisions[5].reason
    assert decisions[5].prediction["probability"] == 0.9


def test_alternating_risk_never_scales_and_the_dead_band_holds_still():
    policy = Policy(up_for_s=2, down_for_s=2, cooldown_down_s=0, alert_probability=1.0)
    assert taken(run(policy, [0.9, 0.05] * 20, workers=3)) == []
    # Between the thresholds (down 0.1 < p <= up 0.5): neither direction, however long.
    policy = Policy(down_for_s=2, cooldown_down_s=0)
    assert taken(run(policy, [0.3] * 60, workers=3)) == []


def test_scale_down_needs_a_long_calm_and_stops_at_min_workers():
    policy = Policy(down_for_s=30, cooldown_down_s=0, min_workers=2, down_max_cpu_percent=None)
    decisions = run(policy, [0.01] * 40, workers=3)
    assert taken(decisions) == [(29, "scale_down", 1)]
    # At min_workers the calm steady state is a plain "none", not a held action every second.
    decisions = run(policy, [0.01] * 40, workers=2, start=100)
    assert taken(decisions) == []
    assert all(d.withheld is None for d in decisions)
    assert "at min_workers 2" in decisions[-1].reason


def test_scale_down_is_held_while_the_slo_is_violated_or_cpu_would_be_too_high():
    policy = Policy(down_for_s=3, cooldown_down_s=0, down_max_cpu_percent=60)
    assert taken(run(policy, [0.0] * 5, workers=3, slo_violation=True)) == []
    # 150 % of a core over 2 remaining workers is 75 % each: above the 60 % limit.
    decisions = run(policy, [0.0] * 5, workers=3, cpu=150.0, start=10)
    assert taken(decisions) == []
    assert "75 % per worker" in decisions[-1].reason
    assert taken(run(policy, [0.0] * 5, workers=3, cpu=60.0, start=20)) == [(2, "scale_down", 1)]


# ---------------------------------------------------------------- cool-down and bounds


def test_cool_down_after_a_scale_up_holds_the_next_one_and_says_so():
    policy = Policy(up_for_s=1, cooldown_up_s=10, alert_probability=1.0, max_workers=10)
    decisions = run(policy, [0.9] * 25)
    assert taken(decisions) == [(0, "scale_up", 1), (10, "scale_up", 1), (20, "scale_up", 1)]
    held = decisions[3]
    assert held.action is Action.NONE and held.withheld is Action.SCALE_UP
    assert "cool-down, 7 s left" in held.reason


def test_scale_down_waits_its_own_longer_cool_down_after_a_scale_up():
    policy = Policy(up_for_s=1, down_for_s=2, cooldown_up_s=5, cooldown_down_s=20,
                    alert_probability=1.0, down_max_cpu_percent=None)
    decisions = run(policy, [0.9] + [0.0] * 25, workers=3)
    assert taken(decisions) == [(0, "scale_up", 1), (20, "scale_down", 1)]
    assert decisions[5].withheld is Action.SCALE_DOWN


def test_bounds_clamp_the_amount_and_hold_at_max_workers_with_an_alert():
    policy = Policy(up_for_s=1, step=3, max_step=3, max_workers=4, cooldown_up_s=0,
                    alert_probability=1.0, alert_at_max_workers=True)
    up = policy.decide(Prediction(T0, probability=0.9, workers=2))
    assert (up.action, up.amount, up.desired_workers) == (Action.SCALE_UP, 2, 4)
    # At the bound: the scale-up is impossible, so a human is paged instead (once).
    at_max = run(policy, [0.9] * 5, workers=4, start=1)
    assert taken(at_max) == [(0, "alert", 0)]
    assert "max_workers 4" in at_max[0].reason
    assert at_max[1].withheld is Action.SCALE_UP and "at max_workers 4" in at_max[1].reason


def test_scale_up_is_sized_from_the_predicted_p95_against_the_slo():
    policy = Policy(up_for_s=1, slo_latency_p95_ms=800, step=1, max_step=4, alert_probability=1.0)
    # Peak 1500 ms on 2 workers: ceil(2 x 1500 / 800) = 4 workers, so add 2.
    d = policy.decide(Prediction(T0, probability=0.9, p95_ms=(300, 900, 1500), workers=2))
    assert (d.action, d.amount) == (Action.SCALE_UP, 2)
    # Without a probability the predicted p95 against the SLO is the signal.
    policy = Policy(up_for_s=1, slo_latency_p95_ms=800, alert_probability=1.0)
    assert policy.decide(Prediction(T0, p95_ms=(700, 790), workers=2)).action is Action.NONE
    assert policy.decide(Prediction(T0 + 1, p95_ms=(700, 900), workers=2)).action is Action.SCALE_UP


# ---------------------------------------------------------------- alerts, gaps, target down


def test_alert_episode_fires_once_repeats_after_the_interval_and_clears_after_calm():
    policy = Policy(alert_probability=0.8, alert_for_s=3, alert_repeat_s=10, alert_clear_probability=0.5,
                    alert_clear_for_s=4, up_probability=0.99)
    decisions = run(policy, [0.9] * 15 + [0.2] * 6 + [0.9] * 3)
    assert [i for i, d in enumerate(decisions) if d.action is Action.ALERT] == [2, 12, 23]
    active = [d.alert_active for d in decisions]
    assert active[:2] == [False, False] and all(active[2:18])
    assert active[18:23] == [False] * 5           # four calm seconds ended the episode
    assert active[23]                             # a new episode alerts at once


def test_a_gap_in_the_predictions_breaks_a_streak_and_target_down_acts_on_nothing():
    policy = Policy(up_for_s=3, alert_probability=1.0)
    seq = [Prediction(T0, probability=0.9, workers=2), Prediction(T0 + 1, probability=0.9, workers=2),
           Prediction(T0 + 10, probability=0.9, workers=2), Prediction(T0 + 11, probability=0.9, workers=2)]
    assert taken([policy.decide(p) for p in seq]) == []
    down = [Prediction(T0 + 12 + i, probability=0.9, workers=2, target_up=False) for i in range(5)]
    decisions = [policy.decide(p) for p in down]
    assert taken(decisions) == [] and "target down" in decisions[-1].reason
    with pytest.raises(ValueError):
        policy.decide(Prediction(T0, probability=0.1))


def test_the_same_sequence_gives_the_same_decisions():
    seq = [0.1, 0.6, 0.7, 0.95, 0.9, 0.9, 0.85, 0.4, 0.05] * 8
    policy = Policy()
    first = [d.to_dict() for d in run(policy, seq)]
    policy.reset()
    assert [d.to_dict() for d in run(policy, seq)] == first


# ---------------------------------------------------------------- presets and configuration


def test_guide_preset_scales_up_as_soon_as_stability_drops_below_80_percent():
    policy = Policy.preset("guide")
    assert policy.name == "predictive:guide"
    assert policy.decide(Prediction(T0, probability=0.2, workers=2)).action is Action.NONE    # 80.0 %
    d = policy.decide(Prediction(T0 + 1, probability=0.21, workers=2))                        # 79 %
    assert d.action is Action.SCALE_UP and d.prediction["stability_percent"] == pytest.approx(79.0)
    # The default preset waits for a stronger, longer signal.
    assert taken(run(Policy.preset("default"), [0.3] * 10)) == []


def test_thresholds_from_a_toml_policy_table_with_options_winning(tmp_path):
    path = tmp_path / "monitor.toml"
    path.write_text('[policy]\npreset = "guide"\nup_for_s = 2\nmax_workers = 5\ncooldown_up_s = 0\n'
                    '[[sinks]]\nkind = "webhook"\nurl = "https://example.invalid/x"\n')
    policy = load_policy(path, max_workers=6, up_for_s=None)
    assert isinstance(policy, Policy)
    assert (policy.config.preset, policy.config.up_probability, policy.config.up_for_s,
            policy.config.max_workers) == ("guide", 0.2, 2, 6)
    assert taken(run(policy, [0.3, 0.3])) == [(1, "scale_up", 1)]

    reactive = tmp_path / "reactive.toml"
    reactive.write_text('[policy]\nkind = "reactive"\npreset = "slo"\nslo_for_s = 2\n')
    policy = load_policy(reactive)
    assert isinstance(policy, ReactivePolicy) and policy.config.metric == "slo"


@pytest.mark.parametrize("body, message", [
    ("[policy]\nup_for = 3\n", "policy.up_for: unknown key"),
    ("[policy]\nup_for_s = \"3\"\n", "policy.up_for_s: expected a whole number"),
    ("[policy]\nup_probability = 1.5\n", "policy.up_probability: 1.5 is not a probability"),
    ("[policy]\ndown_probability = 0.6\n", "policy.down_probability: 0.6 is above up_probability"),
    ("[policy]\nmin_workers = 4\nmax_workers = 2\n", "policy.max_workers: 2 is below min_workers 4"),
    ("[policy]\npreset = \"aggressive\"\n", "policy.preset: unknown preset 'aggressive'"),
    ("[policy]\nkind = \"magic\"\n", "policy.kind: 'magic'"),
    ("[policy\n", "invalid TOML"),
])
def test_bad_policy_files_name_the_file_and_the_key(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(BadInput) as err:
        load_policy(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_policy_config_validates_options_too():
    with pytest.raises(BadInput, match="policy.step: 0 is below 1"):
        policy_config("default", {"step": 0})
    with pytest.raises(BadInput, match="policy.step: 0 is below 1"):
        Policy(PolicyConfig(step=0))


def test_a_policy_built_from_a_config_decides_by_its_values():
    policy = Policy(PolicyConfig(max_workers=3, up_for_s=1, cooldown_up_s=0, alert_probability=1.0,
                                 alert_at_max_workers=False))
    decisions = [policy.decide(Prediction(T0 + i, probability=0.9, workers=w)) for i, w in enumerate([2, 3, 3])]
    assert taken(decisions) == [(0, "scale_up", 1)]              # 2 -> 3, then held at max_workers 3
    assert decisions[1].withheld is Action.SCALE_UP and "at max_workers 3" in decisions[1].reason


# ---------------------------------------------------------------- reactive (HPA-like)


def cpu_run(policy, cpus, workers=2, start=0):
    return [policy.decide(Prediction(timestamp=T0 + start + i, workers=workers, cpu_percent=c))
            for i, c in enumerate(cpus)]


def test_reactive_cpu_rule_is_the_hpa_formula_with_its_tolerance():
    policy = ReactivePolicy(target_cpu_percent=70, tolerance=0.1, cooldown_up_s=0)
    # 150 % over 2 workers = 75 % each: ratio 1.07 is within the tolerance.
    assert cpu_run(policy, [150.0])[0].action is Action.NONE
    # 180 %: 90 % each, ceil(2 x 90 / 70) = 3.
    d = cpu_run(policy, [180.0], start=1)[0]
    assert (d.action, d.amount, d.desired_workers) == (Action.SCALE_UP, 1, 3)
    assert "ceil(2 x 1.29) = 3" in d.reason
    # 560 %: ceil(2 x 4) = 8, but one step adds at most max_step (4) and stays under max_workers.
    policy = ReactivePolicy(target_cpu_percent=70, max_step=4, max_workers=5, cooldown_up_s=0)
    d = cpu_run(policy, [560.0])[0]
    assert (d.action, d.amount) == (Action.SCALE_UP, 3)


def test_reactive_scale_down_uses_the_highest_recommendation_of_the_window():
    policy = ReactivePolicy(target_cpu_percent=70, stabilization_down_s=20, cooldown_up_s=0,
                            cooldown_down_s=100)
    # Busy (62 % per worker: keep 4) until t=24, then idle (wants 1): the scale-down waits
    # until the last busy recommendation has left the 20 s window (t=44), then goes at once.
    decisions = cpu_run(policy, [250.0] * 25 + [20.0] * 30, workers=4)
    assert taken(decisions) == [(44, "scale_down", 3)]
    assert "ceil(4 x 0.07) = 1" in decisions[44].reason
    assert decisions[40].action is Action.NONE and decisions[40].desired_workers is None


def test_reactive_slo_rule_scales_up_after_violations_and_raises_the_classic_alert():
    policy = ReactivePolicy.preset("slo", slo_for_s=3, alert_for_s=5, cooldown_up_s=10,
                                   slo_latency_p95_ms=800)
    seq = [Prediction(T0 + i, workers=2, observed_p95_ms=p95, observed_error_rate=0.0)
           for i, p95 in enumerate([300, 900, 950, 1200, 1300, 1400, 1500, 400])]
    decisions = [policy.decide(p) for p in seq]
    assert taken(decisions) == [(3, "scale_up", 1), (5, "alert", 0)]
    assert decisions[3].reason == "SLO violated for 3 s"
    assert decisions[5].policy == "reactive:slo" and decisions[5].alert_active
