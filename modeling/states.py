"""System states: the ground truth the regimes are scored against, by rules on a run's columns.

Each second of a run gets one of `STATES`, from the mechanism and its visible effect
(docs/modeling.md, "System states"), by the first rule that holds:

1. erroring:   the error share pooled over the last 5 s (failures / completions) is above
               the run's SLO error rate.
2. exhaustion: a resource is running out: an incident (`worker_killed`, `pool_exhausted`,
               ...) happens in this second or within the next 15 s, or a memory or threads
               fault is active and its effect has become visible (RSS rising by at least
               1 MB/s over the last 10 s; at least half the thread pool in flight on the
               target in every one of the last 5 s, the stuck threads' floor). A fault counts
               from the first second its effect is visible to its end, not from the plan's
               start.
3. saturated:  the backlog is above the target's thread pool (`outstanding` > workers x
               threads) in each of the last 5 s, or the queue time is rising (server-side
               queue p95 above 50 ms and climbing by more than 20 ms/s over the last 5 s),
               and the backlog is not draining.
4. recovering: the backlog is draining (its least-squares slope over the last 5 s below
               -1 request/s and fewer arrivals than completions over those seconds) while it
               is still above the thread pool or the queue p95 is still above 50 ms.
5. healthy:    otherwise.

Stretches shorter than `TRUTH_MIN_DWELL_S` seconds take the state before them (one noisy
second is not a state). Missing cells (a lost second) are carried forward up to 5 s first.
Runs without `outstanding` (synthetic and imported runs) use `srv_in_flight` as the backlog
(at or above the pool counts as above: it cannot exceed it); without `arrivals` the
backlog's slope alone says whether it drains; without `srv_queue_p95_ms` only the backlog
rule marks saturation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .data import incident_flags, run_slo

HEALTHY, SATURATED, RECOVERING, ERRORING, EXHAUSTION = (
    "healthy", "saturated", "recovering", "erroring", "exhaustion")
STATES: tuple[str, ...] = (HEALTHY, SATURATED, RECOVERING, ERRORING, EXHAUSTION)

ERROR_WINDOW_S = 5
INCIDENT_AHEAD_S = 15
LEAK_WINDOW_S = 10
LEAK_MB_PER_S = 1.0
STUCK_WINDOW_S = 5
STUCK_POOL_SHARE = 0.5          # of the pool, and at least 2 requests
SATURATED_FOR_S = 5
QUEUE_FLOOR_MS = 50.0
QUEUE_RISE_MS_PER_S = 20.0
DRAIN_WINDOW_S = 5
DRAIN_PER_S = 1.0
TRUTH_MIN_DWELL_S = 3
FILL_LIMIT_S = 5
RESOURCE_FAULTS = ("memory", "threads")


def pool_threads(frame: pd.DataFrame, default: float | None = None) -> float:
    """Return the target's request threads (workers x threads) from the run's metadata.

    Without them (an imported run, a monitor's rows): `default`, else the target's defaults.
    """
    meta = frame.attrs.get("meta") or {}
    scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    target = dict(scenario.get("target") or {})
    target.update({k: v for k, v in (meta.get("target") or {}).items() if k in ("workers", "threads") and v})
    workers, threads = target.get("workers"), target.get("threads")
    if workers and threads:
        return float(workers) * float(threads)
    if default is not None:
        return float(default)
    from target_app.server import DEFAULT_THREADS, DEFAULT_WORKERS

    return float(DEFAULT_WORKERS * DEFAULT_THREADS)


def column(frame: pd.DataFrame, name: str, limit: int = FILL_LIMIT_S) -> np.ndarray | None:
    """Return a numeric column with short gaps carried forward; None when absent or empty."""
    if name not in frame.columns:
        return None
    values = pd.to_numeric(frame[name], errors="coerce").replace([np.inf, -np.inf], np.nan)
    if values.notna().sum() == 0:
        return None
    return values.ffill(limit=limit).to_numpy(dtype="float64")


def trailing(values: np.ndarray, span: int, how: str) -> np.ndarray:
    """Trailing `span`-second statistic of each second ("sum", "mean", "min", "slope", "all");
    NaN for the first span - 1 seconds and where any value in the span is missing."""
    from numpy.lib.stride_tricks import sliding_window_view

    values = np.asarray(values, dtype="float64")
    out = np.full(len(values), np.nan)
    if len(values) < span:
        return out
    view = sliding_window_view(values, span)
    if how == "sum":
        stat = view.sum(axis=1)
    elif how == "mean":
        stat = view.mean(axis=1)
    elif how == "min":
        stat = view.min(axis=1)
    elif how == "all":
        stat = np.where(np.isnan(view).any(axis=1), np.nan, (view > 0).all(axis=1))
    elif how == "slope":
        t = np.arange(span) - (span - 1) / 2
        stat = (view - view.mean(axis=1, keepdims=True)) @ t / (t @ t) if span > 1 else np.zeros(len(view))
    else:
        raise ValueError(how)
    out[span - 1:] = stat
    return out


def backlog(frame: pd.DataFrame) -> tuple[np.ndarray | None, bool]:
    """Return the backlog per second (outstanding, else srv_in_flight) and whether it is the client's."""
    out = column(frame, "outstanding")
    if out is not None:
        return out, True
    return column(frame, "srv_in_flight"), False


def error_share(frame: pd.DataFrame, span: int) -> np.ndarray:
    """Failures / completions pooled over the trailing span (error_rate x rps when failures are absent)."""
    rps = column(frame, "rps")
    if rps is None:
        return np.full(len(frame), np.nan)
    failures = column(frame, "failures")
    if failures is None:
        rate = column(frame, "error_rate")
        failures = rate * rps if rate is not None else np.zeros(len(frame))
    done = trailing(np.nan_to_num(rps), span, "sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(done > 0, trailing(np.nan_to_num(failures), span, "sum") / np.maximum(done, 1e-9), 0.0)


def _labels(frame: pd.DataFrame, name: str, default: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), default, dtype=object)
    return frame[name].fillna(default).astype(str).to_numpy(dtype=object)


def incident_ahead(frame: pd.DataFrame, ahead: int = INCIDENT_AHEAD_S) -> np.ndarray:
    """True in each second with an incident in it or within the next `ahead` seconds."""
    out = np.zeros(len(frame), bool)
    for i in np.flatnonzero(incident_flags(frame)):                     # incidents are few: one slice each
        out[max(0, i - ahead):i + 1] = True
    return out


def visible_resource_fault(frame: pd.DataFrame, pool: float) -> np.ndarray:
    """True from the first second a memory or threads fault's effect is visible to the fault's end."""
    fault = _labels(frame, "fault", "none")
    n = len(frame)
    visible = np.zeros(n, bool)
    rss = column(frame, "rss_mb")
    if rss is not None:
        visible |= (fault == "memory") & (np.nan_to_num(trailing(rss, LEAK_WINDOW_S, "slope")) >= LEAK_MB_PER_S)
    flight = column(frame, "srv_in_flight")
    if flight is not None:
        floor = np.nan_to_num(trailing(flight, STUCK_WINDOW_S, "min"))
        visible |= (fault == "threads") & (floor >= max(2.0, STUCK_POOL_SHARE * pool))
    out = np.zeros(n, bool)
    for a, b, kind in runs_of(fault):
        if kind in RESOURCE_FAULTS and visible[a:b].any():
            out[a + int(np.argmax(visible[a:b])):b] = True
    return out


def runs_of(labels: Sequence) -> list[tuple[int, int, object]]:
    """Return (first, stop, value) for each stretch of equal consecutive labels."""
    labels = np.asarray(labels, dtype=object)
    if len(labels) == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(labels)]])
    return [(int(a), int(b), labels[a]) for a, b in zip(starts, stops)]


