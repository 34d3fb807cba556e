"""Every baseline against values computed by hand (modeling/baselines.py)."""

from __future__ import annotations

import numpy as np
import pytest

from contract.errors import BadInput
from modeling.baselines import (REACTIVE_GRID, BaselineSuite, always_on, auto_ets, clip_forecast, ewma,
                                forecast_all, linear, linear_alert, moving_average, persistence,
                                reactive_alert, reactive_for)

# One window, W = 3 seconds, one metric: 1, 2, 4.
X = np.array([[[1.0], [2.0], [4.0]]])


def test_persistence_repeats_the_last_value():
    assert persistence(X, 2).tolist() == [[[4.0], [4.0]]]


def test_moving_average_of_the_last_span_seconds():
    assert moving_average(X, 2, span=2).tolist() == [[[3.0], [3.0]]]
    assert moving_average(X, 1, span=10)[0, 0, 0] == pytest.approx(7 / 3)   # span capped at W


def test_ewma_weights_the_newest_second_by_alpha():
    # Weights 0.5^3, 0.5^2, 0.5 over 1, 2, 4, normalised by their sum 0.875.
    expected = (0.125 * 1 + 0.25 * 2 + 0.5 * 4) / 0.875
    assert ewma(X, 2, alpha=0.5)[0, :, 0] == pytest.approx([expected, expected])
    assert ewma(X, 1, alpha=1.0)[0, 0, 0] == 4.0
    with pytest.raises(BadInput, match="alpha"):
        ewma(X, 1, alpha=0.0)


def test_linear_extrapolates_the_least_squares_line():
    # t = 0, 1, 2; mean y = 7/3; slope = ((-1)(1 - 7/3) + (4 - 7/3)) / 2 = 1.5.
    # Line at t = 2 + h: 7/3 + 1.5 * (1 + h).
    assert linear(X, 2)[0, :, 0] == pytest.approx([7 / 3 + 3.0, 7 / 3 + 4.5])
    # Only the last 2 seconds: slope 2 through (1, 2) and (2, 4) -> 6 at t = 3.
    assert linear(X, 1, fit_s=2)[0, 0, 0] == pytest.approx(6.0)


def test_linear_matches_numpy_polyfit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 12, 3))
    out = linear(x, 4, fit_s=8)
    for n in range(5):
        for k in range(3):
            coef = np.polyfit(np.arange(8), x[n, -8:, k], 1)
            assert out[n, :, k] == pytest.approx(np.polyval(coef, np.arange(8, 12)))


def test_forecasts_have_the_lstm_shape_and_valid_ranges():
    key = ["latency_p95_window_ms", "error_rate_window"]
    x = np.array([[[300.0, 0.9], [200.0, 0.95], [100.0, 1.0]]])
    out = forecast_all(x, 5, key)
    assert set(out) == {"persistence", "moving_average", "ewma", "linear"}
    assert all(v.shape == (1, 5, 2) for v in out.values())
    assert out["linear"][0, :, 0].min() == 0.0       # a falling line is clipped at 0 ms
    assert out["linear"][0, :, 1].max() == 1.0       # and a rising error rate at 1
    assert clip_forecast(np.array([[[-1.0, 2.0]]]), key).tolist() == [[[0.0, 1.0]]]
    # Settings per metric: a 2 s moving average on one, the 3 s window capped span on the other.
    ma = forecast_all(x, 1, key, {"moving_average": {key[0]: 2, key[1]: 30}})["moving_average"]
    assert ma[0, 0].tolist() == pytest.approx([150.0, 0.95])


def test_auto_ets_follows_a_trend_from_the_window_alone_and_repeats_flat_windows():
    t = np.arange(40, dtype=float)
    rng = np.random.default_rng(0)
    x = np.stack([np.column_stack([100 + 5 * t + rng.normal(0, 0.5, 40), np.full(40, 3.0)])])
    forecast, fallbacks = auto_ets(x, 5)
    assert forecast.shape == (1, 5, 2)
    assert forecast[0, :, 0] == pytest.approx(100 + 5 * np.arange(40, 45), rel=0.02)   # the trend goes on
    assert forecast[0, :, 1].tolist() == [3.0] * 5 and fallbacks == 1                 # a flat window: repeated


def test_reactive_alert_fires_only_when_already_violating():
    key = ["latency_p95_window_ms", "error_rate_window"]
    x = np.array([[[100.0, 0.0], [900.0, 0.0]],      # p95 above 800
                  [[900.0, 0.0], [800.0, 0.02]],     # equal is within the SLO
                  [[100.0, 0.0], [100.0, 0.05]]])    # error rate above 0.02
    slo = np.array([[800.0, 0.02]] * 3)
    assert reactive_alert(x, slo, key).tolist() == [1, 0, 1]


def test_reactive_for_needs_k_of_the_last_n_seconds():
    v = np.array([0, 1, 0, 1, 1, 1, 0, 0])
    t = np.arange(8)
    assert reactive_for(v, t, 1, 1).tolist() == v.tolist()
    assert reactive_for(v, t, 1, 3).tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert reactive_for(v, t, 3, 3).tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert reactive_for(v, t, 2, 3).tolist() == [0, 0, 0, 1, 1, 1, 1, 0]
    with pytest.raises(BadInput, match="1 <= k <= n"):
        reactive_for(v, t, 4, 3)
    assert always_on(3).tolist() == [1, 1, 1]


def test_predict_linear_alert_fires_on_a_crossing_within_the_horizon():
    key = ["latency_p95_ms", "error_rate"]                      # a model from before the pooled targets
    rising = np.array([[[500.0, 0], [600.0, 0], [700.0, 0]]])   # 800 at h=1, 900 at h=2
    slo = np.array([[850.0, 0.02]])
    assert linear_alert(rising, 1, slo, key, fit_s=3).tolist() == [0]
    assert linear_alert(rising, 2, slo, key, fit_s=3).tolist() == [1]
    with pytest.raises(BadInput, match="the SLO is defined on latency_p95_window_ms and error_rate_window"):
        linear_alert(rising[:, :, :1], 2, slo, ["rps"])


def test_the_suite_is_chosen_on_training_windows_and_round_trips():
    import warnings

    from modeling.data import make_windows
    from modeling.synthetic import synthetic_run

    runs = [synthetic_run(s, seed=1, duration_s=120) for s in ("spike-closed", "fault-latency-closed")]
    cols = ["latency_p95_window_ms", "error_rate_window", "cpu_percent", "rps", "slo_violation"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = make_windows(runs, cols, 20, 5)
    suite = BaselineSuite(horizon=5, key_metrics=w.key_metrics).fit(w, ets_windows=50)
    assert set(suite.best) == set(w.key_metrics)
    assert set(suite.best.values()) <= {"persistence", "moving_average", "ewma", "linear", "auto_ets"}
    assert suite.settings["ewma"]["rps"] in (0.1, 0.3, 0.6) and suite.reactive in REACTIVE_GRID
    assert suite.chosen_on.startswith(f"training windows: {len(w)} windows of 2 runs")
    again = BaselineSuite.from_dict(suite.to_dict())
    assert again == suite
    assert set(again.forecasts(w.x_key[:3])) == {"persistence", "moving_average", "ewma", "linear", "auto_ets"}
