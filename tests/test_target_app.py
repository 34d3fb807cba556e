"""The target app through Flask's test client: endpoints, admin API, metrics."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families


def samples(client):
    text = client.get("/metrics").get_data(as_text=True)
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(metrics, name, **labels):
    return sum(v for (n, lab), v in metrics.items()
               if n == name and all(dict(lab).get(k) == str(x) for k, x in labels.items()))


def test_index_and_health(client):
    assert client.get("/").status_code == 200
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"


def test_stress_defaults_follow_the_guide(tmp_path):
    from target_app.app import create_app

    app = create_app({"STATE_DIR": str(tmp_path)})
    assert (app.config["STRESS_WAIT_MIN_S"], app.config["STRESS_WAIT_MAX_S"]) == (0.5, 2.0)
    assert app.config["DEBUG"] is False


def test_stress_options(client):
    started = time.perf_counter()
    body = client.get("/stress?wait_min=0&wait_max=0&cpu_ms=20&io_ms=30").get_json()
    assert body["status"] == "stressed"
    assert time.perf_counter() - started >= 0.045
    assert body["cpu_ms"] == 20 and body["io_ms"] == 30


@pytest.mark.parametrize("query", ["cpu_ms=abc", "cpu_ms=-1", "io_ms=999999", "wait_min=2&wait_max=1"])
def test_stress_rejects_bad_options(client, query):
    resp = client.get(f"/stress?{query}")
    assert resp.status_code == 400
    assert resp.get_json()["error"]


def test_catalogue(client):
    page = client.get("/products?limit=5&offset=10").get_json()
    assert len(page["items"]) == 5 and page["items"][0]["id"] == 11
    assert client.get("/products/3").get_json()["id"] == 3
    assert client.get("/products/99999").status_code == 404
    assert client.get("/products?limit=1000").status_code == 400
    hits = client.get("/products/search?q=red").get_json()
    assert hits["count"] > 0 and all("red" in p["name"] for p in hits["items"])
    assert client.get("/products/search").status_code == 400


def test_checkout(client):
    resp = client.post("/checkout", json={"items": [{"id": 1, "qty": 2}, {"id": 2}]})
    assert resp.status_code == 201
    assert resp.get_json()["items"] == 2
    assert client.post("/checkout", json={"items": []}).status_code == 400
    assert client.post("/checkout", json={"items": [{"id": 10**6}]}).status_code == 400
    assert client.post("/checkout", data="nope").status_code == 400


def test_same_seed_same_catalogue(tmp_path):
    from target_app.app import create_app

    a = create_app({"SEED": 5, "STATE_DIR": str(tmp_path / "a")}).test_client()
    b = create_app({"SEED": 5, "STATE_DIR": str(tmp_path / "b")}).test_client()
    assert a.get("/products").get_json() == b.get("/products").get_json()


def test_admin_requires_token(client, admin_headers):
    assert client.get("/admin/faults").status_code == 401
    assert client.get("/admin/faults", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/admin/faults", headers=admin_headers).status_code == 200


def test_admin_refuses_remote_clients(client, admin_headers):
    resp = client.get("/admin/faults", headers=admin_headers,
                      environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert resp.status_code == 403


@pytest.mark.parametrize("body,needle", [
    ({"kind": "boom"}, "kind"),
    ({"kind": "latency", "intensity": 1.5}, "intensity"),
    ({"kind": "latency", "intensity": "high"}, "intensity"),
    ({"kind": "cpu", "duration_s": -3}, "duration_s"),
    ({"kind": "cpu", "extra": 1}, "unknown"),
    ([1, 2], "object"),
])
def test_admin_rejects_bad_fault_specs(client, admin_headers, body, needle):
    resp = client.post("/admin/faults", json=body, headers=admin_headers)
    assert resp.status_code == 400
    assert needle in resp.get_json()["error"]


def test_fault_lifecycle_and_gauges(client, admin_headers):
    resp = client.post("/admin/faults", json={"kind": "errors", "intensity": 1.0},
                       headers=admin_headers)
    assert resp.status_code == 201
    assert [f["kind"] for f in resp.get_json()["faults"]] == ["errors"]
    assert client.get("/products/1").status_code == 503
    m = samples(client)
    assert m[("lab_fault_active", (("kind", "errors"),))] == 1.0
    assert m[("lab_fault_intensity", (("kind", "errors"),))] == 1.0
    assert m[("lab_fault_active", (("kind", "latency"),))] == 0.0
    client.delete("/admin/faults/errors", headers=admin_headers)
    assert client.get("/products/1").status_code == 200
    assert samples(client)[("lab_fault_active", (("kind", "errors"),))] == 0.0


def test_timed_fault_clears_itself(client, admin_headers):
    client.post("/admin/faults", json={"kind": "errors", "intensity": 1.0, "duration_s": 0.3},
                headers=admin_headers)
    assert client.get("/products/1").status_code == 503
    time.sleep(0.4)
    assert client.get("/products/1").status_code == 200
    assert client.get("/admin/faults", headers=admin_headers).get_json()["faults"] == []


def test_latency_fault_delays_requests(client, admin_headers):
    client.post("/admin/faults", json={"kind": "latency", "intensity": 0.1}, headers=admin_headers)
    started = time.perf_counter()
    client.get("/products/1")
    assert time.perf_counter() - started >= 0.15   # 0.1 x 2 s, drawn within +-20%
    client.delete("/admin/faults", headers=admin_headers)


def test_request_metrics_move_by_endpoint_not_path(client):
    before = samples(client)
    for pid in (1, 2, 3):
        client.get(f"/products/{pid}")
    client.get("/products/99999")
    after = samples(client)
    assert total(after, "flask_http_request_total", status=200) - \
        total(before, "flask_http_request_total", status=200) == 3
    assert total(after, "flask_http_request_total", status=404) == 1
    endpoints = {dict(lab).get("endpoint") for (n, lab) in after
                 if n == "flask_http_request_duration_seconds_count"}
    assert "api.get_product" in endpoints
    assert not any(e and "/" in e for e in endpoints)
    # /metrics, /healthz and /admin are not counted as traffic
    client.get("/healthz")
    again = samples(client)
    assert total(again, "flask_http_request_total") == total(after, "flask_http_request_total")


def test_histogram_buckets_cover_5ms_to_30s(client):
    from target_app.metrics import LATENCY_BUCKETS

    assert LATENCY_BUCKETS[0] == 0.005 and LATENCY_BUCKETS[-1] == 30.0
    ratios = [b / a for a, b in zip(LATENCY_BUCKETS, LATENCY_BUCKETS[1:])]
    assert max(ratios) <= 1.3


def test_in_flight_gauge_returns_to_zero(client):
    client.get("/products/1")
    assert samples(client)[("lab_http_requests_in_flight", ())] == 0.0


def test_apps_do_not_share_a_registry(tmp_path):
    from target_app.app import create_app

    for n in range(3):
        app = create_app({"STATE_DIR": str(tmp_path / str(n))})
        assert app.test_client().get("/metrics").status_code == 200


def test_low_intensity_memory_leak_still_grows(tmp_path):
    """At 0.1 one poll owes 0.1 MB; the owed growth must add up, not be dropped."""
    from target_app.faults import MEMORY_RATE_MB_S, FaultEngine, FaultStore, parse_fault

    engine = FaultEngine(FaultStore(tmp_path))
    engine.store.set(parse_fault({"kind": "memory", "intensity": 0.1}))
    engine.start()
    time.sleep(2.0)
    leaked = engine.leaked_mb
    engine.store.clear()
    time.sleep(0.3)
    engine.stop()
    assert leaked >= 0.5 * 2.0 * 0.1 * MEMORY_RATE_MB_S
    assert engine.leaked_mb == 0.0


# ------------------------------------------------------------------ configuration from the environment


def test_only_known_lab_variables_reach_the_config(tmp_path, monkeypatch):
    """LAB_DEBUG must not turn Flask's debugger on under gunicorn; other LAB_* keys stay out."""
    from target_app.app import create_app

    monkeypatch.setenv("LAB_DEBUG", "true")
    monkeypatch.setenv("LAB_SCENARIO", "spike")
    monkeypatch.setenv("LAB_TESTING", "1")
    monkeypatch.setenv("LAB_SEED", "7")
    app = create_app({"STATE_DIR": str(tmp_path)})
    assert app.config["DEBUG"] is False and app.debug is False
    assert "SCENARIO" not in app.config and app.config["TESTING"] is False
    assert app.config["SEED"] == 7


