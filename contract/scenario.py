"""A scenario: the load plan, scheduled faults and SLO of one run, read from a TOML file.

The format is described in docs/contract.md ("Scenario file"). Every problem in a file
raises `contract.errors.BadInput` with one line "<file>: <key>: <problem>"; keys are
written as paths with 0-based array indexes (`stages[2].until_s` is the third
`[[stages]]` table). Times are whole seconds because a run records one labelled row
per second: a stage or fault boundary inside a second would make that row's label
ambiguous.

A file uses one load model. Closed (`users` per stage): Locust users with think time, so
the offered load falls when the target slows. Open (`rate` per stage): Poisson arrivals
at a planned rate, independent of the answers, as k6's `ramping-arrival-rate` executor;
`ramp_s` ramps linearly from the previous stage's rate (0 before the first stage).
`Scenario.plan()` gives the plan of every second, which a model may read in advance.
"""

from __future__ import annotations

import bisect
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from .schema import FAULT_KINDS
from .errors import BadInput, read_text_file

DEFAULT_SCENARIO = "spike"

TASKS = ("browse", "product", "search", "checkout", "stress")
DEFAULT_MIX = {"browse": 5, "product": 4, "search": 2, "checkout": 1, "stress": 1}
# The open model's default leaves /stress out: its 0.5-2.0 s wait at 1 request in 13 puts
# the p95 of a window on the boundary between two latency modes (docs/contract.md).
DEFAULT_OPEN_MIX = {"browse": 5, "product": 4, "search": 2, "checkout": 1}

CLOSED, OPEN = "closed", "open"
DEFAULT_MAX_IN_FLIGHT = 1000
DEFAULT_WINDOW_S = 10
# Older (closed-model) files have no window_s; they keep the per-second rule they had.
CLOSED_DEFAULT_WINDOW_S = 1

# Bounds that catch typos before they reach a laptop: a week of 1 Hz rows is 600k,
# and more users than this is beyond any Locust the lab starts.
MAX_DURATION_S = 7 * 24 * 3600
MAX_USERS = 100_000
MAX_RATE = 100_000.0
MAX_IN_FLIGHT = 100_000
MAX_WINDOW_S = 3600
MAX_RSS_MB = 1024.0 * 1024.0
# The same limits as `lab serve --workers/--threads`.
MAX_WORKERS = 64
MAX_THREADS = 256

# Scenario names end up in run ids and folder names, so keep them path-safe.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_LABEL = 64

_TOP_KEYS = ("name", "description", "duration_s", "seed", "slo", "target", "load", "stages", "faults")
_REQUIRED = ("name", "duration_s", "stages")


@dataclass(frozen=True)
class Slo:
    """What counts as a violating second: limits on the requests of the trailing `window_s` s."""

    latency_p95_ms: float = 800.0
    error_rate: float = 0.02
    window_s: int = DEFAULT_WINDOW_S


@dataclass(frozen=True)
class TargetSettings:
    """Overrides for the embedded target; None keeps the target's default."""

    workers: int | None = None
    threads: int | None = None
    max_worker_rss_mb: float | None = None   # a worker above this RSS is killed and replaced


@dataclass(frozen=True)
class LoadSettings:
    """How load is sent: think time (closed), the bound on outstanding requests (open), task weights."""

    wait_min_s: float = 0.5
    wait_max_s: float = 1.5
    # Read-only by convention; left out of the hash so a Scenario stays hashable.
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX), hash=False)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT


@dataclass(frozen=True)
class Stage:
    """From the previous stage's end until `until_s`: hold `users` (closed) or `rate` (open).

    Closed: `users` is reached at `spawn_rate` users/s. Open: `rate` requests/s, reached by
    a linear ramp over the first `ramp_s` seconds from the previous stage's rate.
    """

    name: str
    until_s: int
    users: int | None = None
    spawn_rate: float | None = None
    rate: float | None = None
    ramp_s: int = 0

    @property
    def model(self) -> str:
        return CLOSED if self.users is not None else OPEN


