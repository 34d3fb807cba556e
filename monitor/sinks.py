"""Where decisions go: a JSON-lines event log, a webhook, Alertmanager, the lab target, AWS.

A sink is anything with a `name`, `handle(decision) -> outcome | None` and `close()`.
The outcome is one of OUTCOMES ("sent", "failed", "skipped", "dry_run", "dropped"); None
means the decision was nothing for this sink (an alert sink and a scale decision). A sink
may leave details of its last action in `last_result` (the scale sink puts the resulting
worker count there). `Sinks` hands each decision to every sink and then writes one
event-log line with the prediction, the decision and every sink's outcome.

The network sinks send synchronously with a bounded worst case
((retries + 1) x timeout_s + the backoff sleeps), and after a failed post they pause
(2 s, 4 s, ... up to a minute) instead of trying again every second.
`Sinks.dispatch_async` is for a loop that must keep 1 Hz: sinks that change the target
(scaling) run on their own lane, the others (notifications) on another, so a slow or
unreachable receiver never delays a scale action. Each lane is one thread with a mailbox
of one (`Lane`): while it is busy, the newest decision waits and the one it replaces is
dropped, counted and logged with the outcome "dropped", so nothing queues up without bound.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import requests

from contract.addresses import is_loopback_host, redact_url
from contract.errors import BadInput, LabError

from .config import coerce, read_toml
from .policy import Action, Decision

OUTCOMES = ("sent", "failed", "skipped", "dry_run", "dropped")
NOTIFY_ACTIONS = ("scale_up", "scale_down", "alert")
ALERTNAME = "StabilityLabPredictedSLOViolation"
REACTIVE_ALERTNAME = "StabilityLabSLOViolation"
MAX_BACKOFF_S = 8.0
# After a failed post (every retry spent) a receiver is left alone for 2, 4, 8 ... s.
FAILURE_PAUSE_S = 2.0
MAX_FAILURE_PAUSE_S = 60.0


class Sink:
    """Base class: override `handle`. `changes_target` sinks (scaling) get their own lane."""

    name = "sink"
    changes_target = False

    def __init__(self):
        self.last_result: dict[str, Any] | None = None

    def handle(self, decision: Decision) -> str | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- lanes and backoff


class Backoff:
    """Consecutive failures of one receiver and how long to leave it alone: 2, 4, 8 ... s, capped."""

    def __init__(self, first_s: float = FAILURE_PAUSE_S, max_s: float = MAX_FAILURE_PAUSE_S,
                 clock: Callable[[], float] = time.monotonic):
        self.first_s, self.max_s, self.clock = first_s, max_s, clock
        self.failures = 0
        self._until = -math.inf

    def failed(self) -> None:
        self.failures += 1
        self._until = self.clock() + min(self.max_s, self.first_s * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures, self._until = 0, -math.inf

    def left(self) -> float:
        """Seconds until the receiver may be tried again (0 when it may be tried now)."""
        return max(0.0, self._until - self.clock())

    def reason(self) -> str:
        return f"backing off: {self.left():.0f} s left after {self.failures} failed attempt(s)"


class Lane:
    """One worker thread with a mailbox of one, for work that must not queue up behind a slow peer.

    `submit` never blocks: while the worker is busy, the item waits in the mailbox; a
    newer item replaces it (the newest wins) and the replaced one goes to `on_drop`,
    unless `displaces(new, waiting)` is false, in which case the new item is dropped
    instead. `close` lets the worker finish the item in hand (and the waiting one, unless
    told to discard it); items submitted after close are dropped.
    """

    def __init__(self, name: str, work: Callable[[Any], None], on_drop: Callable[[Any], None],
                 displaces: Callable[[Any, Any], bool] = lambda new, waiting: True):
        self.name, self.work, self.on_drop, self.displaces = name, work, on_drop, displaces
        self.dropped = 0
        self._waiting: Any = None
        self._has_waiting = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"lab-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        drop, victim = False, None
        with self._cond:
            if self._closing:
                drop, victim = True, item
            elif self._has_waiting:
                drop = True
                if self.displaces(item, self._waiting):
                    victim, self._waiting = self._waiting, item
                else:
                    victim = item
            else:
                self._waiting, self._has_waiting = item, True
                self._cond.notify()
            if drop:
                self.dropped += 1
        if drop:
            self.on_drop(victim)

    def busy(self) -> bool:
        """Whether an item waits (for tests and status)."""
        with self._cond:
            return self._has_waiting

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_waiting and not self._closing:
                    self._cond.wait()
                if not self._has_waiting:
                    return
                item, self._waiting, self._has_waiting = self._waiting, None, False
            try:
                self.work(item)
            except Exception as exc:  # work reports its own failures; a bug must not kill the lane
                print(f"warning: {self.name} lane: {type(exc).__name__}: {exc}", file=sys.stderr)

    def close(self, timeout_s: float | None = None, discard_waiting: bool = False) -> None:
        """Stop after the item in hand and the waiting one (or drop that one with discard_waiting)."""
        drop, victim = False, None
        with self._cond:
            self._closing = True
            if discard_waiting and self._has_waiting:
                drop, victim, self._waiting, self._has_waiting = True, self._waiting, None, False
                self.dropped += 1
            self._cond.notify()
        if drop:
            self.on_drop(victim)
        self._thread.join(timeout_s)


# ---------------------------------------------------------------- event log


class EventLogSink(Sink):
    """Append one JSON line per decision taken or held back, with its prediction; flush each line.

    A hold that lasts (a cool-down, a bound) is written when it starts, not every
    second; `every_second=True` writes every decision, "none" included.
    """

    name = "event_log"

    def __init__(self, path_or_stream: str | Path | IO[str], every_second: bool = False):
        super().__init__()
        self.every_second = every_second
        if isinstance(path_or_stream, (str, Path)):
            self.path: Path | None = Path(path_or_stream)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._stream: IO[str] = open(self.path, "a", encoding="utf-8")
            except OSError as exc:
                raise BadInput(f"{self.path}: cannot open the event log: {exc.strerror or exc}") from None
            self._own = True
        else:
            self.path, self._stream, self._own = None, path_or_stream, False
        self._held: tuple[str | None, str | None] = (None, None)
        self._lock = threading.Lock()

    def wants(self, decision: Decision) -> bool:
        """Whether this decision gets a line."""
        held = (str(decision.withheld) if decision.withheld else None, _reason_kind(decision.reason))
        new_hold = decision.withheld is not None and held != self._held
        self._held = held if decision.withheld is not None else (None, None)
        return self.every_second or decision.taken or new_hold

    def handle(self, decision: Decision) -> str | None:
        return self.record(decision)

    def record(self, decision: Decision, outcomes: Mapping[str, str] | None = None,
               results: Mapping[str, Any] | None = None, wanted: bool | None = None) -> str | None:
        """Write the decision's line (if it gets one) with the other sinks' outcomes.

        `wanted` is `wants(decision)` asked earlier, in decision order (the lanes finish
        out of order); None asks now.
        """
        if not (self.wants(decision) if wanted is None else wanted):
            return None
        line = {"time": _iso(decision.timestamp), **decision.to_dict()}
        line["outcomes"] = dict(outcomes or {})
        if results:
            line["results"] = dict(results)
        prediction = line.pop("prediction")
        line["prediction"] = prediction
        with self._lock:
            self._stream.write(json.dumps(_json_safe(line), separators=(",", ":"), allow_nan=False) + "\n")
            self._stream.flush()
        return "sent"

    def close(self) -> None:
        if self._own and not self._stream.closed:
            self._stream.close()


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _reason_kind(reason: str) -> str:
    # "…; held: cool-down, 12 s left" and "…, 11 s left" are the same hold.
    return reason.rsplit("held:", 1)[-1].split(",")[0].strip()


# ---------------------------------------------------------------- HTTP sinks


def check_url(url: str, what: str, loopback_http_only: bool = True) -> str:
    """Return `url` if it is https, or http to a loopback address; BadInput otherwise."""
    if not isinstance(url, str):
        raise BadInput(f"{what}: expected a URL string, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.port == 0:
            raise ValueError("port 0")
    except ValueError as exc:
        raise BadInput(f"{what}: {_safe(url)}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadInput(f"{what}: {_safe(url)}: expected an http:// or https:// URL with a host")
    if parts.scheme == "http" and loopback_http_only and not is_loopback_host(host):
        raise BadInput(f"{what}: {_safe(url)}: plain http is accepted only to a loopback address "
                       "(127.0.0.1, ::1, localhost); use https")
    return url


# `//user:secret@` inside an exception's text (a library may quote the URL it was given).
_USERINFO = re.compile(r"//[^/\s@]+@")


def _safe(url: str) -> str:
    """The URL for a message: no user-info, no path or query (webhook paths are secrets)."""
    return redact_url(url, keep_path=False)


class _Poster:
    """POST JSON with a timeout and retries with exponential backoff; after a failed post, pause.

    `pause` (a Backoff) counts posts that failed after every retry; the sinks skip a post
    while it says to wait, so an unreachable receiver is tried at 2, 4, 8 ... s, not every second.
    """

    def __init__(self, url: str, timeout_s: float, retries: int, backoff_s: float,
                 sleep: Callable[[float], None] = time.sleep):
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise BadInput(f"{_safe(url)}: timeout_s must be positive, retries and backoff_s not negative")
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False   # no proxy from the environment for a loopback receiver
        self.attempts = 0
        self.error: str | None = None
        self.pause = Backoff()

    def post(self, payload: Any) -> bool:
        """Return True once the receiver answers 2xx; False after the last retry (then pause)."""
        ok = self._post(payload)
        if ok:
            self.pause.succeeded()
        else:
            self.pause.failed()
        return ok

    def _post(self, payload: Any) -> bool:
        self.attempts, self.error = 0, None
        for attempt in range(self.retries + 1):
            self.attempts += 1
            wait = self.backoff_s * 2 ** attempt
            try:
                response = self.session.post(self.url, json=payload, timeout=self.timeout_s,
                                             allow_redirects=False)
            except requests.RequestException as exc:
                self.error = type(exc).__name__
            else:
                if 200 <= response.status_code < 300:
                    return True
                self.error = f"HTTP {response.status_code}"
                if response.status_code not in (408, 425, 429) and response.status_code < 500:
                    return False          # the receiver refuses this payload: retrying will not help
                wait = max(wait, _retry_after(response))
            if attempt < self.retries:
                self.sleep(min(wait, MAX_BACKOFF_S))
        return False

    def close(self) -> None:
        self.session.close()


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


class WebhookSink(Sink):
    """POST a Slack-compatible message for each action, and one when an alert episode ends.

    `fmt="slack"` sends {"text", "blocks"} (an incoming-webhook payload); `fmt="json"`
    sends the event-log line. Only https URLs, or http to a loopback address, are taken.
    """

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 3.0, retries: int = 3, backoff_s: float = 0.5,
                 actions: Iterable[str] = NOTIFY_ACTIONS, fmt: str = "slack",
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__()
        self.url = check_url(url, "webhook url")
        self.actions = frozenset(_check_actions(actions, "webhook actions"))
        if fmt not in ("slack", "json"):
            raise BadInput(f"webhook format: {fmt!r}; expected slack or json")
        self.fmt = fmt
        self._poster = _Poster(url, timeout_s, retries, backoff_s, sleep)
        self._alerting = False

    def handle(self, decision: Decision) -> str | None:
        resolved = self._alerting and not decision.alert_active and "alert" in self.actions
        self._alerting = decision.alert_active
        if str(decision.action) not in self.actions and not resolved:
            return None
        if self._poster.pause.left() > 0:
            self.last_result = {"reason": self._poster.pause.reason()}
            return "skipped"
        payload = self.payload(decision, resolved=resolved and not decision.taken)
        ok = self._poster.post(payload)
        self.last_result = {"attempts": self._poster.attempts, "error": self._poster.error}
        return "sent" if ok else "failed"

    def payload(self, decision: Decision, resolved: bool = False) -> dict[str, Any]:
        """Return the JSON body for `decision`."""
        if self.fmt == "json":
            return {"time": _iso(decision.timestamp), "resolved": resolved, **decision.to_dict()}
        return slack_message(decision, resolved)

    def close(self) -> None:
        self._poster.close()


def slack_message(decision: Decision, resolved: bool = False) -> dict[str, Any]:
    """Return a Slack incoming-webhook payload describing the decision."""
    p = decision.prediction
    what = {
        "scale_up": f"scale up by {decision.amount}",
        "scale_down": f"scale down by {decision.amount}",
        "alert": "predicted SLO violation" if decision.policy.startswith("predictive") else "SLO violation",
        "none": "no action",
    }[str(decision.action)]
    if resolved:
        title = "Stability Lab: resolved, the predicted risk is back to normal"
        icon = ":white_check_mark:"
    else:
        title = f"Stability Lab: {what}"
        icon = ":rotating_light:" if decision.action is Action.ALERT else ":gear:"
    fields = []
    if p.get("stability_percent") is not None:
        fields.append(f"*Predicted stability*\n{p['stability_percent']:.1f} %")
    if p.get("probability") is not None:
        fields.append(f"*P(SLO violation within {len(p.get('p95_ms') or []) or '?'} s)*\n{p['probability']:.2f}")
    peak = _peak(p.get("p95_ms") or [])
    if peak is not None:
        fields.append(f"*Predicted p95 (peak)*\n{peak:.0f} ms")
    if p.get("observed_p95_ms") is not None:
        fields.append(f"*Observed p95*\n{p['observed_p95_ms']:.0f} ms")
    if decision.workers is not None:
        change = f" → {decision.desired_workers}" if decision.desired_workers not in (None, decision.workers) else ""
        fields.append(f"*Workers*\n{decision.workers}{change}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[:10]]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{decision.reason} · policy {decision.policy or '?'} · {_iso(decision.timestamp)}"[:2000]}]})
    return {"text": f"{icon} {title}: {decision.reason}", "blocks": blocks}


class AlertmanagerSink(Sink):
    """Post the alert episode to Alertmanager's v2 API: fire, keep alive, resolve.

    The alert fires on an `alert` decision (or the first decision of an episode whose
    alert decision was dropped); while the episode lasts it is re-posted every
    `resend_s` after the last post that got through, with endsAt = now + `ttl_s` (so it
    resolves by itself if the monitor dies); when the episode ends it is posted once with
    endsAt = now, again after a pause if that post failed. A failed post pauses the sink
    (2, 4, 8 ... s): an unreachable Alertmanager is not re-posted every second.
    Alertmanager usually sits on an internal network, so plain http to any host is
    accepted here.
    """

    name = "alertmanager"

    def __init__(self, url: str, *, labels: Mapping[str, str] | None = None,
                 generator_url: str | None = None, ttl_s: float = 300.0, resend_s: float = 30.0,
                 timeout_s: float = 3.0, retries: int = 2, backoff_s: float = 0.5,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        super().__init__()
        check_url(url, "alertmanager url", loopback_http_only=False)
        base = url.rstrip("/")
        self.url = base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts"
        self.labels = {str(k): str(v) for k, v in (labels or {}).items()}
        self.generator_url = generator_url
        if ttl_s <= 0 or resend_s <= 0 or resend_s > ttl_s:
            raise BadInput("alertmanager: ttl_s and resend_s must be positive, resend_s at most ttl_s")
        self.ttl_s, self.resend_s, self.clock = ttl_s, resend_s, clock
        self._poster = _Poster(self.url, timeout_s, retries, backoff_s, sleep)
        self._starts_at: float | None = None
        self._next_post = -math.inf          # keep-alive due; moves on every post that got through
        self._last_decision: Decision | None = None
        self._resolve: dict[str, Any] | None = None   # a resolution that still has to get through
        self._resolve_until = -math.inf               # after that the alert has expired anyway

    def handle(self, decision: Decision) -> str | None:
        now = self.clock()
        if decision.action is Action.ALERT or decision.alert_active:
            if self._starts_at is None:
                self._starts_at, self._next_post, self._resolve = now, -math.inf, None
            if decision.action is not Action.ALERT and now < self._next_post:
                return None
            self._last_decision = decision
            return self._send(self.alert(decision, self._starts_at, now + self.ttl_s),
                              now, quiet=decision.action is not Action.ALERT)
        if self._starts_at is not None:
            self._resolve = self.alert(self._last_decision or decision, self._starts_at, now)
            self._resolve_until = now + self.ttl_s
            self._starts_at, self._last_decision = None, None
        if self._resolve is not None and now > self._resolve_until:
            self._resolve = None
        if self._resolve is not None:
            return self._send(self._resolve, now, quiet=False)
        return None

    def alert(self, decision: Decision, starts_at: float, ends_at: float) -> dict[str, Any]:
        """Return one postable alert for Alertmanager's v2 API."""
        p = decision.prediction
        reactive = decision.policy.startswith("reactive")
        labels = {"alertname": REACTIVE_ALERTNAME if reactive else ALERTNAME,
                  "severity": "warning", "service": "stability-lab", "source": "lab-monitor",
                  **self.labels}
        annotations = {
            "summary": ("The SLO is violated now" if reactive
                        else "The model predicts an SLO violation within the horizon"),
            "description": decision.reason,
            "policy": decision.policy,
        }
        for key in ("probability", "stability_percent", "observed_p95_ms", "workers"):
            if p.get(key) is not None:
                annotations[key] = f"{p[key]:.4g}" if isinstance(p[key], float) else str(p[key])
        if p.get("p95_ms"):
            annotations["horizon_s"] = str(len(p["p95_ms"]))
            peak = _peak(p["p95_ms"])
            if peak is not None:
                annotations["predicted_p95_peak_ms"] = f"{peak:.0f}"
        alert = {"labels": labels, "annotations": annotations,
                 "startsAt": _iso(starts_at, precise=True), "endsAt": _iso(ends_at, precise=True)}
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert

    def _send(self, alert: dict[str, Any], now: float, quiet: bool) -> str | None:
        """Post `alert` unless the sink is pausing after a failure (then "skipped", or None if `quiet`)."""
        if self._poster.pause.left() > 0:
            if quiet:
                return None
            self.last_result = {"reason": self._poster.pause.reason()}
            return "skipped"
        ok = self._poster.post([alert])
        if ok:
            self._next_post = now + self.resend_s
            if alert is self._resolve:
                self._resolve = None
        self.last_result = {"attempts": self._poster.attempts, "error": self._poster.error,
                            "endsAt": alert["endsAt"]}
        return "sent" if ok else "failed"

    def close(self) -> None:
        self._poster.close()


