"""Your own metrics (issue 15): a NAB-format CSV imported with --map and --nab-windows, trained
with --target on its one column, evaluated on another server's series, and the errors in between."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from collector.importer import import_csv
from contract.errors import BadInput
from modeling.data import load_runs, resolve_targets

pytestmark = pytest.mark.slow   # trains tiny models

START = 1_396_310_400            # 2014-04-01T00:00:00Z
STEP = 300                       # NAB's AWS CloudWatch series: one sample every 5 minutes


def nab_series(folder, name, n=240, seed=0, anomalies=(150,)):
    """A NAB-format CSV (timestamp,value) of a daily CPU cycle with spikes, and its windows entry."""
    from datetime import datetime, timezone

    import numpy as np

    rng = np.random.default_rng(seed)
    stamp = [datetime.fromtimestamp(START + i * STEP, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]
    value = 40 + 10 * np.sin(np.arange(n) * 2 * math.pi / 288) + rng.normal(0, 1, n)
    for a in anomalies:
        value[a:a + 6] += 40
    path = folder / name
    path.write_text("timestamp,value\n" + "".join(f"{t},{v:.3f}\n" for t, v in zip(stamp, value)))
    return path, [[stamp[a - 8] + ".000000", stamp[a + 8] + ".000000"] for a in anomalies]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Two servers' series, imported with their NAB windows and value mapped to cpu_percent."""
    tmp = tmp_path_factory.mktemp("own")
    a, wa = nab_series(tmp, "ec2_cpu_utilization_aaaaaa.csv", seed=1, anomalies=(60, 205))
    b, wb = nab_series(tmp, "ec2_cpu_utilization_bbbbbb.csv", seed=2, anomalies=(90, 200))
    labels = tmp / "combined_windows.json"
    labels.write_text(json.dumps({f"realAWSCloudwatch/{a.name}": wa, f"realAWSCloudwatch/{b.name}": wb}))
    runs = {p.name: import_csv(p, timestamp_col="timestamp", out_dir=tmp / "runs",
                               column_map={"value": "cpu_percent"}, nab_windows=labels) for p in (a, b)}
    return tmp, runs[a.name], runs[b.name]


def _lab(*args):
    from lab import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_default_targets_on_a_cpu_series_is_one_line_listing_the_columns(imported):
    _, server_a, _ = imported
    with pytest.raises(BadInput) as info:
        resolve_targets(load_runs([server_a]))
    message = str(info.value)
    assert "no values in the lab's key metric latency_p95_window_ms" in message
    assert "--target cpu_percent" in message and "(numeric columns with values: cpu_percent)" in message


def test_train_target_missing_column_exits_2_and_lists_what_exists(imported):
    tmp, server_a, _ = imported
    result = _lab("train", server_a, "--target", "cpu_percent,memory", "--preset", "tiny", "--out", tmp / "m-bad", "-q")
    assert result.exit_code == 2, result.output
    assert "--target: no column 'memory'" in result.output
    assert "numeric columns with values: cpu_percent" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp / "m-bad").exists()
    result = _lab("train", server_a, "--preset", "tiny", "--out", tmp / "m-bad", "-q")
    assert result.exit_code == 2 and "name the columns to forecast" in result.output


def test_train_target_on_one_column_then_evaluate_on_another_server(imported):
    tmp, server_a, server_b = imported
    out = tmp / "model"
    result = _lab("train", server_a, "--target", "cpu_percent", "--preset", "tiny", "--window", "24",
                  "--horizon", "3", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    # Rows are 5 minutes apart: 24 rows are two hours, 3 rows a quarter of an hour.
    assert "window 24 rows (2 h), horizon 3 rows (15 min) (rows 300 s apart)" in result.output
    meta = json.loads((out / "train.json").read_text())
    assert meta["targets"] == ["cpu_percent"] and meta["interval_s"] == 300
    params = json.loads((out / "forecaster" / "params.json").read_text())
    assert params["key_metrics"] == ["cpu_percent"]
    # The NAB label is known after the fact (its window opens before the anomaly): never an input.
    assert "slo_violation" not in params["columns"] and "cpu_percent" in params["columns"]

    result = _lab("evaluate", out, server_b, "--out", tmp / "metrics-b.json")
    assert result.exit_code == 0, result.output
    assert "forecast 3 rows (15 min) ahead" in result.output
    metrics = json.loads((tmp / "metrics-b.json").read_text())
    assert metrics["data"]["runs"] == [server_b.name] and metrics["data"]["key_metrics"] == ["cpu_percent"]
    assert metrics["data"]["interval_s"] == 300 and metrics["data"]["slo_columns"] == []
    for model in ("lstm", "persistence", "moving_average", "ewma", "linear", "auto_ets"):
        assert len(metrics["forecast"][model]["cpu_percent"]["relmae"]) == 3
    # The warning head and the label-based alerts are scored on server b's two NAB windows.
    ew = metrics["early_warning"]
    assert ew["lstm"]["episodes"] == 2 and "always_on" in ew
    assert "lstm_forecast" not in ew              # no SLO to apply to a CPU forecast
    assert "reactive" not in ew                   # it would read the NAB window itself
    assert ew["always_on"]["detected"] == 2

    result = _lab("evaluate", out, server_a)
    assert result.exit_code == 2 and "was used for training" in result.output


def test_evaluate_refuses_runs_of_another_interval(imported, tmp_path):
    tmp, server_a, _ = imported
    out = tmp / "model-i"
    assert _lab("train", server_a, "--target", "cpu_percent", "--preset", "tiny", "--out", out, "-q").exit_code == 0
    other, _ = nab_series(tmp_path, "minutely.csv", n=300)
    minutely = import_csv(other, timestamp_col="timestamp", interval_s=60, out_dir=tmp_path / "runs",
                          column_map={"value": "cpu_percent"})
    result = _lab("evaluate", out, minutely)
    assert result.exit_code == 2 and "rows 60 s apart" in result.output and "--interval 300" in result.output
