"""`lab.py report`: an HTML page with PNG figures for a run, a dataset or a model folder.

The output folder (default `reports/<name>/`) holds `report.html` and the PNGs it shows,
referenced by relative name, so the folder can be zipped, copied or opened from disk.
The page starts with a summary table, then one section per figure with a short text on
how to read it. Figures come from modeling/plots.py.

What TARGET is, by what it holds: `forecaster/` (a model folder), `run.json` (a run
folder), `runs/`, `manifest.json` or run folders (a dataset or a folder of runs).
"""

from __future__ import annotations

import html
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from collector.runio import (METRICS_CSV, RUN_JSON, atomic_write_bytes, atomic_write_text, is_run_dir,
                             read_meta, read_run)
from lab_errors import BadInput

from . import plots

REPORT_HTML = "report.html"
RUN, DATASET, MODEL = "run", "dataset", "model"
GRID_MAX_RUNS = 36
TABLE_MAX_RUNS = 200


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
    writer = _Writer(out, on_step or (lambda _msg: None))
    if kind == RUN:
        page = _run_report(target, writer)
    elif kind == DATASET:
        page = _dataset_report(target, writer, timelines)
    else:
        page = _model_report(target, writer)
    _remove_stale(out, writer.figures)
    path = _readable(atomic_write_text(out / REPORT_HTML, page.render()))
    return Report(path, kind, list(writer.figures), list(page.notes))


# ---------------------------------------------------------------- output


