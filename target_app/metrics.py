"""The target's Prometheus metrics, built per app (no global registry shared by tests).

Under gunicorn the harness sets PROMETHEUS_MULTIPROC_DIR before any worker imports
prometheus_client, so every worker writes its values to shared mmap files and
/metrics aggregates all of them; without it (tests, `--dev`) the app's own
registry is exposed.
"""

from __future__ import annotations

import glob
import os
import re
import struct
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_flask_exporter import PrometheusMetrics

from .faults import KINDS, FaultEngine, FaultStore
from .incidents import IncidentCollector, IncidentLog

# Fine enough to read p50/p95/p99 between 5 ms and 30 s: about 20% apart, so linear
# interpolation inside a bucket is off by at most ~10% of the value.
LATENCY_BUCKETS = (
    0.005, 0.006, 0.0075, 0.009, 0.011, 0.0135, 0.0165, 0.02, 0.025, 0.03, 0.0375, 0.045,
    0.055, 0.0675, 0.08, 0.1, 0.12, 0.15, 0.18, 0.22, 0.27, 0.33, 0.4, 0.5, 0.6, 0.75,
    0.9, 1.1, 1.35, 1.65, 2.0, 2.5, 3.0, 3.75, 4.5, 5.5, 6.75, 8.0, 10.0, 12.0, 15.0,
    18.0, 22.0, 26.0, 30.0,
)

# Time from the load generator's X-Request-Start stamp to the handler's start: mostly well
# under 1 ms when a thread is free, seconds when requests wait for one.
QUEUE_BUCKETS = (0.001, 0.0012, 0.0015, 0.0018, 0.0022, 0.0027, 0.0033, 0.004) + LATENCY_BUCKETS
MAX_STAMP_SKEW_S = 3600.0          # a stamp further than this from now is not believed

UNTRACKED = r"^/(metrics|healthz|admin)(/.*)?$"
_STAMP = re.compile(r"(?:t=)?(\d{1,20})(\.\d{1,9})?")


def parse_request_start(value: str | None) -> float | None:
    """Return an X-Request-Start stamp as epoch seconds, or None when there is none.

    Accepts `t=<epoch microseconds>` (what the load generator sends), `t=<epoch seconds
    with a fraction>` and plain digits; a whole number's unit (s, ms, us, ns) is read
    from its magnitude, as queue-time autoscalers and APM agents do.
    """
    if not value:
        return None
    match = _STAMP.fullmatch(value.strip())
    if match is None:
        return None
    whole, fraction = match.groups()
    if fraction:
        return float(whole + fraction)
    number = int(whole)
    for scale in (1e9, 1e6, 1e3):
        if number >= scale * 1e8:         # 1e8 s is 1973: anything larger is in smaller units
            return number / scale
    return float(number)


def queue_seconds(value: str | None, now: float) -> float | None:
    """Return the time a request waited before its handler started (clamped at 0), if known."""
    stamp = parse_request_start(value)
    if stamp is None or abs(now - stamp) > MAX_STAMP_SKEW_S:
        return None
    return max(0.0, now - stamp)


class FaultCollector:
    """Expose the shared fault state as gauges, read at scrape time from the source of truth."""

    def __init__(self, store: FaultStore):
        self.store = store

    def collect(self):
        faults = self.store.read()
        active = GaugeMetricFamily("lab_fault_active", "1 while a fault of this kind is injected",
                                   labels=["kind"])
        level = GaugeMetricFamily("lab_fault_intensity", "Intensity 0..1 of the injected fault",
                                  labels=["kind"])
        for kind in KINDS:
            fault = faults.get(kind)
            active.add_metric([kind], 1.0 if fault else 0.0)
            level.add_metric([kind], fault.intensity if fault else 0.0)
        yield active
        yield level


class WorkerFilesCollector:
    """Every worker's metrics from the shared mmap files, skipping files that cannot be read.

    prometheus_client's MultiProcessCollector fails the whole scrape on one unreadable
    file: a worker creates its file empty and sizes it a moment later, so a scrape in
    between (workers boot again after every watchdog kill) raised struct.error and the
    listener answered 500 with no metrics at all, just when a collector needs them. The
    file of a worker killed in that window stays empty for good. Here the files are
    merged at once as usual; when that fails, each is checked on its own and only the
    readable ones are merged, and `lab_metrics_unreadable_files` says how many were left out.
    """

    _UNREADABLE = (OSError, struct.error, RuntimeError, UnicodeDecodeError, ValueError)

    def __init__(self, path: str):
        self.path = path

    def collect(self):
        from prometheus_client import multiprocess
        from prometheus_client.mmap_dict import MmapedDict

        files = glob.glob(os.path.join(self.path, "*.db"))
        skipped = 0
        try:
            merged = multiprocess.MultiProcessCollector.merge(files, accumulate=True)
        except self._UNREADABLE:
            readable = []
            for name in files:
                try:
                    for _ in MmapedDict.read_all_values_from_file(name):
                        pass
                except self._UNREADABLE:
                    continue
                readable.append(name)
            skipped = len(files) - len(readable)
            merged = multiprocess.MultiProcessCollector.merge(readable, accumulate=True)
        yield from merged
        yield GaugeMetricFamily("lab_metrics_unreadable_files",
                                "Worker metric files left out of this scrape (being created or damaged)",
                                value=skipped)


