"""The memory limit of the target's workers, enforced from the gunicorn master.

A container runtime kills a process that goes over its memory limit (the OOM kill); the
lab's target does the same to a worker whose resident memory passes `max_worker_rss_mb`:
SIGKILL, so its in-flight requests fail, and gunicorn's master starts a replacement, so
capacity drops while it boots. Each kill is a `worker_killed` incident.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable

import psutil

from .incidents import WORKER_KILLED, IncidentLog

CHECK_INTERVAL_S = 0.25


class RssWatchdog(threading.Thread):
    """Check every worker's RSS every `interval_s`; SIGKILL one above `limit_mb`."""

    def __init__(self, workers: Callable[[], Iterable[int]], limit_mb: float, incidents: IncidentLog,
                 interval_s: float = CHECK_INTERVAL_S, log: Callable[[str], None] | None = None):
        super().__init__(name="lab-rss-watchdog", daemon=True)
        self.workers = workers
        self.limit_mb = float(limit_mb)
        self.incidents = incidents
        self.interval_s = interval_s
        self.log = log
        self.stop_event = threading.Event()
        self._procs: dict[int, psutil.Process] = {}
        self._killed: set[int] = set()

    def check(self) -> list[int]:
        """Kill the workers above the limit now; return their pids."""
        pids = set(self.workers())
        for gone in set(self._procs) - pids:
            del self._procs[gone]
        self._killed &= pids
        killed = []
        for pid in sorted(pids - self._killed):
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                rss_mb = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            if rss_mb <= self.limit_mb:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self._killed.add(pid)
            killed.append(pid)
            detail = f"rss {rss_mb:.0f} MB above max_worker_rss_mb {self.limit_mb:g}"
            self.incidents.record(WORKER_KILLED, detail, pid=pid)
            if self.log:
                self.log(f"killed worker {pid}: {detail}")
        return killed

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:   # the watchdog must outlive one bad check
                if self.log:
                    self.log(f"rss watchdog: {exc!r}")

    def stop(self) -> None:
        self.stop_event.set()
