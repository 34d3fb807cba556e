"""Forecasts and alerts that need no training, scored on the same windows as the LSTM.

Every forecaster takes the key-metric part of the windows, `x` of shape (n, W, K) in raw
units, and returns (n, H, K) like the LSTM. Forecasts are clipped to each metric's valid
range (no negative latencies, error rates within 0..1), which only ever lowers errors.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from contract.errors import BadInput


def _check(x: np.ndarray, horizon: int) -> np.ndarray:
    x = np.asarray(x, dtype="float64")
    if x.ndim != 3 or x.shape[1] < 1:
        raise BadInput(f"baseline input must be (windows, W, metrics), got shape {x.shape}")
    if horizon < 1:
        raise BadInput(f"horizon must be at least 1, got {horizon}")
    return x


def _repeat(level: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(level[:, None, :], horizon, axis=1)


def clip_forecast(y: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Clip forecasts to valid ranges: >= 0 everywhere, <= 1 for ratios."""
    y = np.clip(y, 0.0, None)
    for j, name in enumerate(key_metrics):
        if name.endswith("error_rate"):
            y[..., j] = np.minimum(y[..., j], 1.0)
    return y


def persistence(x: np.ndarray, horizon: int) -> np.ndarray:
    """Predict the last observed value for every future second (naive forecast)."""
    x = _check(x, horizon)
    return _repeat(x[:, -1, :], horizon)


def moving_average(x: np.ndarray, horizon: int, span: int = 5) -> np.ndarray:
    """Predict the mean of the last `span` seconds for every future second."""
    x = _check(x, horizon)
    span = max(1, min(span, x.shape[1]))
    return _repeat(x[:, -span:, :].mean(axis=1), horizon)


def ewma(x: np.ndarray, horizon: int, alpha: float = 0.3) -> np.ndarray:
    """Predict the exponentially weighted mean of the window (weight alpha on the newest second)."""
    x = _check(x, horizon)
    if not 0 < alpha <= 1:
        raise BadInput(f"ewma alpha must be in (0, 1], got {alpha}")
    w = x.shape[1]
    # Weights of the recursion s_t = a*x_t + (1-a)*s_{t-1}, normalised over the finite window.
    weights = alpha * (1 - alpha) ** np.arange(w - 1, -1, -1)
    weights /= weights.sum()
    return _repeat(np.einsum("nwk,w->nk", x, weights), horizon)


def linear(x: np.ndarray, horizon: int, fit_s: int | None = None) -> np.ndarray:
    """Extrapolate a least-squares line over the last `fit_s` seconds (Prometheus predict_linear)."""
    x = _check(x, horizon)
    fit_s = x.shape[1] if fit_s is None else max(2, min(fit_s, x.shape[1]))
    seg = x[:, -fit_s:, :]
    t = np.arange(fit_s, dtype="float64")
    tc = t - t.mean()
    slope = np.einsum("nwk,w->nk", seg - seg.mean(axis=1, keepdims=True), tc) / (tc @ tc)
    # Value of the fitted line at "now" (t = fit_s - 1) plus h seconds.
    steps = (fit_s - 1 - t.mean()) + np.arange(1, horizon + 1, dtype="float64")
    return seg.mean(axis=1)[:, None, :] + slope[:, None, :] * steps[None, :, None]


# Default settings of each baseline, used by evaluate(); names appear in metrics.json.
FORECASTERS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "persistence": persistence,
    "moving_average": lambda x, h: moving_average(x, h, span=5),
    "ewma": lambda x, h: ewma(x, h, alpha=0.3),
    "linear": lambda x, h: linear(x, h, fit_s=10),
}


def forecast_all(x: np.ndarray, horizon: int, key_metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """Run every baseline forecaster on the windows, clipped to valid ranges."""
    return {name: clip_forecast(fn(x, horizon), key_metrics) for name, fn in FORECASTERS.items()}


# ---------------------------------------------------------------- early-warning alerts


def _slo_idx(key_metrics: Sequence[str]) -> tuple[int, int]:
    try:
        return list(key_metrics).index("latency_p95_ms"), list(key_metrics).index("error_rate")
    except ValueError:
        raise BadInput("the early-warning baselines need latency_p95_ms and error_rate among the key metrics") from None


def violates(y: np.ndarray, slo: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Apply the contract's SLO rule (contract.schema.violates_slo) to values (..., K); slo is (n, 2) and broadcasts over the middle axes."""
    i_lat, i_err = _slo_idx(key_metrics)
    slo = np.asarray(slo, dtype="float64")
    shape = (len(slo),) + (1,) * (y.ndim - 2)
    return (y[..., i_lat] > slo[:, 0].reshape(shape)) | (y[..., i_err] > slo[:, 1].reshape(shape))


def reactive_alert(x: np.ndarray, slo: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Alarm when the SLO is violated in the last observed second (a threshold alert rule)."""
    x = _check(x, 1)
    return violates(x[:, -1, :], slo, key_metrics).astype("int8")


def linear_alert(x: np.ndarray, horizon: int, slo: np.ndarray, key_metrics: Sequence[str],
                 fit_s: int = 10) -> np.ndarray:
    """Alarm when predict_linear crosses an SLO threshold within the next `horizon` seconds."""
    y = linear(x, horizon, fit_s=fit_s)
    return violates(y, slo, key_metrics).any(axis=1).astype("int8")