@dataclass(frozen=True)
class Fault:
    """Inject fault `kind` at `intensity` (0..1) during [start_s, start_s + duration_s)."""

    kind: str
    start_s: int
    duration_s: int
    intensity: float

    @property
    def end_s(self) -> int:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class PlannedSecond:
    """The plan of one second [second, second + 1): what a model may know in advance.

    `users` is the closed model's stage target (None in the open model); `rate` is the open
    model's mean planned rate over the second, i.e. its expected arrivals (None when closed).
    """

    second: int
    phase: str
    users: int | None
    rate: float | None


@dataclass(frozen=True)
class Scenario:
    """One run's plan: stages that cover [0, duration_s), faults, SLO and settings."""

    name: str
    description: str
    duration_s: int
    seed: int | None
    slo: Slo
    target: TargetSettings
    load: LoadSettings
    stages: tuple[Stage, ...]
    faults: tuple[Fault, ...]
    # Where it was read from; provenance only, so two equal plans compare equal.
    source: str = field(default="", compare=False)

    # ------------------------------------------------------------ queries by time

    def stage_at(self, t: float) -> Stage:
        """Return the stage in force at elapsed time t (the last one from duration_s on)."""
        for stage in self.stages:
            if t < stage.until_s:
                return stage
        return self.stages[-1]

    def fault_at(self, t: float) -> Fault | None:
        """Return the fault active at elapsed time t, or None."""
        for fault in self.faults:
            if fault.start_s <= t < fault.end_s:
                return fault
        return None

    def users_at(self, t: float) -> int | None:
        """Return the planned user count at elapsed time t (the stage's target, not the ramp; None when open)."""
        return self.stage_at(t).users

    @property
    def load_model(self) -> str:
        """Return "open" (stages give rate) or "closed" (stages give users)."""
        return self.stages[0].model

    def rate_knots(self) -> tuple[tuple[float, float], ...]:
        """Return the planned rate as (t, requests/s) knots, linear between them (open model).

        Two knots at the same t are a step; the rate holds its last value from duration_s on.
        Empty for a closed scenario.
        """
        if self.load_model != OPEN:
            return ()
        knots: list[tuple[float, float]] = []
        start, previous = 0, 0.0
        for stage in self.stages:
            knots.append((float(start), previous if stage.ramp_s else stage.rate))
            if stage.ramp_s:
                knots.append((float(start + stage.ramp_s), stage.rate))
            knots.append((float(stage.until_s), stage.rate))
            start, previous = stage.until_s, stage.rate
        return tuple(knots)

    def rate_at(self, t: float) -> float | None:
        """Return the planned arrival rate at elapsed time t (requests/s), or None when closed."""
        knots = self.rate_knots()
        if not knots:
            return None
        t = max(0.0, t)
        for (t0, r0), (t1, r1) in zip(knots, knots[1:]):
            if t0 <= t < t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return knots[-1][1]

    def expected_arrivals(self, t_from: float, t_to: float) -> float | None:
        """Return the planned arrivals in [t_from, t_to): the integral of the rate (None when closed)."""
        knots = self.rate_knots()
        if not knots:
            return None
        arrivals = _Cumulative(knots)
        return arrivals(t_to) - arrivals(t_from)

    def planned(self, second: int) -> PlannedSecond:
        """Return the plan of second [second, second + 1); the rate is the mean over that second."""
        stage = self.stage_at(second)
        rate = self.expected_arrivals(second, second + 1)
        return PlannedSecond(second=second, phase=stage.name, users=stage.users, rate=rate)

    def plan_of(self, column: str) -> Callable[[int], float]:
        """Return second -> the plan column's value (`planned_rate` or `planned_users`), as the
        collector records it; seconds past the end take the last second's plan, NaN where the
        model has none (a rate in a closed scenario)."""
        if column not in ("planned_rate", "planned_users"):
            raise BadInput(f"plan: {column}: not a plan column (planned_rate, planned_users)")
        last = self.duration_s - 1

        def value(second: int) -> float:
            p = self.planned(min(max(int(second), 0), last))
            v = p.rate if column == "planned_rate" else p.users
            return float("nan") if v is None else float(v)

        return value

    def plan(self) -> tuple[PlannedSecond, ...]:
        """Return the plan of every second 0 .. duration_s - 1."""
        knots = self.rate_knots()
        arrivals = _Cumulative(knots) if knots else None
        plan, stages = [], iter(self.stages)
        stage = next(stages)
        for second in range(self.duration_s):
            while second >= stage.until_s:
                stage = next(stages)
            rate = arrivals(second + 1) - arrivals(second) if arrivals else None
            plan.append(PlannedSecond(second=second, phase=stage.name, users=stage.users, rate=rate))
        return tuple(plan)

    # ------------------------------------------------------------ derived scenarios

    def with_seed(self, seed: int | None) -> Scenario:
        """Return this scenario with another seed."""
        if seed is not None:
            _Reader(self.source or "<scenario>").integer(seed, "seed", minimum=0)
        return replace(self, seed=seed)

    def scaled(self, duration_s: int) -> Scenario:
        """Return this scenario stretched or squeezed to `duration_s` s; a fault with no room is dropped."""
        reader = _Reader(self.source or "<scenario>")
        new = reader.integer(duration_s, "duration_s", minimum=1, maximum=MAX_DURATION_S)
        if new < len(self.stages):
            reader.fail("duration_s", f"{new} s is too short for {len(self.stages)} stages "
                        "(each stage needs at least 1 s)")
        old = self.duration_s

        def scale(x: int) -> int:
            # Integer round-half-up: exact, so the same inputs always give the same plan.
            return (2 * x * new + old) // (2 * old)

        n = len(self.stages)
        stages, previous = [], 0
        for i, stage in enumerate(self.stages):
            # At least 1 s after the previous stage, and room for 1 s per later stage.
            until = min(max(scale(stage.until_s), previous + 1), new - (n - 1 - i))
            # The ramp is part of the stage: it scales with it, and a ramp stays a ramp.
            ramp = min(max(scale(stage.ramp_s), 1), until - previous) if stage.ramp_s else 0
            stages.append(replace(stage, until_s=until, ramp_s=ramp))
            previous = until

        faults, previous_end = [], 0
        for fault in self.faults:
            start = max(scale(fault.start_s), previous_end)
            end = max(scale(fault.end_s), start + 1)
            if end > new:
                start, end = max(previous_end, new - (end - start)), new
            if end - start < 1:
                continue  # no room left in a run this short; dropping beats overlapping
            faults.append(replace(fault, start_s=start, duration_s=end - start))
            previous_end = end
        return replace(self, duration_s=new, stages=tuple(stages), faults=tuple(faults))

    def truncated(self, duration_s: int) -> Scenario:
        """Return the first `duration_s` seconds of this scenario, cutting what runs past it."""
        reader = _Reader(self.source or "<scenario>")
        new = reader.integer(duration_s, "duration_s", minimum=1)
        if new > self.duration_s:
            reader.fail("duration_s", f"{new} s is longer than the scenario's {self.duration_s} s; "
                        "truncating only shortens (scale to lengthen)")
        stages, start, previous = [], 0, 0.0
        for stage in self.stages:
            until = min(stage.until_s, new)
            if stage.ramp_s > until - start:
                # A ramp cut short ends where the cut is, at the rate it had reached there.
                reached = previous + (stage.rate - previous) * (until - start) / stage.ramp_s
                stage = replace(stage, rate=reached, ramp_s=until - start)
            stages.append(replace(stage, until_s=until))
            if stage.until_s >= new:
                break
            start, previous = stage.until_s, stage.rate or 0.0
        faults = tuple(replace(f, duration_s=min(f.end_s, new) - f.start_s)
                       for f in self.faults if f.start_s < new)
        return replace(self, duration_s=new, stages=tuple(stages), faults=faults)

    # ------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict that `Scenario.from_dict` reads back.

        `load` and `stages` hold the keys of the scenario's own load model only, so a closed
        scenario's dict keeps the shape it always had.
        """
        if self.load_model == OPEN:
            load = {"max_in_flight": self.load.max_in_flight, "mix": dict(self.load.mix)}
            stages = [{"name": s.name, "until_s": s.until_s, "rate": s.rate, "ramp_s": s.ramp_s}
                      for s in self.stages]
        else:
            load = {"wait_min_s": self.load.wait_min_s, "wait_max_s": self.load.wait_max_s,
                    "mix": dict(self.load.mix)}
            stages = [{"name": s.name, "until_s": s.until_s, "users": s.users,
                       "spawn_rate": s.spawn_rate} for s in self.stages]
        return {
            "name": self.name,
            "description": self.description,
            "duration_s": self.duration_s,
            "seed": self.seed,
            "load_model": self.load_model,
            "slo": {"latency_p95_ms": self.slo.latency_p95_ms, "error_rate": self.slo.error_rate,
                    "window_s": self.slo.window_s},
            "target": {"workers": self.target.workers, "threads": self.target.threads,
                       "max_worker_rss_mb": self.target.max_worker_rss_mb},
            "load": load,
            "stages": stages,
            "faults": [{"kind": f.kind, "start_s": f.start_s, "duration_s": f.duration_s,
                        "intensity": f.intensity} for f in self.faults],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Validate a dict shaped like `to_dict()` (or a parsed TOML file) into a Scenario."""
        if not isinstance(data, Mapping):
            raise BadInput(f"<scenario>: expected a table of scenario keys, got {_type_name(data)}")
        data = dict(data)
        source = data.pop("source", "") or ""
        if not isinstance(source, str):
            raise BadInput(f"<scenario>: source: expected a string, got {_type_name(source)}")
        # Derived from the stages, written by to_dict for readers; checked, not trusted.
        model = data.pop("load_model", None)
        scenario = _build(data, _Reader(source or "<scenario>"), source)
        if model is not None and model != scenario.load_model:
            raise BadInput(f"{source or '<scenario>'}: load_model: {model!r} does not match the "
                           f"stages, which use the {scenario.load_model} model")
        return scenario

    def to_toml(self) -> str:
        """Return TOML text that loads back into an equal Scenario."""
        lines = [
            f"name = {_toml(self.name)}",
            f"description = {_toml(self.description)}",
            f"duration_s = {_toml(self.duration_s)}",
        ]
        if self.seed is not None:
            lines.append(f"seed = {_toml(self.seed)}")
        lines += ["", "[slo]",
                  f"latency_p95_ms = {_toml(self.slo.latency_p95_ms)}",
                  f"error_rate = {_toml(self.slo.error_rate)}",
                  f"window_s = {_toml(self.slo.window_s)}"]
        target = [(k, v) for k, v in (("workers", self.target.workers),
                                      ("threads", self.target.threads),
                                      ("max_worker_rss_mb", self.target.max_worker_rss_mb))
                  if v is not None]
        if target:
            lines += ["", "[target]"] + [f"{k} = {_toml(v)}" for k, v in target]
        open_model = self.load_model == OPEN
        lines += ["", "[load]"]
        if open_model:
            lines += [f"max_in_flight = {_toml(self.load.max_in_flight)}"]
        else:
            lines += [f"wait_min_s = {_toml(self.load.wait_min_s)}",
                      f"wait_max_s = {_toml(self.load.wait_max_s)}"]
        lines += ["", "[load.mix]"]
        lines += [f"{task} = {_toml(weight)}" for task, weight in self.load.mix.items()]
        for s in self.stages:
            lines += ["", "[[stages]]", f"name = {_toml(s.name)}", f"until_s = {_toml(s.until_s)}"]
            if open_model:
                lines += [f"rate = {_toml(s.rate)}", f"ramp_s = {_toml(s.ramp_s)}"]
            else:
                lines += [f"users = {_toml(s.users)}", f"spawn_rate = {_toml(s.spawn_rate)}"]
        for f in self.faults:
            lines += ["", "[[faults]]", f"kind = {_toml(f.kind)}", f"start_s = {_toml(f.start_s)}",
                      f"duration_s = {_toml(f.duration_s)}", f"intensity = {_toml(f.intensity)}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- loading


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse scenario TOML text; `source` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source}: invalid TOML: {exc}") from None
    return _build(data, _Reader(source), source)


