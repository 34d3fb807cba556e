"""Synthesise realistic run folders (run.json + metrics.csv) without running anything.

`make_run(runs_dir, 120, "spike", 7)` writes `runs_dir/<run_id>/` the way run-scenario
does: every contract column, labels that follow the scenario's stages, faults and SLO
rule, and checksums in run.json. Tests and benchmarks share it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from contract.runfolder import atomic_write_text, utc_iso, write_run_json
from contract.schema import COLUMNS, csv_cell

T0 = 1_795_834_800.0  # 2026-11-28T03:00:00Z, a fixed start so files are reproducible


def default_scenario(name: str, n_rows: int, seed: int | None,
                     faults: Sequence[dict] | None = None,
                     slo: dict | None = None) -> dict[str, Any]:
    """Return a scenario dict shaped like Scenario.to_dict(): three stages and one fault."""
    third = max(1, n_rows // 3)
    stages = [
        {"name": "warmup", "until_s": third, "users": 5, "spawn_rate": 5},
        {"name": "steady", "until_s": 2 * third, "users": 20, "spawn_rate": 10},
        {"name": "spike", "until_s": n_rows, "users": 60, "spawn_rate": 30},
    ]
    if faults is None:
        faults = [{"kind": "latency", "start_s": max(0, n_rows // 2), "duration_s": max(1, n_rows // 10),
                   "intensity": 0.5}]
    return {
        "name": name, "description": f"synthetic {name} scenario for tests", "duration_s": n_rows,
        "seed": seed, "slo": slo or {"latency_p95_ms": 800.0, "error_rate": 0.02},
        "target": {"workers": 2, "threads": 8},
        "load": {"wait_min_s": 0.1, "wait_max_s": 0.5, "mix": {"stress": 1.0}},
        "stages": stages, "faults": list(faults), "source": f"builtin:{name}",
    }


def make_frame(n_rows: int, scenario: dict, seed: int | None = 0, t0: float = T0,
               gaps: Sequence[int] = ()) -> dict[str, list]:
    """Return column -> values for n_rows seconds that follow the scenario's labels."""
    rng = np.random.default_rng(seed or 0)
    t = np.arange(n_rows)
    stage_ends = [s["until_s"] for s in scenario["stages"]]
    stage_idx = np.minimum(np.searchsorted(stage_ends, t, side="right"), len(stage_ends) - 1)
    phase = [scenario["stages"][i]["name"] for i in stage_idx]
    users = np.array([scenario["stages"][i]["users"] for i in stage_idx], dtype=float)
    fault = np.array(["none"] * n_rows, dtype=object)
    intensity = np.zeros(n_rows)
    for f in scenario["faults"]:
        span = slice(f["start_s"], min(n_rows, f["start_s"] + f["duration_s"]))
        fault[span] = f["kind"]
        intensity[span] = f["intensity"]

    rps = users * rng.uniform(1.6, 2.4, n_rows)
    lat50 = 40 + users * 2 + rng.gamma(2.0, 5.0, n_rows) + np.where(fault == "latency", 900 * intensity, 0)
    lat95 = lat50 * rng.uniform(1.8, 2.6, n_rows)
    lat99 = lat95 * rng.uniform(1.1, 1.5, n_rows)
    err = np.clip(rng.normal(0.002, 0.002, n_rows), 0, 1) + np.where(fault == "errors", intensity, 0)
    err = np.clip(err, 0, 1)
    failures = np.round(rps * err)
    cpu = 10 + users * 1.5 + rng.normal(0, 3, n_rows) + np.where(fault == "cpu", 80 * intensity, 0)
    rss = 120 + np.cumsum(np.where(fault == "memory", 2.0, 0.0)) + rng.normal(0, 0.5, n_rows)
    slo = scenario["slo"]
    violation = ((lat95 > slo["latency_p95_ms"]) | (err > slo["error_rate"])).astype(int)
    up = np.ones(n_rows, dtype=int)
    up[list(gaps)] = 0

    cols: dict[str, list] = {
        "timestamp": [utc_iso(t0 + i) for i in t],
        "elapsed_s": t.tolist(),
        "phase": phase,
        "users": users.tolist(),
        "fault": fault.tolist(),
        "slo_violation": violation.tolist(),
        "rps": rps.tolist(), "error_rate": err.tolist(),
        "latency_p50_ms": lat50.tolist(), "latency_p95_ms": lat95.tolist(), "latency_p99_ms": lat99.tolist(),
        "srv_rps": (rps * rng.uniform(0.97, 1.03, n_rows)).tolist(),
        "srv_error_rate": err.tolist(),
        "srv_latency_p95_ms": (lat95 * 0.9).tolist(),
        "cpu_percent": cpu.tolist(), "rss_mb": rss.tolist(),
        "threads": (20 + np.round(users / 4)).tolist(),
        "sys_cpu_percent": np.clip(cpu / 2 + 10, 0, 100).tolist(),
        "loadgen_cpu_percent": (5 + users * 0.4 + rng.normal(0, 1, n_rows)).tolist(),
        "target_up": up.tolist(),
        "failures": failures.tolist(),
        "srv_latency_p50_ms": (lat50 * 0.9).tolist(),
        "srv_latency_p99_ms": (lat99 * 0.9).tolist(),
        "srv_in_flight": np.round(rng.uniform(0, users / 5)).tolist(),
        "target_workers": [2.0] * n_rows,
        "fds": (30 + np.round(users / 2)).tolist(),
        "sys_mem_percent": rng.uniform(40, 45, n_rows).tolist(),
        "fault_intensity": intensity.tolist(),
        # Columns of the signal work (closed model here: a planned user count, no planned rate).
        "incident": ["none"] * n_rows,
        "planned_users": users.tolist(), "planned_rate": [None] * n_rows,
        "outstanding": np.round(users * 0.3).tolist(), "dropped": [0.0] * n_rows,
        "latency_p95_window_ms": lat95.tolist(), "latency_p99_window_ms": lat99.tolist(),
        "error_rate_window": err.tolist(),
        "srv_queue_p95_ms": (lat50 * 0.1).tolist(),
        "arrivals": rps.tolist(), "window_requests": (rps * 10).tolist(),
    }
    # A second with no data: empty measurements, like the collector writes.
    measured = [c for c in COLUMNS if c not in ("timestamp", "elapsed_s", "phase", "users", "fault",
                                                  "slo_violation", "target_up", "fault_intensity",
                                                  "incident", "planned_users", "planned_rate")]
    for g in gaps:
        for c in measured:
            cols[c][g] = None
        cols["slo_violation"][g] = 0
    return cols




