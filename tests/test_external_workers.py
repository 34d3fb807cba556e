"""run-scenario --expect-workers N --master-bind HOST[:PORT]: the options, checked without a run
(tests/test_netns.py runs workers on hosts of their own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contract.errors import BadInput
from loadtests.harness import RunOptions, _locust_commands, master_address, resolve_scenario, worker_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("bind, expected", [
    (None, ("127.0.0.1", 5557)), ("127.0.0.2", ("127.0.0.2", 5557)), ("127.0.0.1:6001", ("127.0.0.1", 6001)),
    ("[::1]:6002", ("::1", 6002)), ("::1", ("::1", 5557)),
])
def test_loopback_master_addresses_need_nothing_more(bind, expected):
    assert master_address(RunOptions(expect_workers=2, master_bind=bind)) == expected


def test_another_address_needs_allow_remote_and_allow_remote_is_enough():
    opts = RunOptions(expect_workers=2, master_bind="198.18.0.2:5557")
    with pytest.raises(BadInput, match=r"^--master-bind: 198\.18\.0\.2 is not a loopback address; .*--allow-remote$"):
        master_address(opts)
    opts.allow_remote = True
    assert master_address(opts) == ("198.18.0.2", 5557)


@pytest.mark.parametrize("opts, message", [
    (RunOptions(master_bind="127.0.0.1"), "--master-bind: only with --expect-workers"),
    (RunOptions(expect_workers=2, workers=2), "--expect-workers: not with --workers"),
    (RunOptions(expect_workers=2, master_bind="target:5557"), "expected an IP address"),
    (RunOptions(expect_workers=2, master_bind="127.0.0.1:x"), "expected an IP address"),
    (RunOptions(expect_workers=2, master_bind="127.0.0.1:70000"), "port 70000 is not 1-65535"),
])
def test_bad_combinations_are_one_line(opts, message):
    with pytest.raises(BadInput, match=message) as err:
        master_address(opts)
    assert "\n" not in str(err.value)


def test_external_workers_start_only_a_master_that_expects_them():
    opts = RunOptions(expect_workers=3, master_bind="127.0.0.1:6003")
    (master,) = _locust_commands(opts, "http://127.0.0.1:5000", master_port=1234)
    assert "--master" in master and "--worker" not in master
    assert master[master.index("--expect-workers") + 1] == "3"
    assert master[master.index("--master-bind-host") + 1] == "127.0.0.1"
    assert master[master.index("--master-bind-port") + 1] == "6003"
    assert len(_locust_commands(RunOptions(workers=2), "http://127.0.0.1:5000", 1234)) == 3


def fingerprint(env: dict[str, str]) -> dict:
    code = "import json, loadtests.locustfile as f; print(json.dumps(f.fingerprint()))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("duration, truncate", [(None, False), (30, False), (30, True)])
def test_a_worker_given_worker_env_follows_the_same_scenario_as_the_master(tmp_path, duration, truncate):
    """The master reads the harness's scenario.json; a worker elsewhere only the variables it is told."""
    opts = RunOptions(scenario="spike", seed=5, duration_s=duration, truncate=truncate, expect_workers=2)
    scenario = resolve_scenario(opts)
    resolved = tmp_path / "scenario.json"
    resolved.write_text(json.dumps(scenario.to_dict()))
    master = fingerprint({"LAB_SCENARIO_JSON": str(resolved), "LAB_SEED": "5", "LAB_LOCUST_PROCESSES": "2"})
    worker = fingerprint(worker_env(opts, scenario))
    assert worker == master
    assert master["duration_s"] == scenario.duration_s and master["processes"] == 2


def test_cli_refuses_a_remote_master_address_without_allow_remote_before_anything_starts(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "lab.py"), "run-scenario", "smoke", "--expect-workers", "2",
                           "--master-bind", "198.18.0.2", "--out", str(tmp_path / "runs"), "--quiet"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--allow-remote" in done.stderr
    assert not (tmp_path / "runs").exists()
