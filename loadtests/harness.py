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
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence
from urllib.parse import urlparse, urlsplit

import requests

from collector.promserver import PrometheusSource, check_server, check_url
from collector.sampler import STOPPED_KEY, write_failure
from contract.addresses import is_loopback_host, redact_url
from contract.errors import BadInput, Interrupted, LabError
from contract.runfolder import (COLLECTOR_CONFIG, COLLECTOR_JSON, EVENTS_JSONL, LOCUST_DIR, METRICS_CSV,
                                SCENARIO_JSON, T0_FILE, TARGET_STATE_DIR, atomic_write_json, host_facts,
                                package_versions, read_json, read_samples, REFUSED_TXT, utc_iso, write_run_json)
from target_app.server import Target, TargetConfig, die_with_parent, free_port

from contract.scenario import DEFAULT_SCENARIO, Scenario, load_scenario

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


def check_host(url: str, allow_remote: bool, option: str = "--host") -> str:
    """Check a target URL given as `option` (--host, --target) and return it without a trailing /.

    Without `allow_remote` the host must be a loopback literal (127.0.0.0/8, ::1) or
    `localhost`: no DNS lookup, so a name cannot resolve to loopback when checked and to
    another machine when requests and Locust resolve it again. User-info
    (`user:password@`) is refused; a bad port or bracket is a one-line BadInput.
    """
    shown = redact_url(url)
    try:
        parsed = urlsplit(url)
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError as exc:
        problem = str(exc)
        if "port" in problem.lower():
            port = urlsplit_netloc(url).rpartition(":")[2]
            problem = f"port {port!r} is not a number from 1 to 65535"
        elif "ipv6" in problem.lower():
            problem = "an IPv6 host needs both brackets, like http://[::1]:5000"
        raise BadInput(f"{option}: {shown!r}: {problem}") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadInput(f"{option}: {shown!r} is not an http(s) URL like http://127.0.0.1:5000")
    if not port_ok:
        raise BadInput(f"{option}: {shown!r}: port 0 is not a number from 1 to 65535")
    if "@" in parsed.netloc:
        raise BadInput(f"{option}: {shown!r}: a user name or password in the URL is refused "
                       f"(it would show in process lists and logs)")
    if parsed.query or parsed.fragment:
        raise BadInput(f"{option}: {shown!r}: expected a base URL without '?' or '#'")
    if not allow_remote and not is_loopback_host(parsed.hostname):
        raise BadInput(f"{option}: {parsed.hostname} is not a loopback address (127.0.0.0/8, ::1 or "
                       f"localhost); load against other machines needs --allow-remote")
    return url.rstrip("/")


def urlsplit_netloc(url: str) -> str:
    """The authority part of a URL by plain string splitting (for messages about a URL urlsplit refused)."""
    rest = url.partition("://")[2] or url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return rest[:cut].rpartition("@")[2]


def check_prometheus(url: str) -> tuple[str, dict]:
    """Refuse a --prometheus-url that is not http(s) or not a ready Prometheus; return it and its build info."""
    url = check_url(url)
    return url, check_server(url)


