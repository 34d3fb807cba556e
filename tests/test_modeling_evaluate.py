"""End to end on synthetic runs: tiny training, evaluation dict for metrics.json, goals with intervals, verdict."""

from __future__ import annotations

import json
import warnings

import pytest

from modeling.baselines import BaselineSuite
from modeling.data import split_runs
from modeling.evaluate import evaluate, status
from modeling.forecaster import LSTMForecaster
from modeling.regimes import RegimeModel
from modeling.synthetic import synthetic_run


def test_a_goal_is_met_only_when_its_interval_is_on_the_goal_side():
    assert status(0.12, 0.30, 0.10, above=True) == "met"
    assert status(0.05, 0.30, 0.10, above=True) == "not significant"
    assert status(-0.2, 0.05, 0.10, above=True) == "not met"
    assert status(0.60, 0.75, 0.8, above=False) == "met"
    assert status(0.70, 0.85, 0.8, above=False) == "not significant"
    assert status(None, None, 0.8, above=False) == "not significant"


@pytest.mark.slow
def test_evaluate_scores_the_model_and_every_baseline_on_held_out_scenarios(tmp_path):
    runs = [synthetic_run(s, seed=2, duration_s=120) for s in ("spike-closed", "fault-errors-closed", "step-closed", "mixed-closed")]
    train, test = split_runs(runs, holdout=["mixed-closed"])
    # The held-out run as recorded before the pooled columns existed (its SLO window is one
    # second, so the per-second values stand in for them exactly).
    test = [test[0].drop(columns=["latency_p95_window_ms", "latency_p99_window_ms", "error_rate_window"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LSTMForecaster(preset="tiny", window=10, horizon=5, epochs=2, seed=1).fit(train)
        suite = BaselineSuite(horizon=5, key_metrics=list(model.key_metrics_)).fit(model.windows(train))
        regimes = RegimeModel(k=3).fit(train)
        result = evaluate(LSTMForecaster.load(model.save(tmp_path / "m")), test, regimes, suite, n_boot=200)
    text = json.dumps(result, allow_nan=False)                  # ready for metrics.json
    assert json.loads(text) == result
    d = result["data"]
    assert d["scenarios"] == ["mixed-closed"] and d["horizon_s"] == 5 and d["block_s"] >= 5
    assert d["slo_columns"] == ["latency_p95_window_ms", "error_rate_window"]
    assert d["per_second_stand_ins"] == ["error_rate_window", "latency_p95_window_ms", "latency_p99_window_ms"]
    assert set(result["forecast"]) == {"lstm", "persistence", "moving_average", "ewma", "linear", "auto_ets"}
    lat = result["forecast"]["lstm"]["latency_p95_window_ms"]
    assert all(len(lat[k]) == 5 for k in ("mae", "rmse", "mase", "relmae", "n", "relmae_ci", "mase_ci"))
    assert result["forecast"]["persistence"]["rps"]["relmae"] == [1.0] * 5
    scale = d["mase_scale"]["rps"]
    assert result["forecast"]["ewma"]["rps"]["mase"][0] == pytest.approx(result["forecast"]["ewma"]["rps"]["mae"][0]
                                                                          / scale)
    for metric, c in result["comparison"].items():
        assert c["best_baseline"] == suite.best[metric]            # chosen on the training runs, not here
        assert c["ci_low"] <= c["mae_gain"] <= c["ci_high"] and c["windows"] > 0 and c["runs"] == 1
    ew = result["early_warning"]
    assert {"lstm", "lstm_forecast", "predict_linear", "reactive", "always_on"} <= set(ew)
    assert ew["always_on"]["f1_in_budget"] == 0.0 and ew["always_on"]["recall"] in (1.0, None)
    assert ew["reactive"]["mean_lead_s"] in (0.0, None)         # a reactive alert never warns early
    for e in ew["lstm"]["per_episode"]:
        assert e["achievable_lead_s"] is None or e["achievable_lead_s"] >= 0
    assert set(result["goals"]) == {"relmae_p95_at_h", "relmae_all", "mae_gain_p95", "warning_f1", "lead_share",
                                    "regime_ari", "regime_recall"}
    r = result["regimes"]
    assert set(r["recall"]) == set(r["recall_ci"]) and r["ahead_s"] == 30 and "p_violation_ahead" in r
    for g in result["goals"].values():
        assert g["status"] in ("met", "not met", "not significant") and g["met"] == (g["status"] == "met")
    assert 0 <= result["stability_pct"]["lstm"] <= 100
    verdict = " ".join(result["verdict"])
    assert verdict.startswith("Forecast 5 s ahead") and "always_on" in verdict and "Goals:" in verdict


@pytest.mark.slow
def test_the_quickstart_lines_carry_intervals_and_say_what_the_sample_cannot_show(tmp_path):
    from workflows.quickstart import sample_note, three_lines

    runs = [synthetic_run(s, seed=3, duration_s=90) for s in ("spike-closed", "fault-latency-closed", "mixed-closed")]
    train, test = split_runs(runs, holdout=["mixed-closed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LSTMForecaster(preset="tiny", window=10, horizon=5, epochs=1, seed=1).fit(train)
        result = evaluate(model, test, RegimeModel(k=2).fit(train), n_boot=100)
    lines = three_lines(result)
    assert len(lines) == 3 and "95%" in lines[0] and "best baseline (persistence)" in lines[0]
    assert "always-on scores" in lines[1] and "episode(s)" in lines[1] and "ARI" in lines[2]
    note = sample_note(result)
    assert "not whether the model beats its baselines" in note and "--preset small" in note
