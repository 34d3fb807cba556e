"""Locust side of the lab: the scenario's load (closed users or open arrivals), raw per-request samples.

Run by `lab.py run-scenario` as a subprocess, and usable on its own:

    locust -f loadtests/locustfile.py --host http://127.0.0.1:5000
    LAB_SCENARIO=ramp locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:5000

A closed scenario (stages give `users`) runs `Shopper` users, who wait for each answer and
think between requests. An open scenario (stages give `rate`) runs one `ArrivalDriver` per
Locust process: it sends its share of the seeded Poisson schedule (`loadtests.arrivals`)
whatever the answers, as k6's ramping-arrival-rate executor does, and times each request
from its scheduled (intended) send, so a stalled target shows in full.

Environment (all optional): LAB_SCENARIO (built-in name or .toml path; default the lab's
default scenario), LAB_SCENARIO_JSON (a resolved scenario written by the harness), LAB_SEED,
LAB_OUT (folder for the raw files below; nothing is written when unset),
LAB_LOCUST_PROCESSES (the Locust processes that send load, i.e. the --workers count; default
1; the open model's rate and max_in_flight are split evenly between them), LAB_DURATION_S
(scale the scenario to this many seconds, as run-scenario --duration does; cut it instead
with LAB_TRUNCATE=1, as --truncate does).

A worker on another machine (`run-scenario --expect-workers N`) is started with the same
scenario, seed and duration as the lab's run and no LAB_OUT:

    LAB_SCENARIO=spike LAB_SEED=1 LAB_LOCUST_PROCESSES=2 LAB_DURATION_S=60 \
      python -m locust -f loadtests/locustfile.py --worker --master-host LAB_HOST --master-port 5557

It tells the master its scenario, seed and process count when it connects (the master
refuses a worker that differs: `refused.txt` in LAB_OUT, and the run stops), takes t0 from
the master, and sends its sample and status lines to the master every 0.2 s, which writes
them as samples-w-<worker>.csv and status-w-<worker>.csv in its LAB_OUT for the collector.

Raw files in LAB_OUT (docs/contract.md), one pair per process that sends requests:
    samples-<pid>.csv  ts,response_time_ms,ok,name,service_ms,intended_ts
        ts: completion (epoch s); response_time_ms: from the intended send (open) or the
        actual send (closed); service_ms: from the actual send; intended_ts: the scheduled
        send (epoch s; closed: the actual send).
    status-<pid>.csv   ts,users,outstanding,dropped,sent
        every 0.2 s and once at exit: Locust's user count (open model: its drivers),
        requests sent and not yet answered, and this process's cumulative dropped
        arrivals and sent requests.
    t0                 the scenario's t=0 (epoch s), written by the shape at its first tick.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gevent
from gevent.pool import Group
from locust import FastHttpUser, LoadTestShape, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.arrivals import in_flight_share, scenario_arrivals  # noqa: E402
from contract.runfolder import REFUSED_TXT, WORKERS_JSON  # noqa: E402
from contract.scenario import DEFAULT_SCENARIO, OPEN, Scenario, load_scenario  # noqa: E402
from loadtests.shapes import shape_tick  # noqa: E402


def _load() -> Scenario:
    resolved = os.environ.get("LAB_SCENARIO_JSON")
    if resolved:
        return Scenario.from_dict(json.loads(Path(resolved).read_text()))
    scenario = load_scenario(os.environ.get("LAB_SCENARIO", DEFAULT_SCENARIO))
    if os.environ.get("LAB_SEED"):
        scenario = scenario.with_seed(int(os.environ["LAB_SEED"]))
    if os.environ.get("LAB_DURATION_S"):
        seconds = int(os.environ["LAB_DURATION_S"])
        scenario = scenario.truncated(seconds) if os.environ.get("LAB_TRUNCATE") == "1" else scenario.scaled(seconds)
    return scenario


SCENARIO = _load()
SEED = int(os.environ.get("LAB_SEED", SCENARIO.seed if SCENARIO.seed is not None else 0))
OUT = Path(os.environ["LAB_OUT"]) if os.environ.get("LAB_OUT") else None
PROCESSES = max(1, int(os.environ.get("LAB_LOCUST_PROCESSES", "1")))
IS_OPEN = SCENARIO.load_model == OPEN
WORDS = ("red", "blue", "smart", "eco", "pro", "mini", "steel", "quiet", "soft", "classic")
FLUSH_EVERY_S = 0.2
T0_WAIT_S = 10.0

SAMPLES_HEADER = "ts,response_time_ms,ok,name,service_ms,intended_ts"
STATUS_HEADER = "ts,users,outstanding,dropped,sent"

log = logging.getLogger("lab.locustfile")


class Counts:
    """This process's requests: outstanding (sent, not answered), sent and dropped (cumulative)."""

    outstanding = 0
    sent = 0
    dropped = 0


