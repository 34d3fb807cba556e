"""The target served by real gunicorn: saturation, faults across workers, metrics, shutdown."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from externaltools import require_tool

pytestmark = pytest.mark.slow


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    resp = requests.get(url, timeout=30)
    return time.perf_counter() - started, resp.status_code


def inject(target, **fault):
    resp = requests.post(target.url + "/admin/faults", json=fault, timeout=5,
                         headers={"Authorization": f"Bearer {target.config.token}"})
    assert resp.status_code == 201, resp.text


def clear(target):
    requests.delete(target.url + "/admin/faults", timeout=5,
                    headers={"Authorization": f"Bearer {target.config.token}"})


def tree(target) -> list[psutil.Process]:
    master = psutil.Process(target.pid)
    return [master] + master.children(recursive=True)


def gauge(target, name, kind) -> float:
    text = requests.get(target.url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("kind") == kind:
                return s.value
    raise AssertionError(f"{name}{{kind={kind}}} missing")


def test_saturation_shows_in_p95(make_target):
    """Past capacity requests queue: p95 at overload is at least 5x the p95 at light load."""
    target = make_target(workers=1, threads=2)
    url = target.url + "/stress?wait_min=0.05&wait_max=0.05"
    light = [timed_get(url)[0] for _ in range(20)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        heavy = [t for t, _ in pool.map(lambda _: timed_get(url), range(120))]
    p95_light, p95_heavy = np.percentile(light, 95), np.percentile(heavy, 95)
    print(f"p95 light {p95_light * 1000:.0f} ms, overload {p95_heavy * 1000:.0f} ms")
    assert p95_heavy >= 5 * p95_light


def test_metrics_pass_promtool_and_sum_workers(make_target):
    promtool = require_tool("promtool")
    target = make_target(workers=2, threads=4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: requests.get(f"{target.url}/products/{i % 50 + 1}", timeout=10),
                      range(200)))
    text = requests.get(target.url + "/metrics", timeout=5).text
    check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    values = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            values.setdefault(s.name, 0.0)
            values[s.name] += s.value
    assert values["flask_http_request_total"] == 200     # every worker's requests counted once
    assert values["lab_target_workers"] == 2


def test_each_fault_kind_shows_its_effect_on_all_workers(make_target):
    target = make_target(workers=2, threads=4)
    url = target.url + "/products/1"

    # latency: every worker adds the delay, not only the one that got the admin call
    base = np.median([timed_get(url)[0] for _ in range(10)])
    inject(target, kind="latency", intensity=0.1)
    time.sleep(0.2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        slow = list(pool.map(lambda _: timed_get(url)[0], range(16)))
    assert min(slow) >= base + 0.12
    assert gauge(target, "lab_fault_intensity", "latency") == pytest.approx(0.1)
    clear(target)

    # errors: about half the answers are 5xx
    inject(target, kind="errors", intensity=0.5)
    time.sleep(0.2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = [c for _, c in pool.map(lambda _: timed_get(url), range(200))]
    share = sum(c >= 500 for c in codes) / len(codes)
    assert 0.3 <= share <= 0.7, share
    clear(target)

    # cpu: the process tree burns about one core per worker at intensity 1
    procs = tree(target)
    for p in procs:
        p.cpu_percent(None)
    time.sleep(1.0)
    idle_cpu = sum(p.cpu_percent(None) for p in procs)
    inject(target, kind="cpu", intensity=1.0, duration_s=3)
    time.sleep(0.3)
    for p in procs:
        p.cpu_percent(None)
    time.sleep(1.5)
    busy_cpu = sum(p.cpu_percent(None) for p in procs)
    assert busy_cpu >= idle_cpu + 60, (idle_cpu, busy_cpu)
    time.sleep(1.5)   # the timed fault clears itself
    assert gauge(target, "lab_fault_active", "cpu") == 0.0

    # memory: RSS grows while the leak runs and comes back down when cleared
    def rss_mb():
        return sum(p.memory_info().rss for p in tree(target)) / 2**20

    before = rss_mb()
    inject(target, kind="memory", intensity=1.0)
    time.sleep(3.5)   # 10 MB/s per worker
    leaked = rss_mb()
    assert leaked >= before + 50, (before, leaked)
    clear(target)
    time.sleep(0.8)
    assert rss_mb() <= before + 15, (before, rss_mb())


def test_sigterm_finishes_in_flight_requests_and_leaves_no_orphans(make_target):
    target = make_target(workers=2, threads=2)
    pids = [p.pid for p in tree(target)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = pool.submit(timed_get, target.url + "/stress?wait_min=1&wait_max=1")
        time.sleep(0.3)
        code = target.stop()
        elapsed, status = pending.result()
    assert status == 200 and elapsed >= 1.0
    assert code == 0
    time.sleep(0.2)
    assert not [pid for pid in pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_metrics_listener_answers_while_every_worker_thread_is_busy(make_target):
    from target_app.server import free_port

    target = make_target(workers=1, threads=2, metrics_port=free_port())
    with ThreadPoolExecutor(max_workers=6) as pool:
        busy = [pool.submit(timed_get, target.url + "/stress?wait_min=2&wait_max=2") for _ in range(6)]
        time.sleep(0.5)
        started = time.perf_counter()
        resp = requests.get(target.config.metrics_url, timeout=2)
        elapsed = time.perf_counter() - started
        assert resp.status_code == 200 and elapsed < 0.5
        assert "lab_http_requests_in_flight 2.0" in resp.text
        assert "lab_fault_active" in resp.text
        for f in busy:
            f.result()


def stamped_get(url: str) -> int:
    stamp = f"t={int(time.time() * 1e6)}"
    return requests.get(url, headers={"X-Request-Start": stamp}, timeout=30).status_code


def queue_totals(url: str) -> tuple[float, float]:
    """(count, sum) of lab_request_queue_seconds at a metrics URL."""
    count = total = None
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for s in family.samples:
            if s.name == "lab_request_queue_seconds_count":
                count = s.value
            elif s.name == "lab_request_queue_seconds_sum":
                total = s.value
    assert count is not None and total is not None, "lab_request_queue_seconds missing"
    return count, total


def test_queue_time_rises_under_saturation(make_target):
    """More concurrent slow requests than threads: later ones wait for a thread, and it shows."""
    from target_app.server import free_port

    target = make_target(workers=1, threads=2, metrics_port=free_port())
    url = target.url + "/stress?wait_min=0.4&wait_max=0.4"
    for _ in range(4):
        assert stamped_get(url) == 200
    light_n, light_sum = queue_totals(target.config.metrics_url)
    with ThreadPoolExecutor(max_workers=12) as pool:
        assert set(pool.map(lambda _: stamped_get(url), range(12))) == {200}
    for metrics_url in (target.config.metrics_url, target.url + "/metrics"):
        n, total_s = queue_totals(metrics_url)
        assert n == light_n + 12
        light_mean, heavy_mean = light_sum / light_n, (total_s - light_sum) / 12
        print(f"{metrics_url}: queue mean light {light_mean * 1000:.1f} ms, saturated {heavy_mean * 1000:.0f} ms")
        # 12 requests of 0.4 s on 2 threads: the n-th pair waits about (n-1) x 0.4 s, mean ~1 s
        assert light_mean < 0.05 and heavy_mean >= 0.5


def metric_values(url: str) -> dict[tuple[str, str | None], float]:
    text = requests.get(url, timeout=5).text
    return {(s.name, s.labels.get("kind")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_threads_fault_shrinks_capacity_until_exhausted_and_no_worker_timeout_hides_it(
        make_target, tmp_path, monkeypatch):
    """1 x 2 target, threads fault at 1.0 for 6 s: one thread stuck, then both; then all back.

    The worker timeout is cut to 2 s: gthread's heartbeat comes from the main thread, so an
    exhausted pool for 3 s must not make the master abort and replace the worker.
    """
    from target_app.server import Target, free_port

    command = Target.command

    def short_timeout(self):
        cmd = command(self)
        cmd[cmd.index("--timeout") + 1] = "2"
        return cmd

    monkeypatch.setattr(Target, "command", short_timeout)
    events = tmp_path / "events.jsonl"
    target = make_target(workers=1, threads=2, metrics_port=free_port(), incident_log=events)
    workers = target.worker_pids()
    done, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                if requests.get(target.url + "/products/1", timeout=15).status_code == 200:
                    done.append(time.monotonic())
            except requests.RequestException:
                pass

    inject(target, kind="threads", intensity=1.0, duration_s=6)
    t0 = time.monotonic()
    stuck_seen = []
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(6):
            pool.submit(client)
        while time.monotonic() - t0 < 8.0:
            v = metric_values(target.config.metrics_url)
            stuck_seen.append((time.monotonic() - t0, v[("lab_fault_stuck_threads", None)]))
            time.sleep(0.25)
        stop.set()
    served = [t - t0 for t in done]
    half = sum(0.3 <= t <= 2.7 for t in served)
    exhausted = sum(3.4 <= t <= 5.7 for t in served)
    after = sum(t >= 6.3 for t in served)
    print(f"served: one thread stuck {half}, exhausted {exhausted}, after {after}; stuck {stuck_seen}")
    assert half > 50 and exhausted == 0 and after > 0
    assert max(n for t, n in stuck_seen if 0.5 <= t <= 2.7) == 1.0
    assert min(n for t, n in stuck_seen if 3.4 <= t <= 5.7) == 2.0
    assert stuck_seen[-1][1] == 0.0
    v = metric_values(target.config.metrics_url)
    assert v[("lab_incidents_total", "pool_exhausted")] == 1.0
    assert metric_values(target.url + "/metrics")[("lab_incidents_total", "pool_exhausted")] == 1.0
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["event"], e["kind"]) for e in lines] == [("incident", "pool_exhausted")]
    assert lines[0]["pid"] == workers[0]
    assert target.worker_pids() == workers
    assert "WORKER TIMEOUT" not in target.log_path.read_text()


def test_a_stopping_target_releases_its_stuck_threads(make_target):
    """SIGTERM lets stuck threads go: the held request is answered and stop is quick."""
    target = make_target(workers=1, threads=2)
    inject(target, kind="threads", intensity=1.0, duration_s=60)
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(timed_get, target.url + "/products/1")
        time.sleep(1.0)
        assert not held.done()
        started = time.perf_counter()
        code = target.stop()
        stopped_in = time.perf_counter() - started
        _elapsed, status = held.result(timeout=5)
    print(f"stopped in {stopped_in:.2f} s")
    assert status == 200 and code == 0 and stopped_in < 5.0


def booted_workers(target, n: int) -> list[int]:
    """Worker pids once all `n` have booted (/healthz answered from the first one only)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(target.worker_pids()) != n:
        time.sleep(0.1)
    time.sleep(0.5)
    pids = target.worker_pids()
    assert len(pids) == n
    return pids


def test_a_worker_that_got_no_request_still_applies_the_memory_fault(make_target):
    """Only one worker receives the admin call; the other must leak too, from its own watcher."""
    target = make_target(workers=2, threads=1)
    workers = [psutil.Process(pid) for pid in booted_workers(target, 2)]
    before = [p.memory_info().rss / 2**20 for p in workers]
    inject(target, kind="memory", intensity=1.0, duration_s=10)
    time.sleep(2.0)
    grown = [p.memory_info().rss / 2**20 - b for p, b in zip(workers, before)]
    clear(target)
    print(f"grown per worker: {grown} MB")
    assert min(grown) >= 10
