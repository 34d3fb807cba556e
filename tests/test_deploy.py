"""The deployment stack, checked without a Docker engine: compose file, Prometheus and
Alertmanager configs, the Grafana dashboard against real /metrics output, and a local
distributed Locust run (master + 2 workers)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from externaltools import require_tool

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
PROM_COMPOSE = DEPLOY / "prometheus" / "prometheus.compose.yml"
PROM_LOCAL = ROOT / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stability-lab.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "lab.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
SECRETS = {"LAB_ADMIN_TOKEN": "lab_compose-test-token", "GRAFANA_ADMIN_PASSWORD": "compose-test-password"}
LAB_SERVICES = ("target", "locust-master", "locust-worker", "runner", "monitor")


# ------------------------------------------------------------------ docker-compose


def compose_env(**overrides: str) -> dict[str, str]:
    """The environment without any of the compose file's variables, plus `overrides`."""
    ours = re.compile(r"^(LAB_|GRAFANA_|LOCUST_|TARGET_|COMPOSE_)")
    env = {k: v for k, v in os.environ.items() if not ours.match(k)}
    env.update(overrides)
    return env


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    tool = require_tool("docker-compose")
    return subprocess.run([tool, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose's resolved view of the file, with the required secrets set."""
    out = compose_config(compose_env(**SECRETS))
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def published(port) -> tuple[str, str]:
    """Return (host address, published port) of a ports entry, short or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", ""))
    parts = str(port).split("/")[0].split(":")
    if len(parts) == 3:
        return parts[0], parts[1]
    return "", parts[0]     # "5000:5000" or "5000": every interface


def mounts(service: dict) -> dict[str, str]:
    """Return {path in the container: source} of a service's volumes, short or long syntax."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = str(volume.get("source", ""))
        else:
            source, target = volume.split(":")[:2]
            out[target] = source
    return out


def test_compose_config_accepts_the_file_and_has_every_service(compose):
    services = compose["services"]
    for name in ("target", "locust-master", "locust-worker", "runner", "monitor",
                 "prometheus", "grafana", "alertmanager"):
        assert name in services, f"service {name} missing"
    # Scaling needs a worker without a fixed container name or host port.
    worker = services["locust-worker"]
    assert "container_name" not in worker and not worker.get("ports")
    assert "locust-master" in " ".join(worker["command"])


def test_every_published_port_binds_loopback_on_the_host(compose):
    seen = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host_ip, host_port = published(port)
            assert host_ip == "127.0.0.1", f"{name}: port {port} is published on every interface"
            seen.append(host_port)
    assert {"5000", "9100", "8089", "9090", "9093", "3000", "9105"} <= set(seen)
    assert len(seen) == len(set(seen)), f"a host port is published twice: {sorted(seen)}"


def test_lab_publish_addr_opens_only_what_remote_load_generators_need():
    out = compose_config(compose_env(**SECRETS, LAB_PUBLISH_ADDR="192.0.2.10"))
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    opened = {(name, published(port)[1]) for name, service in services.items()
              for port in service.get("ports", []) if published(port)[0] == "192.0.2.10"}
    assert opened == {("target", "5000"), ("locust-master", "5557")}


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_secrets_have_no_default_and_compose_refuses_to_start_without_them(missing):
    env = compose_env(**{k: v for k, v in SECRETS.items() if k != missing})
    out = compose_config(env)
    assert out.returncode != 0
    assert missing in out.stderr
    # ... and the file itself holds no value for them.
    text = COMPOSE.read_text()
    for match in re.finditer(r"\$\{" + missing + r"([^}]*)\}", text):
        assert match.group(1).startswith(":?"), f"${{{missing}{match.group(1)}}} has a default"


def test_grafana_password_and_admin_token_come_from_the_environment(compose):
    services = compose["services"]
    env = services["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() == "false"
    for name in ("target", "runner", "monitor"):
        assert services[name]["environment"]["LAB_ADMIN_TOKEN"] == SECRETS["LAB_ADMIN_TOKEN"], name


def _lab_params(command: str) -> set[str]:
    import typer

    import lab

    click_app = typer.main.get_command(lab.app)
    if command not in click_app.commands:
        pytest.skip(f"`lab.py {command}` does not exist yet")
    return {opt for p in click_app.commands[command].params for opt in p.opts + p.secondary_opts}


def test_lab_services_run_real_commands_with_real_options(compose):
    services = compose["services"]
    target = services["target"]["command"]
    # The runner's container is not a loopback client: the admin API must accept it (token still needed).
    assert {"--bind-all", "--admin-allow-remote"} <= set(target)
    assert target[target.index("--metrics-port") + 1] == "9100"
    runner = services["runner"]["command"]
    assert runner[runner.index("--host") + 1] == "http://target:5000" and "--allow-remote" in runner
    assert runner[runner.index("--out") + 1].startswith("/data/")
    assert "/data" in mounts(services["runner"]) and "/data" in mounts(services["monitor"])

    locust_help = subprocess.run([sys.executable, "-m", "locust", "--help"], capture_output=True,
                                 text=True, timeout=60, cwd=ROOT).stdout
    missing = []
    for name in LAB_SERVICES:
        cmd = services[name]["command"]
        options = {a for a in cmd if a.startswith("--")}
        if cmd[:2] == ["python", "lab.py"]:
            if cmd[2] == "monitor":
                continue    # checked below, skipped while the command is being written
            known = _lab_params(cmd[2])
            missing += [f"{name}: lab.py {cmd[2]} {o}" for o in options - known]
        else:
            assert cmd[:3] == ["python", "-m", "locust"], cmd
            missing += [f"{name}: locust {o}" for o in options
                        if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", locust_help)]
    assert not missing, missing


def test_monitor_service_uses_real_monitor_options(compose):
    cmd = compose["services"]["monitor"]["command"]
    known = _lab_params("monitor")
    unknown = [o for o in cmd if o.startswith("--") and o not in known]
    assert not unknown, f"lab.py monitor has no {unknown}"
    # A service name is not a loopback literal: without --allow-remote the monitor refuses it.
    from loadtests.harness import check_host

    target = cmd[cmd.index("--target") + 1]
    check_host(target, allow_remote="--allow-remote" in cmd, option="--target")


def _non_loopback_address() -> str:
    import ipaddress
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))      # picks the outgoing interface; sends nothing
            address = sock.getsockname()[0]
        except OSError:
            pytest.skip("no non-loopback IPv4 address on this machine")
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("no non-loopback IPv4 address on this machine")
    return address


def test_admin_api_answers_a_non_loopback_client_only_with_admin_allow_remote(make_target):
    """In compose the runner reaches the target from another container, not from loopback."""
    address = _non_loopback_address()
    token = {"Authorization": "Bearer lab_remote-test"}
    closed = make_target(host=address, token="lab_remote-test")
    assert requests.get(closed.url + "/admin/faults", headers=token, timeout=5).status_code == 403
    opened = make_target(host=address, token="lab_remote-test", admin_allow_remote=True)
    assert requests.get(opened.url + "/admin/faults", timeout=5).status_code == 401
    assert requests.get(opened.url + "/admin/faults", headers={"Authorization": "Bearer nope"},
                        timeout=5).status_code == 401
    assert requests.get(opened.url + "/admin/faults", headers=token, timeout=5).status_code == 200


def test_serve_admin_allow_remote_reaches_the_target_config(monkeypatch):
    from typer.testing import CliRunner

    import lab
    import target_app.server as server

    seen = []

    def fake_serve(config, on_ready=None):
        seen.append(config)
        return 0

    monkeypatch.setattr(server, "serve_foreground", fake_serve)
    args = ["serve", "--bind-all", "--port", "5000", "--metrics-port", "9100", "--token", "lab_x"]
    for extra, expected in (([], False), (["--admin-allow-remote"], True)):
        result = CliRunner().invoke(lab.app, args + extra)
        assert result.exit_code == 0, result.output
        assert seen[-1].admin_allow_remote is expected and seen[-1].token == "lab_x"
        assert seen[-1].host == "0.0.0.0" and seen[-1].metrics_port == 9100


# ------------------------------------------------------------------ Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_is_slim_python_non_root_with_the_lab_installed_from_pyproject():
    steps = dockerfile()
    # The base is a build argument whose default is the official slim image users pull.
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim") and steps[1] == ("FROM", "${BASE_IMAGE}")
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "pip install ." in runs and "useradd" in runs
    cmd = json.loads(next(args for op, args in steps if op == "CMD"))
    assert cmd[:3] == ["python", "lab.py", "serve"] and "--bind-all" in cmd

    # The build context keeps everything `pip install .` needs.
    import fnmatch
    import tomllib

    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", "README.md"] + [m + ".py" for m in project["tool"]["setuptools"]["py-modules"]]
    needed += [p.name for p in ROOT.iterdir() if p.is_dir() and any(
        fnmatch.fnmatch(p.name, pattern) for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"])]
    assert len(needed) > 5
    for name in needed:
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in ignored), f".dockerignore drops {name}"


def test_dockerfile_healthcheck_passes_on_a_healthy_target_and_fails_on_a_closed_port(make_target):
    from target_app.server import free_port

    line = next(args for op, args in dockerfile() if op == "HEALTHCHECK")
    check = json.loads(line[line.index("CMD") + 3:].strip())
    assert check[:2] == ["python", "-c"]
    target = make_target()
    env = dict(os.environ, LAB_HEALTHCHECK_URL=target.url + "/healthz")
    assert subprocess.run([sys.executable, "-c", check[2]], env=env, capture_output=True, timeout=30).returncode == 0
    env["LAB_HEALTHCHECK_URL"] = f"http://127.0.0.1:{free_port()}/healthz"
    assert subprocess.run([sys.executable, "-c", check[2]], env=env, capture_output=True, timeout=30).returncode != 0


# ------------------------------------------------------------------ Prometheus and Alertmanager


def _check_config(promtool: str, config: Path) -> str:
    out = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_promtool_accepts_the_compose_prometheus_config_and_its_rules():
    promtool = require_tool("promtool")
    text = _check_config(promtool, PROM_COMPOSE)
    found = re.search(r"SUCCESS: (\d+) rule files found", text)
    assert found and int(found.group(1)) >= 1, text
    assert "monitor.yml" in text and "rules found" in text


def test_prometheus_container_sees_the_rules_where_the_config_expects_them(compose, tmp_path):
    """Rebuild the container's file layout from the compose mounts and check that config."""
    promtool = require_tool("promtool")
    service = compose["services"]["prometheus"]
    for target, source in mounts(service).items():
        if not source.startswith("/"):
            continue        # a named volume (storage)
        place = tmp_path / target.lstrip("/")
        place.parent.mkdir(parents=True, exist_ok=True)
        place.symlink_to(source)
    config = next(a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.file="))
    text = _check_config(promtool, tmp_path / config.lstrip("/"))
    assert re.search(r"SUCCESS: [1-9]\d* rule files found", text), text


def _jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_compose_prometheus_config_keeps_in_step_with_the_local_one():
    compose_cfg = yaml.safe_load(PROM_COMPOSE.read_text())
    if not PROM_LOCAL.exists():
        pytest.skip("prometheus/prometheus.yml not there yet")
    local = yaml.safe_load(PROM_LOCAL.read_text())
    for key in ("scrape_interval", "evaluation_interval"):
        assert compose_cfg["global"][key] == local["global"][key], key
    assert set(_jobs(local)) <= set(_jobs(compose_cfg))

    def rule_files(cfg: dict, path: Path) -> set[Path]:
        return {p.resolve() for pattern in cfg.get("rule_files", []) for p in path.parent.glob(pattern)}

    assert rule_files(compose_cfg, PROM_COMPOSE) == rule_files(local, PROM_LOCAL) != set()
    # The compose addresses are the service names the lab uses.
    jobs = _jobs(compose_cfg)
    assert jobs["target"]["static_configs"][0]["targets"] == ["target:9100"]
    assert jobs["monitor"]["static_configs"][0]["targets"] == ["monitor:9105"]
    assert compose_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_amtool_accepts_the_alertmanager_config(compose):
    amtool = require_tool("amtool")
    out = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert mounts(compose["services"]["alertmanager"])["/etc/alertmanager/alertmanager.yml"] == str(ALERTMANAGER)


# ------------------------------------------------------------------ Grafana


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_queries(dash: dict) -> list[tuple[str, str]]:
    """Return (panel/ref label, expr) for every query of every panel."""
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]))
    return out


# Grafana fills these in before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "4s", "$__interval": "1s", "$__range": "15m"}


def as_promql(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_folder(compose):
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    (source,) = sources
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    grafana = mounts(compose["services"]["grafana"])
    assert grafana["/etc/grafana/provisioning"] == str(DEPLOY / "grafana" / "provisioning")
    assert grafana[providers[0]["options"]["path"]] == str(DASHBOARD.parent)

    dash = dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for ds in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
            assert ds == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
    # No two panels cover the same cell.
    cells = {}
    for panel in dash["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each query with Prometheus' own parser, types included, as a recording rule."""
    promtool = require_tool("promtool")
    queries = panel_queries(dashboard())
    rules = [{"record": f"dashboard:query_{n}", "expr": as_promql(expr)} for n, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(queries)} rules found" in out.stdout

    # The same check rejects a broken query (it really parses).
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "rate(flask_http_request_total)"}]}]}))
    bad = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "range vector" in bad.stdout + bad.stderr


