"""The per-second row of a run: the column list lives here and nowhere else."""

from __future__ import annotations

# Contract columns (docs/contract.md, "Columns"): these names never change.
TIME_COLUMNS = ["timestamp", "elapsed_s"]
LABEL_COLUMNS = ["phase", "users", "fault", "slo_violation", "incident"]
PLAN_COLUMNS = ["planned_users", "planned_rate"]          # the scenario's plan: the only known future
CLIENT_COLUMNS = ["rps", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                  "outstanding", "dropped"]
WINDOW_COLUMNS = ["latency_p95_window_ms", "latency_p99_window_ms", "error_rate_window"]
SERVER_COLUMNS = ["srv_rps", "srv_error_rate", "srv_latency_p95_ms", "srv_queue_p95_ms"]
PROCESS_COLUMNS = ["cpu_percent", "rss_mb", "threads"]
HOST_COLUMNS = ["sys_cpu_percent", "loadgen_cpu_percent"]
HEALTH_COLUMNS = ["target_up"]

# Extra columns the lab records beyond the contract.
EXTRA_COLUMNS = [
    "failures",              # client-side failed requests in the second
    "srv_latency_p50_ms",
    "srv_latency_p99_ms",
    "srv_in_flight",         # requests in flight on the target at the scrape
    "target_workers",        # gunicorn worker processes alive
    "fds",                   # open file descriptors of the target tree
    "sys_mem_percent",
    "fault_intensity",       # intensity of the scheduled fault (0 when none)
    "arrivals",              # requests the load generator sent in the second
    "window_requests",       # requests pooled in the SLO window
]

COLUMNS: list[str] = (
    TIME_COLUMNS + LABEL_COLUMNS + PLAN_COLUMNS + CLIENT_COLUMNS + WINDOW_COLUMNS + SERVER_COLUMNS
    + PROCESS_COLUMNS + HOST_COLUMNS + HEALTH_COLUMNS + EXTRA_COLUMNS
)

# Columns added after the first runs were recorded (the signal work: open-model load, pooled
# windows, queue time, incidents). A run folder without them stays valid: readers add them
# empty (`incident` as "none"), so older runs and datasets read as before.
ADDED_COLUMNS: list[str] = [
    "incident", *PLAN_COLUMNS, "outstanding", "dropped", *WINDOW_COLUMNS, "srv_queue_p95_ms",
    "arrivals", "window_requests",
]
REQUIRED_COLUMNS: list[str] = [c for c in COLUMNS if c not in ADDED_COLUMNS]

# Appended after COLUMNS only when the server side comes from a Prometheus server
# (run-scenario --prometheus-url): the same run's direct /metrics scrape, for comparison.
DIRECT_SCRAPE_COLUMNS: list[str] = [
    "srv_rps_direct", "srv_error_rate_direct", "srv_latency_p50_ms_direct",
    "srv_latency_p95_ms_direct", "srv_latency_p99_ms_direct", "srv_in_flight_direct",
]

# Numeric feature columns a model may use (labels and time excluded).
STRING_LABELS = ("phase", "fault", "incident")
NUMERIC_COLUMNS: list[str] = [
    c for c in COLUMNS if c not in TIME_COLUMNS + list(STRING_LABELS)
]

FAULT_KINDS = ("latency", "errors", "cpu", "memory", "threads")
NO_INCIDENT = "none"

