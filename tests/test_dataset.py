"""Dataset build: Parquet and manifest consistent with the run folders, the data card, info."""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from collector.dataset import build_dataset_files, dataset_info
from contract.runfolder import read_run, sha256_file
from contract.schema import COLUMN_DOCS, COLUMNS
from contract.errors import BadInput, LabError
from runfactory import T0, make_run


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder with three complete runs, one interrupted and one tampered."""
    runs = tmp_path / "ds" / "runs"
    make_run(runs, 120, "spike", 1, run_id="r1-spike", gaps=[3, 4])
    make_run(runs, 90, "steady", 2, run_id="r2-steady", t0=T0 + 1000,
             faults=[{"kind": "errors", "start_s": 10, "duration_s": 5, "intensity": 0.5},
                     {"kind": "cpu", "start_s": 15, "duration_s": 5, "intensity": 0.9}],
             slo={"latency_p95_ms": 500.0, "error_rate": 0.05})
    make_run(runs, 60, "spike", 3, run_id="r3-spike", t0=T0 + 2000)
    make_run(runs, 40, "spike", 4, run_id="r4-interrupted", status="interrupted")
    tampered = make_run(runs, 40, "spike", 5, run_id="r5-tampered")
    with open(tampered / "metrics.csv", "a") as fh:
        fh.write("\n")  # changes the file after its checksum was taken
    return tmp_path / "ds"


def test_build_writes_parquet_consistent_with_runs(dataset):
    build = build_dataset_files(dataset, extra_meta={"command": "lab generate-dataset --name ds"})
    table = pq.read_table(build.parquet)
    assert table.column_names[:2] == ["run_id", "scenario"]
    assert table.column_names[2:] == COLUMNS
    assert pq.ParquetFile(build.parquet).metadata.num_row_groups == 3  # one per included run
    frame = table.to_pandas()
    assert frame.groupby("run_id", sort=False).size().to_dict() == {
        "r1-spike": 120, "r2-steady": 90, "r3-spike": 60}
    assert build.rows == len(frame) == 270

    # Values equal the run's own metrics.csv, dtypes included.
    run = read_run(dataset / "runs" / "r2-steady").frame
    part = frame[frame["run_id"] == "r2-steady"].drop(columns=["run_id", "scenario"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(part, run, check_dtype=False, check_exact=True)
    assert part["fault"].iloc[10:20].tolist() == ["errors"] * 5 + ["cpu"] * 5
    assert frame["target_up"].dtype == "int64" and frame["rps"].dtype == "float64"
    # No temporary files left next to the outputs.
    assert sorted(os.listdir(dataset)) == ["CARD.md", "dataset.parquet", "manifest.json", "runs"]


def test_manifest_lists_runs_rows_and_checksums(dataset):
    build = build_dataset_files(dataset, scenarios=["spike", "steady"], seeds=[1, 2, 3])
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest == build.manifest
    assert manifest["scenarios"] == ["spike", "steady"] and manifest["seeds"] == [1, 2, 3]
    assert manifest["dataset"]["sha256"] == sha256_file(dataset / "dataset.parquet")
    assert manifest["card_sha256"] == sha256_file(dataset / "CARD.md")
    assert manifest["versions"]["pyarrow"] and manifest["host"]["cpu_logical"] >= 1
    entries = {e["run_id"]: e for e in manifest["runs"]}
    assert set(entries) == {"r1-spike", "r2-steady", "r3-spike", "r4-interrupted", "r5-tampered"}
    for run_id, entry in entries.items():
        run_dir = dataset / entry["path"]
        if entry["included"]:
            lines = (run_dir / "metrics.csv").read_text().count("\n") - 1
            assert entry["rows"] == lines
            for name, digest in entry["files"].items():
                assert sha256_file(run_dir / name) == digest
            assert entry["run_json_sha256"] == sha256_file(run_dir / "run.json")
        else:
            assert entry["rows"] is None
    assert "interrupted" in entries["r4-interrupted"]["excluded_reason"]
    assert "metrics.csv" in entries["r5-tampered"]["excluded_reason"]
    assert set(build.excluded) == {"r4-interrupted", "r5-tampered"}
    assert manifest["rows"] == sum(e["rows"] for e in entries.values() if e["included"])
    assert manifest["hours"] == pytest.approx(270 / 3600, abs=1e-4)


def test_card_documents_columns_labels_scenarios_and_reproduction(dataset):
    build_dataset_files(dataset, extra_meta={"command": "lab generate-dataset --name ds --repeats 2"})
    card = (dataset / "CARD.md").read_text()
    for col, (unit, meaning) in COLUMN_DOCS.items():
        assert f"| `{col}` | {unit} | {meaning}" in card
    assert "| steady | closed | 500.0 | 0.05 | 1 |" in card  # the steady scenario's model and SLO
    assert "### spike" in card and "### steady" in card
    assert "| errors | 10 | 5 | 0.5 |" in card
    assert "## Labels" in card and "`incident`" in card and "intended send" in card
    assert "lab generate-dataset --name ds --repeats 2" in card
    assert "## Known limitations" in card and "Loopback network" in card
    assert "Synthetic CPU" in card  # the machine the runs were recorded on


def test_build_merges_extra_columns_of_imported_runs(tmp_path):
    runs = tmp_path / "ds" / "runs"
    make_run(runs, 30, "spike", 1, run_id="a")
    make_run(runs, 30, "spike", 2, run_id="b", extra_columns={"queue_depth": [float(i) for i in range(30)],
                                                             "host_role": ["web"] * 30})
    build = build_dataset_files(tmp_path / "ds")
    frame = pq.read_table(build.parquet).to_pandas()
    assert frame.columns[-2:].tolist() == ["queue_depth", "host_role"]
    assert frame.loc[frame["run_id"] == "a", "queue_depth"].isna().all()
    assert frame.loc[frame["run_id"] == "b", "queue_depth"].tolist() == [float(i) for i in range(30)]
    assert frame.loc[frame["run_id"] == "b", "host_role"].eq("web").all()
    card = (tmp_path / "ds" / "CARD.md").read_text()
    assert "| `queue_depth` |  | extra column of some runs" in card


def test_build_without_complete_runs_fails(tmp_path):
    make_run(tmp_path / "ds" / "runs", 20, status="failed")
    with pytest.raises(LabError, match="no complete run"):
        build_dataset_files(tmp_path / "ds")
    assert not (tmp_path / "ds" / "dataset.parquet").exists()
    with pytest.raises(BadInput, match="no runs/ folder"):
        build_dataset_files(tmp_path / "elsewhere")


def test_dataset_info_reports_runs_hours_and_label_shares(dataset):
    build_dataset_files(dataset)
    info = dataset_info(dataset)
    assert info["source"] == "parquet" and info["runs"] == 3 and info["rows"] == 270
    assert info["hours"] == pytest.approx(0.075)
    assert info["runs_excluded"] == 2
    assert sum(info["phase_share"].values()) == pytest.approx(1, abs=1e-3)
    assert sum(info["fault_share"].values()) == pytest.approx(1, abs=1e-3)
    # r1: 12 latency seconds; r2: 5 errors + 5 cpu; r3: 6 latency.
    assert info["fault_share"]["latency"] == pytest.approx(18 / 270, abs=1e-4)
    assert info["fault_share"]["cpu"] == pytest.approx(5 / 270, abs=1e-4)
    assert info["target_down_share"] == pytest.approx(2 / 270, abs=1e-4)
    assert info["scenarios"] == {"spike": {"runs": 2, "rows": 180}, "steady": {"runs": 1, "rows": 90}}
    frame = pq.read_table(dataset / "dataset.parquet").to_pandas()
    assert info["slo_violation_share"] == pytest.approx(frame["slo_violation"].mean(), abs=1e-4)

    # The same numbers straight from run folders (no Parquet file).
    only_runs = dataset_info(dataset / "runs" / "r2-steady")
    assert only_runs["source"] == "runs" and only_runs["rows"] == 90 and only_runs["runs"] == 1


def test_cli_dataset_info(dataset):
    from lab import app

    build_dataset_files(dataset)
    result = CliRunner().invoke(app, ["dataset-info", str(dataset)])
    assert result.exit_code == 0, result.output
    assert "270" in result.output and "3 (2 excluded)" in result.output and "steady" in result.output
    missing = CliRunner().invoke(app, ["dataset-info", str(dataset / "nope")])
    assert missing.exit_code == 2
    assert "nope: no such file or folder" in missing.output


@pytest.mark.parametrize("text, problem", [
    ("{broken", r"manifest\.json: not valid JSON \("),
    ('"a string"', r"manifest\.json: expected a JSON object, got a string"),
    ('{"dataset": "x"}', r"manifest\.json: dataset: expected an object, got a string"),
])
def test_cli_dataset_info_on_a_corrupt_manifest_is_one_line(dataset, text, problem):
    import re

    from lab import app

    build_dataset_files(dataset)
    (dataset / "manifest.json").write_text(text)
    result = CliRunner().invoke(app, ["dataset-info", str(dataset)])
    assert result.exit_code == 2, result.output
    assert re.search(problem, result.output) and len(result.output.strip().splitlines()) == 1
