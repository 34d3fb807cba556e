"""The LSTM forecaster: training, prediction, save/load, unsafe files, reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from contract.errors import BadInput, LabError
from modeling.forecaster import LSTMForecaster, check_model_file
from modeling.synthetic import synthetic_run

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(preset="tiny", window=8, horizon=3, units=4, epochs=2, seed=3)


def test_importing_the_modelling_code_does_not_import_tensorflow():
    code = ("import sys; import modeling.forecaster, modeling.evaluate, modeling.regimes, "
            "modeling.products, modeling.synthetic; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_unfitted_model_and_bad_parameters_are_refused():
    with pytest.raises(LabError, match="not fitted"):
        LSTMForecaster().predict([synthetic_run("smoke-closed")])
    with pytest.raises(BadInput, match="preset must be one of"):
        LSTMForecaster(preset="huge").resolved_params()
    with pytest.raises(BadInput, match="window must be at least 1"):
        LSTMForecaster(window=0).resolved_params()
    p = LSTMForecaster(preset="guide", epochs=3).resolved_params()
    assert (p["units"], p["layers"], p["window"], p["epochs"], p["scaler"]) == (50, 2, 60, 3, "minmax")


@pytest.fixture(scope="module")
def runs():
    return [synthetic_run(s, seed=1, duration_s=90) for s in ("spike-closed", "fault-latency-closed", "fault-errors-closed")]


@pytest.fixture(scope="module")
def fitted(runs):
    epochs = []
    model = LSTMForecaster(**TINY).fit(runs, on_epoch=lambda e, n, logs: epochs.append((e, n, sorted(logs))))
    model.epoch_calls = epochs
    return model


@pytest.mark.slow
def test_fit_learns_attributes_and_reports_each_epoch(fitted):
    assert [e[:2] for e in fitted.epoch_calls] == [(1, 2), (2, 2)]
    assert "loss" in fitted.epoch_calls[0][2]
    assert fitted.columns_[-1] == "missing" and fitted.key_metrics_[0] == "latency_p95_window_ms"
    # MASE's scale: the training runs' in-sample one-step naive MAE of each target.
    assert set(fitted.target_scale_) == set(fitted.key_metrics_) and fitted.target_scale_["rps"] > 0
    assert fitted.n_features_in_ == len(fitted.columns_) and fitted.epochs_trained_ == 2
    assert fitted.training_summary_["train_windows"] > 0 and len(fitted.history_["loss"]) == 2
    assert fitted.get_params()["units"] == 4                     # hyper-parameters stay as given


@pytest.mark.slow
def test_scaler_statistics_come_from_the_fitting_runs_only(fitted, runs):
    fit_ids = {r["run_id"] for r in fitted.training_summary_["runs"]} - set(fitted.training_summary_["validation_runs"])
    fit_runs = [r for r in runs if r.attrs["run_id"] in fit_ids]
    assert len(fit_runs) == 2                                    # one of three held out for validation
    i = fitted.scaler_.columns.index("cpu_percent")
    expected = np.nanmean(np.concatenate([r["cpu_percent"].to_numpy() for r in fit_runs]))
    assert fitted.scaler_.center[i] == pytest.approx(expected, rel=1e-3)


@pytest.mark.slow
def test_predictions_have_the_contract_shapes(fitted, runs):
    pred = fitted.predict(runs[:1])
    n = 90 - 8 - 3 + 1
    assert pred.forecast.shape[1:] == (3, 4) and pred.forecast.shape[0] <= n
    assert ((pred.probability >= 0) & (pred.probability <= 1)).all()
    assert (pred.forecast[..., 1] <= 1).all() and (pred.forecast >= 0).all()
    forecast, prob = fitted.predict_one(runs[0].iloc[:20])
    assert forecast.shape == (3, 4) and 0 <= prob <= 1
    with pytest.raises(BadInput, match="online window needs at least 8 rows, got 5"):
        fitted.predict_one(runs[0].iloc[:5])
    with pytest.raises(BadInput, match="column 'cpu_percent' missing"):
        fitted.predict(runs[0].drop(columns=["cpu_percent"]))
    with pytest.raises(BadInput, match=r"needs at least 11 rows \(window 8 \+ horizon 3\), got 10"):
        fitted.predict(runs[0].iloc[:10])


@pytest.mark.slow
def test_save_load_round_trip_gives_identical_predictions(fitted, runs, tmp_path):
    folder = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "params.json"]
    params = json.loads((folder / "params.json").read_text())
    assert params["columns"] == fitted.columns_ and params["scaler"]["columns"] == fitted.columns_
    again = LSTMForecaster.load(folder)
    a, b = fitted.predict(runs), again.predict(runs)
    np.testing.assert_array_equal(a.forecast, b.forecast)
    np.testing.assert_array_equal(a.probability, b.probability)
    window = runs[1].iloc[30:38]
    f1, p1 = fitted.predict_one(window)
    f2, p2 = again.predict_one(window)
    np.testing.assert_array_equal(f1, f2)
    assert p1 == p2
    # The compiled online path agrees with the batch path on the same window.
    np.testing.assert_allclose(f1, fitted.predict(runs[1].iloc[30:41]).forecast[0], rtol=1e-4, atol=1e-4)


def _rewrite_config(path: Path, edit) -> None:
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


@pytest.mark.slow
def test_model_files_with_unsafe_layers_are_refused(fitted, tmp_path):
    import keras

    from contract.runfolder import sha256_file

    folder = fitted.save(tmp_path / "model")
    # An attacker swaps in a model with a Lambda layer and fixes the checksum too.
    evil = keras.Sequential([keras.Input((8, fitted.n_features_in_)), keras.layers.Lambda(lambda x: x * 2)])
    evil.save(folder / "model.keras")
    params = json.loads((folder / "params.json").read_text())
    params["model_sha256"] = sha256_file(folder / "model.keras")
    (folder / "params.json").write_text(json.dumps(params))
    with pytest.raises(BadInput, match="refused: contains a Lambda layer"):
        LSTMForecaster.load(folder)

    custom = fitted.save(tmp_path / "custom")

    def inject(config):
        layer = config["config"]["layers"][-1]
        layer["class_name"], layer["module"], layer["registered_name"] = "Backdoor", "evil.layers", "evil>Backdoor"

    _rewrite_config(custom / "model.keras", inject)
    with pytest.raises(BadInput, match="unknown or custom object evil.layers.Backdoor"):
        check_model_file(custom / "model.keras")
    with pytest.raises(BadInput, match="refused"):
        LSTMForecaster.load(custom)

    swapped = fitted.save(tmp_path / "swapped")
    (swapped / "model.keras").write_bytes(b"PK\x05\x06" + b"\0" * 18)   # an empty zip
    with pytest.raises(BadInput, match="not a Keras model archive"):
        LSTMForecaster.load(swapped)


@pytest.mark.slow
def test_same_seed_gives_the_same_model(runs, fitted):
    again = LSTMForecaster(**TINY).fit(runs)
    np.testing.assert_array_equal(again.predict(runs[:1]).forecast, fitted.predict(runs[:1]).forecast)


@pytest.mark.slow
def test_the_plan_is_the_only_known_future_and_training_and_serving_agree(runs):
    with pytest.raises(BadInput, match="only the plan .* is known in advance"):
        LSTMForecaster(**TINY, known_future=["users"], validation_fraction=0).fit(runs[:1])
    model = LSTMForecaster(**TINY, known_future=["planned_users"], validation_fraction=0).fit(runs[:1])
    assert len(model.model_.inputs) == 2
    plan = runs[0]["planned_users"].iloc[20:23].to_numpy()
    forecast, _ = model.predict_one(runs[0].iloc[12:20], future=plan)
    assert forecast.shape == (3, 4)
    with pytest.raises(BadInput, match="trained on the plan ahead: it needs the next 3 seconds of planned_users"):
        model.predict_one(runs[0].iloc[12:20])
    # future="hold": trained on the plan of now repeated, which is what serving feeds without a plan.
    held = LSTMForecaster(**TINY, known_future=["planned_users"], future="hold", validation_fraction=0).fit(runs[:1])
    w = held.windows(runs[:1])
    assert (w.future[:, :, 0] == w.x[:, -1:, w.columns.index("planned_users")]).all()
    now = runs[0].iloc[:20]            # the history before the window too: the RSS slope reads 30 s
    served = held.predict_one(now)
    given = held.predict_one(now, future=[now["planned_users"].iloc[-1]] * 3)
    np.testing.assert_array_equal(served[0], given[0])
    batch = held.predict(runs[:1])
    i = int(np.flatnonzero(batch.windows.t == 19)[0])
    np.testing.assert_allclose(batch.forecast[i], served[0], rtol=1e-4)


@pytest.mark.slow
def test_a_validation_without_violations_does_not_keep_a_silent_threshold(recwarn):
    calm = [synthetic_run("smoke-closed", seed=s, duration_s=20) for s in (1, 2, 3)]
    for r in calm:
        r["slo_violation"] = 0
    model = LSTMForecaster(**TINY).fit(calm)
    assert "no SLO-violation episode in the validation windows" in model.threshold_note_
    assert any("alarm threshold" in str(w.message) for w in recwarn)
    assert model.training_summary_["alarm_threshold_note"] == model.threshold_note_


# ---------------------------------------------------------------- residual base, quantile, calibration


def test_the_residual_base_is_the_chosen_baseline_of_the_scaled_targets(fitted, runs):
    from types import SimpleNamespace

    from modeling.baselines import ewma, persistence

    w = fitted.windows(runs[:1])
    x = fitted.scaler_.transform(w.x, fitted.columns_)
    key = x[:, :, [fitted.columns_.index(c) for c in fitted.key_metrics_]]
    choice = fitted.params_["base_choice"]
    assert np.shape(choice) == (3, 4) and {n for row in choice for n in row} <= {"ewma", "median", "last"}
    # An all-zero residual (an untrained head) decodes to each horizon's and metric's chosen
    # baseline, in scaled (log) units.
    expected = {"ewma": ewma(key, 1, alpha=fitted.params_["base_alpha"]), "last": persistence(key, 1),
                "median": np.median(key[:, -8:, :], axis=1, keepdims=True)}
    got = fitted._base_scaled(x)
    assert got.shape == (len(w), 3, 4)
    for h, row in enumerate(choice):
        for j, name in enumerate(row):
            np.testing.assert_allclose(got[:, h, j], expected[name][:, 0, j], rtol=1e-9)

    # "auto" picks, per metric, what forecasts the training windows best: the last value for a
    # random walk, a smoothed level for noise around a constant.
    rng = np.random.default_rng(5)
    n, W, H = 400, 8, 3
    walk = np.cumsum(rng.normal(0, 1, (n, W + H)), axis=1)
    level = rng.normal(0, 1, (n, W + H))
    series = np.stack([walk, level, walk, level], axis=-1)          # (n, W + H, 4) in scaled units
    cols = fitted.columns_
    xs = np.zeros((n, W, len(cols)))
    for j, c in enumerate(fitted.key_metrics_):
        xs[:, :, cols.index(c)] = series[:, :W, j]
    raw_x = fitted.scaler_.inverse_transform(xs, cols)
    raw_y = fitted.scaler_.inverse_transform(series[:, W:, :], fitted.key_metrics_)
    picked = fitted._choose_base(SimpleNamespace(x=raw_x, y=raw_y))
    for row in picked:                                   # every horizon
        assert row[0] == row[2] == "last" and row[1] in ("ewma", "median") and row[3] in ("ewma", "median")

    assert LSTMForecaster(base="median").resolved_params()["base"] == "median"
    with pytest.raises(BadInput, match="base must be one of"):
        LSTMForecaster(base="mean").resolved_params()
    with pytest.raises(BadInput, match="quantile must be 0"):
        LSTMForecaster(quantile=0.3).resolved_params()


@pytest.mark.slow
def test_the_upper_head_learns_a_higher_quantile_than_the_median(runs):
    model = LSTMForecaster(**{**TINY, "epochs": 8, "learning_rate": 1e-2}).fit(runs)
    pred = model.predict(runs)
    assert pred.upper is not None and pred.upper.shape == pred.forecast.shape
    lat = 0                                                 # latency_p95_window_ms
    assert np.mean(pred.upper[..., lat] > pred.forecast[..., lat]) > 0.8
    one = model.predict_filled(model.windows(runs[:1]).x[0])
    assert one.upper.shape == (3, 4) and one.upper[:, lat].mean() > one.forecast[:, lat].mean()


def test_platt_scaling_recovers_a_known_miscalibration():
    from modeling.forecaster import platt

    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 20000)
    logit = np.log(p / (1 - p))
    truth = rng.uniform(size=p.size) < 1 / (1 + np.exp(-(0.5 * logit - 1.0)))   # over-confident, biased
    cal, note = platt(p, truth)
    assert cal["a"] == pytest.approx(0.5, abs=0.05) and cal["b"] == pytest.approx(-1.0, abs=0.05)
    assert "20000 validation windows" in note
    assert platt(p, np.zeros(p.size))[0] is None             # one class: nothing to fit


@pytest.mark.slow
def test_calibration_is_kept_and_applied_after_a_round_trip(fitted, runs, tmp_path):
    assert fitted.training_summary_["calibration_note"]
    again = LSTMForecaster.load(fitted.save(tmp_path / "m"))
    assert again.calibration_ == fitted.calibration_
    assert again.calibration_note_ == fitted.calibration_note_     # evaluate reports it for a loaded model
    w = fitted.windows(runs[:1])
    raw = fitted._raw_predict(w, calibrated=False)[1]
    np.testing.assert_allclose(again.predict(w).probability, fitted._calibrated(raw), rtol=1e-6)
    if fitted.calibration_ is not None:
        assert not np.allclose(fitted._calibrated(raw), raw)


# ---------------------------------------------------------------- the online ring buffer


def test_the_ring_buffer_fills_gaps_as_the_offline_rule_does():
    import pandas as pd

    from modeling.data import fill_gaps
    from modeling.online import OnlineWindow

    rng = np.random.default_rng(1)
    values = rng.normal(10, 1, (60, 3))
    values[10:13, 0] = np.nan                       # a 3 s gap: carried forward
    values[20, 1] = np.inf                          # non-finite counts as missing
    values[40:50, 2] = np.nan                       # a 10 s gap: only its first 5 s are carried online
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    online = OnlineWindow(["a", "b", "c"], window=8, max_gap_s=5)
    for i, row in enumerate(frame.to_dict("records")):
        online.push(row)
        if i + 1 >= 8 and not 39 <= i <= 58:          # windows that do not touch the long gap
            # Training cuts its windows from the whole run through the gap rule: the same values.
            np.testing.assert_array_equal(online.values(), fill_gaps(frame.iloc[:i + 1], ["a", "b", "c"], 5)[-8:])
        if i == 44:
            v = online.values()
            assert (v[-5:, 2] == values[39, 2]).all() and (v[-5:, -1] == 1).all()
        if i == 46:
            assert np.isnan(online.values()[-2:, 2]).all()            # past max_gap_s: not filled
    online.push({"a": 1, "b": 2, "c": 3, "target_up": 0})
    assert online.values()[-1, -1] == 1                               # the target down: flagged missing


@pytest.mark.slow
def test_the_online_path_agrees_with_predict_one(fitted, runs):
    from modeling.online import OnlineWindow

    columns = [c for c in fitted.columns_ if c != "missing"]
    from modeling.data import pooled_targets

    online = OnlineWindow(columns, 8, 5)
    for row in pooled_targets(runs[1]).iloc[:38].to_dict("records"):
        online.push(row)
    out = fitted.predict_filled(online.values())
    f, p = fitted.predict_one(runs[1].iloc[:38])
    np.testing.assert_allclose(out.forecast, f, rtol=1e-6)
    assert out.probability == pytest.approx(p, rel=1e-6)


@pytest.mark.slow
def test_the_incident_head_is_trained_when_runs_hold_incidents_and_scored_by_episode(tmp_path):
    from modeling.evaluate import evaluate

    runs = []
    for seed in (1, 2, 3, 4):
        r = synthetic_run("fault-memory-closed", seed=seed, duration_s=150)
        r["incident"] = "none"
        r.loc[100 + 5 * seed, "incident"] = "worker_killed"      # the watchdog's kill, late in the leak
        runs.append(r)
    model = LSTMForecaster(**{**TINY, "incident_horizon": 40}).fit(runs[:3])
    assert model.params_["incident_head"] and model.training_summary_["train_incident_share"] > 0
    assert "incident" in model.model_.output_names
    pred = model.predict(runs[3:])
    assert pred.incident.shape == pred.probability.shape and ((pred.incident >= 0) & (pred.incident <= 1)).all()
    again = LSTMForecaster.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(again.predict(runs[3:]).incident, pred.incident, rtol=1e-6)
    assert again.incident_threshold_ == model.incident_threshold_
    result = evaluate(model, runs[3:], n_boot=50)
    inc = result["incident_warning"]
    assert inc["horizon_s"] == 40 and inc["lstm"]["episodes"] == 1 and inc["always_on"]["detected"] == 1
    assert "incident_lead" in result["goals"]
    # No incident in the training runs: no head, and the summary says why.
    plain = LSTMForecaster(**TINY).fit([synthetic_run("spike-closed", seed=1, duration_s=60)] * 1)
    assert not plain.params_["incident_head"] and plain.predict([synthetic_run("spike-closed", seed=2, duration_s=60)]).incident is None
    assert "no incident" in plain.training_summary_["incident_threshold_note"]
