"""Score a fitted forecaster, the baselines and the regimes on held-out runs; say who wins, with intervals.

`evaluate()` returns a JSON-ready dict (NaN becomes null) for metrics.json; `verdict()`
turns it into short plain sentences. Every figure that a goal reads carries a 95%
interval, and a goal is "met" only when its interval lies on the goal's side, "not met"
when it lies on the other side, and "not significant" when it straddles the goal.
Definitions of every figure are in modeling/metrics.py and docs/modeling.md.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import baselines as bl
from .data import annotated_label, as_runs, has_slo_pair, incident_ahead, incident_view, run_name, slo_columns
from .metrics import (FALSE_ALARM_BUDGET_PER_H, N_BOOT, REPEAT_S, ari_interval, block_ids, bootstrap_runs,
                      calibration,
                      episode_intervals, forecast_scores, forecast_violates, mae_gain, paired_ratio,
                      regime_intervals, regime_scores, score_alarms, stability_pct, state_recall,
                      violation_share_by_regime, warning_scores)

# The project's goals on held-out scenarios and seeds (docs/modeling.md, "Goals").
GOALS = {"relmae_p95_at_h_below": 0.8, "relmae_all_below": 1.0, "mae_gain_at_least": 0.10,
         "f1_at_least": 0.8, "false_alarms_per_h_at_most": FALSE_ALARM_BUDGET_PER_H,
         "lead_share_at_least": 0.5, "ari_at_least": 0.6, "recall_at_least": 0.7,
         "incident_lead_s_at_least": 30.0}
ALERTERS = ("lstm", "lstm_upper", "lstm_forecast", "predict_linear", "reactive", "always_on")


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


def default_suite(horizon: int, key_metrics: Sequence[str]) -> bl.BaselineSuite:
    """Baselines with their default settings and persistence as the best: for a model without baselines.json."""
    return bl.BaselineSuite(horizon=horizon, key_metrics=list(key_metrics), best={m: "persistence" for m in key_metrics})


def block_size(horizon: int) -> int:
    """Seconds per bootstrap block: three horizons, at least 30 s (never shorter than the horizon)."""
    return max(3 * int(horizon), 30)


# ---------------------------------------------------------------- forecasts


def _intervals(y: np.ndarray, f: np.ndarray, naive: np.ndarray, blocks: np.ndarray,
               scale: dict[str, Any], key: Sequence[str], n_boot: int) -> dict[str, dict[str, list]]:
    """Per metric and horizon: the RelMAE and MASE intervals (block bootstrap)."""
    out: dict[str, dict[str, list]] = {}
    for j, m in enumerate(key):
        rel, mase = [], []
        for h in range(y.shape[1]):
            e, e0 = np.abs(f[:, h, j] - y[:, h, j]), np.abs(naive[:, h, j] - y[:, h, j])
            r = paired_ratio(e, e0, blocks, n_boot=n_boot)
            rel.append([r["ci_low"], r["ci_high"]])
            s = scale.get(m)
            mae = paired_ratio(e, np.where(np.isfinite(e), 1.0, np.nan), blocks, n_boot=n_boot)
            mase.append([None if v is None or not s else v / s for v in (mae["ci_low"], mae["ci_high"])])
        out[m] = {"relmae_ci": rel, "mase_ci": mase}
    return out


def _forecasts(forecaster: Any, pred: Any, suite: bl.BaselineSuite, blocks: np.ndarray,
               n_boot: int) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    w = pred.windows
    key = w.key_metrics
    forecasts = {"lstm": pred.forecast, **suite.forecasts(w.x_key)}
    naive = forecasts["persistence"]
    scale = dict(getattr(forecaster, "target_scale_", {}) or {})
    per_model = {}
    for name, f in forecasts.items():
        scores = forecast_scores(w.y, f, naive, key, scale)
        for m, ci in _intervals(w.y, f, naive, blocks, scale, key, n_boot).items():
            scores[m].update(ci)
        per_model[name] = scores
    summary = {name: {m: {"mae_at_h": s["mae"][-1], "mase_at_h": s["mase"][-1], "relmae_at_h": s["relmae"][-1],
                          "relmae_ci_at_h": s["relmae_ci"][-1], "mase_ci_at_h": s["mase_ci"][-1]}
                      for m, s in scores.items()}
               for name, scores in per_model.items()}
    return forecasts, per_model, summary


def _comparison(w: Any, forecasts: dict[str, np.ndarray], suite: bl.BaselineSuite, blocks: np.ndarray,
                n_boot: int) -> dict[str, Any]:
    """The model against its best baseline (chosen on training runs) on each key metric at h = H."""
    out = {}
    for j, m in enumerate(w.key_metrics):
        base = suite.best.get(m, "persistence")
        e = np.abs(forecasts["lstm"][:, -1, j] - w.y[:, -1, j])
        e0 = np.abs(forecasts[base][:, -1, j] - w.y[:, -1, j])
        g = mae_gain(e, e0, blocks, n_boot=n_boot)
        ok = np.isfinite(e) & np.isfinite(e0)
        out[m] = {"best_baseline": base, "mae": float(np.mean(e[ok])) if ok.any() else None,
                  "mae_baseline": float(np.mean(e0[ok])) if ok.any() else None, **g,
                  "runs": int(len(np.unique(w.run[ok])))}
    return out


# ---------------------------------------------------------------- early warning


def alarms_of(pred: Any, suite: bl.BaselineSuite) -> dict[str, np.ndarray]:
    """Return every alerter's per-window alarm on a prediction's windows.

    The alerts that apply the SLO to a forecast (lstm_forecast, predict_linear) need a
    latency and an error-rate target; a model of other columns (`train --target cpu_percent`)
    has the label-based ones only. The reactive alert reads the label of the seconds so far,
    which is the observed SLO state in a lab run but the answer itself in runs labelled by
    annotation (a label column, NAB windows): there it is left out.
    """
    w = pred.windows
    slo_alerts = {
        "lstm_forecast": forecast_violates(pred.forecast, w.slo, w.key_metrics),
        "predict_linear": bl.linear_alert(w.x_key, w.horizon, w.slo, w.key_metrics, suite.linear_fit_s),
    } if has_slo_pair(w.key_metrics) else {}
    reactive = ({} if any(annotated_label(f) for f in w.frames)
                else {"reactive": bl.reactive_windows(w, *suite.reactive)})
    upper = ({"lstm_upper": forecast_violates(pred.upper, w.slo, w.key_metrics)}   # the upper quantile crosses it
             if getattr(pred, "upper", None) is not None and has_slo_pair(w.key_metrics) else {})
    return {"lstm": pred.alarm, **upper, **slo_alerts, **reactive, "always_on": bl.always_on(len(w))}


def _warning(w: Any, alarms: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, alarm in alarms.items():
        merged, parts = score_alarms(w, alarm)
        second = warning_scores(w.warn, alarm)
        out[name] = {**merged, "ci": episode_intervals(parts),
                     "second": {k: second[k] for k in ("precision", "recall", "f1")}}
    return out


# ---------------------------------------------------------------- regimes


def score_regimes(regimes: Any, runs: Sequence[pd.DataFrame], *, ahead_s: int = 30) -> dict[str, Any]:
    """Score fitted regimes against the system states (modeling/states.py) on held-out runs.

    ARI and NMI between the regime names and the states, each state's recall (the names are
    states, from the cluster-to-state map learned on the training runs), run-bootstrap
    intervals, and usefulness: P(SLO violation within `ahead_s` s) per regime.
    """
    from .regimes import UNKNOWN
    from .states import STATES, pool_threads, system_states, violation_ahead

    truth, names, feats, ahead = [], [], [], []
    for r in runs:
        n = regimes.predict_names(r)
        ok = n != UNKNOWN
        truth.append(system_states(r, pool=pool_threads(r, default=getattr(regimes, "pool_", None)))[ok])
        names.append(n[ok])
        feats.append(regimes.transform(r)[ok])
        ahead.append(violation_ahead(r, ahead_s)[ok])
    truth_all, names_all = np.concatenate(truth), np.concatenate(names)
    scores = regime_scores(truth_all, names_all, np.vstack(feats), seed=0)
    recall = state_recall(truth_all, names_all, STATES)
    ci = regime_intervals(truth, names, STATES)
    present = [s for s in STATES if recall[s] is not None]
    ahead_all = np.concatenate(ahead)
    return {**scores, "ari_ci": list(ari_interval(truth, names)), "nmi_ci": ci["nmi_ci"],
            "recall": {s: recall[s] for s in present}, "recall_ci": {s: ci["recall_ci"][s] for s in present},
            "min_recall": min((recall[s] for s in present), default=None),
            "truth_shares": pd.Series(truth_all).value_counts(normalize=True).round(4).to_dict(),
            "shares": pd.Series(names_all).value_counts(normalize=True).round(4).to_dict(),
            "confusion": {s: pd.Series(names_all[truth_all == s]).value_counts().to_dict() for s in present},
            "p_violation_ahead": violation_share_by_regime(names_all, ahead_all), "ahead_s": ahead_s,
            "p_violation_base": float(np.nanmean(ahead_all)) if np.isfinite(ahead_all).any() else None,
            "runs": len(runs), "k": regimes.k_, "names": regimes.names_,
            "params": {k: getattr(regimes, k, None)
                       for k in ("span", "init", "iterations", "smoothing", "min_dwell_s")},
            "truth": "system states by rule (modeling/states.py, docs/modeling.md): healthy, saturated, "
                     "recovering, erroring, exhaustion"}


# ---------------------------------------------------------------- evaluate


def evaluate(forecaster: Any, runs: Sequence[pd.DataFrame], regimes: Any = None,
             baselines: bl.BaselineSuite | None = None, *, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Evaluate on held-out runs: forecasts, the model against its best baseline, early warning, regimes, goals.

    `baselines` holds the settings and the best baseline per metric chosen on the training
    runs (`BaselineSuite.fit`); without it the baselines take their default settings and
    the best baseline is persistence, which the result says.
    """
    runs = as_runs(runs)
    pred = forecaster.predict(runs)
    w = pred.windows
    key, H = w.key_metrics, w.horizon
    suite = baselines or default_suite(H, key)
    blocks = block_ids(w.run, w.t, block_size(H))
    forecasts, per_model, summary = _forecasts(forecaster, pred, suite, blocks, n_boot)
    alarms = alarms_of(pred, suite)
    stability = {"definition": "100 x (1 - P(SLO violated at some second in the next H s)), mean over windows; "
                               "point forecasts count P = 1 when they cross the SLO",
                 "actual": stability_pct(w.warn), "lstm": stability_pct(pred.probability),
                 **({name: stability_pct(forecast_violates(f, w.slo, key)) for name, f in forecasts.items()}
                    if has_slo_pair(key) else {})}
    pooled = sorted({str(c) for r in w.frames for c in (r.attrs.get("pooled_from") or {})})
    result: dict[str, Any] = {
        "data": {"runs": [run_name(r) for r in runs], "scenarios": sorted({str(r.attrs.get("scenario")) for r in runs}),
                 "windows": len(w), "runs_with_windows": len(w.run_ids), "window_s": w.window, "horizon_s": H,
                 "key_metrics": key, "slo_columns": list(slo_columns(key)) if has_slo_pair(key) else [],
                 "headline_metric": lead_metric(key),
                 "interval_s": float(w.frames[0].attrs.get("interval_s") or 1) if w.frames else 1.0,
                 "per_second_stand_ins": pooled, "warn_share": float(w.warn.mean()),
                 "missing_targets": int((~w.y_ok).sum()), "block_s": block_size(H), "n_boot": n_boot,
                 "mase_scale": dict(getattr(forecaster, "target_scale_", {}) or {}),
                 "alarm_threshold": float(forecaster.warn_threshold_),
                 "alarm_threshold_note": getattr(forecaster, "threshold_note_", None),
                 "baselines_chosen_on": suite.chosen_on, "baseline_settings": suite.settings,
                 "reactive_for": {"k": suite.reactive[0], "n": suite.reactive[1]}},
        "forecast": per_model,
        "summary": summary,
        "comparison": _comparison(w, forecasts, suite, blocks, n_boot),
        "early_warning": {"definition": "by episode (modeling/metrics.py): detected when an alarm fires between the "
                                        "first observable precursor and the onset; false alarms are alarm seconds "
                                        "outside every episode, one per started repeat_s; headline f1_in_budget",
                          "budget_per_h": FALSE_ALARM_BUDGET_PER_H, "repeat_s": REPEAT_S,
                          "headline": "f1_in_budget", **_warning(w, alarms)},
        "calibration": {"definition": "the warning probability against the windows' outcome (an SLO violation "
                                      "within H s); Brier score vs the base rate's, and a reliability table",
                        "note": getattr(forecaster, "calibration_note_", None),
                        **calibration(pred.probability, w.warn)},
        "stability_pct": stability,
        **_incidents(pred),
    }
    if regimes is not None:
        result["regimes"] = score_regimes(regimes, runs)
    result["goals"] = goals(result)
    result["verdict"] = verdict(result)
    return jsonable(result)


