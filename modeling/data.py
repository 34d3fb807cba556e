"""Runs in, model-ready windows out: loading, feature choice, gaps, splits, scaling, windowing.

A run is a pandas DataFrame with the metrics.csv columns, one row per second, and
`attrs` holding `run_id`, `scenario` (name) and `slo` (`latency_p95_ms`, `error_rate`).

Gap rule (applied per run and per column, before windowing):

1. `inf` and `-inf` count as missing.
2. A stretch of at most `max_gap_s` consecutive missing values (default 5 s) that follows a
   real value is forward-filled: a short scrape failure is treated as "no change".
3. Longer stretches, and missing values at the start of a run, stay missing; any window
   (its W input rows or its H target rows) that touches one is dropped, with a warning
   that counts them. Windows never span two runs.
4. A `missing` indicator column (1 when any feature of that second was missing before
   filling, or `target_up` is 0) is appended as the last input feature, so the model
   sees that it is looking at imputed data.

Feature rule: every numeric column of the training runs except `elapsed_s` (time) and
`fault_intensity` (the injected fault's ground truth, which a real system does not
expose); columns that are constant or empty on the training runs are dropped with a
warning, except the key metrics, which are always kept.

Target rule: the forecast targets are the key metrics `horizon` seconds ahead, read raw:
a target second that is missing (empty, NaN or inf) stays missing and is masked when
scoring (never gap-filled); training uses only windows whose targets are all present.
The latency and error-rate targets are the pooled SLO-window columns
(`latency_p95_window_ms`, `error_rate_window`, what the SLO label reads). A run recorded
before those columns existed (or imported, or synthetic) has them empty: they are then
taken from the per-second columns (`pooled_targets`), which is exactly the pooled value
of a one-second window, the rule such runs were labelled with.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from contract.errors import BadInput
from contract.schema import DEFAULT_SLO, NO_INCIDENT, violates_slo
from contract.runfolder import included_runs, read_run

from .features import add_derived

KEY_METRICS: tuple[str, ...] = ("latency_p95_window_ms", "error_rate_window", "cpu_percent", "rps")
# Pooled SLO-window column -> the per-second column that stands in for it where a run has none.
POOLED_FALLBACK: dict[str, str] = {"latency_p95_window_ms": "latency_p95_ms",
                                   "latency_p99_window_ms": "latency_p99_ms",
                                   "error_rate_window": "error_rate"}
# The scenario's plan (contract.schema.PLAN_COLUMNS): the only columns a model may read ahead.
PLAN_COLUMNS: tuple[str, ...] = ("planned_rate", "planned_users")
LABEL = "slo_violation"
MISSING = "missing"
EXCLUDED = ("elapsed_s", "fault_intensity")
DEFAULT_MAX_GAP_S = 5
LATENCY_COLUMNS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "srv_latency_p50_ms",
                   "srv_latency_p95_ms", "srv_latency_p99_ms", "latency_p95_window_ms",
                   "latency_p99_window_ms", "srv_queue_p95_ms")


class DataWarning(UserWarning):
    """Something in the data was dropped or repaired; the CLI shows these to the user."""

def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def run_name(frame: pd.DataFrame) -> str:
    """Return the run id stored in a frame's attrs, or a placeholder."""
    return str(frame.attrs.get("run_id", "<run>"))


