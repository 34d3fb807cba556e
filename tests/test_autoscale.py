"""Closed-loop autoscaling in a lab run: decisions recorded as columns, workers changed for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

OVERLOAD = """
name = "overload"
description = "light load, then far past capacity with a tight SLO"
duration_s = 24
seed = 5

[slo]
latency_p95_ms = 300
error_rate = 0.02

[target]
workers = 1
threads = 4

[[stages]]
name = "light"
until_s = 6
users = 4
spawn_rate = 4

[[stages]]
name = "overload"
until_s = 24
users = 120
spawn_rate = 60
"""


def test_reactive_autoscale_scales_the_real_target_and_records_it(tmp_path):
    scenario = tmp_path / "overload.toml"
    scenario.write_text(OVERLOAD)
    proc = subprocess.run([sys.executable, str(ROOT / "lab.py"), "run-scenario", str(scenario),
                           "--autoscale", "reactive", "--max-workers", "3", "--out", str(tmp_path / "runs"),
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert "autoscale_action" in frame.columns and "target_workers" in frame.columns
    ups = frame.index[frame["autoscale_action"].str.startswith("scale_up")].tolist()
    assert ups, frame[["elapsed_s", "latency_p95_ms", "autoscale_action"]].to_string()
    first = ups[0]
    assert frame["target_workers"].iloc[:6].eq(1).all()
    assert frame["target_workers"].iloc[first + 3:].max() >= 2      # gunicorn really forked a worker
    assert frame["target_workers"].max() <= 3                        # within --max-workers
    # every decision was logged with what caused it
    records = [json.loads(l) for l in (run_dir / "autoscale.jsonl").read_text().splitlines()]
    taken = [r for r in records if r["action"] == "scale_up" and "result_of" not in r]
    assert taken and all(r["reason"] for r in taken)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["autoscale"]["mode"] == "reactive" and meta["autoscale"]["actions"] >= 1
    assert meta["summary"]["worker_seconds"] > 24


def test_predictive_autoscale_needs_a_model(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "lab.py"), "run-scenario", "smoke",
                           "--autoscale", "predictive", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--model" in proc.stderr and "Traceback" not in proc.stderr
