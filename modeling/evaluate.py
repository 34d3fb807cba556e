"""Score a fitted forecaster, the baselines and the regimes on held-out runs; say who wins.

`evaluate()` returns a JSON-ready dict (NaN becomes null) for metrics.json; `verdict()`
turns it into short plain sentences, including where the LSTM loses to a baseline.
Definitions of every figure are in modeling/metrics.py and docs/modeling.md.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import baselines
from .data import as_runs, run_name
from .metrics import (event_scores, forecast_scores, forecast_violates, merge_event_scores,
                      regime_scores, stability_pct, warning_scores)
from .regimes import UNKNOWN, truth_regimes

# The goals on held-out scenarios (benchmarks/README.md records the figures).
GOALS = {"mase_p95_at_h_below": 0.8, "mase_all_below": 1.0, "f1_at_least": 0.8,
         "lead_gain_s_at_least": 10.0, "ari_at_least": 0.6}


def jsonable(obj: Any) -> Any:
    """Return obj with numpy types made plain and NaN/inf replaced by None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _alarm_series(windows: Any, alarm: np.ndarray) -> list[np.ndarray]:
    """Place per-window alarms on each run's timeline (NaN where no window ends)."""
    out = []
    for i, labels in enumerate(windows.violation):
        series = np.full(len(labels), np.nan)
        mine = windows.run == i
        series[windows.t[mine]] = alarm[mine]
        out.append(series)
    return out


def evaluate(forecaster: Any, runs: Sequence[pd.DataFrame], regimes: Any = None) -> dict[str, Any]:
    """Evaluate on held-out runs: forecasts, early warning, regimes, stability %, verdict."""
    runs = as_runs(runs)
    pred = forecaster.predict(runs)
    w = pred.windows
    key, H = w.key_metrics, w.horizon
    x_key = w.x_key

    forecasts = {"lstm": pred.forecast, **baselines.forecast_all(x_key, H, key)}
    naive = forecasts["persistence"]
    per_model = {name: forecast_scores(w.y, f, naive, key) for name, f in forecasts.items()}
    summary = {name: {m: {"mae_at_h": s["mae"][-1], "mase_at_h": s["mase"][-1],
                          "mase_mean": float(np.nanmean(s["mase"])) if np.isfinite(s["mase"]).any() else None}
                      for m, s in scores.items()}
               for name, scores in per_model.items()}

    alarms = {
        "lstm": pred.alarm,
        "lstm_forecast": forecast_violates(pred.forecast, w.slo, key),
        "reactive": baselines.reactive_alert(x_key, w.slo, key),
        "predict_linear": baselines.linear_alert(x_key, H, w.slo, key),
    }
    warning = {}
    for name, alarm in alarms.items():
        series = _alarm_series(w, alarm)
        events = merge_event_scores([event_scores(v, a, H) for v, a in zip(w.violation, series)])
        warning[name] = {**warning_scores(w.warn, alarm), **events}

    stability = {"definition": "100 x (1 - P(SLO violated at some second in the next H s)), mean over windows; "
                               "point forecasts count P = 1 when they cross the SLO",
                 "actual": stability_pct(w.warn), "lstm": stability_pct(pred.probability),
                 "lstm_forecast": stability_pct(alarms["lstm_forecast"]),
                 **{name: stability_pct(forecast_violates(f, w.slo, key))
                    for name, f in forecasts.items() if name != "lstm"}}

    result: dict[str, Any] = {
        "data": {"runs": [run_name(r) for r in runs], "scenarios": sorted({str(r.attrs.get("scenario")) for r in runs}),
                 "windows": len(w), "window_s": w.window, "horizon_s": H, "key_metrics": key,
                 "warn_share": float(w.warn.mean()), "alarm_threshold": float(forecaster.warn_threshold_)},
        "forecast": per_model,
        "summary": summary,
        "early_warning": {"definition": "precision/recall/f1: seconds, truth = SLO violated in the next H s; "
                                        "event_recall/lead: violation onsets after >= H clean seconds",
                          **warning},
        "stability_pct": stability,
    }
    if regimes is not None:
        truth, names, feats = [], [], []

        for r in runs:
            n = regimes.predict_names(r)
            ok = n != UNKNOWN
            truth.append(truth_regimes(r)[ok])
            names.append(n[ok])
            feats.append(regimes.transform(r)[ok])
        truth_all, names_all = np.concatenate(truth), np.concatenate(names)
        scores = regime_scores(truth_all, names_all, np.vstack(feats), seed=0)
        shares = pd.Series(names_all).value_counts(normalize=True).round(4).to_dict()
        result["regimes"] = {**scores, "k": regimes.k_, "names": regimes.names_, "shares": shares,
                             "truth": "fault kind while a fault is active, else overload when the SLO "
                                      "is violated, else normal"}
    result["goals"] = goals(result)
    result["verdict"] = verdict(result)
    return jsonable(result)


