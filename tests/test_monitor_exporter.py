"""The monitor's own /metrics: the HELPERS.md names, the published prediction, a clean close."""

from __future__ import annotations

import math
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from contract.errors import LabError
from monitor.exporter import MonitorExporter
from monitor.policy import Policy, Prediction


def scrape(url):
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_expose_a_published_prediction_and_decision():
    with MonitorExporter(port=0, horizon_s=3) as exporter:
        assert exporter.url.startswith("http://127.0.0.1:")
        before = scrape(exporter.url)
        # Nothing predicted yet: NaN, never a 0 % stability that would fire the rules.
        assert math.isnan(value(before, "lab_monitor_predicted_stability_percent"))
        assert math.isnan(value(before, "lab_monitor_slo_violation_probability"))
        assert value(before, "lab_monitor_recommended_action", action="none") == 1
        assert value(before, "lab_monitor_target_up") == 0

        t = time.time()
        prediction = Prediction(t, probability=0.75, p95_ms=(210.0, 480.0, 930.0), workers=2,
                                cpu_percent=120.0, observed_p95_ms=190.0, regime="saturated")
        decision = Policy(up_for_s=1, alert_probability=1.0).decide(prediction)
        exporter.publish(prediction, decision)
        exporter.count_outcomes(decision, {"scale_target": "sent", "event_log": "sent"})
        exporter.count_outcomes(decision, {"scale_target": "sent"})
        s = scrape(exporter.url)

        assert [value(s, "lab_monitor_predicted_latency_p95_ms", horizon_s=str(h)) for h in (1, 2, 3)] \
            == [210.0, 480.0, 930.0]
        assert value(s, "lab_monitor_slo_violation_probability") == 0.75
        assert value(s, "lab_monitor_predicted_stability_percent") == pytest.approx(25.0)
        assert value(s, "lab_monitor_horizon_seconds") == 3
        assert value(s, "lab_monitor_regime", regime="saturated") == 1
        assert value(s, "lab_monitor_regime", regime="healthy") == 0
        assert value(s, "lab_monitor_recommended_action", action="scale_up") == 1
        assert value(s, "lab_monitor_recommended_action", action="none") == 0
        assert value(s, "lab_monitor_actions_total", action="scale_up", sink="scale_target",
                     outcome="sent") == 2
        assert value(s, "lab_monitor_target_up") == 1
        assert value(s, "lab_monitor_target_workers") == 2
        assert value(s, "lab_monitor_observed_latency_p95_ms") == 190.0
        assert value(s, "lab_monitor_last_prediction_timestamp_seconds") == pytest.approx(t)

        # A shorter horizon drops the stale series; the target going away shows as 0.
        exporter.publish(Prediction(t + 1, probability=0.1, p95_ms=(200.0,), workers=2), None)
        exporter.set_target(False)
        s = scrape(exporter.url)
        assert ("lab_monitor_predicted_latency_p95_ms", (("horizon_s", "3"),)) not in s
        assert value(s, "lab_monitor_target_up") == 0
        port = exporter.port
    # Closed: nothing answers any more, and a new monitor can take the port.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    MonitorExporter(port=port).start().close()


def test_exporters_have_their_own_registries_and_a_busy_port_is_a_clear_error():
    with MonitorExporter(port=0) as a, MonitorExporter(port=0) as b:
        a.publish(Prediction(1.0, probability=0.5))
        assert "lab_monitor_slo_violation_probability 0.5" in a.text()
        assert "lab_monitor_slo_violation_probability NaN" in b.text()
        with pytest.raises(LabError, match=f"cannot listen on 127.0.0.1:{a.port}"):
            MonitorExporter(port=a.port).start()
