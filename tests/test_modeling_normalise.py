"""Per-window normalisation (`normalise`): a model trained on one level serves the same dynamics at
another, causally (a window's frame reads its own rows only), online as offline, saved and loaded;
models saved before the option load and predict as global ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from contract.errors import BadInput
from modeling.forecaster import LSTMForecaster, window_frame

SETTINGS = dict(preset="tiny", window=16, horizon=4, units=8, epochs=6, learning_rate=1e-2, seed=0,
                key_metrics=["cpu_percent"])


def cycle(level: float, n: int, seed: int) -> pd.DataFrame:
    """A server's CPU: a 16-row cycle with noise around `level` (the dynamics do not depend on it)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame({"cpu_percent": level + 3 * np.sin(2 * np.pi * t / 16) + rng.normal(0, 0.3, n),
                          "slo_violation": 0})
    frame.attrs.update(run_id=f"level{level:g}-{seed}", scenario=f"level{level:g}")
    return frame


def mae(model: LSTMForecaster, runs: list[pd.DataFrame]) -> float:
    pred = model.predict(runs)
    return float(np.abs(pred.forecast - pred.windows.y).mean())


@pytest.fixture(scope="module")
def train_runs():
    return [cycle(10, 320, 1), cycle(10, 320, 2)]


@pytest.fixture(scope="module")
def models(train_runs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {mode: LSTMForecaster(**SETTINGS, normalise=mode).fit(train_runs) for mode in ("global", "level", "window")}


def test_a_bad_normalise_is_one_line_and_exit_2(tmp_path):
    from lab import app
    from tests.runfactory import make_run

    with pytest.raises(BadInput, match=r"^--normalise: must be global, level, window or auto, got 'run'$"):
        LSTMForecaster(normalise="run").resolved_params()
    assert LSTMForecaster().resolved_params()["normalise"] == "global"          # the default: today's model
    run = make_run(tmp_path / "runs", 60)
    result = CliRunner().invoke(app, ["train", str(run), "--out", str(tmp_path / "m"), "--normalise", "median", "-q"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: --normalise: must be global, level, window or auto, got 'median'"), lines
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


def test_a_window_frame_reads_the_window_alone():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 2, (3, 10, 3))
    x[..., -1] = rng.integers(0, 2, (3, 10))                     # the missing flag
    x[1, 4, 0] = np.nan                                           # a cell the gap rule left empty
    level, spread = window_frame(x, "window")
    np.testing.assert_allclose(level[2, 0, :2], np.median(x[2], axis=0)[:2])
    np.testing.assert_allclose(spread[2, 0, :2], np.maximum(np.std(x[2], axis=0)[:2], 0.1))
    assert level[1, 0, 0] == pytest.approx(np.median(np.delete(x[1, :, 0], 4)))
    assert (level[..., -1] == 0).all() and (spread[..., -1] == 1).all()      # the flag is not normalised
    # One window's frame does not change when another window (its future, or its past) does.
    y = x.copy()
    y[0] += 100
    y[2] *= 3
    np.testing.assert_array_equal(window_frame(y, "window")[0][1], level[1])
    flat = np.ones((1, 10, 2))
    assert (window_frame(flat, "window")[1][..., 0] == 0.1).all()           # a flat window: the floor
    assert (window_frame(x, "level")[1] == 1).all()


@pytest.mark.slow
def test_a_model_trained_at_one_level_serves_the_same_dynamics_at_another(models):
    shifted, same = [cycle(70, 200, 9)], [cycle(10, 200, 9)]
    errors = {mode: (mae(m, same), mae(m, shifted)) for mode, m in models.items()}
    for mode in ("level", "window"):
        # Relative to each window's level, a server at 70% looks like one at 10%: the same error.
        assert errors[mode][1] == pytest.approx(errors[mode][0], rel=0.05), errors
        # The training runs' scaler puts 70% twenty deviations out, where the network means nothing.
        assert errors[mode][1] < 0.5 * errors["global"][1], errors
    for m in models.values():
        assert m.training_summary_["normalise"] == m.params_["normalise"]
        assert m.training_summary_["validation_score"] > 0            # scored on validation, for "auto"


@pytest.mark.slow
def test_forecasts_never_read_rows_after_now(models):
    run = cycle(40, 120, 4)
    later = run.copy()
    later.attrs = dict(run.attrs)
    later.loc[80:, "cpu_percent"] += 50                           # the rows from 80 on change
    for m in models.values():
        a, b = m.predict([run]), m.predict([later])
        before = a.windows.t < 80                                 # windows whose "now" is before row 80
        assert before.any() and (~before).any()
        np.testing.assert_array_equal(a.forecast[before], b.forecast[before])


@pytest.mark.slow
def test_the_monitor_ring_buffer_gives_what_evaluate_gives(models):
    from modeling.online import OnlineWindow

    run = cycle(55, 60, 5)
    run.loc[30:31, "cpu_percent"] = np.nan                        # a short gap, filled by the same rule
    for mode in ("level", "window"):
        m = models[mode]
        offline = m.predict([run])
        online = OnlineWindow(["cpu_percent"], int(m.params_["window"]), int(m.params_["max_gap_s"]))
        got = {}
        for i, row in enumerate(run.to_dict("records")):
            online.push(row)
            if online.ready:
                got[i] = m.predict_filled(online.values())
        for k, t in enumerate(offline.windows.t):
            np.testing.assert_allclose(got[int(t)].forecast, offline.forecast[k], rtol=1e-5, atol=1e-6)
            assert got[int(t)].probability == pytest.approx(offline.probability[k], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_the_choice_round_trips_and_older_models_load_as_global(models, tmp_path):
    run = [cycle(30, 80, 6)]
    for mode, m in models.items():
        folder = m.save(tmp_path / mode)
        meta = json.loads((folder / "params.json").read_text())
        assert meta["params"]["normalise"] == mode
        again = LSTMForecaster.load(folder)
        assert again.params_["normalise"] == mode
        np.testing.assert_allclose(again.predict(run).forecast, m.predict(run).forecast, rtol=1e-6)
    # A model saved before the option: no "normalise" anywhere in its params.json.
    folder = tmp_path / "global"
    meta = json.loads((folder / "params.json").read_text())
    del meta["params"]["normalise"], meta["init_params"]["normalise"]
    (folder / "params.json").write_text(json.dumps(meta))
    old = LSTMForecaster.load(folder)
    assert "normalise" not in old.params_
    np.testing.assert_array_equal(old.predict(run).forecast, models["global"].predict(run).forecast)


@pytest.mark.slow
def test_auto_keeps_the_lowest_validation_score(train_runs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LSTMForecaster(**{**SETTINGS, "epochs": 2}, normalise="auto").fit(train_runs)
    scores = m.training_summary_["normalise_scores"]
    assert set(scores) == {"global", "level", "window"} and m.params_["normalise"] == min(scores, key=scores.get)
    assert m.training_summary_["validation_score"] == scores[m.params_["normalise"]]
    assert m.get_params()["normalise"] == "auto"


@pytest.mark.slow
def test_train_normalise_is_stored_in_the_model_and_printed(tmp_path):
    from lab import app
    from tests.runfactory import make_run

    run = make_run(tmp_path / "runs", 80)
    out = tmp_path / "m"
    result = CliRunner().invoke(app, ["train", str(run), "--out", str(out), "--preset", "tiny", "--epochs", "1",
                                      "--normalise", "window", "-q"])
    assert result.exit_code == 0, result.output
    assert "normalise: window" in result.output
    meta = json.loads((out / "forecaster" / "params.json").read_text())
    assert meta["params"]["normalise"] == "window" and meta["training"]["normalise"] == "window"
    assert json.loads((out / "train.json").read_text())["params"]["normalise"] == "window"


@pytest.mark.slow
def test_a_plan_input_takes_its_columns_frame_online_as_offline():
    import warnings

    from modeling.data import pooled_targets
    from modeling.online import OnlineWindow
    from modeling.synthetic import synthetic_run

    runs = [pooled_targets(synthetic_run(s, seed=1, duration_s=90)) for s in ("spike-closed", "ramp-closed")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LSTMForecaster(preset="tiny", known_future=["planned_users"], future="hold", normalise="window").fit(runs)
    offline = m.predict(runs[1:])
    online = OnlineWindow([c for c in m.columns_ if c != "missing"], int(m.params_["window"]), 5)
    at = {int(t): k for k, t in enumerate(offline.windows.t)}
    for i, row in enumerate(runs[1].to_dict("records")):
        online.push(row)
        if i in at:
            np.testing.assert_allclose(m.predict_filled(online.values()).forecast, offline.forecast[at[i]],
                                       rtol=1e-5, atol=1e-6)
