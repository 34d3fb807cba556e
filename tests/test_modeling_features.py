"""The mechanism's derived inputs: what they measure, and the same values offline and online."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modeling.data import pooled_targets
from modeling.features import DERIVED, OnlineDerived, add_derived, trailing_slope


def _run(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    t = np.arange(n)
    rss = 200 + 0.5 * t + rng.normal(0, 0.2, n)          # a leak: 0.5 MB/s = 30 MB/min
    rss[50:53] = np.nan                                  # a short scrape gap
    rps = np.where(t < 60, 40.0, 10.0)
    rps[70] = 0.0                                        # a second with no completion
    return pd.DataFrame({"cpu_percent": np.full(n, 80.0), "rps": rps, "arrivals": np.full(n, 40.0),
                         "rss_mb": rss})


def test_the_derived_columns_measure_what_they_say():
    out = add_derived(_run())
    assert list(out.columns[-3:]) == list(DERIVED)
    assert out["cpu_per_request"].iloc[0] == pytest.approx(2.0) and out["cpu_per_request"].iloc[61] == pytest.approx(8.0)
    assert out["cpu_per_request"].iloc[70] == pytest.approx(80.0)      # no completion: per at least 1 req/s
    assert out["arrival_excess"].iloc[0] == 0 and out["arrival_excess"].iloc[61] == 30   # the backlog grows
    slope = out["rss_slope_mb_per_min"]
    assert (slope.iloc[:9] == 0).all()                                  # fewer than 10 values yet: no trend
    assert slope.iloc[40:].to_numpy() == pytest.approx(np.full(80, 30.0), rel=0.03)
    assert "rss_slope_mb_per_min" not in add_derived(_run().drop(columns=["rss_mb"])).columns
    empty = _run().assign(rss_mb=np.nan, rps=np.nan)                   # an imported series: columns, no values
    assert not set(DERIVED) & set(add_derived(empty).columns)
    frame = _run()
    add_derived(frame)
    assert "cpu_per_request" not in frame.columns                       # the caller's frame is untouched


def test_online_rows_get_the_values_training_saw():
    frame = _run()
    offline = add_derived(frame)
    online = OnlineDerived()
    rows = [online.update(r) for r in frame.to_dict("records")]
    for name in DERIVED:
        np.testing.assert_allclose([r[name] for r in rows], offline[name].to_numpy(), rtol=1e-9, equal_nan=True)


def test_trailing_slope_ignores_gaps_and_needs_enough_values():
    v = np.arange(40, dtype=float) * 2.0
    v[5:25] = np.nan
    s = trailing_slope(v, span=30, least=10)
    # Five values, a 20 s gap, then the tenth value in the window arrives at index 29.
    assert np.isnan(s[:29]).all() and np.isfinite(s[29:]).all()
    assert s[29:] == pytest.approx(np.full(11, 2.0))
    assert np.isnan(trailing_slope(np.full(5, 3.0))).all()


def test_every_model_path_reads_them():
    frame = _run()
    frame["latency_p95_ms"] = 100.0
    frame["error_rate"] = 0.0
    assert set(DERIVED) <= set(pooled_targets(frame).columns)
