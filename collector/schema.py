"""The per-second row of a run: the column list lives here and nowhere else."""

from __future__ import annotations

# Contract columns (../shared/DESIGN.md): these names never change.
TIME_COLUMNS = ["timestamp", "elapsed_s"]
LABEL_COLUMNS = ["phase", "users", "fault", "slo_violation"]
CLIENT_COLUMNS = ["rps", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
SERVER_COLUMNS = ["srv_rps", "srv_error_rate", "srv_latency_p95_ms"]
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
]

COLUMNS: list[str] = (
    TIME_COLUMNS + LABEL_COLUMNS + CLIENT_COLUMNS + SERVER_COLUMNS + PROCESS_COLUMNS
    + HOST_COLUMNS + HEALTH_COLUMNS + EXTRA_COLUMNS
)

# Appended after COLUMNS only when the server side comes from a Prometheus server
# (run-scenario --prometheus-url): the same run's direct /metrics scrape, for comparison.
DIRECT_SCRAPE_COLUMNS: list[str] = [
    "srv_rps_direct", "srv_error_rate_direct", "srv_latency_p50_ms_direct",
    "srv_latency_p95_ms_direct", "srv_latency_p99_ms_direct", "srv_in_flight_direct",
]

# Numeric feature columns a model may use (labels and time excluded).
NUMERIC_COLUMNS: list[str] = [
    c for c in COLUMNS if c not in TIME_COLUMNS + ["phase", "fault"]
]

FAULT_KINDS = ("latency", "errors", "cpu", "memory", "threads")

# Units and meanings, for the data card and reports.
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "timestamp": ("UTC ISO 8601", "start of the second the row describes"),
    "elapsed_s": ("s", "seconds since the scenario's t=0 (integer)"),
    "phase": ("label", "name of the scenario stage in force in that second"),
    "users": ("count", "Locust's running user count in that second"),
    "fault": ("label", "fault kind injected in that second, or none"),
    "slo_violation": ("0/1", "1 when latency_p95_ms > slo.latency_p95_ms or error_rate > slo.error_rate"),
    "rps": ("1/s", "client-side requests completed in the second"),
    "error_rate": ("ratio", "client-side failed / completed requests in the second"),
    "latency_p50_ms": ("ms", "client-side median response time of requests completed in the second"),
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
