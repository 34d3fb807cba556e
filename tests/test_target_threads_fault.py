"""The threads fault: request threads that never return, growing until the pool is exhausted."""

from __future__ import annotations

import json
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families


def test_stuck_target_grows_with_elapsed_share_of_the_duration():
    from target_app.faults import Fault, stuck_target

    full = Fault("threads", 1.0, started_at=100.0, expires_at=110.0)
    assert [stuck_target(full, 4, 100.0 + t) for t in (0, 0.1, 2.5, 2.6, 5, 7.6, 10, 20)] == \
        [0, 1, 1, 2, 2, 4, 4, 4]
    half = Fault("threads", 0.5, started_at=100.0, expires_at=110.0)
    assert stuck_target(half, 4, 110.0) == 2 and stuck_target(half, 3, 110.0) == 2
    assert stuck_target(Fault("threads", 0.0, 100.0, 110.0), 4, 110.0) == 0


def test_threads_fault_needs_a_duration():
    from target_app.faults import FaultSpecError, parse_fault

    with pytest.raises(FaultSpecError, match="duration_s"):
        parse_fault({"kind": "threads", "intensity": 1.0})
    assert parse_fault({"kind": "threads", "intensity": 1.0, "duration_s": 5}).kind == "threads"


def start_request(engine, held: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: held.append(engine.hold_if_stuck()), daemon=True)
    thread.start()
    return thread


def wait_until(check, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_stuck_threads_grow_exhaust_the_pool_once_and_are_released_on_delete(tmp_path):
    from target_app.faults import FaultEngine, FaultStore, parse_fault
    from target_app.incidents import IncidentLog

    incidents = IncidentLog(tmp_path, tmp_path / "events.jsonl")
    seen = []
    engine = FaultEngine(FaultStore(tmp_path), threads=2, incidents=incidents, on_stuck=seen.append)
    engine.store.set(parse_fault({"kind": "threads", "intensity": 1.0, "duration_s": 2.0}))
    engine.refresh()
    held = []
    first = start_request(engine, held)
    assert wait_until(lambda: engine.stuck_threads == 1)
    assert engine.hold_if_stuck() is False             # target is 1 in the first half
    time.sleep(1.1)                                     # past half the duration: target 2
    second = start_request(engine, held)
    assert wait_until(lambda: engine.stuck_threads == 2)
    assert engine.hold_if_stuck() is False              # the pool of 2 is full of stuck threads
    assert wait_until(lambda: incidents.counts()["pool_exhausted"] == 1)
    line = json.loads((tmp_path / "events.jsonl").read_text())
    assert line["kind"] == "pool_exhausted" and "2 of 2" in line["detail"]
    assert first.is_alive() and second.is_alive()

    engine.store.clear("threads")
    engine.refresh()
    first.join(1.0)
    second.join(1.0)
    assert not first.is_alive() and not second.is_alive() and held == [True, True]
    assert engine.stuck_threads == 0 and seen == [1, 2, 1, 0]
    assert incidents.counts()["pool_exhausted"] == 1     # once per exhaustion
    engine.stop()


def test_an_expiring_fault_and_a_shutdown_both_release(tmp_path):
    from target_app.faults import FaultEngine, FaultStore, parse_fault

    engine = FaultEngine(FaultStore(tmp_path), threads=4)
    engine.store.set(parse_fault({"kind": "threads", "intensity": 1.0, "duration_s": 0.4}))
    engine.refresh()
    held = []
    t = start_request(engine, held)
    assert wait_until(lambda: engine.stuck_threads == 1)
    t.join(1.0)
    assert not t.is_alive() and held == [True]

    engine.store.set(parse_fault({"kind": "threads", "intensity": 1.0, "duration_s": 30}))
    engine.refresh()
    t = start_request(engine, held)
    assert wait_until(lambda: engine.stuck_threads == 1)
    engine.release()
    t.join(1.0)
    assert not t.is_alive()
    assert engine.hold_if_stuck() is False               # a stopping worker makes no new ones
    engine.stop()


def test_threads_fault_through_the_admin_api_and_its_gauge(client, admin_headers):
    resp = client.post("/admin/faults", json={"kind": "threads", "intensity": 1.0},
                       headers=admin_headers)
    assert resp.status_code == 400 and "duration_s" in resp.get_json()["error"]
    resp = client.post("/admin/faults", json={"kind": "threads", "intensity": 0.5, "duration_s": 60},
                       headers=admin_headers)
    assert resp.status_code == 201 and "threads" in resp.get_json()["kinds"]
    values = {(s.name, s.labels.get("kind")): s.value
              for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
              for s in f.samples}
    assert values[("lab_fault_active", "threads")] == 1.0
    assert values[("lab_fault_stuck_threads", None)] == 0.0
    assert client.delete("/admin/faults/threads", headers=admin_headers).status_code == 200
