"""An open-model run end to end: the plan, queue time, pooled windows and an incident in metrics.csv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contract.runfolder import read_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# A leak at full intensity grows each worker by ~10 MB/s from a ~33 MB start: a 75 MB limit
# is crossed a few seconds after the fault starts, and the master kills the worker.
LEAK = """
name = "leak-to-kill"
duration_s = 16
seed = 4

[slo]
latency_p95_ms = 500
window_s = 5

[target]
max_worker_rss_mb = 75

[[stages]]
name = "steady"
until_s = 16
rate = 25

[[faults]]
kind = "memory"
start_s = 3
duration_s = 12
intensity = 1.0
"""


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leak")
    (tmp / "leak.toml").write_text(LEAK)
    proc = subprocess.run([sys.executable, str(ROOT / "lab.py"), "run-scenario", str(tmp / "leak.toml"),
                           "--out", str(tmp / "runs"), "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return read_run(next((tmp / "runs").iterdir()))


def test_the_leak_ends_in_a_worker_kill_recorded_when_it_happened(leak_run):
    frame = leak_run.frame
    killed = frame.loc[frame["incident"].str.contains("worker_killed"), "elapsed_s"].tolist()
    assert killed, frame[["elapsed_s", "fault", "rss_mb", "incident"]].to_string()
    # Observed by the target while the fault ran, not copied from the plan's start.
    assert all(3 < s <= 15 for s in killed)
    events = [json.loads(line) for line in (leak_run.path / "events.jsonl").read_text().splitlines()]
    kills = [e for e in events if e.get("event") == "incident" and e["kind"] == "worker_killed"]
    assert kills and "max_worker_rss_mb 75" in kills[0]["detail"]
    assert leak_run.meta["summary"]["incidents"]["worker_killed"] >= 1
    # The host's CPU outside the target and Locust is summarised (host_busy warns above 25 %).
    summary = leak_run.meta["summary"]
    assert 0 <= summary["other_cpu_pct_median"] <= summary["other_cpu_pct_p90"]
    assert any(w.startswith("host_busy:") for w in leak_run.meta["warnings"]) == (summary["other_cpu_pct_median"] > 25)


def test_open_model_rows_carry_the_plan_the_queue_and_pooled_windows(leak_run):
    frame, meta = leak_run.frame, leak_run.meta
    assert meta["load_model"] == "open" and meta["scenario"]["slo"]["window_s"] == 5
    assert (frame["planned_rate"] == 25).all() and frame["planned_users"].isna().all()
    assert frame["users"].isna().all()
    steady = frame.iloc[1:3]
    assert steady["arrivals"].between(10, 45).all() and (steady["dropped"] == 0).all()
    assert frame["outstanding"].notna().all()
    assert frame["srv_queue_p95_ms"].notna().sum() >= 10
    # The pooled window holds more requests than the second itself once it has filled.
    later = frame.iloc[6:]
    assert (later["window_requests"] >= later["rps"]).all()
    assert (later["window_requests"] > later["rps"]).any()