# ---------------------------------------------------------------- scaling


class ScaleTargetSink(Sink):
    """Change a running gunicorn's worker count with TTIN/TTOU signals to its master, within bounds.

    Signals of one kind do not queue, so they are sent one at a time, each after the
    previous change shows in the master's children (psutil). `last_result["workers"]`
    is the count after the action.
    """

    name = "scale_target"
    changes_target = True

    def __init__(self, master_pid: int, min_workers: int = 1, max_workers: int = 8,
                 wait_s: float = 15.0, poll_s: float = 0.05):
        super().__init__()
        import psutil

        if min_workers < 1 or max_workers < min_workers:
            raise BadInput(f"scale-target: min_workers {min_workers} and max_workers {max_workers}: "
                           "need 1 <= min_workers <= max_workers")
        try:
            proc = psutil.Process(int(master_pid))
            cmdline = " ".join(proc.cmdline())
        except (psutil.Error, ValueError, TypeError):
            raise BadInput(f"scale-target: pid {master_pid}: no such process") from None
        if "gunicorn" not in cmdline:
            # TTIN/TTOU stop an ordinary process: never send them to anything else.
            raise BadInput(f"scale-target: pid {master_pid}: not a gunicorn master ({proc.name()})")
        self.master_pid, self._proc = int(master_pid), proc
        self.min_workers, self.max_workers = min_workers, max_workers
        self.wait_s, self.poll_s = wait_s, poll_s

    def workers(self) -> int:
        """Live worker processes of the master now (exiting zombies excluded)."""
        import psutil

        try:
            children = self._proc.children()
        except psutil.Error as exc:
            raise LabError(f"scale-target: gunicorn master {self.master_pid} is gone") from exc
        count = 0
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    count += 1
            except psutil.Error:
                continue
        return count

    def scale_to(self, n: int) -> int:
        """Move to `n` workers (clamped to the bounds) one signal at a time; return the count reached."""
        goal = min(max(int(n), self.min_workers), self.max_workers)
        current = self.workers()
        while current != goal:
            sig, step = (signal.SIGTTIN, 1) if goal > current else (signal.SIGTTOU, -1)
            try:
                os.kill(self.master_pid, sig)
            except ProcessLookupError:
                raise LabError(f"scale-target: gunicorn master {self.master_pid} is gone") from None
            reached = self._wait_for(current + step)
            if reached != current + step:
                return reached
            current = reached
        return current

    def scale_by(self, delta: int) -> int:
        """Add (or with a negative delta remove) workers within the bounds; return the count reached."""
        return self.scale_to(self.workers() + int(delta))

    def _wait_for(self, count: int) -> int:
        deadline = time.monotonic() + self.wait_s
        while True:
            now = self.workers()
            if now == count or time.monotonic() >= deadline:
                return now
            time.sleep(self.poll_s)

    def handle(self, decision: Decision) -> str | None:
        if decision.action not in (Action.SCALE_UP, Action.SCALE_DOWN):
            return None
        before = self.workers()
        delta = decision.amount if decision.action is Action.SCALE_UP else -decision.amount
        goal = min(max(before + delta, self.min_workers), self.max_workers)
        self.last_result = {"workers_before": before, "requested": before + delta, "workers": before}
        if goal == before:
            self.last_result["reason"] = (f"at max_workers {self.max_workers}" if delta > 0
                                          else f"at min_workers {self.min_workers}")
            return "skipped"
        reached = self.scale_to(goal)
        self.last_result["workers"] = reached
        return "sent" if reached == goal else "failed"