def min_dwell(labels: Sequence, seconds: int, keep: Sequence = ()) -> np.ndarray:
    """Give every stretch shorter than `seconds` the label before it (the first stretch: the one after).

    Labels in `keep` (e.g. "unknown") are never absorbed nor spread.
    """
    out = np.asarray(labels, dtype=object).copy()
    if seconds <= 1 or len(out) == 0:
        return out
    keep = set(keep)
    parts = runs_of(out)
    for a, b, value in parts:                         # left to right: a short stretch joins the one before
        if b - a < seconds and value not in keep and a > 0 and out[a - 1] not in keep:
            out[a:b] = out[a - 1]
    a, b, value = parts[0]
    if b - a < seconds and value not in keep and b < len(out) and out[b] not in keep:
        out[a:b] = out[b]
    return out


def system_states(frame: pd.DataFrame, pool: float | None = None) -> np.ndarray:
    """Return the system state of each second (the module docstring's rules)."""
    n = len(frame)
    c = pool_threads(frame) if pool is None else float(pool)
    states = np.full(n, HEALTHY, dtype=object)
    if n == 0:
        return states
    b, client = backlog(frame)
    saturated = np.zeros(n, bool)
    elevated = np.zeros(n, bool)
    draining = np.zeros(n, bool)
    if b is not None:
        over = (b > c) if client else (b >= c)
        saturated |= trailing(over.astype(float), SATURATED_FOR_S, "all") == 1
        elevated |= over
        slope = np.nan_to_num(trailing(b, DRAIN_WINDOW_S, "slope"))
        draining = slope < -DRAIN_PER_S
        arrivals, rps = column(frame, "arrivals"), column(frame, "rps")
        if arrivals is not None and rps is not None:
            net = trailing(np.nan_to_num(arrivals) - np.nan_to_num(rps), DRAIN_WINDOW_S, "sum")
            draining &= np.nan_to_num(net) < 0
    queue = column(frame, "srv_queue_p95_ms")
    if queue is not None:
        high = np.nan_to_num(queue) > QUEUE_FLOOR_MS
        rising = np.nan_to_num(trailing(queue, SATURATED_FOR_S, "slope")) > QUEUE_RISE_MS_PER_S
        saturated |= high & rising
        elevated |= high
    states[elevated & draining] = RECOVERING
    states[saturated & ~draining] = SATURATED
    states[incident_ahead(frame) | visible_resource_fault(frame, c)] = EXHAUSTION
    states[np.nan_to_num(error_share(frame, ERROR_WINDOW_S)) > run_slo(frame)["error_rate"]] = ERRORING
    return min_dwell(states, TRUTH_MIN_DWELL_S)


def violation_ahead(frame: pd.DataFrame, within: int = 30) -> np.ndarray:
    """1.0 when the SLO is violated in some second of t+1 .. t+within, NaN where that is not all in the run."""
    label = pd.to_numeric(frame["slo_violation"], errors="coerce").fillna(0).to_numpy() > 0 \
        if "slo_violation" in frame.columns else np.zeros(len(frame), bool)
    n = len(label)
    out = np.full(n, np.nan)
    if n > within:
        ahead = trailing(label[::-1].astype(float), within, "sum")[::-1]   # seconds t .. t+within-1
        out[:n - within] = (ahead[1:n - within + 1] > 0).astype(float)
    return out
