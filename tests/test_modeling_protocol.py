"""The tuning protocol: the manifest's split, leave-one-scenario-out folds, a test split opened once."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest

from contract.errors import BadInput, LabError
from modeling.protocol import DatasetSplit, scenario_folds
from modeling.synthetic import synthetic_run, write_run

ROOT = Path(__file__).resolve().parent.parent
TRAIN, TEST_SCENARIO, SEEDS, TEST_SEED = ("spike-closed", "fault-latency-closed", "ramp-closed"), "mixed-closed", (1, 2), 2


def make_dataset(folder: Path, duration_s: int = 100) -> Path:
    """A dataset folder of synthetic runs with a preset-like split in its manifest (built by the real builder)."""
    from collector.dataset import build_dataset_files

    train, test = [], []
    for scenario in (*TRAIN, TEST_SCENARIO):
        for seed in SEEDS:
            frame = synthetic_run(scenario, seed=seed, duration_s=duration_s)
            run_id = frame.attrs["run_id"]
            write_run(frame, folder / "runs" / run_id)
            (test if scenario == TEST_SCENARIO or seed == TEST_SEED else train).append(run_id)
    split = {"preset": "test", "train": train, "test": test, "test_scenarios": [TEST_SCENARIO],
             "test_seeds": [TEST_SEED]}
    build_dataset_files(folder, extra_meta={"command": "test", "split": split})
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds"))


def test_the_split_comes_from_the_manifest_and_the_test_split_opens_once_per_figure(dataset):
    split = DatasetSplit.of(dataset)
    assert [p.name for p in split.train_dirs] == [f"synthetic-{s}-s1" for s in TRAIN]
    assert len(split.test_dirs) == 5
    train = split.train_runs()
    assert {r.attrs["scenario"] for r in train} == set(TRAIN)
    sealed = split.sealed_test()
    runs = sealed.open("forecast figures")
    assert {r.attrs["run_id"] for r in runs} == {p.name for p in split.test_dirs}
    with pytest.raises(LabError, match="already opened for 'forecast figures'"):
        sealed.open("forecast figures")
    assert [o["figure"] for o in sealed.opened] == ["forecast figures"]


def test_a_dataset_without_a_split_or_with_a_split_naming_other_runs_is_refused(tmp_path, dataset):
    import json

    write_run(synthetic_run("smoke-closed", seed=1), tmp_path / "plain" / "runs" / "a")
    from collector.dataset import build_dataset_files

    build_dataset_files(tmp_path / "plain")
    with pytest.raises(BadInput, match="holds no split"):
        DatasetSplit.of(tmp_path / "plain")
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    manifest["generation"]["split"] = {"train": ["nope"], "test": []}
    (tmp_path / "plain" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="split names run nope, which is not an included run"):
        DatasetSplit.of(tmp_path / "plain")


def test_leave_one_scenario_out_folds(dataset):
    folds = scenario_folds(DatasetSplit.of(dataset).train_runs())
    assert [f[0] for f in folds] == sorted(TRAIN)
    for left_out, fit, val in folds:
        assert {r.attrs["scenario"] for r in val} == {left_out}
        assert left_out not in {r.attrs["scenario"] for r in fit}


def _benchmark():
    """Load benchmarks/modeling.py as `python benchmarks/modeling.py` would find its `_paths`."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))     # _paths takes the folder off again
    try:
        spec = importlib.util.spec_from_file_location("benchmark_modeling", ROOT / "benchmarks" / "modeling.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = [p for p in sys.path if p != str(ROOT / "benchmarks")]
    return module


@pytest.mark.slow
def test_the_benchmark_never_reads_the_test_split_while_tuning(dataset, monkeypatch):
    """Every read of a test run, and the only opening of the test split, come after the last tuning fit."""
    import contract.runfolder
    import modeling.protocol
    from modeling.forecaster import LSTMForecaster

    split = DatasetSplit.of(dataset)
    test_dirs = {p.resolve() for p in split.test_dirs}
    events: list[tuple[str, str]] = []
    read_run, fit, open_ = contract.runfolder.read_run, LSTMForecaster.fit, modeling.protocol.SealedTest.open

    def spy_read(run_dir, *a, **kw):
        events.append(("test-read" if Path(run_dir).resolve() in test_dirs else "read", str(run_dir)))
        return read_run(run_dir, *a, **kw)

    def spy_fit(self, runs, *a, **kw):
        assert not {r.attrs.get("source") and Path(r.attrs["source"]).resolve() for r in runs} & test_dirs
        events.append(("fit", str(len(runs))))
        return fit(self, runs, *a, **kw)

    def spy_open(self, figure):
        events.append(("open", figure))
        return open_(self, figure)

    monkeypatch.setattr(contract.runfolder, "read_run", spy_read)
    monkeypatch.setattr(LSTMForecaster, "fit", spy_fit)
    monkeypatch.setattr(modeling.protocol.SealedTest, "open", spy_open)
    bench = _benchmark()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = bench.run_protocol(dataset, {"tiny": {"preset": "tiny", "window": 8, "horizon": 3, "epochs": 1}},
                                 log=lambda m: None)
    kinds = [k for k, _ in events]
    first_test = min(i for i, k in enumerate(kinds) if k in ("open", "test-read"))
    assert kinds.count("open") == 1 and kinds[first_test] == "open"
    assert kinds.count("fit") == len(TRAIN) + 1                # one per fold, then the final model
    assert max(i for i, k in enumerate(kinds) if k == "fit") < first_test
    assert [o["figure"] for o in out["protocol"]["test_opened"]] == [bench.TEST_FIGURES]
    assert out["protocol"]["threshold_note"].startswith("leave-one-scenario-out")
    result = out["result"]
    assert result["data"]["alarm_threshold"] == out["protocol"]["threshold"]
    assert {r for r in result["data"]["runs"]} == {p.name for p in split.test_dirs}


def test_the_regime_benchmark_tunes_on_training_runs_and_opens_the_test_split_once(dataset, monkeypatch):
    import contract.runfolder
    import modeling.protocol
    from modeling.regimes import RegimeModel

    test_dirs = {p.resolve() for p in DatasetSplit.of(dataset).test_dirs}
    events: list[str] = []
    read_run, fit, open_ = contract.runfolder.read_run, RegimeModel.fit, modeling.protocol.SealedTest.open

    def spy_read(run_dir, *a, **kw):
        events.append("test-read" if Path(run_dir).resolve() in test_dirs else "read")
        return read_run(run_dir, *a, **kw)

    def spy_fit(self, runs, *a, **kw):
        events.append("fit")
        return fit(self, runs, *a, **kw)

    def spy_open(self, figure):
        events.append("open")
        return open_(self, figure)

    monkeypatch.setattr(contract.runfolder, "read_run", spy_read)
    monkeypatch.setattr(RegimeModel, "fit", spy_fit)
    monkeypatch.setattr(modeling.protocol.SealedTest, "open", spy_open)
    bench = _benchmark()
    grid = {"a": {"span": 10}, "b": {"span": 20, "smoothing": "none"}}
    monkeypatch.setattr("modeling.regimes.DEFAULT_GRID", grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = bench.run_regimes(dataset, log=lambda m: None)
    first_test = min(i for i, k in enumerate(events) if k in ("open", "test-read"))
    assert events.count("open") == 1 and events[first_test] == "open"
    assert events.count("fit") == len(grid) * len(TRAIN) + 1         # every setting per fold, then the final fit
    assert max(i for i, k in enumerate(events) if k == "fit") < first_test
    assert out["protocol"]["regimes"]["chosen"] in grid and set(out["protocol"]["regimes"]["validation"]) == set(grid)
    assert {"regime_ari", "regime_recall"} == set(out["goals"]) and out["regimes"]["runs"] == len(test_dirs)
    assert "| state | truth share |" in "\n".join(bench.regime_markdown(out["regimes"], out["goals"]))
