"""System states by rule, KMeans regimes named as states, their scoring, smoothing, JSON round trips (no pickle)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from contract.errors import BadInput
from contract.runfolder import read_samples
from modeling.evaluate import regime_goals, score_regimes
from modeling.metrics import state_recall, violation_share_by_regime
from modeling.products import ProductClusters, endpoint_profiles
from modeling.regimes import DEFAULT_DWELL_S, FEATURES, RegimeModel, regime_features
from modeling.states import STATES, min_dwell, pool_threads, system_states, violation_ahead
from modeling.synthetic import synthetic_run, synthetic_samples


def canned(n: int = 60, **cols) -> pd.DataFrame:
    """A healthy open-model run on a 2 x 4 target (8 request threads); `cols` overrides columns."""
    base = {"elapsed_s": np.arange(n), "rps": 70.0, "arrivals": 70.0, "outstanding": 2.0, "srv_queue_p95_ms": 8.0,
            "srv_in_flight": 1.0, "latency_p95_ms": 120.0, "error_rate": 0.0, "failures": 0.0, "cpu_percent": 40.0,
            "rss_mb": 100.0, "fault": "none", "incident": "none", "slo_violation": 0}
    base.update(cols)
    frame = pd.DataFrame({k: (np.asarray(v) if np.ndim(v) else np.full(n, v)) for k, v in base.items()})
    frame.attrs.update(run_id="canned", scenario="canned", slo={"latency_p95_ms": 500.0, "error_rate": 0.02},
                       meta={"scenario": {"target": {"workers": 2, "threads": 4}}})
    return frame


def ramp(n: int, pieces: list[tuple[int, float, float]]) -> np.ndarray:
    """Piecewise-linear series: (until, from, to) per piece."""
    out, start = np.zeros(n), 0
    for until, a, b in pieces:
        out[start:until] = np.linspace(a, b, until - start)
        start = until
    return out


# ---------------------------------------------------------------- the state rules


def test_pool_is_workers_times_threads_from_the_run_metadata():
    assert pool_threads(canned()) == 8.0
    bare = canned()
    bare.attrs.pop("meta")
    assert pool_threads(bare, default=12) == 12.0 and pool_threads(bare) == 8.0   # the target's defaults


def test_a_steady_run_is_healthy_throughout():
    assert set(system_states(canned())) == {"healthy"}


def test_backlog_above_the_pool_for_five_seconds_is_saturated_then_draining_is_recovering():
    n = 60
    backlog = ramp(n, [(20, 2, 2), (35, 2, 300), (40, 300, 300), (50, 300, 0), (60, 0, 0)])
    arrivals = np.where((np.arange(n) >= 20) & (np.arange(n) < 40), 120.0, 70.0)
    rps = np.where((np.arange(n) >= 40) & (np.arange(n) < 50), 100.0, 70.0)
    s = system_states(canned(n, outstanding=backlog, arrivals=arrivals, rps=rps))
    # Above 8 outstanding from about t=21; five such seconds make it saturated.
    assert (s[:20] == "healthy").all()
    assert (s[26:40] == "saturated").all()
    assert (s[43:48] == "recovering").all()
    assert (s[52:] == "healthy").all()
    assert s[21] == "healthy"                       # one second above the pool is not yet a state


def test_rising_queue_time_is_saturated_even_below_the_pool():
    queue = ramp(60, [(20, 8, 8), (40, 8, 800), (60, 8, 8)])
    s = system_states(canned(60, srv_queue_p95_ms=queue))
    assert (s[25:40] == "saturated").all() and (s[:20] == "healthy").all()


def test_errors_above_the_slo_share_are_erroring():
    failures = np.where((np.arange(60) >= 30) & (np.arange(60) < 40), 7.0, 0.0)     # 10 % of 70/s
    s = system_states(canned(60, failures=failures, error_rate=failures / 70))
    assert (s[31:43] == "erroring").all() and (s[:30] == "healthy").all() and (s[46:] == "healthy").all()


def test_a_memory_fault_counts_once_the_leak_is_visible_not_from_the_plan_start():
    n = 90
    fault = np.where((np.arange(n) >= 20) & (np.arange(n) < 70), "memory", "none")
    rss = ramp(n, [(35, 100, 100), (70, 100, 170), (90, 170, 170)])     # flat for 15 s, then 2 MB/s
    s = system_states(canned(n, fault=fault, rss_mb=rss))
    assert (s[:36] == "healthy").all()                 # the fault is on from t=20 but not yet visible
    assert (s[40:70] == "exhaustion").all()
    assert (s[72:] == "healthy").all()                 # over when the fault clears


def test_a_threads_fault_counts_once_stuck_threads_floor_the_in_flight_count():
    n = 80
    fault = np.where((np.arange(n) >= 20) & (np.arange(n) < 60), "threads", "none")
    flight = np.where(np.arange(n) >= 35, 4.0, np.where(np.arange(n) % 2, 3.0, 1.0))   # half the pool from t=35
    s = system_states(canned(n, fault=fault, srv_in_flight=np.where(fault == "threads", flight, 0.0)))
    assert (s[:38] == "healthy").all() and (s[40:60] == "exhaustion").all() and (s[62:] == "healthy").all()


def test_an_incident_ahead_is_exhaustion_for_the_fifteen_seconds_before_it():
    incident = np.array(["none"] * 80, dtype=object)
    incident[60] = "worker_killed"
    s = system_states(canned(80, incident=incident))
    assert (s[45:61] == "exhaustion").all() and (s[:44] == "healthy").all() and (s[62:] == "healthy").all()


def test_runs_without_client_backlog_use_the_in_flight_count():
    n = 40
    flight = np.where(np.arange(n) >= 15, 8.0, 2.0)    # at the pool: the server cannot count past it
    frame = canned(n, srv_in_flight=flight).drop(columns=["outstanding", "arrivals", "srv_queue_p95_ms"])
    s = system_states(frame)
    assert (s[:15] == "healthy").all() and (s[20:] == "saturated").all()


def test_min_dwell_absorbs_short_stretches_and_keeps_unknown():
    assert "".join(min_dwell(list("aaaabbaaaccccdeeeee"), 3)) == "aaaaaaaaaccccceeeee"
    assert "".join(min_dwell(list("bbaaaa"), 3)) == "aaaaaa"
    assert min_dwell([-1, -1, 0, 0, 0, 1, 0, 0], 3, keep=(-1,)).tolist() == [-1, -1, 0, 0, 0, 0, 0, 0]
    assert "".join(min_dwell(list("aabbb"), 1)) == "aabbb"


def test_violation_ahead_looks_at_the_next_seconds_only():
    v = np.zeros(20, int)
    v[10] = 1
    ahead = violation_ahead(canned(20, slo_violation=v), within=5)
    assert ahead[4] == 0 and ahead[5:10].tolist() == [1, 1, 1, 1, 1] and ahead[10] == 0
    assert np.isnan(ahead[15:]).all()                  # the next 5 s are not all in the run


# ---------------------------------------------------------------- the model


def story(seed: int) -> pd.DataFrame:
    """A canned run with every state: healthy, saturated, recovering, erroring, a visible leak."""
    rng = np.random.default_rng(seed)
    n = 200
    t = np.arange(n)
    backlog = ramp(n, [(30, 2, 2), (45, 2, 400), (55, 400, 400), (65, 400, 0), (200, 0, 0)])
    arrivals = np.where((t >= 30) & (t < 55), 120.0, 70.0)
    rps = np.where((t >= 55) & (t < 65), 110.0, 70.0)
    queue = np.where(backlog > 8, 10 * backlog, 8.0)
    failures = np.where((t >= 100) & (t < 125), 14.0, 0.0)
    fault = np.where((t >= 140) & (t < 190), "memory", np.where((t >= 100) & (t < 125), "errors", "none"))
    rss = ramp(n, [(150, 100, 100), (190, 100, 180), (200, 110, 110)])
    noise = lambda scale: rng.normal(0, scale, n)  # noqa: E731
    frame = canned(n, outstanding=np.clip(backlog + noise(1), 0, None), arrivals=arrivals + noise(3),
                   rps=np.clip(rps + noise(3), 1, None), srv_queue_p95_ms=np.clip(queue + noise(2), 1, None),
                   latency_p95_ms=120 + queue + noise(5), failures=failures, error_rate=failures / 70,
                   fault=fault, rss_mb=rss + noise(0.2), cpu_percent=40 + noise(2))
    frame.attrs["run_id"] = f"story-{seed}"
    return frame


@pytest.fixture(scope="module")
def stories():
    return [story(s) for s in range(4)]


def test_features_are_pooled_over_the_span_and_normalised_by_the_pool():
    f = canned(30, outstanding=np.arange(30, dtype=float), rps=np.where(np.arange(30) < 15, 50.0, 100.0),
               cpu_percent=50.0)
    sources = ["latency_p95_ms", "error_rate", "cpu_percent", "rps", "rss_mb", "srv_queue_p95_ms", "outstanding",
               "srv_in_flight", "arrivals", "failures"]
    feats = regime_features(f, sources, pool=8.0, span=10)
    assert feats.shape == (30, len(FEATURES)) and np.isnan(feats[:9]).all() and not np.isnan(feats[9:]).any()
    col = dict(zip(FEATURES, feats[29]))
    assert col["backlog_per_thread:level"] == pytest.approx(np.mean(np.log1p(np.arange(20, 30) / 8)))
    assert col["cpu_per_request:level"] == pytest.approx(np.log1p(500 / 1000))       # CPU per request, not CPU
    assert col["queue_ms:trend"] == pytest.approx(0.0) and col["error_share:level"] == 0.0


def test_a_stalled_target_keeps_its_features_defined():
    t = np.arange(40)
    stall = (t >= 20) & (t < 32)                         # 12 s without a completion: longer than the gap rule
    frame = canned(40, rps=np.where(stall, 0.0, 70.0), latency_p95_ms=np.where(stall, np.nan, 120.0),
                   srv_queue_p95_ms=np.where(stall, np.nan, 8.0), error_rate=np.where(stall, np.nan, 0.0))
    sources = ["latency_p95_ms", "error_rate", "cpu_percent", "rps", "rss_mb", "srv_queue_p95_ms"]
    assert not np.isnan(regime_features(frame, sources, pool=8.0)[9:]).any()
    lost = frame.copy()
    lost.loc[20:31, "rps"] = np.nan                      # a lost stretch is still undefined
    assert np.isnan(regime_features(lost, sources, pool=8.0)[35]).any()


def test_regimes_are_the_states_with_names_from_the_training_map(stories, tmp_path):
    model = RegimeModel(seed=0).fit(stories[:3])
    assert model.k_ == len(STATES) and sorted(model.names_) == sorted(STATES)       # k = the states, one each
    assert all(not re.search(r"-\d+$", n) for n in model.names_)
    held = stories[3]
    names, truth = model.predict_names(held), system_states(held)
    assert (names[:9] == "unknown").all()                                           # no full span yet
    ok = names != "unknown"
    recall = state_recall(truth[ok], names[ok], STATES)
    assert all(recall[s] >= 0.5 for s in STATES), recall
    path = model.save(tmp_path / "regimes.json")
    assert json.loads(path.read_text())["format"] == "stability-lab/regimes/2"
    again = RegimeModel.load(path)
    np.testing.assert_array_equal(again.predict(held), model.predict(held))
    assert again.names_ == model.names_ and again.metrics == model.metrics


def test_a_state_absent_from_training_gets_a_prototype_named_after_it(stories):
    no_errors = [s[(s["elapsed_s"] < 95) | (s["elapsed_s"] >= 135)].reset_index(drop=True) for s in stories[:3]]
    for s, o in zip(no_errors, stories[:3]):
        s.attrs = dict(o.attrs)
    model = RegimeModel(seed=0).fit(no_errors)
    assert "erroring" in model.names_ and model.sizes_[model.names_.index("erroring")] == 0
    names, truth = model.predict_names(stories[3]), system_states(stories[3])
    assert np.mean(names[truth == "erroring"] == "erroring") > 0.7


def test_scoring_a_known_mapping_gives_recall_one_and_a_shuffled_one_does_not():
    rng = np.random.default_rng(0)
    truth = rng.choice(STATES, 500)
    assert set(state_recall(truth, truth, STATES).values()) == {1.0}
    shuffled = rng.permutation(truth)
    assert max(state_recall(truth, shuffled, STATES).values()) < 0.5
    # The map learned on training: clusters that are the states in another order get their names back.
    clusters = np.array([STATES.index(s) for s in truth])
    perm = rng.permutation(len(STATES))
    names = RegimeModel._map(perm[clusters], truth, len(STATES), list(STATES))
    assert set(state_recall(truth, np.array(names)[perm[clusters]], STATES).values()) == {1.0}
    names = RegimeModel._map(rng.permutation(clusters), truth, len(STATES), list(STATES))
    assert min(state_recall(truth, np.array(names)[clusters], STATES).values()) < 0.5


def test_usefulness_is_the_violation_share_ahead_per_regime():
    out = violation_share_by_regime(np.array(["a", "a", "b", "b", "b"]), np.array([1, 0, 1, 1, np.nan]))
    assert out == {"a": {"p_violation": 0.5, "seconds": 2}, "b": {"p_violation": 1.0, "seconds": 2}}


def test_score_regimes_reports_recall_intervals_and_usefulness(stories):
    model = RegimeModel(seed=0).fit(stories[:2])
    r = score_regimes(model, stories[2:])
    assert set(r["recall"]) == set(STATES) and r["min_recall"] == min(r["recall"].values())
    assert all(lo <= r["recall"][s] <= hi for s, (lo, hi) in r["recall_ci"].items())
    assert r["ari"] > 0.5 and r["nmi"] > 0.5 and set(r["p_violation_ahead"]) <= set(STATES)
    goals = regime_goals(r)
    assert set(goals) == {"regime_ari", "regime_recall"} and "worst" in goals["regime_recall"]["goal"]


def test_the_printed_regime_table_lists_recall_and_usefulness_per_state(stories):
    import io

    from rich.console import Console

    from modeling.console import regime_table

    r = score_regimes(RegimeModel(seed=0).fit(stories[:2]), stories[2:])
    out = io.StringIO()
    regime_table(Console(file=out, width=200), r)
    text = out.getvalue()
    assert "P(violation ahead)" in text and f"{r['recall']['recovering']:.2f}" in text
    assert all(s in text for s in STATES)


def test_smoothing_removes_the_flicker_of_the_nearest_centroid(stories):
    from modeling.states import runs_of

    noisy = stories[3].copy()
    rng = np.random.default_rng(5)
    noisy.loc[70:99, "outstanding"] = np.exp(rng.normal(np.log(12), 1.2, 30))       # on the saturation edge
    noisy.loc[70:99, "srv_queue_p95_ms"] = np.exp(rng.normal(np.log(60), 1.2, 30))

    def stretches(smoothing):
        names = RegimeModel(smoothing=smoothing, span=3, seed=0).fit(stories[:3]).predict_names(noisy)
        return [(b - a, v) for a, b, v in runs_of(names) if v != "unknown" and 0 < a and b < len(names)]

    raw = stretches("none")
    assert any(n < DEFAULT_DWELL_S for n, _ in raw)
    assert all(n >= DEFAULT_DWELL_S for n, _ in stretches("dwell"))


def test_regimes_refuse_bad_parameters_json_and_short_data(stories, tmp_path):
    data = RegimeModel().fit(stories[:1]).to_dict()
    data["centroids"] = data["centroids"][:2]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(BadInput, match="bad.json: regimes: centroids"):
        RegimeModel.load(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({"format": "stability-lab/regimes/1"}))
    with pytest.raises(BadInput, match="old.json: regimes: format is not .* retrain"):
        RegimeModel.load(tmp_path / "old.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(BadInput, match=r"junk\.json: not valid JSON \("):
        RegimeModel.load(tmp_path / "junk.json")
    with pytest.raises(BadInput, match="need at least 6 complete seconds"):
        RegimeModel().fit([stories[0].iloc[:12]])
    with pytest.raises(BadInput, match="smoothing must be one of"):
        RegimeModel(smoothing="hmm").fit(stories[:1])
    with pytest.raises(BadInput, match="column 'rss_mb' missing"):
        RegimeModel().fit([stories[0].drop(columns=["rss_mb"])])


def test_regimes_fit_the_synthetic_closed_runs():
    runs = [synthetic_run(s, seed=1) for s in ("spike-closed", "fault-errors-closed", "fault-memory-closed")]
    model = RegimeModel(seed=0).fit(runs)
    names = model.predict_names(runs[1])
    during = names[runs[1]["fault"].to_numpy() == "errors"]
    assert (during == "erroring").mean() > 0.8                   # an error fault is named as such
    assert "outstanding" not in model.metrics and "srv_in_flight" in model.metrics


def test_product_clusters_group_endpoints_by_profile(tmp_path):
    samples = synthetic_samples(duration_s=60, rps=40, seed=2)
    profiles = endpoint_profiles(samples)
    assert list(profiles.index) == sorted(samples["name"].unique())
    assert profiles.loc["/stress", "p95_ms"] > profiles.loc["/products", "p95_ms"]
    model = ProductClusters(seed=0).fit(profiles)
    groups = model.assignments()
    assert groups["/products"] == groups["/products/[id]"] == "light"
    assert groups["/stress"] == "heavy"
    again = ProductClusters.load(model.save(tmp_path / "products.json"))
    np.testing.assert_array_equal(again.predict(profiles), model.predict(profiles))
    (tmp_path / "locust").mkdir()
    samples.to_csv(tmp_path / "locust" / "samples-1.csv", index=False)
    assert len(read_samples(tmp_path)) == len(samples)
    with pytest.raises(BadInput, match="need at least 2 endpoints"):
        ProductClusters().fit(profiles.iloc[:1])
    with pytest.raises(BadInput, match="column 'p95_ms' missing"):
        ProductClusters().fit(profiles.drop(columns=["p95_ms"]))
