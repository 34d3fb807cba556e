"""lab.py monitor end to end: a live-profile model, a real target, its /metrics, a target restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_model(tmp_path_factory):
    """A tiny live-profile model trained on synthetic runs (seconds, not minutes)."""
    from modeling.pipeline import train_bundle
    from modeling.synthetic import synthetic_run, write_run

    base = tmp_path_factory.mktemp("live")
    runs = []
    for n, (scenario, seed) in enumerate([("spike-closed", 1), ("ramp-closed", 2), ("spike-closed", 3)]):
        runs.append(write_run(synthetic_run(scenario, seed), base / "runs" / f"r{n}"))
    out = base / "model"
    train_bundle([str(r) for r in runs], out, preset="tiny", profile="live", seed=0)
    return out


def monitor_values(url: str) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=2).text):
        for s in family.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            values[key] = s.value
    return values


def test_monitor_predicts_exports_and_survives_a_target_restart(live_model, make_target, tmp_path):
    from target_app.server import free_port

    target = make_target(workers=2, threads=4)
    port = free_port()
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "lab.py"), "monitor", "--target", target.url, "--model",
         str(live_model), "--port", str(port), "--events", str(events), "--duration", "40"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        # predictions appear once the model's window is full (tiny preset: 8 s)
        deadline = time.monotonic() + 30
        values = {}
        while time.monotonic() < deadline:
            requests.get(target.url + "/products/1", timeout=2)
            try:
                values = monitor_values(url)
            except requests.RequestException:
                values = {}
            prob = values.get("lab_monitor_slo_violation_probability")
            if prob is not None and prob == prob:     # not NaN
                break
            time.sleep(0.3)
        assert 0.0 <= values["lab_monitor_slo_violation_probability"] <= 1.0
        assert any(k.startswith("lab_monitor_predicted_latency_p95_ms|horizon_s=") for k in values)
        assert values["lab_monitor_target_up"] == 1.0
        assert values["lab_monitor_target_workers"] == 2.0

        # the target goes away: the monitor keeps running and says so
        old_port = target.config.port
        target.stop()
        time.sleep(3)
        assert proc.poll() is None
        assert monitor_values(url)["lab_monitor_target_up"] == 0.0

        # ... and comes back on the same port: the monitor sees it again
        from target_app.server import Target, TargetConfig

        again = Target(TargetConfig(port=old_port, workers=2, threads=4),
                       log_path=tmp_path / "again.log").start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and monitor_values(url)["lab_monitor_target_up"] != 1.0:
                time.sleep(0.5)
            assert monitor_values(url)["lab_monitor_target_up"] == 1.0
            assert proc.poll() is None
        finally:
            again.stop()
    finally:
        if proc.poll() is None:
            proc.send_signal(2)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "target DOWN" in stdout and "target up" in stdout


def test_monitor_refuses_a_lab_profile_model(tiny_lab_model, make_target):
    _runs, lab_model = tiny_lab_model      # train_bundle's default profile, "lab" (tests/conftest.py)
    assert json.loads((lab_model / "train.json").read_text())["profile"] == "lab"
    target = make_target()
    proc = subprocess.run([sys.executable, str(ROOT / "lab.py"), "monitor", "--target", target.url,
                           "--model", str(lab_model), "--duration", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--profile live" in proc.stderr and "Traceback" not in proc.stderr


def test_monitor_refuses_a_remote_target(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "lab.py"), "monitor", "--target",
                           "http://example.com", "--model", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr


@pytest.mark.slow
def test_a_plan_ahead_model_is_served_the_watched_runs_plan(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from contract.errors import BadInput
    from contract.scenario import load_scenario
    from modeling.forecaster import LSTMForecaster
    from modeling.synthetic import synthetic_run
    from monitor.live import OnlineModel

    runs = [synthetic_run("spike-closed", seed=s, duration_s=90) for s in (1, 2)]
    f = LSTMForecaster(preset="tiny", known_future=["planned_users"], future="plan", validation_fraction=0,
                       seed=1).fit(runs)
    bundle = SimpleNamespace(forecaster=f, regimes=None, meta={"profile": "lab"}, folder=tmp_path)
    with pytest.raises(BadInput, match="watches no lab run whose plan"):
        OnlineModel(bundle)
    plan = load_scenario("spike-closed").plan_of("planned_users")
    online = OnlineModel(bundle, plan=plan)
    seen = []
    real = f.predict_filled
    f.predict_filled = lambda values, future=None: seen.append(np.asarray(future)) or real(values, future)
    run = runs[0]
    for row in run.iloc[:40].to_dict("records"):
        online.observe(row)
    p = online.predict(0.0, run.iloc[39].to_dict())
    H = f.params_["horizon"]
    # The next H seconds of the plan after the newest row's second (elapsed 39), as the collector
    # records the plan column in a lab run (synthetic runs jitter theirs per seed, so the scenario's).
    assert run.iloc[39]["elapsed_s"] == 39
    np.testing.assert_array_equal(seen[-1], [plan(40 + i) for i in range(H)])
    assert len(p.p95_ms) == H and 0 <= p.probability <= 1
    assert plan(10_000) == plan(load_scenario("spike-closed").duration_s - 1)    # past the end: the last plan


def test_monitor_with_a_reactive_policy_file_scales_the_target_by_the_hpa_rule(live_model, make_target, tmp_path):
    from target_app.server import free_port

    target = make_target(workers=3, threads=4)
    policy = tmp_path / "reactive.toml"
    # An idle target is far below 70 % CPU per worker: the HPA rule wants 1 worker, once the
    # 3 it started with have left the (here 4 s) stabilisation window.
    policy.write_text('[policy]\nkind = "reactive"\npreset = "hpa"\nstabilization_down_s = 4\n')
    events = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "lab.py"), "monitor", "--target", target.url, "--model", str(live_model),
         "--port", str(free_port()), "--policy-file", str(policy), "--scale-target", "--events", str(events),
         "--duration", "12"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    downs = [d for d in lines if d["action"] == "scale_down"]
    assert downs and all(d["policy"] == "reactive:hpa" for d in lines)
    status = [line for line in proc.stdout.splitlines() if " action=" in line]
    first = next(i for i, line in enumerate(status) if "action=scale_down" in line)
    assert first >= 4 and all("workers=3" in line for line in status[:first])   # not before the window
    assert (downs[0]["workers"], downs[0]["desired_workers"]) == (3, 1)
    assert "cpu" in downs[0]["reason"] and downs[0]["outcomes"]["scale_target"] == "sent"
    assert len(target.worker_pids()) == 1
