"""The run report: what one run played and how it went, and its metrics timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from contract.runfolder import METRICS_CSV, Run, read_run
from contract.errors import BadInput
from contract.schema import slo_limits

from .. import plots
from .page import FigureWriter, Page, pct

TIMELINE_TEXT = (
    "Time runs left to right, in seconds since the run started. Grey and white bands are the "
    "scenario's phases (named above the top panel); coloured bands mark injected faults. Top: "
    "the response time users saw, median (p50) and p95 (95% of requests were faster), against "
    "the SLO's dashed red line; red dots are seconds that broke the SLO. Below: requests per "
    "second from the client and the server, error rates, the target's CPU and memory, and the "
    "number of simulated users. The bottom strip repeats the SLO-violation seconds and shows "
    "seconds with no data from the target. Look for how latency reacts when users rise past "
    "capacity or when a fault starts, and how long it takes to recover.")


def run_report(path: Path, writer: FigureWriter) -> Page:
    """Build the page of the run folder at `path`: its facts, then its timeline."""
    run = read_run(path)
    sc = scenario_of(run.meta)
    page = Page(f"Run report: {run.run_id}", f"Scenario “{sc.get('name', '?')}”, folder {path}")
    page.summary = run_facts(run.meta, run.frame)
    if not len(run.frame):
        raise BadInput(f"{path / METRICS_CSV}: no rows to plot")
    add_timeline(page, writer, run, "timeline.png", "Metrics over time")
    return page


def add_timeline(page: Page, writer: FigureWriter, run: Run, png: str, heading: str) -> None:
    """Plot a run's metrics over time into `png` and show it under `heading`."""
    sc = scenario_of(run.meta)
    name = writer.save(png, plots.run_timeline, run.frame, slo_of(run.meta),
                       f"Run {run.run_id} ({sc.get('name', '?')})")
    page.figure(name, heading, TIMELINE_TEXT)


def scenario_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return the scenario a run.json records (a dict with at least a name)."""
    sc = meta.get("scenario")
    return sc if isinstance(sc, dict) else {"name": str(sc or "unknown")}


def slo_of(meta: Mapping[str, Any]) -> dict[str, float]:
    """Return the SLO a run was labelled with: its scenario's, the default where it has none."""
    return slo_limits(scenario_of(meta).get("slo"))


def run_facts(meta: Mapping[str, Any], frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Return the summary rows of one run: what ran, its SLO, phases, faults and outcome."""
    sc, slo = scenario_of(meta), slo_of(meta)
    n = len(frame)
    viol, down = plots.violation_mask(frame), plots.down_mask(frame)
    p95 = plots.values(frame, "latency_p95_ms")
    x = plots.elapsed(frame)
    rows = [("run", str(meta.get("run_id", "?"))),
            ("scenario", f"{sc.get('name', '?')}" + (f" — {sc['description']}" if sc.get("description") else "")),
            ("status", str(meta.get("status", "unknown"))),
            ("started (UTC)", str(meta.get("started_at", "?"))),
            ("length", f"{n} rows ({n / 60:.1f} min at one row per second)"),
            ("seed", str(meta.get("seed", "-"))),
            ("SLO (per second)", f"p95 latency ≤ {slo['latency_p95_ms']:,.0f} ms and error rate ≤ "
                                 f"{100 * slo['error_rate']:g} %"),
            ("phases", _ranges(frame, plots.phase_segments(frame))),
            ("faults injected", _ranges(frame, plots.fault_segments(frame))),
            ("seconds violating the SLO", f"{int(viol.sum())} of {n} ({pct(viol.mean() if n else None)})"),
            ("seconds with the target down or no data", f"{int(down.sum())}")]
    if np.isfinite(p95).any():
        i = int(np.nanargmax(p95))
        rows.append(("worst p95 latency", f"{p95[i]:,.0f} ms at {x[i]:.0f} s"))
    rps = plots.values(frame, "rps")
    if np.isfinite(rps).any():
        rows.append(("throughput", f"mean {np.nanmean(rps):.1f} req/s, peak {np.nanmax(rps):.0f} req/s"))
    if meta.get("warnings"):
        rows.append(("warnings", "; ".join(str(w) for w in meta["warnings"])))
    return rows


def _ranges(frame: pd.DataFrame, segs: Sequence[tuple[int, int, str]], limit: int = 8) -> str:
    x = plots.elapsed(frame)
    parts = [f"{name or '(none)'} {x[a]:.0f}–{x[b - 1]:.0f} s" for a, b, name in segs[:limit]]
    if len(segs) > limit:
        parts.append(f"… ({len(segs)} in all)")
    return ", ".join(parts) or "none"
