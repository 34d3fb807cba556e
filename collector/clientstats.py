"""Client-side view of a second: tail Locust's raw per-request samples and bin them by second.

Figures come from every request completed in the second, not from Locust's sliding
window, so a row describes exactly its own second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_HEADER = "ts,response_time_ms,ok,name"
CLIENT_KEYS = ("rps", "failures", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")


@dataclass(frozen=True, slots=True)
class Sample:
    """One completed request: completion time (epoch s), response time (ms), success, name."""

    ts: float
    response_time_ms: float
    ok: bool
    name: str


def parse_sample(line: str) -> Sample | None:
    """Parse one `ts,response_time_ms,ok,name` line; None when it is malformed."""
    # The name is the last field, so a comma inside it stays part of the name.
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
            if not line or line == SAMPLE_HEADER:
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
    by_name: dict[str, dict] = field(default_factory=dict)

    # A mapping over the columns only, so `row.update(second)` adds flat CSV cells.
    def __getitem__(self, key: str):
        if key not in CLIENT_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(CLIENT_KEYS)

    def __len__(self) -> int:
        return len(CLIENT_KEYS)


class SecondBinner:
    """Group samples into whole seconds since `t0` and hand each second out once.

    A sample belongs to second floor(ts - t0). Samples for a second already popped are
    counted in `late`, samples before t0 in `early`; both are dropped.
    """

    def __init__(self, t0: float):
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
        return ClientSecond(**client_stats(latencies, ok),
                            by_name=endpoint_stats(latencies, ok, names) if samples else {})
