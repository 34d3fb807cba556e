"""The LSTM forecaster: next-H-seconds key metrics plus an SLO early-warning probability.

One Keras model with two heads over a shared LSTM encoder of the last W seconds:

- `forecast`: (H, K) key metrics in scaled units (latency as log1p(ms)), the median ahead
  (MAE loss by default). With `delta=True` (default) the head predicts the residual over a
  robust baseline of the window (`base`: the EWMA of the scaled, so log, targets by
  default; or the rolling median, or the last value), and starts at zero: an untrained
  model *is* that baseline, and training only learns what the baseline misses.
- `upper`: the same residual at the `quantile` (0.9 by default) under the pinball loss, so
  a warning can read the upper quantile of the pooled p95 ahead, not only its median.
- `incident` (when the training runs hold incidents): sigmoid probability that the target
  sees an incident (a worker killed, the thread pool exhausted) within `incident_horizon`
  seconds (120 by default): the slow horizon of a leak heading for the RSS watchdog, which
  the 10 s SLO horizon cannot see coming;
- `warning`: sigmoid probability that the SLO is violated at some second in the next H,
  recalibrated on the validation windows (Platt scaling, two numbers in params.json) and
  turned into an alarm by a threshold chosen there within a false-alarm budget.

Optional known-future inputs (`known_future=["planned_rate"]`, plan columns only): the
plan's values over the next H seconds, which a load test knows from its scenario, enter as
a second input concatenated to the encoder's output. `future="plan"` trains on the plan
ahead, so serving needs the plan too (`predict_one(future=...)`); `future="hold"` trains on
the plan of "now" repeated H times, which is exactly what a monitor without a plan feeds,
so training and serving agree by construction.

`normalise` ("global" by default: the training runs' scaler only) can express each window
relative to its own median ("level") or standardise it by its own median and spread
("window"), read from the window's rows alone, so a model trained on one server serves
another at another level and the monitor's ring buffer gives what `evaluate` gives; "auto"
fits the three and keeps the lowest validation RelMAE (docs/modeling.md).

TensorFlow is imported only when a model is built, trained or loaded, so importing this
module (and the CLI) stays fast.
"""

from __future__ import annotations

import json
import os
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from contract.errors import BadInput, LabError

from .data import (DEFAULT_MAX_GAP_S, KEY_METRICS, LATENCY_COLUMNS, MISSING, DataWarning, Scaler, Windows,
                   as_runs, chronological_split, fill_gaps, fit_scaler, incident_ahead, incident_view,
                   make_windows, pooled_targets,
                   require_columns, run_name, select_features, slo_columns, split_runs)
from .metrics import choose_threshold, relmae
from .baselines import clip_forecast, ewma_weights
from contract.runfolder import atomic_path, atomic_write_json, read_json, sha256_file

FORMAT = "stability-lab/lstm-forecaster/1"
MODEL_FILE = "model.keras"
PARAMS_FILE = "params.json"

# Starting values. benchmarks/modeling.py chooses among settings by leave-one-scenario-out
# validation inside the training scenarios, never on a test split (docs/modeling.md).
DEFAULTS: dict[str, Any] = {
    "window": 30, "horizon": 10, "units": 32, "layers": 1, "dropout": 0.1,
    "learning_rate": 3e-3, "epochs": 60, "batch_size": 64, "patience": 6,
    "validation_fraction": 0.2, "scaler": "standard", "log_latency": True, "delta": True,
    "base": "auto", "base_alpha": 0.3, "quantile": 0.9, "calibrate": True, "incident_horizon": 120,
    "warn_weight": 0.5, "loss": "mae", "max_gap_s": DEFAULT_MAX_GAP_S, "future": "plan",
    "normalise": "global",
}
BASES = ("auto", "ewma", "median", "last")
MEDIAN_SPAN = 10    # seconds of the rolling-median base
# How a window enters the network (docs/modeling.md, "Per-window normalisation"): in the
# scaler's units only ("global", what every model before the option did), relative to the
# window's own median per column ("level"), or also divided by the window's own standard
# deviation per column, floored at SPREAD_FLOOR scaled units ("window"). "auto" fits all
# three and keeps the one with the lowest validation RelMAE.
NORMALISE = ("global", "level", "window", "auto")
SPREAD_FLOOR = 0.1
Frame = Optional[tuple[np.ndarray, np.ndarray]]    # each window's (level, spread), (n, 1, F) each; None: global
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The original guide: two stacked LSTM(50) with Dropout(0.2), 60 s windows, MinMax
    # scaling of raw values, 20 epochs of batch 32, no early stopping, absolute targets.
    "guide": {"window": 60, "units": 50, "layers": 2, "dropout": 0.2, "learning_rate": 1e-3,
              "epochs": 20, "batch_size": 32, "patience": 0, "scaler": "minmax",
              "log_latency": False, "delta": False, "loss": "mse", "calibrate": False,
              "incident_horizon": 0},
    # For tests and smoke runs: trains in about a second.
    "tiny": {"window": 8, "horizon": 3, "units": 4, "epochs": 2, "batch_size": 64, "patience": 0},
}

# Layer and object classes our builder emits; anything else in a model file is refused.
SAFE_CLASSES = frozenset({
    "Functional", "Model", "Sequential", "InputLayer", "LSTM", "LSTMCell", "GRU", "Dense",
    "Dropout", "Concatenate", "Flatten", "Reshape", "Add", "GlorotUniform", "Orthogonal",
    "Zeros", "Ones", "Adam", "AdamW", "DTypePolicy", "FloatDTypePolicy", "__keras_tensor__",
    "Huber", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
})