class _Writer:
    """Save figures as PNGs in the report folder, atomically, in the report's style."""

    def __init__(self, out: Path, on_step: Callable[[str], None]):
        self.out, self.on_step, self.figures = out, on_step, []

    def save(self, name: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
        self.on_step(f"plotting {name}")
        with plots.style():
            fig = make(*args, **kwargs)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", facecolor="white")
        _readable(atomic_write_bytes(self.out / name, buf.getvalue()))
        self.figures.append(name)
        return name


def _readable(path: Path) -> Path:
    """Give a written file the umask's usual mode: temp files are 0600, a report is meant to be shared."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return path


def _remove_stale(out: Path, keep: Sequence[str]) -> None:
    """Delete PNGs an earlier report.html in this folder showed and this one does not."""
    old = out / REPORT_HTML
    if not old.is_file():
        return
    try:
        text = old.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    for name in set(re.findall(r'src="([A-Za-z0-9._-]+\.png)"', text)) - set(keep):
        try:
            (out / name).unlink()
        except OSError:
            pass


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 20px;
       line-height: 1.5; color: #1a1a1a; max-width: 1500px; margin: 0 auto; padding: 24px 32px; }
h1 { font-size: 2.1em; margin-bottom: 0.2em; }
h2 { font-size: 1.55em; margin-top: 1.8em; border-bottom: 3px solid #0072B2; padding-bottom: 0.15em; }
.sub { color: #555; font-size: 1.05em; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.95em; }
th, td { border: 1px solid #c8c8c8; padding: 6px 14px; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
table.summary th { width: 16em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.yes { color: #006b3c; font-weight: bold; } .no { color: #B00020; font-weight: bold; }
figure { margin: 1em 0 2em; } figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption, .explain { font-size: 0.95em; color: #333; background: #f6f8fa; padding: 10px 16px;
                       border-left: 5px solid #0072B2; margin-top: 0.5em; }
ul.verdict li { margin-bottom: 0.4em; }
.note { color: #8a5a00; }
"""


class _Page:
    """An HTML page: a title, a summary table, then sections of text, tables and figures."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title, self.subtitle = title, subtitle
        self.summary: list[tuple[str, str]] = []
        self.blocks: list[str] = []
        self.notes: list[str] = []

    def section(self, title: str, text: str = "") -> None:
        self.blocks.append(f"<h2>{_e(title)}</h2>")
        if text:
            self.blocks.append(f'<p class="explain">{_e(text)}</p>')

    def figure(self, src: str, title: str, text: str) -> None:
        self.blocks.append(f"<h2>{_e(title)}</h2>\n<figure><img src=\"{_e(src)}\" alt=\"{_e(title)}\">"
                           f"<figcaption>{_e(text)}</figcaption></figure>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> None:
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = []
        for row in rows:
            cells = []
            for i, cell in enumerate(row):
                if isinstance(cell, bool):
                    cells.append(f'<td class="{"yes" if cell else "no"}">{"yes" if cell else "no"}</td>')
                else:
                    cls = ' class="num"' if i in numeric else ""
                    cells.append(f"<td{cls}>{_e(cell)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.blocks.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def bullets(self, lines: Sequence[str], cls: str = "") -> None:
        items = "".join(f"<li>{_e(line)}</li>" for line in lines)
        self.blocks.append(f'<ul class="{cls}">{items}</ul>')

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.blocks.append(f'<p class="note">Note: {_e(text)}</p>')

    def render(self) -> str:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in self.summary)
        return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{_e(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                f"<h1>{_e(self.title)}</h1>\n<p class=\"sub\">{_e(self.subtitle)}</p>\n"
                f"<h2>Summary</h2>\n<table class=\"summary\">{rows}</table>\n"
                + "\n".join(self.blocks) + "\n</body>\n</html>\n")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _safe(name: str) -> str:
    from collector.runio import safe_name

    return safe_name(name, "run")


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f} %"


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# ---------------------------------------------------------------- runs


def _scenario(meta: Mapping[str, Any]) -> dict[str, Any]:
    sc = meta.get("scenario")
    return sc if isinstance(sc, dict) else {"name": str(sc or "unknown")}


def _slo(meta: Mapping[str, Any]) -> dict[str, float]:
    from .data import DEFAULT_SLO

    slo = dict(DEFAULT_SLO)
    slo.update({k: float(v) for k, v in (_scenario(meta).get("slo") or {}).items()
                if k in DEFAULT_SLO and v is not None})
    return slo


def _ranges(frame: pd.DataFrame, segs: Sequence[tuple[int, int, str]], limit: int = 8) -> str:
    x = plots.elapsed(frame)
    parts = [f"{name or '(none)'} {x[a]:.0f}–{x[b - 1]:.0f} s" for a, b, name in segs[:limit]]
    if len(segs) > limit:
        parts.append(f"… ({len(segs)} in all)")
    return ", ".join(parts) or "none"


def run_facts(meta: Mapping[str, Any], frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Return the summary rows of one run: what ran, its SLO, phases, faults and outcome."""
    sc, slo = _scenario(meta), _slo(meta)
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
            ("seconds violating the SLO", f"{int(viol.sum())} of {n} ({_pct(viol.mean() if n else None)})"),
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


TIMELINE_TEXT = (
    "Time runs left to right, in seconds since the run started. Grey and white bands are the "
    "scenario's phases (named above the top panel); coloured bands mark injected faults. Top: "
    "the response time users saw, median (p50) and p95 (95% of requests were faster), against "
    "the SLO's dashed red line; red dots are seconds that broke the SLO. Below: requests per "
    "second from the client and the server, error rates, the target's CPU and memory, and the "
    "number of simulated users. The bottom strip repeats the SLO-violation seconds and shows "
    "seconds with no data from the target. Look for how latency reacts when users rise past "
    "capacity or when a fault starts, and how long it takes to recover.")


def _run_report(path: Path, writer: _Writer) -> _Page:
    run = read_run(path)
    sc = _scenario(run.meta)
    page = _Page(f"Run report: {run.run_id}", f"Scenario “{sc.get('name', '?')}”, folder {path}")
    page.summary = run_facts(run.meta, run.frame)
    if not len(run.frame):
        raise BadInput(f"{path / METRICS_CSV}: no rows to plot")
    name = writer.save("timeline.png", plots.run_timeline, run.frame, _slo(run.meta),
                       f"Run {run.run_id} ({sc.get('name', '?')})")
    page.figure(name, "Metrics over time", TIMELINE_TEXT)
    return page


# ---------------------------------------------------------------- datasets


def _dataset_runs(path: Path) -> list[Path]:
    from .data import run_folders

    return run_folders(path)


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


GRID_COLUMNS = ["elapsed_s", "phase", "fault", "slo_violation", "target_up", "latency_p95_ms"]


def _dataset_report(path: Path, writer: _Writer, timelines: int) -> _Page:
    from collector.dataset import dataset_info

    info = dataset_info(path)
    page = _Page(f"Dataset report: {path.resolve().name}", f"Folder {path}")
    page.summary = [
        ("runs", f"{info['runs']}" + (f" ({info['runs_excluded']} excluded as incomplete)"
                                        if info.get("runs_excluded") else "")),
        ("rows (seconds)", f"{info['rows']:,}"),
        ("hours of data", f"{info['hours']:.2f}"),
        ("scenarios", ", ".join(f"{k} ({v['runs']} runs)" for k, v in info["scenarios"].items())),
        ("seconds violating the SLO", _pct(info["slo_violation_share"])),
        ("seconds with a fault injected", _pct(sum(v for k, v in info["fault_share"].items() if k != "none"))),
        ("seconds with the target down or no data", _pct(info["target_down_share"])),
        ("source", "dataset.parquet" if info["source"] == "parquet" else "run folders (no dataset.parquet yet)"),
    ]
    if info.get("created_at"):
        page.summary.append(("created (UTC)", info["created_at"]))

    entries = []
    for run_dir in _dataset_runs(path):
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

    name = writer.save("dataset_shares.png", plots.dataset_shares, info)
    page.figure(name, "What the dataset contains",
                "How the dataset's seconds divide between phases, injected faults and SLO states, and how "
                "many runs each scenario contributes. A model learns mostly from what is common here: if SLO "
                "violations or a fault kind are rare, expect the model to be weakest on them.")
    grid = _round_robin(entries, GRID_MAX_RUNS)
    name = writer.save("runs_grid.png", plots.run_grid,
                       [(e["run_id"], e["frame"], _slo(e["meta"])) for e in grid])
    shown = "" if len(grid) == len(entries) else f" (showing {len(grid)} of {len(entries)} runs, scenarios in turn)"
    page.figure(name, "Every run at a glance" + shown,
                "One small panel per run: its p95 latency over time (blue) against the SLO (dashed red), with "
                "phases as grey and white bands, injected faults as coloured bands and SLO-violation seconds "
                "as red ticks along the top (a second can violate the SLO through its error rate while latency "
                "is fine). Runs of the same scenario with different seeds should look alike "
                "but not identical.")
    for e in _pick_timelines(entries, timelines):
        run = read_run(e["dir"])
        sc = _scenario(run.meta)
        name = writer.save(f"timeline-{_safe(run.run_id)}.png", plots.run_timeline, run.frame, _slo(run.meta),
                           f"Run {run.run_id} ({sc.get('name', '?')})")
        page.figure(name, f"Run {run.run_id}: metrics over time", TIMELINE_TEXT)

    page.section("Runs", "Every run in the dataset with its length, SLO violations and injected faults.")
    rows = [[e["run_id"], e["scenario"], e["status"], e["rows"], _pct(e["violations"] / e["rows"]), e["faults"]]
            for e in entries[:TABLE_MAX_RUNS]]
    page.table(["run", "scenario", "status", "seconds", "SLO violated", "faults"], rows, numeric=(3, 4))
    if len(entries) > TABLE_MAX_RUNS:
        page.note(f"the table lists the first {TABLE_MAX_RUNS} of {len(entries)} runs")
    return page


# ---------------------------------------------------------------- models


ALERT_NAMES = {"lstm": "LSTM warning head", "lstm_forecast": "LSTM forecast crosses the SLO",
               "reactive": "reactive threshold alert", "predict_linear": "predict_linear crosses the SLO"}


def _held_out_runs(bundle: Any) -> tuple[list[pd.DataFrame], list[str]]:
    """Load the runs held out at training (their tails for a one-run split); note what is missing."""
    from .data import chronological_split, load_runs

    notes, sources = [], []
    for s in bundle.meta.get("test_sources") or []:
        if s and Path(s).exists():
            sources.append(s)
        elif s:
            notes.append(f"held-out run {s} not found (paths in train.json are relative to where train ran)")
    if not sources:
        return [], notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_runs(sources)
    if any("[" in name for name in bundle.meta.get("test_runs", [])):
        runs = [chronological_split(r)[1] for r in runs]
    return runs, notes


def _training_profiles(bundle: Any) -> pd.DataFrame | None:
    """Rebuild the endpoint profiles the product clusters were fitted on (None without samples)."""
    from .data import run_folders
    from .products import endpoint_profiles, read_samples

    train_ids = set(bundle.meta.get("train_runs") or [])
    frames = []
    for source in bundle.meta.get("sources") or []:
        p = Path(source)
        if not p.is_dir():
            continue
        try:
            folders = run_folders(p)
        except BadInput:
            continue
        for folder in folders:
            try:
                run_id = str(read_meta(folder).get("run_id") or folder.name)
                if run_id in train_ids:
                    frames.append(read_samples(folder))
            except BadInput:
                continue
    if not frames:
        return None
    try:
        return endpoint_profiles(pd.concat(frames, ignore_index=True))
    except BadInput:
        return None


def model_facts(bundle: Any, result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the summary rows of a model: how it was trained and what it was scored on."""
    meta, p = bundle.meta, getattr(bundle.forecaster, "params_", {})
    train_runs, test_runs = meta.get("train_runs") or [], meta.get("test_runs") or []

    def names(xs: Sequence[str]) -> str:
        return ", ".join(xs[:8]) + (f" … ({len(xs)} in all)" if len(xs) > 8 else "")

    data = result.get("data", {})
    rows = [("model folder", str(bundle.folder)),
            ("created (UTC)", str(meta.get("created_at", "?"))),
            ("LSTM", f"preset {meta.get('preset', '?')}: window {p.get('window')} s in, horizon "
                     f"{p.get('horizon')} s out, {p.get('layers')} layer(s) of {p.get('units')} units"
                     + (", knows the planned users" if p.get("known_future") else "")),
            ("forecast metrics", ", ".join(plots.label(m) for m in data.get("key_metrics", p.get("key_metrics", [])))),
            ("training", f"{len(train_runs)} runs, {meta.get('train_rows', '?')} rows, "
                         f"{meta.get('epochs_run', '?')} epochs in {meta.get('train_seconds', '?')} s"),
            ("trained on", names(train_runs)),
            ("split", str(meta.get("split", "?"))),
            ("evaluated on", f"{names(data.get('runs', test_runs))} ({data.get('windows', '?')} windows)"),
            ("alarm threshold", f"{_f(data.get('alarm_threshold'))} (warning probability that raises an alarm)")]
    if bundle.regimes is not None:
        rows.append(("regimes", f"k={bundle.regimes.k_}: {', '.join(bundle.regimes.names_)}"))
    if bundle.products is not None:
        rows.append(("endpoint clusters", f"k={bundle.products.k_}: {', '.join(dict.fromkeys(bundle.products.names_))}"))
    return rows


def _pick_run(runs: Sequence[pd.DataFrame], window: int, horizon: int) -> pd.DataFrame | None:
    """Return the held-out run with the most SLO-violation seconds among those long enough to forecast."""
    usable = [r for r in runs if len(r) >= window + horizon]
    if not usable:
        return None
    return max(usable, key=lambda r: int(plots.violation_mask(r).sum()))


def _model_report(path: Path, writer: _Writer) -> _Page:
    from .baselines import forecast_all, linear_alert, reactive_alert
    from .data import run_name
    from .metrics import forecast_violates
    from .pipeline import METRICS_JSON, evaluate_bundle, load_bundle, read_meta_json
    from .regimes import truth_regimes

    writer.on_step("loading the model")
    bundle = load_bundle(path)
    page = _Page(f"Model report: {path.resolve().name}", f"Folder {path}")
    result = read_meta_json(path / METRICS_JSON)
    computed = False
    if not result:
        writer.on_step("evaluating (no metrics.json yet)")
        result = evaluate_bundle(bundle)
        computed = True
    if not {"data", "forecast", "early_warning"} <= set(result):
        raise BadInput(f"{path / METRICS_JSON}: not a metrics.json written by `lab.py evaluate`")
    page.summary = model_facts(bundle, result)
    if computed:
        page.summary.append(("metrics.json", "computed now for this report (it was missing)"))
    H = int(result["data"]["horizon_s"])

    page.section("Verdict", "The evaluation's own summary, in plain sentences. MASE compares a forecast's "
                            "error with naive persistence (\u201cthe next seconds look like now\u201d): below 1 "
                            "the model is better than that, above 1 it is worse.")
    page.bullets([line.strip() for line in result.get("verdict") or ["(no verdict in metrics.json)"]], "verdict")
    goals = result.get("goals") or {}
    if goals:
        page.section("Goals", "The project's targets for a model evaluated on scenarios it never saw in training.")
        page.table(["goal", "figure", "target", "met"],
                   [[k.replace("_", " "), _f(g.get("value")), g.get("goal"), bool(g.get("met"))]
                    for k, g in goals.items()], numeric=(1,))
    key = result["data"]["key_metrics"]
    page.section(f"Forecast error {H} s ahead (MASE)",
                 "One row per forecaster, one column per metric; lower is better and 1.00 is naive persistence. "
                 "n/a: the metric did not change on these runs, so persistence is exact and MASE is undefined.")
    page.table(["forecaster", *[plots.METRICS.get(m, (m,))[0] for m in key]],
               [[plots.MODEL_STYLES.get(n, ("", 0, n))[2], *[_f(s.get(m, {}).get("mase_at_h")) for m in key]]
                for n, s in result.get("summary", {}).items()], numeric=range(1, len(key) + 1))

    runs, notes = _held_out_runs(bundle)
    for n in notes:
        page.note(n)
    p = bundle.forecaster.params_
    run = _pick_run(runs, int(p["window"]), int(p["horizon"]))
    pred = None
    if run is not None:
        writer.on_step(f"forecasting {run_name(run)}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = bundle.forecaster.predict([run])
        except BadInput as exc:
            page.note(f"cannot forecast held-out run {run_name(run)}: {exc}")
    elif runs:
        page.note(f"no held-out run is long enough for a {p['window']} s window and {p['horizon']} s horizon")

    if pred is not None:
        w = pred.windows
        naive = forecast_all(w.x_key, H, w.key_metrics)["persistence"]
        name = writer.save("actual_vs_predicted.png", plots.actual_vs_predicted, run, w.t, pred.forecast, naive,
                           w.key_metrics, H, run_name(run))
        page.figure(name, "Actual vs predicted",
                    f"The original guide's plot, on run {run_name(run)}, which the model never saw in training. "
                    f"Black: what happened. Blue: what the LSTM predicted for that second, "
                    + ("1 s ahead" if H == 1 else f"1 s ahead (left) and {H} s ahead (right)")
                    + f", from the {p['window']} seconds before. Dotted grey: naive persistence, "
                    f"which just repeats the last value it saw. A forecast that looks like the black line shifted "
                    f"right is only copying the past; the MAE in each panel's title says which of the two is closer "
                    f"on average.")
    name = writer.save("error_by_horizon.png", plots.error_by_horizon, result)
    page.figure(name, "Error by horizon: LSTM vs baselines",
                "For each metric, the average forecast error at each step ahead on all held-out runs, relative to "
                "naive persistence (dashed grey, always 1). Baselines: moving average and EWMA (smoothed recent "
                "values) and linear extrapolation (what Prometheus predict_linear does). Errors usually grow "
                "with the horizon; the LSTM is useful where its thick blue line is below 1 and below the others.")
    if pred is not None:
        w = pred.windows
        alarms = {"lstm": pred.alarm,
                  "lstm_forecast": forecast_violates(pred.forecast, w.slo, w.key_metrics),
                  "reactive": reactive_alert(w.x_key, w.slo, w.key_metrics),
                  "predict_linear": linear_alert(w.x_key, H, w.slo, w.key_metrics)}
        name = writer.save("early_warning.png", plots.warning_timeline, run, w.t, pred.probability,
                           float(bundle.forecaster.warn_threshold_), alarms, H, run_name(run))
        page.figure(name, "Early warning over time",
                    f"Top: at each second the LSTM's probability that the SLO will be broken within the next {H} s "
                    f"(blue), with the alarm threshold (dashed). Red bands are the seconds that actually broke "
                    f"the SLO. Bottom: when each alert rule fires. A good early warning fires shortly before a "
                    f"red band starts and stays quiet elsewhere; the reactive alert can only fire once the SLO "
                    f"is already broken.")
    name = writer.save("lead_time.png", plots.lead_time, result)
    page.figure(name, "Lead time: how early does each alert warn?",
                f"Left: F1 per second (the balance of catching violations and avoiding false alarms; 1 is "
                f"perfect). Right: for each violation that starts after at least {H} calm seconds, how many "
                f"seconds before it the first alarm came, averaged, and the share of such violations caught. "
                f"A reactive alert has a lead time of 0 by definition.")
    ew = result["early_warning"]
    page.table(["alert", "precision", "recall", "F1", "mean lead (s)", "violations caught", "false alarms / h"],
               [[ALERT_NAMES.get(n, n), _f(s.get("precision")), _f(s.get("recall")), _f(s.get("f1")),
                 _f(s.get("mean_lead_s"), 1), _pct(s.get("event_recall")), _f(s.get("false_alarms_per_hour"), 1)]
                for n, s in ew.items() if isinstance(s, dict)], numeric=range(1, 7))

    if bundle.regimes is not None and run is not None:
        regimes = bundle.regimes.predict_names(run)
        name = writer.save("regimes.png", plots.regimes_timeline, run, regimes, truth_regimes(run),
                           dict(run.attrs.get("slo") or {}), run_name(run))
        r = result.get("regimes") or {}
        page.figure(name, "Operating regimes vs the ground truth",
                    "KMeans groups the seconds by the recent level and trend of latency, errors, CPU and "
                    "memory, without seeing any label; each group is named from the median of its members (stable, saturated, "
                    "recovering, ...). The middle strip is the model's regime, the bottom strip the truth: the "
                    "injected fault, else overload when the SLO is broken, else normal. Matching boundaries mean "
                    f"the regimes found something real. On all held-out runs: ARI {_f(r.get('ari'))}, NMI "
                    f"{_f(r.get('nmi'))} (1 = perfect agreement, 0 = chance). Grey 'unknown' marks the first "
                    "seconds, before a full feature window exists.")
    if bundle.products is not None:
        profiles = _training_profiles(bundle)
        prod = bundle.products
        labels = ([prod.names_[i] for i in prod.predict(profiles)] if profiles is not None else [])
        centres = prod.scaler_.inverse_transform(np.asarray(prod.centroids_))[:, :2]
        name = writer.save("product_clusters.png", plots.product_clusters, profiles,
                           list(profiles.index) if profiles is not None else [], labels,
                           np.expm1(centres), prod.names_)
        page.figure(name, "Product (endpoint) clusters",
                    "Each dot is one endpoint of the target's product catalogue, placed by its median and p95 "
                    "response time over the training runs (both axes logarithmic). KMeans also used each endpoint's "
                    "request rate and error share; the colour is its cluster, named light, medium or heavy by p95. "
                    "Endpoints in the same cluster stress the service alike, so they are candidates for the same "
                    "capacity plan or cache."
                    + ("" if profiles is not None else " (The training runs' per-request samples were not found, "
                                                       "so only the cluster centres are shown.)"))
    history = getattr(bundle.forecaster, "history_", {}) or {}
    if history.get("loss"):
        name = writer.save("training_curves.png", plots.training_curves, history,
                           bundle.forecaster.params_.get("warn_weight"))
        page.figure(name, "Training curves",
                    "Loss per epoch on the training windows (blue) and on validation windows the optimiser does "
                    "not learn from (orange); the total adds the forecast head's error and the weighted warning head's "
                    "error (dashed). Both falling: the model is learning. Training falling while "
                    "validation rises: it is memorising (overfitting), and early stopping keeps the best "
                    "validation epoch (circled). The loss is in scaled units, so compare its shape, not its value.")
    if pred is None and not runs:
        page.note("the held-out runs were not found, so the figures that need them are left out")
    return page
