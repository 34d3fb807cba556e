"""Run the target under gunicorn: as a managed child (run-scenario, tests) or in the foreground."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from contract.addresses import is_loopback_host
from contract.errors import BadInput, LabError

from .app import new_token
from .statedir import new_state_dir

DEFAULT_PORT = 5000
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 4


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


_spawner_pid = os.getpid()


def _remember_spawner() -> None:
    global _spawner_pid
    _spawner_pid = os.getpid()


# Runs in the parent just before every fork (subprocess with a preexec_fn included), so a
# child knows which process spawned it even if that one dies before the child looks.
os.register_at_fork(before=_remember_spawner)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask Linux to send SIGTERM to this child if the lab process dies (no orphans).

    Meant as a preexec_fn. The death signal is armed only from here on: a parent that
    died between the fork and now would leave an orphan, so exit if it is already gone.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != (_spawner_pid if parent_pid is None else parent_pid):
        os._exit(1)


def _has_control_socket() -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS)


@dataclass
class TargetConfig:
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    seed: int = 0
    token: str = field(default_factory=new_token)
    state_dir: Path | None = None        # keep state here; None: a temporary folder, removed at stop
    admin_allow_remote: bool = False
    access_log: bool = False
    max_workers: int = 16
    metrics: bool = True
    metrics_port: int | None = None      # a listener of its own for /metrics (master process)
    incident_log: Path | None = None     # also append incident lines here (the run's events.jsonl)
    max_worker_rss_mb: float | None = None   # the master SIGKILLs a worker above this RSS

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where to scrape: the dedicated metrics listener when there is one."""
        if not self.metrics_port:
            return self.url + "/metrics"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.metrics_port}/metrics"


class Target:
    """A gunicorn target started as a child process, stopped gracefully."""

    def __init__(self, config: TargetConfig, log_path: Path | None = None):
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._own_state = config.state_dir is None
        self.state_dir = Path(config.state_dir) if config.state_dir else new_state_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = None

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        c = self.config
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{c.host}:{c.port}",
            "--workers", str(c.workers),
            "--threads", str(c.threads),
            "--worker-class", "gthread",
            "--timeout", "60",
            "--graceful-timeout", "10",
            "--backlog", "512",
            "--config", "python:target_app.gunicorn_conf",
        ]
        if _has_control_socket():
            # Newer gunicorn opens a control socket at one fixed path per user; several
            # lab targets (tests, compare-autoscale) would collide on it.
            cmd += ["--no-control-socket"]
        if c.access_log:
            cmd += ["--access-logfile", "-"]
        return cmd + ["target_app.wsgi:app"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        c = self.config
        metrics_dir = self.state_dir / "prometheus"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        env.update({
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "LAB_SEED": str(c.seed),
            "LAB_STATE_DIR": str(self.state_dir),
            "LAB_ADMIN_TOKEN": c.token,
            "LAB_ADMIN_ALLOW_REMOTE": "true" if c.admin_allow_remote else "false",
            "PYTHONUNBUFFERED": "1",
            "LAB_METRICS": "true" if c.metrics else "false",
        })
        for name in ("LAB_INCIDENT_LOG", "LAB_MAX_WORKER_RSS_MB"):
            env.pop(name, None)   # the config decides, not the caller's environment
        if c.incident_log:
            env["LAB_INCIDENT_LOG"] = str(Path(c.incident_log).absolute())
        if c.max_worker_rss_mb:
            env["LAB_MAX_WORKER_RSS_MB"] = f"{float(c.max_worker_rss_mb):g}"
        if c.metrics_port:
            env["LAB_METRICS_PORT"] = str(c.metrics_port)
            env["LAB_METRICS_HOST"] = "127.0.0.1" if is_loopback_host(c.host) else c.host
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def start(self, wait_s: float = 30.0) -> "Target":
        """Start gunicorn and wait until /healthz answers."""
        if self.log_path:
            self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), env=self.environment(), stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        try:
            self.wait_healthy(wait_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise LabError(f"target exited with code {self.proc.returncode} before answering "
                               f"(is port {self.config.port} in use?"
                               + (f" see {self.log_path})" if self.log_path else ")"))
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise LabError(f"target at {self.url} did not answer /healthz within {wait_s:g} s")

    def worker_pids(self) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.pid).children()]
        except (psutil.Error, TypeError):
            return []

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop gracefully (SIGTERM: in-flight requests finish), then kill what is left."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        else:
            # The master is gone; make sure no worker of its group outlives it.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log:
            self._log.close()
            self._log = None
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        else:
            # The caller's folder keeps the state files; the metrics files are scratch.
            shutil.rmtree(self.state_dir / "prometheus", ignore_errors=True)
        return self.proc.returncode

    def __enter__(self) -> "Target":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_foreground(config: TargetConfig, on_ready=None) -> int:
    """Run the target until SIGINT/SIGTERM, then shut it down gracefully; return its exit code."""
    target = Target(config)
    target.config.access_log = config.access_log
    stop = {"signal": None}

    def _handle(signum, _frame):
        stop["signal"] = signum
        target.signal(signal.SIGTERM)

    old_int = signal.signal(signal.SIGINT, _handle)
    old_term = signal.signal(signal.SIGTERM, _handle)
    try:
        # The foreground server shows gunicorn's own log lines on the terminal.
        target.proc = subprocess.Popen(
            target.command(), env=target.environment(), stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent)
        target.wait_healthy(30.0)
        if on_ready:
            on_ready(target)
        while target.proc.poll() is None:
            try:
                target.proc.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        code = target.proc.returncode
        target.stop()
        return 130 if stop["signal"] == signal.SIGINT else code
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        target.stop()


def serve_dev(config: TargetConfig, on_ready=None) -> None:
    """Flask's development server with debug on, one process: for working on the app, never for load.

    Refused on anything but loopback: Werkzeug's debugger runs any code typed into an error page.
    """
    from .app import create_app

    if not is_loopback_host(config.host):
        raise BadInput("--dev: refused with --bind-all: the debugger would run code for anyone who reaches it")
    if on_ready:
        on_ready()
    create_app({"SEED": config.seed, "ADMIN_TOKEN": config.token, "DEBUG": True,
                "ADMIN_ALLOW_REMOTE": config.admin_allow_remote}).run(
        host=config.host, port=config.port, debug=True, use_reloader=False)


def serve_command(config: TargetConfig, *, token: str | None, dev: bool, say, warn) -> int:
    """`lab.py serve` once its options are parsed: run the target, telling `say` where it listens.

    A token the user chose (`token`) stays out of stdout (container logs); a generated one
    is shown once. Returns the exit code.
    """
    if token:
        config.token = token
    token_line = ("admin token: the one given (--token or LAB_ADMIN_TOKEN)" if token
                  else f"admin token: {config.token}")
    if dev:
        serve_dev(config, on_ready=lambda: (
            warn("--dev: Flask development server, debug on, one process; not for load tests"),
            say(token_line)))
        return 0

    def ready(target):
        say(f"target serving on [bold]{target.url}[/] (pid {target.pid}, {config.workers} workers x "
            f"{config.threads} threads)")
        say(token_line)
        if config.metrics_port:
            say(f"metrics listener: {config.metrics_url}")
        say(f"try: curl {target.url}/stress   |   metrics: {target.url}/metrics   |   Ctrl-C stops")

    return serve_foreground(config, on_ready=ready) or 0
