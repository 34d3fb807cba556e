"""The collector's row assembly without processes: canned scrapes and samples in, metrics.csv rows out."""

from __future__ import annotations

import csv
import io
import json

from collector.clientstats import SAMPLE_HEADERS
from collector.sampler import Collector, CollectorConfig
from contract.schema import COLUMNS
from contract.scenario import parse_scenario

T0 = 1_795_834_800.0  # 2026-11-28T03:00:00Z

SCENARIO = parse_scenario("""
name = "rows"
duration_s = 4

[slo]
latency_p95_ms = 500
error_rate = 0.1

[[stages]]
name = "warm"
until_s = 2
users = 2
spawn_rate = 2

[[stages]]
name = "busy"
until_s = 4
users = 5
spawn_rate = 5

[[faults]]
kind = "errors"
start_s = 1
duration_s = 2
intensity = 0.5
""")

UP = {"target_up": 1, "srv_rps": 4.0, "srv_error_rate": 0.0, "srv_latency_p50_ms": 250.0,
      "srv_latency_p95_ms": 380.0, "srv_latency_p99_ms": 395.0, "srv_in_flight": 1.0}
DOWN = {"target_up": 0, **dict.fromkeys(k for k in UP if k != "target_up")}
PROCESS = {"cpu_percent": 35.5, "rss_mb": 150.25, "threads": 19.0, "fds": 40.0, "target_workers": 2,
           "sys_cpu_percent": 20.0, "sys_mem_percent": 41.5}
NO_PROCESS = dict.fromkeys(PROCESS)


class CannedView:
    """Stands in for TargetView: one canned (server, process) view per sample() call."""

    def __init__(self, *views):
        self.views = list(views)

    def sample(self, now):
        server, process = self.views.pop(0)
        return dict(server), dict(process)


class CannedLoadgen:
    """Stands in for the Locust ProcessGroup: the same CPU figures every second."""

    def __init__(self, per_pid):
        self.per_pid = per_pid

    def sample(self):
        return (sum(self.per_pid.values()) if self.per_pid else None), dict(self.per_pid)


def collector(tmp_path, *views, faults_enabled=True, loadgen=None):
    """Return a Collector with canned target and load generator, its metrics.csv open as run() opens it."""
    config = CollectorConfig(out_dir=str(tmp_path), duration_s=SCENARIO.duration_s, scenario=SCENARIO.to_dict(),
                             t0=T0, faults_enabled=faults_enabled)
    c = Collector(config, out=io.StringIO())
    c.view = CannedView(*views)
    c.loadgen = CannedLoadgen(loadgen if loadgen is not None else {101: 12.5})
    c.start_rows(T0)
    return c


def locust_files(tmp_path, samples, status):
    """Write what Locust would: per-request samples and the users it reported, by time since T0."""
    folder = tmp_path / "locust"
    folder.mkdir(exist_ok=True)
    (folder / "samples-1.csv").write_text(
        SAMPLE_HEADERS[0] + "\n" + "".join(f"{T0 + t},{ms},{int(ok)},/products\n" for t, ms, ok in samples))
    (folder / "status-1.csv").write_text("ts,users\n" + "".join(f"{T0 + t},{u}\n" for t, u in status))


def record(c, tmp_path, sampled: int, written: int) -> list[dict]:
    """Sample `sampled` seconds as the collector's deadlines would, write `written` rows, read them back."""
    for second in range(sampled):
        c.sample_second(second, T0 + second + 1)
    c.drain_client()
    for second in range(written):
        c.finalise(second)
    c.csv_file.close()
    return rows_of(tmp_path)


