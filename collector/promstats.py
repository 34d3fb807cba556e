"""Server-side view of the target: parse a /metrics scrape, turn two into per-second columns.

Counter and bucket values are cumulative; a second's figures come from the increase
between two snapshots, the way PromQL's increase()/histogram_quantile() see them, so the
monitor and the Prometheus-server path can share the same semantics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "flask_http_request_total"
EXCEPTIONS = "flask_http_request_exceptions_total"
DURATION = "flask_http_request_duration_seconds"
IN_FLIGHT = "lab_http_requests_in_flight"
FAULT_ACTIVE = "lab_fault_active"
FAULT_INTENSITY = "lab_fault_intensity"
WORKERS = "lab_target_workers"
QUEUE = "lab_request_queue_seconds"        # X-Request-Start stamp -> handler start
INCIDENTS = "lab_incidents_total"          # consequences the target saw happen, by kind

# Family names as the parser reports them: counters lose their `_total` suffix.
_COUNTER_FAMILIES = {"flask_http_request": REQUESTS, "flask_http_request_exceptions": EXCEPTIONS}
NO_INCIDENT = "none"

QUANTILES = {"srv_latency_p50_ms": 0.50, "srv_latency_p95_ms": 0.95, "srv_latency_p99_ms": 0.99}
SERVER_KEYS = ("srv_rps", "srv_error_rate", *QUANTILES, "srv_in_flight", "srv_queue_p95_ms")

Buckets = dict[float, float]


class ScrapeError(Exception):
    """The /metrics answer is not valid Prometheus text exposition."""


@dataclass(frozen=True)
class Snapshot:
    """Cumulative values of one scrape at wall-clock time `t` (epoch seconds).

    Counters and buckets are summed over every label set (workers, methods, statuses).
    A metric absent from the scrape is None (or empty); a counter family that is
    declared but has no series yet counts 0.
    """

    t: float
    requests_total: float | None = None
    requests_5xx: float | None = None
    exceptions_total: float | None = None
    buckets: Buckets = field(default_factory=dict)          # le (incl. inf) -> cumulative count
    count: float | None = None
    sum_s: float | None = None
    endpoint_buckets: dict[str, Buckets] = field(default_factory=dict)
    endpoint_counts: dict[str, float] = field(default_factory=dict)
    in_flight: float | None = None
    fault_active: dict[str, float] = field(default_factory=dict)
    fault_intensity: dict[str, float] = field(default_factory=dict)
    workers: float | None = None
    queue_buckets: Buckets = field(default_factory=dict)    # queue-time histogram, cumulative
    incidents: dict[str, float] = field(default_factory=dict)  # kind -> cumulative count


def parse_snapshot(text: str, t: float) -> Snapshot:
    """Parse a Prometheus text exposition into a Snapshot taken at time `t`."""
    values: dict[str, float] = {}
    buckets: Buckets = {}
    endpoint_buckets: dict[str, Buckets] = {}
    endpoint_counts: dict[str, float] = {}
    fault_active: dict[str, float] = {}
    fault_intensity: dict[str, float] = {}
    queue_buckets: Buckets = {}
    incidents: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name in _COUNTER_FAMILIES and family.type == "counter":
                values.setdefault(_COUNTER_FAMILIES[family.name], 0.0)
            if family.name == DURATION and family.type == "histogram":
                values.setdefault("count", 0.0)
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if math.isnan(value):
                    continue  # an unknown value adds nothing; NaN would poison every sum
                if name == REQUESTS:
                    _add(values, REQUESTS, value)
                    # Status is kept per series so 5xx is a sum of whole series.
                    _add(values, "5xx", value if labels.get("status", "").startswith("5") else 0.0)
                elif name == EXCEPTIONS:
                    _add(values, EXCEPTIONS, value)
                elif name == DURATION + "_bucket":
                    le = _le(labels)
                    _add(buckets, le, value)
                    _add(endpoint_buckets.setdefault(labels.get("endpoint", ""), {}), le, value)
                elif name == DURATION + "_count":
                    _add(values, "count", value)
                    _add(endpoint_counts, labels.get("endpoint", ""), value)
                elif name == DURATION + "_sum":
                    _add(values, "sum", value)
                elif name in (IN_FLIGHT, WORKERS):
                    _add(values, name, value)  # multiprocess gauges may come per worker
                elif name == FAULT_ACTIVE:
                    _max(fault_active, labels.get("kind", ""), value)
                elif name == FAULT_INTENSITY:
                    _max(fault_intensity, labels.get("kind", ""), value)
                elif name == QUEUE + "_bucket":
                    _add(queue_buckets, _le(labels), value)
                elif name == INCIDENTS:
                    _add(incidents, labels.get("kind", "unknown"), value)
    # The parser reports bad text as ValueError; the others guard its internals.
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ScrapeError(f"malformed /metrics text: {exc}") from exc
    total = values.get(REQUESTS)
    return Snapshot(
        t=t,
        requests_total=total,
        requests_5xx=None if total is None else values.get("5xx", 0.0),
        exceptions_total=values.get(EXCEPTIONS),
        buckets=buckets,
        count=values.get("count"),
        sum_s=values.get("sum"),
        endpoint_buckets=endpoint_buckets,
        endpoint_counts=endpoint_counts,
        in_flight=values.get(IN_FLIGHT),
        fault_active=fault_active,
        fault_intensity=fault_intensity,
        workers=values.get(WORKERS),
        queue_buckets=queue_buckets,
        incidents=incidents,
    )


def _le(labels: Mapping[str, str]) -> float:
    """Read a bucket's upper bound, refusing a bucket without a numeric `le`."""
    try:
        return float(labels["le"])
    except KeyError:
        raise ScrapeError("histogram bucket without an le label") from None
    except ValueError:
        raise ScrapeError(f"histogram bucket with a non-numeric le={labels['le']!r}") from None