def read_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario file at `path`."""
    return parse_scenario(read_text_file(path, "scenario file"), str(path))


def builtin_names() -> list[str]:
    """Return the names of the built-in scenarios, sorted."""
    return sorted(p.name[:-len(".toml")] for p in _builtin_dir().iterdir()
                  if p.name.endswith(".toml"))


def builtin_scenarios() -> list[Scenario]:
    """Return every built-in scenario, sorted by name."""
    return [load_scenario(name) for name in builtin_names()]


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path."""
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in builtin_names():
        resource = _builtin_dir() / f"{text}.toml"
        return parse_scenario(resource.read_text(encoding="utf-8"), str(resource))
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text \
            or Path(text).is_file():
        return read_scenario(text)
    raise BadInput(f"{text}: unknown scenario; built-in scenarios are "
                   f"{', '.join(builtin_names())} (or give a path to a .toml file)")


def _builtin_dir():
    return resources.files("contract") / "scenarios"


# ---------------------------------------------------------------- validation


class _Reader:
    """Type and range checks whose failures name the file and the key."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, key: str, problem: str):
        raise BadInput(f"{self.origin}: {key}: {problem}")

    def table(self, value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
              ) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(key, f"expected a table, got {_type_name(value)}")
        prefix = f"{key}." if key else ""
        for k in value:
            if k not in allowed:
                self.fail(f"{prefix}{k}", f"unknown key; expected one of {', '.join(allowed)}")
        for k in required:
            if value.get(k) is None:
                self.fail(f"{prefix}{k}", "required key is missing")
        return dict(value)

    def string(self, value: Any, key: str, *, label: bool = False) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {_type_name(value)}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            self.fail(key, f"must be one line of text without control characters, got {value!r}")
        if label:
            if not value.strip():
                self.fail(key, "must not be empty")
            if len(value) > _MAX_LABEL:
                self.fail(key, f"is {len(value)} characters long; at most {_MAX_LABEL}")
        return value

    def integer(self, value: Any, key: str, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {_type_name(value)}")
        self._range(value, key, minimum, maximum)
        return value

    def number(self, value: Any, key: str, *, minimum: float | None = None,
               maximum: float | None = None, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            self.fail(key, f"must be a finite number, got {value}")
        if positive and value <= 0:
            self.fail(key, f"must be greater than 0, got {_show(value)}")
        self._range(value, key, minimum, maximum)
        return float(value)

    def seconds(self, value: Any, key: str, *, positive: bool) -> int:
        """Check a time in whole seconds (60 and 60.0 are fine, 60.5 is not)."""
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, float) and math.isfinite(value):
            self.fail(key, f"{_show(value)} is not a whole number of seconds "
                      "(runs are labelled per second)")
        seconds = self.integer(value, key, maximum=MAX_DURATION_S)
        if seconds < 0:
            self.fail(key, f"{seconds} is negative")
        if positive and seconds == 0:
            self.fail(key, "must be at least 1 s, got 0")
        return seconds

    def _range(self, value: float, key: str, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and value < minimum:
            problem = "is negative" if minimum == 0 else f"is below the minimum {_show(minimum)}"
            self.fail(key, f"{_show(value)} {problem}")
        if maximum is not None and value > maximum:
            self.fail(key, f"{_show(value)} is above the maximum {_show(maximum)}")


def _build(data: dict[str, Any], r: _Reader, source: str) -> Scenario:
    data = r.table(data, "", _TOP_KEYS, _REQUIRED)
    name = r.string(data["name"], "name", label=True)
    if not _NAME.fullmatch(name):
        r.fail("name", f"{name!r} must be letters, digits, '.', '_' or '-' (it becomes part of "
               "run folder names)")
    description = r.string(data.get("description", ""), "description")
    duration = r.seconds(data["duration_s"], "duration_s", positive=True)
    seed = data.get("seed")
    if seed is not None:
        seed = r.integer(seed, "seed", minimum=0)
    stages = _stages(data["stages"], duration, r)
    model = stages[0].model
    slo = _slo(data.get("slo"), r, model)
    target = _target(data.get("target"), r)
    load = _load(data.get("load"), r, model)
    faults = _faults(data.get("faults"), duration, r)
    return Scenario(name=name, description=description, duration_s=duration, seed=seed, slo=slo,
                    target=target, load=load, stages=stages, faults=faults, source=source)


def _slo(value: Any, r: _Reader, model: str) -> Slo:
    default = Slo()
    window_default = DEFAULT_WINDOW_S if model == OPEN else CLOSED_DEFAULT_WINDOW_S
    if value is None:
        return replace(default, window_s=window_default)
    t = r.table(value, "slo", ("latency_p95_ms", "error_rate", "window_s"))
    latency = t.get("latency_p95_ms", default.latency_p95_ms)
    error_rate = t.get("error_rate", default.error_rate)
    window = r.seconds(t.get("window_s", window_default), "slo.window_s", positive=True)
    if window > MAX_WINDOW_S:
        r.fail("slo.window_s", f"{window} is above the maximum {MAX_WINDOW_S}")
    return Slo(latency_p95_ms=r.number(latency, "slo.latency_p95_ms", positive=True),
               error_rate=r.number(error_rate, "slo.error_rate", minimum=0, maximum=1),
               window_s=window)


def _target(value: Any, r: _Reader) -> TargetSettings:
    if value is None:
        return TargetSettings()
    t = r.table(value, "target", ("workers", "threads", "max_worker_rss_mb"))
    workers, threads, rss = t.get("workers"), t.get("threads"), t.get("max_worker_rss_mb")
    return TargetSettings(
        workers=None if workers is None else r.integer(workers, "target.workers", minimum=1,
                                                       maximum=MAX_WORKERS),
        threads=None if threads is None else r.integer(threads, "target.threads", minimum=1,
                                                       maximum=MAX_THREADS),
        max_worker_rss_mb=None if rss is None else r.number(rss, "target.max_worker_rss_mb",
                                                             positive=True, maximum=MAX_RSS_MB))


def _load(value: Any, r: _Reader, model: str) -> LoadSettings:
    default = LoadSettings() if model == CLOSED else LoadSettings(mix=dict(DEFAULT_OPEN_MIX))
    if value is None:
        return default
    t = r.table(value, "load", ("wait_min_s", "wait_max_s", "max_in_flight", "mix"))
    # A key of the other model would be silently ignored: refuse it (one file, one model).
    foreign = ("max_in_flight",) if model == CLOSED else ("wait_min_s", "wait_max_s")
    for key in foreign:
        if key in t:
            r.fail(f"load.{key}", _other_model(model))
    max_in_flight = r.integer(t.get("max_in_flight", default.max_in_flight), "load.max_in_flight",
                              minimum=1, maximum=MAX_IN_FLIGHT)
    wait_min = r.number(t.get("wait_min_s", default.wait_min_s), "load.wait_min_s", minimum=0)
    wait_max = r.number(t.get("wait_max_s", default.wait_max_s), "load.wait_max_s", minimum=0)
    if wait_max < wait_min:
        r.fail("load.wait_max_s", f"{_show(wait_max)} is below load.wait_min_s {_show(wait_min)}")
    mix = default.mix
    if t.get("mix") is not None:
        # A given mix replaces the default: the tasks it leaves out do not run.
        given = r.table(t["mix"], "load.mix", TASKS)
        mix = {task: r.integer(w, f"load.mix.{task}", minimum=0) for task, w in given.items()}
        if not any(mix.values()):
            r.fail("load.mix", "at least one task needs a weight above 0")
    return LoadSettings(wait_min_s=wait_min, wait_max_s=wait_max, mix=mix,
                        max_in_flight=max_in_flight)


def _other_model(model: str) -> str:
    if model == CLOSED:
        return ("is for the open model (stages with rate); this file's stages give users "
                "(closed model), and one file uses one model")
    return ("is for the closed model (stages with users); this file's stages give rate "
            "(open model), and one file uses one model")


def _stages(value: Any, duration: int, r: _Reader) -> tuple[Stage, ...]:
    if not isinstance(value, list):
        r.fail("stages", f"expected an array of [[stages]] tables, got {_type_name(value)}")
    if not value:
        r.fail("stages", "at least one stage is required")
    stages: list[Stage] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        key = f"stages[{i}]"
        t = r.table(item, key, ("name", "until_s", "users", "spawn_rate", "rate", "ramp_s"),
                    ("name", "until_s"))
        model = _stage_model(t, key, stages, r)
        name = r.string(t["name"], f"{key}.name", label=True)
        if name in seen:
            r.fail(f"{key}.name", f"{name!r} is already the name of stages[{seen[name]}]; "
                   "stage names label the rows, so they must be unique")
        seen[name] = i
        until = r.seconds(t["until_s"], f"{key}.until_s", positive=True)
        start = stages[-1].until_s if stages else 0
        if stages and until <= start:
            r.fail(f"{key}.until_s", f"{until} is not after the previous stage's until_s {start}")
        if model == CLOSED:
            users = r.integer(t["users"], f"{key}.users", minimum=0, maximum=MAX_USERS)
            spawn_rate = r.number(t["spawn_rate"], f"{key}.spawn_rate", positive=True)
            stages.append(Stage(name=name, until_s=until, users=users, spawn_rate=spawn_rate))
            continue
        rate = r.number(t["rate"], f"{key}.rate", minimum=0, maximum=MAX_RATE)
        ramp = r.seconds(t.get("ramp_s", 0), f"{key}.ramp_s", positive=False)
        if ramp > until - start:
            r.fail(f"{key}.ramp_s", f"{ramp} s is longer than the stage ({start}..{until} s); "
                   "a ramp ends within its stage")
        stages.append(Stage(name=name, until_s=until, rate=rate, ramp_s=ramp))
    last = stages[-1].until_s
    if last != duration:
        r.fail(f"stages[{len(stages) - 1}].until_s",
               f"the last stage ends at {last} s but duration_s is {duration}; stages must cover "
               f"the whole run, so the last until_s must equal duration_s")
    return tuple(stages)


def _stage_model(t: dict[str, Any], key: str, stages: list[Stage], r: _Reader) -> str:
    """Return the load model a stage table uses; refuse both, neither, or a second model."""
    has_users, has_rate = t.get("users") is not None, t.get("rate") is not None
    if has_users and has_rate:
        r.fail(key, "gives both users (closed model) and rate (open model); a stage gives one")
    if not has_users and not has_rate:
        r.fail(f"{key}.users", "required key is missing: a stage gives users (closed model, "
               "with spawn_rate) or rate (open model, with optional ramp_s)")
    model = CLOSED if has_users else OPEN
    if stages and stages[0].model != model:
        r.fail(f"{key}.{'users' if has_users else 'rate'}",
               f"this stage uses the {model} model but stages[0] uses the {stages[0].model} "
               "model; one file uses one model")
    if model == CLOSED:
        if t.get("spawn_rate") is None:
            r.fail(f"{key}.spawn_rate", "required key is missing")
        if "ramp_s" in t:
            r.fail(f"{key}.ramp_s", "is for open-model stages (rate); a closed stage (users) "
                   "ramps at spawn_rate")
    elif "spawn_rate" in t:
        r.fail(f"{key}.spawn_rate", "is for closed-model stages (users); an open stage (rate) "
               "ramps with ramp_s")
    return model


def _faults(value: Any, duration: int, r: _Reader) -> tuple[Fault, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        r.fail("faults", f"expected an array of [[faults]] tables, got {_type_name(value)}")
    faults: list[tuple[int, Fault]] = []
    for i, item in enumerate(value):
        key = f"faults[{i}]"
        keys = ("kind", "start_s", "duration_s", "intensity")
        t = r.table(item, key, keys, keys)
        kind = r.string(t["kind"], f"{key}.kind")
        if kind not in FAULT_KINDS:
            r.fail(f"{key}.kind", f"unknown fault kind {kind!r}; kinds are {', '.join(FAULT_KINDS)}")
        start = r.seconds(t["start_s"], f"{key}.start_s", positive=False)
        length = r.seconds(t["duration_s"], f"{key}.duration_s", positive=True)
        intensity = r.number(t["intensity"], f"{key}.intensity")
        if not 0.0 <= intensity <= 1.0:
            r.fail(f"{key}.intensity", f"{_show(intensity)} is outside 0..1")
        fault = Fault(kind=kind, start_s=start, duration_s=length, intensity=intensity)
        if start >= duration:
            r.fail(f"{key}.start_s", f"the fault starts at {start} s, when the run has already "
                   f"ended (duration_s {duration})")
        if fault.end_s > duration:
            r.fail(f"{key}.duration_s", f"the fault runs {start}..{fault.end_s} s, past the run's "
                   f"end (duration_s {duration})")
        for j, other in faults:
            if start < other.end_s and other.start_s < fault.end_s:
                r.fail(f"{key}.start_s", f"the {kind} fault at {start}..{fault.end_s} s overlaps "
                       f"faults[{j}] ({other.kind} at {other.start_s}..{other.end_s} s); only one "
                       "fault at a time (the fault label holds one kind)")
        faults.append((i, fault))
    return tuple(sorted((f for _, f in faults), key=lambda f: f.start_s))


# ---------------------------------------------------------------- small helpers


class _Cumulative:
    """The integral from 0 to t of a piecewise-linear rate given as knots (expected arrivals)."""

    def __init__(self, knots: tuple[tuple[float, float], ...]):
        self.t = [t for t, _ in knots]
        self.r = [r for _, r in knots]
        self.c = [0.0]
        for i in range(1, len(knots)):
            self.c.append(self.c[-1] + (self.r[i - 1] + self.r[i]) / 2 * (self.t[i] - self.t[i - 1]))

    def __call__(self, t: float) -> float:
        # The last knot at or before t: after a step (two knots at one time) that is the later one.
        i = bisect.bisect_right(self.t, t) - 1
        if i < 0:
            return 0.0
        if i == len(self.t) - 1:
            return self.c[-1] + self.r[-1] * (t - self.t[-1])
        t0, t1, r0, r1 = self.t[i], self.t[i + 1], self.r[i], self.r[i + 1]
        r_t = r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return self.c[i] + (r0 + r_t) / 2 * (t - t0)


def _type_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    for kind, name in names.items():
        if type(value) is kind:
            return f"{name} ({_show(value)})" if kind in (bool, int, float, str) else name
    return "nothing" if value is None else type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, str)):
        return repr(value)  # 2.0, not 2: the message is often about the type
    return str(value)


def _toml(value: Any) -> str:
    """Format one scalar as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back to the same float, and TOML accepts it.
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str):
        return '"' + "".join(_toml_char(c) for c in value) + '"'
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _toml_char(c: str) -> str:
    if c in '"\\':
        return "\\" + c
    if ord(c) < 32 or ord(c) == 127:
        return f"\\u{ord(c):04x}"
    return c
