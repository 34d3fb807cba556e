"""The dataset report: what a dataset holds, every run at a glance, a few timelines, a table of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from collector.dataset import dataset_info
from contract.runfolder import read_run
from contract.errors import BadInput

from .. import plots
from ..data import run_folders
from .page import FigureWriter, Page, pct, safe_name
from .run import add_timeline, slo_of

GRID_MAX_RUNS = 36
TABLE_MAX_RUNS = 200
GRID_COLUMNS = ["elapsed_s", "phase", "fault", "slo_violation", "target_up", "latency_p95_ms"]


def dataset_report(path: Path, writer: FigureWriter, timelines: int) -> Page:
    """Build the page of a dataset (or a folder of runs), with up to `timelines` full run timelines."""
    info = dataset_info(path)
    page = Page(f"Dataset report: {path.resolve().name}", f"Folder {path}")
    page.summary = dataset_facts(info)
    entries = _read_runs(path, writer)
    _add_overview(page, writer, info, entries)
    for e in _pick_timelines(entries, timelines):
        run = read_run(e["dir"])
        add_timeline(page, writer, run, f"timeline-{safe_name(run.run_id)}.png",
                     f"Run {run.run_id}: metrics over time")
    _add_runs_table(page, entries)
    return page


def dataset_facts(info: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the summary rows of a dataset from collector.dataset.dataset_info()."""
    rows = [
        ("runs", f"{info['runs']}" + (f" ({info['runs_excluded']} excluded as incomplete)"
                                        if info.get("runs_excluded") else "")),
        ("rows (seconds)", f"{info['rows']:,}"),
        ("hours of data", f"{info['hours']:.2f}"),
        ("scenarios", ", ".join(f"{k} ({v['runs']} runs)" for k, v in info["scenarios"].items())),
        ("seconds violating the SLO", pct(info["slo_violation_share"])),
        ("seconds with a fault injected", pct(sum(v for k, v in info["fault_share"].items() if k != "none"))),
        ("seconds with the target down or no data", pct(info["target_down_share"])),
        ("source", "dataset.parquet" if info["source"] == "parquet" else "run folders (no dataset.parquet yet)"),
    ]
    if info.get("created_at"):
        rows.append(("created (UTC)", info["created_at"]))
    return rows


def _read_runs(path: Path, writer: FigureWriter) -> list[dict[str, Any]]:
    """Read the grid columns of every run with rows; raise BadInput when there is none."""
    entries = []
    for run_dir in run_folders(path):
        writer.on_step(f"reading {run_dir.name}")
        run = read_run(run_dir, columns=GRID_COLUMNS)
        frame = run.frame
        viol = plots.violation_mask(frame)
        faults = plots.fault_segments(frame)
        entries.append({"dir": run_dir, "run_id": run.run_id, "scenario": run.scenario_name, "frame": frame,
                        "meta": run.meta, "rows": len(frame), "violations": int(viol.sum()),
                        "fault_s": sum(b - a for a, b, _ in faults),
                        "faults": ", ".join(dict.fromkeys(k for _, _, k in faults)) or "none",
                        "status": str(run.meta.get("status", "?"))})
    entries = [e for e in entries if e["rows"]]
    if not entries:
        raise BadInput(f"{path}: no run with rows to plot")
    return entries


def _add_overview(page: Page, writer: FigureWriter, info: dict[str, Any], entries: Sequence[dict[str, Any]]) -> None:
    """Add the figure of the dataset's shares and the grid of small run panels."""
    name = writer.save("dataset_shares.png", plots.dataset_shares, info)
    page.figure(name, "What the dataset contains",
                "How the dataset's seconds divide between phases, injected faults and SLO states, and how "
                "many runs each scenario contributes. A model learns mostly from what is common here: if SLO "
                "violations or a fault kind are rare, expect the model to be weakest on them.")
    grid = _round_robin(entries, GRID_MAX_RUNS)
    name = writer.save("runs_grid.png", plots.run_grid,
                       [(e["run_id"], e["frame"], slo_of(e["meta"])) for e in grid])
    shown = "" if len(grid) == len(entries) else f" (showing {len(grid)} of {len(entries)} runs, scenarios in turn)"
    page.figure(name, "Every run at a glance" + shown,
                "One small panel per run: its p95 latency over time (blue) against the SLO (dashed red), with "
                "phases as grey and white bands, injected faults as coloured bands and SLO-violation seconds "
                "as red ticks along the top (a second can violate the SLO through its error rate while latency "
                "is fine). Runs of the same scenario with different seeds should look alike "
                "but not identical.")


def _add_runs_table(page: Page, entries: Sequence[dict[str, Any]]) -> None:
    page.section("Runs", "Every run in the dataset with its length, SLO violations and injected faults.")
    rows = [[e["run_id"], e["scenario"], e["status"], e["rows"], pct(e["violations"] / e["rows"]), e["faults"]]
            for e in entries[:TABLE_MAX_RUNS]]
    page.table(["run", "scenario", "status", "seconds", "SLO violated", "faults"], rows, numeric=(3, 4))
    if len(entries) > TABLE_MAX_RUNS:
        page.note(f"the table lists the first {TABLE_MAX_RUNS} of {len(entries)} runs")


def _pick_timelines(entries: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Pick up to n runs for full timelines: one per scenario first, the most eventful first."""
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(entries, key=lambda e: (-e["violations"] - 10 * e["fault_s"], e["run_id"])):
        by_scenario.setdefault(e["scenario"], []).append(e)
    picked: list[dict[str, Any]] = []
    while len(picked) < n and any(by_scenario.values()):
        for runs in by_scenario.values():
            if runs and len(picked) < n:
                picked.append(runs.pop(0))
    return picked


def _round_robin(entries: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Return up to n entries, taking scenarios in turn, in run order within each."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        queues.setdefault(e["scenario"], []).append(e)
    out: list[dict[str, Any]] = []
    while len(out) < n and any(queues.values()):
        for q in queues.values():
            if q and len(out) < n:
                out.append(q.pop(0))
    order = {id(e): i for i, e in enumerate(entries)}
    return sorted(out, key=lambda e: order[id(e)])