class Ec2AutoScalingSink(Sink):
    """Set an EC2 Auto Scaling group's desired capacity (boto3, the `cloud` extra); dry-run by default.

    In dry-run nothing is imported or called: the capacity starts at `desired` (or
    `min_size`), follows the decisions within the bounds, and `last_result["request"]`
    holds the SetDesiredCapacity call that would have been made.
    """

    name = "ec2_autoscaling"
    changes_target = True

    def __init__(self, group: str, *, region: str | None = None, min_size: int = 1, max_size: int = 10,
                 dry_run: bool = True, desired: int | None = None, client: Any = None):
        super().__init__()
        if not group or not isinstance(group, str):
            raise BadInput("ec2-autoscaling: group: the Auto Scaling group name is required")
        if min_size < 0 or max_size < min_size:
            raise BadInput(f"ec2-autoscaling: min_size {min_size} and max_size {max_size}: "
                           "need 0 <= min_size <= max_size")
        self.group, self.region = group, region
        self.min_size, self.max_size, self.dry_run = min_size, max_size, dry_run
        self._desired = min_size if desired is None else desired
        self._client = client

    def client(self):
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise LabError("ec2-autoscaling needs boto3: pip install 'stability-lab[cloud]'") from None
            self._client = boto3.client("autoscaling", region_name=self.region)
        return self._client

    def handle(self, decision: Decision) -> str | None:
        if decision.action not in (Action.SCALE_UP, Action.SCALE_DOWN):
            return None
        delta = decision.amount if decision.action is Action.SCALE_UP else -decision.amount
        try:
            current = self._desired if self.dry_run else self._current()
        except Exception as exc:  # botocore raises many types; report, do not crash the monitor
            self.last_result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            return "failed"
        goal = min(max(current + delta, self.min_size), self.max_size)
        request = {"AutoScalingGroupName": self.group, "DesiredCapacity": goal, "HonorCooldown": True}
        self.last_result = {"capacity_before": current, "request": request}
        if goal == current:
            return "skipped"
        if self.dry_run:
            self._desired = goal
            return "dry_run"
        try:
            self.client().set_desired_capacity(**request)
        except Exception as exc:
            self.last_result["error"] = f"{type(exc).__name__}: {exc}"[:300]
            return "failed"
        return "sent"

    def _current(self) -> int:
        answer = self.client().describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        groups = answer.get("AutoScalingGroups") or []
        if not groups:
            raise LabError(f"ec2-autoscaling: group {self.group!r} not found")
        return int(groups[0]["DesiredCapacity"])


