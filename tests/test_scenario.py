"""Scenario files: loading, validation messages, time queries, scaling and the built-ins."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from contract.errors import BadInput
from contract.scenario import (
    DEFAULT_MIX,
    DEFAULT_SCENARIO,
    Fault,
    Scenario,
    Slo,
    TargetSettings,
    builtin_names,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    read_scenario,
)

GOOD = """\
name = "t"
description = "a test plan"
duration_s = 60
seed = 3

[slo]
latency_p95_ms = 900
error_rate = 0.05

[target]
workers = 1
threads = 4

[load]
wait_min_s = 0.1
wait_max_s = 0.2

[load.mix]
browse = 1
stress = 0

[[stages]]
name = "low"
until_s = 20
users = 2
spawn_rate = 1

[[stages]]
name = "high"
until_s = 40
users = 10
spawn_rate = 5

[[stages]]
name = "end"
until_s = 60
users = 0
spawn_rate = 2.5

[[faults]]
kind = "cpu"
start_s = 30
duration_s = 20
intensity = 1

[[faults]]
kind = "latency"
start_s = 10
duration_s = 10
intensity = 0.5
"""

MINIMAL = """\
name = "minimal"
duration_s = 10

[[stages]]
name = "only"
until_s = 10
users = 1
spawn_rate = 1
"""

STORIES = {"smoke", "ramp", "spike", "step", "wave", "soak", "fault-latency", "fault-errors",
           "fault-cpu", "fault-memory", "mixed"}
# Every story in the open model under its plain name, the closed originals as <name>-closed.
BUILTINS = STORIES | {f"{name}-closed" for name in STORIES} | {"fault-threads", "scale-spike", "scale-ramp"}
# The 2 x 4 target's capacity in the open model (measured; see the built-in files' comments).
CAPACITY_RPS = 150


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, base: str = GOOD) -> str:
    assert base.count(old) == 1, f"test bug: {old!r} must occur once"
    return base.replace(old, new)


@pytest.fixture
def good(tmp_path) -> Scenario:
    return read_scenario(write(tmp_path, GOOD, "good.toml"))


# ---------------------------------------------------------------- good files


def test_good_file_loads_with_every_field(good, tmp_path):
    assert good.name == "t" and good.description == "a test plan"
    assert good.duration_s == 60 and good.seed == 3
    assert good.slo == Slo(latency_p95_ms=900, error_rate=0.05, window_s=1)
    assert good.load_model == "closed"
    assert good.target == TargetSettings(workers=1, threads=4)
    assert (good.load.wait_min_s, good.load.wait_max_s) == (0.1, 0.2)
    assert good.load.mix == {"browse": 1, "stress": 0}, "a given mix replaces the default one"
    assert [(s.name, s.until_s, s.users, s.spawn_rate) for s in good.stages] == [
        ("low", 20, 2, 1.0), ("high", 40, 10, 5.0), ("end", 60, 0, 2.5)]
    # Faults are kept in time order whatever the file's order.
    assert good.faults == (Fault("latency", 10, 10, 0.5), Fault("cpu", 30, 20, 1.0))
    assert good.source == str(tmp_path / "good.toml")


def test_optional_tables_take_their_defaults(tmp_path):
    s = read_scenario(write(tmp_path, MINIMAL))
    assert s.description == "" and s.seed is None and s.faults == ()
    # A closed file without window_s keeps the per-second SLO rule of older runs.
    assert s.slo == Slo(latency_p95_ms=800, error_rate=0.02, window_s=1)
    assert s.target == TargetSettings(workers=None, threads=None, max_worker_rss_mb=None)
    assert (s.load.wait_min_s, s.load.wait_max_s) == (0.5, 1.5)
    assert s.load.mix == DEFAULT_MIX == {"browse": 5, "product": 4, "search": 2, "checkout": 1,
                                         "stress": 1}


def test_whole_float_seconds_are_accepted(tmp_path):
    s = read_scenario(write(tmp_path, edited("duration_s = 10", "duration_s = 10.0", MINIMAL)
                            .replace("until_s = 10", "until_s = 10.0")))
    assert s.duration_s == 10 and isinstance(s.duration_s, int)


def test_load_scenario_takes_a_path_or_a_builtin_name(tmp_path):
    path = write(tmp_path, GOOD, "mine.toml")
    assert load_scenario(str(path)).name == "t"
    assert load_scenario(path).name == "t"
    spike = load_scenario("spike")
    assert spike.name == "spike"
    assert spike.source.endswith("scenarios/spike.toml")


def test_round_trips_through_dict_json_and_toml(good, tmp_path):
    as_json = json.loads(json.dumps(good.to_dict()))
    assert Scenario.from_dict(as_json) == good
    assert Scenario.from_dict(as_json).source == good.source
    text = good.to_toml()
    again = read_scenario(write(tmp_path, text, "again.toml"))
    assert again == good, "source is provenance, not part of equality"
    assert again.to_toml() == text


def test_to_toml_escapes_strings(tmp_path):
    tricky = 'quote " backslash \\ unicode ação ✓ # not a comment'
    s = read_scenario(write(tmp_path, MINIMAL)).with_seed(5)
    s = dataclasses.replace(s, description=tricky)
    back = parse_scenario(s.to_toml())
    assert back.description == tricky and back == s


def test_scenarios_are_frozen_and_hashable(good):
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.duration_s = 5
    assert hash(good) == hash(parse_scenario(good.to_toml()))


# ---------------------------------------------------------------- bad files

# (edit of GOOD, key the message must name, words the message must contain)
BAD_EDITS = [
    (("seed = 3", "seed = 3\ncolour = \"red\""), "colour", "unknown key"),
    (("error_rate = 0.05", "error_rate = 0.05\np99_ms = 1"), "slo.p99_ms", "unknown key"),
    (("threads = 4", "threads = 4\ncores = 2"), "target.cores", "unknown key"),
    (("wait_max_s = 0.2", "wait_max_s = 0.2\nthink_s = 1"), "load.think_s", "unknown key"),
    (("browse = 1", "browse = 1\nsleep = 1"), "load.mix.sleep", "unknown key"),
    (("users = 10", "user = 10"), "stages[1].user", "unknown key"),
    (("intensity = 0.5", "intensity = 0.5\nseverity = 1"), "faults[1].severity", "unknown key"),
    (('name = "t"\n', ""), "name", "required key is missing"),
    (("duration_s = 60\n", ""), "duration_s", "required key is missing"),
    (("users = 2\n", ""), "stages[0].users", "required key is missing"),
    (("intensity = 1\n", ""), "faults[0].intensity", "required key is missing"),
    (("duration_s = 60", "duration_s = true"), "duration_s", "expected an integer, got a boolean"),
    (("spawn_rate = 5", "spawn_rate = true"), "stages[1].spawn_rate", "expected a number, got a boolean"),
    (("users = 10", 'users = "10"'), "stages[1].users", "expected an integer, got a string"),
    (("users = 10", "users = 10.5"), "stages[1].users", "expected an integer, got a float"),
    (("until_s = 40", "until_s = 40.5"), "stages[1].until_s", "not a whole number of seconds"),
    (("latency_p95_ms = 900", 'latency_p95_ms = "fast"'), "slo.latency_p95_ms", "expected a number"),
    (('name = "t"', "name = 7"), "name", "expected a string"),
    (('name = "t"', 'name = "../etc"'), "name", "letters, digits"),
    (("users = 10", "users = -3"), "stages[1].users", "-3 is negative"),
    (("error_rate = 0.05", "error_rate = -0.1"), "slo.error_rate", "is negative"),
    (("error_rate = 0.05", "error_rate = 1.5"), "slo.error_rate", "above the maximum 1"),
    (("seed = 3", "seed = -1"), "seed", "is negative"),
    (("wait_min_s = 0.1", "wait_min_s = -0.1"), "load.wait_min_s", "is negative"),
    (("wait_min_s = 0.1", "wait_min_s = 0.5"), "load.wait_max_s", "below load.wait_min_s"),
    (("browse = 1", "browse = 0"), "load.mix", "at least one task"),
    (("workers = 1", "workers = 0"), "target.workers", "below the minimum 1"),
    (("duration_s = 60", "duration_s = 0"), "duration_s", "at least 1 s"),
    (("duration_s = 10", "duration_s = 0"), "faults[1].duration_s", "at least 1 s"),
    (("start_s = 10", "start_s = -5"), "faults[1].start_s", "is negative"),
    (("until_s = 40", "until_s = 15"), "stages[1].until_s",
     "15 is not after the previous stage's until_s 20"),
    (("until_s = 40", "until_s = 20"), "stages[1].until_s", "is not after the previous stage"),
    (("until_s = 60", "until_s = 50"), "stages[2].until_s", "last until_s must equal duration_s"),
    (("duration_s = 60", "duration_s = 70"), "stages[2].until_s", "stages must cover the whole run"),
    (("users = 2", "users = 2.0"), "stages[0].users", "expected an integer, got a float (2.0)"),
    (("spawn_rate = 1\n", "spawn_rate = 0\n"), "stages[0].spawn_rate", "greater than 0"),
    (('name = "high"', 'name = "  "'), "stages[1].name", "must not be empty"),
    (('name = "high"', 'name = "low"'), "stages[1].name", "must be unique"),
    (('kind = "cpu"', 'kind = "disk"'), "faults[0].kind", "unknown fault kind 'disk'"),
    (("intensity = 0.5", "intensity = 1.5"), "faults[1].intensity", "outside 0..1"),
    (("intensity = 0.5", "intensity = nan"), "faults[1].intensity", "finite"),
    (("intensity = 0.5", "intensity = -0.5"), "faults[1].intensity", "outside 0..1"),
    (("start_s = 30", "start_s = 60"), "faults[0].start_s", "the run has already ended"),
    (("duration_s = 20", "duration_s = 40"), "faults[0].duration_s", "past the run's end"),
    (("start_s = 10", "start_s = 25"), "faults[1].start_s", "overlaps faults[0]"),
    (("stress = 0", "stress = 0\n[load.mix.x]"), "load.mix.x", "unknown key"),
]


@pytest.mark.parametrize("edit, key, reason", BAD_EDITS, ids=[f"{k}:{r}" for _, k, r in BAD_EDITS])
def test_bad_file_names_file_key_and_reason(tmp_path, edit, key, reason):
    path = write(tmp_path, edited(*edit))
    with pytest.raises(BadInput) as caught:
        read_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message, message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_overlapping_faults_say_why_they_are_refused(tmp_path):
    message = _bad(tmp_path, edited("start_s = 10", "start_s = 25"))
    assert "latency" in message and "cpu at 30..50 s" in message and "one fault at a time" in message


def test_adjacent_faults_do_not_overlap(tmp_path):
    s = read_scenario(write(tmp_path, edited("duration_s = 20", "duration_s = 10")
                            .replace("start_s = 10", "start_s = 20")))
    assert [(f.start_s, f.end_s) for f in s.faults] == [(20, 30), (30, 40)]


def test_missing_stages_and_empty_stages(tmp_path):
    without = MINIMAL.split("[[stages]]")[0]
    assert "stages: required key is missing" in _bad(tmp_path, without)
    assert "stages: at least one stage is required" in _bad(tmp_path, without + "stages = []\n")
    assert "stages[0]: expected a table, got an integer" in _bad(tmp_path, without + "stages = [1]\n")


def test_invalid_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, 'name = "t"\nduration_s = = 3\n')
    with pytest.raises(BadInput) as caught:
        read_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ") and "line 2" in message


def test_unreadable_files(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(BadInput, match=f"^{missing}: file not found$"):
        load_scenario(str(missing))
    with pytest.raises(BadInput, match="is a folder"):
        read_scenario(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"name = \"\xff\"\n")
    with pytest.raises(BadInput, match="not UTF-8"):
        read_scenario(binary)


def test_unknown_name_lists_the_builtins():
    with pytest.raises(BadInput) as caught:
        load_scenario("spiky")
    message = str(caught.value)
    assert message.startswith("spiky: unknown scenario")
    assert all(name in message for name in BUILTINS)


def test_from_dict_validates_like_a_file(good):
    data = good.to_dict()
    data["stages"][1]["users"] = -1
    with pytest.raises(BadInput, match=r": stages\[1\]\.users: -1 is negative"):
        Scenario.from_dict(data)
    with pytest.raises(BadInput, match="^<scenario>: expected a table"):
        Scenario.from_dict([1, 2])


def _bad(tmp_path, text: str) -> str:
    with pytest.raises(BadInput) as caught:
        read_scenario(write(tmp_path, text))
    return str(caught.value)


# ---------------------------------------------------------------- queries by time


@pytest.mark.parametrize("t, stage", [(-1, "low"), (0, "low"), (19.999, "low"), (20, "high"),
                                      (39.5, "high"), (40, "end"), (59.99, "end"), (60, "end"),
                                      (1000, "end")])
def test_stage_at_boundaries(good, t, stage):
    assert good.stage_at(t).name == stage
    assert good.users_at(t) == {"low": 2, "high": 10, "end": 0}[stage]


@pytest.mark.parametrize("t, kind", [(0, None), (9.99, None), (10, "latency"), (19.99, "latency"),
                                     (20, None), (29.9, None), (30, "cpu"), (49.9, "cpu"),
                                     (50, None), (60, None)])
def test_fault_at_boundaries(good, t, kind):
    fault = good.fault_at(t)
    assert (fault.kind if fault else None) == kind


# ---------------------------------------------------------------- derived scenarios


def test_scaled_keeps_proportions(good):
    half = good.scaled(30)
    assert half.duration_s == 30
    assert [s.until_s for s in half.stages] == [10, 20, 30]
    assert [(f.kind, f.start_s, f.duration_s) for f in half.faults] == [("latency", 5, 5),
                                                                         ("cpu", 15, 10)]
    double = good.scaled(120)
    assert [s.until_s for s in double.stages] == [40, 80, 120]
    assert [(f.start_s, f.end_s) for f in double.faults] == [(20, 40), (60, 100)]
    assert good.scaled(60) == good
    assert [s.users for s in half.stages] == [s.users for s in good.stages]


def test_scaled_to_a_tiny_run_keeps_every_stage_and_fault_at_least_a_second(good):
    tiny = good.scaled(3)
    assert [s.until_s for s in tiny.stages] == [1, 2, 3]
    assert all(f.duration_s >= 1 and 0 <= f.start_s and f.end_s <= 3 for f in tiny.faults)
    assert Scenario.from_dict(tiny.to_dict()) == tiny  # still passes every validation rule
    with pytest.raises(BadInput, match="too short for 3 stages"):
        good.scaled(2)
    with pytest.raises(BadInput, match="duration_s"):
        good.scaled(0)


@pytest.mark.parametrize("scenario", builtin_scenarios(), ids=lambda s: s.name)
def test_scaled_builtins_stay_valid_at_any_length(scenario):
    for duration in range(len(scenario.stages), 400, 7):
        scaled = scenario.scaled(duration)
        assert Scenario.from_dict(scaled.to_dict()) == scaled
        assert len(scaled.stages) == len(scenario.stages)
        assert scaled.stages[-1].until_s == duration


def test_truncated_cuts_and_drops(good):
    cut = good.truncated(35)
    assert [(s.name, s.until_s) for s in cut.stages] == [("low", 20), ("high", 35)]
    assert [(f.kind, f.start_s, f.end_s) for f in cut.faults] == [("latency", 10, 20), ("cpu", 30, 35)]
    at_boundary = good.truncated(20)
    assert [s.name for s in at_boundary.stages] == ["low"]
    assert [f.kind for f in at_boundary.faults] == ["latency"]
    early = good.truncated(10)
    assert [(s.name, s.until_s) for s in early.stages] == [("low", 10)] and early.faults == ()
    assert good.truncated(60) == good
    for t in (cut, at_boundary, early):
        assert Scenario.from_dict(t.to_dict()) == t
    with pytest.raises(BadInput, match="longer than the scenario's 60 s"):
        good.truncated(61)


def test_with_seed(good):
    assert good.with_seed(99).seed == 99
    assert good.with_seed(None).seed is None
    assert dataclasses.replace(good.with_seed(99), seed=3) == good
    with pytest.raises(BadInput, match="seed: -1 is negative"):
        good.with_seed(-1)


# ---------------------------------------------------------------- the built-in library


def test_builtin_library_is_complete_and_sorted():
    names = builtin_names()
    assert set(names) == BUILTINS
    assert [s.name for s in builtin_scenarios()] == sorted(BUILTINS)
    assert DEFAULT_SCENARIO in names


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_each_builtin_loads_and_round_trips(name, tmp_path):
    s = load_scenario(name)
    assert s.name == name == Path(s.source).stem
    assert s.description and "\n" not in s.description
    assert s.seed is not None
    assert s.load_model == ("closed" if name.endswith("-closed") else "open")
    if name.startswith("smoke"):
        assert s.duration_s == 20
    elif name.startswith("scale-"):          # the closed-loop benchmark's short runs
        assert 60 <= s.duration_s <= 90
    else:
        assert 120 <= s.duration_s <= 300
    assert Scenario.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert read_scenario(write(tmp_path, s.to_toml(), f"{name}.toml")) == s


def test_smoke_is_small_and_has_one_latency_fault():
    closed = load_scenario("smoke-closed")
    assert [(s.until_s, s.users) for s in closed.stages] == [(6, 3), (14, 8), (20, 3)]
    assert closed.faults == (Fault("latency", 8, 4, 0.5),)
    smoke = load_scenario("smoke")
    assert [(s.until_s, s.rate) for s in smoke.stages] == [(6, 4), (14, 10), (20, 4)]
    assert smoke.faults == closed.faults
    assert smoke.expected_arrivals(0, 20) < 200, "a few requests per second, like the closed one"


def test_closed_builtins_are_the_originals_under_a_new_name():
    for name in STORIES:
        closed = load_scenario(f"{name}-closed")
        text = Path(closed.source).read_text(encoding="utf-8")
        assert f'name = "{name}-closed"' in text
        assert closed.slo.window_s == 1, "no window_s: the per-second rule of the original"
        assert "stress" in closed.load.mix


def test_open_builtins_leave_stress_out_and_pool_the_slo():
    for name in STORIES | {"fault-threads"}:
        s = load_scenario(name)
        assert "stress" not in s.load.mix, name
        assert "/stress" in Path(s.source).read_text(encoding="utf-8"), f"{name}: say why in a comment"
        assert s.slo.window_s == 10 and s.slo.latency_p95_ms == 500
        assert (s.target.workers, s.target.threads) == (2, 4)


def test_default_scenario_is_stable_then_saturated_then_recovering():
    s = load_scenario(DEFAULT_SCENARIO)
    assert s.load_model == "open"
    rates = [p.rate for p in s.plan()]
    peak = rates.index(max(rates))
    assert max(rates) >= 1.5 * CAPACITY_RPS, "a spike well past capacity"
    steady = rates[10:s.stages[0].until_s]
    assert len(steady) >= 30 and peak > s.stages[0].until_s and all(0.4 * CAPACITY_RPS <= r <= 0.6 * CAPACITY_RPS for r in steady)
    assert sum(1 for r in rates[peak:] if r <= 0.6 * CAPACITY_RPS) >= 30, "time to recover after it"


def test_load_shapes_tell_their_story():
    ramp = load_scenario("ramp-closed")
    users = [s.users for s in ramp.stages]
    assert max(users) >= 120 and users[:-1] == sorted(users[:-1])
    wave = [s.users for s in load_scenario("wave-closed").stages]
    crests = [i for i in range(1, len(wave) - 1) if wave[i - 1] < wave[i] >= wave[i + 1]]
    assert len(crests) >= 3 and max(wave) > 80 and min(wave) <= 30
    for name, kind in [("fault-latency", "latency"), ("fault-errors", "errors"),
                       ("fault-cpu", "cpu"), ("fault-memory", "memory")]:
        s = load_scenario(f"{name}-closed")
        (fault,) = s.faults
        assert fault.kind == kind
        assert fault.start_s > s.duration_s / 5 and fault.end_s < s.duration_s * 4 / 5
        assert {st.users for st in s.stages} <= set(range(10, 41))
    assert {f.kind for f in load_scenario("soak-closed").faults} == {"memory"}
    mixed = load_scenario("mixed-closed")
    assert len(mixed.faults) >= 2 and len({s.users for s in mixed.stages}) >= 3


def test_open_load_shapes_tell_their_story():
    ramp = [s.rate for s in load_scenario("ramp").stages]
    assert ramp[:-1] == sorted(ramp[:-1]) and ramp[0] < 0.2 * CAPACITY_RPS
    assert max(ramp) >= 1.5 * CAPACITY_RPS
    step = [s.rate for s in load_scenario("step").stages]
    assert step == step[::-1] and max(step) >= 1.5 * CAPACITY_RPS and min(step) <= 0.5 * CAPACITY_RPS
    wave = load_scenario("wave")
    rates = [p.rate for p in wave.plan()]
    above = [r > CAPACITY_RPS for r in rates]
    rises = sum(1 for a, b in zip(above, above[1:]) if b and not a)
    assert rises == 4 and min(rates[10:]) < 0.3 * CAPACITY_RPS
    assert all(s.ramp_s == 5 for s in wave.stages), "a smooth rate: linear ramps between samples"
    for name, kind in [("fault-latency", "latency"), ("fault-errors", "errors"), ("fault-cpu", "cpu"),
                       ("fault-memory", "memory"), ("fault-threads", "threads")]:
        s = load_scenario(name)
        (fault,) = s.faults
        assert fault.kind == kind
        assert fault.start_s > s.duration_s / 5 and fault.end_s < s.duration_s * 4 / 5
        assert {st.rate for st in s.stages} == {0.5 * CAPACITY_RPS}, "steady at half capacity"
    assert load_scenario("fault-memory").target.max_worker_rss_mb is not None, "the leak ends in a kill"
    assert load_scenario("fault-threads").faults[0].intensity == 1.0, "the pool runs dry"
    mixed = load_scenario("mixed")
    assert {f.kind for f in mixed.faults} == {"latency", "cpu", "errors", "memory"}
    assert max(s.rate for s in mixed.stages) >= 1.5 * CAPACITY_RPS


# ---------------------------------------------------------------- the open model

OPEN = """\
name = "o"
duration_s = 60
seed = 4

