"""generate-dataset end to end: runs, dataset files, and resumption after an interrupt."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def generate(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "lab.py"), "generate-dataset", "--out", str(out),
         "--scenarios", "smoke", "--seeds", "1,2", "--duration", "8", "--quiet", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_interrupted_generation_resumes_keeping_complete_runs(tmp_path):
    out = tmp_path / "ds"
    proc = generate(out)
    second = out / "runs" / "smoke-s2-r1" / "metrics.csv"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if second.exists() and len(second.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    first_run = out / "runs" / "smoke-s1-r1"
    assert json.loads((first_run / "run.json").read_text())["status"] == "complete"
    assert json.loads((out / "runs" / "smoke-s2-r1" / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "manifest.json").exists()
    kept_mtime = (first_run / "metrics.csv").stat().st_mtime_ns

    proc = generate(out)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "1 kept" in stdout and "1 redone" in stdout
    assert (first_run / "metrics.csv").stat().st_mtime_ns == kept_mtime

    manifest = json.loads((out / "manifest.json").read_text())
    runs = {r["run_id"]: r for r in manifest["runs"]}
    assert set(runs) == {"smoke-s1-r1", "smoke-s2-r1"}
    table = pq.read_table(out / "dataset.parquet").to_pandas()
    for run_id in runs:
        csv_rows = len(pd.read_csv(out / "runs" / run_id / "metrics.csv"))
        assert csv_rows == 8
        assert (table["run_id"] == run_id).sum() == csv_rows
    assert (out / "CARD.md").read_text().count("latency_p95_ms") >= 1
