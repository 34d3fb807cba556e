"""compare-autoscale's pairing and paired bootstrap intervals, on canned results (no processes)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workflows import compare


def rows(values: dict[str, list[float]], metric: str = "slo_violation_s") -> list[dict]:
    out = []
    for mode, xs in values.items():
        for seed, x in enumerate(xs, start=1):
            out.append({"seed": seed, "mode": mode, metric: x, "worker_seconds": 100.0})
    return out


def test_paired_difference_and_interval():
    results = rows({"reactive": [10, 12, 8, 14, 11], "predictive": [4, 5, 3, 6, 5]})
    d = compare.paired(results, "slo_violation_s")
    assert d["n"] == 5 and d["mean_diff"] == pytest.approx(-6.4)
    assert d["low"] <= -6.4 <= d["high"] and d["high"] < 0      # every pair gained: the interval excludes 0
    assert d["relative"] == pytest.approx(23 / 55 - 1)


def test_pairing_is_by_seed_not_by_position():
    # The same values, but predictive's seeds listed in another order: a pair is one seed's two runs.
    results = rows({"reactive": [10, 20, 30]}) + [
        {"seed": s, "mode": "predictive", "slo_violation_s": v, "worker_seconds": 100.0}
        for s, v in ((3, 29), (1, 9), (2, 19))]
    d = compare.paired(results, "slo_violation_s")
    assert d["mean_diff"] == pytest.approx(-1.0) and d["low"] == d["high"] == pytest.approx(-1.0)


def test_an_interval_straddling_zero_means_the_goal_is_not_met():
    results = rows({"reactive": [10, 2, 12, 3, 9], "predictive": [2, 9, 1, 8, 0]})
    d = compare.paired(results, "slo_violation_s")
    assert d["low"] < 0 < d["high"]
    assert "goal not met" in compare.verdict(results)
    good = rows({"reactive": [10, 12, 8, 14, 11], "predictive": [4, 5, 3, 6, 5]})
    assert "goal met" in compare.verdict(good)


def test_compare_runs_every_mode_on_every_seed_in_rotating_order(monkeypatch, tmp_path):
    calls = []

    def fake_record(opts, *, autoscale, model_dir, **kwargs):
        calls.append((opts.seed, autoscale, model_dir))
        summary = {"slo_violation_s": 1, "p95_ms": 1.0, "p99_ms": 1.0, "failures": 0, "requests": 1,
                   "worker_seconds": 60.0, "autoscale_actions": 0}
        return SimpleNamespace(summary=summary, run_dir=tmp_path / f"{opts.seed}-{autoscale}")

    monkeypatch.setattr(compare, "record_run", fake_record)
    monkeypatch.setattr(compare, "is_model_folder", lambda path: True)
    results = compare.compare_autoscale("scale-spike", tmp_path, out=tmp_path, seeds=[1, 2, 3])
    assert [(s, m) for s, m, _ in calls] == [
        (1, "off"), (1, "reactive"), (1, "predictive"),
        (2, "reactive"), (2, "predictive"), (2, "off"),
        (3, "predictive"), (3, "off"), (3, "reactive")]
    assert all((model is not None) == (mode == "predictive") for _, mode, model in calls)
    assert [(r["seed"], r["mode"]) for r in results][:3] == [(1, "off"), (1, "reactive"), (1, "predictive")]
    means = compare.mode_means(results)
    assert [m["mode"] for m in means] == ["off", "reactive", "predictive"] and means[0]["worker_seconds"] == 60.0


def test_plot_draws_every_mode_from_the_run_folders(tmp_path):
    import pandas as pd

    results = []
    for mode in compare.MODES:
        for seed in (1, 2):
            run = tmp_path / f"{mode}-{seed}"
            run.mkdir()
            pd.DataFrame({"elapsed_s": range(5), "target_workers": [2, 2, 3, 3, 2],
                          "latency_p95_window_ms": [1900.0, 2600, 3000, 2000, 1900]}).to_csv(run / "metrics.csv")
            results.append({"seed": seed, "mode": mode, "run_dir": str(run)})
    path = compare.plot_modes("scale-spike", results, tmp_path / "plot.png", 2500.0)
    assert path.exists() and path.stat().st_size > 10_000


def test_bad_options_are_refused_before_anything_starts(tmp_path):
    from contract.errors import BadInput

    with pytest.raises(BadInput, match="--seeds"):
        compare.check_comparison(tmp_path, 0)
    with pytest.raises(BadInput, match="--scale-metric"):
        compare.check_comparison(tmp_path, 2, metric="memory")
    with pytest.raises(BadInput, match="--model"):
        compare.check_comparison(tmp_path / "none", 2)
