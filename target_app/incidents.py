"""Incidents the target observes (a worker killed, the pool exhausted): logged and counted.

An incident is the consequence of a fault, seen where it happens (the gunicorn master
kills a worker, a worker runs out of threads), not copied from a plan. Each one is a JSON
line appended with a single O_APPEND write, so lines from the master, the workers and
the lab's fault scheduler never interleave:

    {"ts": "2025-01-01T12:00:00.123Z", "event": "incident", "kind": "worker_killed",
     "pid": 4242, "detail": "rss 612 MB above max_worker_rss_mb 600"}

It goes to `incidents.jsonl` in the target's state folder, which `lab_incidents_total`
counts (so every process reports the same totals), and to the configured incident log
too (the harness points that at the run's events.jsonl).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from prometheus_client.core import CounterMetricFamily

from contract.runfolder import utc_iso

WORKER_KILLED = "worker_killed"     # the master killed a worker above max_worker_rss_mb
POOL_EXHAUSTED = "pool_exhausted"   # a worker has no free thread left (stuck threads)
INCIDENT_KINDS = (WORKER_KILLED, POOL_EXHAUSTED)


def append_line(path: Path, line: bytes) -> None:
    """Append one line with one write on an O_APPEND descriptor (atomic against other writers)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class IncidentLog:
    """Record incidents in the state folder (counted) and in the shared incident log."""

    def __init__(self, state_dir: str | os.PathLike, shared: str | os.PathLike | None = None):
        self.path = Path(state_dir) / "incidents.jsonl"
        self.shared = Path(shared) if shared else None
        self._lock = threading.Lock()
        self._offset = 0
        self._counts = dict.fromkeys(INCIDENT_KINDS, 0)

    def record(self, kind: str, detail: str = "", pid: int | None = None) -> dict:
        """Append one incident line to both logs and return it."""
        entry = {"ts": utc_iso(time.time(), ms=True), "event": "incident", "kind": kind,
                 "pid": os.getpid() if pid is None else pid, "detail": detail}
        line = (json.dumps(entry) + "\n").encode()
        append_line(self.path, line)
        if self.shared is not None:
            try:
                append_line(self.shared, line)
            except OSError as exc:
                # The count above still has it; a request thread must not fail for the log.
                print(f"lab target: cannot append to incident log {self.shared}: {exc}",
                      file=sys.stderr, flush=True)
        return entry

    def counts(self) -> dict[str, int]:
        """Return the incidents recorded so far by kind, by every process of the target."""
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except FileNotFoundError:
                data = b""
            complete = data[:data.rfind(b"\n") + 1]    # a line being written is read next time
            self._offset += len(complete)
            for raw in complete.splitlines():
                try:
                    kind = json.loads(raw)["kind"]
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(kind, str):
                    self._counts[kind] = self._counts.get(kind, 0) + 1
            return dict(self._counts)


class IncidentCollector:
    """Expose `lab_incidents_total{kind}`, read at scrape time from the state folder."""

    def __init__(self, log: IncidentLog):
        self.log = log

    def collect(self):
        family = CounterMetricFamily("lab_incidents", "Incidents the target observed, by kind",
                                     labels=["kind"])
        for kind, count in sorted(self.log.counts().items()):
            family.add_metric([kind], float(count))
        yield family
