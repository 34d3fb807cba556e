"""Turn an external metrics CSV (Kaggle, Prometheus or NAB export) into a run folder.

The result follows the run folder contract, so every command that reads runs accepts it:
timestamps sorted and regular, a row per interval, gaps as rows with `target_up=0`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.errors import BadInput

from contract.runfolder import (
    METRICS_CSV, RUN_JSON, atomic_write_json, atomic_write_text, host_facts, package_versions,
    sha256_file, utc_iso, write_run_json,
)
from contract.schema import COLUMNS, NUMERIC_COLUMNS

MIN_ROWS = 20
# Rows a resampled run may have: 23 days at 1 s. One stray timestamp (a row dated 2099 in a
# file of seconds) would otherwise ask for billions of empty rows; `max_rows` raises it.
DEFAULT_MAX_ROWS = 2_000_000
# Columns the importer computes itself; a source column with one of these names is renamed.
RESERVED = ("timestamp", "elapsed_s", "phase", "fault", "slo_violation", "target_up", "users")
TRUTHY = {"1", "true", "t", "yes", "y", "anomaly", "anomalous", "violation"}
FALSY = {"0", "false", "f", "no", "n", "normal", "ok", ""}


def sanitize(name: str) -> str:
    """Return a column name in lowercase with runs of other characters as one underscore."""
    clean = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
    return clean or "column"


def _read(file: Path):
    import pandas as pd

    if not file.is_file():
        raise BadInput(f"{file}: no such file")
    try:
        return pd.read_csv(file, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise BadInput(f"{file}: empty file (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{file}: not a readable CSV: {first}") from None


def parse_timestamps(values, file: Path, column: str):
    """Parse ISO strings, epoch seconds or epoch milliseconds into UTC timestamps (NaT when bad)."""
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    # Epoch numbers, a stray text cell or two among them (those rows are dropped with a warning).
    if numeric.notna().any() and numeric.notna().sum() >= 0.9 * values.notna().sum():
        # Epoch: the magnitude tells the unit (1e11 s is year 5138, 1e11 ms is 1973).
        magnitude = float(numeric.abs().median())
        unit = "ms" if magnitude >= 1e11 else "s"
        if magnitude >= 1e14:
            raise BadInput(f"{file}: {column}: numbers too large for epoch seconds or milliseconds "
                           f"(median {magnitude:.3g})")
        _check_epoch_range(numeric, unit, file, column)
        return _epoch_to_utc(numeric, unit), f"epoch_{unit}"
    text = values.astype("str").where(values.notna(), None)
    best = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    if best.notna().mean() < 0.99:
        # Kaggle exports use many layouts ("04/01/2014 00:05"); let pandas guess per value.
        mixed = pd.to_datetime(text, format="mixed", utc=True, errors="coerce")
        if mixed.notna().sum() > best.notna().sum():
            return mixed, "text"
    return best, "iso8601"


def _epoch_to_utc(numeric, unit: str):
    """Epoch seconds or milliseconds (range-checked, NaN for none) as UTC timestamps.

    Through whole nanoseconds, not pandas' float path: for an empty cell that path rounds
    a fraction it never set (an uninitialised buffer) under errstate(over="raise"), so a
    file with a blank timestamp could raise FloatingPointError, depending on what that
    memory held before (found by tests/test_fuzz.py).
    """
    import numpy as np
    import pandas as pd

    with np.errstate(over="ignore", invalid="ignore"):
        ns = numeric.to_numpy(dtype="float64") * (1e6 if unit == "ms" else 1e9)
        whole = np.where(np.isnan(ns), float(np.iinfo("int64").min), np.rint(ns)).astype("int64")  # min is NaT
    return pd.Series(pd.to_datetime(whole, unit="ns", utc=True), index=numeric.index)


def _check_epoch_range(numeric, unit: str, file: Path, column: str) -> None:
    """Refuse an epoch outside what a timestamp can hold (years 1677 to 2262), naming the first one."""
    import pandas as pd

    scale = 1e3 if unit == "ms" else 1.0
    # A second inside the limits: at the very edge a float rounds past them.
    low, high = (pd.Timestamp.min.timestamp() + 1) * scale, (pd.Timestamp.max.timestamp() - 1) * scale
    outside = (numeric < low) | (numeric > high)
    if outside.any():
        row = int(outside.to_numpy().argmax())
        raise BadInput(f"{file}: {column}: {_number(numeric.iloc[row])} at row {row + 2} is not a time "
                       f"(epoch {'milliseconds' if unit == 'ms' else 'seconds'} must be within the years "
                       f"1677 to 2262)")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e18 else f"{value:g}"


def _labels(values, file: Path, column: str):
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum():
        return (numeric.fillna(0) != 0).astype("int64")
    words = values.astype("str").str.strip().str.lower().where(values.notna(), "")
    unknown = sorted(set(words) - TRUTHY - FALSY)
    if unknown:
        raise BadInput(f"{file}: {column}: label values must be numbers or true/false, got {unknown[0]!r}")
    return words.isin(TRUTHY).astype("int64")


def _numeric_columns(frame, skip: set[str]) -> tuple[dict[str, Any], list[str]]:
    """Return source column -> float values for numeric columns, and the dropped ones."""
    import pandas as pd

    kept, dropped = {}, []
    for col in frame.columns:
        if col in skip:
            continue
        series = frame[col]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            kept[col] = series.astype("float64")
            continue
        converted = pd.to_numeric(series, errors="coerce")
        if series.notna().any() and converted.notna().sum() == series.notna().sum():
            kept[col] = converted.astype("float64")
        else:
            dropped.append(str(col))
    return kept, dropped


def _target_names(sources: list[str], column_map: dict[str, str] | None = None) -> dict[str, str]:
    """Map source columns to output names: the `column_map` name, else sanitized; unique, never a computed column."""
    column_map = column_map or {}
    names: dict[str, str] = {c: column_map[c] for c in sources if c in column_map}
    used: set[str] = set(names.values())
    for col in sources:
        if col in column_map:
            continue
        name = sanitize(col)
        if name in RESERVED:
            name = f"{name}_src"
        base, n = name, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names[col] = name
    return names


def parse_column_map(pairs: list[str] | None, option: str = "--map") -> dict[str, str]:
    """Turn `SRC=DST` strings into {SRC: DST}; DST must be a plain lab column name."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        src, sep, dst = str(pair).partition("=")
        src, dst = src.strip(), dst.strip()
        if not sep or not src or not dst:
            raise BadInput(f"{option}: {pair!r}: expected SRC=DST (like value=cpu_percent)")
        if sanitize(dst) != dst:
            raise BadInput(f"{option}: {pair!r}: {dst!r} is not a column name (lowercase letters, digits and "
                           f"underscores, like {sanitize(dst)!r})")
        if dst in RESERVED:
            raise BadInput(f"{option}: {pair!r}: {dst} is a column the importer computes itself "
                           f"({', '.join(RESERVED)})")
        if src in out or dst in out.values():
            raise BadInput(f"{option}: {pair!r}: {src if src in out else dst} is mapped twice")
        out[src] = dst
    return out