@pytest.mark.parametrize("raw", ["1e3", "true", "null", "1.50"])
def test_a_token_from_the_environment_stays_the_string_given(tmp_path, monkeypatch, raw):
    from target_app.app import create_app

    monkeypatch.setenv("LAB_ADMIN_TOKEN", raw)
    client = create_app({"STATE_DIR": str(tmp_path)}).test_client()
    assert client.get("/admin/faults", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


@pytest.mark.parametrize("name,raw", [("LAB_SEED", "abc"), ("LAB_METRICS", "maybe"),
                                      ("LAB_STRESS_WAIT_MIN_S", "nan")])
def test_a_bad_known_variable_is_one_line_naming_it(tmp_path, monkeypatch, name, raw):
    from contract.errors import BadInput
    from target_app.app import create_app

    monkeypatch.setenv(name, raw)
    with pytest.raises(BadInput, match=f"^environment: {name}: expected"):
        create_app({"STATE_DIR": str(tmp_path)})


# ------------------------------------------------------------------ queue time (X-Request-Start)


@pytest.mark.parametrize("header,expected", [
    ("t=1700000000123456", 1700000000.123456),      # epoch microseconds: what the lab sends
    ("t=1700000000.123456", 1700000000.123456),     # seconds with a fraction
    ("1700000000123456", 1700000000.123456),        # plain digits, unit from the magnitude
    ("1700000000123", 1700000000.123),
    ("1700000000", 1700000000.0),
    ("t=1700000000123456789", 1700000000.123456789),
    (" t=1700000000.5 ", 1700000000.5),
    ("t=", None), ("t=abc", None), ("1e9", None), ("-5", None), ("", None), (None, None),
])
def test_request_start_formats(header, expected):
    from target_app.metrics import parse_request_start

    got = parse_request_start(header)
    assert got == (None if expected is None else pytest.approx(expected, abs=1e-6))


def queue_histogram(client) -> tuple[float, float, dict]:
    m = samples(client)
    buckets = {dict(lab)["le"]: v for (n, lab), v in m.items() if n == "lab_request_queue_seconds_bucket"}
    return m[("lab_request_queue_seconds_count", ())], m[("lab_request_queue_seconds_sum", ())], buckets


def test_queue_time_is_observed_from_a_sane_stamp_only(client):
    now = time.time()
    client.get("/products/1", headers={"X-Request-Start": f"t={int((now - 0.5) * 1e6)}"})
    count, total_s, buckets = queue_histogram(client)
    assert count == 1 and 0.5 <= total_s < 1.5
    assert buckets["0.4"] == 0 and buckets["1.1"] == 1

    client.get("/products/1", headers={"X-Request-Start": f"t={now + 5:.6f}"})   # clock ahead: 0
    client.get("/products/1")                                                       # no stamp
    client.get("/products/1", headers={"X-Request-Start": f"t={int((now - 7200) * 1e6)}"})
    client.get("/products/1", headers={"X-Request-Start": "garbage"})
    client.get("/healthz", headers={"X-Request-Start": f"t={int(now * 1e6)}"})    # not traffic
    count2, total2, buckets2 = queue_histogram(client)
    assert count2 == 2 and total2 == pytest.approx(total_s)
    assert buckets2["0.001"] == 1


def test_queue_buckets_cover_1ms_to_30s_about_20_percent_apart():
    from target_app.metrics import QUEUE_BUCKETS

    assert QUEUE_BUCKETS[0] == 0.001 and QUEUE_BUCKETS[-1] == 30.0
    ratios = [b / a for a, b in zip(QUEUE_BUCKETS, QUEUE_BUCKETS[1:])]
    assert min(ratios) >= 1.1 and max(ratios) <= 1.3
