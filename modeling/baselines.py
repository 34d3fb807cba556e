"""Forecasts and alerts without a neural network, scored on the same windows as the LSTM.

Every forecaster takes the key-metric part of the windows, `x` of shape (n, W, K) in raw
units, and returns (n, H, K) like the LSTM: persistence, moving average, EWMA, a
least-squares line (Prometheus predict_linear) and statsforecast's AutoETS, each from the
window's own past only. Forecasts are clipped to each metric's valid range (no negative
latencies, error rates within 0..1), which only ever lowers errors. Alerts: the reactive
rule with `for:` (k of the last n seconds violated), predict_linear crossing the SLO, and
an alarm that is always on. `BaselineSuite` holds the settings chosen on training runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

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
        if "error_rate" in name:
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
    return _repeat(np.einsum("nwk,w->nk", x, ewma_weights(x.shape[1], alpha)), horizon)


def ewma_weights(window: int, alpha: float) -> np.ndarray:
    """Weights of the recursion s_t = a*x_t + (1-a)*s_{t-1} over a finite window, newest last, normalised."""
    weights = alpha * (1 - alpha) ** np.arange(window - 1, -1, -1)
    return weights / weights.sum()


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


def auto_ets(x: np.ndarray, horizon: int) -> tuple[np.ndarray, int]:
    """Forecast each window with statsforecast's AutoETS fitted on that window's history only.

    One season-less AutoETS per window and metric (error, trend and damping chosen by
    AICc on the W seconds the forecaster sees, nothing after them). A window whose history
    is constant, or where the fit fails, repeats its last value; the count of those is
    returned beside the (n, H, K) forecast.
    """
    import warnings

    from statsforecast.models import AutoETS

    x = _check(x, horizon)
    out = _repeat(x[:, -1, :], horizon).copy()
    model, fallbacks = AutoETS(season_length=1), 0
    for i in range(x.shape[0]):
        for k in range(x.shape[2]):
            y = x[i, :, k]
            if y.size < 4 or np.ptp(y) == 0:
                fallbacks += 1
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[i, :, k] = model.forecast(y=y, h=horizon)["mean"]
            except Exception:  # statsforecast raises several types on a degenerate series
                fallbacks += 1
    return out, fallbacks


# Settings each forecaster may take; the suite picks one per metric on the training windows.
GRID: dict[str, tuple[Any, ...]] = {
    "persistence": (None,),
    "moving_average": (5, 15, 30),
    "ewma": (0.1, 0.3, 0.6),
    "linear": (10, 30),
}
DEFAULTS: dict[str, Any] = {"moving_average": 5, "ewma": 0.3, "linear": 10}
REACTIVE_GRID: tuple[tuple[int, int], ...] = ((1, 1), (1, 3), (2, 3), (3, 3), (3, 5), (5, 5))
FORECASTERS = ("persistence", "moving_average", "ewma", "linear", "auto_ets")


def _one(name: str, x: np.ndarray, horizon: int, setting: Any) -> np.ndarray:
    if name == "persistence":
        return persistence(x, horizon)
    if name == "moving_average":
        return moving_average(x, horizon, span=int(setting))
    if name == "ewma":
        return ewma(x, horizon, alpha=float(setting))
    if name == "linear":
        return linear(x, horizon, fit_s=int(setting))
    raise BadInput(f"unknown baseline {name!r}")


def forecast_all(x: np.ndarray, horizon: int, key_metrics: Sequence[str],
                 settings: dict[str, dict[str, Any]] | None = None, ets: bool = False) -> dict[str, np.ndarray]:
    """Run every baseline forecaster on the windows (per-metric settings, else DEFAULTS), clipped to valid ranges."""
    settings = settings or {}
    out = {}
    for name in FORECASTERS[:-1]:
        per_metric = settings.get(name, {})
        cols = [_one(name, x[:, :, [j]], horizon, per_metric.get(m, DEFAULTS.get(name)))
                for j, m in enumerate(key_metrics)]
        out[name] = clip_forecast(np.concatenate(cols, axis=2), key_metrics)
    if ets:
        out["auto_ets"] = clip_forecast(auto_ets(x, horizon)[0], key_metrics)
    return out


# ---------------------------------------------------------------- early-warning alerts


def violates(y: np.ndarray, slo: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Apply the contract's SLO rule (contract.schema.violates_slo) to values (..., K); slo is (n, 2) and broadcasts over the middle axes."""
    from .data import slo_columns

    lat, err = slo_columns(key_metrics)
    i_lat, i_err = list(key_metrics).index(lat), list(key_metrics).index(err)
    slo = np.asarray(slo, dtype="float64")
    shape = (len(slo),) + (1,) * (y.ndim - 2)
    return (y[..., i_lat] > slo[:, 0].reshape(shape)) | (y[..., i_err] > slo[:, 1].reshape(shape))