def resolve_scenario(opts: RunOptions) -> Scenario:
    """The scenario the options name, with their seed and duration applied."""
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
        try:
            with open(self.events_path, "a") as fh:
                fh.write(json.dumps(fields) + "\n")
                fh.flush()
        except OSError as exc:   # a full disk must not kill the schedule: the labels come from the plan
            note = f"events_not_written: {write_failure(exc, self.events_path)}"
            if note not in self.failures:
                self.failures.append(note)

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
    Every option is checked before anything starts; however the run ends, the children
    stop in order (collector, Locust, target) and run.json records what was kept.
    """
    run = _Run(opts, on_row, on_status, hooks)
    previous = signal.getsignal(signal.SIGTERM)

    def _sigterm(_signum, _frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        run.start_target()
        run.start_hooks()
        run.start_locust()
        run.start_collector()
        run.follow_rows()
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        try:
            run.stop()
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)
    return run.conclude()


class _Run:
    """The state of one run while it is recorded; `run_scenario` calls its steps in order."""

    def __init__(self, opts: RunOptions, on_row, on_status, hooks: Sequence[RowHook]):
        self.opts, self.on_row, self.hooks = opts, on_row, list(hooks)
        self.status = on_status or (lambda _msg: None)
        self.scenario = scenario = resolve_scenario(opts)
        self.host = check_host(opts.host, opts.allow_remote) if opts.host else None
        self.external = external = master_address(opts)
        self.prometheus_url, info = (check_prometheus(opts.prometheus_url) if opts.prometheus_url
                                     else (None, {}))
        out = Path(opts.out).absolute()   # Locust runs with the run folder as its cwd
        self.run_dir = out / (opts.run_id or new_run_id(scenario, out))
        self.locust_dir = self.run_dir / LOCUST_DIR
        self.locust_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / SCENARIO_JSON, scenario.to_dict())
        self.meta = {
            "run_id": self.run_dir.name, "status": "failed", "scenario": scenario.to_dict(),
            "seed": scenario.seed, "load_model": scenario.load_model,
            "started_at": utc_iso(time.time()), "ended_at": None,
            "target": {}, "loadgen": {"tool": "locust", "workers": opts.workers or opts.expect_workers,
                                      "locustfile": "loadtests/locustfile.py", "cpus": None,
                                      **({"external_workers": True, "master": f"{external[0]}:{external[1]}"}
                                         if external else {})},
            "collector": {"source": "prometheus" if self.prometheus_url else "direct-scrape",
                          "prometheus_url": redact_url(self.prometheus_url) if self.prometheus_url else None,
                          **({"prometheus_version": info.get("version")} if self.prometheus_url else {})},
            "versions": package_versions(), "host": host_facts(), "warnings": [], "files": {},
        }
        self.children = _Children()
        self.scheduler: _FaultScheduler | None = None
        self.started_hooks: list[RowHook] = []
        self.interrupted = False
        self.collector_stopped: str | None = None   # why the collector stopped early, from its stdout
        self.token = opts.admin_token or os.environ.get("LAB_ADMIN_TOKEN")
        self.loadgen_cpus, self.target_cpus = cpu_placement() if self.host is None else (None, None)
        self.metrics_url: str | None = None
        self.faults_enabled = False

    # ---------------------------------------------------------------- starting
    def start_target(self) -> None:
        """Start the embedded target on its CPUs, or check the external one; then Prometheus."""
        sc, meta = self.scenario, self.meta
        if self.host is None:
            tcfg = TargetConfig(port=free_port(), seed=sc.seed or 0,
                                workers=self.opts.target_workers or sc.target.workers or 2,
                                threads=self.opts.target_threads or sc.target.threads or 4,
                                metrics_port=free_port(), state_dir=self.run_dir / TARGET_STATE_DIR,
                                incident_log=self.run_dir / EVENTS_JSONL,
                                max_worker_rss_mb=sc.target.max_worker_rss_mb)
            self.status(f"starting target ({tcfg.workers} workers x {tcfg.threads} threads)")
            # gunicorn's master and every worker it ever forks inherit the placement.
            with _started_on(self.target_cpus):
                self.children.target = Target(tcfg, log_path=self.run_dir / "target.log").start()
            self.host, self.token = self.children.target.url, tcfg.token
            self.metrics_url = tcfg.metrics_url
            meta["target"] = {"embedded": True, "url": self.host, "workers": tcfg.workers,
                              "threads": tcfg.threads, "seed": tcfg.seed, "server": "gunicorn gthread",
                              "metrics_url": self.metrics_url, "cpus": self.target_cpus,
                              "max_worker_rss_mb": tcfg.max_worker_rss_mb}
            meta["loadgen"]["cpus"] = self.loadgen_cpus
        else:
            meta["target"] = {"embedded": False, "url": self.host}
            self.metrics_url = self.host + "/metrics"
            try:
                requests.get(self.host + "/healthz", timeout=5).raise_for_status()
            except requests.RequestException as exc:
                raise LabError(f"--host: {self.host}/healthz did not answer: {exc.__class__.__name__}")
        if self.prometheus_url:
            self.status("checking that Prometheus scrapes the target")
            PrometheusSource(self.prometheus_url, self.host).wait_for_target()
        self.faults_enabled = bool(sc.faults) and bool(self.token)
        if sc.faults and not self.token:
            meta["warnings"].append("faults_not_injected: external target and no admin token "
                                    "(--admin-token or LAB_ADMIN_TOKEN); fault labels are 'none'")

    def start_hooks(self) -> None:
        target_pid = self.children.target.pid if self.children.target else None
        for hook in self.hooks:
            self.meta[hook.name] = hook.start(target_pid, self.run_dir)
            self.started_hooks.append(hook)

    def start_locust(self) -> None:
        opts, sc = self.opts, self.scenario
        env = dict(os.environ, LAB_SCENARIO_JSON=str(self.run_dir / SCENARIO_JSON),
                   LAB_SEED=str(sc.seed or 0), LAB_OUT=str(self.locust_dir),
                   LAB_LOCUST_PROCESSES=str(max(1, opts.workers or opts.expect_workers)),
                   PYTHONPATH=str(ROOT), **opts.extra_env)
        commands = _locust_commands(opts, self.host, free_port())
        external = self.external
        self.status(f"starting Locust ({'local runner' if opts.workers <= 0 else f'master + {opts.workers} workers'})"
                    if not external else
                    f"waiting for {opts.expect_workers} Locust workers on {external[0]}:{external[1]}: start each "
                    f"with {' '.join(f'{k}={v}' for k, v in worker_env(opts, sc).items())} python -m locust "
                    f"-f loadtests/locustfile.py --worker --master-host {external[0]} --master-port {external[1]}")
        for n, cmd in enumerate(commands):
            self.children.locust.append(self.children.popen(
                cmd, self.run_dir / f"locust-{n}.log", cpus=self.loadgen_cpus, env=env, cwd=self.run_dir))

    def start_collector(self) -> None:
        """Start the collector process and a thread that reads its rows from stdout."""
        children, locust_dir = self.children, self.locust_dir
        config = {
            "out_dir": str(self.run_dir), "duration_s": self.scenario.duration_s,
            "scenario": self.scenario.to_dict(), "target_url": self.host, "metrics_url": self.metrics_url,
            "target_pid": children.target.pid if children.target else None,
            "locust_pids": [p.pid for p in children.locust], "locust_dir": str(locust_dir),
            "t0_file": str(locust_dir / T0_FILE), "faults_enabled": self.faults_enabled,
            "prometheus_url": self.prometheus_url,
            "extra_columns": [c for hook in self.hooks for c in hook.columns],
        }
        atomic_write_json(self.run_dir / COLLECTOR_CONFIG, config)
        children.collector = children.popen(
            [sys.executable, "-m", "collector", str(self.run_dir / COLLECTOR_CONFIG)],
            self.run_dir / "collector.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
        self.rows: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=_read_rows, args=(children.collector.stdout, self.rows),
                                       daemon=True)
        self.reader.start()

    # ---------------------------------------------------------------- running
    def follow_rows(self) -> None:
        """Wait for t0, schedule the faults, then hand every row on until the collector ends."""
        children = self.children
        opts, external = self.opts, self.external
        t0 = _wait_for_t0(self.locust_dir / T0_FILE, children,
                          timeout_s=60 + 10 * (opts.workers or opts.expect_workers),
                          waiting=(f": {opts.expect_workers} workers must connect to {external[0]}:{external[1]}"
                                   if external else ""))
        self.meta["t0"] = utc_iso(t0, ms=True)
        self.status("running")
        if self.faults_enabled:
            self.scheduler = _FaultScheduler(self.scenario, self.host, self.token, t0,
                                             self.run_dir / EVENTS_JSONL)
            self.scheduler.start()
        target_died_at = None
        while True:
            try:
                row = self.rows.get(timeout=0.5)
            except queue.Empty:
                row = None
            if row is _EOF:
                break
            if row is not None and STOPPED_KEY in row:
                self.collector_stopped = str(row[STOPPED_KEY])
                continue
            if row is not None:
                if self.on_row:
                    self.on_row(row)
                _apply_hooks(self.started_hooks, row, children.collector)
            if children.target and target_died_at is None and children.target.proc.poll() is not None:
                target_died_at = round(time.time() - t0, 1)
                self.meta["warnings"].append(f"target_died: the embedded target exited at {target_died_at} s; "
                                             f"the run continued with target_up=0 rows")
            if children.collector.poll() is not None and not self.reader.is_alive() and self.rows.empty():
                break   # (a reader that died without its end mark; normally _EOF ends the loop)

    def stop(self) -> None:
        """Close the hooks, then stop the collector (every complete second written), faults, Locust, target."""
        try:
            for hook in self.started_hooks:
                self.meta[hook.name].update(hook.close())
            if self.scheduler is not None:
                self.scheduler.stop_event.set()
            self.children.stop_collector()
            if self.scheduler is not None:
                self.scheduler.stop()
                self.meta["warnings"].extend(self.scheduler.failures)
        finally:
            self.children.stop_all()

    # ---------------------------------------------------------------- the record
    def conclude(self) -> RunResult:
        """Decide the run's status from what was kept, write run.json, and raise if it failed."""
        meta, run_dir, scenario = self.meta, self.run_dir, self.scenario
        summary_of_collector = self._collector_summary()
        # The rows the run has are the whole rows in metrics.csv, whatever the collector managed to say.
        rows_written = summary_of_collector.get("rows")
        if not isinstance(rows_written, int):
            rows_written = whole_rows(run_dir / METRICS_CSV)
        stopped = summary_of_collector.get("stopped") or self.collector_stopped
        code = self.children.collector.returncode if self.children.collector is not None else None
        if not stopped and not summary_of_collector and code not in (None, 0, 130, -signal.SIGTERM):
            stopped = f"collector exited with code {code} without a summary (see collector.log)"
        if stopped:
            meta["status"], meta["failure"] = "failed", stopped
            meta["warnings"].append(f"collector_stopped: {stopped}")
        elif self.interrupted:
            meta["status"] = "interrupted"
        elif rows_written == scenario.duration_s:
            meta["status"] = "complete"
        else:
            meta["status"] = "failed"
            meta["warnings"].append(f"incomplete: {rows_written} of {scenario.duration_s} rows recorded "
                                    f"(see collector.log and locust-*.log)")
        meta["ended_at"] = utc_iso(time.time())
        meta["rows"] = rows_written
        meta["summary"] = summary = summarize_run(run_dir, scenario)
        if summary.get("other_cpu_pct_median", 0) > HOST_BUSY_PCT:
            meta["warnings"].append(
                f"host_busy: other processes used a median {summary['other_cpu_pct_median']:.0f} % of a core "
                f"(90th percentile {summary['other_cpu_pct_p90']:.0f} %) while the run recorded; unless they ran "
                f"at a lower priority (nice), its latency reflects the host as well as the target")
        if summary.get("dropped"):
            meta["warnings"].append(
                f"arrivals_dropped: {summary['dropped']} arrivals were not sent because "
                f"{scenario.load.max_in_flight} requests were outstanding ([load] max_in_flight)")
        write_run_json(run_dir, meta)
        if stopped:
            raise LabError(f"run failed: {stopped}; kept {rows_written} complete rows in {run_dir}")
        if self.interrupted:
            raise Interrupted(f"interrupted: kept {rows_written} complete rows in {run_dir}")
        if meta["status"] == "failed" and rows_written == 0:
            raise LabError(f"run recorded no rows; see {run_dir}/collector.log and locust-0.log")
        return RunResult(run_dir, meta["status"], meta, summary)

    def _collector_summary(self) -> dict:
        path = self.run_dir / COLLECTOR_JSON
        if not path.exists():
            return {}
        try:
            summary = read_json(path, "collector summary")
        except BadInput as exc:
            self.meta["warnings"].append(f"collector_summary_unreadable: {exc}")
            return {}
        self.meta["warnings"].extend(summary.get("warnings", []))
        self.meta["collector"]["tick_jitter_ms"] = summary.get("tick_jitter_ms")
        return summary


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


