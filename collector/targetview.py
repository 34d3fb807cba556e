"""What one look at the target shows: its /metrics as per-second rates, its process tree, the host.

Shared by the collector (one row per second of a run) and the live monitor, so both see
the target the same way.
"""

from __future__ import annotations

import requests

from .procstats import ProcessTree, host_sample
from .promstats import ScrapeError, Snapshot, incidents_between, parse_snapshot, server_stats
from .promserver import PrometheusSource


class TargetView:
    """Scrape /metrics and psutil once per call; rates come from consecutive scrapes."""
    def __init__(self, metrics_url: str | None, target_pid: int | None = None,
                 timeout_s: float = 0.8):
        self.metrics_url = metrics_url
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.tree = ProcessTree(target_pid)
        self.prev: Snapshot | None = None
        self.last_answered: Snapshot | None = None   # incidents are counted from here

    def scrape(self, now: float) -> Snapshot | None:
        """Return the parsed scrape, or None when it failed or was slower than the timeout."""
        if not self.metrics_url:
            return None
        try:
            resp = self.session.get(self.metrics_url, timeout=self.timeout_s)
            resp.raise_for_status()
            return parse_snapshot(resp.text, now)
        except (requests.RequestException, ScrapeError):
            return None

    def prime(self, now: float) -> None:
        """Take the first scrape and CPU readings, so the next sample has rates."""
        self.prev = self.last_answered = self.scrape(now)
        self.tree.sample()
        host_sample()

    def sample(self, now: float) -> tuple[dict, dict]:
        """Return (server-side stats from the scrape delta, process and host stats).

        The server-side dict also holds `incident`: what the target counted between the
        two scrapes (`none`, a kind, or None when a scrape is missing).
        """
        snapshot = self.scrape(now)
        prev, self.prev = self.prev, snapshot
        server = {"target_up": 1 if snapshot is not None else 0, **server_stats(prev, snapshot),
                  "incident": incidents_between(self.last_answered, snapshot)}
        if snapshot is not None:
            # Incidents while /metrics was silent land in the first second it answers again.
            self.last_answered = snapshot
        process = self.tree.sample()
        if snapshot is not None and process.get("target_workers") is None:
            process["target_workers"] = snapshot.workers
        process.update(host_sample())
        return server, process


class PrometheusTargetView(TargetView):
    """The same view with the server-side figures read from a Prometheus server.

    Prometheus holds a second only after its next scrape has landed, so each call returns
    the server-side figures of the second that ended about two seconds ago, next to the
    current process figures (a stated lag, never a carried-forward value).
    """

    LAG_S = 2.0

    def __init__(self, prometheus_url: str, target_url: str, metrics_url: str | None,
                 target_pid: int | None = None, timeout_s: float = 0.8):
        super().__init__(metrics_url, target_pid, timeout_s)

        self.source = PrometheusSource(prometheus_url, target_url, timeout_s=timeout_s)

    def sample(self, now: float) -> tuple[dict, dict]:
        server, process = super().sample(now)
        end = now - self.LAG_S
        server.update(self.source.server_stats(end - 1.0, end))
        return server, process