# ---------------------------------------------------------------- the set of sinks


class _Ticket:
    """One decision on its way through the lanes; the event log line is written when all are done."""

    def __init__(self, decision: Decision, lanes: set[str], log_it: bool):
        self.decision, self.lanes, self.log_it = decision, set(lanes), log_it
        self.outcomes: dict[str, str] = {}
        self.results: dict[str, Any] = {}
        self.future: Future = Future()
        self.lock = threading.Lock()

    def done(self, lane: str, outcomes: Mapping[str, str], results: Mapping[str, Any]) -> bool:
        """Record a lane's outcomes; True for the call that completed the ticket."""
        with self.lock:
            self.outcomes.update(outcomes)
            self.results.update(results)
            self.lanes.discard(lane)
            return not self.lanes


SCALE_LANE, NOTIFY_LANE = "scale", "notify"


class Sinks:
    """Every sink of the monitor, and the event log that records what each did.

    `on_drop(lane, decision)` is called for a decision a busy lane dropped, and
    `on_log_error(exc)` for an event-log line that could not be written (the first one
    is also reported on stderr); the monitor counts both on its /metrics.
    """

    def __init__(self, sinks: Iterable[Sink] = (), event_log: EventLogSink | None = None):
        self.sinks: list[Sink] = []
        self.event_log = event_log
        used = {event_log.name} if event_log else set()
        for sink in sinks:
            name, n = sink.name, 1
            while name in used:
                n += 1
                name = f"{sink.name}-{n}"
            sink.name = name
            used.add(name)
            self.sinks.append(sink)
        self.on_drop: Callable[[str, Decision], None] | None = None
        self.on_log_error: Callable[[BaseException], None] | None = None
        self.log_errors = 0
        self._lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()

    def __iter__(self):
        return iter(self.sinks + ([self.event_log] if self.event_log else []))

    def dispatch(self, decision: Decision) -> dict[str, str]:
        """Hand `decision` to every sink, log it with the outcomes; return {sink name: outcome}."""
        outcomes, results = self._run(self.sinks, decision)
        return self._log(decision, outcomes, results, self.event_log is not None
                         and self.event_log.wants(decision))

    def _run(self, sinks: Iterable[Sink], decision: Decision) -> tuple[dict[str, str], dict[str, Any]]:
        outcomes: dict[str, str] = {}
        results: dict[str, Any] = {}
        for sink in sinks:
            try:
                outcome = sink.handle(decision)
            except Exception as exc:  # one broken sink must not stop the monitor or the others
                outcome = "failed"
                text = str(exc) if isinstance(exc, LabError) else f"{type(exc).__name__}: {exc}"[:300]
                sink.last_result = {"error": _USERINFO.sub("//", text)}
            if outcome is not None:
                outcomes[sink.name] = outcome
                if sink.last_result:
                    results[sink.name] = sink.last_result
        return outcomes, results

    def _log(self, decision: Decision, outcomes: dict[str, str], results: dict[str, Any],
             log_it: bool) -> dict[str, str]:
        """Write the event-log line (when it gets one); a write that fails is counted, never raised."""
        if self.event_log is None or not log_it:
            return outcomes
        try:
            self.event_log.record(decision, outcomes, results, wanted=True)
        except (OSError, ValueError) as exc:   # disk full, a closed stream: the monitor goes on
            with self._lock:
                self.log_errors += 1
                first = self.log_errors == 1
            if first:
                where = self.event_log.path or "the event log stream"
                print(f"warning: event log {where}: cannot write ({exc}); the monitor goes on and "
                      f"counts every line lost (lab_monitor_event_log_errors_total)", file=sys.stderr)
            if self.on_log_error:
                self.on_log_error(exc)
            return {**outcomes, self.event_log.name: "failed"}
        return {**outcomes, self.event_log.name: "sent"}

    def lane_of(self, sink: Sink) -> str:
        """The lane a sink runs on: its own for sinks that change the target, one for the rest."""
        return SCALE_LANE if getattr(sink, "changes_target", False) else NOTIFY_LANE

    def dispatch_async(self, decision: Decision) -> Future:
        """Hand `decision` to the lanes without waiting; the future holds the outcomes.

        Scale decisions go to the scale lane (when a sink changes the target), every
        decision to the notification lane (when there are other sinks). The event-log
        line is written once every lane has handled or dropped the decision; a dropped
        decision is logged with the outcome "dropped" for that lane's sinks.
        """
        wanted = {lane for lane in {self.lane_of(s) for s in self.sinks}
                  if lane == NOTIFY_LANE or decision.action in (Action.SCALE_UP, Action.SCALE_DOWN)}
        ticket = _Ticket(decision, wanted, self.event_log is not None and self.event_log.wants(decision))
        if not wanted:
            self._finish(ticket)
            return ticket.future
        for lane in sorted(wanted):
            self._lane(lane).submit(ticket)
        return ticket.future

    def _lane(self, name: str) -> Lane:
        with self._lock:
            if name not in self._lanes:
                sinks = [s for s in self.sinks if self.lane_of(s) == name]

                def work(ticket: _Ticket, name=name, sinks=sinks) -> None:
                    outcomes, results = self._run(sinks, ticket.decision)
                    if ticket.done(name, outcomes, results):
                        self._finish(ticket)

                def drop(ticket: _Ticket, name=name, sinks=sinks) -> None:
                    if self.on_drop:
                        self.on_drop(name, ticket.decision)
                    if ticket.done(name, {s.name: "dropped" for s in sinks}, {}):
                        self._finish(ticket)

                # A waiting action is not displaced by a newer decision without one.
                self._lanes[name] = Lane(f"sinks-{name}", work, drop,
                                         displaces=lambda new, old: new.decision.taken or not old.decision.taken)
            return self._lanes[name]

    def _finish(self, ticket: _Ticket) -> None:
        ticket.future.set_result(self._log(ticket.decision, ticket.outcomes, ticket.results, ticket.log_it))

    def dropped(self) -> dict[str, int]:
        """Decisions each lane dropped so far."""
        with self._lock:
            return {name: lane.dropped for name, lane in self._lanes.items()}

    def close(self) -> None:
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.close()
        for sink in self:
            try:
                sink.close()
            except Exception as exc:  # closing must not hide the monitor's own exit status
                print(f"warning: closing sink {sink.name}: {exc}", file=sys.stderr)

    def __enter__(self) -> "Sinks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# TOML keys of each `[[sinks]]` kind and their types.
