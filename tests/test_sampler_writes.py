"""The collector's rows when the disk refuses them: nothing recorded is lost, the reason is kept."""

from __future__ import annotations

import io
import json
import os
import time

import pandas as pd
import pytest

from collector import sampler
from collector.sampler import STOPPED_KEY, Collector, CollectorConfig
from contract.schema import COLUMNS
from contract.scenario import load_scenario


def _scenario(duration_s):
    return load_scenario("smoke").scaled(duration_s).to_dict()


def _collector(tmp_path, duration_s=30):
    (tmp_path / "locust").mkdir(exist_ok=True)
    config = CollectorConfig(out_dir=str(tmp_path), duration_s=duration_s,
                             scenario=_scenario(duration_s),
                             t0=time.time() - 2 * duration_s,   # every deadline has passed: no waiting
                             faults_enabled=False)
    return Collector(config, out=io.StringIO())


def test_a_failed_write_stops_the_collector_with_its_reason_and_whole_rows(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 6:                  # the header and five rows get through
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(sampler.os, "fsync", fsync)
    collector = _collector(tmp_path)
    summary = collector.run()
    reason = f"write failed: [Errno 28] No space left on device: {tmp_path / 'metrics.csv'}"
    assert summary["stopped"] == reason and summary["rows"] == 5
    assert json.loads((tmp_path / "collector.json").read_text())["stopped"] == reason
    text = (tmp_path / "metrics.csv").read_text()
    assert text.endswith("\n") and text.count("\n") == 6          # the failed row was cut off
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert list(frame.columns) == COLUMNS and frame["elapsed_s"].tolist() == list(range(5))
    lines = [json.loads(line) for line in collector.out.getvalue().splitlines()]
    assert len(lines) == 6 and lines[-1] == {STOPPED_KEY: reason}


def test_the_collector_exits_1_after_a_failed_write(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sampler.os, "fsync", fsync)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"out_dir": str(tmp_path), "duration_s": 5, "t0": time.time() - 20,
                                  "scenario": _scenario(5), "faults_enabled": False,
                                  "emit_rows": False}))
    (tmp_path / "locust").mkdir()
    assert sampler.main([str(config)]) == 1
    assert json.loads((tmp_path / "collector.json").read_text())["stopped"].startswith(
        "write failed: [Errno 5] Input/output error")