class SampleLog:
    """Append one line per request and a status line per tick to this process's files."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        self.samples = open(folder / f"samples-{pid}.csv", "a", buffering=1 << 16)
        self.status = open(folder / f"status-{pid}.csv", "a", buffering=1 << 12)
        if self.samples.tell() == 0:
            self.samples.write(SAMPLES_HEADER + "\n")
        if self.status.tell() == 0:
            self.status.write(STATUS_HEADER + "\n")

    def request(self, done: float, response_ms: float, ok: bool, name: str, service_ms: float,
                intended: float) -> None:
        self.samples.write(f"{done:.4f},{response_ms:.2f},{int(ok)},{name},{service_ms:.2f},"
                           f"{intended:.6f}\n")

    def tick(self, users: int) -> None:
        self.status.write(f"{time.time():.4f},{users},{Counts.outstanding},{Counts.dropped},"
                          f"{Counts.sent}\n")
        self.samples.flush()
        self.status.flush()

    def close(self) -> None:
        for fh in (self.samples, self.status):
            try:
                fh.flush()
                fh.close()
            except ValueError:
                pass


class ForwardLog(SampleLog):
    """A worker without LAB_OUT (on another machine): lines go to the master, 5 times a second."""

    def __init__(self, runner):
        self.runner = runner
        self.samples_lines: list[str] = []
        self.status_lines: list[str] = []

    def request(self, done: float, response_ms: float, ok: bool, name: str, service_ms: float,
                intended: float) -> None:
        self.samples_lines.append(f"{done:.4f},{response_ms:.2f},{int(ok)},{name},{service_ms:.2f},"
                                  f"{intended:.4f}")

    def tick(self, users: int) -> None:
        self.status_lines.append(f"{time.time():.4f},{users},{Counts.outstanding},{Counts.dropped},"
                                 f"{Counts.sent}")
        samples, self.samples_lines = self.samples_lines, []
        status, self.status_lines = self.status_lines, []
        self.runner.send_message("lab_lines", {"samples": samples, "status": status})

    def close(self) -> None:
        if self.samples_lines or self.status_lines:
            self.tick(self.runner.user_count)


def fingerprint() -> dict:
    """What a worker and the master must share: the scenario (seed and length included) and N."""
    text = json.dumps(SCENARIO.to_dict(), sort_keys=True)
    return {"scenario": SCENARIO.name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "seed": SEED, "duration_s": SCENARIO.duration_s, "processes": PROCESSES,
            "hostname": socket.gethostname()}


class MasterSide:
    """The master's half of external workers: check each one, write the lines it sends."""

    def __init__(self, environment):
        self.environment = environment
        self.mine = fingerprint()
        self.files: dict[tuple[str, str], object] = {}
        self.workers: dict[str, dict] = {}

    def hello(self, environment, msg, **_kwargs) -> None:
        theirs = dict(msg.data)
        self.workers[msg.node_id] = theirs
        different = [f"{k} {theirs.get(k)!r} (the run's: {self.mine[k]!r})"
                     for k in ("scenario", "seed", "duration_s", "processes") if theirs.get(k) != self.mine[k]]
        if not different and theirs.get("sha256") != self.mine["sha256"]:
            different = ["scenario definition (another .toml or lab version)"]
        if OUT is not None:
            _atomic_text(OUT / WORKERS_JSON, json.dumps(self.workers, indent=2) + "\n")
        if different:
            reason = (f"Locust worker {msg.node_id} refused: {', '.join(different)}; start it with "
                      f"LAB_SCENARIO={self.mine['scenario']} LAB_SEED={self.mine['seed']} LAB_DURATION_S={self.mine['duration_s']} LAB_LOCUST_PROCESSES={self.mine['processes']}")
            log.error(reason)
            if OUT is not None:
                _atomic_text(OUT / REFUSED_TXT, reason + "\n")
            gevent.spawn_later(0.1, environment.runner.quit)

    def lines(self, environment, msg, **_kwargs) -> None:
        if OUT is None:
            return
        worker = "w-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(msg.node_id))
        for kind, header in (("samples", SAMPLES_HEADER), ("status", STATUS_HEADER)):
            rows = msg.data.get(kind) or []
            if not rows:
                continue
            fh = self.files.get((worker, kind))
            if fh is None:
                fh = self.files[(worker, kind)] = open(OUT / f"{kind}-{worker}.csv", "a", buffering=1 << 16)
                if fh.tell() == 0:
                    fh.write(header + "\n")
            fh.write("\n".join(rows) + "\n")
            fh.flush()

    def send_t0(self, t0: float) -> None:
        self.environment.runner.send_message("lab_t0", {"t0": t0})


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


