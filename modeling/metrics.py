"""Scores: forecast errors per horizon, intervals, early warning by episode, regimes, stability %.

Definitions (also in docs/modeling.md):

- MAE, RMSE per key metric and per horizon step h = 1..H, in the metric's own unit, over
  the target seconds that were observed: a missing target is masked, never filled.
- MASE (Hyndman & Koehler 2006): MAE(h) / the in-sample one-step naive MAE of the training
  series (mean |y_t - y_{t-1}| over the training runs, pairs inside one run, both seconds
  observed). The scale is the same for every horizon and every forecaster, so MASE ranks
  forecasters as MAE does and is comparable across metrics; null when the training series
  never changed.
- RelMAE: MAE(model, h) / MAE(persistence, h) on the same windows, metric and horizon
  (below 1 beats "the next H seconds look like now").
- MAE gain over a baseline: 1 - MAE(model) / MAE(baseline) at h = H, with a paired block
  bootstrap interval: the held-out windows are cut into blocks of `block_s` consecutive
  seconds inside each run (blocks >= the horizon, so overlapping targets stay together),
  the blocks are resampled with replacement, and the same resample scores both
  forecasters.
- Early warning by episode: an SLO-violation episode is a run of violating seconds, with
  gaps shorter than the horizon merged. Its precursor is the first observable cause in the
  ground truth since the previous episode ended: the start of the last plan change (the
  planned rate or users, or the stage) or fault start at or before the onset, else the
  first incident before it. An episode is detected when an alarm fires between the search
  start (the precursor, else onset - H) and the onset; its lead is the onset minus the
  first such alarm, `achievable_lead_s` the onset minus the precursor (both from the
  first second the forecaster could speak), and the share achieved lead / achievable
  (0 when missed). Alarm seconds outside every episode's [search start, end + H] (an
  alert takes a moment to resolve) are false;
  each run of them counts as one false alarm per started `repeat_s` seconds (a firing
  alarm notifies again, as Alertmanager repeats), so an alarm held on is not one alarm.
  precision = detected / (detected + false alarms), recall = detected / episodes.
- Headline early-warning figure: event F1 within the false-alarm budget: the F1 when
  `false_alarms_per_h` is at most `FALSE_ALARM_BUDGET_PER_H`, else 0. An alarm that is
  always on detects every episode at the full achievable lead but breaks the budget.
- Stability percentage: 100 x (1 - P(the SLO is violated at some second in the next H)),
  averaged over windows; the same quantity as the monitor's
  lab_monitor_predicted_stability_percent.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .baselines import violates
from .data import incident_flags

FALSE_ALARM_BUDGET_PER_H = 2.0
REPEAT_S = 60
N_BOOT = 2000
LEVEL = 0.95


# ---------------------------------------------------------------- forecast errors


def naive_scale(series: Sequence[np.ndarray]) -> float:
    """Return the in-sample one-step naive MAE, mean |y_t - y_{t-1}|, pooled over series (NaN pairs skipped)."""
    diffs = [np.abs(np.diff(np.asarray(s, dtype="float64"))) for s in series if len(s) > 1]
    d = np.concatenate(diffs) if diffs else np.empty(0)
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else math.nan


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def forecast_scores(y_true: np.ndarray, y_pred: np.ndarray, y_naive: np.ndarray,
                    key_metrics: Sequence[str], scale: dict[str, float] | None = None
                    ) -> dict[str, dict[str, list[float]]]:
    """Return MAE, RMSE, MASE, RelMAE and the observed count per metric per horizon step (lists of length H)."""
    y_true = np.asarray(y_true, "float64")
    mask = np.isfinite(y_true)
    err = np.abs(np.asarray(y_pred, "float64") - y_true)
    mae = _masked_mean(err, mask)                                     # (H, K)
    rmse = np.sqrt(_masked_mean(err ** 2, mask))
    naive = _masked_mean(np.abs(np.asarray(y_naive, "float64") - y_true), mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        relmae = np.where(naive > 0, mae / naive, np.nan)
    out = {}
    for j, m in enumerate(key_metrics):
        s = (scale or {}).get(m)
        mase_col = mae[:, j] / s if s is not None and np.isfinite(s) and s > 0 else np.full(len(mae), np.nan)
        out[m] = {"mae": mae[:, j].tolist(), "rmse": rmse[:, j].tolist(), "mase": mase_col.tolist(),
                  "relmae": relmae[:, j].tolist(), "n": mask[:, :, j].sum(axis=0).tolist()}
    return out


def mase(y_true: np.ndarray, y_pred: np.ndarray, y_train: Sequence[np.ndarray]) -> float:
    """Return MAE(pred) over the observed targets / the in-sample one-step naive MAE of the training series."""
    y_true = np.asarray(y_true, "float64")
    mask = np.isfinite(y_true)
    scale = naive_scale(y_train)
    mae = float(np.abs(np.asarray(y_pred, "float64")[mask] - y_true[mask]).mean()) if mask.any() else math.nan
    return mae / scale if np.isfinite(scale) and scale > 0 else math.nan


def relmae(y_true: np.ndarray, y_pred: np.ndarray, y_naive: np.ndarray) -> float:
    """Return MAE(pred) / MAE(naive) over the observed targets (NaN when naive is exact)."""
    y_true = np.asarray(y_true, "float64")
    mask = np.isfinite(y_true)
    naive = float(np.abs(np.asarray(y_naive, "float64")[mask] - y_true[mask]).mean()) if mask.any() else 0.0
    model = float(np.abs(np.asarray(y_pred, "float64")[mask] - y_true[mask]).mean()) if mask.any() else math.nan
    return model / naive if naive > 0 else math.nan


# ---------------------------------------------------------------- intervals


def block_ids(run: np.ndarray, t: np.ndarray, block_s: int) -> np.ndarray:
    """Return a block number per window: `block_s` consecutive seconds of one run share one."""
    key = np.asarray(run, dtype="int64") * 10_000_000 + np.asarray(t, dtype="int64") // max(1, int(block_s))
    return np.unique(key, return_inverse=True)[1]


def _percentiles(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def paired_ratio(err_a: np.ndarray, err_b: np.ndarray, blocks: np.ndarray, *, n_boot: int = N_BOOT,
                 level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Return sum|a| / sum|b| over windows where both are observed, with a block bootstrap interval.

    `err_a` and `err_b` are per-window absolute errors (NaN = target missing); `blocks`
    gives each window's block. The same resampled blocks score both (a paired interval).
    """
    a, b = np.asarray(err_a, "float64"), np.asarray(err_b, "float64")
    ok = np.isfinite(a) & np.isfinite(b)
    blocks = np.unique(np.asarray(blocks)[ok], return_inverse=True)[1] if ok.any() else np.empty(0, int)
    nb = int(blocks.max()) + 1 if blocks.size else 0
    sa = np.bincount(blocks, weights=a[ok], minlength=nb)
    sb = np.bincount(blocks, weights=b[ok], minlength=nb)
    out: dict[str, Any] = {"ratio": None, "ci_low": None, "ci_high": None, "windows": int(ok.sum()), "blocks": nb}
    if nb == 0 or sb.sum() <= 0:
        return out
    out["ratio"] = float(sa.sum() / sb.sum())
    if nb >= 2:
        counts = np.random.default_rng(seed).multinomial(nb, np.full(nb, 1.0 / nb), size=n_boot)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = (counts @ sa) / (counts @ sb)
        out["ci_low"], out["ci_high"] = _percentiles(ratios, level)
    return out