def reactive_alert(x: np.ndarray, slo: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Alarm when the SLO is violated in the last observed second (a threshold alert rule)."""
    x = _check(x, 1)
    return violates(x[:, -1, :], slo, key_metrics).astype("int8")


def reactive_for(violation: np.ndarray, t: np.ndarray, k: int, n: int) -> np.ndarray:
    """Alarm at row t when at least k of the n seconds up to t violated the SLO (an alert rule with `for:`).

    `violation` is one run's slo_violation label (what the collector saw, second by
    second); `t` the rows to alarm at. Rows before the run's start count as clean.
    """
    if not 1 <= k <= n:
        raise BadInput(f"reactive alert: need 1 <= k <= n, got k={k}, n={n}")
    before = np.concatenate([[0], np.cumsum(np.asarray(violation).astype(int))])
    t = np.asarray(t, dtype="int64")
    return ((before[t + 1] - before[np.maximum(0, t + 1 - n)]) >= k).astype("int8")


def always_on(n_windows: int) -> np.ndarray:
    """An alarm that never stops: it detects everything and warns of nothing."""
    return np.ones(int(n_windows), dtype="int8")


def linear_alert(x: np.ndarray, horizon: int, slo: np.ndarray, key_metrics: Sequence[str],
                 fit_s: int = 10) -> np.ndarray:
    """Alarm when predict_linear crosses an SLO threshold within the next `horizon` seconds."""
    y = linear(x, horizon, fit_s=fit_s)
    return violates(y, slo, key_metrics).any(axis=1).astype("int8")


def reactive_windows(windows: Any, k: int, n: int) -> np.ndarray:
    """Return the `for:` alert (k of n seconds) at every window's "now"."""
    out = np.zeros(len(windows), dtype="int8")
    for i, labels in enumerate(windows.violation):
        mine = windows.run == i
        out[mine] = reactive_for(labels, windows.t[mine], k, n)
    return out


# ---------------------------------------------------------------- the suite, tuned on training runs


def _mae_at_h(forecast: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the MAE at the last horizon step per metric over the observed targets (NaN when none)."""
    err = np.abs(forecast[:, -1, :] - y[:, -1, :])
    ok = np.isfinite(err)
    return np.array([err[ok[:, j], j].mean() if ok[:, j].any() else np.nan for j in range(err.shape[1])])


@dataclass
class BaselineSuite:
    """The baselines' settings and the best baseline per metric, chosen on training windows only.

    `fit(windows)` picks, per key metric, each forecaster's setting (GRID) and the best
    forecaster by MAE at h = H; the reactive alert's k-of-n and predict_linear's fit
    length by the headline early-warning figure. Nothing here ever sees a test window.
    AutoETS has no setting; it takes part in the best-baseline choice on at most
    `ets_windows` training windows (evenly spaced), which keeps the fit to seconds.
    """

    horizon: int
    key_metrics: list[str]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)
    reactive: tuple[int, int] = (1, 1)
    linear_fit_s: int = 10
    chosen_on: str = "defaults (not fitted on training runs)"
    training_mae: dict[str, dict[str, float]] = field(default_factory=dict)

    def fit(self, windows: Any, ets_windows: int = 400) -> BaselineSuite:
        """Choose every setting on the (training) windows; return self."""
        from .data import has_slo_pair
        from .metrics import score_alarms

        x, y, H, key = windows.x_key, windows.y, self.horizon, self.key_metrics
        self.settings = {}
        for name, grid in GRID.items():
            if name == "persistence":
                continue
            scores = {g: _mae_at_h(clip_forecast(_one(name, x, H, g), key), y) for g in grid}
            self.settings[name] = {m: min(grid, key=lambda g: np.nan_to_num(scores[g][j], nan=np.inf))
                                   for j, m in enumerate(key)}
        sub = np.arange(0, len(x), max(1, len(x) // max(1, ets_windows)))
        forecasts = {**forecast_all(x[sub], H, key, self.settings),
                     "auto_ets": clip_forecast(auto_ets(x[sub], H)[0], key)}
        scores = {name: _mae_at_h(f, y[sub]) for name, f in forecasts.items()}
        self.best = {m: min(scores, key=lambda n: np.nan_to_num(scores[n][j], nan=np.inf)) for j, m in enumerate(key)}
        self.training_mae = {n: {m: float(v[j]) for j, m in enumerate(key)} for n, v in scores.items()}
        self.reactive = max(REACTIVE_GRID, key=lambda kn: (
            score_alarms(windows, reactive_windows(windows, *kn))[0]["f1_in_budget"], -kn[1], -kn[0]))
        if has_slo_pair(key):        # predict_linear alerts on the SLO; other targets keep the default
            self.linear_fit_s = max(GRID["linear"], key=lambda f: (
                score_alarms(windows, linear_alert(x, H, windows.slo, key, f))[0]["f1_in_budget"], -f))
        self.chosen_on = (f"training windows: {len(x)} windows of {len(windows.run_ids)} runs "
                          f"(the best baseline on {len(sub)} of them, evenly spaced, AutoETS included)")
        return self

    def forecasts(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Return every baseline's (n, H, K) forecast of the windows, AutoETS included."""
        return forecast_all(x, self.horizon, self.key_metrics, self.settings, ets=True)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"format": "stability-lab/baselines/1", "horizon": self.horizon, "key_metrics": self.key_metrics,
                "settings": self.settings, "best": self.best, "reactive": {"k": self.reactive[0], "n": self.reactive[1]},
                "linear_fit_s": self.linear_fit_s, "chosen_on": self.chosen_on, "training_mae": self.training_mae}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineSuite:
        """Rebuild a suite from `to_dict()` output."""
        try:
            return cls(horizon=int(data["horizon"]), key_metrics=[str(m) for m in data["key_metrics"]],
                       settings={str(k): dict(v) for k, v in data["settings"].items()},
                       best={str(k): str(v) for k, v in data["best"].items()},
                       reactive=(int(data["reactive"]["k"]), int(data["reactive"]["n"])),
                       linear_fit_s=int(data["linear_fit_s"]), chosen_on=str(data.get("chosen_on", "")),
                       training_mae=dict(data.get("training_mae") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"baselines: malformed ({exc})") from None
