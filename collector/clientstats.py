"""Client-side view of a second: tail Locust's raw per-request samples and bin them by second.

Figures come from every request completed in the second, not from Locust's sliding
window, so a row describes exactly its own second; the `*_window` figures pool every
request completed in the trailing SLO window (seconds t-window+1 .. t), which is what the
SLO rule reads (docs/contract.md, "Labels and the SLO rule").
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_HEADERS = ("ts,response_time_ms,ok,name", "ts,response_time_ms,ok,name,service_ms,intended_ts")
CLIENT_KEYS = ("rps", "failures", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
WINDOW_KEYS = ("latency_p95_window_ms", "latency_p99_window_ms", "error_rate_window", "window_requests")


@dataclass(frozen=True, slots=True)
class Sample:
    """One completed request: completion time (epoch s), response time (ms), success, name."""

    ts: float
    response_time_ms: float
    ok: bool
    name: str


def parse_sample(line: str) -> Sample | None:
    """Parse one sample line; None when it is malformed.

    Two layouts: `ts,response_time_ms,ok,name` (older runs; the name is the last field,
    so a comma inside it stays part of the name) and
    `ts,response_time_ms,ok,name,service_ms,intended_ts` (the name our endpoints use has
    no comma; the two numbers after it are kept in the raw file, not needed per second).
    """
    parts = line.split(",")
    if len(parts) >= 6 and _numbers(parts[-2:]):
        parts = [parts[0], parts[1], parts[2], ",".join(parts[3:-2])]
    else:
        parts = line.split(",", 3)
    if len(parts) != 4 or parts[2] not in ("0", "1"):
        return None
    try:
        ts, rt = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (math.isfinite(ts) and math.isfinite(rt)) or rt < 0:
        return None
    return Sample(ts, rt, parts[2] == "1", parts[3])


def _numbers(fields: list[str]) -> bool:
    try:
        return all(math.isfinite(float(f)) for f in fields)
    except ValueError:
        return False


class SampleTailer:
    """Read what Locust processes appended to their sample files since the last call.

    Each file keeps its byte offset; only complete lines are consumed, so a line
    being written stays for the next call. Header lines are skipped and malformed
    lines counted in `malformed`.
    """

    def __init__(self, folder: Path, pattern: str = "samples-*.csv"):
        self.folder = Path(folder)
        self.pattern = pattern
        self.malformed = 0
        self._offsets: dict[Path, int] = {}

    def read_new(self) -> list[Sample]:
        """Return the samples completed in every file since the previous call."""
        samples: list[Sample] = []
        for path in sorted(self.folder.glob(self.pattern)):
            samples.extend(self._read(path))
        return samples

    def _read(self, path: Path) -> Iterator[Sample]:
        offset = self._offsets.get(path, 0)
        try:
            with open(path, "rb") as fh:
                if fh.seek(0, 2) < offset:
                    offset = 0  # truncated or replaced: its content is new
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            return iter(())
        end = chunk.rfind(b"\n") + 1
        self._offsets[path] = offset + end
        return self._parse(chunk[:end].decode("utf-8", errors="replace").split("\n"))

    def _parse(self, lines: Iterable[str]) -> Iterator[Sample]:
        for line in lines:
            line = line.rstrip("\r")
            if not line or line in SAMPLE_HEADERS:
                continue
            sample = parse_sample(line)
            if sample is None:
                self.malformed += 1
            else:
                yield sample


def client_stats(latencies_ms: np.ndarray, ok: np.ndarray) -> dict[str, float | int | None]:
    """Compute rps, failures, error rate and latency percentiles of one second's requests."""
    latencies_ms = np.asarray(latencies_ms, dtype=float)
    n = latencies_ms.size
    failures = int(n - np.count_nonzero(ok))
    if n == 0:
        return {"rps": 0.0, "failures": 0, "error_rate": None,
                "latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None}
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99], method="linear")
    return {"rps": float(n), "failures": failures, "error_rate": failures / n,
            "latency_p50_ms": float(p50), "latency_p95_ms": float(p95), "latency_p99_ms": float(p99)}