def mae_gain(err_model: np.ndarray, err_base: np.ndarray, blocks: np.ndarray, **kw: Any) -> dict[str, Any]:
    """Return 1 - MAE(model) / MAE(baseline) with its paired block bootstrap interval."""
    r = paired_ratio(err_model, err_base, blocks, **kw)
    flip = (lambda v: None if v is None else 1.0 - v)
    return {"mae_gain": flip(r["ratio"]), "ci_low": flip(r["ci_high"]), "ci_high": flip(r["ci_low"]),
            "windows": r["windows"], "blocks": r["blocks"]}


def bootstrap_runs(values: np.ndarray, statistic, *, n_boot: int = N_BOOT, level: float = LEVEL,
                   seed: int = 0) -> tuple[float | None, float | None]:
    """Return a percentile interval of statistic(counts) where counts resample the runs (rows of values)."""
    n = len(values)
    if n < 2:
        return None, None
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    return _percentiles(np.asarray(statistic(counts, values), dtype="float64"), level)


# ---------------------------------------------------------------- early warning by episode


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


def runs_of_ones(flags: np.ndarray) -> list[tuple[int, int]]:
    """Return (first, last) of each run of consecutive ones."""
    f = np.concatenate([[0], np.asarray(flags).astype(int), [0]])
    d = np.diff(f)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def violation_episodes(violation: np.ndarray, merge_s: int) -> list[tuple[int, int]]:
    """Return (onset, end) rows of each violation episode; gaps shorter than `merge_s` clean seconds merge."""
    out: list[tuple[int, int]] = []
    for first, last in runs_of_ones(violation):
        if out and first - out[-1][1] - 1 < merge_s:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def _change_starts(values: pd.Series) -> list[int]:
    """Rows where a series starts to change (the first row of each run of changing rows)."""
    v = values.to_numpy()
    changed = np.zeros(len(v), bool)
    if len(v) > 1:
        same = (v[1:] == v[:-1]) | (pd.isna(v[1:]) & pd.isna(v[:-1]))
        changed[1:] = ~same
    return [a for a, _ in runs_of_ones(changed)]


