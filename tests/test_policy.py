"""The monitor's policies on hand-made prediction sequences: hysteresis, cool-down, bounds, presets, the HPA rule."""

from __future__ import annotations

import pytest

from contract.errors import BadInput
from monitor.hpa import HpaConfig, HpaScaler
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
    assert policy.config.slo_for_s == 2


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


# ---------------------------------------------------------------- reactive: the HPA rule of monitor/hpa.py


def cpu_run(policy, cpus, workers=2, start=0):
    return [policy.decide(Prediction(timestamp=T0 + start + i, workers=workers, cpu_percent=c))
            for i, c in enumerate(cpus)]


def follow(policy, make, seconds, workers):
    """The target applies every decision at once: each prediction reports the count asked for."""
    decisions = []
    for i in range(seconds):
        d = policy.decide(Prediction(timestamp=T0 + i, workers=workers, **make(i, workers)))
        workers = d.desired_workers if d.taken and d.desired_workers is not None else workers
        decisions.append(d)
    return decisions


def counts(decisions, workers):
    out = []
    for d in decisions:
        workers = d.desired_workers if d.taken else workers
        out.append(workers)
    return out


def test_reactive_cpu_rule_is_the_hpa_formula_with_its_tolerance():
    policy = ReactivePolicy(target_cpu_percent=70, tolerance=0.1)
    # 150 % over 2 workers = 75 % each: ratio 1.07 is within the tolerance.
    d = cpu_run(policy, [150.0])[0]
    assert d.action is Action.NONE and "within the tolerance" in d.reason
    # 180 %: 90 % each, ceil(2 x 90 / 70) = 3.
    d = cpu_run(policy, [180.0], start=1)[0]
    assert (d.action, d.amount, d.desired_workers) == (Action.SCALE_UP, 1, 3)
    assert "ceil(2 x 1.29) = 3" in d.reason
    # The tolerance is the file's: at 5 % the same 75 % per worker scales.
    d = cpu_run(ReactivePolicy(target_cpu_percent=70, tolerance=0.05), [150.0])[0]
    assert (d.action, d.desired_workers) == (Action.SCALE_UP, 3)


def test_reactive_scale_up_is_rate_limited_per_period_not_held_by_a_cool_down():
    # CPU per worker always 8 x the target: each sync wants 8 x the count.
    hot = lambda i, w: {"cpu_percent": 560.0 * w}
    policy = ReactivePolicy(target_cpu_percent=70, max_workers=20)
    decisions = follow(policy, hot, 10, workers=1)
    # max(4 pods, 100 %) per 4 s (60 s x 1/15): 1 -> 5, held 3 s, -> 10, held, -> 20.
    assert counts(decisions, 1) == [5, 5, 5, 5, 10, 10, 10, 10, 20, 20]
    held = decisions[1]
    assert held.withheld is Action.SCALE_UP and "rate limit: at most 5 within 4 s" in held.reason
    assert "held: at max_workers 20" in decisions[9].reason and decisions[9].withheld is Action.SCALE_UP
    # cooldown_up_s is the HPA's scale-up period, in the monitor's seconds.
    slow = ReactivePolicy(target_cpu_percent=70, max_workers=20, cooldown_up_s=8)
    assert counts(follow(slow, hot, 10, workers=1), 1) == [5] * 8 + [10] * 2
    # max_step is the HPA's pods policy: max(2 pods, 100 %) from 1 worker is 3.
    narrow = ReactivePolicy(target_cpu_percent=70, max_workers=20, max_step=2)
    assert counts(follow(narrow, hot, 5, workers=1), 1) == [3, 3, 3, 3, 6]


def test_reactive_scale_down_uses_the_highest_recommendation_of_the_window():
    policy = ReactivePolicy(target_cpu_percent=70, stabilization_down_s=20)
    # Busy (62 % per worker: keep 4) until t=24, then idle (wants 1): the scale-down waits
    # until the last busy recommendation has left the 20 s window (t=44), then goes at once.
    cpu = [250.0] * 25 + [20.0] * 30
    decisions = follow(policy, lambda i, w: {"cpu_percent": cpu[i]}, len(cpu), workers=4)
    assert taken(decisions) == [(44, "scale_down", 3)]
    assert "ceil(4 x 0.07) = 1" in decisions[44].reason
    assert decisions[40].action is Action.NONE and decisions[40].desired_workers is None
    assert "stabilised at 4" in decisions[40].reason
    # The default window is the HPA's 300 s x 1/15, and the starting count counts as a
    # recommendation: an idle start scales down only once 20 s have passed.
    idle = follow(ReactivePolicy(target_cpu_percent=70), lambda i, w: {"cpu_percent": 20.0}, 30, workers=4)
    assert taken(idle) == [(20, "scale_down", 3)]


def test_reactive_policy_decides_as_the_hpa_scaler_itself():
    cpu = [100, 300, 320, 280, 150, 90, 40, 40, 400, 500, 60, 30] * 5
    policy = ReactivePolicy(target_cpu_percent=70, max_workers=6)
    decisions = follow(policy, lambda i, w: {"cpu_percent": float(cpu[i])}, len(cpu), workers=2)
    hpa, w, expected = HpaScaler(HpaConfig(metric="cpu", target=70.0, max_workers=6)), 2, []
    for i, total in enumerate(cpu):
        w = hpa.step(float(i), w, total / w).desired
        expected.append(w)
    assert counts(decisions, 2) == expected and len(set(expected)) > 2
    policy.reset()
    assert [d.to_dict() for d in follow(policy, lambda i, w: {"cpu_percent": float(cpu[i])}, len(cpu), 2)] \
        == [d.to_dict() for d in decisions]


