"""The Prometheus alerting rules on the monitor's metrics pass promtool's check and unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from externaltools import require_tool

RULES = Path(__file__).resolve().parent.parent / "prometheus" / "rules"


@pytest.mark.slow
def test_every_file_prometheus_loads_from_rules_is_a_valid_rule_file():
    # prometheus.yml loads rules/*.yml: a unit-test file there would stop Prometheus starting.
    promtool = require_tool("promtool")
    files = sorted(RULES.glob("*.yml"))
    assert RULES / "monitor.yml" in files
    out = subprocess.run([promtool, "check", "rules", *map(str, files)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout


@pytest.mark.slow
def test_rules_pass_their_promtool_unit_tests():
    promtool = require_tool("promtool")
    out = subprocess.run([promtool, "test", "rules", "monitor_test.yml"], cwd=RULES / "tests",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
