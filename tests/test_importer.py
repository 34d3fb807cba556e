"""import-csv: messy external CSVs become run folders that read back under the contract."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from collector.importer import import_csv, sanitize
from contract.runfolder import is_complete_run, read_run
from contract.schema import COLUMNS
from contract.errors import BadInput

START = 1_396_310_400  # 2014-04-01T00:00:00Z, NAB's era


def write(path, text):
    path.write_text(text.lstrip())
    return path


def nab_rows(n, step=300, skip=(), start=START):
    from datetime import datetime, timezone

    rows = []
    for i in range(n):
        if i in skip:
            continue
        stamp = datetime.fromtimestamp(start + i * step, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((stamp, float(i)))
    return rows


def test_nab_file_unsorted_duplicated_and_gapped(tmp_path):
    rows = nab_rows(30, skip={10, 11})
    rows = rows[15:] + rows[:15]                   # unsorted
    rows.insert(3, (rows[20][0], -1.0))             # a duplicate before the original...
    rows.append((rows[5][0], 99.0))                 # ...and one after it: last one wins
    text = "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows)
    run_dir = import_csv(write(tmp_path / "nab.csv", text), timestamp_col="timestamp", out_dir=tmp_path / "runs")

    assert is_complete_run(run_dir)
    run = read_run(run_dir)
    frame = run.frame
    assert list(frame.columns) == COLUMNS + ["value"]
    assert run.meta["interval_s"] == 300 and run.meta["source"]["interval_inferred"]
    assert len(frame) == 30 and frame["elapsed_s"].tolist() == [i * 300 for i in range(30)]
    assert frame["timestamp"].iloc[0].isoformat() == "2014-04-01T00:00:00+00:00"
    assert frame["timestamp"].is_monotonic_increasing
    # Gap rows exist, are empty and not up; the rest are up.
    assert frame.loc[[10, 11], "target_up"].tolist() == [0, 0]
    assert frame.loc[[10, 11], "value"].isna().all()
    assert frame["target_up"].sum() == 28
    dup_late = int(rows[5][0][11:13]) * 12 + int(rows[5][0][14:16]) // 5
    assert frame.loc[dup_late, "value"] == 99.0
    others = frame.drop(index=[10, 11, dup_late])
    assert (others["value"] == others.index.astype(float)).all()  # the -1 duplicate lost to the later row
    assert (frame["phase"] == "imported").all() and (frame["fault"] == "none").all()
    assert (frame["slo_violation"] == 0).all() and frame["rps"].isna().all()
    warnings = " ".join(run.meta["warnings"])
    assert "duplicate_timestamps: 2" in warnings and "gaps: 2" in warnings


def test_non_numeric_columns_dropped_names_sanitized_and_contract_names_filled(tmp_path):
    lines = [",Time,CPU %,host,Latency (ms),cpu_percent,Phase,comment"]
    for i in range(25):
        lines.append(f"{i},2026-01-01T00:00:{i:02d}Z,{i},web-1,{i * 2},{i * 3},{i},note {i}")
    run_dir = import_csv(write(tmp_path / "kaggle export.csv", "\n".join(lines)), timestamp_col="Time",
                         out_dir=tmp_path)
    run = read_run(run_dir)
    assert run_dir.name == "imported-kaggle_export"
    assert list(run.frame.columns) == COLUMNS + ["cpu", "latency_ms", "phase_src"]
    assert run.frame["cpu_percent"].tolist() == [float(i * 3) for i in range(25)]
    assert run.frame["latency_ms"].iloc[4] == 8.0
    assert (run.frame["phase"] == "imported").all()
    assert run.meta["interval_s"] == 1
    assert "non_numeric_columns_dropped: host, comment" in run.meta["warnings"]
    assert "index_columns_dropped: Unnamed: 0" in run.meta["warnings"]
    assert run.meta["source"]["columns"] == {"CPU %": "cpu", "Latency (ms)": "latency_ms",
                                             "cpu_percent": "cpu_percent", "Phase": "phase_src"}


@pytest.mark.parametrize("scale", [1, 1000])
def test_epoch_seconds_and_milliseconds_are_detected(tmp_path, scale):
    text = "ts,load\n" + "".join(f"{(START + 60 * i) * scale},{i}\n" for i in range(25))
    run = read_run(import_csv(write(tmp_path / "e.csv", text), timestamp_col="ts", out_dir=tmp_path))
    assert run.meta["source"]["timestamp_format"] == ("epoch_s" if scale == 1 else "epoch_ms")
    assert run.frame["timestamp"].iloc[0].isoformat() == "2014-04-01T00:00:00+00:00"
    assert run.meta["interval_s"] == 60


def test_irregular_sampling_is_resampled_to_the_interval(tmp_path):
    # Samples every 0.5 s with jitter, resampled to 2 s bins holding their mean.
    offsets = [i * 0.5 + (0.05 if i % 3 else 0.0) for i in range(100)]
    text = "t,v\n" + "".join(f"{(START + o) * 1000:.0f},{i}\n" for i, o in enumerate(offsets))
    run = read_run(import_csv(write(tmp_path / "i.csv", text), timestamp_col="t", out_dir=tmp_path,
                              interval_s=2))
    assert run.meta["interval_s"] == 2 and not run.meta["source"]["interval_inferred"]
    assert len(run.frame) == 25
    assert run.frame["v"].iloc[0] == pytest.approx(1.5)   # mean of samples 0..3
    assert (run.frame["target_up"] == 1).all()
    assert any(w.startswith("resampled:") for w in run.meta["warnings"])


def test_label_column_becomes_slo_violation(tmp_path):
    text = "timestamp,value,is_anomaly\n" + "".join(
        f"{t},{v},{'True' if 20 <= i < 23 else 'False'}\n" for i, (t, v) in enumerate(nab_rows(30, step=60)))
    run = read_run(import_csv(write(tmp_path / "l.csv", text), timestamp_col="timestamp",
                              label_col="is_anomaly", out_dir=tmp_path))
    assert run.frame["slo_violation"].tolist() == [1 if 20 <= i < 23 else 0 for i in range(30)]
    assert "is_anomaly" not in run.frame.columns


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    ("timestamp,value\n", {}, "too short: 0 rows, need at least 20"),
    ("", {}, "empty file"),
    ("time,value\n2014-01-01,1\n", {}, "timestamp column 'timestamp' not found (columns: time, value)"),
    ("timestamp,value\n" + "soon,1\n" * 25, {}, "timestamp column 'timestamp': no parseable timestamp"),
    ("timestamp,name\n" + "".join(f"{START + i},x{i}\n" for i in range(25)), {},
     "no numeric columns besides 'timestamp' (non-numeric: name)"),
    ("timestamp,value\n" + "".join(f"{START + i},{i}\n" for i in range(12)), {},
     "too short: 12 rows at 1 s, need at least 20"),
    ("timestamp,value\n" + "".join(f"{START + i},{i}\n" for i in range(30)), {"label_col": "flag"},
     "label column 'flag' not found"),
])
def test_unusable_files_raise_bad_input_naming_the_file(tmp_path, text, kwargs, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(BadInput) as info:
        import_csv(path, timestamp_col="timestamp", out_dir=tmp_path / "runs", **kwargs)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        import_csv(tmp_path / "absent.csv", timestamp_col="t", out_dir=tmp_path)


def test_sanitize():
    assert sanitize("CPU Usage (%)") == "cpu_usage"
    assert sanitize("node_cpu_seconds_total{mode=\"idle\"}") == "node_cpu_seconds_total_mode_idle"
    assert sanitize("***") == "column"


def test_second_import_gets_its_own_folder(tmp_path):
    text = "timestamp,value\n" + "".join(f"{START + i},{i}\n" for i in range(25))
    path = write(tmp_path / "x.csv", text)
    first = import_csv(path, timestamp_col="timestamp", out_dir=tmp_path / "runs")
    second = import_csv(path, timestamp_col="timestamp", out_dir=tmp_path / "runs")
    assert first != second and first.name == "imported-x" and second.name == "imported-x-2"


def test_cli_import_csv_and_exit_2_messages(tmp_path):
    from lab import app

    runner = CliRunner()
    good = write(tmp_path / "good.csv", "timestamp,value\n" + "".join(f"{START + 60 * i},{i}\n" for i in range(30)))
    result = runner.invoke(app, ["import-csv", str(good), "--timestamp-col", "timestamp", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "30 rows of 60 s" in result.output and "imported-good" in result.output
    meta = json.loads((tmp_path / "runs" / "imported-good" / "run.json").read_text())
    assert meta["status"] == "complete"

    header_only = write(tmp_path / "header.csv", "timestamp,value\n")
    result = runner.invoke(app, ["import-csv", str(header_only), "--timestamp-col", "timestamp",
                                 "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "header.csv: too short: 0 rows, need at least 20" in result.output
    assert "Traceback" not in result.output

    result = runner.invoke(app, ["import-csv", str(good), "--timestamp-col", "when", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "timestamp column 'when' not found" in result.output


def test_one_out_of_range_epoch_is_one_line_naming_file_column_and_value(tmp_path):
    lines = ["ts,cpu"] + [f"{START + i},{i}" for i in range(30)] + ["99999999999999,1"]
    path = write(tmp_path / "epochs.csv", "\n".join(lines))
    with pytest.raises(BadInput, match=r"epochs\.csv: ts: 99999999999999 at row 32 is not a time \(epoch "
                                       r"seconds must be within the years 1677 to 2262\)$"):
        import_csv(path, timestamp_col="ts", out_dir=tmp_path / "runs")
    lines[5] = "-99999999999,1"
    with pytest.raises(BadInput, match=r"ts: -99999999999 at row 6 is not a time"):
        import_csv(write(path, "\n".join(lines)), timestamp_col="ts", out_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_stray_date_cannot_make_the_resampled_run_huge(tmp_path):
    import tracemalloc

    lines = ["ts,cpu"] + [f"{START + i},{i}" for i in range(30)] + [f"{4_070_908_800},1"]  # 2099-01-01
    path = write(tmp_path / "stray.csv", "\n".join(lines))
    tracemalloc.start()
    try:
        with pytest.raises(BadInput) as caught:
            import_csv(path, timestamp_col="ts", out_dir=tmp_path / "runs")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"{path}: ts: timestamps span 30,956 days (2014-04-01T00:00:00Z to "
                              f"2099-01-01T00:00:00Z): 2,674,598,401 rows of 1 s from 31 rows read, "
                              f"more than the 2,000,000 allowed"), message
    assert "--max-rows" in message and "\n" not in message
    assert peak < 50 * 2**20
    # The bound is an option: a file that really is long imports when it is raised.
    lines = ["ts,cpu"] + [f"{START + i},{i}" for i in range(30)]
    short = write(tmp_path / "long.csv", "\n".join(lines))
    with pytest.raises(BadInput, match="30 rows of 1 s from 30 rows read, more than the 25 allowed"):
        import_csv(short, timestamp_col="ts", out_dir=tmp_path / "runs", max_rows=25)
    assert len(read_run(import_csv(short, timestamp_col="ts", out_dir=tmp_path / "runs", max_rows=30)).frame) == 30


def test_cli_import_csv_max_rows(tmp_path):
    from lab import app

    lines = ["ts,cpu"] + [f"{START + i},{i}" for i in range(30)] + ["4070908800,1"]
    path = write(tmp_path / "stray.csv", "\n".join(lines))
    result = CliRunner().invoke(app, ["import-csv", str(path), "--timestamp-col", "ts", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "more than the 2,000,000 allowed" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["import-csv", str(path), "--timestamp-col", "ts", "--out", str(tmp_path / "r"),
                                      "--max-rows", "10"])
    assert result.exit_code == 2 and "more than the 10 allowed" in result.output


def test_a_stray_text_cell_among_epoch_seconds_drops_that_row_only(tmp_path):
    lines = ["ts,cpu"] + [f"{START + i},{i}" for i in range(30)]
    lines[7] = "n/a,6"
    run_dir = import_csv(write(tmp_path / "stray.csv", "\n".join(lines)), timestamp_col="ts", out_dir=tmp_path)
    run = read_run(run_dir)
    assert run.meta["source"]["timestamp_format"] == "epoch_s" and len(run.frame) == 30
    assert any(w.startswith("unparseable_timestamps: 1 row(s)") for w in run.meta["warnings"])


def test_empty_epoch_cells_never_crash_the_conversion():
    """pandas 2's float epoch path rounds an uninitialised buffer for NaN rows under
    errstate(over="raise"): whatever was in that memory before, it may raise
    FloatingPointError. Leave huge numbers in numpy's block cache to make that certain."""
    import numpy as np
    import pandas as pd

    from collector.importer import parse_timestamps

    values = pd.Series([f"{START + i}.5" for i in range(30)])
    values[5] = None
    for _ in range(20):
        junk = [np.full(len(values), 1e300) for _ in range(64)]
        del junk
        stamps, kind = parse_timestamps(values, "f.csv", "ts")
        assert kind == "epoch_s" and stamps.isna().tolist() == [i == 5 for i in range(30)]
        assert stamps.iloc[0] == pd.Timestamp(START + 0.5, unit="s", tz="UTC")


