"""Scores on small hand-made cases (modeling/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.metrics import (event_scores, forecast_scores, forecast_violates, mase,
                              merge_event_scores, onsets, regime_scores, stability_pct,
                              warning_scores)


def test_mase_is_mae_over_persistence_mae():
    y = np.zeros((2, 1, 1))
    assert mase(y, y + 1, y + 2) == pytest.approx(0.5)
    assert np.isnan(mase(y, y + 1, y))            # persistence exact: undefined, not infinite


def test_forecast_scores_per_metric_per_horizon():
    y = np.zeros((2, 2, 2))
    pred = np.array([[[1, 0], [3, 0]], [[1, 0], [-1, 0]]], float)
    naive = np.array([[[2, 1], [2, 1]], [[2, 1], [2, 1]]], float)
    s = forecast_scores(y, pred, naive, ["a", "b"])
    assert s["a"]["mae"] == [1.0, 2.0]
    assert s["a"]["rmse"] == pytest.approx([1.0, np.sqrt(5.0)])
    assert s["a"]["mase"] == [0.5, 1.0]
    assert s["b"]["mase"] == [0.0, 0.0]


def test_second_level_warning_scores():
    s = warning_scores(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1]))
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["positives"] == 3 and s["alarms"] == 3
    assert warning_scores(np.zeros(3), np.zeros(3))["f1"] == 0.0


def test_onsets_need_clean_seconds_before():
    v = np.array([0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1])
    assert onsets(v, 2).tolist() == [3, 7, 11]
    assert onsets(v, 3).tolist() == [3, 11]


def test_lead_time_counts_seconds_of_warning_before_the_onset():
    v = np.zeros(30, int)
    v[20:24] = 1                                   # one violation starting at second 20
    early = np.zeros(30)
    early[17:24] = 1                               # alarm from second 17: 3 s of warning
    s = event_scores(v, early, horizon=5)
    assert (s["onsets"], s["detected"], s["leads"], s["false_alarm_episodes"]) == (1, 1, [3], 0)
    reactive = v.astype(float)                     # alarms only once it is violating
    assert event_scores(v, reactive, horizon=5)["leads"] == [0]
    late = np.zeros(30)
    late[22] = 1                                   # after the onset: missed
    assert event_scores(v, late, horizon=5)["missed"] == 1
    false = np.zeros(30)
    false[2:4] = 1                                 # nothing follows within 5 s
    assert event_scores(v, false, horizon=5)["false_alarm_episodes"] == 1
    unscored = np.full(30, np.nan)                 # no predictions around the onset
    assert event_scores(v, unscored, horizon=5)["onsets"] == 0
    merged = merge_event_scores([event_scores(v, early, 5), event_scores(v, late, 5)])
    assert merged["event_recall"] == 0.5 and merged["mean_lead_s"] == 3.0


def test_regime_scores_ignore_label_names():
    truth = ["normal", "normal", "overload", "overload", "fault:errors", "fault:errors"]
    same = ["b", "b", "a", "a", "c", "c"]
    s = regime_scores(truth, same)
    assert s["ari"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0)
    merged = regime_scores(truth, ["x"] * 4 + ["y"] * 2)
    assert merged["ari"] < 1.0
    # Worse than chance: every predicted group splits both true groups in half.
    assert regime_scores(["a", "a", "b", "b"], ["x", "y", "x", "y"])["ari"] == pytest.approx(-0.5)
    feats = np.array([[0.0], [0.1], [5.0], [5.1], [10.0], [10.1]])
    assert regime_scores(truth, same, feats)["silhouette"] > 0.9


def test_stability_percentage_is_one_minus_the_violation_probability():
    assert stability_pct(np.array([0.1, 0.3])) == pytest.approx(80.0)
    key = ["latency_p95_ms", "error_rate"]
    y = np.array([[[100, 0.0], [900, 0.0]],       # crosses the p95 SLO at step 2
                  [[100, 0.0], [100, 0.0]],
                  [[100, 0.5], [100, 0.0]]])      # crosses the error-rate SLO at step 1
    crossed = forecast_violates(y, np.array([[800, 0.02]] * 3), key)
    assert crossed.tolist() == [1, 0, 1]
    assert stability_pct(crossed) == pytest.approx(100 / 3)
