"""Scores on small hand-made cases (modeling/metrics.py): MASE, RelMAE, intervals, episodes, lead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modeling.metrics import (FALSE_ALARM_BUDGET_PER_H, block_ids, choose_threshold, episode_scores,
                              forecast_scores, forecast_violates, mae_gain, mase, merge_episode_scores,
                              naive_scale, paired_ratio, precursor, regime_scores, relmae, stability_pct,
                              violation_episodes, warning_scores)


def test_mase_is_scaled_by_the_in_sample_one_step_naive_mae_of_the_training_series():
    train = [np.array([1.0, 3.0, 2.0, 4.0]), np.array([10.0, 10.0, np.nan, 12.0])]
    # |3-1| |2-3| |4-2| and |10-10|; pairs touching the NaN are skipped: (2+1+2+0)/4
    assert naive_scale(train) == pytest.approx(1.25)
    y = np.array([[[5.0]], [[7.0]]])
    pred = np.array([[[6.0]], [[9.0]]])                  # errors 1 and 2: MAE 1.5
    assert mase(y, pred, train) == pytest.approx(1.5 / 1.25)
    assert np.isnan(mase(y, pred, [np.array([4.0, 4.0, 4.0])]))   # a flat training series: undefined


def test_relmae_divides_by_persistence_on_the_same_windows():
    y = np.zeros((2, 1, 1))
    assert relmae(y, y + 1, y + 2) == pytest.approx(0.5)
    assert np.isnan(relmae(y, y + 1, y))                 # persistence exact: undefined, not infinite


def test_forecast_scores_per_metric_per_horizon_with_missing_targets_masked():
    y = np.array([[[0.0, 0.0], [0.0, 0.0]],
                  [[0.0, 0.0], [np.nan, 0.0]]])           # the second window's h=2 target of "a" was not observed
    pred = np.array([[[1, 0], [3, 0]], [[1, 0], [100, 0]]], float)
    naive = np.full((2, 2, 2), 2.0)
    s = forecast_scores(y, pred, naive, ["a", "b"], scale={"a": 2.0, "b": 0.0})
    assert s["a"]["mae"] == [1.0, 3.0]                   # the 100 against a missing target never counts
    assert s["a"]["n"] == [2, 1] and s["b"]["n"] == [2, 2]
    assert s["a"]["rmse"] == pytest.approx([1.0, 3.0])
    assert s["a"]["relmae"] == [0.5, 1.5]
    assert s["a"]["mase"] == [0.5, 1.5]
    assert all(np.isnan(s["b"]["mase"])) and s["b"]["relmae"] == [0.0, 0.0]


def _errors(n: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    # Autocorrelated errors, as consecutive windows of one run have.
    e = np.convolve(rng.normal(0, sd, n + 9), np.ones(10) / 10, mode="valid")
    return np.abs(e)


def test_block_bootstrap_interval_covers_zero_for_equal_forecasters_and_excludes_it_for_a_better_one():
    rng = np.random.default_rng(1)
    run = np.repeat(np.arange(4), 300)
    t = np.tile(np.arange(300), 4)
    blocks = block_ids(run, t, 30)
    assert blocks.max() + 1 == 40
    a, b = _errors(1200, 1.0, rng), _errors(1200, 1.0, rng)
    equal = mae_gain(a, b, blocks)
    assert equal["ci_low"] < 0 < equal["ci_high"]
    better = mae_gain(_errors(1200, 0.5, rng), b, blocks)
    assert 0.3 < better["mae_gain"] < 0.7 and better["ci_low"] > 0
    assert (better["windows"], better["blocks"]) == (1200, 40)


def test_paired_ratio_skips_missing_targets_and_needs_two_blocks_for_an_interval():
    r = paired_ratio(np.array([1.0, np.nan, 3.0]), np.array([2.0, 2.0, 2.0]), np.array([0, 0, 0]))
    assert r["ratio"] == pytest.approx(1.0) and r["windows"] == 2 and r["ci_low"] is None


def test_second_level_warning_scores():
    s = warning_scores(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1]))
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["positives"] == 3 and s["alarms"] == 3


def test_episodes_merge_gaps_shorter_than_the_horizon():
    v = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    assert violation_episodes(v, 3) == [(1, 5), (11, 11)]
    assert violation_episodes(v, 2) == [(1, 2), (5, 5), (11, 11)]


def run_frame(n: int, violation: list[tuple[int, int]], fault: tuple[int, int] | None = None,
              plan: list[tuple[int, float]] = (), incident: int | None = None) -> pd.DataFrame:
    """A run's ground truth: violations, a fault window, plan levels from given seconds, an incident."""
    v = np.zeros(n, int)
    for a, b in violation:
        v[a:b + 1] = 1
    rate = np.full(n, 50.0)
    for start, value in plan:
        rate[start:] = value
    faults = np.array(["none"] * n, dtype=object)
    if fault:
        faults[fault[0]:fault[1]] = "threads"
    incidents = np.array(["none"] * n, dtype=object)
    if incident is not None:
        incidents[incident] = "pool_exhausted"
    return pd.DataFrame({"slo_violation": v, "planned_rate": rate, "fault": faults, "incident": incidents,
                         "phase": "steady"})


