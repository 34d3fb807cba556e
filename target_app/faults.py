"""Run-time fault injection shared by every worker process of the target.

The active faults live in one small JSON file (the source of truth, written
atomically by whichever worker received the admin request). Every worker runs
a watcher thread that re-reads it on change, applies CPU and memory faults to
its own process, and lets timed faults expire; request handlers read the
watcher's cached copy, so the per-request cost is a dict lookup.

The threads fault makes request threads that never return: over the fault's
duration the number of stuck threads per worker grows to intensity x threads
(a request arriving while fewer are stuck becomes one), so capacity shrinks
until, at intensity 1, the pool is exhausted. They are released when the fault
clears or is deleted, and when the worker shuts down.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .incidents import POOL_EXHAUSTED, IncidentLog

KINDS = ("latency", "errors", "cpu", "memory", "threads")

# What intensity 1.0 means, per kind (documented in /admin/faults and README).
MAX_ADDED_LATENCY_S = 2.0          # latency: added delay per request
MEMORY_RATE_MB_S = 10.0            # memory: leak rate per worker process
MEMORY_CAP_MB = 1024.0             # memory: never leak more than this per worker, unless
                                   # max_worker_rss_mb is higher: then up to it (a kill ends it)
CPU_PERIOD_S = 0.02                # cpu: duty-cycle period of the burner thread
# threads: every request thread of a worker stuck by the end of the duration (stuck_target)


class FaultSpecError(ValueError):
    """A fault request that cannot be applied (answered with 400)."""


@dataclass(frozen=True)
class Fault:
    kind: str
    intensity: float
    started_at: float               # epoch seconds
    expires_at: float | None = None  # epoch seconds, None = until cleared

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def parse_fault(body: object, now: float | None = None) -> Fault:
    """Validate an admin request body into a Fault or raise FaultSpecError."""
    if not isinstance(body, dict):
        raise FaultSpecError("body must be a JSON object with kind, intensity and optional duration_s")
    unknown = set(body) - {"kind", "intensity", "duration_s"}
    if unknown:
        raise FaultSpecError(f"unknown field(s): {', '.join(sorted(unknown))}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    intensity = body.get("intensity", 0.5)
    if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) or not math.isfinite(intensity):
        raise FaultSpecError(f"intensity must be a number in 0..1, got {intensity!r}")
    if not 0.0 <= intensity <= 1.0:
        raise FaultSpecError(f"intensity must be in 0..1, got {intensity}")
    duration = body.get("duration_s")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration):
            raise FaultSpecError(f"duration_s must be a positive number, got {duration!r}")
        if duration <= 0:
            raise FaultSpecError(f"duration_s must be positive, got {duration}")
    if kind == "threads" and duration is None:
        # The stuck threads grow over the duration; once the pool is exhausted no thread is
        # left to answer the admin call that would clear the fault, so it must end by itself.
        raise FaultSpecError("threads: duration_s is required (an exhausted pool cannot answer the admin API)")
    now = time.time() if now is None else now
    return Fault(kind, float(intensity), now, None if duration is None else now + float(duration))


def stuck_target(fault: Fault, threads: int, now: float) -> int:
    """Stuck threads a threads fault wants in one worker at `now`: ceil(i x threads x elapsed/duration)."""
    if fault.expires_at is None or fault.expires_at <= fault.started_at:
        share = 1.0
    else:
        share = min(1.0, max(0.0, (now - fault.started_at) / (fault.expires_at - fault.started_at)))
    return min(threads, math.ceil(fault.intensity * threads * share - 1e-9))


class FaultStore:
    """The shared fault file: read, set and clear faults atomically."""

    def __init__(self, state_dir: str | os.PathLike):
        self.path = Path(state_dir) / "faults.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def read(self, now: float | None = None) -> dict[str, Fault]:
        """Return the active faults by kind (expired ones are left out)."""
        now = time.time() if now is None else now
        try:
            raw = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        faults = {}
        for kind, item in raw.items():
            if kind in KINDS:
                fault = Fault(**item)
                if fault.active(now):
                    faults[kind] = fault
        return faults

    def set(self, fault: Fault) -> dict[str, Fault]:
        with self._lock:
            faults = self.read()
            faults[fault.kind] = fault
            self._write(faults)
            return faults

    def clear(self, kind: str | None = None) -> dict[str, Fault]:
        with self._lock:
            faults = self.read()
            if kind is None:
                faults = {}
            else:
                faults.pop(kind, None)
            self._write(faults)
            return faults

    def mtime(self) -> float:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _write(self, faults: dict[str, Fault]) -> None:
        data = json.dumps({k: asdict(f) for k, f in faults.items()}).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".faults.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_engines: "weakref.WeakSet[FaultEngine]" = weakref.WeakSet()


def start_watchers() -> None:
    """Start every engine's watcher in this process now, not at its first request.

    A worker that gets no request (or a replacement booting during a fault) must still
    apply the CPU and memory faults to itself.
    """
    for engine in list(_engines):
        engine.start()


def release_stuck_threads() -> None:
    """Let every stuck thread of this process go (the worker is shutting down)."""
    for engine in list(_engines):
        engine.release()


class FaultEngine:
    """Per-process view of the shared faults, and the effects that need a thread.

    `threads` is the size of this process's request pool (the threads fault's 100%);
    `incidents` receives `pool_exhausted` when stuck threads leave it no free thread;
    `on_stuck(n)` is called whenever the number of stuck threads changes;
    `rss_limit_mb` is the master's kill limit, which a memory leak must be able to reach.
    """

    def __init__(self, store: FaultStore, poll_s: float = 0.05, threads: int = 4,
                 incidents: IncidentLog | None = None,
                 on_stuck: Callable[[int], None] | None = None,
                 rss_limit_mb: float | None = None):
        self.store = store
        self.poll_s = poll_s
        self.leak_cap_mb = max(MEMORY_CAP_MB, rss_limit_mb or 0.0)
        self.threads = max(1, int(threads))
        self.incidents = incidents
        self.on_stuck = on_stuck
        self._stuck = 0
        self._exhausted = False
        self._stuck_lock = threading.Lock()
        self._release = threading.Event()
        _engines.add(self)
        self._faults: dict[str, Fault] = {}
        self._seen_mtime = -1
        self._pid = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._leak: list[bytearray] = []
        self._leak_mb = 0.0
        self._leak_due_mb = 0.0            # growth owed but below one allocation
        self._lock = threading.Lock()

    # -- read side, used on every request
    def current(self) -> dict[str, Fault]:
        self._ensure_thread()
        now = time.time()
        return {k: f for k, f in self._faults.items() if f.active(now)}

    def intensity(self, kind: str) -> float:
        fault = self.current().get(kind)
        return fault.intensity if fault else 0.0

    def refresh(self) -> None:
        """Re-read the shared file now (after this process changed it)."""
        self._seen_mtime = self.store.mtime()
        self._faults = self.store.read()

    @property
    def leaked_mb(self) -> float:
        return self._leak_mb

    @property
    def stuck_threads(self) -> int:
        return self._stuck

    # -- the threads fault, on the request path
    def hold_if_stuck(self) -> bool:
        """Become a stuck thread if the threads fault wants more of them; return once released."""
        fault = self.current().get("threads")
        if fault is None or self._release.is_set():
            return False
        with self._stuck_lock:
            if self._stuck >= stuck_target(fault, self.threads, time.time()):
                return False
            self._stuck += 1
            stuck = self._stuck
            exhausted = stuck >= self.threads and not self._exhausted
            self._exhausted = self._exhausted or exhausted
        self._stuck_changed(stuck)
        if exhausted and self.incidents is not None:
            self.incidents.record(POOL_EXHAUSTED, f"{stuck} of {self.threads} threads stuck "
                                  f"(threads fault, intensity {fault.intensity:g})")
        try:
            while not self._release.wait(self.poll_s):
                if self.current().get("threads") != fault:   # cleared, expired or replaced
                    break
        finally:
            with self._stuck_lock:
                self._stuck -= 1
                stuck = self._stuck
                if stuck < self.threads:
                    self._exhausted = False
            self._stuck_changed(stuck)
        return True

    def release(self) -> None:
        """Release every stuck thread now and make no new ones (shutdown)."""
        self._release.set()

    def _stuck_changed(self, stuck: int) -> None:
        if self.on_stuck is not None:
            self.on_stuck(stuck)

    # -- the watcher thread, one per worker process (after fork: at worker boot or first use)
    def _ensure_thread(self) -> None:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._leak, self._leak_mb = [], 0.0
            self.refresh()
            self._thread = threading.Thread(target=self._watch, name="lab-faults", daemon=True)
            self._thread.start()
            threading.Thread(target=self._burn, name="lab-cpu-fault", daemon=True).start()

    def start(self) -> None:
        self._ensure_thread()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.poll_s):
            mtime = self.store.mtime()
            if mtime != self._seen_mtime:
                self.refresh()
            now_m = time.monotonic()
            self._apply_memory(now_m - last)
            last = now_m

    def _apply_memory(self, dt: float) -> None:
        fault = self.current().get("memory")
        if fault is None:
            self._leak_due_mb = 0.0
            if self._leak:
                # Large bytearrays are mmap-backed: freeing them returns RSS to the OS.
                self._leak.clear()
                self._leak_mb = 0.0
            return
        # Owed growth accumulates across polls: at low intensity one poll is far below 1 MB.
        self._leak_due_mb += MEMORY_RATE_MB_S * fault.intensity * dt
        grow = min(self._leak_due_mb, self.leak_cap_mb - self._leak_mb)
        if grow >= 1.0:
            n = int(grow * 1024 * 1024)
            # Fill with non-zero bytes so the pages are really resident.
            self._leak.append(bytearray(b"\x5a") * n)
            self._leak_mb += n / (1024 * 1024)
            self._leak_due_mb = 0.0

    def _burn(self) -> None:
        """Burn intensity x one core in this process, in short duty cycles."""
        while not self._stop.is_set():
            fault = self.current().get("cpu") if self._faults else None
            if fault is None or fault.intensity <= 0:
                self._stop.wait(self.poll_s)
                continue
            busy = CPU_PERIOD_S * fault.intensity
            end = time.perf_counter() + busy
            x = 0
            while time.perf_counter() < end:
                x += 1
            idle = CPU_PERIOD_S - busy
            if idle > 0:
                time.sleep(idle)
