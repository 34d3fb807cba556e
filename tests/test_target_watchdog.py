"""max_worker_rss_mb: the master kills a worker above the limit, as a container OOM kill would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

HOLD = "import sys, time; data = bytearray(b'x') * (int(sys.argv[1]) << 20); print('ready', flush=True); time.sleep(60)"


def holder(mb: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(mb)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_watchdog_kills_only_the_process_above_the_limit_once(tmp_path):
    from target_app.incidents import IncidentLog
    from target_app.watchdog import RssWatchdog

    big, small = holder(120), holder(1)
    try:
        incidents = IncidentLog(tmp_path, tmp_path / "events.jsonl")
        dog = RssWatchdog(lambda: [big.pid, small.pid], 80, incidents)
        assert dog.check() == [big.pid]
        assert big.wait(5) == -9 and small.poll() is None
        assert dog.check() == []                     # a killed pid is not killed or counted twice
        line = json.loads((tmp_path / "events.jsonl").read_text())
        assert line["kind"] == "worker_killed" and line["pid"] == big.pid
        assert "above max_worker_rss_mb 80" in line["detail"]
        assert incidents.counts()["worker_killed"] == 1
    finally:
        for proc in (big, small):
            proc.kill()
            proc.wait()


def test_the_limit_reaches_master_and_workers_and_lifts_the_leak_cap(tmp_path, monkeypatch):
    from target_app.app import create_app
    from target_app.faults import MEMORY_CAP_MB
    from target_app.server import Target, TargetConfig

    monkeypatch.setenv("LAB_MAX_WORKER_RSS_MB", "99")      # the config decides, not the caller's env
    assert "LAB_MAX_WORKER_RSS_MB" not in Target(TargetConfig(state_dir=tmp_path)).environment()
    env = Target(TargetConfig(state_dir=tmp_path, max_worker_rss_mb=1500)).environment()
    assert env["LAB_MAX_WORKER_RSS_MB"] == "1500"
    monkeypatch.setenv("LAB_MAX_WORKER_RSS_MB", "1500")
    assert create_app({"STATE_DIR": str(tmp_path)}).extensions["lab_faults"].leak_cap_mb == 1500
    monkeypatch.delenv("LAB_MAX_WORKER_RSS_MB")
    assert create_app({"STATE_DIR": str(tmp_path)}).extensions["lab_faults"].leak_cap_mb == MEMORY_CAP_MB


WORKER = """
from prometheus_client import Counter
Counter("lab_test_requests", "requests served by this worker").inc(3)
"""


def test_a_scrape_while_a_worker_creates_its_file_keeps_every_other_worker(tmp_path):
    """A worker's file exists empty for a moment after its boot (and for good if it is killed then)."""
    import os

    from prometheus_client import CollectorRegistry, generate_latest

    from target_app.metrics import WorkerFilesCollector

    for _ in range(2):      # two workers that counted 3 requests each
        subprocess.run([sys.executable, "-c", WORKER], check=True, timeout=60,
                       env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    (tmp_path / "counter_4242.db").touch()      # a third, created and not yet sized
    registry = CollectorRegistry()
    registry.register(WorkerFilesCollector(str(tmp_path)))

    def scrape() -> dict[str, float]:
        return {s.name: s.value for f in text_string_to_metric_families(generate_latest(registry).decode())
                for s in f.samples}

    samples = scrape()
    assert samples["lab_test_requests_total"] == 6
    assert samples["lab_metrics_unreadable_files"] == 1
    (tmp_path / "counter_4242.db").unlink()
    samples = scrape()
    assert samples["lab_test_requests_total"] == 6 and samples["lab_metrics_unreadable_files"] == 0


def incidents_on(url: str) -> dict[str, float]:
    return {s.labels["kind"]: s.value
            for f in text_string_to_metric_families(requests.get(url, timeout=5).text)
            for s in f.samples if s.name == "lab_incidents_total"}


@pytest.mark.slow
def test_a_memory_leak_ends_in_a_worker_kill_recorded_as_an_incident(make_target, tmp_path):
    """2 x 2 target, limit baseline + 40 MB, leak at 1.0: both workers killed within seconds."""
    from target_app.server import free_port

    events = tmp_path / "events.jsonl"
    probe = make_target(workers=1, threads=1)
    baseline = max(p.memory_info().rss for p in psutil.Process(probe.pid).children()) / 2**20
    probe.stop()
    limit = round(baseline + 40)
    target = make_target(workers=2, threads=2, metrics_port=free_port(), incident_log=events,
                         max_worker_rss_mb=limit)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(target.worker_pids()) != 2:
        time.sleep(0.1)    # /healthz answered from the first worker; wait for the second
    time.sleep(0.5)
    before = set(target.worker_pids())
    assert len(before) == 2
    token = {"Authorization": f"Bearer {target.config.token}"}
    started = time.monotonic()
    fault = requests.post(target.url + "/admin/faults", headers=token, timeout=5,
                          json={"kind": "memory", "intensity": 1.0, "duration_s": 30})
    assert fault.status_code == 201, fault.text
    with ThreadPoolExecutor(max_workers=4) as pool:
        # Slow requests on every thread, in flight when the kill comes.
        slow = [pool.submit(requests.get, target.url + "/stress?wait_min=15&wait_max=15", timeout=30)
                for _ in range(4)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and incidents_on(target.config.metrics_url)["worker_killed"] < 2:
            time.sleep(0.2)
        killed_after = time.monotonic() - started
        requests.delete(target.url + "/admin/faults", headers=token, timeout=20)
        failed = 0
        for f in slow:
            try:
                f.result()
            except requests.RequestException:
                failed += 1
    print(f"baseline {baseline:.0f} MB, limit {limit} MB, both killed after {killed_after:.1f} s")
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    kills = [e for e in lines if e["kind"] == "worker_killed"]
    assert len(kills) >= 2 and {e["pid"] for e in kills[:2]} == before
    assert failed == 4                                   # in-flight requests of a killed worker fail
    assert incidents_on(target.url + "/metrics")["worker_killed"] == len(kills)
    deadline = time.monotonic() + 15
    # Until the master has reaped the killed ones and booted two new workers.
    while time.monotonic() < deadline and (len(target.worker_pids()) != 2 or set(target.worker_pids()) & before):
        time.sleep(0.2)
    after = set(target.worker_pids())
    assert len(after) == 2 and not after & before         # the master replaced both
    assert requests.get(target.url + "/products/1", timeout=10).status_code == 200
    assert "Perhaps out of memory?" in target.log_path.read_text()
