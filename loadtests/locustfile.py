"""Locust side of the lab: a shopper traffic mix, the scenario's shape, raw per-request samples.

Run by `lab.py run-scenario` as a subprocess, and usable on its own:

    locust -f loadtests/locustfile.py --host http://127.0.0.1:5000
    LAB_SCENARIO=ramp locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:5000

Environment (all optional): LAB_SCENARIO (built-in name or .toml path; default the lab's
default scenario), LAB_SCENARIO_JSON (a resolved scenario written by the harness), LAB_SEED,
LAB_OUT (folder for samples-<pid>.csv, status-<pid>.csv and t0; nothing is written when unset).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from locust import FastHttpUser, LoadTestShape, events, task
from locust.runners import MasterRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contract.scenario import DEFAULT_SCENARIO, Scenario, load_scenario  # noqa: E402
from loadtests.shapes import shape_tick  # noqa: E402


def _load() -> Scenario:
    resolved = os.environ.get("LAB_SCENARIO_JSON")
    if resolved:
        return Scenario.from_dict(json.loads(Path(resolved).read_text()))
    return load_scenario(os.environ.get("LAB_SCENARIO", DEFAULT_SCENARIO))


SCENARIO = _load()
SEED = int(os.environ.get("LAB_SEED", SCENARIO.seed if SCENARIO.seed is not None else 0))
OUT = Path(os.environ["LAB_OUT"]) if os.environ.get("LAB_OUT") else None
WORDS = ("red", "blue", "smart", "eco", "pro", "mini", "steel", "quiet", "soft", "classic")
FLUSH_EVERY_S = 0.2


class SampleLog:
    """Append one line per request (completion time, ms, ok, name) to this process's file."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        self.samples = open(folder / f"samples-{pid}.csv", "a", buffering=1 << 16)
        self.status = open(folder / f"status-{pid}.csv", "a", buffering=1 << 12)
        if self.samples.tell() == 0:
            self.samples.write("ts,response_time_ms,ok,name\n")
        if self.status.tell() == 0:
            self.status.write("ts,users\n")
        self.last_flush = 0.0

    def request(self, name: str, response_time: float, ok: bool) -> None:
        self.samples.write(f"{time.time():.4f},{response_time:.2f},{int(ok)},{name}\n")

    def tick(self, users: int) -> None:
        self.status.write(f"{time.time():.4f},{users}\n")
        self.samples.flush()
        self.status.flush()

    def close(self) -> None:
        for fh in (self.samples, self.status):
            try:
                fh.flush()
                fh.close()
            except ValueError:
                pass


_log: SampleLog | None = None
_user_counter = 0


@events.init.add_listener
def _on_init(environment, **_kwargs):
    global _log
    if OUT is None or isinstance(environment.runner, MasterRunner):
        return   # the master sends no requests; workers and a local runner record them
    _log = SampleLog(OUT)

    def flusher():
        import gevent

        while True:
            runner = environment.runner
            _log.tick(runner.user_count if runner is not None else 0)
            gevent.sleep(FLUSH_EVERY_S)

    import gevent

    gevent.spawn(flusher)


@events.request.add_listener
def _on_request(name, response_time, exception, response=None, **_kwargs):
    if _log is not None:
        _log.request(name, response_time or 0.0, exception is None)


@events.quitting.add_listener
def _on_quit(**_kwargs):
    if _log is not None:
        _log.close()


class Shopper(FastHttpUser):
    """A visitor who browses, looks at products, searches, sometimes buys, sometimes stresses."""

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

    @task(SCENARIO.load.mix.get("browse", 0))
    def browse(self):
        self.client.get(f"/products?offset={self.rng.randrange(0, 480)}&limit=20",
                        name="/products")

    @task(SCENARIO.load.mix.get("product", 0))
    def product(self):
        self.client.get(f"/products/{self.rng.randint(1, 500)}", name="/products/[id]")

    @task(SCENARIO.load.mix.get("search", 0))
    def search(self):
        self.client.get(f"/products/search?q={self.rng.choice(WORDS)}", name="/products/search")

    @task(SCENARIO.load.mix.get("checkout", 0))
    def checkout(self):
        items = [{"id": self.rng.randint(1, 500), "qty": self.rng.randint(1, 3)}
                 for _ in range(self.rng.randint(1, 4))]
        self.client.post("/checkout", json={"items": items}, name="/checkout")

    @task(SCENARIO.load.mix.get("stress", 0))
    def stress(self):
        self.client.get("/stress", name="/stress")


class ScenarioShape(LoadTestShape):
    """Follow the scenario's stages on a wall clock that starts at the first tick."""

    def __init__(self):
        super().__init__()
        self._t0: float | None = None

    def tick(self):
        if self._t0 is None:
            self._t0 = time.time()
            if OUT is not None:
                OUT.mkdir(parents=True, exist_ok=True)
                tmp = OUT / "t0.tmp"
                tmp.write_text(f"{self._t0:.6f}\n")
                os.replace(tmp, OUT / "t0")
        return shape_tick(SCENARIO, time.time() - self._t0)
