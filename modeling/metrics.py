"""Scores: forecast errors per horizon, early-warning quality, regime agreement, stability %.

Definitions (also in docs/modeling.md):

- MAE, RMSE per key metric and per horizon step h = 1..H, in the metric's own unit.
- MASE here is MAE(model, h) / MAE(naive persistence, h) on the same windows and the same
  metric: below 1 beats "the next H seconds look like now"; it is null when persistence
  is exact (MAE 0).
- Early warning, second level: at each second t with a prediction, the truth is "the SLO
  is violated at some second in t+1..t+H" and the alarm is the model's (or a baseline's)
  yes/no; precision, recall and F1 count seconds.
- Early warning, event level: a violation onset is a violating second preceded by at
  least H non-violating seconds. It is detected when an alarm is raised at some second in
  [onset - H, onset]; its lead time is onset minus the first such alarm (0 = alarmed only
  when the violation was already there, as a reactive threshold alert does). Onsets whose
  [onset - H, onset] range is not fully covered by predictions are not scored. A false
  alarm episode is a run of consecutive alarms with no violation from its first second to
  H seconds after its last.
- Stability percentage: 100 x (1 - P(the SLO is violated at some second in the next H)),
  averaged over windows; the same quantity as the monitor's
  lab_monitor_predicted_stability_percent. For the LSTM, P is its warning head's
  probability; for a point forecast (LSTM forecast head, baselines), P is 1 when the
  forecast crosses the SLO within H and 0 otherwise; "actual" uses the true label, so it
  is 100 x the share of windows whose next H seconds are all within the SLO. (The guide's
  own "stability percentage" was the share of scaled forecast errors below 0.05: a
  forecast accuracy, not a stability.)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .baselines import violates


def forecast_scores(y_true: np.ndarray, y_pred: np.ndarray, y_naive: np.ndarray,
                    key_metrics: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """Return MAE, RMSE and MASE per metric per horizon step (lists of length H)."""
    err = np.asarray(y_pred, "float64") - np.asarray(y_true, "float64")
    mae = np.abs(err).mean(axis=0)                      # (H, K)
    rmse = np.sqrt((err ** 2).mean(axis=0))
    naive = np.abs(np.asarray(y_naive, "float64") - np.asarray(y_true, "float64")).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mase = np.where(naive > 0, mae / naive, np.nan)
    return {m: {"mae": mae[:, j].tolist(), "rmse": rmse[:, j].tolist(), "mase": mase[:, j].tolist()}
            for j, m in enumerate(key_metrics)}


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_naive: np.ndarray) -> float:
    """Return MAE(pred) / MAE(naive) over all given values (NaN when naive is exact)."""
    naive = float(np.abs(np.asarray(y_naive, "float64") - y_true).mean())
    return float(np.abs(np.asarray(y_pred, "float64") - y_true).mean()) / naive if naive > 0 else float("nan")


def warning_scores(truth: np.ndarray, alarm: np.ndarray) -> dict[str, float]:
    """Return second-level precision, recall and F1 of yes/no alarms against the truth."""
    truth, alarm = np.asarray(truth).astype(bool), np.asarray(alarm).astype(bool)
    tp = int((truth & alarm).sum())
    fp = int((~truth & alarm).sum())
    fn = int((truth & ~alarm).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "positives": tp + fn, "alarms": tp + fp}


def onsets(violation: np.ndarray, clear_s: int) -> np.ndarray:
    """Return the seconds where a violation starts after at least `clear_s` clean seconds."""
    v = np.asarray(violation).astype(bool)
    if len(v) <= clear_s:
        return np.empty(0, dtype=int)
    before = np.concatenate([[0], np.cumsum(v)])           # before[t] = violations in [0, t)
    t = np.arange(clear_s, len(v))
    clean = before[t] - before[t - clear_s] == 0
    return t[v[t] & clean]


def _episodes(flags: np.ndarray) -> list[tuple[int, int]]:
    """Return (first, last) of each run of consecutive ones."""
    f = np.concatenate([[0], np.asarray(flags).astype(int), [0]])
    d = np.diff(f)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def event_scores(violation: np.ndarray, alarm: np.ndarray, horizon: int) -> dict[str, Any]:
    """Score one run's alarms against its violation onsets (see the module docstring).

    `alarm` has one value per row of the run: 1/0, or NaN where no prediction was made.
    """
    v = np.asarray(violation).astype(bool)
    a = np.asarray(alarm, dtype="float64")
    covered = ~np.isnan(a)
    fired = np.nan_to_num(a) > 0.5
    leads, missed, scored = [], 0, 0
    for s in onsets(v, horizon):
        lo = s - horizon
        if lo < 0 or not covered[lo:s + 1].all():
            continue
        scored += 1
        hits = np.flatnonzero(fired[lo:s + 1])
        if len(hits):
            leads.append(int(horizon - hits[0]))
        else:
            missed += 1
    before = np.concatenate([[0], np.cumsum(v)])
    false_alarms = sum(1 for first, last in _episodes(fired)
                       if before[min(len(v), last + horizon + 1)] - before[first] == 0)
    return {"onsets": scored, "detected": len(leads), "missed": missed, "leads": leads,
            "false_alarm_episodes": false_alarms, "seconds": int(covered.sum())}


def merge_event_scores(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine per-run event scores into recall, mean lead time and false alarms per hour."""
    onsets_n = sum(p["onsets"] for p in parts)
    leads = [x for p in parts for x in p["leads"]]
    seconds = sum(p["seconds"] for p in parts)
    false_alarms = sum(p["false_alarm_episodes"] for p in parts)
    return {
        "onsets": onsets_n,
        "detected": len(leads),
        "event_recall": len(leads) / onsets_n if onsets_n else None,
        "mean_lead_s": float(np.mean(leads)) if leads else None,
        "median_lead_s": float(np.median(leads)) if leads else None,
        "false_alarm_episodes": false_alarms,
        "false_alarms_per_hour": false_alarms * 3600.0 / seconds if seconds else None,
    }


def regime_scores(truth: Sequence[Any], predicted: Sequence[Any],
                  features: np.ndarray | None = None, sample: int = 3000, seed: int = 0) -> dict[str, Any]:
    """Return ARI and NMI against ground-truth labels, and the silhouette of the features."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    out: dict[str, Any] = {"ari": float(adjusted_rand_score(truth, predicted)),
                           "nmi": float(normalized_mutual_info_score(truth, predicted)),
                           "silhouette": None, "seconds": int(len(truth))}
    if features is not None and 1 < len(np.unique(predicted)) < len(predicted):
        # Silhouette is O(n^2); a fixed-seed sample keeps it fast and repeatable.
        out["silhouette"] = float(silhouette_score(features, predicted, sample_size=min(sample, len(predicted)),
                                                   random_state=seed))
    return out


def stability_pct(p_violation: np.ndarray) -> float:
    """Return 100 x (1 - mean probability of an SLO violation within the horizon)."""
    return float(100.0 * (1.0 - np.mean(np.asarray(p_violation, dtype="float64"))))


def forecast_violates(y: np.ndarray, slo: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Return 1 for each window whose (n, H, K) forecast crosses the SLO at some step."""
    return violates(np.asarray(y), slo, key_metrics).any(axis=1).astype("int8")