def _add(acc: dict, key, value: float) -> None:
    acc[key] = acc.get(key, 0.0) + value


def _max(acc: dict, key, value: float) -> None:
    acc[key] = max(acc.get(key, value), value)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Estimate the q-quantile from cumulative bucket counts, as PromQL's histogram_quantile.

    Linear interpolation inside the bucket holding rank q*count; the lowest bucket starts
    at 0 (or is returned as is when its bound is <= 0); a rank in the +Inf bucket gives the
    highest finite bound. None when there is no +Inf bucket, no finite bucket or no
    observation. Non-monotonic counts are raised to the running maximum, as PromQL does.
    For q == 0 the first non-empty bucket is used (PromQL answers NaN when the lowest
    bucket is empty).
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    bounds = sorted(buckets)
    if len(bounds) < 2 or not math.isinf(bounds[-1]) or bounds[-1] < 0:
        return None
    counts, running = [], 0.0
    for le in bounds:
        running = max(running, float(buckets[le]))
        counts.append(running)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank and c > 0)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[b - 1] if b > 0 else 0.0
    below = counts[b - 1] if b > 0 else 0.0
    return start + (bounds[b] - start) * (rank - below) / (counts[b] - below)


def increase(prev: Mapping, cur: Mapping) -> dict:
    """Return the increase of a group of cumulative values, treating any decrease as a reset.

    Prometheus' rule (a value below its previous one restarted from 0, so the increase is
    the current value) is applied to the group as a whole: after a restart the buckets of
    one histogram must stay consistent with each other. A key missing from `prev` starts
    from 0 (the series was born in the interval).
    """
    if any(cur.get(key, 0.0) < value for key, value in prev.items()):
        return dict(cur)
    return {key: value - prev.get(key, 0.0) for key, value in cur.items()}


def server_stats(prev: Snapshot | None, cur: Snapshot | None) -> dict[str, float | None]:
    """Compute the server-side columns of the interval between two snapshots."""
    out: dict[str, float | None] = dict.fromkeys(SERVER_KEYS)
    if cur is None:
        return out
    out["srv_in_flight"] = cur.in_flight
    dt = cur.t - prev.t if prev is not None else 0.0
    if prev is None or dt <= 0:
        return out
    if cur.requests_total is not None:
        inc = increase(_request_counts(prev), _request_counts(cur))
        out["srv_rps"] = inc["total"] / dt
        out["srv_error_rate"] = inc["5xx"] / inc["total"] if inc["total"] > 0 else None
    deltas = increase(prev.buckets, cur.buckets)
    for key, q in QUANTILES.items():
        out[key] = _ms(histogram_quantile(q, deltas))
    out["srv_queue_p95_ms"] = _ms(histogram_quantile(0.95, increase(prev.queue_buckets, cur.queue_buckets)))
    return out


def incidents_between(prev: Snapshot | None, cur: Snapshot | None) -> str | None:
    """Name the incidents whose counters rose between two scrapes ("worker_killed", "a+b"), or "none".

    None when either scrape is missing: what happened in between is not known. A counter
    that went down (the master restarted) counts from zero, as Prometheus' increase() does.
    """
    if prev is None or cur is None:
        return None
    # Unchanged: nothing new. Higher: new incidents. Lower but above 0: a reset, then new ones.
    rose = sorted(kind for kind, value in cur.incidents.items()
                  if value > 0 and value != prev.incidents.get(kind, 0.0))
    return "+".join(rose) if rose else NO_INCIDENT


def _request_counts(snapshot: Snapshot) -> dict[str, float]:
    if snapshot.requests_total is None:
        return {}  # absent from a successful scrape: no request counted yet
    return {"total": snapshot.requests_total, "5xx": snapshot.requests_5xx or 0.0}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