# A PromQL scanner just good enough to list a query's selectors: metric names with their
# matcher labels, and the labels of by/without/on/ignoring/group_* clauses. promtool has
# validated the syntax above, so the scanner can trust the structure.
_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@])
  | (?P<space>\s+)
""", re.X)
_AGGREGATORS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "group", "limitk", "limit_ratio"}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _AGGREGATORS | _GROUPING | {"offset", "bool", "and", "or", "unless", "atan2", "inf", "nan"}


def selectors(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """Return ([(metric name, matcher label names)], grouping label names) of a PromQL query."""
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m, f"cannot scan {expr[pos:]!r}"
        pos = m.end()
        if m.lastgroup != "space":
            tokens.append((m.lastgroup, m.group()))
    names, grouping, i = [], set(), 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if kind == "op" and text == "[":
            while tokens[i][1] != "]":
                i += 1
        elif kind == "ident" and text in _GROUPING and nxt == "(":
            i += 2
            while tokens[i][1] != ")":
                if tokens[i][0] == "ident":
                    grouping.add(tokens[i][1])
                i += 1
        elif kind == "ident" and (text in _KEYWORDS or nxt == "("):
            pass            # an operator keyword, an aggregation or a function
        elif kind == "ident":
            labels = set()
            if nxt == "{":
                i += 2
                while tokens[i][1] != "}":
                    if tokens[i][0] == "ident":
                        labels.add(tokens[i][1])
                    i += 1
            names.append((text, labels))
        else:
            assert not (kind == "op" and text == "{"), f"selector without a metric name in {expr!r}"
        i += 1
    return names, grouping


def test_selector_scanner_reads_names_matchers_and_grouping():
    names, grouping = selectors(
        'sum by (le, endpoint) (rate(flask_http_request_duration_seconds_bucket{job="target", status=~"5.."}[4s]))'
        ' / on(instance) group_left max(lab_target_workers) offset 1s or vector(0) > bool 1e3')
    assert names == [("flask_http_request_duration_seconds_bucket", {"job", "status"}),
                     ("lab_target_workers", set())]
    assert grouping == {"le", "endpoint", "instance"}


def exposed(text: str) -> dict[str, set[str]]:
    """Series names in a /metrics text and the label names each one carries."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def monitor_metrics() -> tuple[dict[str, set[str]], str]:
    """The monitor's series: its real exporter's /metrics when it exists, else docs/HELPERS.md."""
    try:
        from monitor.exporter import MonitorExporter
        from monitor.policy import Prediction
    except ImportError:
        doc = (ROOT / "docs" / "HELPERS.md").read_text()
        out = {}
        for name, labels in re.findall(r"(lab_monitor_\w+)(?:\{([^}]*)\})?", doc):
            out.setdefault(name, set()).update(re.findall(r"(\w+)=", labels or ""))
        return out, "docs/HELPERS.md"
    import time

    with MonitorExporter(port=0, horizon_s=3) as exporter:
        exporter.publish(Prediction(time.time(), probability=0.4, p95_ms=(200.0, 300.0, 400.0),
                                    observed_p95_ms=180.0, workers=2, regime="stable"))
        exporter.count("alert", "alertmanager", "sent")
        text = requests.get(exporter.url, timeout=5).text
    return exposed(text), "monitor/exporter.py"


