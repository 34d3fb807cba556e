"""The live monitor's wiring: target view, model, policy, sinks and exporter around `run_monitor`.

`lab.py monitor` gathers its options into `MonitorOptions` and calls `start_monitor`, which
checks every option (the target, the model's profile, the policy and sinks files) before
anything listens, then `Monitor.run` until the duration ends or SIGINT/SIGTERM arrives.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from collector.procstats import listener_pid
from collector.targetview import PrometheusTargetView, TargetView
from contract.addresses import is_loopback_host
from contract.errors import BadInput
from contract.schema import slo_limits
from loadtests.harness import check_host
from modeling.pipeline import load_bundle
from monitor.exporter import MonitorExporter
from monitor.live import OnlineModel, run_monitor, status_line
from monitor.policy import load_policy
from monitor.sinks import load_sinks

@dataclass
class MonitorOptions:
    target: str
    model: Path
    port: int = 9105
    bind_all: bool = False
    metrics_url: str | None = None
    prometheus_url: str | None = None
    allow_remote: bool = False
    policy: str | None = None
    policy_file: Path | None = None
    sinks_file: Path | None = None
    webhook: str | None = None
    alertmanager: str | None = None
    scale_target: bool = False
    min_workers: int = 1
    max_workers: int = 8
    events: Path = Path("monitor-events.jsonl")
    duration_s: float | None = None


class Monitor:
    """A monitor ready to run: every part built, the exporter listening."""

    def __init__(self, opts: MonitorOptions):
        self.opts = opts
        target = check_host(opts.target, opts.allow_remote, option="--target")
        bundle = load_bundle(opts.model)
        if bundle.meta.get("profile", "lab") != "live":
            raise BadInput(f"{opts.model}: this model was trained with --profile lab (it needs the load "
                           f"generator's client-side columns); train one with --profile live to monitor a "
                           f"running target")
        self.online = OnlineModel(bundle)
        parsed = urlparse(target)
        pid = listener_pid(parsed.port or 80) if is_loopback_host(parsed.hostname or "") else None
        if opts.scale_target and pid is None:
            raise BadInput(f"--scale-target: no local gunicorn master is listening for {target}")
        scrape = opts.metrics_url or target + "/metrics"
        self.view = (PrometheusTargetView(opts.prometheus_url, target, scrape, pid) if opts.prometheus_url
                     else TargetView(scrape, pid))
        self.slo = slo_limits(getattr(bundle.regimes, "slo_", None))
        self.policy = load_policy(opts.policy_file, preset=opts.policy, min_workers=opts.min_workers,
                                  max_workers=opts.max_workers, slo_latency_p95_ms=self.slo["latency_p95_ms"])
        self.sinks = load_sinks(opts.sinks_file, event_log=opts.events, webhook=opts.webhook,
                                alertmanager=opts.alertmanager,
                                scale_target_pid=pid if opts.scale_target else None,
                                min_workers=opts.min_workers, max_workers=opts.max_workers,
                                generator_url=f"http://127.0.0.1:{opts.port}/metrics")
        self.target = target
        self.exporter = MonitorExporter(port=opts.port, host="0.0.0.0" if opts.bind_all else "127.0.0.1",
                                        regimes=bundle.regimes.names_ if bundle.regimes is not None else (),
                                        horizon_s=self.online.horizon).start()

    def describe(self) -> str:
        o = self.opts
        return (f"monitoring {self.target} with {o.model} (window {self.online.window} s, horizon "
                f"{self.online.horizon} s); metrics on {self.exporter.url}; events -> {o.events}; Ctrl-C stops")

    def status(self, step) -> str:
        return status_line(step, self.online.horizon)

    def run(self, on_step: Callable | None = None) -> int:
        """Predict, decide and act once a second until the duration ends or a signal stops it."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            return run_monitor(model=self.online, view=self.view, policy=self.policy, sinks=self.sinks,
                               exporter=self.exporter, stop=stop, duration_s=self.opts.duration_s,
                               slo=self.slo, on_step=on_step)
        finally:
            self.sinks.close()
            self.exporter.close()