[slo]
latency_p95_ms = 500

[target]
max_worker_rss_mb = 300

[load]
max_in_flight = 50

[load.mix]
browse = 3
search = 1

[[stages]]
name = "steady"
until_s = 20
rate = 10

[[stages]]
name = "climb"
until_s = 40
rate = 30
ramp_s = 10

[[stages]]
name = "drop"
until_s = 60
rate = 0

[[faults]]
kind = "threads"
start_s = 25
duration_s = 10
intensity = 0.5
"""


@pytest.fixture
def open_scenario(tmp_path) -> Scenario:
    return read_scenario(write(tmp_path, OPEN, "open.toml"))


def test_open_file_loads_with_its_own_settings(open_scenario):
    s = open_scenario
    assert s.load_model == "open"
    assert [(st.name, st.until_s, st.rate, st.ramp_s, st.users) for st in s.stages] == [
        ("steady", 20, 10.0, 0, None), ("climb", 40, 30.0, 10, None), ("drop", 60, 0.0, 0, None)]
    assert s.load.max_in_flight == 50 and s.load.mix == {"browse": 3, "search": 1}
    assert s.slo.window_s == 10, "the open model pools over 10 s unless the file says otherwise"
    assert s.target.max_worker_rss_mb == 300.0
    assert s.faults == (Fault("threads", 25, 10, 0.5),)
    assert s.users_at(5) is None


def test_open_defaults_leave_stress_out_and_bound_in_flight(tmp_path):
    s = read_scenario(write(tmp_path, 'name = "o"\nduration_s = 5\n[[stages]]\nname = "a"\n'
                            'until_s = 5\nrate = 2\n'))
    assert s.load.max_in_flight == 1000 and "stress" not in s.load.mix
    assert s.slo == Slo(window_s=10)


def test_window_s_is_read_in_both_models(tmp_path):
    closed = read_scenario(write(tmp_path, edited("error_rate = 0.05", "error_rate = 0.05\nwindow_s = 20")))
    assert closed.slo.window_s == 20
    per_second = read_scenario(write(tmp_path, edited("latency_p95_ms = 500", "latency_p95_ms = 500\n"
                                                      "window_s = 1", OPEN)))
    assert per_second.slo.window_s == 1


def test_rate_follows_steps_and_linear_ramps(open_scenario):
    s = open_scenario
    assert s.rate_knots() == ((0, 10), (20, 10), (20, 10), (30, 30), (40, 30), (40, 0), (60, 0))
    assert [s.rate_at(t) for t in (0, 19.9, 20, 25, 30, 39.9, 40, 59, 60, 100)] == [
        10, 10, 10, 20, 30, 30, 0, 0, 0, 0]
    assert s.expected_arrivals(0, 20) == pytest.approx(200)
    assert s.expected_arrivals(20, 30) == pytest.approx(200), "mean 20/s over the 10 s ramp"
    assert s.expected_arrivals(0, 60) == pytest.approx(200 + 200 + 300)


def test_plan_gives_every_second_its_mean_rate(open_scenario):
    plan = open_scenario.plan()
    assert len(plan) == 60 and [p.second for p in plan] == list(range(60))
    assert all(p.users is None for p in plan)
    assert plan[0].phase == "steady" and plan[20].phase == "climb" and plan[59].phase == "drop"
    # Second 20 is [20, 21): the ramp goes 10 -> 12/s, so its mean (and expected arrivals) is 11.
    assert [p.rate for p in plan[18:23]] == pytest.approx([10, 10, 11, 13, 15])
    assert plan[29].rate == pytest.approx(29) and plan[30].rate == pytest.approx(30)
    assert plan[40].rate == 0
    assert sum(p.rate for p in plan) == pytest.approx(open_scenario.expected_arrivals(0, 60))


def test_plan_of_a_closed_file_gives_users_and_no_rate(good):
    plan = good.plan()
    assert [p.users for p in plan] == [good.users_at(t) for t in range(60)]
    assert all(p.rate is None for p in plan)
    assert good.rate_knots() == () and good.rate_at(3) is None and good.expected_arrivals(0, 5) is None


def test_a_first_stage_ramp_starts_from_zero(tmp_path):
    s = read_scenario(write(tmp_path, 'name = "o"\nduration_s = 10\n[[stages]]\nname = "a"\n'
                            'until_s = 10\nrate = 10\nramp_s = 4\n'))
    assert [round(p.rate, 6) for p in s.plan()[:5]] == [1.25, 3.75, 6.25, 8.75, 10]


def test_open_round_trips_through_dict_json_and_toml(open_scenario, tmp_path):
    data = json.loads(json.dumps(open_scenario.to_dict()))
    assert data["load_model"] == "open"
    assert data["stages"][1] == {"name": "climb", "until_s": 40, "rate": 30.0, "ramp_s": 10}
    assert data["load"] == {"max_in_flight": 50, "mix": {"browse": 3, "search": 1}}
    assert data["slo"]["window_s"] == 10 and data["target"]["max_worker_rss_mb"] == 300.0
    assert Scenario.from_dict(data) == open_scenario
    again = read_scenario(write(tmp_path, open_scenario.to_toml(), "again.toml"))
    assert again == open_scenario and again.to_toml() == open_scenario.to_toml()


def test_closed_dict_keeps_its_shape(good):
    data = good.to_dict()
    assert data["load_model"] == "closed"
    assert set(data["load"]) == {"wait_min_s", "wait_max_s", "mix"}
    assert all(set(st) == {"name", "until_s", "users", "spawn_rate"} for st in data["stages"])
    assert data["slo"] == {"latency_p95_ms": 900.0, "error_rate": 0.05, "window_s": 1}


def test_from_dict_checks_the_stated_load_model(open_scenario):
    data = open_scenario.to_dict()
    data["load_model"] = "closed"
    with pytest.raises(BadInput, match="load_model: 'closed' does not match the stages, which use the open"):
        Scenario.from_dict(data)


def test_scaled_open_scenario_scales_its_ramps(open_scenario):
    half = open_scenario.scaled(30)
    assert [(st.until_s, st.ramp_s) for st in half.stages] == [(10, 0), (20, 5), (30, 0)]
    assert half.expected_arrivals(10, 15) == pytest.approx(100), "mean 20/s over the halved ramp"
    tiny = open_scenario.scaled(3)
    assert [(st.until_s, st.ramp_s) for st in tiny.stages] == [(1, 0), (2, 1), (3, 0)]
    assert Scenario.from_dict(tiny.to_dict()) == tiny


def test_truncated_inside_a_ramp_keeps_the_plan_of_the_kept_seconds(open_scenario):
    cut = open_scenario.truncated(25)
    assert [(st.name, st.until_s, st.rate, st.ramp_s) for st in cut.stages] == [
        ("steady", 20, 10.0, 0), ("climb", 25, 20.0, 5)]
    assert [p.rate for p in cut.plan()] == pytest.approx([p.rate for p in open_scenario.plan()[:25]])
    assert Scenario.from_dict(cut.to_dict()) == cut
    assert open_scenario.truncated(60) == open_scenario


OPEN_BAD_EDITS = [
    (("rate = 30\n", "rate = 30\nusers = 3\n"), "stages[1]", "gives both users (closed model) and rate"),
    (("rate = 30\n", ""), "stages[1].users", "required key is missing: a stage gives users"),
    (("rate = 0\n", "users = 0\nspawn_rate = 1\n"), "stages[2].users",
     "uses the closed model but stages[0] uses the open model; one file uses one model"),
    (("ramp_s = 10", "ramp_s = 10\nspawn_rate = 2"), "stages[1].spawn_rate", "is for closed-model stages"),
    (("ramp_s = 10", "ramp_s = 21"), "stages[1].ramp_s", "21 s is longer than the stage (20..40 s)"),
    (("ramp_s = 10", "ramp_s = -1"), "stages[1].ramp_s", "is negative"),
    (("ramp_s = 10", "ramp_s = 1.5"), "stages[1].ramp_s", "not a whole number of seconds"),
    (("rate = 30", "rate = -3"), "stages[1].rate", "-3 is negative"),
    (("rate = 30", 'rate = "30"'), "stages[1].rate", "expected a number, got a string"),
    (("rate = 30", "rate = 1e9"), "stages[1].rate", "above the maximum"),
    (("max_in_flight = 50", "max_in_flight = 0"), "load.max_in_flight", "below the minimum 1"),
    (("max_in_flight = 50", "max_in_flight = 5.5"), "load.max_in_flight", "expected an integer"),
    (("max_in_flight = 50", "max_in_flight = 50\nwait_min_s = 1"), "load.wait_min_s",
     "is for the closed model (stages with users); this file's stages give rate"),
    (("latency_p95_ms = 500", "latency_p95_ms = 500\nwindow_s = 0"), "slo.window_s", "at least 1 s"),
    (("latency_p95_ms = 500", "latency_p95_ms = 500\nwindow_s = 2.5"), "slo.window_s",
     "not a whole number of seconds"),
    (("latency_p95_ms = 500", "latency_p95_ms = 500\nwindow_s = 7200"), "slo.window_s",
     "above the maximum 3600"),
    (("max_worker_rss_mb = 300", "max_worker_rss_mb = 0"), "target.max_worker_rss_mb", "greater than 0"),
    (("max_worker_rss_mb = 300", "max_worker_rss_mb = true"), "target.max_worker_rss_mb",
     "expected a number, got a boolean"),
    (('kind = "threads"', 'kind = "disk"'), "faults[0].kind", "kinds are latency, errors, cpu, memory, threads"),
]


@pytest.mark.parametrize("edit, key, reason", OPEN_BAD_EDITS, ids=[f"{k}:{r}" for _, k, r in OPEN_BAD_EDITS])
def test_bad_open_file_names_file_key_and_reason(tmp_path, edit, key, reason):
    path = write(tmp_path, edited(*edit, base=OPEN))
    with pytest.raises(BadInput) as caught:
        read_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message, message
    assert "\n" not in message


def test_closed_file_refuses_open_model_keys(tmp_path):
    assert "stages[1].ramp_s: is for open-model stages" in _bad(
        tmp_path, edited("users = 10", "users = 10\nramp_s = 3"))
    assert "load.max_in_flight: is for the open model" in _bad(
        tmp_path, edited("wait_min_s = 0.1", "wait_min_s = 0.1\nmax_in_flight = 5"))
    assert "stages[1].rate: this stage uses the open model but stages[0] uses the closed" in _bad(
        tmp_path, edited("users = 10\nspawn_rate = 5", "rate = 10"))
    assert "stages[0].spawn_rate: required key is missing" in _bad(tmp_path, edited("spawn_rate = 1\n", ""))
