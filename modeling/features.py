"""Inputs that carry the mechanism: columns derived from a run's own columns, offline and online alike.

A queue builds when arrivals outrun completions, a saturated target spends more CPU per
request, and a leak shows as a steady slope of the resident memory long before a worker
is killed. The recorded columns hold all three, but only as levels; these derived columns
give the model the rates directly:

| column | rule | needs |
|---|---|---|
| `cpu_per_request` | `cpu_percent / max(rps, 1)`: % of a core per completed request/s | cpu_percent, rps |
| `arrival_excess` | `arrivals - rps`: requests/s added to the backlog (negative: draining) | arrivals, rps |
| `rss_slope_mb_per_min` | least-squares slope of `rss_mb` over the trailing 30 s, x 60; 0 (no evidence of a trend) until the window holds 10 values | rss_mb |

A missing source value gives a missing derived value (the gap rule then treats it as any
other column); the slope reads the values it has, so it is missing never, and 0 only
while fewer than 10 of the last 30 seconds had a value (a run's first seconds, a long gap),
which keeps every window of a run usable. `add_derived` computes them for a whole run; `OnlineDerived` computes the
same values one row at a time for the monitor, from the rows it has seen (a test checks
the two agree). A run without a column's sources, or whose sources are empty throughout
(an imported series), simply has no such column.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Mapping

import numpy as np
import pandas as pd

SLOPE_S = 30
SLOPE_MIN = 10
DERIVED: dict[str, tuple[str, ...]] = {
    "cpu_per_request": ("cpu_percent", "rps"),
    "arrival_excess": ("arrivals", "rps"),
    "rss_slope_mb_per_min": ("rss_mb",),
}


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    v = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isfinite(v), v, np.nan)


def trailing_slope(values: np.ndarray, span: int = SLOPE_S, least: int = SLOPE_MIN,
                   short: float = np.nan) -> np.ndarray:
    """Least-squares slope per step of each value's trailing `span` values (NaN ignored; `short` below `least`)."""
    n = len(values)
    out = np.full(n, short, dtype="float64")
    if n == 0:
        return out
    t = np.arange(n, dtype="float64")
    ok = np.isfinite(values)
    x = np.where(ok, values, 0.0)
    c = ok.astype("float64")

    def window_sum(a: np.ndarray) -> np.ndarray:
        s = np.concatenate([[0.0], np.cumsum(a)])
        lo = np.maximum(np.arange(1, n + 1) - span, 0)
        return s[1:] - s[lo]

    count = window_sum(c)
    st, sx = window_sum(c * t), window_sum(x)
    stt, stx = window_sum(c * t * t), window_sum(x * t)
    var = stt - st * st / np.where(count > 0, count, 1)
    cov = stx - st * sx / np.where(count > 0, count, 1)
    good = (count >= least) & (var > 1e-12)
    out[good] = cov[good] / var[good]
    return out


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the run with every derived column whose sources have values (a shallow copy; attrs kept)."""
    has = {c for c in {c for src in DERIVED.values() for c in src} if c in frame.columns
           and np.isfinite(_values(frame, c)).any()}
    todo = {name: src for name, src in DERIVED.items() if all(c in has for c in src)}
    if not todo:
        return frame
    out = frame.copy(deep=False)
    out.attrs = dict(frame.attrs)
    if "cpu_per_request" in todo:
        out["cpu_per_request"] = _values(frame, "cpu_percent") / np.maximum(_values(frame, "rps"), 1.0)
    if "arrival_excess" in todo:
        out["arrival_excess"] = _values(frame, "arrivals") - _values(frame, "rps")
    if "rss_slope_mb_per_min" in todo:
        out["rss_slope_mb_per_min"] = trailing_slope(_values(frame, "rss_mb"), short=0.0) * 60.0
    return out


def as_float(value: object) -> float:
    """A row's value as a float; missing, empty, text or non-finite is NaN."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


class OnlineDerived:
    """The derived columns of each new row, from the rows seen so far (the monitor's side of `add_derived`)."""

    def __init__(self) -> None:
        self._rss: deque[float] = deque(maxlen=SLOPE_S)

    def update(self, row: Mapping[str, object]) -> dict:
        """Return the row with its derived columns added (those whose sources the row has)."""
        out = dict(row)
        cpu, rps = as_float(row.get("cpu_percent")), as_float(row.get("rps"))
        if "cpu_percent" in row and "rps" in row:
            out["cpu_per_request"] = cpu / max(rps, 1.0) if not math.isnan(rps) else math.nan
        if "arrivals" in row and "rps" in row:
            out["arrival_excess"] = as_float(row.get("arrivals")) - rps
        if "rss_mb" in row:
            self._rss.append(as_float(row.get("rss_mb")))
            out["rss_slope_mb_per_min"] = float(trailing_slope(np.asarray(self._rss), short=0.0)[-1]) * 60.0
        return out
