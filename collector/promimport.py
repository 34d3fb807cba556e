"""Series from a Prometheus server's HTTP API: range queries into a run folder, instant queries live.

`import-prometheus --query NAME=PROMQL ... --start --end --step` asks /api/v1/query_range
for each query and writes one column NAME per query on the grid start, start+step, ...
(Prometheus evaluates a range query exactly at those instants). A grid point a query has
no sample for stays an empty cell; a row where no query has a value has `target_up=0`.
The queries go into run.json (`source.queries`), and a model trained on the run keeps
them, so `monitor --prometheus-url` asks the same PromQL (`PromQueries.instant`) every second.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import requests

from contract.addresses import is_loopback_host, redact_url
from contract.errors import BadInput, LabError
from contract.runfolder import METRICS_CSV, atomic_write_text, host_facts, package_versions, utc_iso, write_run_json

from .importer import MIN_ROWS, RESERVED, _contract_frame, _new_run_dir, sanitize
from .promserver import check_url

MAX_POINTS = 10_000          # Prometheus refuses a range query of more than 11,000 points
DEFAULT_MAX_ROWS = 2_000_000
RELATIVE = re.compile(r"^now(?:-(\d+(?:\.\d+)?)([smhd]))?$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_queries(pairs: list[str] | None, option: str = "--query") -> dict[str, str]:
    """Turn `NAME=PROMQL` strings into {NAME: PROMQL}; NAME becomes the column."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, query = str(pair).partition("=")
        name, query = name.strip(), query.strip()
        if not sep or not name or not query:
            raise BadInput(f"{option}: {pair!r}: expected NAME=PROMQL (like cpu_percent='100 * rate(...)')")
        if sanitize(name) != name or name in RESERVED:
            raise BadInput(f"{option}: {name!r}: a column name is lowercase letters, digits and underscores, "
                           f"and not one the importer computes ({', '.join(RESERVED)})")
        if name in out:
            raise BadInput(f"{option}: {name} is given twice")
        out[name] = query
    if not out:
        raise BadInput(f"{option}: give at least one NAME=PROMQL")
    return out


def parse_time(text: str, option: str, now: float | None = None) -> float:
    """Epoch seconds from ISO 8601, epoch seconds, `now` or `now-30m` (s, m, h, d)."""
    import pandas as pd

    text = str(text).strip()
    rel = RELATIVE.match(text)
    if rel:
        now = time.time() if now is None else now
        return now - (float(rel.group(1)) * UNITS[rel.group(2)] if rel.group(1) else 0.0)
    try:
        return float(text)
    except ValueError:
        pass
    stamp = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    if pd.isna(stamp):
        raise BadInput(f"{option}: {text!r}: not a time (ISO 8601, epoch seconds, now or now-30m)")
    return stamp.timestamp()


def check_prometheus_url(url: str, allow_remote: bool, option: str = "--url") -> str:
    """An http(s) Prometheus URL, on loopback unless `allow_remote`; returned without a trailing /."""
    from urllib.parse import urlparse

    url = check_url(url, option)
    host = urlparse(url).hostname or ""
    if "@" in urlparse(url).netloc:
        raise BadInput(f"{option}: {redact_url(url)!r}: a user name or password in the URL is refused")
    if not allow_remote and not is_loopback_host(host):
        raise BadInput(f"{option}: {redact_url(url)!r} is not a loopback address (127.0.0.1, ::1, localhost); "
                       f"--allow-remote reads from another machine")
    return url