# Series that Prometheus makes itself rather than scraping them.
PROMETHEUS_SERIES = {"up": {"job", "instance"},
                     "ALERTS": {"alertname", "alertstate", "severity", "service", "job", "instance"}}
TARGET_LABELS = {"job", "instance"}     # added by Prometheus to every scraped series


def test_dashboard_queries_use_only_metrics_the_target_and_monitor_export(make_target):
    from target_app.server import free_port

    target = make_target(metrics_port=free_port())
    for path in ("/", "/products", "/products/1", "/products/search?q=eco", "/nope"):
        requests.get(target.url + path, timeout=10)
    series = exposed(requests.get(target.config.metrics_url, timeout=10).text)
    app_series = exposed(requests.get(target.url + "/metrics", timeout=10).text)
    assert set(series) == set(app_series), "the metrics listener and /metrics expose different series"
    monitor, monitor_source = monitor_metrics()
    assert monitor, monitor_source
    known = {**series, **monitor, **PROMETHEUS_SERIES}

    problems, used = [], set()
    for where, expr in panel_queries(dashboard()):
        names, grouping = selectors(as_promql(expr))
        labels_here = set(TARGET_LABELS)
        for name, matchers in names:
            used.add(name)
            if name not in known:
                problems.append(f"{where}: {name} is not exported (monitor names from {monitor_source})")
                continue
            labels_here |= known[name]
            problems += [f"{where}: {name} has no label {m}" for m in matchers - known[name] - TARGET_LABELS]
        problems += [f"{where}: no series in the query has label {g}" for g in grouping - labels_here]
    assert not problems, "\n".join(problems)

    # What the issue asks the dashboard to show.
    for name in ("flask_http_request_total", "flask_http_request_duration_seconds_bucket",
                 "lab_http_requests_in_flight", "lab_target_cpu_seconds_total",
                 "lab_target_resident_memory_bytes", "lab_fault_active", "lab_fault_intensity",
                 "lab_monitor_predicted_latency_p95_ms", "lab_monitor_observed_latency_p95_ms",
                 "lab_monitor_slo_violation_probability", "lab_monitor_predicted_stability_percent",
                 "lab_monitor_regime", "lab_monitor_recommended_action", "lab_monitor_actions_total"):
        assert name in used, f"the dashboard shows nothing from {name}"