def make_run(runs_dir: str | Path, n_rows: int = 120, scenario_name: str = "synthetic",
             seed: int | None = 1, *, run_id: str | None = None, status: str = "complete",
             faults: Sequence[dict] | None = None, slo: dict | None = None,
             gaps: Sequence[int] = (), t0: float = T0, extra_columns: dict[str, Sequence] | None = None,
             drop_columns: Sequence[str] = (), warnings: Sequence[str] = ()) -> Path:
    """Write a run folder under runs_dir and return its path.

    faults: scenario fault dicts (kind, start_s, duration_s, intensity); default one
    latency fault in the middle. gaps: seconds with target_up=0 and empty values.
    extra_columns: more columns appended after the contract ones. drop_columns: contract
    columns to leave out (to test validation).
    """
    scenario = default_scenario(scenario_name, n_rows, seed, faults=faults, slo=slo)
    run_id = run_id or f"{utc_iso(t0).replace('-', '').replace(':', '')}-{scenario_name}-s{seed}"
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    cols = make_frame(n_rows, scenario, seed, t0, gaps)
    for name, values in (extra_columns or {}).items():
        cols[name] = list(values)
    ordered = [c for c in COLUMNS if c in cols] + [c for c in cols if c not in COLUMNS]
    header = [c for c in ordered if c not in drop_columns]

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i in range(n_rows):
        writer.writerow([csv_cell(cols[c][i]) for c in header])
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
    atomic_write_text(run_dir / "events.jsonl", "".join(
        f'{{"t": {f["start_s"]}, "event": "fault_start", "kind": "{f["kind"]}"}}\n' for f in scenario["faults"]))

    meta = {
        "run_id": run_id, "status": status, "scenario": scenario, "seed": seed,
        "started_at": utc_iso(t0), "ended_at": utc_iso(t0 + n_rows),
        "target": {"embedded": True, "workers": 2, "threads": 8},
        "loadgen": {"tool": "locust", "workers": 0},
        "versions": {"pandas": "synthetic"},
        "host": {"hostname": "factory", "cpu_logical": 4, "cpu_physical": 2, "memory_gib": 8.0,
                 "cpu_model": "Synthetic CPU", "platform": "Linux", "python": "3.11"},
        "warnings": list(warnings), "rows": n_rows,
    }
    write_run_json(run_dir, meta)
    return run_dir