def _best_baseline(result: dict[str, Any], metric: str) -> tuple[str, float]:
    best = ("persistence", 1.0)
    for name, scores in result["summary"].items():
        if name in ("lstm", "persistence"):
            continue
        value = scores[metric]["mase_at_h"]
        if value is not None and np.isfinite(value) and value < best[1]:
            best = (name, float(value))
    return best


def goals(result: dict[str, Any]) -> dict[str, Any]:
    """Check the issue's goals; each entry holds the figure and whether it is met."""
    lstm = result["forecast"]["lstm"]
    out: dict[str, Any] = {}
    p95 = result["summary"]["lstm"].get("latency_p95_ms", {}).get("mase_at_h")
    out["lstm_mase_p95_at_h"] = {"value": p95, "goal": f"< {GOALS['mase_p95_at_h_below']}",
                                 "met": p95 is not None and p95 < GOALS["mase_p95_at_h_below"]}
    worst = max((v for s in lstm.values() for v in s["mase"] if v is not None and np.isfinite(v)), default=None)
    out["lstm_mase_worst"] = {"value": worst, "goal": f"< {GOALS['mase_all_below']} for every metric and horizon",
                              "met": worst is not None and worst < GOALS["mase_all_below"]}
    ew = result["early_warning"]
    f1 = ew["lstm"]["f1"]
    out["lstm_warning_f1"] = {"value": f1, "goal": f">= {GOALS['f1_at_least']}", "met": f1 >= GOALS["f1_at_least"]}
    lead, base = ew["lstm"]["mean_lead_s"], ew["reactive"]["mean_lead_s"]
    gain = None if lead is None else lead - (base or 0.0)
    out["lstm_lead_gain_s"] = {"value": gain, "goal": f">= {GOALS['lead_gain_s_at_least']} s over the reactive alert",
                               "met": gain is not None and gain >= GOALS["lead_gain_s_at_least"]}
    if "regimes" in result:
        ari = result["regimes"]["ari"]
        out["regime_ari"] = {"value": ari, "goal": f">= {GOALS['ari_at_least']}", "met": ari >= GOALS["ari_at_least"]}
    return out


def verdict(result: dict[str, Any]) -> list[str]:
    """Summarise the result in plain sentences, losses to baselines included."""
    lines = []
    key, H = result["data"]["key_metrics"], result["data"]["horizon_s"]
    lstm = result["summary"]["lstm"]
    wins = [m for m in key if (lstm[m]["mase_at_h"] or math.inf) < 1.0]
    losses = [m for m in key if m not in wins]
    figures = ", ".join(f"{m} {_fmt(lstm[m]['mase_at_h'])}" for m in key)
    if not losses:
        lines.append(f"Forecast: the LSTM beats naive persistence on every key metric at {H} s (MASE {figures}).")
    else:
        lines.append(f"Forecast: the LSTM loses to naive persistence at {H} s on {', '.join(losses)} "
                     f"(MASE {figures}; below 1 beats persistence).")
    for m in key:
        name, value = _best_baseline(result, m)
        mine = lstm[m]["mase_at_h"]
        if name != "persistence" and (mine is None or value < mine):
            lines.append(f"  {name} beats the LSTM on {m} at {H} s (MASE {_fmt(value)} vs {_fmt(mine)}).")
    ew = result["early_warning"]
    model, reactive = ew["lstm"], ew["reactive"]
    lead = "no onsets detected" if model["mean_lead_s"] is None else f"mean lead {model['mean_lead_s']:.1f} s"
    lines.append(f"Early warning: LSTM F1 {model['f1']:.2f} ({lead}, event recall {_fmt(model['event_recall'])}, "
                 f"{_fmt(model['false_alarms_per_hour'])} false alarms/h) vs reactive alert F1 {reactive['f1']:.2f} "
                 f"(lead {_fmt(reactive['mean_lead_s'])} s) and predict_linear F1 {ew['predict_linear']['f1']:.2f}.")
    if ew["predict_linear"]["f1"] > model["f1"] or reactive["f1"] > model["f1"]:
        lines.append("  A simple alert rule has a higher F1 than the LSTM's warning head on these runs.")
    if "regimes" in result:
        r = result["regimes"]
        lines.append(f"Regimes: ARI {r['ari']:.2f}, NMI {r['nmi']:.2f} against the ground truth, "
                     f"silhouette {_fmt(r['silhouette'])}, k={r['k']} ({', '.join(r['names'])}).")
    s = result["stability_pct"]
    lines.append(f"Stability: predicted {s['lstm']:.1f}% (100 x (1 - P(violation within {H} s)), mean over "
                 f"windows); actual {s['actual']:.1f}% of windows had no violation in the next {H} s.")
    return lines


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"
