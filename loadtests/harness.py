"""Orchestrate one labelled run: target, Locust subprocesses, fault schedule, collector.

`lab.py` never imports locust: Locust runs as `python -m locust` subprocesses, each in its
own session (so a terminal Ctrl-C reaches only this process, which then stops the
children in order: collector first, so every complete second is written, then Locust,
then the target).
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence
from urllib.parse import urlparse

import requests

from contract.runfolder import (COLLECTOR_CONFIG, COLLECTOR_JSON, EVENTS_JSONL, TARGET_STATE_DIR, LOCUST_DIR, METRICS_CSV,
                                REFUSED_TXT, SCENARIO_JSON, T0_FILE, atomic_write_json, host_facts, package_versions,
                                read_samples, utc_iso, write_run_json)
from contract.errors import BadInput, Interrupted, LabError
from target_app.server import Target, TargetConfig, die_with_parent, free_port

from contract.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


@dataclass
class RunOptions:
    scenario: str | None = None
    duration_s: int | None = None
    truncate: bool = False
    seed: int | None = None
    out: Path = Path("runs")
    run_id: str | None = None
    host: str | None = None
    allow_remote: bool = False
    admin_token: str | None = None
    workers: int = 0                      # Locust worker processes (0 = one local runner)
    target_workers: int | None = None
    target_threads: int | None = None
    prometheus_url: str | None = None
    locust_bind_all: bool = False
    extra_env: dict = field(default_factory=dict)
    expect_workers: int = 0               # Locust workers started elsewhere that connect to the master
    master_bind: str | None = None        # HOST[:PORT] the master listens on for them (default 127.0.0.1:5557)


class RowHook(Protocol):
    """Something that acts on each row as it is recorded (the closed-loop autoscaler).

    The harness calls `start` once the target is up, `on_row` for every row the collector
    records, and `close` at the end; what `close` returns is recorded in run.json under
    `name`. Values `on_row` returns label the second that is running when it returns, in
    the hook's `columns` of metrics.csv (the collector receives them on its stdin).
    """

    name: str
    columns: Sequence[str]

    def start(self, target_pid: int | None, run_dir: Path) -> dict: ...

    def on_row(self, row: dict) -> Mapping[str, str] | None: ...

    def close(self) -> dict: ...


@dataclass
class RunResult:
    run_dir: Path
    status: str
    meta: dict
    summary: dict


def check_host(url: str, allow_remote: bool) -> str:
    """Refuse a target that does not resolve to loopback unless allowed; return it normalised."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadInput(f"--host: {url!r} is not an http(s) URL like http://127.0.0.1:5000")
    if allow_remote:
        return url.rstrip("/")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 80, proto=socket.IPPROTO_TCP)
        addresses = {info[4][0] for info in infos}
    except socket.gaierror:
        addresses = set()
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise BadInput(f"--host: {parsed.hostname} does not resolve to a loopback address; "
                       f"load against other machines needs --allow-remote")
    return url.rstrip("/")


def check_prometheus(url: str) -> tuple[str, dict]:
    """Refuse a --prometheus-url that is not http(s) or not a ready Prometheus; return it and its build info."""
    from collector.promserver import check_server, check_url

    url = check_url(url)
    return url, check_server(url)


def resolve_scenario(opts: RunOptions) -> Scenario:
    from contract.scenario import DEFAULT_SCENARIO

    scenario = load_scenario(opts.scenario or DEFAULT_SCENARIO)
    if opts.seed is not None:
        scenario = scenario.with_seed(opts.seed)
    elif scenario.seed is None:
        scenario = scenario.with_seed(0)
    if opts.duration_s is not None:
        if opts.duration_s < 1:
            raise BadInput(f"--duration: must be at least 1 s, got {opts.duration_s}")
        scenario = scenario.truncated(opts.duration_s) if opts.truncate else scenario.scaled(opts.duration_s)
    return scenario


