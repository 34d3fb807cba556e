"""The collector: one labelled row per second, on monotonic deadlines, in its own process.

At each deadline t0+k it scrapes the target's /metrics and samples psutil (that covers
second k-1), then finalises the row of second k-2, whose client-side requests have had a
full second to be flushed by Locust. On SIGTERM/SIGINT it finalises every complete second
and exits, so the CSV always ends on a whole row.

If a row cannot be written (disk full, a file system gone read-only) the collector stops:
the file is cut back to its last whole row, the reason goes to collector.json as
`stopped` ("write failed: [Errno 28] No space left on device: .../metrics.csv"), to stderr,
and as a `{"collector_stopped": reason}` line on stdout, which reaches the harness even
when no file can be written any more; the exit code is 1.

With `prometheus_url` the server-side columns come from that Prometheus server when the
row is finalised (its scrapes land later; see promserver.py), and the direct scrape's
view of the same second is kept in the `*_direct` columns appended after COLUMNS.
"""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .clientstats import SampleTailer, SecondBinner, client_stats, slo_violation
from .procstats import ProcessGroup, listener_pid
from .targetview import TargetView
from .runio import read_json, utc_iso
from .schema import COLUMNS, DIRECT_SCRAPE_COLUMNS, csv_cell

LOADGEN_SATURATED_PCT = 90.0
LOADGEN_SATURATED_S = 10
STOPPED_KEY = "collector_stopped"   # the stdout line that tells the harness why the collector stopped


class WriteFailed(Exception):
    """A row could not be written; the message is the reason recorded as `stopped`."""


def write_failure(exc: OSError, path: Path) -> str:
    """Describe a failed write in one line: 'write failed: [Errno 28] No space left on device: <path>'."""
    what = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno and exc.strerror else str(exc) or type(exc).__name__
    return f"write failed: {what}: {path}"


@dataclass
class CollectorConfig:
    out_dir: str
    duration_s: int
    scenario: dict
    target_url: str | None = None
    metrics_url: str | None = None       # default: target_url + /metrics
    target_pid: int | None = None
    locust_pids: list[int] = field(default_factory=list)
    locust_dir: str | None = None
    t0: float | None = None              # epoch seconds of the scenario's t=0
    t0_file: str | None = None           # or: wait for Locust's shape to write it
    t0_wait_s: float = 60.0
    faults_enabled: bool = True
    scrape_timeout_s: float = 0.8
    prometheus_url: str | None = None
    emit_rows: bool = True               # print each row as a JSON line on stdout
    autoscale: bool = False              # read autoscale.jsonl into the autoscale_action column

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CollectorConfig":
        return cls(**read_json(path, "collector config"))