_SPECS: dict[str, dict[str, Any]] = {
    "event_log": {"path": str, "every_second": bool},
    "webhook": {"url": str, "url_env": str, "timeout_s": float, "retries": int, "backoff_s": float,
                "actions": tuple[str, ...], "format": str},
    "alertmanager": {"url": str, "url_env": str, "labels": dict[str, str], "generator_url": str,
                     "ttl_s": float, "resend_s": float, "timeout_s": float, "retries": int,
                     "backoff_s": float},
    "scale_target": {"master_pid": int, "min_workers": int, "max_workers": int, "wait_s": float},
    "ec2_autoscaling": {"group": str, "region": str, "min_size": int, "max_size": int,
                        "dry_run": bool, "desired": int},
}
SINK_KINDS = tuple(_SPECS)


def build_sink(spec: Mapping[str, Any], origin: str = "sinks", key: str = "sinks[0]",
               master_pid: int | None = None) -> Sink:
    """Build one sink from a `[[sinks]]` table ({"kind": ..., keys of that kind})."""
    if not isinstance(spec, Mapping):
        raise BadInput(f"{origin}: {key}: expected a table, got {type(spec).__name__}")
    kind = str(spec.get("kind", "")).replace("-", "_")
    if kind not in _SPECS:
        raise BadInput(f"{origin}: {key}.kind: {spec.get('kind')!r}; expected one of {', '.join(SINK_KINDS)}")
    allowed = _SPECS[kind]
    values: dict[str, Any] = {}
    for name, value in spec.items():
        if name == "kind":
            continue
        if name not in allowed:
            raise BadInput(f"{origin}: {key}.{name}: unknown key for a {kind} sink; expected one of "
                           f"{', '.join(allowed)}")
        values[name] = coerce(value, allowed[name], origin, f"{key}.{name}")
    if "url_env" in values:
        env = values.pop("url_env")
        if not os.environ.get(env):
            raise BadInput(f"{origin}: {key}.url_env: environment variable {env} is not set")
        values.setdefault("url", os.environ[env])
    try:
        if kind == "event_log":
            if "path" not in values:
                raise BadInput(f"{origin}: {key}.path: required key is missing")
            return EventLogSink(values["path"], values.get("every_second", False))
        if kind in ("webhook", "alertmanager") and "url" not in values:
            raise BadInput(f"{origin}: {key}.url: required key is missing (or url_env)")
        if kind == "webhook":
            if "format" in values:
                values["fmt"] = values.pop("format")
            return WebhookSink(values.pop("url"), **values)
        if kind == "alertmanager":
            return AlertmanagerSink(values.pop("url"), **values)
        if kind == "scale_target":
            pid = values.pop("master_pid", master_pid)
            if pid is None:
                raise BadInput(f"{origin}: {key}.master_pid: required key is missing "
                               "(the monitor fills it in only for the lab's own target)")
            return ScaleTargetSink(pid, **values)
        if "group" not in values:
            raise BadInput(f"{origin}: {key}.group: required key is missing")
        return Ec2AutoScalingSink(values.pop("group"), **values)
    except BadInput as exc:
        message = str(exc)
        raise BadInput(message if message.startswith(origin) else f"{origin}: {key}: {message}") from None


