"""KMeans regimes and product clusters: fitting, naming, JSON round trips (no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from contract.errors import BadInput
from contract.runfolder import read_samples
from modeling.products import ProductClusters, endpoint_profiles
from modeling.regimes import RegimeModel, regime_features, truth_regimes
from modeling.synthetic import synthetic_run, synthetic_samples


@pytest.fixture(scope="module")
def runs():
    return [synthetic_run(s, seed=1) for s in ("spike-closed", "fault-errors-closed", "fault-memory-closed")]


def test_features_are_level_spread_and_trend_over_the_span():
    f = pd.DataFrame({"latency_p95_ms": np.expm1([1.0, 2.0, 3.0, 4.0]), "rps": [1.0, 1.0, 4.0, 1.0]})
    feats = regime_features(f, ["latency_p95_ms", "rps"], span=3)
    assert np.isnan(feats[:2]).all()
    # Row 2 covers rows 0..2: latency (log1p) 1, 2, 3 and rps 1, 1, 4.
    assert feats[2].tolist() == pytest.approx([2.0, 2.0, np.std([1, 2, 3]), np.std([1, 1, 4]), 1.0, 1.5])


def test_truth_labels_faults_then_violations():
    f = pd.DataFrame({"fault": ["none", "cpu", "none"], "slo_violation": [0, 1, 1]})
    assert truth_regimes(f).tolist() == ["normal", "fault:cpu", "overload"]


def test_regimes_fit_name_and_round_trip_through_json(runs, tmp_path):
    search = RegimeModel(k_range=(2, 5), seed=0).fit(runs)
    assert set(search.silhouette_by_k_) == {2, 3, 4, 5}
    assert search.silhouette_ == max(search.silhouette_by_k_.values()) == search.silhouette_by_k_[search.k_]
    model = RegimeModel(k=4, seed=0).fit(runs)
    assert model.k_ == 4 and len(set(model.names_)) == 4
    names = model.predict_names(runs[1])
    assert (names[:4] == "unknown").all()                        # no full span yet
    during = names[runs[1]["fault"].to_numpy() == "errors"]
    assert (during == "erroring").mean() > 0.8                   # an error fault is named as such
    path = model.save(tmp_path / "regimes.json")
    text = path.read_text()
    assert json.loads(text)["format"] == "stability-lab/regimes/1"
    again = RegimeModel.load(path)
    for run in runs:
        np.testing.assert_array_equal(again.predict(run), model.predict(run))
    assert again.names_ == model.names_


def test_regimes_refuse_bad_json_and_short_data(runs, tmp_path):
    data = RegimeModel(k=3).fit(runs).to_dict()
    data["centroids"] = data["centroids"][:2]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(BadInput, match="bad.json: regimes: centroids"):
        RegimeModel.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(BadInput, match=r"junk\.json: not valid JSON \("):
        RegimeModel.load(tmp_path / "junk.json")
    with pytest.raises(BadInput, match="need at least 9 complete seconds"):
        RegimeModel().fit([runs[0].iloc[:6]])


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