def test_target_cpu_and_memory_metrics_track_the_process_tree(make_target):
    import psutil
    from prometheus_client.parser import text_string_to_metric_families

    from target_app.server import free_port

    target = make_target(metrics_port=free_port(), workers=2)
    tree = [psutil.Process(target.pid)] + psutil.Process(target.pid).children(recursive=True)
    requests.get(target.url + "/stress?cpu_ms=300&wait_min=0&wait_max=0", timeout=10)
    text = requests.get(target.config.metrics_url, timeout=10).text
    values = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    rss = sum(p.memory_info().rss for p in tree)
    assert 0.5 * rss < values["lab_target_resident_memory_bytes"] < 2 * rss
    assert values["lab_target_cpu_seconds_total"] >= 0.25    # the 300 ms of CPU just burnt, at least


# ------------------------------------------------------------------ distributed Locust run


@pytest.mark.slow
def test_distributed_smoke_run_both_workers_generate_load_and_rows_are_complete(tmp_path):
    env = dict(os.environ)
    env.pop("LAB_ADMIN_TOKEN", None)
    proc = subprocess.run([sys.executable, str(ROOT / "lab.py"), "run-scenario", "smoke-closed", "--workers", "2",
                           "--out", str(tmp_path), "--quiet"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["loadgen"]["workers"] == 2

    # The master sends no requests: one samples file per worker process, each with load in
    # every stage (every stage has at least 3 users, so each worker has one, and a user
    # completes a request at least every 3.5 s: /stress waits up to 2 s, think time 1.5 s).
    # How many seconds they cover is chance, so that is not what is checked.
    files = sorted((run_dir / "locust").glob("samples-*.csv"))
    assert len(files) == 2, [f.name for f in files]
    t0 = float((run_dir / "locust" / "t0").read_text())
    for f in files:
        with f.open() as fh:
            rows = list(csv.DictReader(fh))
        stages = {("warm" if t < 6 else "busy" if t < 14 else "cool")
                  for t in (float(r["ts"]) - t0 for r in rows) if 0 <= t < 20}
        assert stages == {"warm", "busy", "cool"}, f"{f.name}: {len(rows)} requests, stages {stages}"

    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["elapsed_s"]) for r in rows] == list(range(20))
    assert all(r["target_up"] == "1" and r["rps"] != "" and r["users"] != "" for r in rows)
    assert sum(float(r["rps"]) for r in rows) >= 20