def test_reactive_counts_the_workers_it_asked_for_until_the_target_shows_them():
    policy = ReactivePolicy(target_cpu_percent=70)
    # 280 % on 2 workers: 140 % each, so 4. The target still reports 2 for a while.
    decisions = cpu_run(policy, [280.0] * 7, workers=2)
    # While the 4 asked for stand, 280 % is 70 % each: nothing more (the reported 2 would
    # ask for 2 more every second). After PENDING_S the reported count stands again.
    assert taken(decisions) == [(0, "scale_up", 2), (5, "scale_up", 2)]
    assert decisions[1].workers == 4 and "within the tolerance" in decisions[1].reason


def test_reactive_slo_metric_needs_slo_for_s_seconds_above_and_the_classic_alert_still_fires():
    p95s = [300, 900, 950, 1200, 1300, 1400, 1500, 400]
    slo = lambda i, w: {"observed_p95_ms": float(p95s[i]), "observed_error_rate": 0.0}
    policy = ReactivePolicy.preset("slo", slo_for_s=3, alert_for_s=5, slo_latency_p95_ms=800, max_workers=3)
    decisions = follow(policy, slo, len(p95s), workers=2)
    # The lowest p95 of the last 3 s is above the SLO first at t=3 (900): ceil(2 x 1.12) = 3.
    assert taken(decisions) == [(3, "scale_up", 1), (5, "alert", 0)]
    assert "slo 900 / target 800 = 1.12: ceil(2 x 1.12) = 3" in decisions[3].reason
    assert decisions[4].withheld is Action.SCALE_UP and "at max_workers 3" in decisions[4].reason
    assert decisions[5].reason == "SLO violated for 5 s"
    assert decisions[5].policy == "reactive:slo" and decisions[5].alert_active
    assert decisions[7].action is Action.NONE and "stabilised at 3" in decisions[7].reason
    # slo_for_s = 1 (the default) reads the newest second: the scale-up comes at t=1.
    fast = ReactivePolicy.preset("slo", slo_latency_p95_ms=800, max_workers=3)
    assert taken(follow(fast, slo, 3, workers=2))[0] == (1, "scale_up", 1)


def test_reactive_cpu_or_slo_takes_the_larger_and_a_missing_reading_blocks_a_scale_down():
    def first(cpu, p95, workers=4):
        policy = ReactivePolicy.preset("cpu_or_slo", slo_latency_p95_ms=800, stabilization_down_s=0)
        return policy.decide(Prediction(T0, workers=workers, cpu_percent=cpu, observed_p95_ms=p95))

    d = first(280.0, 1600.0)                 # CPU: 70 % each, keep 4; the p95: ceil(4 x 2) = 8
    assert (d.action, d.desired_workers) == (Action.SCALE_UP, 8) and d.reason.startswith("slo 1600")
    assert first(20.0, 100.0).desired_workers == 1          # both low: down to 1 at once
    d = first(20.0, None)
    assert d.action is Action.NONE and "no slo reading: no scale-down" in d.reason
    d = first(None, 100.0)
    assert d.action is Action.NONE and "no cpu reading: no scale-down" in d.reason
    assert first(None, 1600.0).desired_workers == 8         # a scale-up needs one metric


def test_reactive_policy_file_maps_onto_the_hpa_parameters(tmp_path):
    path = tmp_path / "reactive.toml"
    path.write_text('[policy]\nkind = "reactive"\ntime_factor = 1.0\nmax_step = 2\ntolerance = 0.2\n')
    hpa = load_policy(path).hpa.config
    assert (hpa.metric, hpa.target, hpa.tolerance, hpa.up_pods) == ("cpu", 70.0, 0.2, 2)
    assert [hpa.lab(k) for k in ("sync_period_s", "stabilization_down_s", "up_period_s")] == [15, 300, 60]
    path.write_text('[policy]\nkind = "reactive"\npreset = "slo"\nstabilization_down_s = 45\n'
                    'cooldown_up_s = 10\n')
    hpa = load_policy(path, slo_latency_p95_ms=1200).hpa.config
    assert (hpa.metric, hpa.target) == ("slo", 1200)
    assert hpa.lab("stabilization_down_s") == pytest.approx(45) and hpa.lab("up_period_s") == pytest.approx(10)
    assert hpa.lab("sync_period_s") == pytest.approx(1)
    # A cluster's 15 s sync: between syncs the policy says so and does nothing.
    slow = ReactivePolicy(target_cpu_percent=70, time_factor=1.0)
    assert [d.reason for d in cpu_run(slow, [700.0] * 2)][1] == "between syncs"


@pytest.mark.parametrize("key, value, message", [
    ("step", 2, "policy.step: not read by the reactive policy"),
    ("ok_for_s", 30, "policy.ok_for_s: not read by the reactive policy"),
    ("cooldown_down_s", 30, "policy.cooldown_down_s: not read by the reactive policy"),
    ("cooldown_up_s", 0, "policy.cooldown_up_s: must be positive"),
    ("time_factor", 0, "policy.time_factor: must be positive"),
    ("stabilisation_down_s", 20, "policy.stabilisation_down_s: unknown key"),
])
def test_reactive_keys_without_an_hpa_meaning_are_refused(tmp_path, key, value, message):
    path = tmp_path / "reactive.toml"
    path.write_text(f'[policy]\nkind = "reactive"\n{key} = {value}\n')
    with pytest.raises(BadInput) as err:
        load_policy(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(BadInput, match=message):
        ReactivePolicy(**{key: value})
