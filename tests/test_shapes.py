"""The load shape's tick() schedule, as Locust will see it."""

from __future__ import annotations

from loadtests.scenario import load_scenario, parse_scenario
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


def test_tick_follows_stages_and_ends():
    smoke = load_scenario("smoke-closed")
    stages = smoke.stages
    assert shape_tick(smoke, 0.0) == (stages[0].users, float(stages[0].spawn_rate))
    for prev, stage in zip(stages, stages[1:]):
        just_before = shape_tick(smoke, prev.until_s - 0.01)
        at = shape_tick(smoke, prev.until_s)
        assert just_before == (prev.users, float(prev.spawn_rate))
        assert at == (stage.users, float(stage.spawn_rate))
    assert shape_tick(smoke, smoke.duration_s - 0.01) is not None
    assert shape_tick(smoke, smoke.duration_s) is None
    assert shape_tick(smoke, smoke.duration_s + 100) is None


def test_tick_every_second_of_every_builtin_matches_the_plan():
    from loadtests.scenario import builtin_scenarios

    for sc in builtin_scenarios():
        for t in range(sc.duration_s):
            users, _rate = shape_tick(sc, t + 0.5, processes=2)
            expected = 2 if sc.load_model == "open" else sc.users_at(t + 0.5)
            assert users == expected, (sc.name, t)


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
