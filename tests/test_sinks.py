"""Action sinks against real receivers: a loopback webhook, a real Alertmanager, a real gunicorn."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from externaltools import require_tool
from contract.errors import BadInput
from monitor.policy import Action, Decision, Policy, Prediction
from monitor.sinks import (
    AlertmanagerSink, Ec2AutoScalingSink, EventLogSink, ScaleTargetSink, Sinks, WebhookSink,
    check_url, load_sinks,
)


def decision(action="scale_up", amount=1, t=None, alert_active=False, withheld=None,
             reason="probability 0.90 > 0.5 for 3 s", workers=2, probability=0.9):
    t = time.time() if t is None else t
    p = Prediction(t, probability=probability, p95_ms=(400.0, 950.0), workers=workers,
                   observed_p95_ms=380.0)
    desired = workers + amount if action == "scale_up" else workers - amount if action == "scale_down" else None
    return Decision(action=Action(action), amount=amount, reason=reason, prediction=p.snapshot(),
                    timestamp=t, withheld=withheld, workers=workers, desired_workers=desired,
                    alert_active=alert_active, policy="predictive:default")


# ---------------------------------------------------------------- a loopback receiver


class Receiver:
    """A real HTTP server on 127.0.0.1 that records JSON bodies and answers scripted statuses."""

    def __init__(self, statuses=(), delay_s=0.0):
        self.bodies, self.statuses, self.delay_s = [], list(statuses), delay_s
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append((self.path, json.loads(body)))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass      # the client timed out and left

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    made = []

    def _make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield _make
    for r in made:
        r.close()


# ---------------------------------------------------------------- webhook


def test_webhook_posts_a_slack_compatible_message(receiver):
    r = receiver()
    sink = WebhookSink(r.url, backoff_s=0.01)
    assert sink.handle(decision("scale_up", 1)) == "sent"
    assert sink.handle(decision("none", 0)) is None            # nothing to say
    path, body = r.bodies[0]
    assert path == "/hooks/T000/secret"
    assert body["text"].endswith("Stability Lab: scale up by 1: probability 0.90 > 0.5 for 3 s")
    assert body["blocks"][0]["type"] == "header"
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "*Predicted stability*\n10.0 %" in fields and "2 → 3" in fields and "950 ms" in fields
    assert len(r.bodies) == 1
    sink.close()


def test_webhook_retries_with_backoff_until_the_receiver_recovers(receiver):
    r = receiver(statuses=[500, 503])
    slept = []
    sink = WebhookSink(r.url, retries=3, backoff_s=0.01, sleep=lambda s: (slept.append(s), time.sleep(s)))
    assert sink.handle(decision("alert", 0, alert_active=True)) == "sent"
    assert len(r.bodies) == 3 and sink.last_result["attempts"] == 3
    assert slept == [0.01, 0.02]                               # exponential backoff
    # Always failing: gives up after 1 + retries attempts, and says so.
    r2 = receiver(statuses=[500] * 10)
    sink2 = WebhookSink(r2.url, retries=2, backoff_s=0.01)
    assert sink2.handle(decision()) == "failed"
    assert len(r2.bodies) == 3 and sink2.last_result["error"] == "HTTP 500"
    # A refusal (4xx) is final: retrying would send the same bad payload.
    r3 = receiver(statuses=[400])
    sink3 = WebhookSink(r3.url, retries=3, backoff_s=0.01)
    assert sink3.handle(decision()) == "failed" and len(r3.bodies) == 1


def test_webhook_times_out_within_its_bound(receiver):
    r = receiver(delay_s=1.5)
    sink = WebhookSink(r.url, timeout_s=0.2, retries=1, backoff_s=0.01)
    started = time.monotonic()
    assert sink.handle(decision()) == "failed"
    assert time.monotonic() - started < 1.2
    assert sink.last_result == {"attempts": 2, "error": "ReadTimeout"}


def test_webhook_tells_when_an_alert_episode_ends(receiver):
    r = receiver()
    sink = WebhookSink(r.url, backoff_s=0.01)
    assert sink.handle(decision("alert", 0, alert_active=True)) == "sent"
    assert sink.handle(decision("none", 0, alert_active=True)) is None
    assert sink.handle(decision("none", 0, alert_active=False)) == "sent"
    assert "resolved" in r.bodies[-1][1]["text"]


@pytest.mark.parametrize("url", ["http://example.com/hook", "http://10.0.0.5:8080/hook",
                                 "http://192.168.1.2/x", "ftp://127.0.0.1/x", "127.0.0.1:9000",
                                 "http:///nohost"])
def test_webhook_refuses_plain_http_off_loopback_and_other_schemes(url):
    with pytest.raises(BadInput, match="webhook url"):
        WebhookSink(url)


def test_webhook_accepts_https_and_loopback_http_and_hides_the_secret_path():
    for url in ("https://hooks.example.com/services/T/B/X", "http://localhost:9/x",
                "http://127.0.0.2:9/x", "http://[::1]:9/x"):
        assert check_url(url, "webhook url") == url
    with pytest.raises(BadInput) as err:
        WebhookSink("http://hooks.example.com/services/T/B/SECRET")
    assert "SECRET" not in str(err.value)


@pytest.mark.parametrize("make", [WebhookSink, AlertmanagerSink])
@pytest.mark.parametrize("url", ["http://user:s3cret@example.com:0", "https://user:s3cret@hooks.example.com:99999/x",
                                 "ftp://user:s3cret@127.0.0.1", "https://user:s3cret@[::1/x"])
def test_a_refused_url_never_shows_its_user_info(make, url):
    with pytest.raises(BadInput) as err:
        make(url, timeout_s=0.2, retries=0) if make is WebhookSink else make(url, retries=0, timeout_s=0.2)
    message = str(err.value)
    assert "s3cret" not in message and "user" not in message and "\n" not in message, message


def test_a_failing_post_never_shows_the_user_info(tmp_path):
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    path = tmp_path / "events.jsonl"
    sinks = Sinks([WebhookSink(f"http://user:s3cret@127.0.0.1:{port}/hook", retries=0, timeout_s=0.5)],
                  EventLogSink(path))
    outcomes = sinks.dispatch(decision("scale_up", 1))
    sinks.close()
    assert outcomes["webhook"] == "failed"
    assert "s3cret" not in path.read_text() and "s3cret" not in json.dumps(sinks.sinks[0].last_result)


def test_monitor_takes_the_webhook_from_the_environment():
    import typer

    from lab import app

    command = typer.main.get_command(app).commands["monitor"]
    webhook = next(p for p in command.params if p.name == "webhook")
    assert webhook.envvar == "LAB_WEBHOOK_URL"


# ---------------------------------------------------------------- event log and the set of sinks


def test_event_log_writes_each_taken_or_held_decision_with_its_prediction(tmp_path, receiver):
    r = receiver()
    path = tmp_path / "events.jsonl"
    policy = Policy(up_for_s=1, cooldown_up_s=5, alert_probability=1.0)
    sinks = Sinks([WebhookSink(r.url, backoff_s=0.01)], EventLogSink(path))
    t0 = time.time()
    outcomes = []
    for i, p in enumerate([0.1, 0.9, 0.9, 0.9, 0.2]):
        d = policy.decide(Prediction(t0 + i, probability=p, workers=2))
        outcomes.append(sinks.dispatch(d))
    # Flushed line by line: readable before close.
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["action"], x["withheld"]) for x in lines] == [("scale_up", None), ("none", "scale_up")]
    assert lines[0]["outcomes"] == {"webhook": "sent"}
    assert lines[0]["prediction"]["probability"] == 0.9 and lines[0]["prediction"]["workers"] == 2
    assert lines[0]["desired_workers"] == 3 and lines[0]["time"].endswith("Z")
    assert "cool-down" in lines[1]["reason"]
    assert outcomes[1] == {"webhook": "sent", "event_log": "sent"}
    assert outcomes[0] == {} and outcomes[3] == {}             # a continuing hold is not re-logged
    sinks.close()

    every = io.StringIO()
    log = EventLogSink(every, every_second=True)
    log.record(decision("none", 0))
    assert json.loads(every.getvalue())["action"] == "none"


def test_a_failing_sink_does_not_stop_the_others(tmp_path):
    class Broken:
        name, last_result = "broken", None

        def handle(self, d):
            raise RuntimeError("boom")

        def close(self):
            pass

    log = io.StringIO()
    sinks = Sinks([Broken(), Ec2AutoScalingSink("asg-1")], EventLogSink(log))
    out = sinks.dispatch_async(decision("scale_up", 1)).result(5)
    assert out == {"broken": "failed", "ec2_autoscaling": "dry_run", "event_log": "sent"}
    assert json.loads(log.getvalue())["results"]["broken"]["error"] == "RuntimeError: boom"
    sinks.close()


def test_sinks_from_a_toml_file(tmp_path, receiver, monkeypatch):
    r = receiver()
    monkeypatch.setenv("LAB_TEST_HOOK", r.url)
    path = tmp_path / "monitor.toml"
    path.write_text(f'''
[policy]
preset = "guide"

[[sinks]]
kind = "event_log"
path = "{tmp_path / 'ev.jsonl'}"

[[sinks]]
kind = "webhook"
url_env = "LAB_TEST_HOOK"
retries = 1
actions = ["alert"]

[[sinks]]
kind = "alertmanager"
url = "http://127.0.0.1:1"
labels = {{ team = "lab" }}

[[sinks]]
kind = "ec2-autoscaling"
group = "web-asg"
max_size = 4
''')
    sinks = load_sinks(path)
    assert [s.name for s in sinks] == ["webhook", "alertmanager", "ec2_autoscaling", "event_log"]
    webhook = sinks.sinks[0]
    assert webhook.actions == {"alert"} and webhook.url == r.url
    assert sinks.sinks[1].url == "http://127.0.0.1:1/api/v2/alerts"
    assert sinks.sinks[1].labels == {"team": "lab"}
    sinks.close()

    bad = tmp_path / "bad.toml"
    for body, message in [
        ('[[sinks]]\nkind = "pager"\n', "sinks[0].kind: 'pager'"),
        ('[[sinks]]\nkind = "webhook"\nurl = "http://hooks.example.com/x"\n', "sinks[0]: webhook url"),
        ('[[sinks]]\nkind = "webhook"\nurl = "https://h.example/x"\nretry = 2\n', "sinks[0].retry: unknown key"),
        ('[[sinks]]\nkind = "webhook"\n', "sinks[0].url: required key is missing"),
        ('[[sinks]]\nkind = "scale_target"\n', "sinks[0].master_pid: required key is missing"),
        ('[[sinks]]\nkind = "alertmanager"\nurl = "http://127.0.0.1:1"\nttl_s = "5m"\n',
         "sinks[0].ttl_s: expected a number"),
    ]:
        bad.write_text(body)
        with pytest.raises(BadInput) as err:
            load_sinks(bad)
        assert str(err.value).startswith(str(bad)) and message in str(err.value), str(err.value)


# ---------------------------------------------------------------- cloud (dry-run only)


def test_ec2_autoscaling_is_dry_run_by_default_and_never_imports_boto3():
    sink = Ec2AutoScalingSink("web-asg", region="eu-west-1", min_size=1, max_size=3, desired=2)
    assert sink.handle(decision("scale_up", 1)) == "dry_run"
    assert sink.last_result["request"] == {"AutoScalingGroupName": "web-asg", "DesiredCapacity": 3,
                                           "HonorCooldown": True}
    assert sink.handle(decision("scale_up", 1)) == "skipped"        # max_size
    assert sink.handle(decision("scale_down", 5)) == "dry_run"
    assert sink.last_result["request"]["DesiredCapacity"] == 1      # min_size
    assert sink.handle(decision("alert", 0)) is None
    assert "boto3" not in sys.modules
    with pytest.raises(BadInput):
        Ec2AutoScalingSink("", min_size=1)


# ---------------------------------------------------------------- a real Alertmanager


@pytest.fixture
def alertmanager(tmp_path):
    from target_app.server import free_port

    binary = require_tool("prometheus-alertmanager")
    port = free_port()
    (tmp_path / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    log = open(tmp_path / "am.log", "wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(url + "/-/ready", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start: {(tmp_path / 'am.log').read_text()[-500:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def active_alerts(url):
    return requests.get(url + "/api/v2/alerts", params={"active": "true"}, timeout=5).json()


@pytest.mark.slow
def test_alertmanager_receives_the_alert_and_its_resolution(alertmanager):
    sink = AlertmanagerSink(alertmanager, generator_url="http://127.0.0.1:9105/metrics",
                            labels={"target": "http://127.0.0.1:5000"}, resend_s=1, ttl_s=60,
                            backoff_s=0.05)
    policy = Policy(alert_for_s=2, alert_clear_for_s=2, up_probability=0.99)
    t0 = time.time()
    outcomes = [sink.handle(policy.decide(Prediction(t0 + i, probability=0.95, p95_ms=(500, 1200),
                                                     workers=2)))
                for i in range(3)]
    assert outcomes == [None, "sent", None]
    (alert,) = active_alerts(alertmanager)
    assert alert["labels"] == {"alertname": "StabilityLabPredictedSLOViolation", "severity": "warning",
                               "service": "stability-lab", "source": "lab-monitor",
                               "target": "http://127.0.0.1:5000"}
    assert alert["annotations"]["probability"] == "0.95"
    assert alert["annotations"]["predicted_p95_peak_ms"] == "1200"
    assert alert["generatorURL"] == "http://127.0.0.1:9105/metrics"
    assert alert["status"]["state"] == "active"

    # Calm for alert_clear_for_s seconds ends the episode: the alert is resolved at once.
    calm = [sink.handle(policy.decide(Prediction(t0 + 3 + i, probability=0.05, workers=2)))
            for i in range(2)]
    assert calm == [None, "sent"]
    assert active_alerts(alertmanager) == []
    sink.close()


# ---------------------------------------------------------------- a real gunicorn


def target_workers_gauge(url):
    text = requests.get(url + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "lab_target_workers":
            return family.samples[0].value
    return None


def wait_gauge(url, value, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if target_workers_gauge(url) == value:
            return value
        time.sleep(0.2)
    return target_workers_gauge(url)


@pytest.mark.slow
def test_scale_target_changes_the_real_gunicorn_worker_count_within_bounds(make_target):
    target = make_target(workers=2, threads=2)
    sink = ScaleTargetSink(target.pid, min_workers=2, max_workers=3, wait_s=15)
    assert sink.workers() == 2

    assert sink.handle(decision("scale_up", 1)) == "sent"
    assert sink.last_result == {"workers_before": 2, "requested": 3, "workers": 3}
    assert len(target.worker_pids()) == 3
    assert wait_gauge(target.url, 3) == 3                        # the target's own /metrics agrees
    assert sink.handle(decision("scale_up", 2)) == "skipped"     # max_workers 3
    assert sink.last_result["reason"] == "at max_workers 3" and sink.workers() == 3

    assert sink.handle(decision("scale_down", 1)) == "sent"
    assert sink.last_result["workers"] == 2 and len(target.worker_pids()) == 2
    assert wait_gauge(target.url, 2) == 2
    assert sink.handle(decision("scale_down", 1)) == "skipped"   # min_workers 2
    assert requests.get(target.url + "/healthz", timeout=5).ok


def test_scale_target_refuses_a_process_that_is_not_gunicorn():
    # TTIN/TTOU would stop an ordinary process: the sink must never signal one.
    with pytest.raises(BadInput, match="not a gunicorn master"):
        ScaleTargetSink(os.getpid())
    with pytest.raises(BadInput, match="min_workers"):
        ScaleTargetSink(os.getpid(), min_workers=3, max_workers=2)


# ---------------------------------------------------------------- lanes: slow peers never hold up scaling


class Silent:
    """A real TCP listener on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.held, self.accepted = [], 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.held.append(conn)

    def close(self):
        self._stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent():
    s = Silent()
    yield s
    s.close()


