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
from collector.promimport import QueryView, check_prometheus_url
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
    target: str | None
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
        target = check_host(opts.target, opts.allow_remote, option="--target") if opts.target else None
        bundle = load_bundle(opts.model)
        self.queries = bundle.meta.get("queries") or None
        if self.queries:
            self._query_view(bundle)
        elif target is None:
            raise BadInput(f"--target: missing: {opts.model} was not trained on import-prometheus queries, so "
                           f"the monitor reads a running target: give its URL")
        elif bundle.meta.get("profile", "lab") != "live":
            raise BadInput(f"{opts.model}: this model was trained with --profile lab (it needs the load "
                           f"generator's client-side columns); train one with --profile live to monitor a "
                           f"running target")
        self.online = OnlineModel(bundle)
        parsed = urlparse(target or "")
        pid = listener_pid(parsed.port or 80) if target and is_loopback_host(parsed.hostname or "") else None
        if opts.scale_target and pid is None:
            raise BadInput(f"--scale-target: no local gunicorn master is listening for {target or 'a --target'}")
        if self.queries:
            self.view = QueryView(self.prometheus_url, self.queries)
        else:
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

    def _query_view(self, bundle) -> None:
        """Check what a model trained on PromQL needs: the Prometheus URL, and one row a second."""
        o = self.opts
        if not o.prometheus_url:
            raise BadInput(f"--prometheus-url: missing: {o.model} was trained on import-prometheus queries "
                           f"({', '.join(self.queries)}); the monitor asks the same server for them")
        self.prometheus_url = check_prometheus_url(o.prometheus_url, o.allow_remote, "--prometheus-url")
        if float(bundle.meta.get("interval_s") or 1) != 1:
            raise BadInput(f"{o.model}: trained on rows {float(bundle.meta['interval_s']):g} s apart; the monitor "
                           f"predicts from one row a second (import-prometheus --step 1)")

    def describe(self) -> str:
        o = self.opts
        if self.queries:
            watched = f"{len(self.queries)} PromQL quer{'y' if len(self.queries) == 1 else 'ies'} on {self.prometheus_url}"
            return (f"monitoring {watched} ({', '.join(self.queries)}) with {o.model} (window {self.online.window} s, "
                    f"horizon {self.online.horizon} s); metrics on {self.exporter.url}; events -> {o.events}; Ctrl-C stops")
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
                               slo=self.slo, on_step=on_step,
                               **({"make_row": lambda server, process: dict(server)} if self.queries else {}))
        finally:
            self.sinks.close()
            self.exporter.close()
