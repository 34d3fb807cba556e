"""import-prometheus against a real Prometheus scraping the lab's target, and a monitor asking the same PromQL.

The server is the Debian `prometheus` with the repo's prometheus.yml (1 s scrapes of the
target), on free loopback ports, as in test_prometheus_source.py. A thread sends a few
requests a second to the target; the import asks for a range that starts before
Prometheus did, so its first rows are gaps (empty cells, target_up=0).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from typer.testing import CliRunner

from collector.promimport import parse_queries, parse_time
from contract.errors import BadInput

from externaltools import require_tool

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "prometheus" / "prometheus.yml"
QUERIES = {"rps": 'sum(rate(flask_http_request_total{job="target"}[5s]))',
           "scraped": 'up{job="target"}',
           "absent_metric": "sum(no_such_metric_anywhere)"}


def _lab(*args):
    from lab import app

    return CliRunner().invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- no processes


def test_queries_and_times_parse_and_bad_ones_are_one_line():
    assert parse_queries(["rps=sum(rate(x[5s]))", "cpu_percent = 100 * a == b"]) == {
        "rps": "sum(rate(x[5s]))", "cpu_percent": "100 * a == b"}
    for bad, message in ((["rps"], "expected NAME=PROMQL"), (["CPU=x"], "a column name"),
                         (["phase=x"], "a column name"), (["a=x", "a=y"], "given twice"), ([], "at least one")):
        with pytest.raises(BadInput, match=message):
            parse_queries(bad)
    assert parse_time("now-30m", "--start", now=10_000.0) == 8_200.0
    assert parse_time("now", "--end", now=10_000.0) == 10_000.0
    assert parse_time("2014-04-01T00:00:00Z", "--start") == 1_396_310_400
    with pytest.raises(BadInput, match="--start: 'yesterday': not a time"):
        parse_time("yesterday", "--start")


def test_a_remote_prometheus_needs_allow_remote(tmp_path):
    result = _lab("import-prometheus", "--url", "http://10.11.12.13:9090", "--query", "rps=up",
                  "--start", "now-1m", "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert "is not a loopback address" in result.output and "--allow-remote" in result.output
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A target with some traffic, and a Prometheus scraping it with the lab's config."""
    binary = require_tool("prometheus")
    from target_app.server import Target, TargetConfig, free_port

    tmp = tmp_path_factory.mktemp("promimport")
    config = TargetConfig(port=free_port(), seed=5)
    target = Target(config, log_path=tmp / "target.log")
    prom, stop = None, threading.Event()

    def traffic():
        with requests.Session() as s:
            while not stop.wait(0.25):
                try:
                    s.get(target.url + "/stress", timeout=2)
                except requests.RequestException:
                    pass

    sender = threading.Thread(target=traffic, daemon=True)
    try:
        target.start()
        sender.start()
        port = free_port()
        text = CONFIG.read_text().replace("127.0.0.1:5000", f"127.0.0.1:{config.port}")
        (tmp / "prometheus.yml").write_text(text.replace("127.0.0.1:9090", f"127.0.0.1:{port}"))
        started = time.time()
        prom = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=open(tmp / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = requests.get(url + "/api/v1/query", params={"query": 'up{job="target"} == 1'}, timeout=1)
                if answer.ok and answer.json()["data"]["result"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.25)
        else:
            raise AssertionError("Prometheus never scraped the target")
        time.sleep(30)                      # thirty seconds of 1 s scrapes under traffic
        yield {"url": url, "tmp": tmp, "started": started}
    finally:
        stop.set()
        sender.join(5)
        if prom is not None and prom.poll() is None:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(5)
        target.stop()


@pytest.mark.slow
def test_import_prometheus_keeps_gaps_and_records_the_queries(prometheus):
    tmp, url = prometheus["tmp"], prometheus["url"]
    start = int(prometheus["started"]) - 10           # ten seconds before Prometheus held anything
    args = ["import-prometheus", "--url", url, "--start", str(start), "--end", "now", "--step", "1",
            "--out", tmp / "runs"]
    for name, query in QUERIES.items():
        args += ["--query", f"{name}={query}"]
    result = _lab(*args)
    assert result.exit_code == 0, result.output
    run_dir = next((tmp / "runs").iterdir())
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["source"]["queries"] == QUERIES and meta["interval_s"] == 1
    assert meta["source"]["prometheus_url"] == url
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert len(frame) == meta["rows"] >= 40
    assert pd.to_datetime(frame["timestamp"]).diff().dropna().dt.total_seconds().eq(1).all()
    # Before Prometheus started: empty cells and target_up 0, never a carried value.
    assert frame.loc[:8, ["rps", "scraped"]].isna().all().all() and (frame.loc[:8, "target_up"] == 0).all()
    late = frame.iloc[-20:]
    assert (late["scraped"] == 1).all() and (late["target_up"] == 1).all()
    assert late["rps"].lt(10).all() and late["rps"].gt(0).mean() >= 0.8, late["rps"].tolist()   # the traffic
    assert frame["absent_metric"].isna().all()
    assert "no_data: query absent_metric returned no sample in the range" in meta["warnings"]
    assert any(w.startswith("gaps: ") for w in meta["warnings"])
    # Direct from Prometheus: the value at the last row's instant is the file's.
    t_last = pd.Timestamp(frame["timestamp"].iloc[-1]).timestamp()
    answer = requests.get(url + "/api/v1/query", params={"query": QUERIES["rps"], "time": t_last}, timeout=5).json()
    assert float(answer["data"]["result"][0]["value"][1]) == pytest.approx(frame["rps"].iloc[-1])
    prometheus["run_dir"] = run_dir
    result = _lab("import-prometheus", "--url", url, "--query", "bad=sum(", "--start", "now-1m", "--out", tmp / "bad")
    assert result.exit_code == 2 and "--query: 'sum(':" in result.output and not (tmp / "bad").exists()


@pytest.mark.slow
def test_a_model_of_the_queries_is_monitored_on_the_same_queries(prometheus, tmp_path):
    from target_app.server import free_port
    from workflows.monitoring import Monitor, MonitorOptions

    run_dir = prometheus.get("run_dir")
    if run_dir is None:
        pytest.skip("needs test_import_prometheus_keeps_gaps_and_records_the_queries")
    model = tmp_path / "model"
    result = _lab("train", run_dir, "--target", "rps", "--preset", "tiny", "--window", "5", "--horizon", "2",
                  "--out", model, "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "train.json").read_text())
    assert meta["queries"] == QUERIES
    assert "PromQL kept for `monitor --prometheus-url`: rps, scraped, absent_metric" in result.output

    result = _lab("monitor", "--model", model, "--port", free_port(), "--events", tmp_path / "e.jsonl",
                  "--duration", "1")
    assert result.exit_code == 2 and "--prometheus-url: missing" in result.output
    result = _lab("monitor", "--model", model, "--prometheus-url", "http://10.11.12.13:9090", "--duration", "1")
    assert result.exit_code == 2 and "--allow-remote" in result.output

    watch = Monitor(MonitorOptions(target=None, model=model, port=free_port(), prometheus_url=prometheus["url"],
                                   events=tmp_path / "events.jsonl", duration_s=8))
    assert "3 PromQL queries" in watch.describe()
    steps = []
    watch.run(on_step=steps.append)
    assert len(steps) >= 7
    for step in steps:
        assert set(QUERIES) <= set(step.row) and step.row["absent_metric"] is None
        assert step.row["scraped"] == 1 and 0 <= step.row["rps"] < 10
    ready = [s for s in steps[5:] if s.prediction.probability is not None]
    assert ready, "no prediction once the 5-row window was full"
    assert all(0 <= s.prediction.probability <= 1 for s in ready)
