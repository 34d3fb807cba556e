"""Run folder I/O: atomic writes, checksums, facts, and reading runs back with their dtypes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from contract import runfolder
from contract import runfolder as runio
from contract.runfolder import (
    atomic_write_bytes, atomic_write_json, atomic_write_text, host_facts, is_complete_run, list_runs,
    package_versions, read_run, sha256_file, utc_iso,
)
from contract.schema import COLUMNS
from contract.errors import BadInput
from runfactory import make_run


def test_atomic_write_json_indents_and_ends_with_newline(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "a.json", {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert text.endswith("}\n")
    assert text.index('"b"') < text.index('"a"')  # keys kept in insertion order
    assert json.loads(text) == {"b": 1, "a": [1, 2]}
    assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "x.txt", "old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(runfolder.os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]  # no temp file left behind


def test_sha256_file_matches_hashlib(tmp_path):
    data = os.urandom(3 << 20)  # spans several read chunks
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_utc_iso_formats_seconds_and_milliseconds():
    assert utc_iso(0) == "1970-01-01T00:00:00Z"
    assert utc_iso(1_795_834_800.987) == "2026-11-28T03:00:00Z"
    assert utc_iso(1_795_834_800.987, ms=True) == "2026-11-28T03:00:00.987Z"


def test_host_facts_and_versions():
    facts = host_facts()
    assert facts["cpu_logical"] >= 1 and facts["memory_gib"] > 0
    assert {"hostname", "platform", "python", "cpu_physical", "cpu_model"} <= set(facts)
    versions = package_versions()
    assert versions["pandas"] and versions["pyarrow"] and versions["typer"]
    assert "tensorflow" in versions or "tensorflow-cpu" in versions


def test_package_versions_does_not_import_the_packages():
    code = ("import sys, contract.runfolder as r; r.package_versions(); "
            "print(any(m in sys.modules for m in ('flask', 'locust', 'tensorflow', 'sklearn')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.stdout.strip() == "False"


def test_read_run_types_columns(tmp_path):
    run_dir = make_run(tmp_path, 60, "spike", 3, gaps=[7])
    run = read_run(run_dir)
    frame = run.frame
    assert list(frame.columns) == COLUMNS
    assert run.run_id == run_dir.name and run.scenario_name == "spike"
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["elapsed_s"].tolist() == list(range(60))
    for col in ("elapsed_s", "slo_violation", "target_up"):
        assert frame[col].dtype == "int64"
    for col in ("rps", "latency_p95_ms", "users", "cpu_percent"):
        assert frame[col].dtype == "float64"
    assert frame["phase"].iloc[0] == "warmup" and frame["fault"].iloc[0] == "none"
    assert frame.loc[7, "target_up"] == 0 and frame["rps"].isna().tolist()[7]


def test_read_run_names_the_missing_column(tmp_path):
    run_dir = make_run(tmp_path, 30, drop_columns=["srv_rps"])
    with pytest.raises(BadInput, match=r"metrics\.csv: column 'srv_rps' missing"):
        read_run(run_dir)


def test_read_run_rejects_missing_or_broken_run_json(tmp_path):
    run_dir = make_run(tmp_path, 30)
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(BadInput, match=r"run\.json: not valid JSON"):
        read_run(run_dir)
    (run_dir / "run.json").unlink()
    with pytest.raises(BadInput, match=r"run\.json: missing"):
        read_run(run_dir)


def test_read_run_rejects_time_going_backwards(tmp_path):
    run_dir = make_run(tmp_path, 30)
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput, match="elapsed_s: not strictly increasing"):
        read_run(run_dir)


def test_is_complete_run_checks_status_and_checksums(tmp_path):
    good = make_run(tmp_path, 30, run_id="good")
    assert is_complete_run(good)
    assert not is_complete_run(make_run(tmp_path, 30, run_id="stopped", status="interrupted"))
    tampered = make_run(tmp_path, 30, run_id="tampered")
    with open(tampered / "metrics.csv", "a") as fh:
        fh.write("\n")
    assert not is_complete_run(tampered)
    assert not is_complete_run(tmp_path / "nowhere")


def test_list_runs_accepts_run_dataset_and_parent_folders(tmp_path):
    a = make_run(tmp_path / "ds" / "runs", 20, run_id="a")
    b = make_run(tmp_path / "ds" / "runs", 20, run_id="b")
    (tmp_path / "ds" / "runs" / "not-a-run").mkdir()
    assert list_runs(a) == [a]
    assert list_runs(tmp_path / "ds") == [a, b]
    assert list_runs(tmp_path / "ds" / "runs") == [a, b]
    with pytest.raises(BadInput, match="no such file"):
        list_runs(tmp_path / "missing")
    with pytest.raises(BadInput, match="no run folders found"):
        list_runs(tmp_path / "ds" / "runs" / "not-a-run")


def test_a_run_recorded_before_the_signal_columns_reads_with_them_empty(tmp_path):
    from contract.schema import ADDED_COLUMNS

    run_dir = make_run(tmp_path, 30, "spike", 3, drop_columns=ADDED_COLUMNS)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert not set(ADDED_COLUMNS) & set(header)
    frame = read_run(run_dir).frame
    assert set(ADDED_COLUMNS) <= set(frame.columns)
    assert (frame["incident"] == "none").all()
    assert frame["latency_p95_window_ms"].isna().all() and frame["planned_rate"].isna().all()
    # A column that is neither in the file nor an added one is still refused by name.
    with pytest.raises(BadInput, match="latency_p95_ms"):
        read_run(make_run(tmp_path / "b", 30, "spike", 3, drop_columns=["latency_p95_ms"]))


# ---------------------------------------------------------------- names, paths and JSON from files


@pytest.mark.parametrize("name, expected", [
    ("20260101T000000Z-smoke-s3", "20260101T000000Z-smoke-s3"),
    ("../../../x", "_.._.._x"),
    ("..", "unnamed"),
    (".hidden", "hidden"),
    ("/etc/passwd", "_etc_passwd"),
    ("a\\b\x00c d", "a_b_c_d"),
    ("x" * 500, "x" * 120),
])
def test_safe_name_is_one_plain_file_name(name, expected):
    assert runio.safe_name(name) == expected


def test_contained_path_refuses_dotdot_absolute_and_symlinks(tmp_path):
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    assert runio.contained_path(base, "sub/x.csv", "--out") == base / "sub" / "x.csv"
    assert runio.contained_path(base, "sub/../y", "--out") == base / "sub" / ".." / "y"
    (base / "link").symlink_to(tmp_path, target_is_directory=True)
    for bad in ("../x", "sub/../../x", str(tmp_path / "x"), "link/x"):
        with pytest.raises(BadInput, match=rf"^--out: '{bad}' leads outside {base}$"):
            runio.contained_path(base, bad, "--out")
    with pytest.raises(BadInput, match=r"^--out: 'a\\x00b': not a usable path"):
        runio.contained_path(base, "a\x00b", "--out")


def test_read_json_has_one_wording_for_every_failure(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(BadInput, match=rf"^{path}: file not found$"):
        runio.read_json(path)
    path.write_text("{nope")
    with pytest.raises(BadInput, match=rf"^{path}: not valid JSON \(Expecting property name .*\)$"):
        runio.read_json(path)
    path.write_text("[1]")
    with pytest.raises(BadInput, match=rf"^{path}: expected a JSON object, got a list$"):
        runio.read_json(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(BadInput, match=rf"^{path}: not UTF-8 text"):
        runio.read_json(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BadInput, match=rf"^{path}: not valid JSON \("):
        runio.read_json(path)
    path.write_text('{"a": 1}')
    assert runio.read_json(path) == {"a": 1}


def _json_readers(tmp_path):
    """Every reader of a JSON file a user hands the lab, with the file it reads."""
    from collector.dataset import dataset_info
    from collector.export import export_dataset
    from modeling.data import load_runs
    from modeling.forecaster import LSTMForecaster
    from modeling.pipeline import load_bundle
    from modeling.products import ProductClusters
    from modeling.regimes import RegimeModel

    run_dir = make_run(tmp_path / "runs", 20, run_id="r")
    (tmp_path / "model" / "forecaster").mkdir(parents=True)
    (tmp_path / "model" / "forecaster" / "model.keras").write_bytes(b"")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset.parquet").write_bytes(b"")
    return [
        (lambda: read_run(run_dir), run_dir / "run.json"),
        (lambda: runio.read_manifest(tmp_path / "ds"), tmp_path / "ds" / "manifest.json"),
        (lambda: load_runs([tmp_path / "ds"]), tmp_path / "ds" / "manifest.json"),
        (lambda: export_dataset(tmp_path / "ds", out_dir=tmp_path / "out"), tmp_path / "ds" / "manifest.json"),
        (lambda: dataset_info(tmp_path / "ds"), tmp_path / "ds" / "manifest.json"),
        (lambda: RegimeModel.load(tmp_path / "regimes.json"), tmp_path / "regimes.json"),
        (lambda: ProductClusters.load(tmp_path / "products.json"), tmp_path / "products.json"),
        (lambda: LSTMForecaster.load(tmp_path / "model" / "forecaster"), tmp_path / "model" / "forecaster" / "params.json"),
        (lambda: load_bundle(tmp_path / "model"), tmp_path / "model" / "train.json"),
    ]


@pytest.mark.parametrize("text, problem", [
    ("{oops", r"not valid JSON \(.*\)"),
    ("[1, 2]", r"expected a JSON object, got a list"),
    ('"text"', r"expected a JSON object, got a string"),
])
def test_every_json_reader_says_the_same_thing(tmp_path, text, problem):
    import re

    for read, path in _json_readers(tmp_path):
        path.write_text(text)
        with pytest.raises(BadInput) as caught:
            read()
        assert re.fullmatch(rf"{re.escape(str(path))}: {problem}", str(caught.value)), str(caught.value)


def test_atomic_folder_replaces_whole_keeps_old_on_error_and_follows_the_umask(tmp_path):
    import stat

    target = tmp_path / "m"
    target.mkdir()
    (target / "old.json").write_text("old")
    with pytest.raises(RuntimeError):
        with runio.atomic_folder(target) as tmp:
            (tmp / "new.json").write_text("new")
            raise RuntimeError("training failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"] and (target / "old.json").exists()
    with runio.atomic_folder(target) as tmp:
        (tmp / "new.json").write_text("new")
        assert not (target / "new.json").exists()        # nothing shows until it is complete
    assert sorted(p.name for p in target.iterdir()) == ["new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    with runio.atomic_folder(link) as tmp:
        (tmp / "third.json").write_text("3")
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["third.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="exists and is a file"):
        with runio.atomic_folder(tmp_path / "file"):
            pass


def test_every_lab_error_is_one_line_whatever_came_in_with_the_input():
    from contract.errors import LabError

    assert str(BadInput('x.toml: "a\nb": unknown key')) == 'x.toml: "a\\nb": unknown key'
    assert str(LabError("tab\there, é and → stay")) == "tab\\there, é and → stay"
    assert "\n" not in str(BadInput("line\u2028separator\r\n"))
