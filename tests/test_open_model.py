"""The open model end to end: Locust's arrival driver against a real server, its raw files, CPU placement.

Runs on the real target use short open scenarios below capacity (about 150 requests/s for
the 2 x 4 target), so every figure is the plan's, not the machine's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from loadtests.arrivals import scenario_arrivals
from loadtests.harness import RunOptions, cpu_placement, run_scenario
from contract.scenario import read_scenario

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_COLUMNS = ["ts", "response_time_ms", "ok", "name", "service_ms", "intended_ts"]
STATUS_COLUMNS = ["ts", "users", "outstanding", "dropped", "sent"]


def open_file(tmp_path: Path, name: str, stages: list[tuple[str, int, float, int]], *,
              faults: list[tuple[str, int, int, float]] = (), max_in_flight: int = 1000,
              mix: str = "browse = 5\nproduct = 4\nsearch = 2\ncheckout = 1", seed: int = 5) -> Path:
    lines = [f'name = "{name}"', f"duration_s = {stages[-1][1]}", f"seed = {seed}",
             "[target]", "workers = 2", "threads = 4",
             "[load]", f"max_in_flight = {max_in_flight}", "[load.mix]", mix]
    for stage, until, rate, ramp in stages:
        lines += ["[[stages]]", f'name = "{stage}"', f"until_s = {until}", f"rate = {rate}", f"ramp_s = {ramp}"]
    for kind, start, duration, intensity in faults:
        lines += ["[[faults]]", f'kind = "{kind}"', f"start_s = {start}", f"duration_s = {duration}",
                  f"intensity = {intensity}"]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def raw_files(run_dir: Path) -> tuple[float, list[pd.DataFrame], list[pd.DataFrame]]:
    locust = run_dir / "locust"
    t0 = float((locust / "t0").read_text())
    samples = [pd.read_csv(p) for p in sorted(locust.glob("samples-*.csv"))]
    status = [pd.read_csv(p) for p in sorted(locust.glob("status-*.csv"))]
    for frame in samples:
        assert list(frame.columns) == SAMPLE_COLUMNS
    for frame in status:
        assert list(frame.columns) == STATUS_COLUMNS
    return t0, samples, status


def assert_sent_on_schedule(samples: pd.DataFrame, t0: float, schedule: np.ndarray, end_s: float,
                            tail_s: float = 3.0) -> None:
    """Every arrival of the schedule was sent at its time and answered, but for the last `tail_s`.

    The run stops Locust once the collector's last row is in: arrivals of the final
    seconds may still be in flight then, more of them when a busy machine slows Locust.
    """
    intended = np.sort(samples["intended_ts"].to_numpy()) - t0
    assert len(intended) <= len(schedule)
    early = schedule[schedule < end_s - tail_s]
    np.testing.assert_allclose(intended[:len(early)], early, atol=2e-4)
    late = intended[len(early):]
    assert len(late) == 0 or late.min() >= end_s - tail_s - 2e-4


def run(path: Path, out: Path, **kwargs) -> Path:
    result = run_scenario(RunOptions(scenario=str(path), out=out, **kwargs))
    assert result.status == "complete", result.meta["warnings"]
    return result.run_dir


# ---------------------------------------------------------------- CPU placement


@pytest.mark.parametrize("available, expected", [
    ({0, 1}, ([0], [1])), ({0, 1, 2, 3}, ([0, 1], [2, 3])), ({0, 2, 5}, ([0], [2, 5])),
    ({3}, (None, None))])
def test_cpu_placement_splits_our_cpus_load_generator_first(available, expected):
    assert cpu_placement(available) == expected


# ---------------------------------------------------------------- plain Locust, any HTTP server


class _Recorder(BaseHTTPRequestHandler):
    stamps: list[tuple[str, str | None]] = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.stamps.append((self.path, self.headers.get("X-Request-Start")))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_args):
        pass


@pytest.fixture
def recorder():
    _Recorder.stamps = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.stamps
    server.shutdown()
    server.server_close()


def plain_locust(scenario: Path, host: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAB_SCENARIO=str(scenario), LAB_OUT=str(out / "locust"))
    env.pop("LAB_SCENARIO_JSON", None)
    env.pop("LAB_LOCUST_PROCESSES", None)
    return subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
                           "--headless", "--host", host, "--loglevel", "WARNING", "--only-summary"],
                          cwd=out, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_plain_locust_runs_the_open_schedule_and_stamps_x_request_start(tmp_path, recorder):
    host, stamps = recorder
    path = open_file(tmp_path, "plain", [("only", 4, 25, 0)], seed=9)
    proc = plain_locust(path, host, tmp_path)
    assert proc.returncode == 0, proc.stderr
    t0, (samples,), (status,) = raw_files(tmp_path)
    schedule = scenario_arrivals(read_scenario(path))
    # Every arrival of the seeded schedule was sent at its time and answered.
    assert len(samples) == len(schedule) == len(stamps)
    np.testing.assert_allclose(np.sort(samples["intended_ts"]), t0 + schedule, atol=2e-4)
    lag_ms = samples["response_time_ms"] - samples["service_ms"]
    assert lag_ms.min() > -1 and lag_ms.median() < 20
    # X-Request-Start: t=<epoch microseconds> of the actual send, after the intended one.
    sent_us = np.array([int(value.removeprefix("t=")) for _, value in stamps])
    assert all(value and value.startswith("t=") and value[2:].isdigit() for _, value in stamps)
    assert sent_us.min() / 1e6 >= t0 + schedule[0] - 1e-3
    assert sent_us.max() / 1e6 <= samples["ts"].max()
    assert status["sent"].iloc[-1] == len(schedule) and status["dropped"].iloc[-1] == 0
    assert status["outstanding"].iloc[-1] == 0 and set(status["users"]) <= {0, 1}


@pytest.mark.slow
def test_closed_model_requests_carry_the_stamp_and_the_new_columns(tmp_path, recorder):
    host, stamps = recorder
    path = tmp_path / "closed.toml"
    path.write_text('name = "closed"\nduration_s = 3\n[load]\nwait_min_s = 0.05\nwait_max_s = 0.1\n'
                    '[[stages]]\nname = "a"\nuntil_s = 3\nusers = 2\nspawn_rate = 2\n')
    proc = plain_locust(path, host, tmp_path)
    assert proc.returncode == 0, proc.stderr
    _t0, samples, status = raw_files(tmp_path)
    samples, status = pd.concat(samples), pd.concat(status)
    assert len(samples) >= 10 and all(v and v.startswith("t=") for _, v in stamps)
    # Closed: the intended send is the actual one, so latency and service time agree.
    np.testing.assert_allclose(samples["response_time_ms"], samples["service_ms"])
    assert ((samples["ts"] - samples["intended_ts"]) * 1000 >= samples["service_ms"] - 1).all()
    assert status["dropped"].max() == 0 and status["outstanding"].max() <= 2
    assert status["sent"].iloc[-1] >= len(samples)


# ---------------------------------------------------------------- the real target


@pytest.mark.slow
def test_rate_achieved_matches_the_plan_below_capacity_and_placement_is_recorded(tmp_path):
    path = open_file(tmp_path, "rate", [("low", 12, 40, 0), ("high", 24, 80, 4)])
    placement: dict = {}

    def look(row):
        # While the run is live: where the target's and Locust's processes may run.
        if placement or row.get("elapsed_s", 0) < 2:
            return
        (run_dir,) = [p for p in tmp_path.joinpath("runs").iterdir() if p.is_dir()]
        cfg = json.loads((run_dir / "collector-config.json").read_text())
        target = psutil.Process(cfg["target_pid"])
        placement["target"] = {tuple(p.cpu_affinity()) for p in [target, *target.children()]}
        placement["threads"] = {tuple(os.sched_getaffinity(t.id)) for p in [target, *target.children()]
                                for t in p.threads()}
        placement["locust"] = {tuple(psutil.Process(pid).cpu_affinity()) for pid in cfg["locust_pids"]}

    result = run_scenario(RunOptions(scenario=str(path), out=tmp_path / "runs"), on_row=look)
    assert result.status == "complete", result.meta["warnings"]
    scenario = read_scenario(path)
    t0, (samples,), (status,) = raw_files(result.run_dir)

    # Every scheduled arrival was sent (none dropped) at its time.
    schedule = scenario_arrivals(scenario)
    assert_sent_on_schedule(samples, t0, schedule, scenario.duration_s)
    assert status["dropped"].iloc[-1] == 0
    # The rate achieved per stage (requests completed) within 10% of the plan.
    done = samples["ts"] - t0
    for start, stage in zip((0, 12), scenario.stages):
        planned = scenario.expected_arrivals(start, stage.until_s)
        achieved = int(((done >= start) & (done < stage.until_s)).sum())
        assert abs(achieved - planned) <= 0.1 * planned, (stage.name, achieved, planned)
    assert (samples["ok"] == 1).all()

    meta = result.meta
    assert meta["load_model"] == "open"
    loadgen_cpus, target_cpus = cpu_placement()
    assert meta["target"]["cpus"] == target_cpus and meta["loadgen"]["cpus"] == loadgen_cpus
    if target_cpus:
        assert not set(target_cpus) & set(loadgen_cpus)
        assert placement["target"] == {tuple(target_cpus)}, "gunicorn master and workers"
        assert placement["threads"] == {tuple(target_cpus)}, "and every thread they started"
        assert placement["locust"] == {tuple(loadgen_cpus)}


@pytest.mark.slow
def test_workers_split_the_rate(tmp_path):
    path = open_file(tmp_path, "split", [("only", 15, 60, 0)])
    run_dir = run(path, tmp_path, workers=2)
    t0, samples, status = raw_files(run_dir)
    assert len(samples) == 2 and len(status) == 2, "one pair of files per worker, none for the master"
    scenario = read_scenario(path)
    schedules = [scenario_arrivals(scenario, worker=k, workers=2) for k in (0, 1)]
    counts = [len(s) for s in samples]
    assert all(abs(c - 450) <= 0.15 * 450 for c in counts), counts
    assert abs(sum(counts) - 900) <= 0.1 * 900, "together they send the planned rate"
    # Each process sent its own share of the schedule (worker k of 2), and nothing else.
    shares = [min(schedules, key=lambda s: abs(s[0] - (frame["intended_ts"].min() - t0))) for frame in samples]
    assert shares[0] is not shares[1]
    for frame, share in zip(samples, shares):
        assert_sent_on_schedule(frame, t0, share, scenario.duration_s)


@pytest.mark.slow
def test_a_stall_shows_in_full_from_the_intended_send(tmp_path):
    # 20 requests/s; for 5 s every request waits 1.6-2.4 s more (latency fault at intensity 1),
    # so the 8 threads serve about 4/s: a queue forms behind the stall.
    path = open_file(tmp_path, "stall", [("only", 22, 20, 0)], faults=[("latency", 8, 5, 1.0)])
    run_dir = run(path, tmp_path)
    t0, (samples,), (status,) = raw_files(run_dir)
    schedule = scenario_arrivals(read_scenario(path))
    assert_sent_on_schedule(samples, t0, schedule, 22)   # no arrival omitted because the target stalled
    intended = samples["intended_ts"] - t0
    stalled = samples[(intended >= 8.5) & (intended < 12)]
    assert len(stalled) >= 50
    # Intended-time latency shows the stall and the queue behind it, for nearly every such
    # request: the fault's own delay is 1.6-2.4 s (half of them under 2 s), the queue adds the
    # rest. Not for all: a request on a kept-alive connection is read by the worker holding it
    # and can pass the listen queue, so a few see only the fault's delay (a CI run had 5 of
    # 76 at 1.94-1.97 s, sent 11.8 s in, while the queue behind the stall stood).
    assert (stalled["response_time_ms"] >= 2000).mean() >= 0.90
    assert stalled["response_time_ms"].median() >= 2500
    assert samples["response_time_ms"].max() >= 4000
    # The load generator kept its schedule: the wait is the target's, not Locust's.
    lag_ms = samples["response_time_ms"] - samples["service_ms"]
    assert lag_ms.min() > -1 and lag_ms.quantile(0.99) < 100
    assert status["outstanding"].max() >= 40
    calm = samples[intended < 7]
    assert calm["response_time_ms"].quantile(0.95) < 500


@pytest.mark.slow
def test_max_in_flight_drops_arrivals_and_counts_them(tmp_path):
    # The stall holds every request about 2 s: at 20/s, 5 in flight leave most arrivals no room.
    path = open_file(tmp_path, "drops", [("only", 12, 20, 0)], faults=[("latency", 3, 6, 1.0)],
                     max_in_flight=5)
    run_dir = run(path, tmp_path)
    _t0, (samples,), (status,) = raw_files(run_dir)
    schedule = scenario_arrivals(read_scenario(path))
    last = status.iloc[-1]
    assert status["outstanding"].max() <= 5
    assert last["dropped"] >= 40, "about 20/s for 6 s, of which only 5 per 2 s are sent"
    assert last["dropped"] + last["sent"] == len(schedule), "every arrival is sent or dropped"
    assert 0 <= last["sent"] - len(samples) <= 5
    # Dropped arrivals wait nowhere: every sent request left at its intended time.
    lag_ms = samples["response_time_ms"] - samples["service_ms"]
    assert lag_ms.max() < 100, lag_ms.max()
    # The target holds each at most one fault delay (2.4 s) plus one behind a busy thread:
    # gunicorn's gthread worker can take 5 of the 5 in flight on its 4 threads (a run here
    # had one /products at 3.3 s, at least 0.9 s of it waiting for a thread: srv_queue_p95_ms
    # was 1.6 s that second, with 4 in flight on the target and 5 outstanding).
    assert (samples["response_time_ms"] < 5000).all(), samples["response_time_ms"].max()
