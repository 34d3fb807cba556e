"""Export runs for other tools: NAB layout (one `timestamp,value` CSV per metric), CSV, Parquet."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

from contract.errors import BadInput, LabError

from contract.runfolder import (
    Run, atomic_path, atomic_write_json, atomic_write_text, contained_path, included_runs, read_run,
    safe_name,
)
from contract.schema import COLUMNS, LABEL_COLUMNS, NUMERIC_COLUMNS
from .dataset import PARQUET, write_runs_parquet

NAB_TIME = "%Y-%m-%d %H:%M:%S"
NAB_WINDOW_TIME = "%Y-%m-%d %H:%M:%S.%f"  # as in NAB's labels/combined_windows.json
# Ground truth and bookkeeping, not signals a detector should see.
NOT_SIGNALS = set(LABEL_COLUMNS) | {"elapsed_s", "target_up", "fault_intensity"}


class ExportFormat(str, Enum):
    nab = "nab"
    csv = "csv"
    parquet = "parquet"


def _dataset_runs(path: Path) -> list[Path]:
    """Return the runs to export: a dataset's included runs, or every run found."""
    return included_runs(path)


def _unique(name: str, used: set[str]) -> str:
    """Return `name`, or `name-2`, `name-3`, ... if an earlier file already took it."""
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate.lower())
    return candidate


def signal_columns(run: Run, columns: Sequence[str] | None = None) -> list[str]:
    """Return the numeric signal columns of a run to export; BadInput for an unknown one."""
    import pandas as pd

    frame = run.frame
    if columns:
        unknown = [c for c in columns if c not in frame]
        if unknown:
            raise BadInput(f"{run.path / 'metrics.csv'}: column '{unknown[0]}' not found "
                           f"(--columns takes names from the CSV header)")
        return list(columns)
    extras = [c for c in frame.columns if c not in COLUMNS and pd.api.types.is_numeric_dtype(frame[c])]
    return [c for c in NUMERIC_COLUMNS if c not in NOT_SIGNALS and c in frame] + extras


def windows(frame, mask, kinds=None) -> list[dict[str, Any]]:
    """Return the contiguous stretches of True in mask (split where the kind changes)."""
    import numpy as np

    flags = np.asarray(mask, dtype=bool)
    if not flags.any():
        return []
    labels = np.asarray(kinds if kinds is not None else [""] * len(flags), dtype=object)
    before = np.r_[False, flags[:-1]]
    after = np.r_[flags[1:], False]
    changed_before = np.r_[True, labels[1:] != labels[:-1]]
    changed_after = np.r_[labels[1:] != labels[:-1], True]
    starts = np.flatnonzero(flags & (~before | changed_before))
    ends = np.flatnonzero(flags & (~after | changed_after))
    stamps, elapsed, step = frame["timestamp"], frame["elapsed_s"].to_numpy(), _step(frame)
    return [{"start": stamps.iloc[a], "end": stamps.iloc[b], "seconds": int(elapsed[b] - elapsed[a]) + step,
             "kind": labels[a] or None} for a, b in zip(starts, ends)]


def _step(frame) -> int:
    if len(frame) < 2:
        return 1
    return int(frame["elapsed_s"].diff().median())


def _nab_window(w: dict[str, Any]) -> list[str]:
    return [w["start"].strftime(NAB_WINDOW_TIME), w["end"].strftime(NAB_WINDOW_TIME)]


def export_dataset(path: str | os.PathLike, *, fmt: str | ExportFormat = "nab",
                   out_dir: str | os.PathLike, columns: Sequence[str] | None = None,
                   on_run=None) -> Path:
    """Export a dataset, a folder of runs or one run; return the folder (nab) or file written.

    nab: ``<out>/<run_id>/<metric>.csv`` with ``timestamp,value`` rows (seconds without a
    value are left out), ``labels_faults.json`` and ``labels_slo.json`` in NAB's
    combined_windows layout, ``windows.json`` with the fault kinds, and a README.txt.
    Run ids and column names come from the files, so each becomes a safe file name
    (`runio.safe_name`) and every path is checked to stay under `out_dir`.
    csv: ``<out>/dataset.csv``, every run's rows with ``run_id`` and ``scenario`` first.
    parquet: ``<out>/dataset.parquet``, the same as a dataset's Parquet file.
    """
    fmt = ExportFormat(fmt)
    path, out = Path(path), Path(out_dir)
    run_dirs = _dataset_runs(path)
    out.mkdir(parents=True, exist_ok=True)
    if fmt is ExportFormat.parquet:

        target = contained_path(out, PARQUET, f"--out {out}")
        write_runs_parquet(run_dirs, target, on_run=on_run)
        return target
    if fmt is ExportFormat.csv:
        return _export_csv(run_dirs, contained_path(out, "dataset.csv", f"--out {out}"), columns, on_run)
    return _export_nab(run_dirs, out, columns, on_run)