def rows_of(tmp_path):
    with open(tmp_path / "metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_rows_join_server_process_client_and_labels_per_second(tmp_path):
    c = collector(tmp_path, (UP, PROCESS), (UP, PROCESS), (DOWN, NO_PROCESS))
    locust_files(tmp_path,
                 samples=[(0.1, 100, 1), (0.3, 200, 1), (0.5, 300, 1), (0.9, 400, 1),   # second 0
                          (1.2, 50, 1), (1.7, 60, 0),                                  # second 1: half fail
                          (2.5, 600, 1)],                                              # second 2: slow
                 status=[(1.5, 2), (2.5, 5)])
    rows = record(c, tmp_path, sampled=3, written=4)    # second 3 is never sampled (the run ended)
    assert len(rows) == 4

    first = rows[0]
    assert (first["timestamp"], first["elapsed_s"], first["phase"], first["fault"], first["fault_intensity"]) == (
        "2026-11-28T03:00:00Z", "0", "warm", "none", "0")
    assert first["users"] == ""                # Locust had not reported users before the second ended
    assert [first[k] for k in ("rps", "failures", "error_rate", "latency_p50_ms", "latency_p95_ms",
                               "latency_p99_ms")] == ["4", "0", "0", "250", "385", "397"]
    assert [first[k] for k in ("srv_rps", "srv_latency_p95_ms", "cpu_percent", "rss_mb", "target_workers",
                               "sys_mem_percent", "loadgen_cpu_percent")] == [
        "4", "380", "35.5", "150.25", "2", "41.5", "12.5"]
    assert (first["target_up"], first["slo_violation"]) == ("1", "0")

    errors = rows[1]                           # inside the fault; half the requests failed
    assert (errors["phase"], errors["fault"], errors["fault_intensity"], errors["users"]) == (
        "warm", "errors", "0.5", "2")
    assert (errors["rps"], errors["failures"], errors["error_rate"]) == ("2", "1", "0.5")
    assert errors["slo_violation"] == "1"      # error rate 0.5 > the scenario's 0.1

    down = rows[2]                             # /metrics did not answer: client side only
    assert (down["phase"], down["users"], down["target_up"]) == ("busy", "5", "0")
    assert all(down[k] == "" for k in ("srv_rps", "srv_latency_p95_ms", "cpu_percent", "rss_mb"))
    assert (down["latency_p95_ms"], down["slo_violation"]) == ("600", "1")   # the scenario's SLO, not 800 ms

    unsampled = rows[3]                        # never sampled: every measurement empty, target_up=0
    assert (unsampled["fault"], unsampled["fault_intensity"], unsampled["target_up"]) == ("none", "0", "0")
    assert (unsampled["rps"], unsampled["failures"], unsampled["slo_violation"]) == ("0", "0", "0")
    empty = [k for k in COLUMNS if unsampled[k] == ""]
    assert set(empty) == {"error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "srv_rps",
                          "srv_error_rate", "srv_latency_p95_ms", "srv_latency_p50_ms", "srv_latency_p99_ms",
                          "srv_in_flight", "cpu_percent", "rss_mb", "threads", "fds", "target_workers",
                          "sys_cpu_percent", "sys_mem_percent", "loadgen_cpu_percent",
                          # closed model, old-style status lines: no plan rate, no outstanding counts
                          "planned_rate", "outstanding", "dropped", "arrivals", "srv_queue_p95_ms",
                          "latency_p95_window_ms", "latency_p99_window_ms", "error_rate_window"}
    assert [r["planned_users"] for r in rows] == ["2", "2", "5", "5"]
    assert [r["incident"] for r in rows] == ["none"] * 4


def test_each_row_is_also_one_json_line_on_stdout(tmp_path):
    c = collector(tmp_path, (UP, PROCESS))
    c.sample_second(0, T0 + 1)
    c.finalise(0)
    c.finalise(1)
    c.csv_file.close()
    lines = [json.loads(line) for line in c.out.getvalue().splitlines()]
    assert [list(line) for line in lines] == [COLUMNS, COLUMNS]
    assert (lines[0]["target_up"], lines[0]["srv_rps"], lines[0]["rps"]) == (1, 4.0, 0.0)
    assert (lines[1]["elapsed_s"], lines[1]["target_up"], lines[1]["srv_rps"]) == (1, 0, None)
    assert len(rows_of(tmp_path)) == 2


def test_faults_disabled_label_no_fault(tmp_path):
    c = collector(tmp_path, (UP, PROCESS), (UP, PROCESS), faults_enabled=False)
    c.sample_second(0, T0 + 1)
    c.sample_second(1, T0 + 2)
    for second in range(2):
        c.finalise(second)
    c.csv_file.close()
    assert [(r["fault"], r["fault_intensity"]) for r in rows_of(tmp_path)] == [("none", "0"), ("none", "0")]


def test_a_saturated_load_generator_is_warned_about_once_after_ten_seconds(tmp_path):
    c = collector(tmp_path, *[(UP, PROCESS)] * 12, loadgen={101: 95.0, 102: 20.0})
    for second in range(12):
        c.sample_second(second, T0 + second + 1)
    assert c.warnings == ["loadgen_saturated: Locust process 101 held more than 90% of a core for 10 s "
                          "from second 0"]
    c.csv_file.close()


OPEN = parse_scenario("""
name = "open-rows"
duration_s = 4

[slo]
latency_p95_ms = 500
error_rate = 0.5
window_s = 3

[[stages]]
name = "steady"
until_s = 2
rate = 10

[[stages]]
name = "up"
until_s = 4
rate = 30
ramp_s = 2
""")


def test_open_model_rows_carry_the_plan_outstanding_drops_pooled_slo_and_incidents(tmp_path):
    config = CollectorConfig(out_dir=str(tmp_path), duration_s=4, scenario=OPEN.to_dict(), t0=T0)
    c = Collector(config, out=io.StringIO())
    c.view = CannedView(*[({**UP, "srv_queue_p95_ms": 12.0, "incident": "none"}, PROCESS)] * 2,
                        ({**UP, "srv_queue_p95_ms": 900.0, "incident": "worker_killed"}, PROCESS),
                        (DOWN, NO_PROCESS))
    c.loadgen = CannedLoadgen({101: 10.0})
    c.start_rows(T0)
    folder = tmp_path / "locust"
    folder.mkdir()
    # One slow second (2): pooled over 3 s its p95 is above the SLO for seconds 2..4.
    samples = [(0.5, 100), (1.5, 100), (2.2, 2000), (2.4, 2100), (3.5, 100)]
    (folder / "samples-1.csv").write_text(SAMPLE_HEADERS[1] + "\n" + "".join(
        f"{T0 + t},{ms},1,/products,{ms / 2},{T0 + t - ms / 1000}\n" for t, ms in samples))
    # ts,users,outstanding,dropped,sent: cumulative dropped and sent.
    status = [(0.9, 1, 2, 0, 10), (1.9, 1, 3, 0, 20), (2.9, 1, 40, 5, 45), (3.9, 1, 60, 9, 75)]
    (folder / "status-1.csv").write_text("ts,users,outstanding,dropped,sent\n" + "".join(
        f"{T0 + t},{u},{o},{d},{s}\n" for t, u, o, d, s in status))
    rows = record(c, tmp_path, sampled=4, written=4)
    assert [r["users"] for r in rows] == [""] * 4                  # the open model has no user count
    assert [r["planned_users"] for r in rows] == [""] * 4
    assert [float(r["planned_rate"]) for r in rows] == [10.0, 10.0, 15.0, 25.0]   # ramp 10 -> 30 over 2 s
    assert [r["outstanding"] for r in rows] == ["2", "3", "40", "60"]
    assert [r["dropped"] for r in rows] == ["0", "0", "5", "4"]
    assert [r["arrivals"] for r in rows] == ["10", "10", "25", "30"]
    assert [r["slo_violation"] for r in rows] == ["0", "0", "1", "1"]   # pooled: second 3 still sees second 2
    assert rows[3]["latency_p95_ms"] == "100"                       # ... though its own second is fast
    assert [r["incident"] for r in rows] == ["none", "none", "worker_killed", "none"]
    assert [r["srv_queue_p95_ms"] for r in rows] == ["12", "12", "900", ""]