def window_stats(latencies_ms: np.ndarray, ok: np.ndarray) -> dict[str, float | int | None]:
    """Pooled p95, p99 and error rate of the requests of a whole window (None when it has none)."""
    latencies_ms = np.asarray(latencies_ms, dtype=float)
    n = latencies_ms.size
    if n == 0:
        return {"latency_p95_window_ms": None, "latency_p99_window_ms": None,
                "error_rate_window": None, "window_requests": 0}
    p95, p99 = np.percentile(latencies_ms, [95, 99], method="linear")
    return {"latency_p95_window_ms": float(p95), "latency_p99_window_ms": float(p99),
            "error_rate_window": float(n - np.count_nonzero(ok)) / n, "window_requests": int(n)}


class TrailingWindow:
    """The requests of the trailing `window_s` seconds (the newest one included), pooled.

    Seconds come in order; a second more than `window_s - 1` before the newest leaves the
    window, so a second with no requests still moves it on.
    """

    def __init__(self, window_s: int):
        if window_s < 1:
            raise ValueError(f"window_s must be at least 1, got {window_s}")
        self.window_s = int(window_s)
        self._recent: deque[tuple[int, np.ndarray, np.ndarray]] = deque()

    def add(self, second: int, latencies_ms: np.ndarray, ok: np.ndarray) -> dict[str, float | int | None]:
        """File one second's requests; return the pooled figures of the window ending at it (`window_stats`)."""
        self._recent.append((second, latencies_ms, ok))
        while self._recent and self._recent[0][0] <= second - self.window_s:
            self._recent.popleft()
        return window_stats(np.concatenate([r[1] for r in self._recent]),
                            np.concatenate([r[2] for r in self._recent]))


def endpoint_stats(latencies_ms: np.ndarray, ok: np.ndarray, names: np.ndarray) -> dict[str, dict]:
    """Compute count, failures, p50 and p95 (ms) per request name."""
    latencies_ms, ok, names = np.asarray(latencies_ms, dtype=float), np.asarray(ok, bool), np.asarray(names)
    stats = {}
    for name in np.unique(names):
        mask = names == name
        lat = latencies_ms[mask]
        p50, p95 = np.percentile(lat, [50, 95], method="linear")
        stats[str(name)] = {"count": int(lat.size), "failures": int(lat.size - np.count_nonzero(ok[mask])),
                            "p50": float(p50), "p95": float(p95)}
    return stats


@dataclass(frozen=True)
class ClientSecond(Mapping):
    """Client-side figures of one second; reads as a mapping of the row's client columns."""

    rps: float
    failures: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_p95_window_ms: float | None = None
    latency_p99_window_ms: float | None = None
    error_rate_window: float | None = None
    window_requests: int = 0
    by_name: dict[str, dict] = field(default_factory=dict)

    # A mapping over the columns only, so `row.update(second)` adds flat CSV cells.
    def __getitem__(self, key: str):
        if key not in CLIENT_KEYS + WINDOW_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(CLIENT_KEYS + WINDOW_KEYS)

    def __len__(self) -> int:
        return len(CLIENT_KEYS) + len(WINDOW_KEYS)


class SecondBinner:
    """Group samples into whole seconds since `t0` and hand each second out once.

    A sample belongs to second floor(ts - t0). Samples for a second already popped are
    counted in `late`, samples before t0 in `early`; both are dropped. Each popped second
    also carries the pooled figures of the trailing `window_s` seconds (itself included).
    """

    def __init__(self, t0: float, window_s: int = 10):
        self._window = TrailingWindow(window_s)     # refuses a window below one second
        self.t0 = t0
        self.late = 0
        self.early = 0
        self._bins: dict[int, list[Sample]] = {}
        self._popped: set[int] = set()

    def add(self, sample: Sample) -> None:
        """File one sample under its second."""
        second = math.floor(sample.ts - self.t0)
        if second < 0:
            self.early += 1
        elif second in self._popped:
            self.late += 1
        else:
            self._bins.setdefault(second, []).append(sample)

    def extend(self, samples: Iterable[Sample]) -> None:
        """File many samples."""
        for sample in samples:
            self.add(sample)

    def pop(self, second: int) -> ClientSecond:
        """Close `second` and return its figures (zero requests when none arrived)."""
        self._popped.add(second)
        samples = self._bins.pop(second, [])
        latencies = np.fromiter((s.response_time_ms for s in samples), float, len(samples))
        ok = np.fromiter((s.ok for s in samples), bool, len(samples))
        names = np.array([s.name for s in samples], dtype=object)
        pooled = self._window.add(second, latencies, ok)
        return ClientSecond(**client_stats(latencies, ok), **pooled,
                            by_name=endpoint_stats(latencies, ok, names) if samples else {})