def import_csv(file: str | os.PathLike, *, timestamp_col: str, label_col: str | None = None,
               out_dir: str | os.PathLike = "runs", interval_s: int | None = None,
               run_id: str | None = None, max_rows: int = DEFAULT_MAX_ROWS,
               column_map: dict[str, str] | None = None, nab_windows: str | os.PathLike | None = None) -> Path:
    """Import a metrics CSV as a run folder under out_dir and return the folder.

    Timestamps are parsed (ISO 8601, epoch s or ms), sorted, de-duplicated (last row
    wins), and resampled to interval_s (inferred from the median step when None) by the
    mean of each bin; empty bins become rows with empty values and `target_up=0`. Numeric
    columns are kept under sanitized names (a name equal to a contract metric fills that
    column); non-numeric columns are dropped with a warning in run.json. The label column
    (nonzero or true means violation) becomes `slo_violation`. A file whose timestamps span
    more than `max_rows` intervals is refused before anything is allocated.

    `column_map` ({source column: lab name}, `--map value=cpu_percent`) names columns
    instead of sanitizing them. `nab_windows` is NAB's label file (combined_windows.json):
    the entry whose key ends with this file's name lists [start, end] timestamps, and the
    rows whose interval starts inside one become `slo_violation` = 1 (instead of a label column).
    """
    file = Path(file)
    warnings: list[str] = []
    column_map = dict(column_map or {})
    if nab_windows is not None and label_col is not None:
        raise BadInput(f"--nab-windows: {nab_windows}: give either --label-col or --nab-windows, not both")
    windows = read_nab_windows(Path(nab_windows), file.name) if nab_windows is not None else None
    raw = _read_checked(file, timestamp_col, label_col, interval_s)
    _check_map(raw, file, column_map, timestamp_col, label_col)
    frame, names, stamp_kind = _metric_frame(raw, file, timestamp_col, label_col, warnings, column_map)
    grid = _resample(frame, file, timestamp_col, label_col, interval_s, max_rows, warnings)
    labelled = None
    if windows is not None:
        grid.values["slo_violation"], labelled = _window_labels(windows[1], grid, nab_windows, warnings)
    out = _contract_frame(grid.values, grid.up, grid.start, grid.interval_s,
                          has_labels=bool(label_col) or windows is not None)
    run_dir = _new_run_dir(Path(out_dir), run_id or f"imported-{sanitize(file.stem)}")
    atomic_write_text(run_dir / METRICS_CSV, out.to_csv(index=False, lineterminator="\n", na_rep=""))
    end = grid.start + grid.n_bins * grid.interval_s
    write_run_json(run_dir, {
        "run_id": run_dir.name, "status": "complete",
        "scenario": {"name": "imported", "description": f"imported from {file.name}",
                     "duration_s": grid.n_bins * grid.interval_s, "seed": None,
                     "slo": {"latency_p95_ms": None, "error_rate": None}, "stages": [], "faults": [],
                     "source": f"import-csv:{file.name}"},
        "seed": None, "started_at": utc_iso(grid.start), "ended_at": utc_iso(end),
        "interval_s": grid.interval_s, "rows": grid.n_bins,
        "source": {"file": str(file), "name": file.name, "sha256": sha256_file(file),
                   "timestamp_col": timestamp_col, "timestamp_format": stamp_kind,
                   "label_col": label_col, "rows_read": int(len(raw)),
                   **({"nab_windows": {"file": str(nab_windows), "key": windows[0], "windows": windows[1],
                                       "rows_labelled": labelled}} if windows is not None else {}),
                   "interval_s": grid.interval_s, "interval_inferred": grid.inferred,
                   "columns": {str(k): v for k, v in names.items()}},
        "target": {}, "loadgen": {},
        "versions": package_versions(), "host": host_facts(), "warnings": warnings,
    })
    return run_dir


