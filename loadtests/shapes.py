"""The load plan as a pure function of elapsed time (Locust's LoadTestShape wraps it)."""

from __future__ import annotations

def shape_tick(scenario, elapsed_s: float, processes: int = 1) -> tuple[int, float] | None:
    """Return (users, spawn_rate) in force at `elapsed_s`, or None once the run is over.

    Closed model: the stage's users at its spawn rate. Open model: one arrival driver per
    load-generating Locust process (`processes`); the drivers send the planned arrivals, so
    the user count does not change with the load.
    """
    if elapsed_s >= scenario.duration_s:
        return None
    if scenario.load_model == "open":
        # A spawn rate equal to the count starts every driver in Locust's first dispatch.
        drivers = max(1, processes)
        return drivers, float(drivers)
    stage = scenario.stage_at(max(0.0, elapsed_s))
    return stage.users, float(stage.spawn_rate)
