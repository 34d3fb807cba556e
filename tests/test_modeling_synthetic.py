"""The synthetic run generator follows the metrics.csv contract (modeling/synthetic.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract.runfolder import read_run
from contract.schema import COLUMNS
from contract.errors import BadInput
from modeling.synthetic import TargetModel, _slo_violation, synthetic_run, synthetic_samples, write_run


def test_contract_columns_one_row_per_second():
    run = synthetic_run("mixed-closed", seed=5)
    assert list(run.columns) == COLUMNS
    assert run["elapsed_s"].tolist() == list(range(300))
    assert run["timestamp"].iloc[0] == "2026-01-01T00:00:00Z"
    assert set(run["slo_violation"]) == {0, 1}
    assert set(run["fault"]) == {"none", "latency", "cpu", "errors", "memory"}
    assert ((run["target_up"] == 0) == run["srv_rps"].isna()).all()  # gaps are marked


SLO = {"latency_p95_ms": 800.0, "error_rate": 0.02}


@pytest.mark.parametrize("p95_ms, error_rate, label", [
    (801.0, 0.0, 1), (800.0, 0.0, 0),              # above the SLO latency violates; at it does not
    (100.0, 0.03, 1), (100.0, 0.02, 0),            # the same for the error rate
    (900.0, 0.5, 1),
    (float("nan"), float("nan"), 0),               # a second without requests is not a violation
    (900.0, float("nan"), 1), (float("nan"), 0.5, 1),
])
def test_a_second_is_labelled_by_the_slo(p95_ms, error_rate, label):
    assert _slo_violation(p95_ms, error_rate, SLO) == label


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
    assert by_phase.loc["level-35", "latency_p95_ms"] < 1.3 * by_phase.loc["level-10", "latency_p95_ms"]
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