def load_sinks(path: str | Path | None = None, *, event_log: str | Path | IO[str] | None = None,
               webhook: str | None = None, alertmanager: str | None = None,
               scale_target_pid: int | None = None, min_workers: int = 1, max_workers: int = 8,
               generator_url: str | None = None) -> Sinks:
    """Build the monitor's sinks from the `[[sinks]]` tables of a TOML file and/or options.

    The event log is always on: `event_log` (an option) wins over an `event_log` table;
    with neither, the caller gets a Sinks without one and should pass a path.
    `scale_target_pid` fills `master_pid` of a `scale_target` table, or adds one.
    """
    built: list[Sink] = []
    log: EventLogSink | None = None
    try:
        if path is not None:
            origin = str(path)
            tables = read_toml(path).get("sinks", [])
            if not isinstance(tables, list):
                raise BadInput(f"{origin}: sinks: expected [[sinks]] tables, got {type(tables).__name__}")
            for i, spec in enumerate(tables):
                sink = build_sink(spec, origin, f"sinks[{i}]", master_pid=scale_target_pid)
                if isinstance(sink, EventLogSink):
                    if log is not None or event_log is not None:
                        sink.close()
                        if log is not None:
                            raise BadInput(f"{origin}: sinks[{i}]: a second event_log sink")
                        continue
                    log = sink
                else:
                    built.append(sink)
        if event_log is not None:
            log = EventLogSink(event_log)
        if webhook:
            built.append(WebhookSink(webhook))
        if alertmanager:
            built.append(AlertmanagerSink(alertmanager, generator_url=generator_url))
        if scale_target_pid is not None and not any(isinstance(s, ScaleTargetSink) for s in built):
            built.append(ScaleTargetSink(scale_target_pid, min_workers, max_workers))
    except BaseException:
        for sink in built + ([log] if log else []):
            sink.close()
        raise
    return Sinks(built, log)


def _check_actions(actions: Iterable[str], what: str) -> list[str]:
    actions = [str(a) for a in actions]
    for action in actions:
        if action not in NOTIFY_ACTIONS:
            raise BadInput(f"{what}: {action!r}; expected some of {', '.join(NOTIFY_ACTIONS)}")
    return actions


def _peak(values: Iterable[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) if finite else None


def _iso(ts: float, precise: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    if precise:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
