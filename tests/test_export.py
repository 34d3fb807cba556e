"""export: NAB layout, CSV and Parquet hold exactly the runs' values and label windows."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from collector.dataset import build_dataset_files
from collector.export import export_dataset, windows
from collector.importer import import_csv
from contract.runfolder import read_run
from contract.errors import BadInput
from runfactory import T0, make_run

FAULTS = [{"kind": "latency", "start_s": 20, "duration_s": 10, "intensity": 0.8},
          {"kind": "cpu", "start_s": 30, "duration_s": 5, "intensity": 0.5},
          {"kind": "memory", "start_s": 60, "duration_s": 8, "intensity": 0.5}]


@pytest.fixture
def dataset(tmp_path):
    runs = tmp_path / "ds" / "runs"
    make_run(runs, 90, "spike", 1, run_id="r1", faults=FAULTS, gaps=[5, 6, 7])
    make_run(runs, 50, "steady", 2, run_id="r2", t0=T0 + 500)
    make_run(runs, 30, "steady", 3, run_id="r3-stopped", status="interrupted")
    build_dataset_files(tmp_path / "ds")
    return tmp_path / "ds"


def test_nab_export_round_trip(dataset, tmp_path):
    out = export_dataset(dataset, fmt="nab", out_dir=tmp_path / "nab")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.txt", "labels_faults.json", "labels_slo.json", "r1", "r2", "windows.json"]  # r3 not in the dataset
    run = read_run(dataset / "runs" / "r1").frame
    files = sorted(p.name for p in (out / "r1").iterdir())
    assert "rps.csv" in files and "latency_p95_ms.csv" in files
    assert not {"slo_violation.csv", "fault_intensity.csv", "target_up.csv", "users.csv"} & set(files)
    for name in files:
        nab = pd.read_csv(out / "r1" / name)
        assert list(nab.columns) == ["timestamp", "value"]
        expected = run[["timestamp", name[:-4]]].dropna()
        assert len(nab) == len(expected)  # gap seconds are left out, nothing else
        assert nab["timestamp"].tolist() == expected["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
        assert nab["value"].tolist() == expected[name[:-4]].tolist()  # exact, not approximately


def test_nab_labels_follow_faults_and_slo(dataset, tmp_path):
    out = export_dataset(dataset, fmt="nab", out_dir=tmp_path / "nab")
    faults = json.loads((out / "labels_faults.json").read_text())
    slo = json.loads((out / "labels_slo.json").read_text())
    assert set(faults) == set(slo) == {f"{d.name}/{p.name}" for d in (out / "r1", out / "r2") for p in d.iterdir()}
    stamp = lambda s: pd.Timestamp(T0 + s, unit="s").strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    # latency and cpu touch but are different faults: two windows, ends inclusive.
    assert faults["r1/rps.csv"] == [[stamp(20), stamp(29)], [stamp(30), stamp(34)], [stamp(60), stamp(67)]]
    detail = json.loads((out / "windows.json").read_text())
    assert [(w["kind"], w["seconds"]) for w in detail["r1"]["faults"]] == [("latency", 10), ("cpu", 5), ("memory", 8)]

    run = read_run(dataset / "runs" / "r1").frame
    covered = set()
    for start, end in slo["r1/rps.csv"]:
        s, e = (pd.Timestamp(x, tz="UTC") for x in (start, end))
        covered |= set(run.index[(run["timestamp"] >= s) & (run["timestamp"] <= e)])
    assert covered == set(run.index[run["slo_violation"] == 1])
    assert "labels_faults.json" in (out / "README.txt").read_text()


def test_windows_split_on_kind_and_handle_edges():
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=6, freq="s", tz="UTC"),
                          "elapsed_s": range(6)})
    kinds = ["cpu", "cpu", "none", "errors", "latency", "latency"]
    found = windows(frame, [k != "none" for k in kinds], kinds)
    assert [(w["kind"], w["seconds"]) for w in found] == [("cpu", 2), ("errors", 1), ("latency", 2)]
    assert found[-1]["end"] == frame["timestamp"].iloc[5]
    assert windows(frame, [False] * 6) == []


def test_csv_and_parquet_exports_round_trip(dataset, tmp_path):
    csv_path = export_dataset(dataset, fmt="csv", out_dir=tmp_path / "csv")
    parquet_path = export_dataset(dataset, fmt="parquet", out_dir=tmp_path / "pq")
    flat = pd.read_csv(csv_path)
    assert flat.groupby("run_id").size().to_dict() == {"r1": 90, "r2": 50}
    run = read_run(dataset / "runs" / "r2").frame
    part = flat[flat["run_id"] == "r2"].reset_index(drop=True)
    assert part["timestamp"].tolist() == run["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    pd.testing.assert_series_equal(part["latency_p95_ms"], run["latency_p95_ms"], check_exact=True)
    assert part["fault"].tolist() == run["fault"].tolist()
    assert pq.read_table(parquet_path).equals(pq.read_table(dataset / "dataset.parquet"))


def test_columns_option_and_unknown_column(dataset, tmp_path):
    out = export_dataset(dataset / "runs" / "r2", fmt="nab", out_dir=tmp_path / "one", columns=["rps", "users"])
    assert sorted(p.name for p in (out / "r2").iterdir()) == ["rps.csv", "users.csv"]
    with pytest.raises(BadInput, match="column 'nope' not found"):
        export_dataset(dataset, fmt="nab", out_dir=tmp_path / "x", columns=["nope"])


def test_imported_nab_file_exports_back_to_the_same_series(tmp_path):
    original = "timestamp,value\n" + "".join(
        f"{pd.Timestamp(1_396_310_400 + 300 * i, unit='s'):%Y-%m-%d %H:%M:%S},{i * 1.25}\n" for i in range(40))
    (tmp_path / "src.csv").write_text(original)
    run_dir = import_csv(tmp_path / "src.csv", timestamp_col="timestamp", out_dir=tmp_path / "runs")
    out = export_dataset(run_dir, fmt="nab", out_dir=tmp_path / "nab")
    assert (out / run_dir.name / "value.csv").read_text() == original
    assert json.loads((out / "labels_faults.json").read_text()) == {f"{run_dir.name}/value.csv": []}


def test_cli_export(dataset, tmp_path):
    from lab import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(dataset), "--format", "nab", "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "exported 2 run(s), 140 rows as nab" in result.output
    assert (tmp_path / "e" / "labels_slo.json").is_file()
    result = runner.invoke(app, ["export", str(dataset), "--columns", "rps,bogus", "--out", str(tmp_path / "f")])
    assert result.exit_code == 2 and "column 'bogus' not found" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "void")])
    assert result.exit_code == 2 and "no such file or folder" in result.output


def _files_under(folder):
    return set(folder.rglob("*"))


def test_nab_export_keeps_names_from_files_inside_out(tmp_path):
    """A run.json run_id and a CSV column name that are paths never write outside --out."""
    runs = tmp_path / "a" / "b" / "c" / "runs"
    run_dir = make_run(runs, 30, "spike", 1, run_id="r1",
                       extra_columns={"../../../../../pwned": [float(i) for i in range(30)],
                                      "/abs/olute": [1.0] * 30})
    meta = json.loads((run_dir / "run.json").read_text())
    meta["run_id"] = "../../../../escaped"
    (run_dir / "run.json").write_text(json.dumps(meta))
    before = _files_under(tmp_path)
    out = tmp_path / "a" / "b" / "c" / "out"
    export_dataset(run_dir, fmt="nab", out_dir=out)
    new = _files_under(tmp_path) - before
    assert new and all(p == out or out in p.parents for p in new), sorted(new)
    folders = [p.name for p in out.iterdir() if p.is_dir()]
    assert folders == ["_.._.._.._escaped"]
    files = sorted(p.name for p in (out / folders[0]).iterdir())
    assert "_.._.._.._.._pwned.csv" in files and "_abs_olute.csv" in files
    detail = json.loads((out / "windows.json").read_text())
    assert detail["_.._.._.._escaped"]["run_id"] == "../../../../escaped"
    labels = json.loads((out / "labels_faults.json").read_text())
    assert all(key.count("/") == 1 and key.split("/")[0] == folders[0] for key in labels)


def test_nab_export_refuses_a_symlink_in_out_that_leads_outside(tmp_path):
    run_dir = make_run(tmp_path / "runs", 30, "spike", 1, run_id="r1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "r1").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(BadInput, match=r"--out .*out: 'r1' leads outside"):
        export_dataset(run_dir, fmt="nab", out_dir=out)
    assert list(elsewhere.iterdir()) == []


def test_nab_export_keeps_two_columns_that_map_to_one_name_apart(tmp_path):
    run_dir = make_run(tmp_path / "runs", 30, "spike", 1, run_id="r1",
                       extra_columns={"a/b": [1.0] * 30, "a_b": [2.0] * 30})
    out = export_dataset(run_dir, fmt="nab", out_dir=tmp_path / "out", columns=["a/b", "a_b"])
    assert sorted(p.name for p in (out / "r1").iterdir()) == ["a_b-2.csv", "a_b.csv"]
    assert pd.read_csv(out / "r1" / "a_b.csv")["value"].eq(1.0).all()
    assert pd.read_csv(out / "r1" / "a_b-2.csv")["value"].eq(2.0).all()


@pytest.mark.parametrize("fmt", ["nab", "csv", "parquet"])
def test_manifest_paths_outside_the_dataset_are_refused(tmp_path, fmt):
    outside = make_run(tmp_path / "private", 30, "spike", 1, run_id="secret")
    dataset = tmp_path / "ds"
    make_run(dataset / "runs", 30, "spike", 2, run_id="ok")
    for path in ("../private/secret", str(outside)):
        (dataset / "manifest.json").write_text(json.dumps(
            {"runs": [{"path": "runs/ok", "included": True}, {"path": path, "included": True}]}))
        with pytest.raises(BadInput, match=r"manifest\.json: runs\[1\]\.path: '.*secret' leads outside"):
            export_dataset(dataset, fmt=fmt, out_dir=tmp_path / f"out-{fmt}")


@pytest.mark.parametrize("manifest, problem", [
    ("[1, 2]", r"manifest\.json: expected a JSON object, got a list$"),
    ('{"runs": ["runs/a", "runs/b"]}', r"manifest\.json: runs\[0\]: expected an object, got a string$"),
    ('{"runs": {"path": "runs/a"}}', r"manifest\.json: runs: expected a list of run entries, got an object$"),
    ('{"runs": [{"path": 3, "included": true}]}', r"manifest\.json: runs\[0\]\.path: expected a folder name"),
    ('{"runs": [', r"manifest\.json: not valid JSON \("),
])
def test_export_of_a_malformed_manifest_is_one_line(dataset, tmp_path, manifest, problem):
    from lab import app

    (dataset / "manifest.json").write_text(manifest)
    with pytest.raises(BadInput, match=problem):
        export_dataset(dataset, fmt="nab", out_dir=tmp_path / "out")
    result = CliRunner().invoke(app, ["export", str(dataset), "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