def whole_rows(metrics_csv: Path) -> int:
    """Count the complete data rows of a metrics.csv (header and a cut-off last line excluded)."""
    try:
        with open(metrics_csv, "rb") as fh:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0
    return max(0, lines - 1)


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
        summary.update(other_cpu(frame))
    return summary


HOST_BUSY_PCT = 25.0     # median CPU of other processes (% of one core) above which a run is flagged


def other_cpu(frame, cores: int | None = None) -> dict:
    """CPU the host spent outside the target and Locust while the run recorded (% of one core).

    `sys_cpu_percent` is the host's busy share of all its cores; the target's and Locust's
    own CPU (`cpu_percent`, `loadgen_cpu_percent`, % of one core) are taken off, and what is
    left (the collector, the OS and anything else running) is summarised by its median and
    90th percentile. Empty when a column is missing.
    """
    import numpy as np
    import pandas as pd

    cols = ("sys_cpu_percent", "cpu_percent", "loadgen_cpu_percent")
    if not all(c in frame.columns for c in cols) or not len(frame):
        return {}
    cores = cores or os.cpu_count() or 1
    host, target, loadgen = (pd.to_numeric(frame[c], errors="coerce") for c in cols)
    other = (host * cores - target - loadgen.fillna(0)).clip(lower=0).dropna()
    if other.empty:
        return {}
    return {"other_cpu_pct_median": round(float(np.median(other)), 1),
            "other_cpu_pct_p90": round(float(np.percentile(other, 90)), 1)}