# ---------------------------------------------------------------- incidents (the slow horizon)


def _incidents(pred: Any) -> dict[str, Any]:
    """Score the incident head by incident episodes (modeling.data.incident_view), beside always-on."""
    if getattr(pred, "incident", None) is None:
        return {}
    w = pred.windows
    L = int(pred.incident_horizon)              # set wherever `incident` is (the model's head)
    view = incident_view(w, L)
    out: dict[str, Any] = {"definition": f"P(an incident within {L} s): episodes are runs of incident seconds, "
                                         f"their precursors the faults and plan changes; lead in seconds and as "
                                         f"a share of the achievable lead", "horizon_s": L,
                           "incident_windows_share": float(incident_ahead(w, L).mean())}
    for name, alarm in (("lstm", pred.incident_alarm), ("always_on", bl.always_on(len(w)))):
        merged, parts = score_alarms(view, alarm)
        eps = [e for part in parts for e in part["episodes"]]
        rows = np.array([[e["lead_s"] or 0.0, e["lead_s"] is not None] for e in eps], dtype="float64")
        lead_ci = (bootstrap_runs(rows, lambda c, v: (c @ (v[:, 0] * v[:, 1])) / np.maximum(c @ v[:, 1], 1e-12))
                   if len(rows) else (None, None))
        out[name] = {**merged, "ci": {**episode_intervals(parts), "mean_lead_s": list(lead_ci)}}
    return {"incident_warning": out}


