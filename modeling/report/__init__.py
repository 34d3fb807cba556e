"""`lab.py report`: an HTML page with PNG figures for a run, a dataset or a model folder.

The output folder (default `reports/<name>/`) holds `report.html` and the PNGs it shows,
referenced by relative name, so the folder can be zipped, copied or opened from disk.
The page starts with a summary table, then one section per figure with a short text on
how to read it. Figures come from modeling/plots.py.

What TARGET is, by what it holds: `forecaster/` (a model folder), `run.json` (a run
folder), `runs/`, `manifest.json` or run folders (a dataset or a folder of runs).

One module per report: `run.py`, `dataset.py`, `model.py`; `page.py` is the HTML page
and the figure writer they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from contract.runfolder import METRICS_CSV, RUN_JSON, atomic_write_text, is_run_dir
from contract.errors import BadInput

from .dataset import dataset_report
from .model import model_facts, model_report
from .page import REPORT_HTML, FigureWriter, readable, remove_stale
from .run import run_facts, run_report

__all__ = ["DATASET", "MODEL", "REPORT_HTML", "RUN", "Report", "build_report", "default_out", "detect_kind",
           "model_facts", "run_facts"]

RUN, DATASET, MODEL = "run", "dataset", "model"


@dataclass
class Report:
    """What build_report wrote."""

    path: Path                                  # report.html
    kind: str                                   # run, dataset or model
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def detect_kind(target: str | Path) -> str:
    """Return "run", "dataset" or "model" for a folder, or raise BadInput naming what is missing."""
    path = Path(target)
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if not path.is_dir():
        raise BadInput(f"{path}: expected a run, dataset or model folder, got a file")
    if (path / "forecaster").is_dir():
        return MODEL
    if is_run_dir(path):
        return RUN
    if (path / "manifest.json").is_file() or (path / "runs").is_dir():
        return DATASET
    if any(is_run_dir(p) for p in path.iterdir() if p.is_dir()):
        return DATASET
    if (path / METRICS_CSV).is_file():
        raise BadInput(f"{path}: has {METRICS_CSV} but no {RUN_JSON} (a run still in progress, or not a run folder)")
    raise BadInput(f"{path}: not a run, dataset or model folder (a run folder holds {RUN_JSON}, a dataset "
                   f"folder holds runs/, a model folder holds forecaster/)")


def default_out(target: str | Path) -> Path:
    """Return reports/<name of the target folder>."""
    return Path("reports") / Path(target).resolve().name


def build_report(target: str | Path, out: str | Path | None = None, *, timelines: int = 3,
                 on_step: Callable[[str], None] | None = None) -> Report:
    """Write report.html and its PNGs for a run, dataset or model folder; return what was written."""
    kind = detect_kind(target)
    target = Path(target)
    out = Path(out) if out is not None else default_out(target)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    writer = FigureWriter(out, on_step or (lambda _msg: None))
    if kind == RUN:
        page = run_report(target, writer)
    elif kind == DATASET:
        page = dataset_report(target, writer, timelines)
    else:
        page = model_report(target, writer)
    remove_stale(out, writer.figures)
    path = readable(atomic_write_text(out / REPORT_HTML, page.render()))
    return Report(path, kind, list(writer.figures), list(page.notes))