def configure_tensorflow() -> Any:
    """Import Keras with quiet logs and a thread pool that fits a laptop; return the module."""
    # Level 3: TensorFlow's C++ start-up chatter (CPU features, tf.data attribute notes)
    # is noise to a user; real failures still surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras' retracing notes for varying batch sizes are not actionable
    threads = int(os.environ.get("LAB_TF_THREADS", "0")) or min(os.cpu_count() or 1, 4)
    try:
        # Only possible before TensorFlow's runtime starts; later calls keep the first setting.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
    except RuntimeError:
        pass
    import keras

    return keras


@dataclass
class WindowForecasts:
    """Forecasts and early-warning probabilities for every window of some runs."""
    windows: Windows
    forecast: np.ndarray      # (n, H, K) raw units: the median ahead
    probability: np.ndarray   # (n,) calibrated P(SLO violated within H)
    alarm: np.ndarray         # (n,) probability >= the model's threshold
    upper: np.ndarray | None = None  # (n, H, K) raw units: the upper quantile (None: older model)
    incident: np.ndarray | None = None        # (n,) P(incident within incident_horizon), with the head
    incident_alarm: np.ndarray | None = None  # (n,) incident >= the model's incident threshold
    incident_horizon: int = 0                 # seconds the incident head looks ahead


@dataclass
class OneForecast:
    """One window's forecast: (H, K) median and upper quantile in raw units, calibrated probability."""
    forecast: np.ndarray
    probability: float
    upper: np.ndarray | None = None
    incident: float | None = None