def new_run_id(scenario: Scenario, out: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{scenario.name}-s{scenario.seed}"
    run_id, n = base, 1
    while (out / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


class _Children:
    """The run's child processes, stopped in a fixed order however the run ends."""

    def __init__(self):
        self.target: Target | None = None
        self.locust: list[subprocess.Popen] = []
        self.collector: subprocess.Popen | None = None
        self.logs: list = []

    def popen(self, cmd, log_path: Path, cpus: list[int] | None = None, **kwargs) -> subprocess.Popen:
        log = open(log_path, "ab")
        self.logs.append(log)

        def preexec():
            die_with_parent()
            if cpus:
                os.sched_setaffinity(0, cpus)

        return subprocess.Popen(cmd, stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                                stdout=kwargs.pop("stdout", log), stderr=log, start_new_session=True,
                                preexec_fn=preexec, **kwargs)

    @staticmethod
    def _stop(proc: subprocess.Popen | None, timeout: float) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

    def stop_collector(self) -> None:
        self._stop(self.collector, 10)

    def stop_all(self) -> None:
        self.stop_collector()
        for proc in self.locust:
            self._stop(proc, 10)
        if self.target is not None:
            self.target.stop()
        for log in self.logs:
            log.close()
        self.logs.clear()


DEFAULT_MASTER_PORT = 5557   # Locust's own default, where workers look first


def master_address(opts: RunOptions) -> tuple[str, int] | None:
    """Return (host, port) the Locust master binds for external workers, or None without them.

    A host that is not a loopback address (workers on other machines) needs --allow-remote.
    """
    if opts.master_bind and opts.expect_workers <= 0:
        raise BadInput("--master-bind: only with --expect-workers N (workers started elsewhere)")
    if opts.expect_workers <= 0:
        return None
    if opts.workers > 0:
        raise BadInput("--expect-workers: not with --workers (the lab starts those itself); give one of them")
    text = opts.master_bind or "127.0.0.1"
    if text.startswith("["):                       # [IPv6]:PORT
        host, _, port_text = text[1:].partition("]")
        port_text = port_text.removeprefix(":")
    elif text.count(":") == 1:                     # IPv4:PORT
        host, port_text = text.split(":")
    else:                                          # IPv4 or bare IPv6
        host, port_text = text, ""
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text) if port_text else DEFAULT_MASTER_PORT
    except ValueError:
        raise BadInput(f"--master-bind: {text!r}: expected an IP address of this machine, "
                       f"optionally with :PORT") from None
    if not 1 <= port <= 65535:
        raise BadInput(f"--master-bind: port {port} is not 1-65535")
    if not address.is_loopback and not opts.allow_remote:
        raise BadInput(f"--master-bind: {host} is not a loopback address; workers on other machines "
                       f"need --allow-remote")
    return host, port


def worker_env(opts: RunOptions, scenario: Scenario) -> dict[str, str]:
    """The environment a worker started elsewhere needs to follow this run's scenario."""
    env = {"LAB_SCENARIO": opts.scenario or scenario.name, "LAB_SEED": str(scenario.seed or 0),
           "LAB_LOCUST_PROCESSES": str(max(1, opts.expect_workers))}
    if opts.duration_s is not None:
        env["LAB_DURATION_S"] = str(opts.duration_s)
        if opts.truncate:
            env["LAB_TRUNCATE"] = "1"
    return env


def _locust_commands(opts: RunOptions, host: str, master_port: int) -> list[list[str]]:
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host,
            "--loglevel", "WARNING"]
    external = master_address(opts)
    if external:
        return [base + ["--headless", "--master", "--master-bind-host", external[0],
                        "--master-bind-port", str(external[1]), "--expect-workers", str(opts.expect_workers),
                        "--csv", "locust/stats", "--only-summary"]]
    if opts.workers <= 0:
        return [base + ["--headless", "--csv", "locust/stats", "--only-summary"]]
    bind = "0.0.0.0" if opts.locust_bind_all else "127.0.0.1"
    master = base + ["--headless", "--master", "--master-bind-host", bind,
                     "--master-bind-port", str(master_port), "--expect-workers", str(opts.workers),
                     "--csv", "locust/stats", "--only-summary"]
    workers = [base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
               for _ in range(opts.workers)]
    return [master] + workers


