"""The synthetic run generator follows the metrics.csv contract (modeling/synthetic.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contract.runfolder import read_run
from contract.schema import COLUMNS, violates_slo
from contract.errors import BadInput
from modeling.synthetic import TargetModel, synthetic_run, synthetic_samples, write_run


def test_contract_columns_one_row_per_second():
    run = synthetic_run("mixed-closed", seed=5)
    assert list(run.columns) == COLUMNS
    assert run["elapsed_s"].tolist() == list(range(300))
    assert run["timestamp"].iloc[0] == "2026-01-01T00:00:00Z"
    assert set(run["slo_violation"]) == {0, 1}
    assert set(run["fault"]) == {"none", "latency", "cpu", "errors", "memory"}
    assert ((run["target_up"] == 0) == run["srv_rps"].isna()).all()  # gaps are marked


RECORDED = Path(__file__).resolve().parents[1] / "course" / "data" / "signal" / "runs" / "noise-s5-r1"


def _steady(users: int, seconds: int = 100, window_s: int = 10) -> dict:
    # course/scenarios/noise.toml's SLO and mix (no /stress), held by a closed loop of `users`.
    return {"name": "noise-closed", "duration_s": seconds,
            "slo": {"latency_p95_ms": 500, "error_rate": 0.02, "window_s": window_s},
            "load": {"mix": {"browse": 5, "product": 4, "search": 2, "checkout": 1}},
            "stages": [{"name": "hold", "until_s": seconds, "users": users, "spawn_rate": 1000}]}


def _scatter(frame: pd.DataFrame) -> tuple[float, float, float]:
    """Median per-second p95, and the sd of the log of the per-second and the pooled p95."""
    return (frame["latency_p95_ms"].median(), np.log(frame["latency_p95_ms"]).std(),
            np.log(frame["latency_p95_window_ms"]).std())


@pytest.mark.parametrize("phase, users", [("r30", 34), ("r90", 101)])
def test_percentile_noise_matches_a_recorded_run(phase, users):
    # The recorded run (course/data/signal) held 30 and then 90 requests/s far below capacity:
    # its per-second p95 scatters by sampling and contention alone. The generator's, by the
    # collector's estimator over the same mix and window, must scatter alike.
    real = read_run(RECORDED).frame
    steady = real[real["phase"] == phase].iloc[10:]     # past the ramp and a full window
    level, per_second, pooled = _scatter(steady)
    runs = [synthetic_run(_steady(users), seed=s, model=TargetModel(capacity_rps=150, jitter=0), gaps=False).iloc[20:]
            for s in (1, 2, 3)]
    assert abs(np.median([r["rps"].median() for r in runs]) - steady["rps"].median()) < 0.1 * steady["rps"].median()
    syn = np.mean([_scatter(r) for r in runs], axis=0)
    assert 0.75 < syn[0] / level < 1.33, (syn, (level, per_second, pooled))
    assert 0.7 < syn[1] / per_second < 1.4, (syn, (level, per_second, pooled))
    assert 0.7 < syn[2] / pooled < 1.4, (syn, (level, per_second, pooled))


def test_labels_pool_over_the_scenario_window():
    one = synthetic_run(_steady(34, 60, window_s=1), seed=2, gaps=False)
    np.testing.assert_allclose(one["latency_p95_window_ms"], one["latency_p95_ms"])
    ten = synthetic_run({**_steady(34, 60), "slo": {"latency_p95_ms": 110, "error_rate": 0.02, "window_s": 10}},
                        seed=2, gaps=False)
    assert (ten["window_requests"].iloc[10:] > 8 * ten["rps"].iloc[10:].median()).all()
    labels = [violates_slo(p, e, {"latency_p95_ms": 110, "error_rate": 0.02})
              for p, e in zip(ten["latency_p95_window_ms"], ten["error_rate_window"])]
    assert ten["slo_violation"].tolist() == labels and 0 < sum(labels) < len(labels)
    # The per-second p95 crosses 110 ms far more often than the pooled one changes side.
    flips = lambda s: int(((s > 110).astype(int).diff().abs() > 0).sum())
    assert flips(ten["latency_p95_ms"]) > 3 * flips(ten["latency_p95_window_ms"])


def _one_stage(slo, faults=()):
    return {"name": "one-stage", "duration_s": 60, "slo": slo, "faults": list(faults),
            "stages": [{"name": "hold", "until_s": 60, "users": 8, "spawn_rate": 8}]}


def test_labels_follow_the_scenario_slo_and_no_data_is_no_violation():
    # An SLO nothing can meet: every second with requests violates, the lost seconds do not.
    tight = synthetic_run(_one_stage({"latency_p95_ms": 1.0, "error_rate": 0.5}), seed=4,
                          model=TargetModel(gap_rate=0.1))
    observed = tight["latency_p95_ms"].notna()
    assert 0 < (~observed).sum() < len(tight)
    assert tight["slo_violation"].tolist() == observed.astype(int).tolist()
    # The error-rate side: a fault that fails every request violates an SLO whose latency is never reached.
    errors = synthetic_run(_one_stage({"latency_p95_ms": 1e9, "error_rate": 0.2},
                                      [{"kind": "errors", "start_s": 20, "duration_s": 15, "intensity": 1.0}]),
                           seed=4, gaps=False)
    assert errors["slo_violation"].tolist() == (errors["fault"] == "errors").astype(int).tolist()


def test_same_seed_same_run_other_seed_other_run():
    a, b, c = synthetic_run("spike-closed", seed=1), synthetic_run("spike-closed", seed=1), synthetic_run("spike-closed", seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["latency_p95_ms"].equals(c["latency_p95_ms"])


def test_latency_rises_nonlinearly_past_capacity_and_under_faults():
    run = synthetic_run("ramp-closed", seed=3, gaps=False)
    by_phase = run.groupby("phase", sort=False)[["users", "rps", "latency_p95_ms"]].median()
    # Ten users send about 9 requests a second: a second's p95 is then its slowest but one, and
    # often holds no /stress request (1 in 13) at all, as a real second's does.
    assert by_phase.loc["level-10", "latency_p95_ms"] < 0.5 * by_phase.loc["level-35", "latency_p95_ms"]
    assert by_phase.loc["level-60", "latency_p95_ms"] < 1.3 * by_phase.loc["level-35", "latency_p95_ms"]
    assert by_phase.loc["level-160", "latency_p95_ms"] > 2.5 * by_phase.loc["level-60", "latency_p95_ms"]
    # Throughput saturates while users keep climbing.
    assert by_phase.loc["level-160", "rps"] < 1.5 * by_phase.loc["level-110", "rps"]
    errors = synthetic_run("fault-errors-closed", seed=3, gaps=False)
    during = errors[errors["fault"] == "errors"]
    assert during["error_rate"].median() > 0.1 and during["slo_violation"].mean() > 0.9


def test_written_run_reads_back_through_runio(tmp_path):
    run = synthetic_run("smoke-closed", seed=1)
    back = read_run(write_run(run, tmp_path / "r"))
    assert back.meta["status"] == "complete" and len(back.frame) == 20
    np.testing.assert_allclose(back.frame["rps"], run["rps"], atol=1e-4)


def test_dict_scenarios_and_bad_ones():
    sc = {"name": "tiny", "duration_s": 30, "stages": [{"name": "a", "until_s": 30, "users": 5, "spawn_rate": 5}]}
    assert len(synthetic_run(sc, seed=0)) == 30
    with pytest.raises(BadInput, match="stages: missing"):
        synthetic_run({"name": "x", "duration_s": 10})


def test_samples_follow_the_locust_format():
    s = synthetic_samples(duration_s=10, rps=50, seed=1)
    assert list(s.columns) == ["ts", "response_time_ms", "ok", "name"]
    assert s["ts"].is_monotonic_increasing and set(s["ok"]) <= {0, 1}
    assert s.groupby("name")["response_time_ms"].median()["/stress"] > 500


def test_an_open_model_scenario_is_refused_with_one_line():
    with pytest.raises(BadInput, match="closed model"):
        synthetic_run("spike", seed=1)


def test_the_service_time_comes_from_the_mix_unless_the_model_gives_one():
    default = synthetic_run("spike-closed", seed=1).attrs["meta"]["synthetic"]["base_mean_ms"]
    no_stress = synthetic_run(_steady(34, 30), seed=1).attrs["meta"]["synthetic"]["base_mean_ms"]
    given = synthetic_run("spike-closed", seed=1, model=TargetModel(base_mean_ms=400.0))
    assert 100 < default < 140 and no_stress < 0.3 * default          # /stress is 1 in 13 of the default mix
    assert given.attrs["meta"]["synthetic"]["base_mean_ms"] == 400.0
    # Slower service holds the threads longer: fewer completions at the same users.
    assert given["rps"].median() < synthetic_run("spike-closed", seed=1)["rps"].median()


def test_samples_of_a_mix_without_one_endpoint_keep_each_name_with_its_latency():
    from modeling.synthetic import ENDPOINTS

    endpoints = {**ENDPOINTS, "/products": {**ENDPOINTS["/products"], "weight": 0}}
    medians = synthetic_samples(duration_s=20, rps=50, seed=1, endpoints=endpoints).groupby("name")["response_time_ms"].median()
    assert "/products" not in medians.index
    assert medians["/stress"] > 500 and medians["/products/search"] > 50 and medians["/products/[id]"] < 20