class Recorder:
    """A sink that changes the target (like scale_target) and notes when each action reached it."""

    name, changes_target, last_result = "scaler", True, None

    def __init__(self):
        self.handled = []

    def handle(self, d):
        if d.action.value.startswith("scale"):
            self.handled.append((d.timestamp, time.monotonic()))
            return "sent"
        return None

    def close(self):
        pass


def test_an_alertmanager_that_never_answers_neither_delays_scaling_nor_queues_up(silent):
    from monitor.exporter import MonitorExporter

    exporter = MonitorExporter(port=0)
    log = io.StringIO()
    scaler = Recorder()
    sinks = Sinks([AlertmanagerSink(silent.url, timeout_s=1.0, retries=1, backoff_s=0.1), scaler],
                  EventLogSink(log))
    sinks.on_drop = exporter.count_dropped
    sent_at, futures = {}, []
    t0 = time.time()
    for i in range(40):
        action = "alert" if i == 0 else "scale_up" if i % 10 == 5 else "none"
        d = decision(action, 1 if action == "scale_up" else 0, t=t0 + i, alert_active=True)
        if action == "scale_up":
            sent_at[d.timestamp] = time.monotonic()
        futures.append(sinks.dispatch_async(d))
        time.sleep(0.05)
    # Every scale action reached its sink at once, although each post hangs for seconds.
    assert len(scaler.handled) == 4
    assert all(at - sent_at[ts] < 0.5 for ts, at in scaler.handled), scaler.handled
    # The notification lane holds the decision in hand and one waiting: the rest were dropped.
    assert sum(not f.done() for f in futures) <= 2
    dropped = [f.result() for f in futures if f.done() and f.result().get("alertmanager") == "dropped"]
    assert len(dropped) >= 30
    assert exporter.text().count('lab_monitor_decisions_dropped_total{lane="notify"} ') == 1
    assert f'lab_monitor_decisions_dropped_total{{lane="notify"}} {float(sinks.dropped()["notify"])}' in exporter.text()
    started = time.monotonic()
    sinks.close()
    assert time.monotonic() - started < 6          # the post in hand, then the paused sink skips
    assert silent.accepted <= 3                     # no retry storm against the silent peer
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    ups = [line for line in lines if line["action"] == "scale_up"]
    assert len(ups) == 4 and all(line["outcomes"]["scaler"] == "sent" for line in ups)