def cpu_placement(available: set[int] | None = None) -> tuple[list[int] | None, list[int] | None]:
    """Return (load generator CPUs, target CPUs): the first and the last half of ours; None on one CPU.

    Apart, the target's capacity does not move with the load generator's CPU use.
    """
    cpus = sorted(os.sched_getaffinity(0) if available is None else available)
    if len(cpus) < 2:
        return None, None
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


@contextmanager
def _started_on(cpus: list[int] | None):
    """Run the block with this thread on `cpus`: processes it starts inherit them (before exec)."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)   # pid 0 is this thread on Linux
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class _FaultScheduler(threading.Thread):
    """Inject the scenario's faults at their times through the target's admin API."""

    def __init__(self, scenario: Scenario, url: str, token: str, t0: float, events_path: Path):
        super().__init__(name="fault-scheduler", daemon=True)
        self.scenario, self.url, self.token, self.t0 = scenario, url, token, t0
        self.events_path = events_path
        self.stop_event = threading.Event()
        self.failures: list[str] = []

    def _event(self, **fields) -> None:
        fields = {"ts": utc_iso(time.time(), ms=True), "elapsed_s": round(time.time() - self.t0, 3), **fields}
        with open(self.events_path, "a") as fh:
            fh.write(json.dumps(fields) + "\n")
            fh.flush()

    def _call(self, method: str, path: str, body=None) -> int | None:
        try:
            resp = requests.request(method, self.url + path, json=body, timeout=3,
                                    headers={"Authorization": f"Bearer {self.token}"})
            return resp.status_code
        except requests.RequestException:
            return None

    def run(self) -> None:
        plan = []
        for f in self.scenario.faults:
            plan.append((f.start_s, "inject", f))
            plan.append((f.start_s + f.duration_s, "clear", f))
        for at, action, fault in sorted(plan, key=lambda p: (p[0], p[1] == "inject")):
            delay = self.t0 + at - time.time()
            if delay > 0 and self.stop_event.wait(delay):
                break
            if action == "inject":
                # duration_s on the target too: the fault clears itself even if we die.
                code = self._call("POST", "/admin/faults", {
                    "kind": fault.kind, "intensity": fault.intensity, "duration_s": fault.duration_s})
                if code != 201:
                    self.failures.append(f"fault_injection_failed: {fault.kind} at {at} s (HTTP {code})")
            else:
                code = self._call("DELETE", f"/admin/faults/{fault.kind}")
            self._event(event=f"fault_{action}", kind=fault.kind, intensity=fault.intensity,
                        planned_s=at, http_status=code)

    def stop(self) -> None:
        self.stop_event.set()
        self._call("DELETE", "/admin/faults")


def run_scenario(opts: RunOptions, on_row: Callable[[dict], None] | None = None,
                 on_status: Callable[[str], None] | None = None,
                 hooks: Sequence[RowHook] = ()) -> RunResult:
    """Run one scenario end to end and return the run folder, status and summary.

    `on_row` sees every row (a progress bar); `hooks` also act on it and may label it.
    """
    scenario = resolve_scenario(opts)
    host = check_host(opts.host, opts.allow_remote) if opts.host else None
    external = master_address(opts)
    prometheus_url, prometheus_info = (check_prometheus(opts.prometheus_url) if opts.prometheus_url
                                       else (None, {}))
    out = Path(opts.out).absolute()   # Locust runs with the run folder as its cwd
    run_id = opts.run_id or new_run_id(scenario, out)
    run_dir = out / run_id
    locust_dir = run_dir / LOCUST_DIR
    locust_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / SCENARIO_JSON, scenario.to_dict())
    status = on_status or (lambda _msg: None)

    started_at = time.time()
    meta = {
        "run_id": run_id, "status": "failed", "scenario": scenario.to_dict(),
        "seed": scenario.seed, "load_model": scenario.load_model,
        "started_at": utc_iso(started_at), "ended_at": None,
        "target": {}, "loadgen": {"tool": "locust", "workers": opts.workers or opts.expect_workers,
                                  "locustfile": "loadtests/locustfile.py", "cpus": None,
                                  **({"external_workers": True, "master": f"{external[0]}:{external[1]}"}
                                     if external else {})},
        "collector": {"source": "prometheus" if prometheus_url else "direct-scrape",
                      "prometheus_url": prometheus_url,
                      **({"prometheus_version": prometheus_info.get("version")} if prometheus_url else {})},
        "versions": package_versions(), "host": host_facts(), "warnings": [], "files": {},
    }
    children = _Children()
    scheduler: _FaultScheduler | None = None
    started_hooks: list[RowHook] = []
    interrupted = False
    collector_summary: dict = {}
    previous = signal.getsignal(signal.SIGTERM)

    def _sigterm(_signum, _frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        # ---- target
        token = opts.admin_token or os.environ.get("LAB_ADMIN_TOKEN")
        loadgen_cpus, target_cpus = cpu_placement() if host is None else (None, None)
        if host is None:
            tcfg = TargetConfig(port=free_port(), seed=scenario.seed or 0,
                                workers=opts.target_workers or scenario.target.workers or 2,
                                threads=opts.target_threads or scenario.target.threads or 4,
                                metrics_port=free_port(), state_dir=run_dir / TARGET_STATE_DIR,
                                incident_log=run_dir / EVENTS_JSONL,
                                max_worker_rss_mb=scenario.target.max_worker_rss_mb)
            status(f"starting target ({tcfg.workers} workers x {tcfg.threads} threads)")
            # gunicorn's master and every worker it ever forks inherit the placement.
            with _started_on(target_cpus):
                children.target = Target(tcfg, log_path=run_dir / "target.log").start()
            host, token = children.target.url, tcfg.token
            metrics_url = tcfg.metrics_url
            meta["target"] = {"embedded": True, "url": host, "workers": tcfg.workers,
                              "threads": tcfg.threads, "seed": tcfg.seed, "server": "gunicorn gthread",
                              "metrics_url": metrics_url, "cpus": target_cpus,
                              "max_worker_rss_mb": tcfg.max_worker_rss_mb}
            meta["loadgen"]["cpus"] = loadgen_cpus
        else:
            meta["target"] = {"embedded": False, "url": host}
            metrics_url = host + "/metrics"
            try:
                requests.get(host + "/healthz", timeout=5).raise_for_status()
            except requests.RequestException as exc:
                raise LabError(f"--host: {host}/healthz did not answer: {exc.__class__.__name__}")
        if prometheus_url:
            from collector.promserver import PrometheusSource

            status("checking that Prometheus scrapes the target")
            PrometheusSource(prometheus_url, host).wait_for_target()
        faults_enabled = bool(scenario.faults) and bool(token)
        if scenario.faults and not token:
            meta["warnings"].append("faults_not_injected: external target and no admin token "
                                    "(--admin-token or LAB_ADMIN_TOKEN); fault labels are 'none'")

        for hook in hooks:
            meta[hook.name] = hook.start(children.target.pid if children.target else None, run_dir)
            started_hooks.append(hook)
        # ---- Locust
        env = dict(os.environ, LAB_SCENARIO_JSON=str(run_dir / SCENARIO_JSON),
                   LAB_SEED=str(scenario.seed or 0), LAB_OUT=str(locust_dir),
                   LAB_LOCUST_PROCESSES=str(max(1, opts.workers or opts.expect_workers)),
                   PYTHONPATH=str(ROOT), **opts.extra_env)
        commands = _locust_commands(opts, host, free_port())
        status(f"starting Locust ({'local runner' if opts.workers <= 0 else f'master + {opts.workers} workers'})"
               if not external else
               f"waiting for {opts.expect_workers} Locust workers on {external[0]}:{external[1]}: start each with "
               f"{' '.join(f'{k}={v}' for k, v in worker_env(opts, scenario).items())} python -m locust "
               f"-f loadtests/locustfile.py --worker --master-host {external[0]} --master-port {external[1]}")
        for n, cmd in enumerate(commands):
            children.locust.append(children.popen(cmd, run_dir / f"locust-{n}.log", cpus=loadgen_cpus,
                                                  env=env, cwd=run_dir))

        # ---- collector
        collector_cfg = {
            "out_dir": str(run_dir), "duration_s": scenario.duration_s, "scenario": scenario.to_dict(),
            "target_url": host, "metrics_url": metrics_url, "target_pid": children.target.pid if children.target else None,
            "locust_pids": [p.pid for p in children.locust], "locust_dir": str(locust_dir),
            "t0_file": str(locust_dir / T0_FILE), "faults_enabled": faults_enabled,
            "prometheus_url": prometheus_url,
            "extra_columns": [c for hook in hooks for c in hook.columns],
        }
        atomic_write_json(run_dir / COLLECTOR_CONFIG, collector_cfg)
        children.collector = children.popen(
            [sys.executable, "-m", "collector", str(run_dir / COLLECTOR_CONFIG)],
            run_dir / "collector.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
        rows: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_read_rows, args=(children.collector.stdout, rows), daemon=True)
        reader.start()

        # ---- wait for t0, then schedule faults
        t0 = _wait_for_t0(locust_dir / T0_FILE, children,
                          timeout_s=60 + 10 * (opts.workers or opts.expect_workers),
                          waiting=(f": {opts.expect_workers} workers must connect to {external[0]}:{external[1]}"
                                   if external else ""))
        meta["t0"] = utc_iso(t0, ms=True)
        status("running")
        if faults_enabled:
            scheduler = _FaultScheduler(scenario, host, token, t0, run_dir / EVENTS_JSONL)
            scheduler.start()
        target_died_at = None
        while True:
            try:
                row = rows.get(timeout=0.5)
            except queue.Empty:
                row = None
            if row is _EOF:
                break
            if row is not None and on_row:
                on_row(row)
            if row is not None:
                _apply_hooks(started_hooks, row, children.collector)
            if children.target and target_died_at is None and children.target.proc.poll() is not None:
                target_died_at = round(time.time() - t0, 1)
                meta["warnings"].append(f"target_died: the embedded target exited at {target_died_at} s; "
                                        f"the run continued with target_up=0 rows")
            if children.collector.poll() is not None and not reader.is_alive():
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            for hook in started_hooks:
                meta[hook.name].update(hook.close())
            if scheduler is not None:
                scheduler.stop_event.set()
            children.stop_collector()
            if scheduler is not None:
                scheduler.stop()
                meta["warnings"].extend(scheduler.failures)
        finally:
            children.stop_all()
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)

    collector_json = run_dir / COLLECTOR_JSON
    if collector_json.exists():
        collector_summary = json.loads(collector_json.read_text())
        meta["warnings"].extend(collector_summary.get("warnings", []))
        meta["collector"]["tick_jitter_ms"] = collector_summary.get("tick_jitter_ms")
    rows_written = collector_summary.get("rows", 0)
    if interrupted:
        meta["status"] = "interrupted"
    elif rows_written == scenario.duration_s:
        meta["status"] = "complete"
    else:
        meta["status"] = "failed"
        meta["warnings"].append(f"incomplete: {rows_written} of {scenario.duration_s} rows recorded "
                                f"(see collector.log and locust-*.log)")
    meta["ended_at"] = utc_iso(time.time())
    meta["rows"] = rows_written
    summary = summarize_run(run_dir, scenario)
    meta["summary"] = summary
    if summary.get("dropped"):
        meta["warnings"].append(
            f"arrivals_dropped: {summary['dropped']} arrivals were not sent because "
            f"{scenario.load.max_in_flight} requests were outstanding ([load] max_in_flight)")
    write_run_json(run_dir, meta)
    result = RunResult(run_dir, meta["status"], meta, summary)
    if interrupted:
        raise Interrupted(f"interrupted: kept {rows_written} complete rows in {run_dir}")
    if meta["status"] == "failed" and rows_written == 0:
        raise LabError(f"run recorded no rows; see {run_dir}/collector.log and locust-0.log")
    return result


_EOF = object()


def _apply_hooks(hooks: Sequence[RowHook], row: dict, collector: subprocess.Popen) -> None:
    """Let each hook act on the row; hand the labels it returns to the collector's stdin."""
    for hook in hooks:
        values = hook.on_row(row)
        if not values:
            continue
        line = json.dumps({"ts": time.time(), "values": dict(values)}) + "\n"
        try:
            collector.stdin.write(line.encode())
            collector.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass   # the collector has stopped; the hook's own record still has the action


