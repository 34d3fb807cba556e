"""Prometheus server as a source: the lab's prometheus.yml, the PromQL, a real server end to end.

The integration test starts the target itself (Prometheus must know its port before the
run), a real `prometheus` scraping it every second with the repo's prometheus.yml, then
runs the smoke scenario with --prometheus-url. In that mode the collector keeps its own
/metrics scrape in `*_direct` columns, so both views of the SAME run are compared.

Tolerances, seconds 3..19 of the 20 s smoke run (~4 requests/s), set after measuring 9-25
runs (2026-12-02). Prometheus scrapes on its own 1 s grid, offset from the run's seconds by a
random phase (different every run), so one second's count can differ by a request or
two from the direct scrape's, and a p95 of four requests flips with one slow request:
* srv_rps, whole run: the totals agree within 5% + 2 requests (measured: within 3.6%);
* srv_rps, per second: mean absolute difference <= 2.5 requests/s (measured 0.76-1.88 over
  25 runs: the direct scrape counts whole requests per second, the blend interpolates),
  and 5-second sums within 30% of the direct ones (measured: worst block 3-19%);
* srv_latency_p95_ms, a p95 of about four requests: both views put the same seconds above
  800 ms (their counts within 3, measured within 2), and each such second has one above
  800 ms in the other view within a second (>= 75% of them, both ways; measured 88-100%
  over 9 runs); a second's value is within 25% of the direct value of the same or an
  adjacent second in >= 60% of the seconds (measured 71-100% over 25 runs and CI's); and both put
  the latency fault (seconds 8..11, +1 s) above 800 ms in the median. Same-second figures
  are printed but not asserted: the quantile reads the one scrape interval that covers
  most of the second, up to half a second off it, so a third to half of the second's
  requests are another second's and the per-second p95 (about 70 ms or about 1 s here)
  flips. Over 25 runs their median relative difference ranged 0.01-0.63 and the share
  within 25% 0.24-0.94, from one run to the next of the same code;
* srv_error_rate: 0 wherever the direct scrape says 0 (the smoke run has no error fault).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from collector.promserver import PrometheusSource, check_url, instance_regex
from contract.schema import COLUMNS, DIRECT_SCRAPE_COLUMNS
from contract.errors import BadInput

from externaltools import require_tool

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "prometheus" / "prometheus.yml"


# ---------------------------------------------------------------- no processes


def test_check_url_refuses_non_http():
    assert check_url("http://127.0.0.1:9090/") == "http://127.0.0.1:9090"
    for bad in ("ftp://127.0.0.1:9090", "127.0.0.1:9090", "http://", ""):
        with pytest.raises(BadInput, match="--prometheus-url"):
            check_url(bad)
    for bad in ("http://u:s3cret@[::1", "ftp://u:s3cret@127.0.0.1:9090", "http://u:s3cret@127.0.0.1:99999"):
        with pytest.raises(BadInput, match="--prometheus-url") as err:
            check_url(bad)
        assert "s3cret" not in str(err.value)


def test_instance_regex_matches_loopback_aliases_and_default_port():
    import re

    def matches(url: str, instance: str) -> bool:
        # PromQL strings unescape \\ to \; RE2 and Python agree on this subset.
        return re.fullmatch(instance_regex(url).replace("\\\\", "\\"), instance) is not None

    assert matches("http://127.0.0.1:5000", "127.0.0.1:5000")
    assert matches("http://localhost:5000", "127.0.0.1:5000")
    assert not matches("http://127.0.0.1:5000", "127.0.0.1:50001")
    assert not matches("http://127.0.0.1:5000", "127.0.0.2:5000")
    assert matches("http://target", "target:80") and matches("http://target", "target")
    assert matches("https://target", "target:443")


def _source(phase: float, interval: float = 1.0) -> PrometheusSource:
    src = PrometheusSource("http://127.0.0.1:9", "http://127.0.0.1:5000")
    src.interval, src.phase = interval, phase
    src.selector = 'job="target",instance="127.0.0.1:5000"'
    return src


def test_second_is_blended_from_the_two_scrape_intervals_it_straddles():
    src = _source(phase=100.25)
    # Second [200, 201) overlaps (199.25, 200.25] by 0.25 and (200.25, 201.25] by 0.75.
    assert src._grid_points(200.0, 201.0) == [(200.25, 0.25), (201.25, 0.75)]
    promql, due = src.expression(200.0, 201.0)
    assert due == 201.25   # wait for the scrape after the second
    assert "0.250000 * (sum(irate(flask_http_request_total{" in promql
    assert "[2000ms] @ 200.750" in promql and "[2000ms] @ 201.750" in promql
    # Quantiles: the interval covering most of the second; in flight: the scrape nearest 201.
    assert 'histogram_quantile(0.95, sum by (le) (irate(flask_http_request_duration_seconds_bucket' in promql
    assert "[1000ms] @ 201.750" in promql
    assert 'instance="127.0.0.1:5000"' in promql and "lab_http_requests_in_flight" in promql


def test_aligned_grid_uses_one_interval():
    src = _source(phase=100.0)
    assert src._grid_points(200.0, 201.0) == [(201.0, 1.0)]


# ---------------------------------------------------------------- promtool


def test_promtool_accepts_the_lab_config():
    promtool = require_tool("promtool")
    proc = subprocess.run([promtool, "check", "config", str(CONFIG)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = CONFIG.read_text()
    assert "scrape_interval: 1s" in text and "evaluation_interval: 1s" in text
    for job in ("target", "monitor", "prometheus"):
        assert f"job_name: {job}" in text
    assert (ROOT / "prometheus" / "rules").is_dir()


# ---------------------------------------------------------------- a real server


def _free_port() -> int:
    from target_app.server import free_port

    return free_port()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture(scope="module")
def prometheus_run(tmp_path_factory):
    """A target, a Prometheus scraping it with the lab's config, and one smoke run read through it."""
    binary = require_tool("prometheus")
    from loadtests.harness import RunOptions, run_scenario
    from target_app.server import Target, TargetConfig

    tmp = tmp_path_factory.mktemp("prom")
    config = TargetConfig(port=_free_port(), seed=3)
    target = Target(config, log_path=tmp / "target.log")
    prom = None
    try:
        target.start()
        prom_port = _free_port()
        # The repo's file with this test's addresses: the same jobs and intervals.
        text = CONFIG.read_text().replace("127.0.0.1:5000", f"127.0.0.1:{config.port}")
        text = text.replace("127.0.0.1:9090", f"127.0.0.1:{prom_port}")
        (tmp / "prometheus.yml").write_text(text)
        prom = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=open(tmp / "prometheus.log", "wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        prom_url = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: requests.get(prom_url + "/-/ready", timeout=1).ok, 60, "Prometheus /-/ready")
        _wait(lambda: requests.get(prom_url + "/api/v1/query", timeout=1,
                                   params={"query": 'up{job="target"} == 1'}).json()["data"]["result"],
              30, "a first scrape of the target")
        result = run_scenario(RunOptions(scenario="smoke-closed", host=target.url, admin_token=config.token,
                                         prometheus_url=prom_url, out=tmp / "runs"))
        frame = pd.read_csv(result.run_dir / "metrics.csv")
        # Where Prometheus' scrape grid fell within the run's seconds (random per run).
        source = PrometheusSource(prom_url, target.url)
        source.read_grid()
        t0 = json.loads((result.run_dir / "collector.json").read_text())["t0"]
        yield {"result": result, "frame": frame, "prom_url": prom_url, "tmp": tmp,
               "grid_offset_s": round((source.phase - t0) % source.interval, 3)}
    finally:
        if prom is not None:
            _stop(prom)
        target.stop()


def _agreement(frame: pd.DataFrame) -> dict:
    """Measure how the Prometheus columns agree with the direct scrape (seconds 3..end).

    Seconds where either view is empty (a query over its budget) are left out of both sides.
    """
    f = frame[(frame["elapsed_s"] >= 3) & frame["srv_rps"].notna() & frame["srv_rps_direct"].notna()]
    rps, direct = f["srv_rps"], f["srv_rps_direct"]
    blocks = (f["elapsed_s"] - 3) // 5
    five_p, five_d = rps.groupby(blocks).sum(), direct.groupby(blocks).sum()
    full = five_d.index[(f.groupby(blocks).size() == 5).to_numpy()]
    both = f["srv_latency_p95_ms"].notna() & f["srv_latency_p95_ms_direct"].notna()
    p95_rel = ((f["srv_latency_p95_ms"] - f["srv_latency_p95_ms_direct"]).abs()
               / f["srv_latency_p95_ms_direct"])[both]
    return {
        "total": float(rps.sum()), "total_direct": float(direct.sum()),
        "rps_mean_abs_diff": float((rps - direct).abs().mean()),
        "rps_5s_rel_diff_max": float(((five_p - five_d).abs() / five_d)[full].max()),
        "p95_within_25pct_share": float((p95_rel <= 0.25).mean()),
        "p95_rel_diff_median": float(p95_rel.median()),
        "p95_within_25pct_of_same_or_adjacent_share": float(_near_adjacent(frame, f.index)),
        "slow_seconds": int((f["srv_latency_p95_ms"] > 800).sum()),
        "slow_seconds_direct": int((f["srv_latency_p95_ms_direct"] > 800).sum()),
        "p95_seconds_compared": int(both.sum()),
        "slow_matched_within_1s_share": _slow_matched(f["srv_latency_p95_ms"], f["srv_latency_p95_ms_direct"]),
        "slow_matched_within_1s_share_direct": _slow_matched(f["srv_latency_p95_ms_direct"],
                                                             f["srv_latency_p95_ms"]),
    }


def _slow_matched(view: pd.Series, other: pd.Series) -> float:
    """Share of the seconds above 800 ms in one view that the other puts above 800 ms within a second."""
    slow = view.index[view > 800]
    hits = [any(other.get(j, 0) > 800 for j in (i - 1, i, i + 1)) for i in slow]
    return sum(hits) / len(hits) if hits else 0.0


@pytest.mark.slow
def test_prometheus_run_records_both_views_of_every_second(prometheus_run):
    frame, result = prometheus_run["frame"], prometheus_run["result"]
    assert result.status == "complete"
    assert list(frame.columns) == COLUMNS + DIRECT_SCRAPE_COLUMNS
    assert frame["elapsed_s"].tolist() == list(range(20))
    assert frame["target_up"].eq(1).all()
    # Seconds from 1 on have a Prometheus value (second 0 needs a scrape before t0); on a
    # loaded 2-core machine a query can miss its in-second budget and that second is empty
    # (never the previous value), so allow two such seconds, not more.
    assert frame["srv_rps"].iloc[1:].isna().sum() <= 2, frame["srv_rps"].tolist()
    assert frame["srv_in_flight"].iloc[1:].isna().sum() <= 2
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["collector"]["source"] == "prometheus"
    assert meta["collector"]["prometheus_url"] == prometheus_run["prom_url"]
    assert meta["collector"]["prometheus_version"]


def _near_adjacent(frame: pd.DataFrame, index) -> float:
    """Share of seconds whose p95 is within 25% of the direct p95 of that second or a neighbour."""
    direct = frame["srv_latency_p95_ms_direct"]
    hits = []
    for i in index:
        value = frame.at[i, "srv_latency_p95_ms"]
        near = [direct.get(j) for j in (i - 1, i, i + 1)]
        near = [d for d in near if d is not None and pd.notna(d)]
        if pd.isna(value) or not near:
            continue
        hits.append(any(abs(value - d) <= 0.25 * d for d in near))
    return sum(hits) / len(hits) if hits else 0.0


@pytest.mark.slow
def test_server_columns_agree_with_the_direct_scrape(prometheus_run):
    frame = prometheus_run["frame"]
    got = {**_agreement(frame), "grid_offset_s": prometheus_run["grid_offset_s"]}
    print("agreement:", json.dumps(got))     # shown with -s; the figures in the README come from here
    assert abs(got["total"] - got["total_direct"]) <= 0.05 * got["total_direct"] + 2, got
    assert got["rps_mean_abs_diff"] <= 2.5, got
    assert got["rps_5s_rel_diff_max"] <= 0.30, got
    assert got["p95_seconds_compared"] >= 10, got
    assert got["p95_within_25pct_of_same_or_adjacent_share"] >= 0.6, got
    assert abs(got["slow_seconds"] - got["slow_seconds_direct"]) <= 3, got
    assert got["slow_seconds"] >= 3 and got["slow_seconds_direct"] >= 3, got
    assert got["slow_matched_within_1s_share"] >= 0.75, got
    assert got["slow_matched_within_1s_share_direct"] >= 0.75, got
    fault = frame[frame["fault"] == "latency"]
    assert fault["srv_latency_p95_ms"].median() > 800
    assert fault["srv_latency_p95_ms_direct"].median() > 800
    errors = frame[frame["srv_error_rate_direct"] == 0]["srv_error_rate"].dropna()
    assert len(errors) >= 10 and errors.eq(0).all()


@pytest.mark.slow
def test_embedded_target_unknown_to_prometheus_is_refused(prometheus_run, tmp_path):
    from loadtests.harness import RunOptions, run_scenario

    # The embedded target gets a free port this Prometheus does not scrape.
    with pytest.raises(BadInput, match="holds no scrapes of the target"):
        run_scenario(RunOptions(scenario="smoke-closed", prometheus_url=prometheus_run["prom_url"],
                                out=tmp_path))


def _lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "lab.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("url, message", [
    ("ftp://127.0.0.1:9090", "not an http(s) URL"),
    (None, "did not answer"),          # a free port: nothing listens there
])
def test_bad_prometheus_url_exits_2_before_the_run(tmp_path, url, message):
    url = url or f"http://127.0.0.1:{_free_port()}"
    proc = _lab("run-scenario", "smoke-closed", "--prometheus-url", url, "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "--prometheus-url" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())   # no run folder for a refused run