def test_an_unreachable_alertmanager_is_tried_after_a_pause_not_every_second(receiver):
    r = receiver(statuses=[503] * 1000)
    sink = AlertmanagerSink(r.url, retries=0, timeout_s=1.0, resend_s=1.0)
    t0 = time.time()
    outcomes = [sink.handle(decision("alert", 0, t=t0, alert_active=True))]
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        outcomes.append(sink.handle(decision("none", 0, alert_active=True)))
        time.sleep(0.05)
    assert outcomes[0] == "failed"
    assert 2 <= len(r.bodies) <= 3, len(r.bodies)      # t=0, then after the 2 s pause (and 4 s next)
    # A new alert decision while pausing is recorded as skipped, with the reason.
    assert sink.handle(decision("alert", 0, alert_active=True)) == "skipped"
    assert sink.last_result["reason"].startswith("backing off:")


def test_a_dropped_alert_decision_still_fires_the_episode(receiver):
    r = receiver()
    sink = AlertmanagerSink(r.url, retries=0, resend_s=30)
    assert sink.handle(decision("none", 0, alert_active=True)) == "sent"
    assert r.bodies[0][1][0]["labels"]["alertname"] == "StabilityLabPredictedSLOViolation"
    assert sink.handle(decision("none", 0, alert_active=True)) is None      # keep-alive not due yet
    assert sink.handle(decision("none", 0, alert_active=False)) == "sent"   # resolved


