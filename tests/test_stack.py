"""The compose stack started for real (docker-compose.yml + deploy/compose.test.yml).

Run by `bash deploy/stack-test.sh`, which starts a Docker engine of its own, builds the
images from Debian's packages and sets DOCKER_HOST; skipped, with the reason, where there
is no engine or no images. The stack comes up, one labelled run is recorded through the
`runner` service into the lab-data volume, a tiny live model is trained in the lab image
(on synthetic runs), the monitor starts on that model, and Prometheus must have scraped the target and the monitor.
Everything (containers, networks, volumes) is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "deploy" / "compose.test.yml")]
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "labstack")
IMAGES = ("stability-lab:stack-test", "lab-stack/prometheus:debian", "lab-stack/alertmanager:debian")
RUN_SECONDS = 60
ENV = {"LAB_ADMIN_TOKEN": "lab_stack-test-token", "GRAFANA_ADMIN_PASSWORD": "stack-test-unused",
       "LAB_RUN_SCENARIO": "fault-latency", "LAB_LOCUST_WORKERS": "2"}

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1200)]


def _docker() -> str:
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else (shutil.which("docker") or "docker")


def _skip_reason() -> str | None:
    if os.environ.get("LAB_STACK_UNAVAILABLE"):
        return f"no Docker engine: {os.environ['LAB_STACK_UNAVAILABLE']}"
    if shutil.which("docker-compose") is None:
        return "docker-compose is not installed (deploy/stack-test.sh installs it)"
    try:
        info = subprocess.run([_docker(), "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine answers ({exc.__class__.__name__}); run deploy/stack-test.sh"
    if info.returncode != 0:
        return "no Docker engine answers at DOCKER_HOST; run deploy/stack-test.sh, which starts one"
    missing = [i for i in IMAGES if subprocess.run([_docker(), "image", "inspect", i],
                                                   capture_output=True).returncode != 0]
    if missing:
        return f"images {', '.join(missing)} not built; run deploy/stack-test.sh, which builds them"
    return None


def compose(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, **ENV)
    out = subprocess.run(["docker-compose", "--project-directory", str(ROOT), "-p", PROJECT, *FILES, *args],
                         env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and out.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args[:3])} exited {out.returncode}:\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def container(service: str) -> str:
    ids = compose("ps", "-q", service).stdout.split()
    assert ids, f"no container for {service}"
    return ids[0]


def wait_healthy(service: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    state = "?"
    while time.monotonic() < deadline:
        state = subprocess.run([_docker(), "inspect", "--format", "{{.State.Health.Status}}", container(service)],
                               capture_output=True, text=True).stdout.strip()
        if state == "healthy":
            return
        time.sleep(2)
    logs = compose("logs", "--tail", "40", service, check=False).stdout
    raise AssertionError(f"{service} not healthy after {timeout_s:g} s (state {state}):\n{logs}")


def prometheus_api(path: str) -> dict:
    # From inside the Prometheus container: nothing on the host listens for the stack.
    out = compose("exec", "-T", "prometheus", "wget", "-q", "-O", "-", f"http://127.0.0.1:9090{path}")
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def stack():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    compose("down", "-v", "--remove-orphans", check=False)
    try:
        yield
    finally:
        compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=180)


def test_stack_records_a_labelled_run_and_prometheus_scrapes_target_and_monitor(stack):
    config = yaml.safe_load(compose("config").stdout)
    assert "grafana" not in config["services"] or config["services"]["grafana"].get("profiles")

    compose("up", "-d", "target", "prometheus", "alertmanager")
    wait_healthy("target")
    wait_healthy("prometheus")

    # The runner service's own command (docker-compose.yml), shortened to RUN_SECONDS.
    command = config["services"]["runner"]["command"] + ["--duration", str(RUN_SECONDS), "--quiet"]
    assert "--prometheus-url" in command and "--allow-remote" in command
    compose("run", "--rm", "runner", *command, timeout=600)

    shown = compose("run", "--rm", "runner", "python", "-c",
                    "import json, pathlib; [print(json.dumps(json.loads((p / 'run.json').read_text()))) "
                    "for p in sorted(pathlib.Path('/data/runs').iterdir())]").stdout
    metas = [json.loads(line) for line in shown.splitlines() if line.startswith("{")]
    assert len(metas) == 1, shown
    meta = metas[0]
    assert meta["status"] == "complete", meta["warnings"]
    assert meta["rows"] == RUN_SECONDS
    assert meta["scenario"]["name"] == "fault-latency"
    assert meta["collector"]["source"] == "prometheus"
    assert meta["loadgen"]["workers"] == 2
    assert meta["summary"]["fault_s"].get("latency", 0) > 0, "the fault was injected over the admin API"
    assert meta["summary"]["requests"] > RUN_SECONDS

    # The monitor's model, trained in the lab image on synthetic runs (a run against an
    # external target has no process columns, which the live profile reads).
    compose("run", "--rm", "runner", "python", "-c",
            "from modeling.synthetic import synthetic_run, write_run\n"
            "for n, (name, seed) in enumerate([('spike-closed', 1), ('ramp-closed', 2), ('spike-closed', 3)]):\n"
            "    write_run(synthetic_run(name, seed), f'/data/synthetic/r{n}')", timeout=300)
    compose("run", "--rm", "runner", "python", "lab.py", "train", "/data/synthetic", "--out", "/data/models/lab",
            "--preset", "tiny", "--profile", "live", "--quiet", timeout=600)
    compose("up", "-d", "monitor")
    wait_healthy("monitor")

    deadline, jobs = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        targets = prometheus_api("/api/v1/targets")["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t["health"] for t in targets}
        if jobs.get("target") == "up" and jobs.get("monitor") == "up":
            break
        time.sleep(2)
    assert jobs.get("target") == "up" and jobs.get("monitor") == "up", jobs
    up = prometheus_api("/api/v1/query?query=lab_monitor_target_up")["data"]["result"]
    assert up and up[0]["value"][1] == "1", up
    served = prometheus_api("/api/v1/query?query=sum(flask_http_request_total)")["data"]["result"]
    assert served and float(served[0]["value"][1]) > RUN_SECONDS, "the target's request counters, scraped"