_log: SampleLog | None = None
_master: MasterSide | None = None
_remote_t0: list[float] = []
_user_counter = 0


@events.init.add_listener
def _on_init(environment, **_kwargs):
    global _log, _master
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        # The master sends no requests; it checks and relays external workers.
        _master = MasterSide(environment)
        runner.register_message("lab_hello", _master.hello)
        runner.register_message("lab_lines", _master.lines)
        return
    if isinstance(runner, WorkerRunner):
        runner.register_message("lab_t0", lambda environment, msg, **_k: _remote_t0.append(float(msg.data["t0"])))
        runner.send_message("lab_hello", fingerprint())
        if OUT is None:
            _log = ForwardLog(runner)
    if OUT is None and _log is None:
        return
    _log = _log or SampleLog(OUT)

    def flusher():
        while True:
            runner = environment.runner
            _log.tick(runner.user_count if runner is not None else 0)
            gevent.sleep(FLUSH_EVERY_S)

    gevent.spawn(flusher)


@events.request.add_listener
def _on_request(name, response_time, exception, start_time=None, context=None, **_kwargs):
    if _log is None:
        return
    done = time.time()
    service_ms = response_time or 0.0
    intended = (context or {}).get("intended_ts")
    if intended is None:
        # Closed model: the user sent when it was ready, so the intended send is the actual one.
        sent = start_time if start_time is not None else done - service_ms / 1000.0
        _log.request(done, service_ms, exception is None, name, service_ms, sent)
    else:
        _log.request(done, (done - intended) * 1000.0, exception is None, name, service_ms, intended)


@events.quitting.add_listener
def _on_quit(environment=None, **_kwargs):
    if _log is not None:
        # A last status line: the final counts, after the stopped users' requests ended.
        runner = environment.runner if environment is not None else None
        _log.tick(runner.user_count if runner is not None else 0)
        _log.close()


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    name: str
    body: dict | None = None


def make_request(kind: str, rng: random.Random) -> Request:
    """Return the request of task `kind` (a key of the scenario's mix), its details drawn from `rng`."""
    if kind == "browse":
        return Request("GET", f"/products?offset={rng.randrange(0, 480)}&limit=20", "/products")
    if kind == "product":
        return Request("GET", f"/products/{rng.randint(1, 500)}", "/products/[id]")
    if kind == "search":
        return Request("GET", f"/products/search?q={rng.choice(WORDS)}", "/products/search")
    if kind == "checkout":
        items = [{"id": rng.randint(1, 500), "qty": rng.randint(1, 3)}
                 for _ in range(rng.randint(1, 4))]
        return Request("POST", "/checkout", "/checkout", {"items": items})
    if kind == "stress":
        return Request("GET", "/stress", "/stress")
    raise ValueError(f"unknown task {kind!r}")


def send(client, request: Request, intended: float | None = None) -> None:
    """Send one request stamped with X-Request-Start; outstanding from the send to the answer."""
    Counts.outstanding += 1
    Counts.sent += 1
    try:
        # The queue-time convention: when the request left the client, in epoch microseconds.
        headers = {"X-Request-Start": f"t={int(time.time() * 1_000_000)}"}
        context = {} if intended is None else {"intended_ts": intended}
        client.request(request.method, request.path, name=request.name, json=request.body,
                       headers=headers, context=context)
    finally:
        Counts.outstanding -= 1


# ---------------------------------------------------------------- closed model


class Shopper(FastHttpUser):
    """A visitor who browses, looks at products, searches, sometimes buys, sometimes stresses."""

    abstract = IS_OPEN   # the open model's drivers send the traffic mix instead

    def __init__(self, environment):
        super().__init__(environment)
        global _user_counter
        _user_counter += 1
        runner = environment.runner
        worker = getattr(runner, "worker_index", 0) if runner is not None else 0
        # Per-user randomness drawn from the run's seed: same seed, same choices per user.
        self.rng = random.Random(f"{SEED}:{worker}:{_user_counter}")

    def wait_time(self):
        load = SCENARIO.load
        return self.rng.uniform(load.wait_min_s, load.wait_max_s)

    def _send(self, kind: str) -> None:
        send(self.client, make_request(kind, self.rng))

    @task(SCENARIO.load.mix.get("browse", 0))
    def browse(self):
        self._send("browse")

    @task(SCENARIO.load.mix.get("product", 0))
    def product(self):
        self._send("product")

    @task(SCENARIO.load.mix.get("search", 0))
    def search(self):
        self._send("search")

    @task(SCENARIO.load.mix.get("checkout", 0))
    def checkout(self):
        self._send("checkout")

    @task(SCENARIO.load.mix.get("stress", 0))
    def stress(self):
        self._send("stress")