def _export_nab(run_dirs: Sequence[Path], out: Path, columns, on_run) -> Path:
    faults: dict[str, list] = {}
    slo: dict[str, list] = {}
    detail: dict[str, Any] = {}
    skipped: list[str] = []
    # Run ids and column names come from the files: each becomes one safe file name, and
    # every path is checked to stay under `out` (a symbolic link there could lead out).
    where = f"--out {out}"
    run_names = {n.lower() for n in ("labels_faults.json", "labels_slo.json", "windows.json", "README.txt")}
    for run_dir in run_dirs:
        run = read_run(run_dir)
        frame = run.frame
        run_name = _unique(safe_name(run.run_id, "run"), run_names)
        run_out = contained_path(out, run_name, where)
        run_out.mkdir(parents=True, exist_ok=True)
        fault_w = windows(frame, frame["fault"].fillna("none") != "none", frame["fault"])
        slo_w = windows(frame, frame["slo_violation"] == 1)
        detail[run_name] = {
            "run_id": run.run_id,
            "scenario": run.scenario_name,
            "faults": [{**w, "start": _iso(w["start"]), "end": _iso(w["end"])} for w in fault_w],
            "slo_violations": [{k: v for k, v in {**w, "start": _iso(w["start"]), "end": _iso(w["end"])}.items()
                                if k != "kind"} for w in slo_w],
        }
        stamps = frame["timestamp"].dt.strftime(NAB_TIME)
        file_names: set[str] = set()
        for col in signal_columns(run, columns):
            values = frame[col]
            keep = values.notna()
            file_name = _unique(safe_name(col, "column"), file_names) + ".csv"
            key = f"{run_name}/{file_name}"
            if not keep.any():
                skipped.append(key)
                continue
            body = _nab_csv(stamps[keep], values[keep])
            atomic_write_text(contained_path(run_out, file_name, where), body)
            faults[key] = [_nab_window(w) for w in fault_w]
            slo[key] = [_nab_window(w) for w in slo_w]
        if on_run:
            on_run(run_dir, len(frame))
    if not faults:
        raise LabError("nothing to export: no run has a non-empty signal column")
    atomic_write_json(contained_path(out, "labels_faults.json", where), faults)
    atomic_write_json(contained_path(out, "labels_slo.json", where), slo)
    atomic_write_json(contained_path(out, "windows.json", where), detail)
    atomic_write_text(contained_path(out, "README.txt", where), _readme(len(run_dirs), len(faults), skipped))
    return out


def _iso(stamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _nab_csv(stamps, values) -> str:
    import pandas as pd

    frame = pd.DataFrame({"timestamp": stamps.to_numpy(), "value": values.to_numpy()})
    # repr-precision floats so the values read back equal, as the round-trip test checks.
    return frame.to_csv(index=False, lineterminator="\n")


def _export_csv(run_dirs: Sequence[Path], path: Path, columns, on_run) -> Path:
    header_cols: list[str] | None = None
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        for run_dir in run_dirs:
            run = read_run(run_dir)
            frame = run.frame
            frame.insert(0, "run_id", run.run_id)
            frame.insert(1, "scenario", run.scenario_name)
            frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            if header_cols is None:
                wanted = list(columns) if columns else [c for c in frame.columns if c not in ("run_id", "scenario")]
                missing = [c for c in wanted if c not in frame]
                if missing:
                    raise BadInput(f"{run.path / 'metrics.csv'}: column '{missing[0]}' not found")
                header_cols = ["run_id", "scenario"] + [c for c in wanted if c not in ("run_id", "scenario")]
            # Later runs are aligned to the first run's columns (missing ones empty).
            frame.reindex(columns=header_cols).to_csv(fh, index=False, header=fh.tell() == 0,
                                                       lineterminator="\n")
            if on_run:
                on_run(run_dir, len(frame))
    return path


def _readme(runs: int, files: int, skipped: Sequence[str]) -> str:
    lines = [
        "Stability Lab export in the NAB (Numenta Anomaly Benchmark) layout",
        "",
        f"{runs} run(s), {files} series.",
        "",
        "<run_id>/<metric>.csv   one series per metric of each run: columns timestamp,value;",
        "                        timestamp is UTC 'YYYY-MM-DD HH:MM:SS'; seconds where the metric",
        "                        was not observed are left out (NAB files have no empty values).",
        "labels_faults.json      NAB combined_windows layout: {\"<run_id>/<metric>.csv\":",
        "                        [[start, end], ...]} with one window per contiguous stretch of",
        "                        injected fault (any kind); start and end are the first and last",
        "                        labelled second, inclusive. Use it as NAB's labels file to score",
        "                        how early a detector flags a fault.",
        "labels_slo.json         the same layout, windows where slo_violation = 1 (client p95",
        "                        latency or error rate above the scenario's SLO).",
        "windows.json            per run: the fault windows with their kind and the SLO windows,",
        "                        with ISO 8601 UTC bounds and lengths in seconds, and the run_id.",
        "",
        "Folder and file names are the run ids and metric names with every character other than",
        "letters, digits, '.', '_' and '-' replaced by '_' (windows.json keeps the original run_id).",
        "",
        "Every series of a run gets the same windows: the labels describe the run, not the metric.",
        "Label columns (phase, users, fault, slo_violation, fault_intensity, target_up) are not",
        "exported as series, so a detector cannot read the answer.",
    ]
    if skipped:
        lines += ["", f"Not written, no observed value at all ({len(skipped)}): " + ", ".join(skipped)]
    return "\n".join(lines) + "\n"