def test_an_event_log_that_cannot_be_written_is_counted_and_reported_once(capsys):
    from monitor.exporter import MonitorExporter
    from monitor.live import _count

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    exporter = MonitorExporter(port=0)
    sinks = Sinks([Ec2AutoScalingSink("asg-1")], EventLogSink(Full()))
    sinks.on_log_error = exporter.count_event_log_error
    for i in range(3):
        d = decision("scale_up", 1, t=time.time() + i)
        future = sinks.dispatch_async(d)
        future.add_done_callback(lambda f, d=d: _count(exporter, d, f))
        assert future.result(5)["event_log"] == "failed"
    sinks.close()
    err = capsys.readouterr().err
    assert err.count("warning: event log") == 1 and "No space left on device" in err
    assert "lab_monitor_event_log_errors_total 3.0" in exporter.text()
    assert 'lab_monitor_actions_total{action="scale_up",outcome="failed",sink="event_log"} 3.0' in exporter.text()


def test_lane_keeps_one_waiting_item_and_never_lets_a_non_action_displace_an_action():
    from monitor.sinks import Lane

    gate, done, dropped = threading.Event(), [], []
    lane = Lane("t", lambda item: (gate.wait(5), done.append(item)), dropped.append,
                displaces=lambda new, old: new[1] or not old[1])
    lane.submit(("first", True))
    time.sleep(0.1)                        # the worker holds "first"
    lane.submit(("a", True))
    lane.submit(("b", False))              # a non-action does not displace the waiting action
    lane.submit(("c", True))               # a newer action does
    assert [d[0] for d in dropped] == ["b", "a"] and lane.dropped == 2 and lane.busy()
    gate.set()
    lane.close(5)
    assert [d[0] for d in done] == ["first", "c"]
    lane.submit(("late", True))
    assert dropped[-1] == ("late", True)


@pytest.mark.slow
def test_a_real_scale_action_is_not_held_up_by_a_silent_alertmanager(make_target, silent, tmp_path):
    target = make_target(workers=1, threads=2)
    scale = ScaleTargetSink(target.pid, min_workers=1, max_workers=3)
    sinks = Sinks([AlertmanagerSink(silent.url, timeout_s=3.0, retries=1, backoff_s=0.1), scale],
                  EventLogSink(tmp_path / "events.jsonl"))
    t0 = time.time()
    alert = sinks.dispatch_async(decision("alert", 0, t=t0, alert_active=True, workers=1))  # a 6 s post
    time.sleep(0.2)
    started = time.monotonic()
    sinks.dispatch_async(decision("scale_up", 1, t=t0 + 1, alert_active=True, workers=1))
    while scale.workers() != 2 and time.monotonic() - started < 5:
        time.sleep(0.05)
    took = time.monotonic() - started
    assert scale.workers() == 2 and took < 5, took
    assert not alert.done()                  # the alert post is still hanging meanwhile
    sinks.close()
    assert alert.result()["alertmanager"] == "failed"
