"""End to end on synthetic runs: tiny training, evaluation dict for metrics.json, verdict."""

from __future__ import annotations

import json
import warnings

import pytest

from modeling.data import split_runs
from modeling.evaluate import evaluate
from modeling.forecaster import LSTMForecaster
from modeling.regimes import RegimeModel
from modeling.synthetic import synthetic_run


@pytest.mark.slow
def test_evaluate_scores_the_model_and_every_baseline_on_held_out_scenarios(tmp_path):
    runs = [synthetic_run(s, seed=2, duration_s=120) for s in ("spike-closed", "fault-errors-closed", "step-closed", "mixed-closed")]
    train, test = split_runs(runs, holdout=["mixed-closed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LSTMForecaster(preset="tiny", window=10, horizon=5, epochs=2, seed=1).fit(train)
        regimes = RegimeModel(k=3).fit(train)
        result = evaluate(LSTMForecaster.load(model.save(tmp_path / "m")), test, regimes)
    text = json.dumps(result, allow_nan=False)                  # ready for metrics.json
    assert json.loads(text) == result
    assert result["data"]["scenarios"] == ["mixed-closed"] and result["data"]["horizon_s"] == 5
    assert set(result["forecast"]) == {"lstm", "persistence", "moving_average", "ewma", "linear"}
    lat = result["forecast"]["lstm"]["latency_p95_ms"]
    assert len(lat["mae"]) == len(lat["rmse"]) == len(lat["mase"]) == 5
    assert result["forecast"]["persistence"]["rps"]["mase"] == [1.0] * 5
    ew = result["early_warning"]
    assert {"lstm", "lstm_forecast", "reactive", "predict_linear"} <= set(ew)
    assert ew["reactive"]["mean_lead_s"] in (0.0, None)         # a reactive alert never warns early
    assert ew["reactive"]["false_alarm_episodes"] == 0
    ari = result["regimes"]["ari"]
    assert -1 <= ari <= 1 and result["regimes"]["k"] == 3     # ARI is negative when worse than chance
    assert 0 <= result["stability_pct"]["lstm"] <= 100
    assert set(result["goals"]) == {"lstm_mase_p95_at_h", "lstm_mase_worst", "lstm_warning_f1",
                                    "lstm_lead_gain_s", "regime_ari"}
    assert result["goals"]["regime_ari"]["value"] == ari
    assert result["goals"]["regime_ari"]["met"] == (ari >= 0.6)
    verdict = result["verdict"]
    assert verdict[0].startswith("Forecast: the LSTM") and f"Regimes: ARI {ari:.2f}," in " ".join(verdict)