def cause_rows(frame: pd.DataFrame) -> tuple[list[int], list[int], list[int]]:
    """Return the rows of plan changes, fault starts and incidents in a run's ground truth."""
    plan: list[int] = []
    for col in ("planned_rate", "planned_users", "phase"):
        if col in frame.columns and frame[col].notna().any():
            plan += _change_starts(frame[col])
    faults: list[int] = []
    if "fault" in frame.columns:
        fault = frame["fault"].fillna("none").astype(str).to_numpy()
        faults = [i for i in range(len(fault)) if fault[i] != "none" and (i == 0 or fault[i - 1] != fault[i])]
    incidents = [int(i) for i in np.flatnonzero(incident_flags(frame))]
    return sorted(set(plan)), faults, incidents


def precursor(frame: pd.DataFrame, onset: int, since: int) -> int | None:
    """Return the row of the first observable precursor of an episode starting at `onset` (rows from `since`)."""
    plan, faults, incidents = cause_rows(frame)
    causes = [c for c in plan + faults if since <= c <= onset]
    if causes:
        return max(causes)
    found = [c for c in incidents if since <= c <= onset]
    return min(found) if found else None


def episode_scores(frame: pd.DataFrame, alarm: np.ndarray, horizon: int,
                   repeat_s: int = REPEAT_S) -> dict[str, Any]:
    """Score one run's alarms (one value per row: 1/0, NaN where no prediction) by episode.

    Rows are `frame.attrs["interval_s"]` seconds apart (1 for the lab's runs): leads and the
    seconds with predictions are in seconds, a held alarm counts again every `repeat_s`
    seconds (at least every row), so false alarms per hour are per hour of data at any
    interval. `horizon` (the merge gap of episodes) counts rows, as a model's horizon does.
    """
    step = float(frame.attrs.get("interval_s") or 1)
    repeat_rows = max(1, int(round(repeat_s / step)))
    v = np.nan_to_num(pd.to_numeric(frame["slo_violation"], errors="coerce").to_numpy(dtype="float64")) > 0
    a = np.asarray(alarm, dtype="float64")
    covered = ~np.isnan(a)
    fired = np.nan_to_num(a) > 0.5
    first_covered = int(np.argmax(covered)) if covered.any() else len(a)
    relevant = np.zeros(len(v), bool)
    episodes, since = [], 0
    for onset, end in violation_episodes(v, horizon):
        cause = precursor(frame, onset, since)
        start = max(since, first_covered, cause if cause is not None else onset - horizon)
        since = end + 1
        relevant[min(start, onset):end + horizon + 1] = True      # H after the end: the alert resolving
        if not covered[onset]:
            continue                                   # no prediction at the onset: not scored
        hits = np.flatnonzero(fired[start:onset + 1])
        lead = _seconds(onset - start - hits[0], step) if len(hits) else None
        achievable = None if cause is None else _seconds(onset - max(cause, first_covered), step)
        share = None if not achievable or achievable <= 0 else (0.0 if lead is None else min(lead, achievable) / achievable)
        episodes.append({"onset": onset, "end": end, "precursor": cause, "lead_s": lead,
                         "achievable_lead_s": achievable, "share": share})
    false_rows = fired & covered & ~relevant
    false_alarms = sum(math.ceil((last - first + 1) / repeat_rows) for first, last in runs_of_ones(false_rows))
    return {"episodes": episodes, "false_alarms": int(false_alarms), "seconds": _seconds(covered.sum(), step)}


