"""Incidents the target observes: one JSON line each, counted in lab_incidents_total."""

from __future__ import annotations

import json
import re
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families


def incident_counts(text: str) -> dict[str, float]:
    return {s.labels["kind"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "lab_incidents_total"}


def test_an_incident_is_one_line_in_the_state_folder_and_the_shared_log(tmp_path):
    from target_app.incidents import IncidentLog

    shared = tmp_path / "events.jsonl"
    shared.write_text('{"event": "fault_inject"}\n')
    log = IncidentLog(tmp_path, shared)
    entry = log.record("worker_killed", "rss 612 MB above 600", pid=4242)
    lines = shared.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == entry
    assert list(entry) == ["ts", "event", "kind", "pid", "detail"]
    assert entry["event"] == "incident" and entry["kind"] == "worker_killed" and entry["pid"] == 4242
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    assert json.loads((tmp_path / "incidents.jsonl").read_text()) == entry


def test_counts_cover_every_process_and_skip_a_partial_line(tmp_path):
    from target_app.incidents import IncidentLog, append_line

    reader, writer = IncidentLog(tmp_path), IncidentLog(tmp_path)
    assert reader.counts() == {"worker_killed": 0, "pool_exhausted": 0}
    writer.record("pool_exhausted")
    writer.record("pool_exhausted")
    append_line(reader.path, b'{"ts": "x", "event": "incident", "kind": "worker_ki')   # mid-write
    assert reader.counts()["pool_exhausted"] == 2 and reader.counts()["worker_killed"] == 0
    append_line(reader.path, b'lled"}\n')
    assert reader.counts() == {"worker_killed": 1, "pool_exhausted": 2}


def test_concurrent_writers_never_interleave_lines(tmp_path):
    """Long lines from many threads and a second log object: every line stays whole."""
    from target_app.incidents import IncidentLog

    shared = tmp_path / "events.jsonl"
    logs = [IncidentLog(tmp_path / str(n % 2), shared) for n in range(8)]
    for n in range(2):
        (tmp_path / str(n)).mkdir()
    detail = "x" * 20000                     # far above any stdio buffer

    def write(log):
        for _ in range(50):
            log.record("pool_exhausted", detail)

    threads = [threading.Thread(target=write, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = shared.read_bytes().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["detail"] == detail for line in lines)


def test_incidents_appear_on_metrics_with_every_kind(app, client):
    assert incident_counts(client.get("/metrics").get_data(as_text=True)) == {
        "worker_killed": 0.0, "pool_exhausted": 0.0}
    app.extensions["lab_incidents"].record("pool_exhausted", "test")
    assert incident_counts(client.get("/metrics").get_data(as_text=True))["pool_exhausted"] == 1.0


def test_the_incident_log_comes_from_config_or_lab_incident_log(tmp_path, monkeypatch):
    from target_app.app import create_app

    monkeypatch.setenv("LAB_INCIDENT_LOG", str(tmp_path / "events.jsonl"))
    app = create_app({"STATE_DIR": str(tmp_path / "state")})
    app.extensions["lab_incidents"].record("worker_killed")
    assert json.loads((tmp_path / "events.jsonl").read_text())["kind"] == "worker_killed"


@pytest.mark.parametrize("configured", [False, True])
def test_target_config_alone_decides_the_incident_log(tmp_path, monkeypatch, configured):
    from target_app.server import Target, TargetConfig

    monkeypatch.setenv("LAB_INCIDENT_LOG", "/somewhere/else.jsonl")
    config = TargetConfig(state_dir=tmp_path, incident_log=tmp_path / "events.jsonl" if configured else None)
    env = Target(config).environment()
    assert env.get("LAB_INCIDENT_LOG") == (str(tmp_path / "events.jsonl") if configured else None)
