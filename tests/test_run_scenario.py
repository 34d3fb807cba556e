"""run-scenario end to end: real gunicorn target, real Locust subprocess, real collector."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from contract.schema import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def lab(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "lab.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def descendants_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = lab("run-scenario", "smoke-closed", "--out", str(out), "--seed", "3", "--quiet")
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr, only_run(out)


def test_smoke_run_exits_cleanly_with_summary(smoke_run):
    code, stdout, stderr, run_dir = smoke_run
    assert code == 0, stderr
    assert "requests" in stdout and str(run_dir) in stdout.replace("\n", "")


def test_smoke_run_has_one_row_per_second_with_contract_columns(smoke_run):
    _, _, _, run_dir = smoke_run
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert list(frame.columns[:len(COLUMNS)]) == COLUMNS
    assert frame["elapsed_s"].tolist() == list(range(20))
    stamps = pd.to_datetime(frame["timestamp"])
    assert (stamps.diff().dropna() == pd.Timedelta(seconds=1)).all()
    assert frame["target_up"].eq(1).all()
    # How many requests a second completes is chance (3 users; the latency fault holds
    # requests >= 1 s): check each row against the raw samples the run recorded instead.
    t0 = float((run_dir / "locust" / "t0").read_text())
    samples = pd.concat([pd.read_csv(f) for f in (run_dir / "locust").glob("samples-*.csv")])
    per_second = (samples["ts"] - t0).floordiv(1).value_counts().reindex(range(20), fill_value=0)
    late = json.loads((run_dir / "collector.json").read_text())["warnings"]
    if not any(w.startswith("late_samples") for w in late):
        # The last two seconds are written after Locust's final flush may still be pending.
        assert frame["rps"].iloc[:18].tolist() == per_second.iloc[:18].astype(float).tolist()
    assert frame["rps"].sum() >= 20                                   # 3 to 8 users for 20 s
    assert frame.loc[frame["rps"] == 0, "latency_p95_ms"].isna().all()
    assert frame.loc[frame["rps"] > 0, "latency_p95_ms"].notna().all()
    assert frame["srv_rps"].iloc[1:].notna().all() and frame["srv_rps"].ge(0).all()
    assert abs(frame["srv_rps"].sum() - frame["rps"].sum()) <= 0.1 * frame["rps"].sum() + 5
    assert frame["cpu_percent"].notna().all() and frame["rss_mb"].gt(10).all()
    assert frame["loadgen_cpu_percent"].notna().all()


def test_smoke_run_labels_phases_and_faults_at_the_right_seconds(smoke_run):
    _, _, _, run_dir = smoke_run
    from contract.scenario import load_scenario

    scenario = load_scenario("smoke-closed").with_seed(3)
    frame = pd.read_csv(run_dir / "metrics.csv")
    for _, row in frame.iterrows():
        t = int(row["elapsed_s"])
        assert row["phase"] == scenario.stage_at(t).name
        fault = scenario.fault_at(t)
        assert row["fault"] == (fault.kind if fault else "none")
    assert (frame["fault"] != "none").any()
    # users follow the plan (ramp-up seconds aside)
    last = frame.iloc[-1]
    assert last["users"] == scenario.stage_at(19).users


def test_smoke_fault_shows_in_the_data(smoke_run):
    _, _, _, run_dir = smoke_run
    frame = pd.read_csv(run_dir / "metrics.csv")
    faulted = frame[frame["fault"] == "latency"]
    clean = frame[(frame["fault"] == "none") & (frame["elapsed_s"] >= 3)]
    assert faulted["latency_p50_ms"].median() > clean["latency_p50_ms"].median() + 200


def test_smoke_run_json(smoke_run):
    _, _, _, run_dir = smoke_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete"
    assert meta["seed"] == 3 and meta["scenario"]["name"] == "smoke-closed"
    assert meta["started_at"].endswith("Z") and meta["ended_at"].endswith("Z")
    assert meta["host"]["cpu_count"] if "cpu_count" in meta["host"] else meta["host"]
    assert "locust" in meta["versions"]
    from contract.runfolder import sha256_file

    assert meta["files"]["metrics.csv"] == sha256_file(run_dir / "metrics.csv")
    events = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["fault_inject", "fault_clear"]
    assert events[0]["http_status"] == 201


def test_sigint_keeps_complete_rows_and_leaves_no_process(tmp_path):
    proc = lab("run-scenario", "smoke", "--out", str(tmp_path), "--quiet")
    run_dir = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
        if dirs and (dirs[0] / "metrics.csv").exists():
            run_dir = dirs[0]
            if len((run_dir / "metrics.csv").read_text().splitlines()) >= 5:
                break
        time.sleep(0.2)
    assert run_dir is not None
    children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert len(children) >= 3   # target, Locust, collector (and their workers)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted"
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert len(frame) >= 4 and meta["rows"] == len(frame)
    assert frame["elapsed_s"].tolist() == list(range(len(frame)))
    assert frame["phase"].notna().all() and frame["target_up"].notna().all()
    time.sleep(0.5)
    assert descendants_alive(children) == []


def test_remote_host_is_refused(tmp_path):
    proc = lab("run-scenario", "smoke", "--host", "http://example.com", "--out", str(tmp_path))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "example.com" in stderr and "--allow-remote" in stderr
    assert "Traceback" not in stderr


def test_bad_scenario_file_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nduration_s = 10\nbogus = 1\n[[stages]]\nname="a"\nuntil_s=10\nusers=1\nspawn_rate=1\n')
    proc = lab("run-scenario", str(bad), "--out", str(tmp_path / "runs"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "bad.toml" in stderr and "bogus" in stderr
    assert "Traceback" not in stderr


def test_target_death_mid_run_gives_target_down_rows_and_a_warning(tmp_path):
    proc = lab("run-scenario", "smoke", "--out", str(tmp_path), "--quiet")
    try:
        master = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and master is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if "gunicorn" in " ".join(child.cmdline()) and child.parent().pid == proc.pid:
                        master = child
                except psutil.Error:
                    continue
            time.sleep(0.2)
        assert master is not None
        # Let a few seconds be recorded, then kill the whole target abruptly.
        run_dir = None
        while time.monotonic() < deadline:
            dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
            if dirs and (dirs[0] / "metrics.csv").exists() and \
                    len((dirs[0] / "metrics.csv").read_text().splitlines()) >= 6:
                run_dir = dirs[0]
                break
            time.sleep(0.2)
        workers = master.children()
        for p in [master] + workers:
            p.kill()
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert frame["elapsed_s"].tolist() == list(range(20))
    down = frame[frame["target_up"] == 0]
    assert len(down) >= 8
    assert down["srv_rps"].isna().all()          # never the previous value carried forward
    # after the second it died in, every request fails (connection refused)
    assert down["error_rate"].iloc[1:].dropna().eq(1.0).all()
    meta = json.loads((run_dir / "run.json").read_text())
    assert any(w.startswith("target_died") for w in meta["warnings"])
    assert any(w.startswith("target_down") for w in meta["warnings"])


BUSY = """
name = "busy"
description = "fast requests from enough users that every second completes many"
duration_s = 20
seed = 3