# ---------------------------------------------------------------- goals and verdict


def status(lo: float | None, hi: float | None, goal: float, above: bool) -> str:
    """Return met / not met / not significant for an interval against a goal (above: the figure must be >= goal)."""
    if lo is None or hi is None:
        return "not significant"
    if above:
        return "met" if lo >= goal else "not met" if hi < goal else "not significant"
    return "met" if hi < goal else "not met" if lo >= goal else "not significant"


def _goal(value: Any, ci: Sequence[Any], text: str, state: str) -> dict[str, Any]:
    return {"value": value, "ci": list(ci), "goal": text, "status": state, "met": state == "met"}


def lead_metric(key_metrics: Sequence[str]) -> str:
    """The metric the headline forecast figures read: the SLO's latency, else the first target."""
    return slo_columns(key_metrics)[0] if has_slo_pair(key_metrics) else list(key_metrics)[0]


def _forecast_goals(result: dict[str, Any]) -> dict[str, Any]:
    lstm, key = result["forecast"]["lstm"], result["data"]["key_metrics"]
    lat = lead_metric(key)
    s = result["summary"]["lstm"][lat]
    ci = s["relmae_ci_at_h"] or [None, None]
    out = {"relmae_p95_at_h": _goal(s["relmae_at_h"], ci, f"< {GOALS['relmae_p95_at_h_below']} ({lat})",
                                    status(*ci, GOALS["relmae_p95_at_h_below"], above=False))}
    cells = [(v, c) for m in key for v, c in zip(lstm[m]["relmae"], lstm[m]["relmae_ci"]) if v is not None]
    worst = max((v for v, _ in cells), default=None)
    states = [status(*c, GOALS["relmae_all_below"], above=False) for _, c in cells]
    state = ("not significant" if not states else "not met" if "not met" in states else
             "met" if all(x == "met" for x in states) else "not significant")
    out["relmae_all"] = _goal(worst, [None, None], f"< {GOALS['relmae_all_below']} for every metric and horizon "
                                                    "(each interval)", state)
    c = result["comparison"][lat]
    out["mae_gain_p95"] = _goal(c["mae_gain"], [c["ci_low"], c["ci_high"]],
                                f">= {GOALS['mae_gain_at_least']:.0%} below the best baseline ({c['best_baseline']})",
                                status(c["ci_low"], c["ci_high"], GOALS["mae_gain_at_least"], above=True))
    return out


