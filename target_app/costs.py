"""The target's cost model: real CPU work and real waiting, drawn from a seeded RNG."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time


def burn_cpu(ms: float) -> int:
    """Spend about `ms` of this thread's CPU time hashing; return the rounds done."""
    if ms <= 0:
        return 0
    # thread_time counts only this thread's CPU, so contention makes it take longer
    # in wall-clock terms, as real CPU-bound work does.
    end = time.thread_time() + ms / 1000.0
    digest = b"stability-lab"
    rounds = 0
    while time.thread_time() < end:
        for _ in range(64):
            digest = hashlib.sha256(digest).digest()
        rounds += 64
    return rounds


def wait_io(ms: float) -> None:
    """Block without CPU for `ms`, like waiting on a database or a remote call."""
    if ms > 0:
        time.sleep(ms / 1000.0)


class SeededRandom:
    """One RNG per (seed, process, thread), so draws repeat for a given seed."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._local = threading.local()

    def _rng(self) -> random.Random:
        rng = getattr(self._local, "rng", None)
        pid = os.getpid()
        if rng is None or self._local.pid != pid:
            worker = int(os.environ.get("LAB_WORKER_INDEX", "0"))
            tid = threading.get_ident() % 100_003
            rng = random.Random(f"{self.seed}:{worker}:{tid}")
            self._local.rng, self._local.pid = rng, pid
        return rng

    def uniform(self, a: float, b: float) -> float:
        return self._rng().uniform(a, b)

    def random(self) -> float:
        return self._rng().random()

    def lognormal_ms(self, median_ms: float, sigma: float = 0.35) -> float:
        import math
        return self._rng().lognormvariate(math.log(median_ms), sigma)
