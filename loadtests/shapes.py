"""The load plan as a pure function of elapsed time (Locust's LoadTestShape wraps it)."""

from __future__ import annotations


def shape_tick(scenario, elapsed_s: float) -> tuple[int, float] | None:
    """Return (users, spawn_rate) in force at `elapsed_s`, or None once the run is over."""
    if elapsed_s >= scenario.duration_s:
        return None
    stage = scenario.stage_at(max(0.0, elapsed_s))
    return stage.users, float(stage.spawn_rate)