def test_precursor_is_the_latest_plan_change_or_fault_start_else_the_first_incident():
    ramp = run_frame(100, [(60, 70)], plan=[(40, 60.0), (41, 70.0), (42, 80.0)])
    assert precursor(ramp, 60, 0) == 40                   # a three-second ramp starts at 40
    fault = run_frame(100, [(60, 70)], fault=(20, 80), plan=[(10, 60.0)])
    assert precursor(fault, 60, 0) == 20
    assert precursor(run_frame(100, [(60, 70)], incident=55), 60, 0) == 55
    assert precursor(run_frame(100, [(60, 70)], fault=(20, 80)), 60, 30) is None   # before the search start


def test_lead_time_reaches_back_beyond_the_horizon_to_the_precursor():
    frame = run_frame(120, [(60, 70)], fault=(20, 80))
    alarm = np.zeros(120)
    alarm[30:71] = 1                                    # from 30 s after... 10 s after the fault started
    s = episode_scores(frame, alarm, horizon=5)
    (ep,) = s["episodes"]
    assert ep["precursor"] == 20 and ep["lead_s"] == 30 and ep["lead_s"] > 5
    assert ep["achievable_lead_s"] == 40 and ep["share"] == pytest.approx(0.75)
    assert s["false_alarms"] == 0
    reactive = frame["slo_violation"].to_numpy(float)
    (late,) = episode_scores(frame, reactive, horizon=5)["episodes"]
    assert late["lead_s"] == 0 and late["share"] == 0.0
    missed = np.zeros(120)
    missed[62] = 1                                      # after the onset: not an early warning
    (miss,) = episode_scores(frame, missed, horizon=5)["episodes"]
    assert miss["lead_s"] is None and miss["share"] == 0.0


def test_first_covered_second_bounds_the_achievable_lead_and_uncovered_onsets_are_not_scored():
    frame = run_frame(120, [(60, 70), (5, 8)], fault=(20, 80))
    alarm = np.full(120, np.nan)
    alarm[30:] = 0                                      # the forecaster speaks from second 30
    s = episode_scores(frame, alarm, horizon=5)
    assert [e["onset"] for e in s["episodes"]] == [60]  # the episode at 5 s had no prediction
    assert s["episodes"][0]["achievable_lead_s"] == 30


def test_an_always_on_alarm_loses_on_the_headline_figure():
    frames = [run_frame(600, [(100, 120), (400, 430)], fault=(60, 130), plan=[(350, 120.0)]) for _ in range(3)]
    early = []
    for i, f in enumerate(frames):
        a = np.zeros(600)
        a[80:121] = 1                                   # 20 s before the first onset
        a[370:431] = 1                                  # 30 s before the second
        if i == 0:
            a[250:255] = 1                              # one false alarm in the half hour: 2/h, the budget
        early.append(episode_scores(f, a, horizon=10))
    always = [episode_scores(f, np.ones(600), horizon=10) for f in frames]
    good, trivial = merge_episode_scores(early), merge_episode_scores(always)
    assert trivial["recall"] == 1.0 and trivial["lead_share"] == 1.0        # it catches everything, early
    assert trivial["false_alarms_per_h"] > FALSE_ALARM_BUDGET_PER_H
    assert trivial["f1_in_budget"] == 0.0
    assert good["within_budget"] and good["f1_in_budget"] > 0.7 > trivial["f1_in_budget"]
    assert good["false_alarms"] == 1 and good["precision"] == pytest.approx(6 / 7)


def test_a_held_alarm_outside_episodes_counts_again_every_repeat_interval():
    frame = run_frame(400, [])
    alarm = np.zeros(400)
    alarm[10:200] = 1                                   # 190 s on with nothing to warn of
    assert episode_scores(frame, alarm, horizon=10, repeat_s=60)["false_alarms"] == 4


