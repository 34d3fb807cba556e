"""The synthetic run generator follows the metrics.csv contract (modeling/synthetic.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collector.runio import read_run
from collector.schema import COLUMNS
from lab_errors import BadInput
from modeling.synthetic import synthetic_run, synthetic_samples, write_run


def test_contract_columns_one_row_per_second_and_the_slo_rule():
    run = synthetic_run("mixed-closed", seed=5)
    assert list(run.columns) == COLUMNS
    assert run["elapsed_s"].tolist() == list(range(300))
    assert run["timestamp"].iloc[0] == "2026-01-01T00:00:00Z"
    slo = run.attrs["slo"]
    rule = (run["latency_p95_ms"] > slo["latency_p95_ms"]) | (run["error_rate"] > slo["error_rate"])
    assert (run["slo_violation"] == rule.astype(int)).all()          # NaN compares False: no data, no violation
    assert set(run["fault"]) == {"none", "latency", "cpu", "errors", "memory"}
    assert ((run["target_up"] == 0) == run["srv_rps"].isna()).all()  # gaps are marked


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