def pooled_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the run with each empty pooled-window column taken from its per-second column.

    The mechanism's derived columns (`modeling.features`: CPU per request, arrivals in excess
    of completions, the RSS slope) are added too, wherever their sources are, so every
    path into a model (training, evaluation, `predict_one`) reads them. The caller's frame
    is not changed: a shallow copy is returned, whose attrs record the stand-ins under
    `pooled_from`.
    """
    fill = {w: s for w, s in POOLED_FALLBACK.items() if s in frame.columns
            and (w not in frame.columns or not np.isfinite(_finite(frame[w])).any())}
    if not fill:
        return add_derived(frame)
    out = frame.copy(deep=False)
    out.attrs = {**frame.attrs, "pooled_from": {**(frame.attrs.get("pooled_from") or {}), **fill}}
    for window_col, second_col in fill.items():
        out[window_col] = pd.to_numeric(frame[second_col], errors="coerce")
    return add_derived(out)


def slo_columns(key_metrics: Sequence[str]) -> tuple[str, str]:
    """Return the latency and error-rate columns among the key metrics that the SLO rule reads.

    The pooled window columns when present (the contract's rule), else the per-second ones
    (models trained before the pooled target existed).
    """
    key = list(key_metrics)
    for lat, err in (("latency_p95_window_ms", "error_rate_window"), ("latency_p95_ms", "error_rate")):
        if lat in key and err in key:
            return lat, err
    raise BadInput("the SLO is defined on latency_p95_window_ms and error_rate_window (or latency_p95_ms "
                   "and error_rate): the key metrics must include one pair")


def run_slo(frame: pd.DataFrame) -> dict[str, float]:
    """Return the run's SLO thresholds (contract.schema.DEFAULT_SLO where the run has none)."""
    slo = dict(DEFAULT_SLO)
    slo.update({k: float(v) for k, v in (frame.attrs.get("slo") or {}).items()
                if k in DEFAULT_SLO and v is not None})
    return slo


# ---------------------------------------------------------------- loading


def _from_run_folder(path: Path) -> pd.DataFrame:

    run = read_run(path)
    frame = run.frame
    scenario = run.meta.get("scenario") if isinstance(run.meta.get("scenario"), dict) else {}
    frame.attrs.update(run_id=run.run_id, scenario=run.scenario_name, source=str(path),
                       slo={**DEFAULT_SLO, **(scenario.get("slo") or {})}, meta=run.meta)
    if run.meta.get("status") not in (None, "complete"):
        _warn(f"{path}: run status is {run.meta.get('status')!r}; using the rows it recorded")
    interval = run.meta.get("interval_s")
    if interval not in (None, 1, 1.0):
        # Imported runs keep their own step (docs/datasets.md); windows count rows, not seconds.
        frame.attrs["interval_s"] = interval
        _warn(f"{path}: rows are {interval} s apart; window and horizon count rows, not seconds")
    return frame


def run_folders(path: Path) -> list[Path]:
    """Return a dataset's included runs (per its manifest, inside the folder), else every run folder found."""
    return included_runs(path)


def read_csv_run(path: str | Path, slo: dict[str, float] | None = None) -> pd.DataFrame:
    """Read an imported CSV (at least the key metrics) as one run."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInput(f"{path}: unreadable CSV: {exc}") from None
    needed = [POOLED_FALLBACK.get(c, c) for c in KEY_METRICS]
    missing = [s for c, s in zip(KEY_METRICS, needed) if c not in frame.columns and s not in frame.columns]
    if missing:
        raise BadInput(f"{path}: column '{missing[0]}' missing (a run needs {', '.join(needed)}, "
                       f"or their pooled *_window columns)")
    for col in frame.columns:
        if col not in ("timestamp", "phase", "fault") and not pd.api.types.is_numeric_dtype(frame[col]):
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted
    slo = {**DEFAULT_SLO, **(slo or {})}
    if LABEL not in frame.columns:
        lat, err = (("latency_p95_window_ms", "error_rate_window")
                    if {"latency_p95_window_ms", "error_rate_window"} <= set(frame.columns)
                    else ("latency_p95_ms", "error_rate"))
        frame[LABEL] = [violates_slo(p95, e, slo) for p95, e in zip(frame[lat], frame[err])]
    frame.attrs.update(run_id=path.stem, scenario=path.stem, source=str(path), slo=slo)
    return frame


def load_runs(sources: Iterable[str | Path | pd.DataFrame]) -> list[pd.DataFrame]:
    """Load run folders, dataset folders, folders of runs, CSV files or frames into runs."""
    runs: list[pd.DataFrame] = []
    seen: set[Path] = set()
    for i, source in enumerate(sources):
        if isinstance(source, pd.DataFrame):
            frame = source.copy()
            frame.attrs = dict(source.attrs)
            frame.attrs.setdefault("run_id", f"frame-{i}")
            frame.attrs.setdefault("scenario", frame.attrs["run_id"])
            runs.append(frame)
            continue
        path = Path(source)
        if path.is_file() and path.suffix.lower() == ".csv":
            folders = []
            if path.resolve() not in seen:
                seen.add(path.resolve())
                runs.append(read_csv_run(path))
        else:
            folders = run_folders(path)
        for folder in folders:
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            runs.append(_from_run_folder(folder))
    if not runs:
        raise BadInput("no runs given (a source is a run folder, a dataset folder, a folder of runs or a CSV file)")
    return [pooled_targets(r) for r in runs]


def as_runs(runs: Any) -> list[pd.DataFrame]:
    """Return runs as frames: frames pass through, paths are loaded with `load_runs`."""
    if isinstance(runs, (pd.DataFrame, str, Path)):
        runs = [runs]
    runs = list(runs)
    if not runs:
        raise BadInput("no runs given")
    if all(isinstance(r, pd.DataFrame) for r in runs):
        return [pooled_targets(r) for r in runs]
    return load_runs(runs)


# ---------------------------------------------------------------- features and gaps


def has_slo_pair(key_metrics: Sequence[str]) -> bool:
    """Whether the key metrics hold a latency and an error-rate column the SLO rule can read."""
    try:
        slo_columns(key_metrics)
    except BadInput:
        return False
    return True


def numeric_columns(runs: Sequence[pd.DataFrame]) -> list[str]:
    """Return the numeric columns with at least one value in every run (time and label excluded)."""
    runs = [pooled_targets(r) for r in runs]
    common = [c for c in runs[0].columns if all(c in r.columns for r in runs[1:])]
    return [c for c in common if c not in (*EXCLUDED, LABEL, MISSING, "target_up")
            and all(pd.api.types.is_numeric_dtype(r[c]) and np.isfinite(_finite(r[c])).any() for r in runs)]


def resolve_targets(runs: Sequence[pd.DataFrame], targets: Sequence[str] | None = None) -> list[str]:
    """Return the columns to forecast: `targets` (checked), else the lab's key metrics.

    Every target must be a numeric column with values in every run; without `targets` the
    lab's KEY_METRICS are taken when the runs have them, else the message lists what the
    runs do hold (an imported `timestamp,value` file has no latency to forecast).
    """
    runs = [pooled_targets(r) for r in runs]
    found = numeric_columns(runs)
    listed = ", ".join(found) or "none"
    if targets is None:
        empty = [c for c in KEY_METRICS if c not in found]
        if not empty:
            return list(KEY_METRICS)
        raise BadInput(f"--target: the runs have no values in the lab's key metric {empty[0]} "
                       f"({run_name(runs[0])}); name the columns to forecast, like --target {found[0] if found else 'COL'} "
                       f"(numeric columns with values: {listed})")
    targets = list(dict.fromkeys(t.strip() for t in targets if t.strip()))
    if not targets:
        raise BadInput(f"--target: no column named (numeric columns with values: {listed})")
    for t in targets:
        if t not in found:
            where = next((run_name(r) for r in runs if t not in r.columns), None)
            problem = (f"no column '{t}' in {where}" if where else
                       f"'{t}' is not numeric or has no values in {next(run_name(r) for r in runs if t not in numeric_columns([r]))}")
            raise BadInput(f"--target: {problem} (numeric columns with values: {listed})")
    return targets


def annotated_label(frame: pd.DataFrame) -> bool:
    """Whether a run's slo_violation came from annotations (a label column, NAB windows), not the SLO rule.

    Such a label is known after the fact (NAB windows open before the anomaly), so it is
    never an input: only the lab's own label is what a monitor sees at the time.
    """
    source = (frame.attrs.get("meta") or {}).get("source")
    return isinstance(source, dict) and bool(source.get("label_col") or source.get("nab_windows"))


def default_inputs(runs: Sequence[pd.DataFrame], targets: Sequence[str]) -> list[str] | None:
    """The input columns by the feature rule, without an annotated label; None where the rule applies as is."""
    if not any(annotated_label(r) for r in runs):
        return None
    return [c for c in numeric_columns(runs) if c not in targets] + list(targets)


def row_interval(runs: Sequence[pd.DataFrame]) -> float:
    """Return the seconds between rows, shared by every run (1 for the lab's own runs)."""
    steps = sorted({float(r.attrs.get("interval_s") or 1) for r in runs})
    if len(steps) > 1:
        raise BadInput(f"the runs have rows {', '.join(f'{s:g}' for s in steps)} s apart; windows and horizons "
                       f"count rows, so use runs of one interval (import-csv --interval)")
    return steps[0] if steps else 1.0


def duration_text(rows: int, interval_s: float) -> str:
    """`24 rows (2 h)` at 300 s a row; `10 s` at 1 s a row."""
    seconds = rows * float(interval_s)
    if interval_s == 1:
        return f"{rows} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{rows} rows ({seconds / size:.3g} {unit})"
    return f"{rows} rows ({seconds:g} s)"


def select_features(runs: Sequence[pd.DataFrame], key_metrics: Sequence[str] = KEY_METRICS,
                    features: Sequence[str] | None = None,
                    exclude: Sequence[str] = EXCLUDED) -> list[str]:
    """Choose the input columns on the training runs (the module docstring states the rule)."""
    runs = [pooled_targets(r) for r in runs]
    require_columns(runs, list(key_metrics) + [LABEL])
    if features is not None:
        require_columns(runs, features)
        chosen = list(dict.fromkeys([*features, *key_metrics]))
    else:
        common = [c for c in runs[0].columns if all(c in r.columns for r in runs[1:])]
        chosen = [c for c in common if c not in exclude and c != MISSING
                  and all(pd.api.types.is_numeric_dtype(r[c]) or pd.api.types.is_bool_dtype(r[c])
                          for r in runs)]
    values = {c: np.concatenate([_finite(r[c]) for r in runs]) for c in chosen}
    empty = [c for c in chosen if np.isnan(values[c]).all()]
    bad_key = [c for c in key_metrics if c in empty]
    if bad_key:
        raise BadInput(f"{run_name(runs[0])}: {bad_key[0]}: no values in the training runs (every cell empty, NaN or inf)")
    constant = [c for c in chosen if c not in empty and np.nanstd(values[c]) == 0]
    dropped = [c for c in empty + constant if c not in key_metrics]
    if all(c in constant + empty for c in chosen):
        raise BadInput(f"{run_name(runs[0])}: every feature column is constant or empty "
                       f"({', '.join(chosen)}); nothing to learn from")
    if dropped:
        _warn(f"dropped constant or empty column(s) {', '.join(dropped)} (no information in the training runs)")
    for c in key_metrics:
        if c in constant:
            _warn(f"key metric {c} is constant ({values[c][~np.isnan(values[c])][0]:g}) in the training runs")
    return [c for c in chosen if c not in dropped]


def require_columns(runs: Sequence[pd.DataFrame], columns: Iterable[str]) -> None:
    """Raise BadInput naming the first run and column that is missing."""
    for frame in runs:
        for c in columns:
            if c not in frame.columns:
                raise BadInput(f"{run_name(frame)}: column '{c}' missing")


def _finite(series: pd.Series) -> np.ndarray:
    values = np.array(pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    values[~np.isfinite(values)] = np.nan
    return values


def fill_gaps(frame: pd.DataFrame, columns: Sequence[str],
              max_gap_s: int = DEFAULT_MAX_GAP_S) -> np.ndarray:
    """Apply the gap rule; return float64 values of `columns` plus the `missing` indicator."""
    raw = np.column_stack([_finite(frame[c]) for c in columns]) if columns else np.empty((len(frame), 0))
    isna = np.isnan(raw)
    filled = pd.DataFrame(raw).ffill().to_numpy()
    # Length of the missing stretch each cell belongs to, per column, without a row loop.
    n = len(raw)
    starts = np.vstack([np.ones((1, raw.shape[1]), bool), ~isna[:-1]]) & isna if n else isna
    stretch_id = np.cumsum(starts, axis=0)
    lengths = np.zeros_like(raw)
    for j in range(raw.shape[1]):  # one pass per column, vectorised over rows
        ids = np.where(isna[:, j], stretch_id[:, j], 0)
        counts = np.bincount(ids)
        lengths[:, j] = np.where(isna[:, j], counts[ids], 0)
    short = isna & (lengths <= max_gap_s)
    out = np.where(short, filled, raw)
    missing = isna.any(axis=1)
    if "target_up" in frame.columns:
        missing |= _finite(frame["target_up"]) == 0
    return np.column_stack([out, missing.astype("float64")])


# ---------------------------------------------------------------- splits


def chronological_split(frame: pd.DataFrame, test_fraction: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split one run into its first and last part (no shuffling, no shared rows)."""
    if not 0 < test_fraction < 1:
        raise BadInput(f"test fraction must be between 0 and 1, got {test_fraction}")
    cut = int(round(len(frame) * (1 - test_fraction)))
    head, tail = frame.iloc[:cut].copy(), frame.iloc[cut:].copy()
    for part, name in ((head, "head"), (tail, "tail")):
        part.attrs = {**frame.attrs, "run_id": f"{run_name(frame)}[{name}]", "part_of": run_name(frame)}
    return head, tail


def split_runs(runs: Sequence[pd.DataFrame], holdout: Sequence[str] | None = None,
               test_fraction: float = 0.25, seed: int = 0) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Split runs into train and test: named scenarios held out, a fraction of runs, or one run in time."""
    runs = list(runs)
    if holdout:
        names = {str(r.attrs.get("scenario")) for r in runs}
        unknown = [h for h in holdout if h not in names]
        if unknown:
            raise BadInput(f"holdout scenario '{unknown[0]}' is not among the runs ({', '.join(sorted(names))})")
        test = [r for r in runs if r.attrs.get("scenario") in set(holdout)]
        train = [r for r in runs if r.attrs.get("scenario") not in set(holdout)]
        if not train:
            raise BadInput(f"holding out {', '.join(holdout)} leaves no training runs")
        return train, test
    if len(runs) == 1:
        head, tail = chronological_split(runs[0], test_fraction)
        return [head], [tail]
    if not 0 < test_fraction < 1:
        raise BadInput(f"test fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(runs))
    n_test = min(len(runs) - 1, max(1, int(round(test_fraction * len(runs)))))
    test_idx = set(order[:n_test].tolist())
    return ([r for i, r in enumerate(runs) if i not in test_idx],
            [r for i, r in enumerate(runs) if i in test_idx])


# ---------------------------------------------------------------- scaling


@dataclass
class Scaler:
    """Per-column standard or min-max scaling, optionally of log1p(x); JSON round-trips."""
    kind: str = "standard"
    log_columns: tuple[str, ...] = ()
    columns: list[str] = field(default_factory=list)
    center: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    def fit(self, values: np.ndarray, columns: Sequence[str]) -> Scaler:
        """Learn per-column statistics from 2-D values (NaN ignored); return self."""
        if self.kind not in ("standard", "minmax"):
            raise BadInput(f"scaler must be 'standard' or 'minmax', got {self.kind!r}")
        self.columns = list(columns)
        x = self._log(np.asarray(values, dtype="float64"), self.columns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns get (0, 1) below
            if self.kind == "standard":
                center, scale = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
            else:
                center, scale = np.nanmin(x, axis=0), np.nanmax(x, axis=0) - np.nanmin(x, axis=0)
        center = np.where(np.isfinite(center), center, 0.0)
        # A constant column maps to 0 instead of dividing by zero.
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        self.center, self.scale = center.tolist(), scale.tolist()
        return self

    def _idx(self, columns: Sequence[str] | None) -> list[int]:
        if not self.columns:
            raise BadInput("scaler is not fitted")
        if columns is None:
            return list(range(len(self.columns)))
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise BadInput(f"scaler: column '{missing[0]}' was not fitted")
        return [self.columns.index(c) for c in columns]

    def _log(self, x: np.ndarray, columns: Sequence[str]) -> np.ndarray:
        mask = np.array([c in self.log_columns for c in columns], bool)
        if mask.any():
            x = x.copy()
            x[..., mask] = np.log1p(np.clip(x[..., mask], 0, None))
        return x

    def transform(self, values: np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
        """Scale values whose last axis is `columns` (all fitted columns by default)."""
        idx = self._idx(columns)
        cols = [self.columns[i] for i in idx]
        x = self._log(np.asarray(values, dtype="float64"), cols)
        return (x - np.asarray(self.center)[idx]) / np.asarray(self.scale)[idx]

    def inverse_transform(self, values: np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
        """Undo `transform` for values whose last axis is `columns`."""
        idx = self._idx(columns)
        x = np.asarray(values, dtype="float64") * np.asarray(self.scale)[idx] + np.asarray(self.center)[idx]
        mask = np.array([self.columns[i] in self.log_columns for i in idx], bool)
        if mask.any():
            x[..., mask] = np.expm1(x[..., mask])
        return x

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"kind": self.kind, "log_columns": list(self.log_columns), "columns": self.columns,
                "center": self.center, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        """Rebuild a scaler from `to_dict()` output, checking its shape."""
        try:
            scaler = cls(kind=str(data["kind"]), log_columns=tuple(data.get("log_columns", ())),
                         columns=[str(c) for c in data["columns"]],
                         center=[float(v) for v in data["center"]], scale=[float(v) for v in data["scale"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"scaler: malformed ({exc})") from None
        if not len(scaler.columns) == len(scaler.center) == len(scaler.scale):
            raise BadInput("scaler: columns, center and scale differ in length")
        return scaler


def fit_scaler(runs: Sequence[pd.DataFrame], columns: Sequence[str], kind: str = "standard",
               log_columns: Sequence[str] = (), max_gap_s: int = DEFAULT_MAX_GAP_S) -> Scaler:
    """Fit a Scaler on the rows of the given (training) runs only."""
    values = np.vstack([fill_gaps(pooled_targets(r), columns, max_gap_s) for r in runs])
    return Scaler(kind=kind, log_columns=tuple(c for c in log_columns if c in columns)).fit(
        values, [*columns, MISSING])


# ---------------------------------------------------------------- windows


@dataclass
class Windows:
    """Every complete (W inputs, H targets) window of some runs, in raw units.

    `y` keeps a missing target second as NaN (see the target rule above); `y_ok` says
    which target cells are present. `future` holds the plan's next H seconds, or with
    `hold_future` the plan of "now" repeated H times (what a monitor without a plan feeds).
    """

    x: np.ndarray            # (n, W, F) inputs: `columns`, last one is `missing`
    y: np.ndarray            # (n, H, K) targets: the key metrics, NaN where missing
    warn: np.ndarray         # (n,) 1 when the SLO is violated in some target second
    future: np.ndarray       # (n, H, J) known-future inputs (J may be 0)
    run: np.ndarray          # (n,) index into run_ids
    t: np.ndarray            # (n,) row of the last input second ("now") in its run
    slo: np.ndarray          # (n, 2) the run's latency_p95_ms and error_rate thresholds
    run_ids: list[str]
    columns: list[str]
    key_metrics: list[str]
    violation: list[np.ndarray]  # per run: the slo_violation label of every row
    window: int
    horizon: int
    frames: list[pd.DataFrame] = field(default_factory=list)  # per run: the run itself (ground truth)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def key_idx(self) -> list[int]:
        return [self.columns.index(c) for c in self.key_metrics]

    @property
    def x_key(self) -> np.ndarray:
        """Return the inputs' key-metric columns, (n, W, K)."""
        return self.x[:, :, self.key_idx]

    @property
    def y_ok(self) -> np.ndarray:
        """Return (n, H, K): True where the target second was observed."""
        return ~np.isnan(self.y)


def check_length(frame: pd.DataFrame, window: int, horizon: int) -> None:
    """Raise BadInput with the numbers when a run is shorter than one window."""
    if len(frame) < window + horizon:
        raise BadInput(f"{run_name(frame)}: needs at least {window + horizon} rows "
                       f"(window {window} + horizon {horizon}), got {len(frame)}")


class _Unusable:
    """Why rows cannot be in a window, counted over runs: for messages that say what was missing."""
    def __init__(self, max_gap_s: int):
        self.max_gap_s = max_gap_s
        self.leading = self.long = self.label = self.future = 0
        self.longest = 0
        self.leading_cols: dict[str, None] = {}
        self.long_cols: dict[str, None] = {}

    def add(self, values: np.ndarray, columns: Sequence[str], label: np.ndarray, extra: np.ndarray,
            known_future: Sequence[str]) -> None:
        """Count one run's rows; `values` are its features after the gap rule (NaN = not filled)."""
        empty = np.isnan(values)
        # A cell still empty after forward-filling had no value before it (the run's start)
        # or sits in a stretch longer than max_gap_s.
        seen = np.maximum.accumulate(~empty, axis=0) if len(values) else empty
        leading, long = empty & ~seen, empty & seen
        lead_rows = leading.any(axis=1)
        long_rows = long.any(axis=1) & ~lead_rows
        self.leading += int(lead_rows.sum())
        self.long += int(long_rows.sum())
        self.label += int((np.isnan(label) & ~lead_rows & ~long_rows).sum())
        self.future += int(np.isnan(extra).any(axis=1).sum()) if extra.size else 0
        for j, col in enumerate(columns):
            if leading[:, j].any():
                self.leading_cols[col] = None
            if long[:, j].any():
                self.long_cols[col] = None
                self.longest = max(self.longest, _longest_stretch(long[:, j]))

    def describe(self) -> str:
        parts = []
        if self.leading:
            parts.append(f"{self.leading} row(s) with no value yet at the start of a run (nothing earlier to "
                         f"carry forward) in {_names(self.leading_cols)}")
        if self.long:
            parts.append(f"{self.long} row(s) in gaps longer than {self.max_gap_s} s (the longest {self.longest} s) "
                         f"in {_names(self.long_cols)}")
        if self.label:
            parts.append(f"{self.label} row(s) without a {LABEL} label")
        if self.future:
            parts.append(f"{self.future} row(s) without the known-future columns")
        return "; ".join(parts) or "no missing rows"


def _longest_stretch(mask: np.ndarray) -> int:
    """The length of the longest run of True in a 1-D boolean array."""
    edges = np.diff(np.r_[0, mask.astype("int8"), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


def _names(cols: dict[str, None], most: int = 3) -> str:
    names = list(cols)
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _future_values(frame: pd.DataFrame, known_future: Sequence[str]) -> np.ndarray:
    for c in known_future:
        if c not in PLAN_COLUMNS:
            raise BadInput(f"known_future: {c}: only the plan ({', '.join(PLAN_COLUMNS)}) is known in advance")
    if not known_future:
        return np.empty((len(frame), 0))
    return np.column_stack([_finite(frame[c]) for c in known_future])


def _run_windows(frame: pd.DataFrame, columns: list[str], key_metrics: Sequence[str], window: int,
                 horizon: int, known_future: Sequence[str], max_gap_s: int, hold_future: bool,
                 require_targets: bool, why: "_Unusable | None" = None) -> dict[str, np.ndarray]:
    """Cut one run: inputs gap-filled, targets raw (NaN stays NaN), plan ahead or held."""
    from numpy.lib.stride_tricks import sliding_window_view

    values = fill_gaps(frame, columns, max_gap_s)
    raw_key = np.column_stack([_finite(frame[c]) for c in key_metrics])
    label = _finite(frame[LABEL])
    extra = _future_values(frame, known_future)
    span = window + horizon
    inputs_ok = sliding_window_view(~np.isnan(values).any(axis=1), window)[:len(frame) - span + 1].all(axis=1)
    label_ok = sliding_window_view(~np.isnan(label), horizon)[window:].all(axis=1)
    plan_rows = ~np.isnan(extra).any(axis=1)
    plan_ok = (plan_rows[window - 1:len(frame) - horizon] if hold_future
               else sliding_window_view(plan_rows, horizon)[window:].all(axis=1))
    y_all = sliding_window_view(raw_key, horizon, axis=0)[window:]          # (m, K, H)
    ok = inputs_ok & label_ok & plan_ok
    if require_targets:
        ok &= ~np.isnan(y_all).any(axis=(1, 2))
    if why is not None:
        why.add(values[:, :-1], columns, label, extra, known_future)
    keep = np.flatnonzero(ok)
    x = np.transpose(sliding_window_view(values, window, axis=0)[keep], (0, 2, 1))
    if hold_future:
        future = np.repeat(extra[keep + window - 1][:, None, :], horizon, axis=1)
    else:
        future = np.transpose(sliding_window_view(extra, horizon, axis=0)[keep + window], (0, 2, 1))
    warn = sliding_window_view(np.nan_to_num(label), horizon)[window:][keep].max(axis=1)
    return {"x": x, "y": np.transpose(y_all[keep], (0, 2, 1)), "warn": warn, "future": future,
            "t": keep + window - 1, "dropped": np.array(int((~ok).sum())), "possible": np.array(len(ok))}


def make_windows(runs: Sequence[pd.DataFrame], columns: Sequence[str], window: int, horizon: int,
                 key_metrics: Sequence[str] = KEY_METRICS, known_future: Sequence[str] = (),
                 max_gap_s: int = DEFAULT_MAX_GAP_S, *, hold_future: bool = False,
                 require_targets: bool = False) -> Windows:
    """Cut every run into overlapping windows with a strided view; windows never cross runs.

    A run of n rows gives n - W - H + 1 windows before gap filtering (exactly W + H rows
    give one); shorter runs are skipped with a warning, or raise BadInput when no run is
    long enough. A window is dropped when its inputs touch a gap the gap rule cannot fill,
    or its labels or plan are missing; with `require_targets` (training) also when a
    target second is missing. Otherwise a missing target stays NaN (masked in the scores).
    """
    if window < 1 or horizon < 1:
        raise BadInput(f"window and horizon must be at least 1, got {window} and {horizon}")
    columns = list(columns)
    runs = [pooled_targets(r) for r in runs]
    require_columns(runs, [*columns, *key_metrics, *known_future, LABEL])
    span = window + horizon
    long_enough = [r for r in runs if len(r) >= span]
    if not long_enough:
        check_length(max(runs, key=len), window, horizon)
    for r in runs:
        if len(r) < span:
            _warn(f"{run_name(r)}: skipped: needs at least {span} rows (window {window} + horizon {horizon}), got {len(r)}")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "warn", "future", "run", "t", "slo")}
    run_ids, violation, dropped, possible = [], [], 0, 0
    why = _Unusable(max_gap_s)
    for frame in long_enough:
        cut = _run_windows(frame, columns, key_metrics, window, horizon, known_future, max_gap_s,
                           hold_future, require_targets, why)
        dropped += int(cut.pop("dropped"))
        possible += int(cut.pop("possible"))
        for k, v in cut.items():
            parts[k].append(v)
        parts["run"].append(np.full(len(cut["t"]), len(run_ids)))
        slo = run_slo(frame)
        parts["slo"].append(np.tile([slo["latency_p95_ms"], slo["error_rate"]], (len(cut["t"]), 1)))
        run_ids.append(run_name(frame))
        violation.append(np.nan_to_num(_finite(frame[LABEL])).astype("int8"))
    total = sum(len(a) for a in parts["x"])
    if total == 0:
        names = ", ".join(run_name(r) for r in long_enough[:3]) + (", ..." if len(long_enough) > 3 else "")
        rows = sum(len(r) for r in long_enough)
        raise BadInput(f"no complete windows: all {possible} window(s) of {span} rows (window {window} + "
                       f"horizon {horizon}) in {len(long_enough)} run(s) ({names}; {rows} rows) touch "
                       f"{why.describe()}")
    if dropped:
        _warn(f"dropped {dropped} of {possible} window(s): they touch {why.describe()}")
    return Windows(
        x=np.concatenate(parts["x"]).astype("float32"),
        y=np.concatenate(parts["y"]).astype("float32"),
        warn=np.concatenate(parts["warn"]).astype("float32"),
        future=np.concatenate(parts["future"]).astype("float32"),
        run=np.concatenate(parts["run"]).astype("int32"),
        t=np.concatenate(parts["t"]).astype("int64"),
        slo=np.concatenate(parts["slo"]).astype("float64"),
        run_ids=run_ids, columns=[*columns, MISSING], key_metrics=list(key_metrics),
        violation=violation, window=window, horizon=horizon, frames=list(long_enough))


# ---------------------------------------------------------------- incidents ahead (the slow horizon)


def incident_flags(frame: pd.DataFrame) -> np.ndarray:
    """Return 1.0 for each second in which the target saw an incident (a worker killed, the pool
    exhausted: the `incident` column), else 0.0; a run without the column has none."""
    if "incident" not in frame.columns:
        return np.zeros(len(frame))
    inc = frame["incident"].fillna(NO_INCIDENT).astype(str).str.strip().to_numpy()
    return (~np.isin(inc, (NO_INCIDENT, "", "nan"))).astype("float64")


def incident_ahead(w: Windows, horizon: int) -> np.ndarray:
    """Return, per window, 1 when an incident happens in the `horizon` seconds after "now" (the
    seconds a run has: a window near its end sees fewer)."""
    out = np.zeros(len(w), dtype="float32")
    for i, frame in enumerate(w.frames):
        flags = incident_flags(frame)
        if not flags.any():
            continue
        csum = np.concatenate([[0.0], np.cumsum(flags)])
        mine = np.flatnonzero(w.run == i)
        t = w.t[mine]
        hi = np.minimum(t + 1 + horizon, len(flags))
        out[mine] = (csum[hi] - csum[np.minimum(t + 1, len(flags))] > 0).astype("float32")
    return out


def incident_view(w: Windows, horizon: int) -> Windows:
    """Return the windows as the episode scorer should see incidents: each run's label is its
    incident seconds (faults and plan changes stay the precursors), the horizon the slow one."""
    frames = []
    for frame in w.frames:
        f = frame.copy(deep=False)
        f.attrs = dict(frame.attrs)
        f[LABEL] = incident_flags(frame)
        if "incident" in f.columns:
            f["incident"] = "none"         # an incident is the event here, not its own precursor
        frames.append(f)
    return replace(w, frames=frames, horizon=int(horizon),
                   violation=[incident_flags(f).astype("int8") for f in w.frames])