def goals(result: dict[str, Any]) -> dict[str, Any]:
    """Check the project's goals; each entry holds the figure, its interval, the goal and its status."""
    out = _forecast_goals(result)
    m = result["early_warning"]["lstm"]
    f1_ci, fa_ci = m["ci"]["f1"], m["ci"]["false_alarms_per_h"]
    f1_state = status(*f1_ci, GOALS["f1_at_least"], above=True)
    fa_state = status(*fa_ci, GOALS["false_alarms_per_h_at_most"] + 1e-9, above=False)
    state = ("met" if f1_state == fa_state == "met" else
             "not met" if "not met" in (f1_state, fa_state) else "not significant")
    out["warning_f1"] = _goal(m["f1"], f1_ci, f">= {GOALS['f1_at_least']} with <= {GOALS['false_alarms_per_h_at_most']:g} "
                                              f"false alarms/h (now {_fmt(m['false_alarms_per_h'], 1)}/h, interval "
                                              f"{_fmt(fa_ci[0], 1)}-{_fmt(fa_ci[1], 1)})", state)
    share_ci = m["ci"]["lead_share"]
    out["lead_share"] = _goal(m["lead_share"], share_ci, f">= {GOALS['lead_share_at_least']:.0%} of the achievable lead",
                              status(*share_ci, GOALS["lead_share_at_least"], above=True))
    if "regimes" in result:
        out.update(regime_goals(result["regimes"]))
    inc = (result.get("incident_warning") or {}).get("lstm")
    if inc and inc.get("episodes"):
        ci = inc["ci"]["mean_lead_s"]
        out["incident_lead"] = _goal(inc["mean_lead_s"], ci, f">= {GOALS['incident_lead_s_at_least']:g} s before an "
                                     f"incident ({inc['detected']} of {inc['episodes']} episodes detected)",
                                     status(*ci, GOALS["incident_lead_s_at_least"], above=True))
    return out