def _seconds(rows: int | np.integer, step: float) -> int | float:
    """Rows as seconds: an int at 1 s per row (the lab's runs), else a float."""
    return int(rows) if step == 1 else float(rows) * step


def merge_episode_scores(parts: Sequence[dict[str, Any]],
                         budget_per_h: float = FALSE_ALARM_BUDGET_PER_H) -> dict[str, Any]:
    """Combine per-run episode scores into precision, recall, F1, false alarms per hour, lead and the headline."""
    eps = [e for p in parts for e in p["episodes"]]
    tp = sum(1 for e in eps if e["lead_s"] is not None)
    fp = sum(p["false_alarms"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / len(eps) if eps else None
    f1 = 2 * tp / (2 * tp + fp + (len(eps) - tp)) if eps or fp else None
    per_h = fp * 3600.0 / seconds if seconds else None
    leads = [e["lead_s"] for e in eps if e["lead_s"] is not None]
    shares = [e["share"] for e in eps if e["share"] is not None]
    in_budget = per_h is not None and per_h <= budget_per_h
    return {
        "episodes": len(eps), "detected": tp, "false_alarms": fp, "precision": precision,
        "recall": recall, "f1": f1, "false_alarms_per_h": per_h, "hours": seconds / 3600.0,
        "within_budget": in_budget, "f1_in_budget": (f1 or 0.0) if in_budget else 0.0,
        "mean_lead_s": float(np.mean(leads)) if leads else None,
        "median_lead_s": float(np.median(leads)) if leads else None,
        "mean_achievable_lead_s": (float(np.mean([e["achievable_lead_s"] for e in eps
                                                  if e["achievable_lead_s"] is not None]))
                                   if any(e["achievable_lead_s"] is not None for e in eps) else None),
        "lead_share": float(np.mean(shares)) if shares else None,
        "per_episode": [{k: e[k] for k in ("onset", "precursor", "lead_s", "achievable_lead_s", "share")}
                        for e in eps],
    }


def episode_intervals(parts: Sequence[dict[str, Any]], budget_per_h: float = FALSE_ALARM_BUDGET_PER_H,
                      seed: int = 0) -> dict[str, Any]:
    """Intervals of F1, false alarms per hour and lead share, resampling the held-out runs."""
    rows = np.array([[sum(e["lead_s"] is not None for e in p["episodes"]), len(p["episodes"]),
                      p["false_alarms"], p["seconds"],
                      sum(e["share"] for e in p["episodes"] if e["share"] is not None),
                      sum(e["share"] is not None for e in p["episodes"])] for p in parts], dtype="float64")
    if len(rows) == 0:
        return {"f1": [None, None], "false_alarms_per_h": [None, None], "lead_share": [None, None], "runs": 0}

    def summed(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
        return counts @ values                                         # (B, 6)

    def f1(c, v):
        s = summed(c, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * s[:, 0] / (2 * s[:, 0] + s[:, 2] + s[:, 1] - s[:, 0])

    def per_h(c, v):
        s = summed(c, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            return s[:, 2] * 3600.0 / s[:, 3]

    def share(c, v):
        s = summed(c, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            return s[:, 4] / s[:, 5]

    return {"f1": list(bootstrap_runs(rows, f1, seed=seed)),
            "false_alarms_per_h": list(bootstrap_runs(rows, per_h, seed=seed)),
            "lead_share": list(bootstrap_runs(rows, share, seed=seed)), "runs": len(rows)}


def alarm_timelines(windows: Any, alarm: np.ndarray) -> list[np.ndarray]:
    """Place per-window alarms on each run's timeline (NaN where no window ends)."""
    out = []
    for i, labels in enumerate(windows.violation):
        series = np.full(len(labels), np.nan)
        mine = windows.run == i
        series[windows.t[mine]] = np.asarray(alarm, dtype="float64")[mine]
        out.append(series)
    return out


def score_alarms(windows: Any, alarm: np.ndarray, repeat_s: int = REPEAT_S,
                 budget_per_h: float = FALSE_ALARM_BUDGET_PER_H) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score per-window alarms of some runs by episode; return the merged scores and the per-run parts."""
    parts = [episode_scores(frame, series, windows.horizon, repeat_s)
             for frame, series in zip(windows.frames, alarm_timelines(windows, alarm))]
    return merge_episode_scores(parts, budget_per_h), parts


def choose_threshold(windows: Any, probability: np.ndarray,
                     grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2)),
                     budget_per_h: float = FALSE_ALARM_BUDGET_PER_H) -> tuple[float, str]:
    """Return the alarm threshold with the best headline figure on validation windows, and why it was chosen.

    Ties go to the higher threshold (fewer alarms). Never a silent default: without any
    episode in the validation windows, or when no threshold detects one, the threshold is
    set just above every validation probability (no alarm there); when every threshold that
    detects something breaks the false-alarm budget, the best plain F1 is taken. The note
    says which case it was.
    """
    probability = np.asarray(probability, dtype="float64")
    scored = [(g, score_alarms(windows, probability >= g, budget_per_h=budget_per_h)[0]) for g in grid]
    top = float(np.nanmax(probability)) if probability.size else 0.5
    above = float(min(1.0, math.floor(top * 100 + 1) / 100))
    episodes = scored[0][1]["episodes"]
    if not episodes:
        return above, (f"no SLO-violation episode in the validation windows: threshold {above:.2f}, "
                       f"just above every validation probability (no alarm there)")
    best = max(scored, key=lambda gs: (gs[1]["f1_in_budget"], gs[0]))
    if best[1]["f1_in_budget"] > 0:
        return float(best[0]), (f"best event F1 within {budget_per_h:g} false alarms/h on validation "
                                f"({best[1]['f1_in_budget']:.2f} over {episodes} episodes)")
    plain = max(scored, key=lambda gs: (gs[1]["f1"] or 0.0, gs[0]))
    if (plain[1]["f1"] or 0.0) > 0:
        return float(plain[0]), (f"no threshold kept within {budget_per_h:g} false alarms/h on validation: best "
                                 f"plain event F1 ({plain[1]['f1']:.2f}, {plain[1]['false_alarms_per_h']:.1f}/h)")
    return above, (f"no threshold detected any of the {episodes} validation episodes: threshold {above:.2f}, "
                   f"just above every validation probability")


def calibration(probability: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Return the warning probability's Brier score, the base rate's, and a reliability table.

    The base-rate Brier score is that of always saying the share of positive windows: a
    probability that does not beat it carries no information. Each reliability bin (equal
    width over 0..1) gives its windows, mean probability and observed share of violations.
    """
    p = np.asarray(probability, dtype="float64")
    y = np.asarray(truth, dtype="float64")
    if not p.size:
        return {"brier": None, "brier_base_rate": None, "base_rate": None, "bins": []}
    rate = float(y.mean())
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = [{"low": float(edges[b]), "high": float(edges[b + 1]), "windows": int((idx == b).sum()),
              "mean_probability": float(p[idx == b].mean()) if (idx == b).any() else None,
              "observed": float(y[idx == b].mean()) if (idx == b).any() else None} for b in range(bins)]
    return {"brier": float(np.mean((p - y) ** 2)), "brier_base_rate": float(np.mean((rate - y) ** 2)),
            "base_rate": rate, "bins": table}


# ---------------------------------------------------------------- regimes, stability


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


def ari_interval(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray], n_boot: int = 200,
                 seed: int = 0) -> tuple[float | None, float | None]:
    """Return a percentile interval of the ARI, resampling the runs (one array per run)."""
    from sklearn.metrics import adjusted_rand_score

    n = len(truth)
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        values.append(adjusted_rand_score(np.concatenate([truth[i] for i in pick]),
                                          np.concatenate([predicted[i] for i in pick])))
    return _percentiles(np.asarray(values), LEVEL)


def state_recall(truth: Sequence[Any], predicted: Sequence[Any], states: Sequence[str]) -> dict[str, float | None]:
    """Per state: the share of its seconds predicted as that state (None for a state absent from the truth)."""
    truth, predicted = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    return {s: (float(np.mean(predicted[truth == s] == s)) if (truth == s).any() else None) for s in states}


def regime_intervals(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray], states: Sequence[str],
                     n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """Percentile intervals of NMI and each state's recall, resampling the runs (one array per run)."""
    from sklearn.metrics import normalized_mutual_info_score

    n = len(truth)
    if n < 2:
        return {"nmi_ci": [None, None], "recall_ci": {s: [None, None] for s in states}}
    rng = np.random.default_rng(seed)
    nmi, recall = [], {s: [] for s in states}
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        t = np.concatenate([truth[i] for i in pick])
        p = np.concatenate([predicted[i] for i in pick])
        nmi.append(normalized_mutual_info_score(t, p))
        for s, r in state_recall(t, p, states).items():
            recall[s].append(np.nan if r is None else r)
    return {"nmi_ci": list(_percentiles(np.asarray(nmi), LEVEL)),
            "recall_ci": {s: list(_percentiles(np.asarray(v, dtype="float64"), LEVEL)) for s, v in recall.items()}}


def violation_share_by_regime(predicted: np.ndarray, ahead: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per regime: P(SLO violation within the next seconds) = mean of `ahead` (1/0, NaN skipped) over its seconds."""
    predicted, ahead = np.asarray(predicted, dtype=object), np.asarray(ahead, dtype="float64")
    ok = np.isfinite(ahead)
    out = {}
    for name in sorted(set(predicted[ok].tolist())):
        mine = ok & (predicted == name)
        out[str(name)] = {"p_violation": float(ahead[mine].mean()), "seconds": int(mine.sum())}
    return out


def stability_pct(p_violation: np.ndarray) -> float:
    """Return 100 x (1 - mean probability of an SLO violation within the horizon)."""
    return float(100.0 * (1.0 - np.mean(np.asarray(p_violation, dtype="float64"))))


def forecast_violates(y: np.ndarray, slo: np.ndarray, key_metrics: Sequence[str]) -> np.ndarray:
    """Return 1 for each window whose (n, H, K) forecast crosses the SLO at some step."""
    return violates(np.asarray(y), slo, key_metrics).any(axis=1).astype("int8")
