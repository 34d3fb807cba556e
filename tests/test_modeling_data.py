"""Loading, the gap rule, feature choice, splits, scaling and windowing (modeling/data.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from contract.errors import BadInput
from modeling.data import (KEY_METRICS, MISSING, DataWarning, Scaler, chronological_split,
                           fill_gaps, fit_scaler, load_runs, make_windows, select_features,
                           split_runs)
from modeling.synthetic import synthetic_run, write_run


def frame(n: int, offset: float = 0.0, run_id: str = "r", scenario: str = "s") -> pd.DataFrame:
    """A run whose every value encodes its row: row i holds offset + i (+ small per-column shifts)."""
    i = np.arange(n, dtype=float) + offset
    df = pd.DataFrame({
        "elapsed_s": np.arange(n), "users": 10 + i % 7, "rps": i + 0.1, "error_rate": (i % 5) / 100,
        "latency_p95_ms": 100 + i, "cpu_percent": 2 * i + 1, "rss_mb": 140 + (i % 3),
        "slo_violation": (i % 10 == 9).astype(int), "target_up": 1,
    })
    df.attrs.update(run_id=run_id, scenario=scenario)
    return df


COLS = ["users", "rps", "error_rate", "latency_p95_ms", "cpu_percent", "rss_mb"]


def test_exactly_window_plus_horizon_rows_give_one_window():
    w = make_windows([frame(13)], COLS, window=10, horizon=3)
    assert len(w) == 1
    assert w.x.shape == (1, 10, len(COLS) + 1) and w.y.shape == (1, 3, 4)
    assert w.columns[-1] == MISSING
    np.testing.assert_allclose(w.x[0, :, COLS.index("rps")], np.arange(10) + 0.1, rtol=1e-6)
    # A run without the pooled window columns forecasts its per-second values (a 1 s window).
    np.testing.assert_allclose(w.y[0, :, KEY_METRICS.index("latency_p95_window_ms")], [110, 111, 112])
    assert w.t.tolist() == [9]                       # "now" is the last input row
    assert w.warn.tolist() == [0.0]                  # violations at rows 9, 19: none in 10..12


def test_window_count_and_label():
    w = make_windows([frame(30)], COLS, window=10, horizon=3)
    assert len(w) == 30 - 10 - 3 + 1
    # Window ending at row t warns when rows t+1..t+3 contain row 19 or 29 (the violations).
    expected = [1.0 if 16 <= t <= 18 or 26 <= t <= 28 else 0.0 for t in w.t]
    assert w.warn.tolist() == expected


def test_too_short_run_names_the_numbers():
    with pytest.raises(BadInput, match=r"r: needs at least 13 rows \(window 10 \+ horizon 3\), got 12"):
        make_windows([frame(12)], COLS, window=10, horizon=3)


def test_short_run_among_others_is_skipped_with_warning():
    with pytest.warns(DataWarning, match="short: skipped: needs at least 13 rows"):
        w = make_windows([frame(20), frame(5, run_id="short")], COLS, window=10, horizon=3)
    assert len(w) == 8 and w.run_ids == ["r"]


def test_windows_never_cross_runs():
    a, b = frame(25, 0, "a"), frame(18, 1000, "b")
    w = make_windows([a, b], COLS, window=10, horizon=3)
    assert len(w) == (25 - 12) + (18 - 12)
    rps = w.x[:, :, COLS.index("rps")]
    y_rps = w.y[:, :, KEY_METRICS.index("rps")]
    for i in range(len(w)):
        whole = np.concatenate([rps[i], y_rps[i]])
        # Consecutive seconds of one run: no jump from run a's values to run b's.
        np.testing.assert_allclose(np.diff(whole), 1.0, rtol=1e-5)
        assert (whole >= 1000).all() == (w.run[i] == 1)


def test_gap_rule_fills_short_gaps_and_drops_windows_with_long_ones():
    f = frame(60)
    f.loc[10:12, "cpu_percent"] = np.nan          # 3 s: filled with the value of row 9
    f.loc[30:37, "rps"] = np.nan                  # 8 s: stays missing
    f.loc[5, "latency_p95_ms"] = np.inf           # inf counts as missing
    values = fill_gaps(f, COLS, max_gap_s=5)
    assert (values[10:13, COLS.index("cpu_percent")] == 2 * 9 + 1).all()
    assert np.isnan(values[30:38, COLS.index("rps")]).all()
    assert values[5, COLS.index("latency_p95_ms")] == 104    # previous value
    missing = values[:, -1]
    assert missing[[5, 10, 11, 12, 30, 37]].tolist() == [1] * 6 and missing[[0, 13, 29, 38]].tolist() == [0] * 4
    with pytest.warns(DataWarning, match="dropped 17 of 48 window"):
        w = make_windows([f], COLS, window=10, horizon=3)
    # Windows whose inputs [s, s+10) touch rows 30..37 are dropped: s in 21..37.
    assert len(w) == 48 - 17
    assert not np.isnan(w.x).any()


def test_missing_targets_are_masked_never_filled():
    f = frame(60)
    f.loc[10:12, "cpu_percent"] = np.nan          # filled as an input, but a target it stays missing
    f.loc[30:37, "rps"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = make_windows([f], COLS, window=10, horizon=3)
        train = make_windows([f], COLS, window=10, horizon=3, require_targets=True)
    cpu, rps = KEY_METRICS.index("cpu_percent"), KEY_METRICS.index("rps")
    start = w.t - 9
    missing = {(int(s), h, k) for s, h, k in zip(*np.nonzero(np.isnan(w.y)))}
    expected = {(i, h, cpu) for i, s in enumerate(start) for h in range(3) if 10 <= s + 10 + h <= 12}
    expected |= {(i, h, rps) for i, s in enumerate(start) for h in range(3) if 30 <= s + 10 + h <= 37}
    assert missing == expected and len(expected) == 6 + 6
    assert (~w.y_ok).sum() == 12
    # Training never sees a filled target: windows with a missing one are left out.
    assert len(train) == len(w) - 6 and not np.isnan(train.y).any()


def test_leading_gap_is_not_filled():
    f = frame(20)
    f.loc[0:1, "rps"] = np.nan
    assert np.isnan(fill_gaps(f, COLS)[:2, COLS.index("rps")]).all()


def test_all_gaps_give_bad_input():
    f = frame(20)
    f.loc[::2, "rps"] = np.nan
    f.loc[:, "rps"] = np.nan
    with pytest.raises(BadInput, match="no complete windows"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_windows([f], COLS, window=5, horizon=2)


def test_constant_columns_are_dropped_with_a_warning():
    f = frame(30)
    f["threads"] = 19.0
    f["srv_rps"] = np.nan
    with pytest.warns(DataWarning, match=r"dropped constant or empty column\(s\) srv_rps, target_up, threads"):
        cols = select_features([f])
    assert "threads" not in cols and "srv_rps" not in cols and "target_up" not in cols
    assert set(KEY_METRICS) <= set(cols) and "elapsed_s" not in cols


def test_everything_constant_is_bad_input():
    f = pd.DataFrame({c: [1.0] * 20 for c in [*KEY_METRICS, "slo_violation"]})
    f.attrs["run_id"] = "flat"
    with pytest.raises(BadInput, match="flat: every feature column is constant or empty"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select_features([f])


def test_missing_and_empty_key_columns_are_bad_input():
    f = frame(20).drop(columns=["cpu_percent"])
    with pytest.raises(BadInput, match="r: column 'cpu_percent' missing"):
        select_features([f])
    g = frame(20)
    g["error_rate"] = np.nan
    with pytest.raises(BadInput, match="error_rate_window: no values in the training runs"):
        select_features([g])


def test_scaler_round_trip_and_log_columns():
    x = np.array([[0.0, 10.0], [2.0, 1000.0], [4.0, np.nan]])
    s = Scaler("standard", log_columns=("lat",)).fit(x, ["a", "lat"])
    assert s.center[0] == pytest.approx(2.0) and s.scale[0] == pytest.approx(np.std([0, 2, 4]))
    assert s.center[1] == pytest.approx(np.mean(np.log1p([10, 1000])))
    z = s.transform(x[:2])
    np.testing.assert_allclose(s.inverse_transform(z), x[:2], atol=1e-9)
    again = Scaler.from_dict(s.to_dict())
    np.testing.assert_allclose(again.transform(x[:2]), z)
    m = Scaler("minmax").fit(np.array([[1.0], [3.0], [3.0]]), ["c"])
    np.testing.assert_allclose(m.transform(np.array([[1.0], [2.0], [3.0]]), ["c"]).ravel(), [0, 0.5, 1])
    const = Scaler().fit(np.ones((4, 1)), ["k"])
    assert const.transform(np.ones((1, 1)))[0, 0] == 0.0


def test_scaler_is_fitted_on_the_training_part_only():
    run = frame(100)
    run.loc[75:, "rps"] += 10_000                 # the test part has a level shift
    train, test = split_runs([run], test_fraction=0.25)
    assert len(train[0]) == 75 and len(test[0]) == 25
    scaler = fit_scaler(train, COLS)
    assert scaler.center[COLS.index("rps")] == pytest.approx(np.mean(np.arange(75) + 0.1))


def test_split_by_run_and_holdout():
    runs = [frame(20, run_id=f"r{i}", scenario=s) for i, s in enumerate(["a", "a", "b", "c"])]
    train, test = split_runs(runs, holdout=["b"])
    assert [r.attrs["run_id"] for r in test] == ["r2"] and len(train) == 3
    train, test = split_runs(runs, test_fraction=0.5, seed=1)
    assert len(train) == 2 and len(test) == 2
    assert {r.attrs["run_id"] for r in train}.isdisjoint({r.attrs["run_id"] for r in test})
    with pytest.raises(BadInput, match="holdout scenario 'zzz' is not among the runs"):
        split_runs(runs, holdout=["zzz"])
    head, tail = chronological_split(runs[0], 0.3)
    assert len(head) == 14 and len(tail) == 6 and tail["elapsed_s"].iloc[0] == 14


def test_load_runs_from_folders_and_csv(tmp_path):
    run = synthetic_run("smoke-closed", seed=3)
    write_run(run, tmp_path / "runs" / "one")
    write_run(synthetic_run("smoke-closed", seed=4), tmp_path / "runs" / "two")
    loaded = load_runs([tmp_path / "runs", tmp_path / "runs" / "one"])   # the duplicate is read once
    assert [r.attrs["run_id"] for r in loaded] == ["synthetic-smoke-closed-s3", "synthetic-smoke-closed-s4"]
    assert loaded[0].attrs["slo"] == {"latency_p95_ms": 2000.0, "error_rate": 0.02, "window_s": 1}
    assert len(loaded[0]) == 20
    csv = tmp_path / "imported.csv"
    run[["timestamp", "latency_p95_ms", "error_rate", "cpu_percent", "rps"]].to_csv(csv, index=False)
    (imported,) = load_runs([csv])
    assert imported.attrs["run_id"] == "imported"
    expected = ((imported["latency_p95_ms"] > 800) | (imported["error_rate"] > 0.02)).astype(int)
    assert (imported["slo_violation"] == expected).all()
    run[["timestamp", "rps"]].to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BadInput, match="bad.csv: column 'latency_p95_ms' missing"):
        load_runs([tmp_path / "bad.csv"])
    with pytest.raises(BadInput, match="no such file"):
        load_runs([tmp_path / "nowhere"])


def test_dataset_folder_loads_only_the_runs_its_manifest_includes(tmp_path):
    import json

    for name, seed in (("a", 1), ("b", 2)):
        write_run(synthetic_run("smoke-closed", seed=seed), tmp_path / "ds" / "runs" / name)
    manifest = {"runs": [{"path": "runs/a", "included": True},
                         {"path": "runs/b", "included": False, "excluded_reason": "checksum"}]}
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(manifest))
    assert [r.attrs["run_id"] for r in load_runs([tmp_path / "ds"])] == ["synthetic-smoke-closed-s1"]



def test_manifest_paths_are_kept_inside_the_dataset_folder(tmp_path):
    import json

    write_run(synthetic_run("smoke-closed", seed=1), tmp_path / "private" / "secret")
    write_run(synthetic_run("smoke-closed", seed=2), tmp_path / "ds" / "runs" / "a")
    for path in ("../private/secret", str(tmp_path / "private" / "secret"), "runs/../../private/secret"):
        (tmp_path / "ds" / "manifest.json").write_text(json.dumps({"runs": [{"path": path, "included": True}]}))
        with pytest.raises(BadInput, match=r"manifest\.json: runs\[0\]\.path: .* leads outside"):
            load_runs([tmp_path / "ds"])
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps({"runs": ["runs/a"]}))
    with pytest.raises(BadInput, match=r"manifest\.json: runs\[0\]: expected an object, got a string"):
        load_runs([tmp_path / "ds"])


def test_no_windows_says_what_was_missing_not_a_long_gap():
    """One empty second at the start of a held-out part is not 'a gap longer than 5 s'."""
    f = frame(20)
    f.loc[15, ["latency_p95_ms", "rps"]] = np.nan
    _, tail = chronological_split(f)                      # rows 15..19: one window of 3 + 2
    with pytest.raises(BadInput) as err:
        make_windows([tail], COLS, window=3, horizon=2)
    message = str(err.value)
    assert message.startswith("no complete windows: all 1 window(s) of 5 rows (window 3 + horizon 2) in 1 run(s) "
                              "(r[tail]; 5 rows) touch 1 row(s) with no value yet at the start of a run"), message
    assert "rps, latency_p95_ms" in message or "latency_p95_ms, rps" in message
    assert "longer than" not in message


def test_dropped_windows_warning_names_the_longest_gap():
    f = frame(60)
    f.loc[30:37, "rps"] = np.nan                  # 8 s: stays missing
    with pytest.warns(DataWarning, match=r"^dropped 17 of 48 window\(s\): they touch 8 row\(s\) in gaps longer "
                                         r"than 5 s \(the longest 8 s\) in rps$"):
        make_windows([f], COLS, window=10, horizon=3)


def test_incidents_ahead_label_each_window_by_the_slow_horizon():
    from modeling.data import incident_ahead, incident_view, make_windows
    from modeling.metrics import score_alarms

    run = synthetic_run("fault-memory-closed", seed=1, duration_s=200)
    run["incident"] = "none"
    run.loc[150:151, "incident"] = "worker_killed"
    w = make_windows([run], ["cpu_percent", "rps"], 10, 5)
    ahead = incident_ahead(w, 30)
    t = w.t
    assert ahead[(t >= 120) & (t <= 150)].all()            # the incident is 1..30 s after "now"
    assert not ahead[t < 119].any() and not ahead[t >= 151].any()
    view = incident_view(w, 30)
    assert view.horizon == 30 and view.frames[0]["slo_violation"].sum() == 2
    assert (view.frames[0]["incident"] == "none").all() and (w.frames[0]["incident"] != "none").sum() == 2
    # Scored as episodes: an alarm on since the leak began detects the kill with the whole
    # achievable lead (from its last precursor, a fault start or plan change).
    leak = int(np.argmax(run["fault"].to_numpy() == "memory"))
    assert 55 <= leak <= 65
    alarm = (t >= leak).astype(float)
    merged, _ = score_alarms(view, alarm)
    assert merged["episodes"] == 1 and merged["detected"] == 1
    assert merged["mean_lead_s"] == merged["mean_achievable_lead_s"] > 0 and merged["lead_share"] == 1.0
    late = score_alarms(view, (t >= 148).astype(float))[0]
    assert late["detected"] == 1 and late["mean_lead_s"] == 2
    empty = make_windows([synthetic_run("spike-closed", seed=1, duration_s=60)], ["cpu_percent"], 10, 5)
    assert not incident_ahead(empty, 30).any()
