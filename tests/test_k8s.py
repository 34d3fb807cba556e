"""deploy/k8s/: valid for Kubernetes 1.34 (offline, against its schemas with kubernetes-validate),
nothing on a public interface, secrets only from the Secret, lab commands that parse, and the
shard count, worker replicas and scrape annotations kept in step."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from externaltools import require_tool

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.34.0"     # docs/scale-out.md names it
SECRET = "lab-secrets"


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def pod_specs() -> list[tuple[str, dict]]:
    """(owner name, pod spec) of every workload."""
    out = []
    for doc in documents():
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "Job"):
            out.append((doc["metadata"]["name"], spec["template"]["spec"]))
    return out


def containers() -> list[tuple[str, dict]]:
    return [(owner, c) for owner, spec in pod_specs() for c in spec.get("containers", []) + spec.get("initContainers", [])]


def test_every_manifest_is_valid_for_the_named_kubernetes_version():
    import kubernetes_validate

    docs = documents()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Job", "ConfigMap", "PersistentVolumeClaim", "Namespace"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert all(d["metadata"].get("namespace") == "stability-lab" for d in docs if d["kind"] != "Namespace")


def test_the_validation_catches_a_broken_manifest():
    import kubernetes_validate

    broken = copy.deepcopy(by_kind("Deployment")["target"])
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "five thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    unknown = copy.deepcopy(by_kind("Service")["target"])
    unknown["spec"]["exposeToTheWorld"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSION, strict=True)


def test_nothing_is_on_a_public_interface_by_default():
    for name, service in by_kind("Service").items():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", name
        assert all("nodePort" not in p for p in service["spec"]["ports"]), name
    assert not by_kind("Ingress")
    for owner, spec in pod_specs():
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), owner
    for owner, c in containers():
        assert all("hostPort" not in p for p in c.get("ports", [])), owner
        assert c.get("securityContext", {}).get("privileged") is not True, owner
    for owner, spec in pod_specs():
        if spec["containers"][0]["image"].startswith("stability-lab"):
            assert spec["securityContext"]["runAsNonRoot"] is True, owner


def test_secrets_come_from_the_secret_and_no_token_is_written_down():
    refs = 0
    for owner, c in containers():
        for env in c.get("env", []):
            if "TOKEN" in env["name"] or "PASSWORD" in env["name"]:
                assert "value" not in env, f"{owner}: {env['name']} written in the manifest"
                assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET
                refs += 1
    assert refs >= 1
    assert not by_kind("Secret"), "the Secret is made with kubectl create secret (namespace.yaml)"
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert not re.search(r"lab_[A-Za-z0-9_-]{16,}", text)
    assert f"create secret generic {SECRET}" in (K8S / "namespace.yaml").read_text()


def lab_args(command: list[str]) -> list[str] | None:
    if command[:2] == ["python", "lab.py"]:
        return [a.replace("$(JOB_COMPLETION_INDEX)", "0") for a in command[2:]]
    return None


def test_every_lab_command_in_the_manifests_parses():
    import typer

    import lab

    group = typer.main.get_command(lab.app)
    seen = 0
    for owner, c in containers():
        args = lab_args(c.get("command", []))
        if args is None:
            continue
        path, cmd = [], group
        while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
            path.append(args[0])
            cmd = cmd.commands[args.pop(0)]
        assert path, f"{owner}: not a lab command: {c['command']}"
        cmd.make_context(" ".join(path), list(args), resilient_parsing=False)   # raises on an unknown option
        seen += 1
    assert seen >= 4


def test_indexed_job_shards_and_the_merge_agree():
    jobs = by_kind("Job")
    shards, merge = jobs["lab-dataset"], jobs["lab-dataset-merge"]
    assert shards["spec"]["completionMode"] == "Indexed"
    n = shards["spec"]["completions"]
    command = shards["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--shard") + 1] == f"$(JOB_COMPLETION_INDEX)/{n}"
    out = command[command.index("--out") + 1]
    assert "$(JOB_COMPLETION_INDEX)" in out
    env = {e["name"]: e for e in shards["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "job-completion-index" in env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    merged = merge["spec"]["template"]["spec"]["containers"][0]["command"]
    assert merged[2:4] == ["dataset", "merge"]
    assert merged[4:4 + n] == [out.replace("$(JOB_COMPLETION_INDEX)", str(i)) for i in range(n)]
    assert merge["spec"]["suspend"] is True
    for job in (shards, merge):
        volumes = job["spec"]["template"]["spec"]["volumes"]
        assert volumes[0]["persistentVolumeClaim"]["claimName"] == "lab-data"
    assert "ReadWriteMany" in by_kind("PersistentVolumeClaim")["lab-data"]["spec"]["accessModes"]


def test_locust_workers_scale_with_replicas_and_split_the_open_rate_by_them():
    deployments = by_kind("Deployment")
    workers = deployments["locust-worker"]
    replicas = workers["spec"]["replicas"]
    assert replicas >= 2
    for name in ("locust-worker", "locust-master"):
        env = {e["name"]: e.get("value") for e in deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["LAB_LOCUST_PROCESSES"] == str(replicas), name
    command = workers["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--master-host") + 1] in by_kind("Service")


def test_prometheus_scrapes_target_and_monitor_like_the_compose_stack_and_passes_promtool(tmp_path):
    deployments = by_kind("Deployment")
    for name, port in (("target", 9100), ("monitor", 9105)):
        template = deployments[name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
        ports = [p["containerPort"] for p in template["spec"]["containers"][0]["ports"]]
        assert port in ports
        service_ports = [p["port"] for p in by_kind("Service")[name]["spec"]["ports"]]
        assert port in service_ports
    config = by_kind("ConfigMap")["prometheus-config"]["data"]["prometheus.yml"]
    parsed = yaml.safe_load(config)
    compose = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.compose.yml").read_text())
    assert parsed["global"] == compose["global"]
    jobs = {j["job_name"]: j for j in parsed["scrape_configs"]}
    for job in compose["scrape_configs"]:
        if job["job_name"] != "alertmanager":     # no Alertmanager in the cluster manifests
            assert jobs[job["job_name"]] == job
    (tmp_path / "prometheus.yml").write_text(config)
    promtool = require_tool("promtool")
    done = subprocess.run([promtool, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