def _read_checked(file: Path, timestamp_col: str, label_col: str | None, interval_s: int | None):
    """Read the CSV and check the named columns and the interval before anything else."""
    raw = _read(file)
    raw.columns = [str(c).strip() for c in raw.columns]
    if timestamp_col not in raw.columns:
        raise BadInput(f"{file}: timestamp column '{timestamp_col}' not found "
                       f"(columns: {', '.join(raw.columns) or 'none'})")
    if label_col is not None and label_col not in raw.columns:
        raise BadInput(f"{file}: label column '{label_col}' not found "
                       f"(columns: {', '.join(raw.columns)})")
    if len(raw) == 0:
        raise BadInput(f"{file}: too short: 0 rows, need at least {MIN_ROWS}")
    if interval_s is not None and interval_s < 1:
        raise BadInput(f"{file}: --interval: must be a whole number of seconds >= 1, got {interval_s}")
    return raw


def _check_map(raw, file: Path, column_map: dict[str, str], timestamp_col: str, label_col: str | None) -> None:
    """Refuse a --map that names a column the file lacks, or the timestamp or label column."""
    for src in column_map:
        if src not in raw.columns:
            raise BadInput(f"--map: {src}={column_map[src]}: {file} has no column '{src}' "
                           f"(columns: {', '.join(raw.columns)})")
        if src in (timestamp_col, label_col):
            raise BadInput(f"--map: {src}={column_map[src]}: '{src}' is the "
                           f"{'timestamp' if src == timestamp_col else 'label'} column")