# ---------------------------------------------------------------- --map and --nab-windows


def nab_files(tmp_path, n=40, windows=((12, 15),), name="ec2_cpu_utilization_test.csv"):
    """A NAB-format data file (timestamp,value at 5 minutes) and a combined_windows.json naming it."""
    rows = nab_rows(n)
    data = write(tmp_path / name, "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    labels = {f"realAWSCloudwatch/{name}": [[rows[a][0] + ".000000", rows[b][0] + ".000000"] for a, b in windows],
              "realAWSCloudwatch/other.csv": [["2014-04-01 00:00:00.000000", "2014-04-02 00:00:00.000000"]]}
    (tmp_path / "combined_windows.json").write_text(json.dumps(labels))
    return data, tmp_path / "combined_windows.json"


def test_map_renames_to_lab_columns_and_keeps_unknown_numeric_columns(tmp_path):
    text = "time,value,Disk IO\n" + "".join(f"{t},{v},{2 * v}\n" for t, v in nab_rows(25))
    run = read_run(import_csv(write(tmp_path / "m.csv", text), timestamp_col="time", out_dir=tmp_path,
                              column_map={"value": "cpu_percent"}))
    assert run.frame["cpu_percent"].tolist() == [float(i) for i in range(25)]
    assert "value" not in run.frame.columns
    assert run.frame["disk_io"].iloc[3] == 6.0                       # unknown: kept under its own name
    assert run.meta["source"]["columns"] == {"value": "cpu_percent", "Disk IO": "disk_io"}