def regime_goals(r: dict[str, Any]) -> dict[str, Any]:
    """The regime goals: ARI >= 0.6, and every state's recall >= 0.7 (each with its interval)."""
    out = {"regime_ari": _goal(r["ari"], r["ari_ci"], f">= {GOALS['ari_at_least']}",
                               status(*r["ari_ci"], GOALS["ari_at_least"], above=True))}
    recall = r.get("recall") or {}
    states = {s: status(*(r.get("recall_ci", {}).get(s) or [None, None]), GOALS["recall_at_least"], above=True)
              for s in recall}
    state = ("not significant" if not states else "not met" if "not met" in states.values() else
             "met" if all(x == "met" for x in states.values()) else "not significant")
    worst = min(recall, key=lambda s: recall[s]) if recall else None
    out["regime_recall"] = _goal(r.get("min_recall"), (r.get("recall_ci") or {}).get(worst, [None, None]),
                                 f">= {GOALS['recall_at_least']} for every state (worst: {worst})", state)
    return out


def _ci(ci: Sequence[Any] | None, digits: int = 2) -> str:
    if not ci or ci[0] is None:
        return "no interval"
    return f"95% {_fmt(ci[0], digits)} to {_fmt(ci[1], digits)}"


def verdict(result: dict[str, Any]) -> list[str]:
    """Summarise the result in plain sentences, losses to baselines and insignificance included."""
    d = result["data"]
    H, lat = d["horizon_s"], lead_metric(d["key_metrics"])
    s = result["summary"]["lstm"][lat]
    ahead = f"{H} s" if d.get("interval_s", 1) == 1 else f"{H} rows of {d['interval_s']:g} s"
    lines = [f"Forecast {ahead} ahead ({d['windows']} windows of {d['runs_with_windows']} held-out runs): LSTM RelMAE "
             f"on {lat} {_fmt(s['relmae_at_h'])} ({_ci(s['relmae_ci_at_h'])}; below 1 beats persistence), "
             f"MASE {_fmt(s['mase_at_h'])}."]
    for m, c in result["comparison"].items():
        sig = ("significant" if c["ci_low"] is not None and (c["ci_low"] > 0 or c["ci_high"] < 0)
               else "not significant")
        ci = "no interval" if c["ci_low"] is None else f"95% {_pct(c['ci_low'])} to {_pct(c['ci_high'])}"
        lines.append(f"  {m}: MAE gain over the best baseline ({c['best_baseline']}) {_pct(c['mae_gain'])} "
                     f"({ci}, {sig}).")
    ew = result["early_warning"]
    m = ew["lstm"]
    lines.append(f"Early warning (headline: event F1 within {ew['budget_per_h']:g} false alarms/h): LSTM "
                 f"{_fmt(m['f1_in_budget'])} (F1 {_fmt(m['f1'])}, {_ci(m['ci']['f1'])}; {_fmt(m['false_alarms_per_h'], 1)} "
                 f"false alarms/h; {m['detected']} of {m['episodes']} episodes; lead {_pct(m['lead_share'])} of "
                 f"achievable).")
    others = ", ".join(f"{n} {_fmt(ew[n]['f1_in_budget'])}" for n in ALERTERS[1:] if n in ew)
    lines.append(f"  Other alerts, same figure: {others}.")
    best_other = max((n for n in ALERTERS[1:] if n in ew), key=lambda n: ew[n]["f1_in_budget"] or 0.0)
    if (ew[best_other]["f1_in_budget"] or 0.0) > (m["f1_in_budget"] or 0.0):
        lines.append(f"  {best_other} scores higher than the LSTM's warning head on these runs.")
    cal = result.get("calibration") or {}
    if cal.get("brier") is not None:
        better = "beats" if cal["brier"] < cal["brier_base_rate"] else "does not beat"
        lines.append(f"  Warning probability: Brier {cal['brier']:.3f} vs {cal['brier_base_rate']:.3f} for the base "
                     f"rate ({better} it; {cal.get('note') or 'calibration not recorded'}).")
    inc = result.get("incident_warning")
    if inc:
        m = inc["lstm"]
        lines.append(f"Incidents within {inc['horizon_s']} s: the incident head detected {m['detected']} of "
                     f"{m['episodes']} episode(s), mean lead {_fmt(m['mean_lead_s'], 1)} s "
                     f"({_ci(m['ci']['mean_lead_s'], 1)}; {_pct(m['lead_share'])} of achievable), "
                     f"{_fmt(m['false_alarms_per_h'], 1)} false alarms/h; always-on "
                     f"{_fmt(inc['always_on']['false_alarms_per_h'], 1)}/h.")
    if "regimes" in result:
        r = result["regimes"]
        lines.append(f"Regimes: ARI {r['ari']:.2f} ({_ci(r['ari_ci'])}), NMI {r['nmi']:.2f} against the system states, "
                     f"k={r['k']} ({', '.join(r['names'])}); recall "
                     + ", ".join(f"{s} {_fmt(v)}" for s, v in (r.get("recall") or {}).items()) + ".")
    met = [k for k, g in result["goals"].items() if g["status"] == "met"]
    unsure = [k for k, g in result["goals"].items() if g["status"] == "not significant"]
    lines.append(f"Goals: met {', '.join(met) or 'none'}; not significant {', '.join(unsure) or 'none'}; "
                 f"the rest not met.")
    return lines


def _fmt(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"
