"""Server-side columns read from a Prometheus server's HTTP API instead of a direct scrape.

`run-scenario --prometheus-url URL` hands the collector a `PrometheusSource`; each second
it gives the same keys as `promstats.server_stats` (srv_rps, srv_error_rate,
srv_latency_p50/p95/p99_ms, srv_in_flight) for the second [t, t+1), computed by PromQL
over the series of the target's `instance` (host:port of the target URL) only.

Semantics, and why these queries. The direct scrape takes the counters at t and t+1 and
divides the difference by the time between the two scrapes. Prometheus scrapes on its own
grid g_n = phase + n*I (I = the scrape interval, 1 s in prometheus/prometheus.yml), whose
phase is fixed per target by a hash and has nothing to do with the run's t0. So:

* Per scrape interval (g-I, g] the rate is `irate(x[2I] @ g+I/2)`: the window holds exactly
  the samples at g-I and g (half an interval of margin on each side), and irate is their
  difference over their time distance, with Prometheus' per-series counter-reset rule:
  the same arithmetic as promstats. `rate()` over such a window gives the same number
  except where it extrapolates: its "do not extrapolate below zero" guard scales down the
  young series and sparse buckets (a bucket going 0 -> 1 is counted 0.75), which bends
  histogram_quantile, so the two-sample member of the rate family is the faithful one.
* The second [t, t+1) straddles (at most) two scrape intervals; its value is their blend
  weighted by overlap: w*r(g-I, g] + (1-w)*r(g, g+I], with w = g - t. That is linear
  interpolation of the counters at t and t+1 between scrapes; taking only the interval
  nearest to the second is off by up to half a second (at a few requests a second, half
  a second is one or two requests). Error rates are the blended 5xx rate over the
  blended total rate. Quantiles are not blended: `histogram_quantile` reads the one
  interval that covers most of the second. A p95 of four or five requests is their
  slowest one, and in a blend of two intervals each slow request sets the p95 of two
  seconds. Smoke runs, p95 within 25% of the direct scrape's: 41-65% of the seconds
  blended, 53-94% from the main interval (24-94% over 25 later runs: per second it is
  a lottery on where the scrapes fall), whose count of seconds above 800 ms stays
  within 2 of the direct scrape's.
* `srv_in_flight` is the gauge at the scrape nearest to t+1 (the direct scrape reads it
  at t+1), via `last_over_time(...[I] @ g+I/2)` so a missing scrape gives None instead
  of Prometheus' 5-minute look-back value.
* Every selector carries an `@` timestamp, so one query (the statistics joined with
  `or`, told apart by a `stat` label) answers for one fixed second whenever it is sent.

Lag. A scrape's samples carry its start time and are queryable once the scrape ends and
is committed, and the blend needs the first scrape after t+1 (up to t+1+I). The collector
asks for second k when it finalises row k, two seconds after k began; the source waits
until that scrape should be in (plus SETTLE_S), at most MAX_WAIT_S, and gives None for a
statistic Prometheus does not have: never a value carried over from another second.
The scrape grid (phase and interval) is read from the raw `up` samples of the target and
read again every GRID_TTL_S seconds or after an empty answer.

Known differences from the direct scrape (both are how Prometheus itself sees the data):
a series born between two scrapes (a first 503, a first request to an endpoint) counts
from its first scraped value, so its first requests are not counted; and the timestamps
of Prometheus' scrapes are its own, so per-second values agree in the mean, not exactly.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from urllib.parse import urlparse

import requests

from contract.addresses import redact_url
from contract.errors import BadInput

from .promstats import DURATION, IN_FLIGHT, QUANTILES, QUEUE, REQUESTS, SERVER_KEYS

SETTLE_S = 0.25          # a scrape's samples are queryable this long after its timestamp
MAX_WAIT_S = 1.0         # longest wait for a second's samples (the collector asks 2 s late)
GRID_TTL_S = 30.0        # re-read the scrape grid this often
MIN_WEIGHT = 1e-3        # a scrape interval overlapping the second less than this is ignored
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def check_url(url: str, option: str = "--prometheus-url") -> str:
    """Refuse a Prometheus URL that is not http(s) with a host; return it without a trailing /."""
    try:
        parsed = urlparse(url or "")
        valid = parsed.port != 0
    except ValueError:   # a bad port or bracket
        valid = False
    if not valid or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadInput(f"{option}: {redact_url(url)!r} is not an http(s) URL like http://127.0.0.1:9090")
    return url.rstrip("/")


def check_server(url: str, timeout_s: float = 5.0, option: str = "--prometheus-url") -> dict:
    """Check that a Prometheus server answers and is ready; return its build info (may be {})."""
    url = check_url(url, option)
    try:
        resp = requests.get(url + "/-/ready", timeout=timeout_s)
    except requests.RequestException as exc:
        raise BadInput(f"{option}: {redact_url(url)} did not answer ({exc.__class__.__name__}); "
                       f"is Prometheus running there?") from None
    if resp.status_code != 200:
        raise BadInput(f"{option}: {redact_url(url)}/-/ready answered HTTP {resp.status_code}: "
                       f"not a ready Prometheus server")
    try:
        info = requests.get(url + "/api/v1/status/buildinfo", timeout=timeout_s).json()
        return info.get("data") or {} if isinstance(info, dict) else {}
    except (requests.RequestException, ValueError):
        return {}   # readiness is what the run needs; the version is a nicety


def instance_regex(target_url: str) -> str:
    """Return a PromQL regex for the `instance` label Prometheus gives the target.

    The label is the scrape address, host:port; loopback names are interchangeable and a
    URL without a port matches the address with or without the scheme's default port.
    """
    parsed = urlparse(target_url)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    hosts = LOOPBACK if host in LOOPBACK else (host,)
    names = "|".join(re.escape(h) for h in hosts)
    if parsed.port:
        port = f":{parsed.port}"
    else:
        port = f"(:{443 if parsed.scheme == 'https' else 80})?"
    # re.escape escapes characters PromQL's RE2 accepts; double the backslashes for the string.
    return f"({names}){port}".replace("\\", "\\\\")


class PrometheusSource:
    """Read the target's server-side metrics for one second at a time from Prometheus."""

    def __init__(self, base_url: str, target_url: str, job: str | None = None,
                 timeout_s: float = 0.8):
        self.base_url = check_url(base_url)
        if not target_url:
            raise BadInput("--prometheus-url: needs the target's URL to find its series")
        self.target_url = target_url
        self.instance_re = instance_regex(target_url)
        self.job = job
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.selector: str | None = None        # exact {job, instance} once found
        self.interval: float | None = None
        self.phase: float | None = None         # timestamp of one scrape on the grid
        self.grid_read_at = -math.inf

    # ------------------------------------------------------------------ HTTP
    def query(self, promql: str, timeout_s: float | None = None, at: float | None = None) -> list:
        """Run an instant query and return its result list; raise requests errors."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        params = {"query": promql, "time": f"{time.time() if at is None else at:.3f}",
                  "timeout": f"{max(round(timeout * 1000), 50)}ms"}
        resp = self.session.post(self.base_url + "/api/v1/query", data=params, timeout=timeout)
        resp.raise_for_status()
        body = resp.json()
        if body.get("status") != "success":
            raise requests.RequestException(f"query failed: {body.get('error')}")
        return body["data"]["result"]

    # ------------------------------------------------------------------ scrape grid
    def read_grid(self, timeout_s: float | None = None) -> bool:
        """Find the target's series and the times of its scrapes; True when found."""
        matchers = f'instance=~"{self.instance_re}"'
        if self.job:
            matchers = f'job="{_escape(self.job)}",' + matchers
        try:
            result = self.query(f"up{{{matchers}}}[60s]", timeout_s)
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return False
        series = [s for s in result if len(s.get("values", [])) >= 2]
        if not series:
            return False
        # Two jobs scraping the same target would double every sum: keep one, the lab's
        # `target` job when it is there, so other jobs never mix in.
        series.sort(key=lambda s: (s["metric"].get("job") != "target", s["metric"].get("job", ""),
                                   s["metric"].get("instance", "")))
        chosen = series[0]
        stamps = [float(v[0]) for v in chosen["values"]]
        self.interval = round(statistics.median(b - a for a, b in zip(stamps, stamps[1:])), 3)
        self.phase = stamps[-1]
        labels = chosen["metric"]
        self.selector = (f'job="{_escape(labels.get("job", ""))}",'
                         f'instance="{_escape(labels.get("instance", ""))}"')
        self.grid_read_at = time.monotonic()
        return self.interval > 0

    def wait_for_target(self, timeout_s: float = 5.0) -> None:
        """Wait until Prometheus holds scrapes of the target; BadInput when it does not."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.read_grid(timeout_s=2.0):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        host = urlparse(self.target_url).netloc
        raise BadInput(f"--prometheus-url: {redact_url(self.base_url)} holds no scrapes of the target "
                       f"{host} (no up{{instance=\"{host}\"}} series); add it to the scrape "
                       f"config (prometheus/prometheus.yml scrapes 127.0.0.1:5000: run "
                       f"`lab.py serve --port 5000` and pass --host http://127.0.0.1:5000)")

    def _grid_points(self, start: float, end: float) -> list[tuple[float, float]]:
        """Return (scrape time g, weight) of the intervals (g-I, g] overlapping [start, end)."""
        interval, phase = self.interval, self.phase
        n = math.floor((start - phase) / interval)
        points = []
        g = phase + n * interval
        while g - interval < end:
            overlap = min(g, end) - max(g - interval, start)
            weight = overlap / (end - start)
            if weight > MIN_WEIGHT:
                points.append((g, weight))
            g += interval
        return points

    def expression(self, start: float, end: float) -> tuple[str, float]:
        """Return the PromQL for the second [start, end) and the time its last sample is due."""
        interval, sel = self.interval, self.selector
        window = f"{round(2 * interval * 1000)}ms"
        points = self._grid_points(start, end)

        def blend(inner) -> str:
            return " + ".join(f"{w:.6f} * ({inner(f'{g + interval / 2:.3f}')})" for g, w in points)

        requests_sel = REQUESTS + "{" + sel + "}"
        errors_sel = REQUESTS + "{" + sel + ',status=~"5.."}'
        buckets_sel = DURATION + "_bucket{" + sel + "}"
        total = blend(lambda at: f"sum(irate({requests_sel}[{window}] @ {at}))")
        errors = blend(lambda at: f"(sum(irate({errors_sel}[{window}] @ {at})) or vector(0))")
        # Quantiles from the one interval covering most of the second (see the docstring).
        main = max(points, key=lambda p: p[1])[0]
        buckets = f"sum by (le) (irate({buckets_sel}[{window}] @ {main + interval / 2:.3f}))"
        queue = f"sum by (le) (irate({QUEUE}_bucket{{{sel}}}[{window}] @ {main + interval / 2:.3f}))"
        # In flight: the scrape nearest to `end`, as the direct scrape reads it at `end`.
        nearest = self.phase + round((end - self.phase) / interval) * interval
        stats = {
            "srv_rps": total,
            "srv_error_rate": f"({errors}) / ({total})",
            **{key: f"1000 * histogram_quantile({q}, {buckets})" for key, q in QUANTILES.items()},
            "srv_queue_p95_ms": f"1000 * histogram_quantile(0.95, {queue})",
            "srv_in_flight": (f"sum(last_over_time({IN_FLIGHT}{{{sel}}}"
                              f"[{round(interval * 1000)}ms] @ {nearest + interval / 2:.3f}))"),
        }
        promql = " or ".join(f'label_replace({expr}, "stat", "{key}", "", "")'
                             for key, expr in stats.items())
        due = max([g for g, _ in points] + [nearest])
        return promql, due

    # ------------------------------------------------------------------ per second
    def server_stats(self, start_ts: float, end_ts: float) -> dict[str, float | None]:
        """Return the server-side columns of the second [start_ts, end_ts) (None when unknown)."""
        out: dict[str, float | None] = dict.fromkeys(SERVER_KEYS)
        began = time.monotonic()
        if self.selector is None or time.monotonic() - self.grid_read_at > GRID_TTL_S:
            if not self.read_grid() and self.selector is None:
                return out
        promql, due = self.expression(start_ts, end_ts)
        wait = due + SETTLE_S - time.time()
        if wait > MAX_WAIT_S:
            return out     # the samples cannot be in Prometheus within the budget
        if wait > 0:
            time.sleep(wait)
        for attempt in range(2):
            try:
                result = self.query(promql)
            except (requests.RequestException, ValueError, KeyError, TypeError):
                return out
            _fill(out, result)
            if out["srv_rps"] is not None or attempt == 1:
                break
            # Empty: the scrape may be slow to land, or the grid moved (Prometheus restarted).
            if time.monotonic() - began > self.timeout_s:
                break
            time.sleep(0.2)
            self.read_grid(timeout_s=0.3)
            promql, _ = self.expression(start_ts, end_ts)
        return out


def _fill(out: dict, result: list) -> None:
    for series in result:
        key = series.get("metric", {}).get("stat")
        if key in out:
            out[key] = _number(series.get("value", [None, None])[1])


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
