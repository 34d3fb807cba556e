"""Closed-loop autoscaling in a lab run: decisions recorded as columns, workers changed for real."""

from __future__ import annotations

import json
import subprocess
import time
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
    assert frame["target_workers"].iloc[:max(first, 1)].eq(1).all()   # one worker until the first scale-up
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


def test_predictive_autoscale_serves_a_lab_profile_model_and_refuses_a_live_one(tiny_lab_model, tmp_path):
    """The model code is imported only for this mode: building the scaler loads the bundle and serves it."""
    import shutil

    from contract.errors import BadInput
    from workflows.autoscale import Autoscaler

    _runs, model = tiny_lab_model
    slo = {"latency_p95_ms": 300, "error_rate": 0.02}
    scaler = Autoscaler("predictive", slo, model_dir=model, max_workers=2)
    assert scaler.online is not None and scaler.online.profile == "lab"
    live = Path(shutil.copytree(model, tmp_path / "live"))
    meta = json.loads((live / "train.json").read_text())
    (live / "train.json").write_text(json.dumps({**meta, "profile": "live"}))
    with pytest.raises(BadInput, match="uses a --profile lab model"):
        Autoscaler("predictive", slo, model_dir=live, max_workers=2)


class _AlwaysScaleUp:
    """A policy that wants one more worker every second."""

    def decide(self, p):
        from monitor.policy import Action, Decision

        return Decision(action=Action.SCALE_UP, amount=1, reason="test", prediction={}, timestamp=p.timestamp)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_autoscaler_actions_never_queue_up_behind_a_slow_scale(make_target, tmp_path, monkeypatch):
    import threading

    from workflows.autoscale import Autoscaler

    target = make_target(workers=1, threads=2)
    scaler = Autoscaler("reactive", {"latency_p95_ms": 300, "error_rate": 0.02}, max_workers=2)
    scaler.start(target.pid, tmp_path)
    scaler.policy = _AlwaysScaleUp()
    gate, calls = threading.Event(), []

    def slow(decision):
        calls.append(decision)
        gate.wait(10)
        return "sent"

    monkeypatch.setattr(scaler.sink, "handle", slow)
    for i in range(20):
        scaler.on_row({"elapsed_s": i, "latency_p95_ms": 900.0, "target_workers": 1, "target_up": 1})
        if i == 0:
            time.sleep(0.2)                                # the first action is in progress
    assert len(calls) == 1 and scaler.lane.busy()        # one in hand, one waiting, nothing more
    assert scaler.dropped == 18
    gate.set()
    scaler.close()
    outcomes = [r.get("outcome") for r in _records(tmp_path / "autoscale.jsonl") if "result_of" in r]
    assert outcomes.count("sent") == 1 and outcomes.count("dropped") == 19   # the waiting one at the end too


def test_autoscaler_backs_off_after_a_failed_scale(make_target, tmp_path, monkeypatch):
    from workflows.autoscale import Autoscaler

    target = make_target(workers=1, threads=2)
    scaler = Autoscaler("reactive", {"latency_p95_ms": 300, "error_rate": 0.02}, max_workers=2)
    scaler.start(target.pid, tmp_path)
    scaler.policy = _AlwaysScaleUp()
    monkeypatch.setattr(scaler.sink, "handle", lambda decision: "failed")
    for i in range(3):
        scaler.on_row({"elapsed_s": i, "latency_p95_ms": 900.0, "target_workers": 1, "target_up": 1})
        time.sleep(0.2)                                    # each one is handled before the next
    scaler.close()
    results = [r for r in _records(tmp_path / "autoscale.jsonl") if "result_of" in r]
    assert [r["outcome"] for r in results] == ["failed", "skipped", "skipped"]
    assert results[1]["reason"].startswith("backing off:") and scaler.skipped == 2