def _read_rows(stream, rows: queue.Queue) -> None:
    for line in stream:
        try:
            rows.put(json.loads(line))
        except ValueError:
            continue
    rows.put(_EOF)


def _wait_for_t0(path: Path, children: _Children, timeout_s: float, waiting: str = "") -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return float(path.read_text())
        if (path.parent / REFUSED_TXT).is_file():     # the master refused a worker (locustfile)
            raise LabError((path.parent / REFUSED_TXT).read_text().strip())
        dead = [p for p in children.locust if p.poll() is not None]
        if dead:
            raise LabError(f"Locust exited with code {dead[0].returncode} before starting "
                           f"(see {path.parent.parent}/locust-0.log)")
        time.sleep(0.05)
    raise LabError(f"Locust did not start within {timeout_s:g} s{waiting}")


def summarize_run(run_dir: Path, scenario: Scenario) -> dict:
    """Requests, failures and latency quantiles over all raw samples; seconds per phase and SLO."""
    import numpy as np
    import pandas as pd

    summary: dict = {"requests": 0, "failures": 0}
    samples = read_samples(run_dir, required=False)
    if len(samples):
        lat = samples["response_time_ms"].to_numpy(dtype=float)
        summary["requests"] = int(len(samples))
        summary["failures"] = int((samples["ok"] == 0).sum())
        if len(lat):
            for q in (50, 95, 99):
                summary[f"p{q}_ms"] = round(float(np.percentile(lat, q)), 1)
        by_name = samples.groupby("name")["response_time_ms"]
        summary["endpoints"] = {
            name: {"requests": int(len(s)), "p50_ms": round(float(s.median()), 1),
                   "p95_ms": round(float(s.quantile(0.95)), 1)} for name, s in by_name}
    metrics = run_dir / METRICS_CSV
    if metrics.exists():
        frame = pd.read_csv(metrics)
        summary["seconds"] = int(len(frame))
        summary["slo_violation_s"] = int(frame["slo_violation"].fillna(0).sum()) if len(frame) else 0
        summary["phase_s"] = {str(k): int(v) for k, v in frame["phase"].value_counts(sort=False).items()}
        summary["fault_s"] = {str(k): int(v) for k, v in frame["fault"].value_counts(sort=False).items()}
        summary["target_down_s"] = int((frame["target_up"] == 0).sum()) if len(frame) else 0
        if len(frame):
            summary["worker_seconds"] = float(frame["target_workers"].fillna(0).sum())
            summary["latency_p95_ms_mean"] = round(float(frame["latency_p95_ms"].mean()), 1)
        if "autoscale_action" in frame.columns:
            summary["autoscale_actions"] = int((frame["autoscale_action"] != "none").sum())
        if "dropped" in frame.columns:
            summary["dropped"] = int(frame["dropped"].fillna(0).sum())
        if "incident" in frame.columns:
            incidents = frame["incident"].fillna("none").astype(str)
            summary["incidents"] = {str(k): int(v) for k, v in incidents[incidents != "none"].value_counts().items()}
    return summary