def test_the_test_override_builds_every_image_from_the_local_debian_base():
    """deploy/compose.test.yml (deploy/stack-test.sh): no image from a registry, Grafana left out."""
    tool = require_tool("docker-compose")
    out = subprocess.run([tool, "--project-directory", str(ROOT), "-f", str(COMPOSE), "-f",
                          str(DEPLOY / "compose.test.yml"), "config"],
                         env=compose_env(**SECRETS), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    for name in LAB_SERVICES:
        assert services[name]["image"] == "stability-lab:stack-test", name
        assert services[name]["build"]["args"]["BASE_IMAGE"] == "lab-stack/debian-base:latest", name
    for name, binary in (("prometheus", "/usr/bin/prometheus"), ("alertmanager", "/usr/bin/prometheus-alertmanager")):
        assert services[name]["image"] == f"lab-stack/{name}:debian"
        dockerfile = DEPLOY / "test-images" / services[name]["build"]["dockerfile"]
        steps = [line for line in dockerfile.read_text().splitlines() if line and not line.startswith("#")]
        assert steps[:2] == ["ARG BASE_IMAGE", "FROM ${BASE_IMAGE}"]
        assert json.loads(steps[-1].split(None, 1)[1]) == [binary]
    assert services["grafana"]["profiles"] == ["grafana"], "Grafana has no image or package reachable here"
