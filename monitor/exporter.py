"""The monitor's own Prometheus /metrics: its predictions, regime, recommendation and actions.

The metric names are the contract in docs/HELPERS.md. The registry belongs to the
exporter (no global registry), so several exporters, in tests for instance, never
collide. A value not known yet is NaN, never 0: a 0 % stability or a 0 ms forecast
would fire alerting rules on a monitor that has not predicted anything.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

from contract.errors import LabError
from modeling.states import STATES

from .policy import ACTIONS, Decision, Prediction

DEFAULT_PORT = 9105
DEFAULT_REGIMES = STATES          # the regimes' names are the system states (modeling/states.py)
NAN = float("nan")


class MonitorExporter:
    """Serve the monitor's gauges on http://host:port/metrics (loopback by default)."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                 regimes: Iterable[str] = DEFAULT_REGIMES, horizon_s: int | None = None):
        self.host, self._port = host, port
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.predicted_p95 = Gauge("lab_monitor_predicted_latency_p95_ms",
                                   "Predicted latency p95 (ms) horizon_s seconds ahead",
                                   ["horizon_s"], registry=r)
        self.probability = Gauge("lab_monitor_slo_violation_probability",
                                 "Probability that the SLO is violated at some second within the horizon",
                                 registry=r)
        self.stability = Gauge("lab_monitor_predicted_stability_percent",
                               "Predicted stability: 100 x (1 - probability of an SLO violation)",
                               registry=r)
        self.horizon = Gauge("lab_monitor_horizon_seconds", "Forecast horizon of the model (s)", registry=r)
        self.regime = Gauge("lab_monitor_regime", "1 for the current regime, 0 for the others",
                            ["regime"], registry=r)
        self.action = Gauge("lab_monitor_recommended_action", "1 for the current recommendation",
                            ["action"], registry=r)
        self.actions = Counter("lab_monitor_actions", "Actions handed to sinks, by outcome",
                               ["action", "sink", "outcome"], registry=r)
        self.dropped = Counter("lab_monitor_decisions_dropped",
                               "Decisions a busy sink lane dropped because a newer one replaced them",
                               ["lane"], registry=r)
        self.event_log_errors = Counter("lab_monitor_event_log_errors",
                                        "Event-log lines that could not be written (disk full, ...)",
                                        registry=r)
        for lane in ("notify", "scale"):
            self.dropped.labels(lane=lane)
        self.target_up = Gauge("lab_monitor_target_up", "1 while the monitored target answers", registry=r)
        self.workers = Gauge("lab_monitor_target_workers", "Worker processes of the target", registry=r)
        self.observed_p95 = Gauge("lab_monitor_observed_latency_p95_ms",
                                  "Latest measured latency p95 (ms) used as model input", registry=r)
        self.last_prediction = Gauge("lab_monitor_last_prediction_timestamp_seconds",
                                     "Unix time of the newest second the monitor predicted from",
                                     registry=r)
        for gauge in (self.probability, self.stability, self.workers, self.observed_p95,
                      self.last_prediction):
            gauge.set(NAN)
        self.horizon.set(horizon_s if horizon_s else NAN)
        self.target_up.set(0)
        self._regimes = list(dict.fromkeys(regimes))
        for name in self._regimes:
            self.regime.labels(regime=name).set(0)
        for name in ACTIONS:
            self.action.labels(action=name).set(1 if name == "none" else 0)
        self._horizons: set[str] = set()
        self._server = None
        self._thread = None

    # serving

    def start(self) -> "MonitorExporter":
        """Start serving /metrics on a daemon thread (port 0 picks a free port)."""
        try:
            self._server, self._thread = start_http_server(self._port, addr=self.host,
                                                           registry=self.registry)
        except OSError as exc:
            raise LabError(f"monitor /metrics: cannot listen on {self.host}:{self._port}: "
                           f"{exc.strerror or exc}") from None
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None

    def __enter__(self) -> "MonitorExporter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def text(self) -> str:
        """The exposition text, as a scrape would see it."""
        return generate_latest(self.registry).decode("utf-8")

    # values

    def publish(self, prediction: Prediction | None, decision: Decision | None = None,
                regime: str | None = None) -> None:
        """Expose this second's prediction (None: nothing to predict from) and decision."""
        if prediction is not None:
            p = prediction
            self.target_up.set(1 if p.target_up else 0)
            self.workers.set(_value(p.workers))
            self.observed_p95.set(_value(p.observed_p95_ms))
            self.probability.set(_value(p.probability))
            self.stability.set(_value(p.stability_percent))
            self.last_prediction.set(p.timestamp)
            if p.p95_ms:
                self.horizon.set(len(p.p95_ms))
                labels = set()
                for h, value in enumerate(p.p95_ms, start=1):
                    labels.add(str(h))
                    self.predicted_p95.labels(horizon_s=str(h)).set(_value(value))
                for stale in self._horizons - labels:
                    self.predicted_p95.remove(stale)
                self._horizons = labels
            regime = regime or p.regime
        if regime:
            if regime not in self._regimes:
                self._regimes.append(regime)
            for name in self._regimes:
                self.regime.labels(regime=name).set(1 if name == regime else 0)
        if decision is not None:
            for name in ACTIONS:
                self.action.labels(action=name).set(1 if name == str(decision.action) else 0)

    def set_target(self, up: bool, workers: int | None = None) -> None:
        """Expose the target's state when there is no prediction (a gap, before the window fills)."""
        self.target_up.set(1 if up else 0)
        if workers is not None or not up:
            self.workers.set(_value(workers))

    def count(self, action: str, sink: str, outcome: str) -> None:
        """Count one action handed to a sink."""
        self.actions.labels(action=str(action), sink=sink, outcome=outcome).inc()

    def count_dropped(self, lane: str, decision: Decision | None = None) -> None:
        """Count one decision a sink lane dropped for a newer one."""
        self.dropped.labels(lane=lane).inc()

    def count_event_log_error(self, exc: BaseException | None = None) -> None:
        """Count one event-log line that could not be written."""
        self.event_log_errors.inc()

    def count_outcomes(self, decision: Decision, outcomes: Mapping[str, str]) -> None:
        """Count what `Sinks.dispatch` returned for `decision`."""
        for sink, outcome in outcomes.items():
            self.count(decision.action, sink, outcome)


def _value(value) -> float:
    if value is None:
        return NAN
    value = float(value)
    return value if math.isfinite(value) else NAN