class ProcessTreeCollector:
    """CPU time and resident memory of the gunicorn master and all its workers.

    prometheus_client's process collector reports only the process that answers the
    scrape, and nothing at all in multiprocess mode, so the tree is read with psutil at
    scrape time, the same view as the collector's cpu_percent and rss_mb columns. CPU
    time adds each process's reaped children: when gunicorn replaces or removes a worker
    its CPU seconds move into the master's, so the counter does not go down.
    """

    def __init__(self, root_pid: int):
        self.root_pid = root_pid

    def collect(self):
        import psutil

        try:
            root = psutil.Process(self.root_pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            return
        cpu = rss = 0.0
        for proc in procs:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        yield CounterMetricFamily("lab_target_cpu_seconds",
                                  "CPU seconds of the target's process tree (master and workers)",
                                  value=cpu)
        yield GaugeMetricFamily("lab_target_resident_memory_bytes",
                                "Resident memory of the target's process tree, summed over processes",
                                value=rss)


def init_metrics(app: Flask, engine: FaultEngine, incidents: IncidentLog) -> None:
    """Instrument the app and register its /metrics endpoint."""
    registry = CollectorRegistry(auto_describe=True)
    exporter = PrometheusMetrics(
        app=None, path=None, registry=registry, group_by="endpoint",
        buckets=LATENCY_BUCKETS, excluded_paths=[UNTRACKED],
    )
    exporter.init_app(app)
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    in_flight = Gauge("lab_http_requests_in_flight", "Requests being served right now",
                      registry=registry, multiprocess_mode="livesum")
    workers = Gauge("lab_target_workers", "Live worker processes of the target",
                    registry=registry, multiprocess_mode="livesum")
    workers.set(1)
    started = Gauge("lab_target_start_time_seconds", "Start time of the worker process",
                    registry=registry, multiprocess_mode="livemin")
    started.set(time.time())
    stuck = Gauge("lab_fault_stuck_threads", "Request threads held by the threads fault",
                  registry=registry, multiprocess_mode="livesum")
    stuck.set(0)
    engine.on_stuck = stuck.set
    queue = Histogram("lab_request_queue_seconds",
                      "Time from the client's X-Request-Start stamp to the handler's start",
                      registry=registry, buckets=QUEUE_BUCKETS)
    app.extensions["lab_registry"] = registry

    @app.before_request
    def _count_in():
        if not request.path.startswith(("/metrics", "/healthz", "/admin")):
            waited = queue_seconds(request.headers.get("X-Request-Start"), time.time())
            if waited is not None:
                queue.observe(waited)
            in_flight.inc()
            g.lab_in_flight = True

    @app.teardown_request
    def _count_out(_exc=None):
        if g.pop("lab_in_flight", False):
            in_flight.dec()

    faults = FaultCollector(engine.store)

    @app.get("/metrics")
    def metrics():
        if multiproc_dir:
            scrape = CollectorRegistry()
            scrape.register(WorkerFilesCollector(multiproc_dir))
            scrape.register(ProcessTreeCollector(os.getppid()))   # a worker's parent: the master
        else:
            scrape = CollectorRegistry()
            scrape.register(_RegistryView(registry))
        scrape.register(faults)
        scrape.register(IncidentCollector(incidents))
        return Response(generate_latest(scrape), mimetype=CONTENT_TYPE_LATEST)


class _RegistryView:
    """Re-expose another registry's samples (single-process mode)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def start_metrics_server(port: int, host: str, state_dir: str) -> None:
    """Serve every worker's metrics on a port of its own, from the gunicorn master.

    The app's /metrics is answered by the same threads as the traffic, so under
    saturation a scrape queues behind requests and times out: the collector would see
    the target as down exactly when it matters. A listener in the master process, outside
    the worker pool, answers at once (the pattern of prometheus-flask-exporter's
    GunicornPrometheusMetrics).
    """
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(WorkerFilesCollector(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    registry.register(FaultCollector(FaultStore(state_dir)))
    registry.register(IncidentCollector(IncidentLog(state_dir)))
    registry.register(ProcessTreeCollector(os.getpid()))   # runs in the master
    start_http_server(port, addr=host, registry=registry)