class StatusTailer:
    """Read Locust processes' `status-<pid>.csv` (ts,users) and give the users at a time."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._offsets: dict[Path, int] = {}
        self._points: dict[Path, list[tuple[float, int]]] = {}

    def poll(self) -> None:
        for path in sorted(self.folder.glob("status-*.csv")):
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1
            self._offsets[path] = offset + end
            points = self._points.setdefault(path, [])
            for line in chunk[:end].decode(errors="replace").splitlines():
                try:
                    ts, users = line.split(",")
                    points.append((float(ts), int(users)))
                except ValueError:
                    continue   # header or torn line

    def users_before(self, t: float) -> int | None:
        """Sum over processes of the last reported user count before `t`."""
        total, seen = 0, False
        for path, points in self._points.items():
            last = None
            for ts, users in reversed(points):
                if ts < t:
                    last = users
                    break
            if last is not None:
                total += last
                seen = True
            # Keep memory bounded: old points are never asked for again.
            if len(points) > 200:
                del points[:-100]
        return total if seen else None


class Collector:
    def __init__(self, config: CollectorConfig, out=sys.stdout):
        self.config = config
        self.out = out
        self.out_dir = Path(config.out_dir)
        self.locust_dir = Path(config.locust_dir) if config.locust_dir else self.out_dir / "locust"
        from loadtests.scenario import Scenario

        self.scenario = Scenario.from_dict(config.scenario)
        self.stop_event = threading.Event()
        metrics_url = config.metrics_url or (config.target_url + "/metrics" if config.target_url else None)
        self.view = TargetView(metrics_url, config.target_pid, config.scrape_timeout_s)
        self.loadgen = ProcessGroup(config.locust_pids)
        self.tailer = SampleTailer(self.locust_dir)
        self.status = StatusTailer(self.locust_dir)
        self.binner: SecondBinner | None = None
        self.pending: dict[int, dict] = {}
        self.rows_written = 0
        self.jitter_ms: list[float] = []
        self.loadgen_hot: dict[int, int] = {}
        self.warnings: list[str] = []
        self.target_down_s = 0
        self.prometheus = None
        if config.prometheus_url:
            from .promserver import PrometheusSource

            self.prometheus = PrometheusSource(config.prometheus_url, config.target_url)
        # Prometheus runs keep the direct scrape's server-side view too, for comparison.
        self.columns = (COLUMNS + (DIRECT_SCRAPE_COLUMNS if self.prometheus else [])
                        + (["autoscale_action"] if config.autoscale else []))
        self._actions_offset = 0
        self._actions: dict[int, str] = {}
        self.stopped: str | None = None
        self._whole_bytes = 0               # metrics.csv up to its last whole row

    # ------------------------------------------------------------------ sampling
    def sample_second(self, second: int, now: float) -> None:
        """Record the server-side and process view of `second` (sampled at its end)."""
        server, process = self.view.sample(now)
        row: dict = {"target_up": server.pop("target_up")}
        if self.prometheus is not None:
            # Prometheus' own columns are read in finalise: its scrapes land later.
            row.update({k + "_direct": v for k, v in server.items()})
        else:
            row.update(server)
        if not row["target_up"]:
            self.target_down_s += 1
        row.update(process)
        total, per = self.loadgen.sample()
        row["loadgen_cpu_percent"] = total
        for pid, pct in per.items():
            self.loadgen_hot[pid] = self.loadgen_hot.get(pid, 0) + 1 if pct > LOADGEN_SATURATED_PCT else 0
            if self.loadgen_hot[pid] == LOADGEN_SATURATED_S:
                self.warnings.append(
                    f"loadgen_saturated: Locust process {pid} held more than "
                    f"{LOADGEN_SATURATED_PCT:.0f}% of a core for {LOADGEN_SATURATED_S} s "
                    f"from second {second - LOADGEN_SATURATED_S + 1}")
        self.pending[second] = row

    def finalise(self, second: int) -> dict:
        """Add the client side and the labels to a sampled second and write its row."""
        row = self.pending.pop(second, {"target_up": 0})
        start = self.t0 + second
        if self.prometheus is not None:
            # A second later than sample_second: the scrape after the second is in by now.
            row.update(self.prometheus.server_stats(start, start + 1))
        row["timestamp"] = utc_iso(start)
        row["elapsed_s"] = second
        stage = self.scenario.stage_at(second)
        fault = self.scenario.fault_at(second) if self.config.faults_enabled else None
        row["phase"] = stage.name
        row["fault"] = fault.kind if fault else "none"
        row["fault_intensity"] = fault.intensity if fault else 0.0
        row["users"] = self.status.users_before(start + 1)
        row.update(self.binner.pop(second))
        if self.config.autoscale:
            self.drain_actions()
            row["autoscale_action"] = self._actions.pop(second, "none")
        slo = self.scenario.slo
        row["slo_violation"] = slo_violation(row, slo.latency_p95_ms, slo.error_rate)
        self._write_row([csv_cell(row.get(c)) for c in self.columns])
        self.rows_written += 1
        if self.config.emit_rows:
            print(json.dumps({c: row.get(c) for c in self.columns}), file=self.out, flush=True)
        return row

    def _write_row(self, cells: list) -> None:
        """Append one row and make it durable; WriteFailed when the file system refuses."""
        try:
            self.writer.writerow(cells)
            self.csv_file.flush()
            os.fsync(self.csv_file.fileno())
        except OSError as exc:
            raise WriteFailed(write_failure(exc, self.csv_path)) from exc
        self._whole_bytes = self.csv_file.tell()

    def _close_csv(self) -> None:
        """Close metrics.csv; after a failed write, cut it back to its last whole row."""
        try:
            self.csv_file.close()
        except OSError:
            pass    # the buffered part of the failed row: it is cut off below
        if self.stopped:
            try:
                os.truncate(self.csv_path, self._whole_bytes)
            except OSError:
                pass

    def drain_actions(self) -> None:
        """Read the autoscaler's new decisions; a taken action labels the second it was taken in."""
        path = self.out_dir / "autoscale.jsonl"
        if not self.config.autoscale or not path.exists():
            return
        with open(path, "rb") as fh:
            fh.seek(self._actions_offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self._actions_offset += end
        for line in chunk[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("action") not in (None, "none") and "result_of" not in record:
                second = int(math.floor(record["ts"] - self.t0))
                label = f"{record['action']}:{record.get('amount') or 0}"
                self._actions[second] = label

    def drain_client(self) -> None:
        self.status.poll()
        for sample in self.tailer.read_new():
            self.binner.add(sample)

    # ------------------------------------------------------------------ main loop
    def wait_t0(self) -> float:
        if self.config.t0 is not None:
            return self.config.t0
        path = Path(self.config.t0_file)
        deadline = time.monotonic() + self.config.t0_wait_s
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            if path.exists():
                text = path.read_text().strip()
                if text:
                    return float(text)
            time.sleep(0.05)
        raise TimeoutError(f"load generator did not start within {self.config.t0_wait_s:g} s")

    def run(self) -> dict:
        self.t0 = self.wait_t0()
        self.binner = SecondBinner(self.t0)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / "metrics.csv"
        self.csv_file = open(self.csv_path, "w", newline="")
        self.writer = csv.writer(self.csv_file)
        # Map the wall-clock t0 onto the monotonic clock once: deadlines never drift.
        mono_t0 = time.monotonic() - (time.time() - self.t0)
        self.view.prime(time.time())
        last_sampled = -1
        interrupted = False
        try:
            self._write_row(self.columns)
            for k in range(1, self.config.duration_s + 1):
                delay = mono_t0 + k - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    interrupted = True
                    break
                self.jitter_ms.append((time.monotonic() - (mono_t0 + k)) * 1000.0)
                self.sample_second(k - 1, time.time())
                last_sampled = k - 1
                self.drain_client()
                if k - 2 >= 0:
                    self.finalise(k - 2)
                if self.stop_event.is_set():
                    interrupted = True
                    break
            # Give Locust a moment to flush the last requests, then write what is left.
            time.sleep(0.3)
            self.drain_client()
            for second in range(self.rows_written, last_sampled + 1):
                self.finalise(second)
        except WriteFailed as exc:
            self.stopped = str(exc)
            # stdout (a pipe to the harness) first: stderr is collector.log, on the same full disk.
            _say(json.dumps({STOPPED_KEY: self.stopped}), self.out)
            _say(f"collector: stopped: {self.stopped}")
        finally:
            self._close_csv()
        if self.target_down_s:
            self.warnings.append(f"target_down: /metrics did not answer in {self.target_down_s} "
                                 f"of {self.rows_written} seconds (rows with target_up=0)")
        if self.binner.late:
            self.warnings.append(f"late_samples: {self.binner.late} request samples arrived after "
                                 f"their second was written and were dropped")
        jitter = sorted(self.jitter_ms) or [0.0]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        summary = {
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "wall_s": round(time.time() - self.t0, 3),
            "t0": self.t0, "rows": self.rows_written, "interrupted": interrupted,
            "stopped": self.stopped, "warnings": self.warnings,
            "tick_jitter_ms": {"p50": _pct(jitter, 50), "p99": _pct(jitter, 99), "max": jitter[-1]},
        }
        tmp = self.out_dir / ".collector.json.tmp"
        try:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(tmp, self.out_dir / "collector.json")
        except OSError as exc:   # the disk that stopped the rows may refuse this too: stdout told why
            tmp.unlink(missing_ok=True)
            _say(f"collector: cannot write collector.json: {exc}")
        return summary


def _say(line: str, stream=None) -> None:
    """Write a line that must not itself fail the collector (its log may be on a full disk)."""
    try:
        print(line, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _pct(values: list[float], q: float) -> float:
    idx = min(len(values) - 1, max(0, int(math.ceil(q / 100 * len(values))) - 1))
    return round(values[idx], 3)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m collector CONFIG.json", file=sys.stderr)
        return 2
    config = CollectorConfig.load(argv[0])
    if config.target_pid is None and config.target_url:
        from urllib.parse import urlparse

        parsed = urlparse(config.target_url)
        if parsed.hostname in ("127.0.0.1", "localhost", "::1") and parsed.port:
            config.target_pid = listener_pid(parsed.port)
    collector = Collector(config)

    def _stop(_signum, _frame):
        collector.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        summary = collector.run()
    except TimeoutError as exc:
        print(f"collector: {exc}", file=sys.stderr)
        return 1
    if summary["stopped"]:
        return 1
    return 130 if summary["interrupted"] else 0