class LSTMForecaster(BaseEstimator):
    """Forecast the next `horizon` seconds of the key metrics and warn of SLO violations.

    Parameters
    ----------
    preset : {"default", "guide", "tiny"}
        Starting values for every hyper-parameter left as None.
    window, horizon : int
        Seconds of history in, seconds of future out.
    units, layers, dropout : int, int, float
        LSTM width, stacked LSTM layers, dropout after each.
    learning_rate, epochs, batch_size, patience : float, int, int, int
        Adam's learning rate; maximum epochs; early stopping patience on the validation
        loss (0 trains all epochs).
    validation_fraction : float
        Share of the training runs (or, with fewer than 3 runs, of each run's end) used
        for early stopping and the alarm threshold.
    scaler : {"standard", "minmax"}
        Scaling fitted on the training part only.
    log_latency : bool
        Scale latency columns as log1p(ms): their spread covers three decades.
    delta : bool
        Predict the residual over `base` (an untrained model is that baseline).
    base : {"auto", "ewma", "median", "last"}
        The baseline the residual is over: EWMA of the window's scaled targets (weight
        `base_alpha` on the newest second), their median over the last 10 s, or the last
        value (persistence; models saved before `base` existed). "auto" takes, per horizon
        and key metric, whichever of the three has the lowest MAE on the training windows.
    quantile : float
        The upper head's quantile (pinball loss); 0 leaves the head out.
    calibrate : bool
        Platt-scale the warning probability on the validation windows.
    incident_horizon : int
        Seconds of the incident head's horizon; 0 leaves the head out (it is left out, with
        a note, when the training runs hold no incident).
    warn_weight : float
        Weight of the early-warning loss next to the forecast loss.
    loss : {"mae", "mse", "huber"}
        Forecast loss on scaled targets (MAE: the median ahead).
    known_future : list of str
        Plan columns (`planned_rate`, `planned_users`) given as an input for the next H s.
    future : {"plan", "hold"}
        The known future in training: the plan ahead, or the plan of "now" held (what a
        monitor without a plan can give; see the module docstring).
    normalise : {"global", "level", "window", "auto"}
        Each window's inputs and targets as the scaler gives them ("global"), minus the
        window's own median per column ("level"), or standardised by the window's own
        median and standard deviation ("window"), so a model trained on one server serves
        another that runs at another level; both read the window's W rows only (causal,
        the same offline and online). "auto" fits the three and keeps the lowest
        validation RelMAE (`training_summary_["normalise_scores"]`).
    key_metrics, features : list of str
        Forecast targets; input columns (None: the rule in modeling/data.py).
    max_gap_s : int
        Longest gap that is forward-filled.
    seed : int
        Seeds Python, NumPy and TensorFlow; ops run deterministically.
    """

    def __init__(self, preset: str = "default", window: int | None = None, horizon: int | None = None,
                 units: int | None = None, layers: int | None = None, dropout: float | None = None,
                 learning_rate: float | None = None, epochs: int | None = None,
                 batch_size: int | None = None, patience: int | None = None,
                 validation_fraction: float | None = None, scaler: str | None = None,
                 log_latency: bool | None = None, delta: bool | None = None,
                 warn_weight: float | None = None, loss: str | None = None, known_future: Sequence[str] = (),
                 base: str | None = None, base_alpha: float | None = None, quantile: float | None = None,
                 calibrate: bool | None = None, incident_horizon: int | None = None,
                 key_metrics: Sequence[str] = KEY_METRICS, features: Sequence[str] | None = None,
                 max_gap_s: int | None = None, seed: int = 0, future: str | None = None,
                 normalise: str | None = None):
        self.preset = preset
        self.window = window
        self.horizon = horizon
        self.units = units
        self.layers = layers
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scaler = scaler
        self.log_latency = log_latency
        self.delta = delta
        self.warn_weight = warn_weight
        self.loss = loss
        self.base = base
        self.base_alpha = base_alpha
        self.quantile = quantile
        self.calibrate = calibrate
        self.incident_horizon = incident_horizon
        self.known_future = known_future
        self.key_metrics = key_metrics
        self.features = features
        self.max_gap_s = max_gap_s
        self.seed = seed
        self.future = future
        self.normalise = normalise

    # ------------------------------------------------------------ parameters

    def resolved_params(self) -> dict[str, Any]:
        """Return the hyper-parameters in force: defaults, then the preset, then explicit values."""
        if self.preset not in PRESETS:
            raise BadInput(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        params = {**DEFAULTS, **PRESETS[self.preset]}
        params.update({k: getattr(self, k) for k in DEFAULTS if getattr(self, k) is not None})
        for name in ("window", "horizon", "units", "layers", "epochs", "batch_size"):
            if int(params[name]) < 1:
                raise BadInput(f"{name} must be at least 1, got {params[name]}")
        if not 0 <= float(params["dropout"]) < 1:
            raise BadInput(f"dropout must be in [0, 1), got {params['dropout']}")
        if not 0 <= float(params["validation_fraction"]) < 1:
            raise BadInput(f"validation_fraction must be in [0, 1), got {params['validation_fraction']}")
        if params["loss"] not in ("mse", "huber", "mae"):
            raise BadInput(f"loss must be mse, huber or mae, got {params['loss']!r}")
        if params["base"] not in BASES:
            raise BadInput(f"base must be one of {', '.join(BASES)}, got {params['base']!r}")
        if not 0 < float(params["base_alpha"]) <= 1:
            raise BadInput(f"base_alpha must be in (0, 1], got {params['base_alpha']}")
        if not (float(params["quantile"]) == 0 or 0.5 < float(params["quantile"]) < 1):
            raise BadInput(f"quantile must be 0 (no upper head) or in (0.5, 1), got {params['quantile']}")
        if int(params["incident_horizon"]) < 0:
            raise BadInput(f"incident_horizon must be 0 (no incident head) or more, got {params['incident_horizon']}")
        if params["future"] not in ("plan", "hold"):
            raise BadInput(f"future must be plan or hold, got {params['future']!r}")
        if params["normalise"] not in NORMALISE:
            raise BadInput(f"--normalise: must be {', '.join(NORMALISE[:-1])} or {NORMALISE[-1]}, "
                           f"got {params['normalise']!r}")
        params.update(known_future=list(self.known_future), key_metrics=list(self.key_metrics),
                      seed=int(self.seed))
        if not params["key_metrics"]:
            raise BadInput("key_metrics: name at least one column to forecast")
        return params

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise LabError("this LSTMForecaster is not fitted yet; call fit() or load() first")

    # ------------------------------------------------------------ fitting

    def fit(self, runs: Sequence[pd.DataFrame | str | Path], y: None = None,
            on_epoch: Callable[[int, int, dict[str, float]], None] | None = None) -> LSTMForecaster:
        """Train on runs (frames or run/dataset folders); `on_epoch(epoch, epochs, logs)` reports progress."""
        p = self.resolved_params()
        if p["normalise"] == "auto":
            return self._fit_auto(runs, on_epoch)
        runs = as_runs(runs)
        W, H = int(p["window"]), int(p["horizon"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            columns = select_features(runs, p["key_metrics"], self.features)
            for c in p["known_future"]:
                if c not in columns:
                    raise BadInput(f"known_future column '{c}' is not an input feature (constant or missing?)")
            fit_runs, val_runs = self._validation_split(runs, p)
            scaler = fit_scaler(fit_runs, columns, kind=p["scaler"],
                                log_columns=LATENCY_COLUMNS if p["log_latency"] else (),
                                max_gap_s=p["max_gap_s"])
            cut = dict(key_metrics=p["key_metrics"], known_future=p["known_future"], max_gap_s=p["max_gap_s"],
                       hold_future=p["future"] == "hold", require_targets=True)
            train = make_windows(fit_runs, columns, W, H, **cut)
            val = None
            if val_runs:
                try:
                    val = make_windows(val_runs, columns, W, H, **cut)
                except BadInput as exc:
                    # Gaps can leave the validation runs without a window: train without them.
                    warnings.warn(f"no validation windows ({exc}); training without early stopping",
                                  DataWarning, stacklevel=2)
        self.warnings_ = [str(w.message) for w in caught]
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=2)

        keras = configure_tensorflow()
        keras.utils.set_random_seed(p["seed"])
        _deterministic()
        self.scaler_, self.columns_, self.params_ = scaler, train.columns, p
        self.key_metrics_, self.known_future_ = list(p["key_metrics"]), list(p["known_future"])
        self.n_features_in_ = len(self.columns_)
        inc = incident_ahead(train, int(p["incident_horizon"])) if int(p["incident_horizon"]) else None
        p["incident_head"] = bool(inc is not None and inc.any())
        model = self._build(keras, p)
        if p["delta"] and p["base"] == "auto":
            p["base_choice"] = self._choose_base(train)
        x_train, y_train = self._encode(train)[0], self._targets(train)
        fit_kwargs: dict[str, Any] = {}
        callbacks: list[Any] = [_EpochHook(keras, on_epoch, int(p["epochs"]))]
        if val is not None and len(val):
            fit_kwargs["validation_data"] = (self._encode(val)[0], self._targets(val))
            if int(p["patience"]) > 0:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=int(p["patience"]), restore_best_weights=True))
        started = time.perf_counter()
        history = model.fit(x_train, y_train, epochs=int(p["epochs"]), batch_size=int(p["batch_size"]),
                            shuffle=True, verbose=0, callbacks=callbacks, **fit_kwargs)
        self.fit_seconds_ = time.perf_counter() - started
        self.model_ = model
        self._serve = None
        self.history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        self.epochs_trained_ = len(history.history.get("loss", []))
        self.target_scale_ = target_scales(runs, self.key_metrics_)
        self.incident_threshold_, self.incident_note_ = 0.5, (
            "no incident head: the training runs hold no incident" if not p["incident_head"]
            else "no validation windows: incident threshold 0.5, not tuned")
        self.calibration_, self.calibration_note_ = None, ("not calibrated: no validation windows" if p["calibrate"]
                                                            else "not calibrated (calibrate=False)")
        self.validation_relmae_: dict[str, float | None] = {}
        if val is not None and len(val):
            forecast, raw, _, incident = self._raw_predict(val, calibrated=False)
            self.validation_relmae_ = validation_relmae(forecast, val)
            if p.get("calibrate"):
                self.calibration_, self.calibration_note_ = platt(raw, val.warn)
            self.warn_threshold_, self.threshold_note_ = choose_threshold(val, self._calibrated(raw))
            if incident is not None:
                self._incident_threshold(val, incident)
        else:
            self.warn_threshold_, self.threshold_note_ = 0.5, "no validation windows: threshold 0.5, not tuned"
        if not self.threshold_note_.startswith("best"):
            warnings.warn(f"alarm threshold: {self.threshold_note_}", DataWarning, stacklevel=2)
            self.warnings_.append(f"alarm threshold: {self.threshold_note_}")
        self.training_summary_ = {
            "runs": [{"run_id": run_name(r), "scenario": str(r.attrs.get("scenario", "")), "rows": len(r)}
                     for r in runs],
            "validation_runs": [run_name(r) for r in val_runs],
            "train_windows": len(train), "validation_windows": len(val) if val is not None else 0,
            "train_warn_share": float(train.warn.mean()),
            "epochs_trained": self.epochs_trained_, "fit_seconds": round(self.fit_seconds_, 2),
            "alarm_threshold": self.warn_threshold_, "alarm_threshold_note": self.threshold_note_,
            "calibration": self.calibration_, "calibration_note": self.calibration_note_,
            "incident_head": bool(p["incident_head"]), "train_incident_share": float(inc.mean()) if inc is not None else 0.0,
            "incident_threshold": self.incident_threshold_, "incident_threshold_note": self.incident_note_,
            "seconds_per_epoch": round(self.fit_seconds_ / max(1, self.epochs_trained_), 3),
            "normalise": p["normalise"], "validation_relmae": self.validation_relmae_,
            "validation_score": _mean_score(self.validation_relmae_),
            "warnings": self.warnings_,
        }
        return self

    def _fit_auto(self, runs: Sequence[pd.DataFrame | str | Path],
                  on_epoch: Callable[[int, int, dict[str, float]], None] | None) -> LSTMForecaster:
        """Fit one model per normalisation and keep the lowest validation RelMAE (never a test score)."""
        from sklearn.base import clone

        runs = as_runs(runs)
        fits: dict[str, LSTMForecaster] = {}
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            for mode in NORMALISE[:-1]:
                fits[mode] = clone(self).set_params(normalise=mode).fit(runs, on_epoch=on_epoch)
        scores = {m: f.training_summary_["validation_score"] for m, f in fits.items()}
        if all(v is None for v in scores.values()):
            raise BadInput("--normalise auto: the training runs leave no validation windows to choose on; "
                           "name global, level or window")
        best = min(scores, key=lambda m: (np.inf if scores[m] is None else scores[m], NORMALISE.index(m)))
        self.__dict__.update({k: v for k, v in vars(fits[best]).items() if k.endswith("_") or k == "_serve"})
        self.training_summary_ = {**self.training_summary_, "normalise_scores": scores,
                                  "normalise_note": f"auto: {best}, the lowest validation RelMAE"}
        for message in dict.fromkeys(self.warnings_):
            warnings.warn(message, DataWarning, stacklevel=2)
        return self

    def _validation_split(self, runs: list[pd.DataFrame], p: dict[str, Any]) -> tuple[list, list]:
        """Hold out whole runs for validation when there are 3+, else the end of each run."""
        fraction = float(p["validation_fraction"])
        if fraction <= 0:
            return runs, []
        span = int(p["window"]) + int(p["horizon"])
        if len(runs) >= 3:
            fit_runs, val_runs = _with_violation(*split_runs(runs, test_fraction=fraction, seed=int(p["seed"])))
            if any(len(r) >= span for r in fit_runs) and any(len(r) >= span for r in val_runs):
                return fit_runs, val_runs
        fit_runs, val_runs = [], []
        for r in runs:
            head, tail = chronological_split(r, fraction) if len(r) >= 2 * span else (r, None)
            if tail is not None and len(tail) >= span and len(head) >= span:
                fit_runs.append(head)
                val_runs.append(tail)
            else:
                fit_runs.append(r)
        return fit_runs, val_runs

    def _build(self, keras: Any, p: dict[str, Any], compile: bool = True) -> Any:
        W, H, K = int(p["window"]), int(p["horizon"]), len(p["key_metrics"])
        window = keras.Input((W, len(self.columns_)), name="window")
        inputs = {"window": window}
        h = window
        for i in range(int(p["layers"])):
            h = keras.layers.LSTM(int(p["units"]), return_sequences=i < int(p["layers"]) - 1,
                                  name=f"lstm_{i + 1}")(h)
            if float(p["dropout"]) > 0:
                h = keras.layers.Dropout(float(p["dropout"]), name=f"dropout_{i + 1}")(h)
        if p["known_future"]:
            future = keras.Input((H, len(p["known_future"])), name="future")
            inputs["future"] = future
            h = keras.layers.Concatenate(name="with_future")([h, keras.layers.Flatten(name="future_flat")(future)])
        # Zero start: with residual targets the untrained model is the base forecast.
        init = "zeros" if p["delta"] else "glorot_uniform"
        outputs = {"forecast": keras.layers.Reshape((H, K), name="forecast")(
            keras.layers.Dense(H * K, name="forecast_dense", kernel_initializer=init)(h))}
        losses: dict[str, Any] = {"forecast": p["loss"]}
        if float(p.get("quantile", 0)):
            outputs["upper"] = keras.layers.Reshape((H, K), name="upper")(
                keras.layers.Dense(H * K, name="upper_dense", kernel_initializer=init)(h))
            losses["upper"] = _pinball(keras, float(p["quantile"]))
        outputs["warning"] = keras.layers.Dense(1, activation="sigmoid", name="warning")(h)
        losses["warning"] = "binary_crossentropy"
        if p.get("incident_head"):
            outputs["incident"] = keras.layers.Dense(1, activation="sigmoid", name="incident")(h)
            losses["incident"] = "binary_crossentropy"
        model = keras.Model(inputs, outputs, name="lstm_forecaster")
        if not compile:
            return model
        weights = {name: 1.0 for name in losses}
        weights["warning"] = float(p["warn_weight"])
        if "incident" in weights:
            weights["incident"] = float(p["warn_weight"])
        model.compile(optimizer=keras.optimizers.Adam(float(p["learning_rate"])), loss=losses,
                      loss_weights=weights)
        return model

    # ------------------------------------------------------------ encoding

    def _encode(self, w: Windows) -> tuple[dict[str, np.ndarray], Frame]:
        """Scale and normalise windows into the model's inputs; return them with each window's frame."""
        return self._inputs(self.scaler_.transform(w.x, self.columns_),
                            self.scaler_.transform(w.future, self.known_future_) if self.known_future_ else None)

    def _inputs(self, x_scaled: np.ndarray, future_scaled: np.ndarray | None) -> tuple[dict[str, np.ndarray], Frame]:
        """The network's inputs from scaled windows (n, W, F) and plans (n, H, J), and each window's frame."""
        z, frame = self._normalised(x_scaled)
        inputs = {"window": z.astype("float32")}
        if self.known_future_:
            fut = np.asarray(future_scaled, dtype="float64")
            if frame is not None:
                idx = [self.columns_.index(c) for c in self.known_future_]
                fut = (fut - frame[0][..., idx]) / frame[1][..., idx]
            inputs["future"] = fut.astype("float32")
        return inputs, frame

    def _normalised(self, x_scaled: np.ndarray) -> tuple[np.ndarray, Frame]:
        """Express scaled windows in the model's `normalise` frame: (z, (level, spread)), the frame
        None for "global"; what the gap rule left missing (NaN) becomes the frame's 0."""
        x = np.asarray(x_scaled, dtype="float64")
        mode = self.params_.get("normalise", "global")       # models saved before the option: global
        if mode == "global":
            return np.where(np.isnan(x), 0.0, x), None
        level, spread = window_frame(x, mode)
        z = (x - level) / spread
        return np.where(np.isnan(z), 0.0, z), (level, spread)

    def _base_scaled(self, x_scaled: np.ndarray) -> np.ndarray:
        """Return the base forecast in scaled units that the residual heads add to: (n, H, K)
        with a per-horizon choice (`base="auto"`), else (n, 1, K), one level for every horizon."""
        idx = [self.columns_.index(c) for c in self.key_metrics_]
        key = np.asarray(x_scaled, dtype="float64")[:, :, idx]
        alpha = float(self.params_["base_alpha"])
        # Models saved before `base` existed: persistence. "auto": the choice made in fit,
        # one name per horizon and key metric.
        choice = self.params_.get("base_choice")
        if not choice:
            return _base_of(self.params_.get("base", "last"), key, alpha)
        grid = np.asarray(choice, dtype=object).reshape(-1, len(idx))      # (H, K); older files: (1, K)
        levels = {name: _base_of(name, key, alpha)[:, 0, :] for name in set(grid.ravel())}
        out = np.empty((key.shape[0], grid.shape[0], len(idx)))
        for h in range(grid.shape[0]):
            for j in range(len(idx)):
                out[:, h, j] = levels[grid[h, j]][:, j]
        return out

    def _choose_base(self, w: Windows) -> list[list[str]]:
        """Per horizon and key metric, the base with the lowest training-window MAE (scaled units): (H, K) names."""
        idx = [self.columns_.index(c) for c in self.key_metrics_]
        key = self.scaler_.transform(w.x, self.columns_)[:, :, idx]
        y = self.scaler_.transform(w.y, self.key_metrics_)
        errors = {name: np.nanmean(np.abs(y - _base_of(name, key, float(self.params_["base_alpha"]))), axis=0)
                  for name in BASES[1:]}                                        # (H, K) each
        return [[min(BASES[1:], key=lambda n: (np.nan_to_num(errors[n][h, j], nan=np.inf), BASES.index(n)))
                 for j in range(len(idx))] for h in range(y.shape[1])]

    def _targets(self, w: Windows) -> dict[str, np.ndarray]:
        z, frame = self._normalised(self.scaler_.transform(w.x, self.columns_))
        y = self.scaler_.transform(w.y, self.key_metrics_)
        if frame is not None:
            idx = [self.columns_.index(c) for c in self.key_metrics_]
            y = (y - frame[0][..., idx]) / frame[1][..., idx]
        if self.params_["delta"]:
            y = y - self._base_scaled(z)
        out = {"forecast": y.astype("float32"), "warning": w.warn.reshape(-1, 1).astype("float32")}
        if float(self.params_.get("quantile", 0)):
            out["upper"] = out["forecast"]
        if self.params_.get("incident_head"):
            out["incident"] = incident_ahead(w, int(self.params_["incident_horizon"])).reshape(-1, 1)
        return out

    def _decode(self, out: np.ndarray, z: np.ndarray, frame: Frame = None) -> np.ndarray:
        """Raw-unit forecasts from the heads' output, the network's window `z` and its frame."""
        y = np.asarray(out, dtype="float64")
        if self.params_["delta"]:
            y = y + self._base_scaled(z)
        if frame is not None:
            idx = [self.columns_.index(c) for c in self.key_metrics_]
            y = y * frame[1][..., idx] + frame[0][..., idx]
        return clip_forecast(self.scaler_.inverse_transform(y, self.key_metrics_), self.key_metrics_)

    def _incident_threshold(self, val: Windows, prob: np.ndarray) -> None:
        """Choose the incident alarm's threshold on validation, by incident episodes (as the SLO alarm's)."""
        view = incident_view(val, int(self.params_["incident_horizon"]))
        self.incident_threshold_, note = choose_threshold(view, prob)
        self.incident_note_ = f"incident episodes: {note}"

    def _calibrated(self, probability: np.ndarray) -> np.ndarray:
        """Apply the Platt scaling fitted on validation (identity when there is none)."""
        cal = getattr(self, "calibration_", None)
        p = np.asarray(probability, dtype="float64")
        if not cal:
            return p
        return 1.0 / (1.0 + np.exp(-(cal["a"] * _logit(p) + cal["b"])))

    # ------------------------------------------------------------ prediction

    def windows(self, runs: Sequence[pd.DataFrame | str | Path]) -> Windows:
        """Cut runs into this model's windows (its columns, window, horizon, gap rule)."""
        self._check_fitted()
        p = self.params_
        runs = as_runs(runs)
        require_columns(runs, [c for c in self.columns_ if c != MISSING])
        return make_windows(runs, [c for c in self.columns_ if c != MISSING], int(p["window"]),
                            int(p["horizon"]), self.key_metrics_, self.known_future_, int(p["max_gap_s"]),
                            hold_future=p.get("future") == "hold")

    def _raw_predict(self, w: Windows, calibrated: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        inputs, frame = self._encode(w)
        out = self.model_.predict(inputs, batch_size=1024, verbose=0)
        prob = np.asarray(out["warning"]).reshape(-1)
        upper = self._decode(out["upper"], inputs["window"], frame) if "upper" in out else None
        incident = np.asarray(out["incident"], dtype="float64").reshape(-1) if "incident" in out else None
        return (self._decode(out["forecast"], inputs["window"], frame), self._calibrated(prob) if calibrated else prob,
                upper, incident)

    def predict(self, runs: Sequence[pd.DataFrame | str | Path] | Windows) -> WindowForecasts:
        """Forecast every window of the runs; return forecasts, probabilities and alarms."""
        self._check_fitted()
        w = runs if isinstance(runs, Windows) else self.windows(runs)
        forecast, prob, upper, incident = self._raw_predict(w)
        alarm = None if incident is None else (incident >= self.incident_threshold_).astype("int8")
        return WindowForecasts(w, forecast, prob, (prob >= self.warn_threshold_).astype("int8"), upper,
                               incident, alarm, int(self.params_.get("incident_horizon", 0) or 0))

    def predict_one(self, window: pd.DataFrame | np.ndarray,
                    future: np.ndarray | Sequence[float] | None = None) -> tuple[np.ndarray, float]:
        """Forecast from the last W seconds with a compiled call (for 1 Hz online use).

        `window` is a frame with the model's columns (its last W rows are used; give it the
        30 s before them too, so the derived RSS slope of `modeling.features` reads the same
        history as in training) or an array (W, F) of raw values in `columns_` order
        without `missing`. `future` is the
        plan's next H seconds (H x known-future columns); a `future="hold"` model takes the
        plan of the window's last row, held, when it is not given (as in training).
        Returns the (H, K) forecast (the median) in raw units and the calibrated violation
        probability. The monitor's hot path keeps its window in an `OnlineWindow` ring
        buffer and calls `predict_filled`, which skips pandas altogether.
        """
        self._check_fitted()
        W = int(self.params_["window"])
        columns = [c for c in self.columns_ if c != MISSING]
        if isinstance(window, pd.DataFrame):
            window = pooled_targets(window)            # the stand-ins training used, served the same way
            require_columns([window], columns)
            if len(window) < W:
                raise BadInput(f"online window needs at least {W} rows, got {len(window)}")
            frame = window.iloc[-W:]
        else:
            arr = np.asarray(window, dtype="float64")
            if arr.ndim != 2 or arr.shape[1] != len(columns) or arr.shape[0] < W:
                raise BadInput(f"window must be an array of at least {W} rows x {len(columns)} columns "
                               f"({', '.join(columns)}), got shape {arr.shape}")
            frame = pd.DataFrame(arr[-W:], columns=columns)
        out = self.predict_filled(fill_gaps(frame, columns, int(self.params_["max_gap_s"])), future)
        return out.forecast, out.probability

    def predict_filled(self, values: np.ndarray, future: np.ndarray | Sequence[float] | None = None) -> OneForecast:
        """Forecast from W rows already through the gap rule: (W, F + 1) raw values, `missing` last.

        What the gap rule could not fill (NaN) takes the training mean (scaled 0), or with
        `normalise` the window's own level; the row's `missing` flag says so, as in training.
        The window's frame (`normalise`) is computed from these W rows alone, as offline.
        """
        H = int(self.params_["horizon"])
        x = self.scaler_.transform(np.asarray(values, dtype="float64")[None], self.columns_)
        fut = None
        if self.known_future_:
            if future is None and self.params_.get("future") == "hold":
                columns = [c for c in self.columns_ if c != MISSING]
                future = np.repeat(np.asarray(values)[-1:, [columns.index(c) for c in self.known_future_]], H, axis=0)
            if future is None:
                raise BadInput(f"this model was trained on the plan ahead: it needs the next {H} seconds of "
                               f"{', '.join(self.known_future_)} (future=), or train it with future='hold'")
            fut = np.asarray(future, dtype="float64").reshape(H, len(self.known_future_))
            fut = self.scaler_.transform(fut[None], self.known_future_)
        inputs, frame = self._inputs(x, fut)
        out = self._serving_fn()(inputs)
        z = inputs["window"]
        upper = self._decode(out["upper"].numpy(), z, frame)[0] if "upper" in out else None
        prob = float(self._calibrated(out["warning"].numpy().reshape(-1))[0])
        incident = float(out["incident"].numpy().reshape(-1)[0]) if "incident" in out else None
        return OneForecast(self._decode(out["forecast"].numpy(), z, frame)[0], prob, upper, incident)

    def _serving_fn(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        if getattr(self, "_serve", None) is None:
            import tensorflow as tf

            model = self.model_
            self._serve = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
        return self._serve

    # ------------------------------------------------------------ persistence

    def _inference_copy(self) -> Any:
        """Return an uncompiled copy of the model with its weights: the saved file then names no
        loss (the pinball loss is a Python function, which a safe loader could not rebuild)."""
        import keras

        copy = self._build(keras, self.params_, compile=False)
        copy.set_weights(self.model_.get_weights())
        return copy

    def save(self, folder: str | Path) -> Path:
        """Write model.keras and params.json into `folder`, each atomically, with the umask's modes."""

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MODEL_FILE, suffix=".keras") as tmp:   # Keras wants the suffix
            with warnings.catch_warnings():
                # Keras' own variable-to-numpy conversion under NumPy 2; nothing we can act on.
                warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
                self._inference_copy().save(tmp)
        import keras

        init = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        atomic_write_json(folder / PARAMS_FILE, {
            "format": FORMAT,
            "init_params": init,
            "params": self.params_,
            "columns": self.columns_,
            "key_metrics": self.key_metrics_,
            "known_future": self.known_future_,
            "scaler": self.scaler_.to_dict(),
            "warn_threshold": self.warn_threshold_,
            "warn_threshold_note": getattr(self, "threshold_note_", None),
            "calibration": getattr(self, "calibration_", None),
            "incident_threshold": getattr(self, "incident_threshold_", 0.5),
            "incident_threshold_note": getattr(self, "incident_note_", None),
            "target_scale": getattr(self, "target_scale_", {}),
            "history": self.history_,
            "training": self.training_summary_,
            "model_sha256": sha256_file(folder / MODEL_FILE),
            "versions": {"keras": keras.__version__},
        })
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> LSTMForecaster:
        """Load a saved forecaster, refusing model files with code-carrying or unknown layers."""

        folder = Path(folder)
        params_path, model_path = folder / PARAMS_FILE, folder / MODEL_FILE
        for path in (params_path, model_path):
            if not path.is_file():
                raise BadInput(f"{path}: missing (not a saved LSTMForecaster folder)")
        meta = read_json(params_path, PARAMS_FILE)
        if meta.get("format") != FORMAT:
            raise BadInput(f"{params_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
        check_model_file(model_path)
        if meta.get("model_sha256") != sha256_file(model_path):
            raise BadInput(f"{model_path}: sha256 differs from params.json (the files do not belong together)")
        keras = configure_tensorflow()
        try:
            model = keras.models.load_model(model_path, safe_mode=True, compile=False)
        except Exception as exc:  # Keras raises many types for a bad file; all mean "refused".
            raise BadInput(f"{model_path}: cannot be loaded safely: {str(exc).splitlines()[0][:200]}") from None
        try:
            est = cls(**meta["init_params"])
            est.params_ = meta["params"]
            est.columns_ = [str(c) for c in meta["columns"]]
            est.key_metrics_ = [str(c) for c in meta["key_metrics"]]
            est.known_future_ = [str(c) for c in meta["known_future"]]
            est.scaler_ = Scaler.from_dict(meta["scaler"])
            est.warn_threshold_ = float(meta["warn_threshold"])
            est.threshold_note_ = str(meta.get("warn_threshold_note") or "not recorded (older model)")
            est.incident_threshold_ = float(meta.get("incident_threshold", 0.5))
            est.incident_note_ = str(meta.get("incident_threshold_note") or "no incident head (older model)")
            cal = meta.get("calibration")
            est.calibration_ = None if cal is None else {"a": float(cal["a"]), "b": float(cal["b"])}
            est.target_scale_ = {str(k): (None if v is None else float(v))
                                 for k, v in (meta.get("target_scale") or {}).items()}
            est.history_ = meta.get("history", {})
            est.training_summary_ = meta.get("training", {})
            est.calibration_note_ = est.training_summary_.get("calibration_note")
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{params_path}: malformed ({exc})") from None
        est.n_features_in_ = len(est.columns_)
        est.epochs_trained_ = int(est.training_summary_.get("epochs_trained", 0))
        est.warnings_ = list(est.training_summary_.get("warnings", []))
        est.model_ = model
        est._serve = None
        return est


# ---------------------------------------------------------------- helpers


def check_model_file(path: str | Path) -> None:
    """Refuse a .keras file whose config holds a Lambda or any class outside SAFE_CLASSES."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path}: not a Keras model archive ({exc})") from None
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str):
                module = str(node.get("module") or "")
                if name in ("Lambda", "__lambda__") or "lambda" in name.lower():
                    raise BadInput(f"{path}: refused: contains a {name} layer (it can carry executable code)")
                if name not in SAFE_CLASSES or (module and not module.startswith("keras")) \
                        or node.get("registered_name") not in (None, name):
                    raise BadInput(f"{path}: refused: unknown or custom object {module + '.' if module else ''}{name}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def window_frame(x_scaled: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Each window's level and spread per column, (n, 1, F) each, from its own W rows only.

    The level is the window's median ("level" and "window"), the spread its standard
    deviation floored at SPREAD_FLOOR ("window"; 1 for "level"); NaN cells are ignored, a
    column without a value gets level 0. The last column, the `missing` flag, keeps 0 and 1.
    """
    x = np.asarray(x_scaled, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN columns: handled below
        level = np.nanmedian(x, axis=1, keepdims=True)
        spread = (np.nanstd(x, axis=1, keepdims=True) if mode == "window" else np.ones_like(level))
    level = np.where(np.isfinite(level), level, 0.0)
    spread = np.where(np.isfinite(spread), np.maximum(spread, SPREAD_FLOOR), 1.0) if mode == "window" else spread
    level[..., -1], spread[..., -1] = 0.0, 1.0
    return level, spread


def validation_relmae(forecast: np.ndarray, w: Windows) -> dict[str, float | None]:
    """Per key metric, MAE over every horizon of `forecast` (n, H, K) over persistence's, on windows `w`."""
    y = w.y.astype("float64")
    naive = np.broadcast_to(w.x_key[:, -1:, :].astype("float64"), y.shape)
    scores = {m: relmae(y[..., j], forecast[..., j], naive[..., j]) for j, m in enumerate(w.key_metrics)}
    return {m: round(v, 6) if np.isfinite(v) else None for m, v in scores.items()}


def _mean_score(scores: dict[str, float | None]) -> float | None:
    values = [v for v in scores.values() if v is not None]
    return float(np.mean(values)) if values else None


def _base_of(name: str, key: np.ndarray, alpha: float) -> np.ndarray:
    """One base forecast (n, 1, K) from the window's scaled key metrics (n, W, K)."""
    if name == "ewma":
        return np.einsum("nwk,w->nk", key, ewma_weights(key.shape[1], alpha))[:, None, :]
    if name == "median":
        return np.median(key[:, -min(MEDIAN_SPAN, key.shape[1]):, :], axis=1, keepdims=True)
    return key[:, -1:, :]


def _pinball(keras: Any, q: float) -> Callable[[Any, Any], Any]:
    """The pinball (quantile) loss at q: its minimiser is the q-quantile of the target."""
    def pinball(y_true: Any, y_pred: Any) -> Any:
        err = y_true - y_pred
        return keras.ops.mean(keras.ops.maximum(q * err, (q - 1.0) * err), axis=-1)

    return pinball


def _logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with p kept 1e-6 away from 0 and 1 (a sigmoid's float32 output reaches both)."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def platt(probability: np.ndarray, truth: np.ndarray) -> tuple[dict[str, float] | None, str]:
    """Fit Platt scaling, P = sigmoid(a * logit(p) + b), on validation windows; None when it cannot be fitted."""
    from sklearn.linear_model import LogisticRegression

    p, y = np.asarray(probability, dtype="float64"), np.asarray(truth).astype(int)
    if len(np.unique(y)) < 2:
        return None, "not calibrated: the validation windows hold one class only"
    fit = LogisticRegression(C=1e4).fit(_logit(p)[:, None], y)
    return ({"a": float(fit.coef_[0][0]), "b": float(fit.intercept_[0])},
            f"Platt scaling on {len(y)} validation windows ({int(y.sum())} positive)")


def _deterministic() -> None:
    import tensorflow as tf

    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):
        pass


def target_scales(runs: Sequence[pd.DataFrame], key_metrics: Sequence[str]) -> dict[str, float | None]:
    """Return MASE's scale per key metric: the in-sample one-step naive MAE of the training runs' targets."""
    from .data import _finite
    from .metrics import naive_scale

    frames = [pooled_targets(r) for r in runs]
    out: dict[str, float | None] = {}
    for m in key_metrics:
        v = naive_scale([_finite(f[m]) for f in frames if m in f.columns])
        out[m] = v if np.isfinite(v) else None
    return out


def _with_violation(fit_runs: list[pd.DataFrame], val_runs: list[pd.DataFrame]) -> tuple[list, list]:
    """Swap a violating run into validation when it has none, so the alarm threshold has something to find."""
    def violates(r: pd.DataFrame) -> bool:
        return bool(pd.to_numeric(r["slo_violation"], errors="coerce").fillna(0).gt(0).any())

    if any(violates(r) for r in val_runs) or not any(violates(r) for r in fit_runs) or not val_runs:
        return fit_runs, val_runs
    i = next(i for i, r in enumerate(fit_runs) if violates(r))
    fit_runs, val_runs = list(fit_runs), list(val_runs)
    fit_runs[i], val_runs[0] = val_runs[0], fit_runs[i]
    return fit_runs, val_runs


def _EpochHook(keras: Any, on_epoch: Callable[[int, int, dict[str, float]], None] | None, epochs: int) -> Any:
    """Return a Keras callback that calls on_epoch(epoch, epochs, logs) after each epoch."""
    class EpochHook(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})

    return EpochHook()