@pytest.mark.parametrize(("pairs", "message"), [
    (["value"], "--map: 'value': expected SRC=DST"),
    (["value=CPU %"], "is not a column name"),
    (["value=slo_violation"], "a column the importer computes itself"),
    (["value=a", "value=b"], "value is mapped twice"),
])
def test_bad_map_options(pairs, message):
    from collector.importer import parse_column_map

    with pytest.raises(BadInput, match=message):
        parse_column_map(pairs)


def test_map_of_a_missing_or_text_column_is_refused(tmp_path):
    text = "time,value,host\n" + "".join(f"{t},{v},web\n" for t, v in nab_rows(25))
    path = write(tmp_path / "m.csv", text)
    with pytest.raises(BadInput, match=r"--map: cpu=cpu_percent: .*m\.csv has no column 'cpu' \(columns: time, value, host\)"):
        import_csv(path, timestamp_col="time", out_dir=tmp_path / "runs", column_map={"cpu": "cpu_percent"})
    with pytest.raises(BadInput, match="'host' in .* is not numeric"):
        import_csv(path, timestamp_col="time", out_dir=tmp_path / "runs", column_map={"host": "cpu_percent"})


def test_nab_windows_label_the_rows_inside_them(tmp_path):
    data, labels = nab_files(tmp_path, windows=((12, 15), (30, 31)))
    run = read_run(import_csv(data, timestamp_col="timestamp", out_dir=tmp_path / "runs",
                              column_map={"value": "cpu_percent"}, nab_windows=labels))
    assert run.frame["slo_violation"].tolist() == [1 if 12 <= i <= 15 or 30 <= i <= 31 else 0 for i in range(40)]
    nab = run.meta["source"]["nab_windows"]
    assert nab["key"] == "realAWSCloudwatch/ec2_cpu_utilization_test.csv" and nab["rows_labelled"] == 6
    assert len(nab["windows"]) == 2


