"""The load shape's tick() schedule, as Locust will see it."""

from __future__ import annotations

import pytest

from contract.scenario import load_scenario, parse_scenario
from loadtests.shapes import shape_tick

OPEN = """\
name = "o"
duration_s = 30
[[stages]]
name = "low"
until_s = 10
rate = 5
[[stages]]
name = "high"
until_s = 30
rate = 50
ramp_s = 5
"""


STEPS = parse_scenario("""
name = "steps"
duration_s = 30

[[stages]]
name = "ramp"
until_s = 10
users = 4
spawn_rate = 2

[[stages]]
name = "hold"
until_s = 25
users = 12
spawn_rate = 4

[[stages]]
name = "drain"
until_s = 30
users = 0
spawn_rate = 6
""")


@pytest.mark.parametrize("elapsed_s, expected", [
    (0.0, (4, 2.0)),
    (-0.5, (4, 2.0)),         # a clock a little behind the start gets the first stage
    (9.99, (4, 2.0)),
    (10.0, (12, 4.0)),        # a stage starts at its predecessor's until_s, not after it
    (17.0, (12, 4.0)),
    (24.99, (12, 4.0)),
    (25.0, (0, 6.0)),         # the last stage may drain to zero users
    (29.99, (0, 6.0)),
    (30.0, None),             # duration_s is the end of the run: Locust stops
    (130.0, None),
])
def test_tick_gives_the_stage_in_force_and_none_from_the_end(elapsed_s, expected):
    assert shape_tick(STEPS, elapsed_s) == expected


def test_tick_every_second_of_a_small_plan():
    ticks = [shape_tick(STEPS, t + 0.5) for t in range(32)]
    assert ticks == [(4, 2.0)] * 10 + [(12, 4.0)] * 15 + [(0, 6.0)] * 5 + [None] * 2


def test_locust_shape_class_in_a_subprocess(tmp_path):
    """The real LoadTestShape subclass (imported in its own process: locust patches stdlib)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import time, loadtests.locustfile as lf\n"
        "shape = lf.ScenarioShape()\n"
        "first = shape.tick()\n"
        "shape.t0 -= 7\n"
        "later = shape.tick()\n"
        "shape.t0 -= 100\n"
        "print(first, later, shape.tick())\n"
    )
    env = {"LAB_SCENARIO": "smoke-closed", "LAB_OUT": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    smoke = load_scenario("smoke-closed")
    s0, s1 = smoke.stage_at(0), smoke.stage_at(7)
    assert proc.stdout.split("\n")[0] == f"({s0.users}, {float(s0.spawn_rate)}) ({s1.users}, {float(s1.spawn_rate)}) None"
    assert float((tmp_path / "t0").read_text()) > 0


def test_open_model_runs_one_driver_per_process_for_the_whole_run():
    sc = parse_scenario(OPEN)
    for processes in (1, 2, 5):
        ticks = {shape_tick(sc, t / 2, processes) for t in range(60)}
        assert ticks == {(processes, float(processes))}, "the rate plan lives in the drivers' schedules"
        assert shape_tick(sc, 30, processes) is None
    assert shape_tick(sc, 0) == (1, 1.0)