# ---------------------------------------------------------------- open model


def process_slot(runner) -> tuple[int, int]:
    """Return (k, N): this process is load generator k of N (N from LAB_LOCUST_PROCESSES)."""
    index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
    if index >= PROCESSES:
        # Started without LAB_LOCUST_PROCESSES (or with a wrong one): the shape runs
        # PROCESSES drivers, and a driver on a higher-numbered worker takes a whole slot.
        log.warning("worker index %d but LAB_LOCUST_PROCESSES=%d; using slot %d",
                    index, PROCESSES, index % PROCESSES)
    return index % PROCESSES, PROCESSES


def scenario_t0(environment) -> float:
    """Return the scenario's t=0: the local shape's, the t0 file the master's shape wrote, or now."""
    shape = environment.shape_class
    if isinstance(shape, ScenarioShape) and shape.t0 is not None:
        return shape.t0
    if OUT is None and isinstance(environment.runner, WorkerRunner):
        deadline = time.monotonic() + T0_WAIT_S     # a worker elsewhere: the master sends t0
        while not _remote_t0 and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if _remote_t0:
            return _remote_t0[-1]
    if OUT is not None:
        path, deadline = OUT / "t0", time.monotonic() + T0_WAIT_S
        while time.monotonic() < deadline:
            try:
                text = path.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                return float(text)
            gevent.sleep(0.05)
        log.warning("no t0 file in %s after %g s; arrivals start from now", OUT, T0_WAIT_S)
    return time.time()


class ArrivalDriver(FastHttpUser):
    """The open model's one user per process: sends this process's scheduled arrivals.

    At each arrival it draws a request from the traffic mix (seeded) and sends it in a
    greenlet of its own, so a slow answer never delays the next arrival. An arrival that
    finds this process's share of max_in_flight outstanding is dropped and counted.
    """

    abstract = not IS_OPEN
    wait_time = constant(0)   # one task that runs the whole schedule

    def __init__(self, environment):
        self.slot, self.processes = process_slot(environment.runner)
        self.limit = in_flight_share(SCENARIO.load.max_in_flight, self.slot, self.processes)
        # As many connections as may be in flight: a request never waits for one client-side.
        self.concurrency = self.limit
        super().__init__(environment)
        self.rng = random.Random(f"{SEED}:open:{self.processes}:{self.slot}")
        self.kinds = [k for k, w in SCENARIO.load.mix.items() if w > 0]
        self.weights = [SCENARIO.load.mix[k] for k in self.kinds]
        self.pending = Group()

    @task
    def drive(self):
        t0 = scenario_t0(self.environment)
        for at in scenario_arrivals(SCENARIO, SEED, self.slot, self.processes):
            intended = t0 + float(at)
            # sleep(0) when late still lets the request greenlets run.
            gevent.sleep(max(0.0, intended - time.time()))
            # Drawn for every arrival, sent or dropped: the same seed gives the same requests.
            request = make_request(self.rng.choices(self.kinds, self.weights)[0], self.rng)
            # len(pending) also counts requests spawned but not yet sent.
            if len(self.pending) >= self.limit:
                Counts.dropped += 1
                continue
            self.pending.spawn(send, self.client, request, intended)
        while True:   # the schedule is spent; the shape ends the run at duration_s
            gevent.sleep(1.0)

    def on_stop(self):
        self.pending.kill(block=False)


class ScenarioShape(LoadTestShape):
    """Follow the scenario's plan on a wall clock that starts at the first tick."""

    def __init__(self):
        super().__init__()
        self.t0: float | None = None

    def tick(self):
        if self.t0 is None:
            self.t0 = time.time()
            if OUT is not None:
                OUT.mkdir(parents=True, exist_ok=True)
                tmp = OUT / "t0.tmp"
                tmp.write_text(f"{self.t0:.6f}\n")
                os.replace(tmp, OUT / "t0")
            if _master is not None:
                _master.send_t0(self.t0)
        return shape_tick(SCENARIO, time.time() - self.t0, PROCESSES)