class PromQueries:
    """Ask one Prometheus server the same named PromQL queries, over a range or at an instant."""

    def __init__(self, url: str, queries: dict[str, str], timeout_s: float = 10.0, option: str = "--url"):
        self.url, self.queries, self.timeout_s, self.option = url, dict(queries), timeout_s, option
        self.session = requests.Session()

    def _get(self, path: str, params: dict) -> dict:
        try:
            resp = self.session.get(self.url + path, params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise LabError(f"{self.option}: {redact_url(self.url)} did not answer ({exc.__class__.__name__}); "
                           f"is Prometheus running there?") from None
        try:
            body = resp.json()
        except ValueError:
            raise LabError(f"{self.option}: {redact_url(self.url)}{path} answered HTTP {resp.status_code} "
                           f"without JSON: not a Prometheus server?") from None
        if resp.status_code == 400 or (isinstance(body, dict) and body.get("errorType") == "bad_data"):
            raise BadInput(f"--query: {params.get('query')!r}: {body.get('error', 'refused by Prometheus')}")
        if resp.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise LabError(f"{self.option}: {redact_url(self.url)}{path} answered HTTP {resp.status_code}: "
                           f"{(body or {}).get('error', 'no result') if isinstance(body, dict) else 'no result'}")
        return body.get("data") or {}

    def _one_series(self, name: str, data: dict) -> list:
        """The single series a query returned ([] for none); more than one is a bad query."""
        result = data.get("result") or []
        if data.get("resultType") == "scalar":
            return [data.get("result")]
        if len(result) > 1:
            labels = ", ".join(str(r.get("metric", {})) for r in result[:2])
            raise BadInput(f"--query: {name}: returns {len(result)} series ({labels}, ...); aggregate it to one "
                           f"(sum(...), max(...) or a label selector)")
        return result

    def range(self, start: float, end: float, step_s: int) -> dict[str, dict[int, float]]:
        """Return {name: {row: value}} on the grid start + row*step (chunks under Prometheus' point limit)."""
        n = int(math.floor((end - start) / step_s)) + 1
        out: dict[str, dict[int, float]] = {name: {} for name in self.queries}
        for first in range(0, n, MAX_POINTS):
            last = min(n, first + MAX_POINTS) - 1
            for name, query in self.queries.items():
                data = self._get("/api/v1/query_range", {"query": query, "start": _num(start + first * step_s),
                                                         "end": _num(start + last * step_s), "step": step_s})
                for series in self._one_series(name, data):
                    for t, v in series.get("values", []):
                        row = int(round((float(t) - start) / step_s))
                        value = _value(v)
                        if 0 <= row < n and value is not None:
                            out[name][row] = value
        return out

    def instant(self, at: float | None = None) -> dict[str, float | None]:
        """Return {name: value} of every query at `at` (now by default); None where Prometheus has none."""
        out: dict[str, float | None] = {}
        for name, query in self.queries.items():
            try:
                params = {"query": query, **({"time": _num(at)} if at is not None else {})}
                series = self._one_series(name, self._get("/api/v1/query", params))
            except (LabError, BadInput):
                out[name] = None        # a second without an answer is a missing value, never a stale one
                continue
            if series and isinstance(series[0], list):          # a scalar: [t, "v"]
                out[name] = _value(series[0][1])
            else:
                out[name] = _value(series[0]["value"][1]) if series else None
        return out


def _num(t: float) -> str:
    return f"{t:.3f}"


def _value(v) -> float | None:
    try:
        value = float(v)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def import_prometheus(url: str, queries: dict[str, str], *, start: str, end: str, step_s: int,
                      out_dir: str | os.PathLike = "runs", run_id: str | None = None, allow_remote: bool = False,
                      max_rows: int = DEFAULT_MAX_ROWS) -> Path:
    """Range-query each PromQL over [start, end] every `step_s` s into a run folder; return the folder."""
    import pandas as pd

    url = check_prometheus_url(url, allow_remote)
    now = time.time()
    t0, t1 = parse_time(start, "--start", now), parse_time(end, "--end", now)
    if step_s < 1:
        raise BadInput(f"--step: must be a whole number of seconds >= 1, got {step_s}")
    t0 = math.floor(t0)
    if t1 <= t0:
        raise BadInput(f"--end: {end!r} is not after --start {start!r}")
    n = int(math.floor((t1 - t0) / step_s)) + 1
    if n < MIN_ROWS:
        raise BadInput(f"--start/--end: {n} rows of {step_s} s, need at least {MIN_ROWS} (a longer range or a "
                       f"shorter --step)")
    if n > max_rows:
        raise BadInput(f"--start/--end: {n:,} rows of {step_s} s, more than the {max_rows:,} allowed")
    found = PromQueries(url, queries).range(t0, t1, step_s)
    values = pd.DataFrame({name: pd.Series(found[name], dtype="float64").reindex(range(n)) for name in queries})
    up = values.notna().any(axis=1).to_numpy()
    warnings = [f"no_data: query {name} returned no sample in the range" for name in queries if not found[name]]
    gaps = int((~up).sum())
    if gaps:
        warnings.append(f"gaps: {gaps} row(s) where no query had a value became rows with target_up=0")
    out = _contract_frame(values, up, t0, step_s, has_labels=False)
    run_dir = _new_run_dir(Path(out_dir), run_id or f"prometheus-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(t0))}")
    atomic_write_text(run_dir / METRICS_CSV, out.to_csv(index=False, lineterminator="\n", na_rep=""))
    write_run_json(run_dir, {
        "run_id": run_dir.name, "status": "complete",
        "scenario": {"name": "imported", "description": f"range queries from {redact_url(url)}",
                     "duration_s": n * step_s, "seed": None, "slo": {"latency_p95_ms": None, "error_rate": None},
                     "stages": [], "faults": [], "source": f"import-prometheus:{redact_url(url)}"},
        "seed": None, "started_at": utc_iso(t0), "ended_at": utc_iso(t0 + n * step_s),
        "interval_s": step_s, "rows": n,
        "source": {"prometheus_url": redact_url(url), "queries": dict(queries), "start": utc_iso(t0),
                   "end": utc_iso(t0 + (n - 1) * step_s), "step_s": step_s, "interval_s": step_s,
                   "interval_inferred": False, "rows_read": int(sum(len(v) for v in found.values())),
                   "samples": {name: len(found[name]) for name in queries},
                   "columns": {name: name for name in queries}, "label_col": None},
        "target": {}, "loadgen": {},
        "versions": package_versions(), "host": host_facts(), "warnings": warnings,
    })
    return run_dir


def print_prometheus_import(console, run_dir: Path) -> None:
    """What `import-prometheus` asked, what it wrote, and its warnings."""
    from contract.runfolder import read_meta

    meta = read_meta(run_dir)
    source = meta["source"]
    console.print(f"{meta['rows']} rows of {meta['interval_s']} s from {source['start']} to {source['end']}; "
                  + ", ".join(f"{name}: {count} values" for name, count in source["samples"].items()),
                  highlight=False)
    for warning in meta["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"wrote [bold]{run_dir}[/]")


class QueryView:
    """The monitor's view of a service through a model's PromQL: one instant query each per second.

    The same `prime`/`sample` shape as `targetview.TargetView`: the first dict holds the
    queries' values under their names and `target_up` (1 when some query answered), the
    second (process and host figures) stays empty: the model reads only what it was trained on.
    """

    def __init__(self, url: str, queries: dict[str, str], timeout_s: float = 0.8):
        self.queries = PromQueries(url, queries, timeout_s=timeout_s, option="--prometheus-url")

    def prime(self, now: float) -> None:
        """Check once that the server answers (a wrong URL fails before the loop, not silently in it)."""
        self.queries._get("/api/v1/query", {"query": "1"})

    def sample(self, now: float) -> tuple[dict, dict]:
        values = self.queries.instant(now)
        return {**values, "target_up": int(any(v is not None for v in values.values()))}, {}