def test_nab_windows_errors(tmp_path):
    data, labels = nab_files(tmp_path)
    with pytest.raises(BadInput, match="either --label-col or --nab-windows"):
        import_csv(data, timestamp_col="timestamp", label_col="value", out_dir=tmp_path / "r", nab_windows=labels)
    other = write(tmp_path / "unlisted.csv", data.read_text())
    with pytest.raises(BadInput, match=r"no key ending in /unlisted\.csv \(2 keys"):
        import_csv(other, timestamp_col="timestamp", out_dir=tmp_path / "r", nab_windows=labels)
    labels.write_text(json.dumps({"x/ec2_cpu_utilization_test.csv": [["2014-04-01", "later"]]}))
    with pytest.raises(BadInput, match=r"expected a list of \[start, end\] timestamps"):
        import_csv(data, timestamp_col="timestamp", out_dir=tmp_path / "r", nab_windows=labels)
    labels.write_text("{not json")
    with pytest.raises(BadInput, match="not a JSON file"):
        import_csv(data, timestamp_col="timestamp", out_dir=tmp_path / "r", nab_windows=labels)
    assert not (tmp_path / "r").exists()


def test_cli_import_csv_map_and_nab_windows(tmp_path):
    from lab import app

    data, labels = nab_files(tmp_path)
    result = CliRunner().invoke(app, ["import-csv", str(data), "--timestamp-col", "timestamp", "--map",
                                      "value=cpu_percent", "--nab-windows", str(labels), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "1 NAB window(s)" in result.output and "4 row(s) with slo_violation=1" in result.output
    result = CliRunner().invoke(app, ["import-csv", str(data), "--timestamp-col", "timestamp", "--map", "value",
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "expected SRC=DST" in result.output