class _Windows:
    """The few Windows attributes the episode scorers read."""

    def __init__(self, frames, horizon):
        self.frames, self.horizon = frames, horizon
        self.violation = [f["slo_violation"].to_numpy() for f in frames]
        self.run = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)])
        self.t = np.concatenate([np.arange(len(f)) for f in frames])


def test_threshold_without_any_validation_episode_is_not_a_silent_default():
    w = _Windows([run_frame(200, [])], horizon=10)
    prob = np.linspace(0.0, 0.63, 200)
    threshold, note = choose_threshold(w, prob)
    assert threshold == pytest.approx(0.64) and threshold != 0.5
    assert "no SLO-violation episode" in note
    # With an episode to find, the threshold that warns before it within the budget wins.
    w = _Windows([run_frame(200, [(100, 110)], fault=(80, 120))], horizon=10)
    prob = np.where((np.arange(200) >= 85) & (np.arange(200) <= 110), 0.9, 0.2)
    threshold, note = choose_threshold(w, prob)
    assert 0.2 < threshold <= 0.9 and note.startswith("best event F1")


def test_regime_scores_ignore_label_names():
    truth = ["normal", "normal", "overload", "overload", "fault:errors", "fault:errors"]
    same = ["b", "b", "a", "a", "c", "c"]
    s = regime_scores(truth, same)
    assert s["ari"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0)
    assert regime_scores(["a", "a", "b", "b"], ["x", "y", "x", "y"])["ari"] == pytest.approx(-0.5)
    feats = np.array([[0.0], [0.1], [5.0], [5.1], [10.0], [10.1]])
    assert regime_scores(truth, same, feats)["silhouette"] > 0.9


def test_stability_percentage_is_one_minus_the_violation_probability():
    assert stability_pct(np.array([0.1, 0.3])) == pytest.approx(80.0)
    key = ["latency_p95_window_ms", "error_rate_window"]
    y = np.array([[[100, 0.0], [900, 0.0]],       # crosses the p95 SLO at step 2
                  [[100, 0.0], [100, 0.0]],
                  [[100, 0.5], [100, 0.0]]])      # crosses the error-rate SLO at step 1
    crossed = forecast_violates(y, np.array([[800, 0.02]] * 3), key)
    assert crossed.tolist() == [1, 0, 1]
    assert stability_pct(crossed) == pytest.approx(100 / 3)


def test_calibration_scores_a_calibrated_probability_below_the_base_rate():
    from modeling.metrics import calibration

    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 50000)
    truth = rng.uniform(size=p.size) < p                 # calibrated by construction
    cal = calibration(p, truth)
    assert cal["brier"] == pytest.approx(1 / 6, abs=0.01)       # E[p(1-p)] for uniform p
    assert cal["brier_base_rate"] == pytest.approx(0.25, abs=0.01) and cal["brier"] < cal["brier_base_rate"]
    assert len(cal["bins"]) == 10 and sum(b["windows"] for b in cal["bins"]) == p.size
    for b in cal["bins"]:
        assert b["low"] <= b["mean_probability"] <= b["high"]
        assert b["observed"] == pytest.approx(b["mean_probability"], abs=0.03)
    constant = calibration(np.full(p.size, 0.5), truth)        # no information: the base rate's score or worse
    assert constant["brier"] >= constant["brier_base_rate"]
    assert calibration(np.array([]), np.array([]))["brier"] is None


def test_episode_figures_are_in_seconds_at_any_row_interval():
    frame = run_frame(288, [(200, 210)], fault=(150, 220))      # one day of 5-minute rows
    frame.attrs["interval_s"] = 300
    alarm = np.zeros(288)
    alarm[180:211] = 1                                # from 20 rows (100 min) before the onset to its end
    alarm[50:53] = 1                                  # a false alarm held for 3 rows (15 min)
    s = episode_scores(frame, alarm, horizon=6)
    assert s["seconds"] == 288 * 300.0
    assert s["episodes"][0]["lead_s"] == 20 * 300.0 and s["episodes"][0]["achievable_lead_s"] == 50 * 300.0
    assert s["false_alarms"] == 3                     # counted again every 60 s of data: every row here
    merged = merge_episode_scores([s])
    assert merged["false_alarms_per_h"] == pytest.approx(3 / 24)            # per hour of data, not per 3600 rows