[slo]
latency_p95_ms = 2000
error_rate = 0.02

[load]
wait_min_s = 0.1
wait_max_s = 0.3

[load.mix]
browse = 3
product = 3
search = 1

[[stages]]
name = "low"
until_s = 10
users = 8
spawn_rate = 8

[[stages]]
name = "high"
until_s = 20
users = 12
spawn_rate = 12
"""


def test_train_evaluate_report_on_a_generated_run(tmp_path):
    """The modelling commands end to end on a real recorded run (tiny settings, split in time).

    The smoke run's 3 users leave some seconds without a completed request, and one such
    second at the start of the held-out quarter leaves it no complete window: this run's
    8-12 users with fast requests complete dozens in every second.
    """
    scenario = tmp_path / "busy.toml"
    scenario.write_text(BUSY)
    proc = lab("run-scenario", str(scenario), "--out", str(tmp_path / "runs"), "--quiet")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    run_dir = only_run(tmp_path / "runs")
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert frame["rps"].iloc[1:].gt(0).all(), frame["rps"].tolist()   # what the split below relies on
    model = tmp_path / "model"
    train = subprocess.run([sys.executable, str(ROOT / "lab.py"), "train", str(run_dir), "--out", str(model),
                            "--preset", "tiny", "--window", "3", "--horizon", "2", "--quiet"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert (model / "forecaster" / "model.keras").exists() and (model / "regimes.json").exists()
    assert json.loads((model / "train.json").read_text())["split"].startswith("chronological")
    evaluate = subprocess.run([sys.executable, str(ROOT / "lab.py"), "evaluate", str(model)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr
    metrics = json.loads((model / "metrics.json").read_text())
    assert set(metrics["summary"]) >= {"lstm", "persistence", "ewma", "linear"}
    assert "MASE" in evaluate.stdout and metrics["verdict"]
    report = subprocess.run([sys.executable, str(ROOT / "lab.py"), "report", str(model), "--out",
                             str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report" / "report.html").read_text()
    pngs = list((tmp_path / "report").glob("*.png"))
    assert pngs and all(p.name in html for p in pngs)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only: skipped where mount is refused), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


class _Filler(threading.Thread):
    """Keep a file system full: take every page that comes free (Locust rewrites its stats files)."""

    def __init__(self, disk: Path):
        super().__init__(daemon=True)
        self.path, self.stop = disk / "filler", threading.Event()
        self.full = threading.Event()

    def run(self):
        with open(self.path, "wb", buffering=0) as fh:
            while not self.stop.is_set():
                try:
                    fh.write(b"\0" * 4096)
                except OSError:
                    self.full.set()
                    time.sleep(0.01)
        self.path.unlink()


def test_a_full_disk_keeps_the_rows_and_marks_the_run_failed_with_the_reason(small_disk):
    # tmpfs hands out whole pages: the rows go on into the page metrics.csv holds, so the
    # run is long enough for the collector to need a new one.
    proc = lab("run-scenario", "smoke", "--duration", "40", "--out", str(small_disk), "--quiet")
    try:
        deadline = time.monotonic() + 60
        run_dir = None
        while time.monotonic() < deadline:
            dirs = [p for p in small_disk.iterdir() if p.is_dir()]
            if dirs and (dirs[0] / "metrics.csv").exists() and \
                    (dirs[0] / "metrics.csv").read_text().count("\n") >= 4:
                run_dir = dirs[0]
                break
            time.sleep(0.1)
        assert run_dir is not None
        collector = next(c for c in psutil.Process(proc.pid).children(recursive=True)
                         if "collector" in " ".join(c.cmdline()[1:3]))
        filler = _Filler(small_disk)
        filler.start()                             # the disk is full from now on
        assert filler.full.wait(10)
        collector.wait(30)                         # the collector stops when a row finds no room
        filler.stop.set()
        filler.join(10)                            # room again for run.json
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    meta = json.loads((run_dir / "run.json").read_text())
    text = (run_dir / "metrics.csv").read_text()
    rows = text.count("\n") - 1
    assert meta["status"] == "failed" and 3 <= rows < 40 and meta["rows"] == rows, meta["warnings"]
    assert meta["failure"].startswith("write failed: [Errno 28] No space left on device: ")
    assert meta["failure"].endswith("metrics.csv")
    assert f"run failed: {meta['failure']}; kept {rows} complete rows" in stderr
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert text.endswith("\n") and frame["elapsed_s"].tolist() == list(range(rows))
