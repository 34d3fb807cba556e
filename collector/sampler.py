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

from .clientstats import SampleTailer, SecondBinner, client_stats
from .procstats import ProcessGroup, listener_pid
from .targetview import TargetView
from contract.addresses import is_loopback_host
from contract.runfolder import COLLECTOR_JSON, LOCUST_DIR, METRICS_CSV, STATUS_GLOB, read_json, utc_iso
from contract.schema import COLUMNS, DIRECT_SCRAPE_COLUMNS, NO_INCIDENT, csv_cell, violates_slo
from contract.scenario import Scenario
from .promserver import PrometheusSource

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
    extra_columns: list[str] = field(default_factory=list)   # labelled through stdin (LabelInbox)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CollectorConfig":
        return cls(**read_json(path, "collector config"))


class StatusTailer:
    """Read Locust processes' `status-<pid>.csv` and answer per second of the run.

    Lines are `ts,users` (older runs) or `ts,users,outstanding,dropped,sent`, where
    `dropped` and `sent` count from the process's start. Every answer sums the processes.
    """

    FIELDS = ("users", "outstanding", "dropped", "sent")

    def __init__(self, folder: Path):
        self.folder = folder
        self._offsets: dict[Path, int] = {}
        self._points: dict[Path, list[tuple[float, tuple]]] = {}

    def poll(self) -> None:
        for path in sorted(self.folder.glob(STATUS_GLOB)):
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1
            self._offsets[path] = offset + end
            points = self._points.setdefault(path, [])
            for line in chunk[:end].decode(errors="replace").splitlines():
                parsed = _status_line(line)
                if parsed is not None:
                    points.append(parsed)

    def _last_before(self, points: list[tuple[float, tuple]], t: float) -> tuple | None:
        for ts, values in reversed(points):
            if ts < t:
                return values
        return None

    def value_before(self, field_name: str, t: float) -> int | None:
        """Sum over processes of the last reported value of `field_name` before `t`."""
        i = self.FIELDS.index(field_name)
        total, seen = 0, False
        for points in self._points.values():
            last = self._last_before(points, t)
            if last is not None and last[i] is not None:
                total += last[i]
                seen = True
        return total if seen else None

    def users_before(self, t: float) -> int | None:
        return self.value_before("users", t)

    def increase(self, field_name: str, start: float, end: float) -> int | None:
        """How much a cumulative count (`dropped`, `sent`) rose in [start, end), summed over processes."""
        at_end = self.value_before(field_name, end)
        if at_end is None:
            return None
        return at_end - (self.value_before(field_name, start) or 0)

    def trim(self, t: float) -> None:
        """Forget points older than the newest one before `t` (they are never asked for again)."""
        for points in self._points.values():
            keep = next((i for i in range(len(points) - 1, -1, -1) if points[i][0] < t), 0)
            if keep > 0:
                del points[:keep]


def _status_line(line: str) -> tuple[float, tuple] | None:
    parts = line.split(",")
    if len(parts) not in (2, 5):
        return None     # header or torn line
    try:
        ts = float(parts[0])
        values = tuple(int(float(v)) if v != "" else None for v in parts[1:])
    except ValueError:
        return None
    return ts, values + (None,) * (4 - len(values))


class LabelInbox:
    """Labels for extra columns that the harness sends on stdin while the run goes on.

    One JSON line per label: {"ts": <epoch s>, "values": {column: value}}; a value labels
    the second in which `ts` falls (an autoscaler's action labels the second it was taken
    in). Lines arrive at least a second before that second's row is finalised.
    """

    def __init__(self, columns: list[str], default: str = "none"):
        self.columns = list(columns)
        self.default = default
        self._by_second: dict[int, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.t0: float | None = None

    def read_forever(self, stream) -> None:
        for line in stream:
            try:
                record = json.loads(line)
                ts, values = float(record["ts"]), dict(record["values"])
            except (ValueError, KeyError, TypeError):
                continue
            self.put(ts, values)

    def put(self, ts: float, values: dict) -> None:
        if self.t0 is None:
            return
        second = int(math.floor(ts - self.t0))
        with self._lock:
            slot = self._by_second.setdefault(second, {})
            slot.update({k: str(v) for k, v in values.items() if k in self.columns})

    def pop(self, second: int) -> dict[str, str]:
        with self._lock:
            got = self._by_second.pop(second, {})
        return {c: got.get(c, self.default) for c in self.columns}


class Collector:
    def __init__(self, config: CollectorConfig, out=sys.stdout):
        self.config = config
        self.out = out
        self.out_dir = Path(config.out_dir)
        self.locust_dir = Path(config.locust_dir) if config.locust_dir else self.out_dir / LOCUST_DIR

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

            self.prometheus = PrometheusSource(config.prometheus_url, config.target_url)
        # Prometheus runs keep the direct scrape's server-side view too, for comparison.
        self.labels = LabelInbox(config.extra_columns)
        self.columns = (COLUMNS + (DIRECT_SCRAPE_COLUMNS if self.prometheus else [])
                        + self.labels.columns)
        self.stopped: str | None = None
        self._whole_bytes = 0               # metrics.csv up to its last whole row

    # ------------------------------------------------------------------ sampling
    def sample_second(self, second: int, now: float) -> None:
        """Record the server-side and process view of `second` (sampled at its end)."""
        server, process = self.view.sample(now)
        row: dict = {"target_up": server.pop("target_up"), "incident": server.pop("incident", None)}
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
        row["users"] = self.status.users_before(start + 1) if self.scenario.load_model == "closed" else None
        row["outstanding"] = self.status.value_before("outstanding", start + 1)
        row["dropped"] = self.status.increase("dropped", start, start + 1)
        row["arrivals"] = self.status.increase("sent", start, start + 1)
        self.status.trim(start)
        planned = self.scenario.planned(second)
        row["planned_users"], row["planned_rate"] = planned.users, planned.rate
        row.update(self.binner.pop(second))
        row.update(self.labels.pop(second))
        if row.get("incident") is None:
            row["incident"] = NO_INCIDENT
        row["slo_violation"] = violates_slo(row.get("latency_p95_window_ms"), row.get("error_rate_window"),
                                            self.scenario.slo)
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

    def start_rows(self, t0: float, header: bool = True) -> None:
        """Fix the scenario's t=0 and open metrics.csv, with its header unless told not to."""
        self.t0 = t0
        self.labels.t0 = t0
        self.binner = SecondBinner(t0, self.scenario.slo.window_s)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / METRICS_CSV
        self.csv_file = open(self.csv_path, "w", newline="")
        self.writer = csv.writer(self.csv_file)
        if header:
            self._write_row(self.columns)

    def run(self) -> dict:
        self.start_rows(self.wait_t0(), header=False)   # the header is written below, inside the guard
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
            os.replace(tmp, self.out_dir / COLLECTOR_JSON)
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
        if is_loopback_host(parsed.hostname or "") and parsed.port:
            config.target_pid = listener_pid(parsed.port)
    collector = Collector(config)
    if config.extra_columns:
        threading.Thread(target=collector.labels.read_forever, args=(sys.stdin,), daemon=True,
                         name="labels").start()

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