def read_nab_windows(path: Path, file_name: str) -> tuple[str, list[list[str]]]:
    """Return (key, [[start, end], ...]) of NAB's label file for the data file named `file_name`."""
    import json

    import pandas as pd

    if not path.is_file():
        raise BadInput(f"--nab-windows: {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"--nab-windows: {path}: not a JSON file: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise BadInput(f"--nab-windows: {path}: expected an object keyed by <folder>/<file>.csv "
                       f"(NAB's labels/combined_windows.json)")
    keys = [k for k in data if str(k).replace("\\", "/").rsplit("/", 1)[-1] == file_name]
    if len(keys) != 1:
        raise BadInput(f"--nab-windows: {path}: {'no key' if not keys else f'{len(keys)} keys'} ending in "
                       f"/{file_name} ({len(data)} keys, like {next(iter(data), '-')!r})")
    windows = data[keys[0]]
    ok = isinstance(windows, list) and all(isinstance(w, list) and len(w) == 2 for w in windows)
    if ok:
        stamps = pd.to_datetime(pd.Series([str(v) for w in windows for v in w], dtype="object"),
                                utc=True, errors="coerce", format="mixed")
        ok = not stamps.isna().any() and all(stamps[2 * i] <= stamps[2 * i + 1] for i in range(len(windows)))
    if not ok:
        raise BadInput(f"--nab-windows: {path}: {keys[0]}: expected a list of [start, end] timestamps, "
                       f"start before end")
    return str(keys[0]), [[str(a), str(b)] for a, b in windows]


def _window_labels(windows: list[list[str]], grid: "_Grid", path, warnings: list[str]):
    """1 for each row whose interval starts inside a window (ends included), and the count of them."""
    import numpy as np
    import pandas as pd

    starts = grid.start + np.arange(grid.n_bins) * grid.interval_s
    label = np.zeros(grid.n_bins, dtype="int64")
    outside = []
    for a, b in windows:
        # NAB's timestamps carry no zone; the data file's are read as UTC, so these are too.
        lo, hi = (pd.to_datetime(v, utc=True, format="mixed").timestamp() for v in (a, b))
        inside = (starts >= lo) & (starts <= hi)
        label[inside] = 1
        if not inside.any():
            outside.append((a, b))
    if outside:
        warnings.append(f"nab_windows_outside: {len(outside)} window(s) of {path} hold no row of the file "
                        f"(first {outside[0][0]} to {outside[0][1]})")
    return pd.Series(label, index=grid.values.index), int(label.sum())


def _metric_frame(raw, file: Path, timestamp_col: str, label_col: str | None, warnings: list[str],
                  column_map: dict[str, str] | None = None):
    """The numeric columns under their output names, the label, and a sorted, de-duplicated `__t`."""
    import pandas as pd

    stamps, stamp_kind = parse_timestamps(raw[timestamp_col], file, timestamp_col)
    bad = int(stamps.isna().sum())
    if bad == len(raw):
        sample = raw[timestamp_col].dropna().astype("str").head(1).tolist()
        raise BadInput(f"{file}: timestamp column '{timestamp_col}': no parseable timestamp "
                       f"(first value {sample[0]!r})" if sample else
                       f"{file}: timestamp column '{timestamp_col}': empty")
    if bad:
        warnings.append(f"unparseable_timestamps: {bad} row(s) with an unparseable "
                        f"'{timestamp_col}' dropped")
    skip = {timestamp_col} | ({label_col} if label_col else set())
    # A pandas index saved with the data (common in Kaggle exports) is not a metric.
    index_cols = [c for c in raw.columns if c.startswith("Unnamed:") and c not in skip]
    if index_cols:
        skip |= set(index_cols)
        warnings.append(f"index_columns_dropped: {', '.join(index_cols)}")
    numeric, dropped = _numeric_columns(raw, skip)
    if not numeric:
        raise BadInput(f"{file}: no numeric columns besides '{timestamp_col}'"
                       + (f" and '{label_col}'" if label_col else "")
                       + (f" (non-numeric: {', '.join(dropped)})" if dropped else ""))
    if dropped:
        warnings.append(f"non_numeric_columns_dropped: {', '.join(dropped)}")
    unmapped = [c for c in (column_map or {}) if c not in numeric]
    if unmapped:
        raise BadInput(f"--map: {unmapped[0]}={column_map[unmapped[0]]}: '{unmapped[0]}' in {file} is not numeric")
    names = _target_names(list(numeric), column_map)
    frame = pd.DataFrame({names[c]: v for c, v in numeric.items()})
    if label_col:
        frame["slo_violation"] = _labels(raw[label_col], file, label_col)
    frame["__t"] = stamps
    frame = frame[frame["__t"].notna()]
    # Stable sort keeps file order among equal timestamps, so "last wins" means last in the file.
    frame = frame.sort_values("__t", kind="stable")
    rows_read = len(frame)
    frame = frame.drop_duplicates("__t", keep="last")
    if rows_read - len(frame):
        warnings.append(f"duplicate_timestamps: {rows_read - len(frame)} row(s) dropped (last row wins)")
    frame.attrs["rows_read"] = rows_read
    return frame, names, stamp_kind


@dataclass
class _Grid:
    """The values resampled onto a regular grid of `n_bins` intervals from `start`."""

    values: Any
    up: Any
    start: float
    interval_s: int
    n_bins: int
    inferred: bool


def _resample(frame, file: Path, timestamp_col: str, label_col: str | None, interval_s: int | None,
              max_rows: int, warnings: list[str]) -> _Grid:
    """Average the rows into bins of `interval_s` (inferred from the median step when None)."""
    import numpy as np
    import pandas as pd

    rows_read = frame.attrs["rows_read"]
    seconds = (frame["__t"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    inferred = interval_s is None
    if inferred:
        steps = np.diff(seconds)
        interval_s = max(1, int(round(float(np.median(steps))))) if len(steps) else 1
    start = float(np.floor(seconds[0]))
    bins = np.floor((seconds - start) / interval_s).astype("int64")
    n_bins = int(bins[-1]) + 1
    if n_bins > max_rows:
        raise BadInput(f"{file}: {timestamp_col}: timestamps span {_span(seconds[-1] - seconds[0])} "
                       f"({utc_iso(seconds[0])} to {utc_iso(seconds[-1])}): {n_bins:,} rows of "
                       f"{interval_s} s from {rows_read:,} rows read, more than the {max_rows:,} allowed "
                       f"(a stray timestamp? --max-rows raises the bound)")
    grouped = frame.drop(columns="__t").assign(__bin=bins).groupby("__bin", sort=True)
    values = grouped.mean()
    if label_col:
        # Any violation inside a bin marks the bin.
        values["slo_violation"] = grouped["slo_violation"].max()
    if n_bins < MIN_ROWS:
        raise BadInput(f"{file}: too short: {n_bins} rows at {interval_s} s, need at least {MIN_ROWS}")
    observed = values.index
    values = values.reindex(range(n_bins))
    if n_bins - len(observed):
        warnings.append(f"gaps: {n_bins - len(observed)} interval(s) without data became rows with target_up=0")
    merged_bins = len(frame) - len(observed)
    if merged_bins > 0:
        warnings.append(f"resampled: {merged_bins} row(s) averaged into shared {interval_s} s bins")
    return _Grid(values, values.index.isin(observed), start, interval_s, n_bins, inferred)


def _span(seconds: float) -> str:
    """A duration in the largest unit that fits: 12 s, 40 min, 5.2 h, 27000 days."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}" if seconds < 1000 * size else f"{seconds / size:,.0f} {unit}"
    return f"{seconds:g} s"


def _contract_frame(values, up, start: float, interval_s: int, has_labels: bool):
    """Return the resampled values laid out as COLUMNS then the extra source columns."""
    import pandas as pd

    n = len(values)
    elapsed = [i * interval_s for i in range(n)]
    out = pd.DataFrame({
        "timestamp": [utc_iso(start + e) for e in elapsed],
        "elapsed_s": elapsed,
        "phase": "imported",
        "users": None,
        "fault": "none",
        "slo_violation": values["slo_violation"].fillna(0).astype("int64").to_numpy() if has_labels else 0,
        "target_up": up.astype("int64"),
    })
    metric_cols = [c for c in NUMERIC_COLUMNS if c not in RESERVED]
    for col in COLUMNS:
        if col in out:
            continue
        # A source column named like a contract metric (cpu_percent, rps, ...) fills it.
        out[col] = values[col].to_numpy() if col in metric_cols and col in values else None
    extras = [c for c in values.columns if c not in COLUMNS]
    for col in extras:
        out[col] = values[col].to_numpy()
    return out[COLUMNS + extras]


def _new_run_dir(out_dir: Path, base: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name, n = base, 1
    while (out_dir / name).exists():
        n += 1
        name = f"{base}-{n}"
    run_dir = out_dir / name
    run_dir.mkdir()
    return run_dir


def print_import(console, run_dir: Path) -> None:
    """What `import-csv` read, what it wrote, and its warnings."""
    from contract.runfolder import read_meta

    meta = read_meta(run_dir)
    source = meta["source"]
    console.print(f"imported {source['rows_read']} rows as {meta['rows']} rows of {meta['interval_s']} s "
                  f"({'inferred' if source['interval_inferred'] else 'given'}); "
                  f"columns: {', '.join(source['columns'].values())}", highlight=False)
    if source.get("nab_windows"):
        nab = source["nab_windows"]
        console.print(f"labels: {len(nab['windows'])} NAB window(s) of {nab['key']} -> {nab['rows_labelled']} "
                      f"row(s) with slo_violation=1", highlight=False)
    for warning in meta["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"wrote [bold]{run_dir}[/]")