# Units and meanings, for the data card and reports.
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "timestamp": ("UTC ISO 8601", "start of the second the row describes"),
    "elapsed_s": ("s", "seconds since the scenario's t=0 (integer)"),
    "phase": ("label", "name of the scenario stage in force in that second"),
    "users": ("count", "Locust's running user count in that second"),
    "fault": ("label", "fault kind injected in that second, or none"),
    "slo_violation": ("0/1", "1 when latency_p95_window_ms > slo.latency_p95_ms or error_rate_window > "
                      "slo.error_rate (pooled over slo.window_s seconds; window 1 = the per-second rule)"),
    "incident": ("label", "consequence the target saw happen in that second (worker_killed, pool_exhausted, "
                 "several joined by +), or none"),
    "planned_users": ("count", "the scenario's planned user count for the second (closed model)"),
    "planned_rate": ("1/s", "the scenario's planned arrival rate for the second, ramps averaged (open model)"),
    "outstanding": ("count", "requests sent and not yet answered at the end of the second"),
    "dropped": ("count", "open-model arrivals not sent in the second because max_in_flight were outstanding"),
    "latency_p95_window_ms": ("ms", "client-side p95 of every request completed in the trailing slo.window_s "
                              "seconds"),
    "latency_p99_window_ms": ("ms", "client-side p99 pooled over the same window"),
    "error_rate_window": ("ratio", "client-side failed / completed requests pooled over the same window"),
    "srv_queue_p95_ms": ("ms", "server-side p95 time from the X-Request-Start stamp to the handler's start "
                         "(waiting for a thread)"),
    "arrivals": ("count", "requests the load generator sent in the second"),
    "window_requests": ("count", "requests pooled in the SLO window"),
    "rps": ("1/s", "client-side requests completed in the second"),
    "error_rate": ("ratio", "client-side failed / completed requests in the second"),
    "latency_p50_ms": ("ms", "client-side median response time of requests completed in the second "
                       "(open model: from the intended send time)"),
    "latency_p95_ms": ("ms", "client-side 95th percentile response time"),
    "latency_p99_ms": ("ms", "client-side 99th percentile response time"),
    "srv_rps": ("1/s", "server-side request rate from the target's Prometheus counters"),
    "srv_error_rate": ("ratio", "server-side share of 5xx responses"),
    "srv_latency_p95_ms": ("ms", "server-side p95 latency from the histogram's bucket deltas"),
    "cpu_percent": ("% of one core", "CPU of the target's whole process tree (can exceed 100)"),
    "rss_mb": ("MiB", "resident memory of the target's whole process tree"),
    "threads": ("count", "threads of the target's whole process tree"),
    "sys_cpu_percent": ("% of all cores", "host CPU utilisation"),
    "loadgen_cpu_percent": ("% of one core", "CPU of the Locust processes"),
    "target_up": ("0/1", "1 when the target's /metrics answered within the second"),
    "failures": ("count", "client-side failed requests in the second"),
    "srv_latency_p50_ms": ("ms", "server-side median latency from the histogram"),
    "srv_latency_p99_ms": ("ms", "server-side p99 latency from the histogram"),
    "srv_in_flight": ("count", "requests being served by the target at the scrape"),
    "target_workers": ("count", "gunicorn worker processes alive"),
    "fds": ("count", "open file descriptors of the target's process tree"),
    "sys_mem_percent": ("%", "host memory in use"),
    "fault_intensity": ("0..1", "intensity of the fault injected in that second"),
}

# Docs of DIRECT_SCRAPE_COLUMNS, apart: COLUMN_DOCS describes the columns of every run.
DIRECT_SCRAPE_DOCS: dict[str, tuple[str, str]] = {
    "srv_rps_direct": ("1/s", "srv_rps from the collector's own /metrics scrape (Prometheus-server runs)"),
    "srv_error_rate_direct": ("ratio", "srv_error_rate from the direct scrape (Prometheus-server runs)"),
    "srv_latency_p50_ms_direct": ("ms", "srv_latency_p50_ms from the direct scrape (Prometheus-server runs)"),
    "srv_latency_p95_ms_direct": ("ms", "srv_latency_p95_ms from the direct scrape (Prometheus-server runs)"),
    "srv_latency_p99_ms_direct": ("ms", "srv_latency_p99_ms from the direct scrape (Prometheus-server runs)"),
    "srv_in_flight_direct": ("count", "srv_in_flight from the direct scrape (Prometheus-server runs)"),
    "srv_queue_p95_ms_direct": ("ms", "srv_queue_p95_ms from the direct scrape (Prometheus-server runs)"),
}


def csv_cell(value) -> str:
    """Format one metrics.csv cell: six significant digits, empty for missing or non-finite."""
    import math

    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"
    return str(value)


# ---------------------------------------------------------------- the SLO rule

# The SLO a run has when its scenario names none (docs/contract.md, "Scenario file").
DEFAULT_SLO: dict[str, float] = {"latency_p95_ms": 800.0, "error_rate": 0.02}


def exceeds(value, limit) -> bool:
    """True when `value` is above `limit`; missing data or an unset limit never is (equal is within)."""
    import math

    if value is None or limit is None:
        return False
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return not math.isnan(value) and value > float(limit)


def violates_slo(latency_p95_ms, error_rate, slo) -> int:
    """The one SLO rule: 1 when the p95 latency or the error rate exceeds the SLO's, else 0.

    `slo` is a mapping or an object (a scenario's Slo) with `latency_p95_ms` and
    `error_rate`. A missing value, or a limit that is unset (None), is never a violation;
    equal to the limit is within the SLO.
    """
    get = slo.get if isinstance(slo, dict) else (lambda key: getattr(slo, key, None))
    return int(exceeds(latency_p95_ms, get("latency_p95_ms")) or exceeds(error_rate, get("error_rate")))


def slo_limits(slo=None) -> dict[str, float]:
    """The SLO's two limits as a dict, DEFAULT_SLO filling what it does not set."""
    if slo is None:
        return dict(DEFAULT_SLO)
    if not isinstance(slo, dict):
        slo = {k: getattr(slo, k, None) for k in DEFAULT_SLO}
    return {k: (float(slo[k]) if slo.get(k) is not None else DEFAULT_SLO[k]) for k in DEFAULT_SLO}
