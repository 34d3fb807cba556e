"""Run and dataset folders on disk: their file names, atomic writes, run.json, and the readers.

A run folder (docs/contract.md) holds `run.json` and `metrics.csv`, with the load
generator's raw files under `locust/`; everything that writes `run.json` goes through
`write_run_json` (checksums included) and everything that reads runs goes through
`read_run` and `read_samples`, so the dtypes and the validation live in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from .errors import BadInput, read_text_file

from .schema import ADDED_COLUMNS, COLUMNS, NO_INCIDENT, NUMERIC_COLUMNS, REQUIRED_COLUMNS, STRING_LABELS

# ---- the files of a run folder
RUN_JSON = "run.json"                    # what the run was, its status, warnings, checksums
METRICS_CSV = "metrics.csv"              # one labelled row per second
SCENARIO_JSON = "scenario.json"          # the resolved scenario the load generator follows
EVENTS_JSONL = "events.jsonl"            # fault injections and incidents as they happened
AUTOSCALE_JSONL = "autoscale.jsonl"      # the closed-loop autoscaler's decisions and outcomes
COLLECTOR_CONFIG = "collector-config.json"
COLLECTOR_JSON = "collector.json"        # the collector's own summary (rows, jitter, warnings)
LOCUST_DIR = "locust"                    # the load generator's raw files:
SAMPLES_GLOB = "samples-*.csv"           #   one line per request, per Locust process
STATUS_GLOB = "status-*.csv"             #   users / outstanding / dropped, 5 times a second
T0_FILE = "t0"                           #   epoch seconds of the scenario's t=0
WORKERS_JSON = "workers.json"            #   the Locust workers that connected to the master
REFUSED_TXT = "refused.txt"              #   why the master refused a worker (--expect-workers)
TARGET_STATE_DIR = "target-state"        # the embedded target's faults.json and incidents.jsonl

# ---- the files of a dataset folder
MANIFEST_JSON = "manifest.json"
DATASET_PARQUET = "dataset.parquet"
CARD_MD = "CARD.md"
RUNS_DIR = "runs"

# Label columns that are integers (0/1), not measurements.
INT_COLUMNS = ("elapsed_s", "slo_violation", "target_up")
STR_COLUMNS = STRING_LABELS
FLOAT_COLUMNS = tuple(c for c in NUMERIC_COLUMNS if c not in INT_COLUMNS)

# Distribution names, in the order the manifest lists them; tensorflow has two wheels.
VERSION_PACKAGES = (
    "flask", "gunicorn", "locust", "prometheus-flask-exporter", "prometheus-client",
    "psutil", "numpy", "pandas", "pyarrow", "scikit-learn", "tensorflow", "tensorflow-cpu",
    "keras", "typer",
)


# ---------------------------------------------------------------- atomic writes


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` whole.

    Readers see the old file or the new one, never a part: the writer fills the temporary
    file, which is fsynced, made shareable (mkstemp's 0600, then the umask) and renamed
    over `path`; on any error it is removed and `path` is untouched. `suffix` ends the
    temporary name (for writers that insist on one, like Keras' `.keras`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so os.replace is a rename on one filesystem.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it takes `path`'s place whole.

    For a set of files that belong together (a model folder): the writer fills the
    temporary folder, which gets the umask's mode (not mkdtemp's 0700) and is renamed to
    `path`. An existing `path` is first renamed aside and removed only once the new folder
    is in place, so readers never see a mix of old and new files, and a crash in between
    leaves the old folder beside it (`.<name>.*.old`). On any error the temporary folder
    is removed and `path` is untouched.
    """
    path = Path(os.path.realpath(path))   # a symbolic link keeps pointing at the new folder
    if path.exists() and not path.is_dir():
        raise BadInput(f"{path}: exists and is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        _fsync_dir(tmp)
        aside = None
        if path.exists():
            # Renaming onto an empty folder replaces it: mkdtemp reserves a free name.
            aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, aside)
        try:
            os.replace(tmp, path)
        except BaseException:
            if aside is not None:
                os.replace(aside, path)
            raise
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to path so readers see the old file or the new one, never a part."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to path atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write obj as indented JSON with a trailing newline, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and paths turn up in metadata dicts; keep them readable.
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, so best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- names and paths from files

# Characters a name keeps when it becomes a file name; everything else becomes "_".
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 120


def safe_name(name: Any, fallback: str = "unnamed") -> str:
    """Return `name` (a run id, a column, a scenario name read from a file) as one safe file name.

    Path separators and every character outside letters, digits, `.`, `_` and `-` become
    `_`; leading and trailing dots go, so the result is never `.`, `..` or hidden, never
    a path, and at most MAX_NAME_CHARS long. `fallback` stands in for an empty result.
    """
    clean = _UNSAFE_NAME.sub("_", str(name))[:MAX_NAME_CHARS].strip(".")
    return clean or fallback


def contained_path(base: str | os.PathLike, relative: str | os.PathLike, what: str) -> Path:
    """Return base/relative, or BadInput when it resolves outside base.

    `..`, an absolute path and a symbolic link that leads out are all caught, because the
    check compares fully resolved paths. `what` names the file or option the path came
    from, for the message.
    """
    base = Path(base)
    try:
        path = base / relative
        root, real = base.resolve(), path.resolve()
    except (ValueError, OSError) as exc:   # a NUL byte, a symlink loop
        raise BadInput(f"{what}: {str(relative)!r}: not a usable path ({exc})") from None
    if real != root and not real.is_relative_to(root):
        raise BadInput(f"{what}: {str(relative)!r} leads outside {base}")
    return path


# ---------------------------------------------------------------- JSON files


def parse_json(text: str, origin: str) -> dict[str, Any]:
    """Parse JSON text that must hold an object; BadInput names `origin` otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BadInput(f"{origin}: not valid JSON ({reason})") from None
    if not isinstance(value, dict):
        raise BadInput(f"{origin}: expected a JSON object, got {_json_type(value)}")
    return value


def read_json(path: str | os.PathLike, what: str = "JSON file") -> dict[str, Any]:
    """Read a JSON object from a file (run.json, a manifest, a model's JSON, ...).

    Every failure is one BadInput line naming the file: `<path>: file not found`,
    `<path>: not valid JSON (<reason>)`, `<path>: expected a JSON object, got <type>`
    (and read_text_file's lines for a folder, an unreadable file or bytes that are not UTF-8).
    """
    return parse_json(read_text_file(path, what), str(path))


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- time and facts


def utc_iso(ts: float, ms: bool = False) -> str:
    """Format epoch seconds as UTC ISO 8601 with a Z: seconds, or milliseconds with ms=True."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    if ms:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def host_facts() -> dict[str, Any]:
    """Describe the machine: hostname, OS, Python, CPU cores and model, memory."""
    import psutil

    facts: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_logical": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
    }
    return facts


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def package_versions() -> dict[str, str | None]:
    """Return installed versions of the lab's key packages without importing them."""
    versions: dict[str, str | None] = {}
    for name in VERSION_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    # Only one of the two TensorFlow wheels is installed; drop the absent one.
    if versions.get("tensorflow") is None and versions.get("tensorflow-cpu") is not None:
        del versions["tensorflow"]
    elif versions.get("tensorflow-cpu") is None:
        del versions["tensorflow-cpu"]
    return versions


# ---------------------------------------------------------------- writing run.json


def write_run_json(run_dir: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write `run.json` atomically, its `files` the sha256 of every other file in the folder.

    Hidden files (temporary files of atomic writes) are left out.
    """
    run_dir = Path(run_dir)
    meta = dict(meta)
    meta["files"] = {p.relative_to(run_dir).as_posix(): sha256_file(p)
                     for p in sorted(run_dir.rglob("*"))
                     if p.is_file() and p.name != RUN_JSON and not p.name.startswith(".")}
    return atomic_write_json(run_dir / RUN_JSON, meta)


# ---------------------------------------------------------------- reading runs


@dataclass
class Run:
    """One run folder read back: its folder, run.json and the per-second frame."""

    path: Path
    meta: dict[str, Any]
    frame: Any  # pandas.DataFrame; typed loosely so importing runfolder stays cheap

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def scenario_name(self) -> str:
        scenario = self.meta.get("scenario")
        if isinstance(scenario, dict) and scenario.get("name"):
            return str(scenario["name"])
        return str(scenario or "unknown")


def read_meta(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check a run folder's run.json."""
    path = Path(run_dir) / RUN_JSON
    if not path.is_file():
        raise BadInput(f"{path}: missing (not a run folder)")
    return read_json(path, RUN_JSON)


def read_metrics(path: str | os.PathLike, columns: list[str] | None = None):
    """Read a metrics.csv with the contract dtypes; BadInput names a missing column."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: missing")
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except pd.errors.EmptyDataError:
        raise BadInput(f"{path}: empty file (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise BadInput(f"{path}: unreadable CSV: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BadInput(f"{path}: column '{missing[0]}' missing{more}")
    absent = [c for c in ADDED_COLUMNS if c not in header and (columns is None or c in columns)]
    wanted = header if columns is None else [c for c in header if c in columns]
    usecols = None if columns is None else [c for c in columns if c not in absent]
    dtypes: dict[str, Any] = {c: "float64" for c in wanted if c in FLOAT_COLUMNS}
    dtypes.update({c: "str" for c in (*STR_COLUMNS, "timestamp") if c in wanted})
    try:
        frame = pd.read_csv(path, dtype=dtypes, usecols=usecols, keep_default_na=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadInput(f"{path}: unreadable values: {exc}") from None
    for col in absent:
        # A run recorded before the column existed: not observed (no incident was recorded).
        frame[col] = NO_INCIDENT if col == "incident" else float("nan")
    if "incident" in frame:
        frame["incident"] = frame["incident"].fillna(NO_INCIDENT)
    for col in INT_COLUMNS:
        if col not in frame:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        if col == "elapsed_s" and values.isna().any():
            raise BadInput(f"{path}: elapsed_s: empty or non-numeric at row {int(values.isna().argmax()) + 2}")
        # An empty 0/1 cell means "not observed": not up, not violating.
        frame[col] = values.fillna(0).astype("int64")
    for col in wanted:
        # Extra columns (imported metrics, future additions) become floats when they can.
        if col not in COLUMNS and not pd.api.types.is_numeric_dtype(frame[col]):
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted.astype("float64")
    if "timestamp" in frame:
        stamps = pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True, errors="coerce")
        if stamps.isna().any():
            row = int(stamps.isna().to_numpy().argmax()) + 2
            raise BadInput(f"{path}: timestamp: not UTC ISO 8601 at row {row}")
        frame["timestamp"] = stamps
    if "elapsed_s" in frame and len(frame) > 1:
        steps = frame["elapsed_s"].diff().iloc[1:]
        if (steps <= 0).any():
            row = int((steps <= 0).to_numpy().argmax()) + 3
            raise BadInput(f"{path}: elapsed_s: not strictly increasing at row {row}")
    return frame


def read_run(run_dir: str | os.PathLike, columns: list[str] | None = None) -> Run:
    """Read a run folder: run.json as a dict and metrics.csv as a typed DataFrame."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    frame = read_metrics(run_dir / METRICS_CSV, columns=columns)
    return Run(path=run_dir, meta=meta, frame=frame)


def verify_checksums(run_dir: str | os.PathLike, meta: dict[str, Any] | None = None) -> list[str]:
    """Return the files of run.json's `files` whose sha256 differs or that are missing."""
    run_dir = Path(run_dir)
    meta = meta if meta is not None else read_meta(run_dir)
    bad = []
    for name, digest in (meta.get("files") or {}).items():
        path = run_dir / name
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(name)
    return bad


def is_complete_run(run_dir: str | os.PathLike) -> bool:
    """Tell whether a run finished (status complete) and its files match their checksums."""
    try:
        meta = read_meta(run_dir)
    except BadInput:
        return False
    files = meta.get("files") or {}
    if meta.get("status") != "complete" or METRICS_CSV not in files:
        return False
    return not verify_checksums(run_dir, meta)


def is_run_dir(path: str | os.PathLike) -> bool:
    """Tell whether a folder looks like a run folder (it has run.json)."""
    return (Path(path) / RUN_JSON).is_file()


def list_runs(path: str | os.PathLike) -> list[Path]:
    """Return the run folders in a run folder, a dataset folder (runs/*) or a folder of runs."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    if not path.is_dir():
        raise BadInput(f"{path}: expected a run folder, a dataset folder or a folder of runs")
    if is_run_dir(path):
        return [path]
    parent = path / "runs" if (path / "runs").is_dir() else path
    runs = sorted(p for p in parent.iterdir() if p.is_dir() and is_run_dir(p))
    if not runs:
        raise BadInput(f"{path}: no run folders found (a run folder holds {RUN_JSON} and {METRICS_CSV})")
    return runs


# ---------------------------------------------------------------- raw request samples

# `locust/samples-<pid>.csv`: ts (completion, epoch s), response_time_ms (open model: from the
# intended send time), ok (0/1), name; newer files add service_ms (from the actual send) and
# intended_ts (the scheduled send, epoch s). Older files have the first four only.
SAMPLE_COLUMNS = ("ts", "response_time_ms", "ok", "name")
SAMPLE_EXTRA_COLUMNS = ("service_ms", "intended_ts")


def sample_files(run_dir: str | os.PathLike) -> list[Path]:
    return sorted((Path(run_dir) / LOCUST_DIR).glob(SAMPLES_GLOB))


def read_samples(run_dir: str | os.PathLike, *, required: bool = True):
    """Read every Locust process's raw samples of a run as one DataFrame, sorted by `ts`.

    Older files lack `service_ms` and `intended_ts`: there they are filled from the
    response time (a closed-model request's intended send is its actual send). With
    `required=False` a run without samples gives an empty frame instead of BadInput.
    """
    import pandas as pd

    files = sample_files(run_dir)
    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path, on_bad_lines="skip")
        except pd.errors.EmptyDataError:
            continue
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: unreadable CSV: {exc}") from None
        missing = [c for c in SAMPLE_COLUMNS if c not in frame.columns]
        if missing:
            raise BadInput(f"{path}: column '{missing[0]}' missing (expected {', '.join(SAMPLE_COLUMNS)})")
        frames.append(frame)
    if not frames:
        if required:
            raise BadInput(f"{Path(run_dir) / LOCUST_DIR}: no {SAMPLES_GLOB} files with samples")
        return pd.DataFrame(columns=[*SAMPLE_COLUMNS, *SAMPLE_EXTRA_COLUMNS])
    samples = pd.concat(frames, ignore_index=True)
    for col in ("ts", "response_time_ms", "ok"):
        samples[col] = pd.to_numeric(samples[col], errors="coerce")
    samples = samples.dropna(subset=["ts", "response_time_ms", "ok"])
    samples["name"] = samples["name"].astype(str)
    if "service_ms" not in samples:
        samples["service_ms"] = samples["response_time_ms"]
    if "intended_ts" not in samples:
        samples["intended_ts"] = samples["ts"] - samples["response_time_ms"] / 1000.0
    samples["ok"] = samples["ok"].astype(int)
    return samples.sort_values("ts", kind="stable").reset_index(drop=True)


def read_manifest(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check a dataset folder's manifest.json; every run `path` must stay inside the folder.

    The manifest is an object; `runs`, when present, a list of objects whose `path` is a
    non-empty string that resolves inside `dataset_dir`; `dataset` an object. A file that
    breaks this is BadInput naming the manifest and the entry.
    """
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / MANIFEST_JSON
    manifest = read_json(path, MANIFEST_JSON)
    runs = manifest.get("runs", [])
    if not isinstance(runs, list):
        raise BadInput(f"{path}: runs: expected a list of run entries, got {_json_type(runs)}")
    for i, entry in enumerate(runs):
        if not isinstance(entry, dict):
            raise BadInput(f"{path}: runs[{i}]: expected an object, got {_json_type(entry)}")
        rel = entry.get("path")
        if rel is None:
            continue
        if not isinstance(rel, str) or not rel.strip():
            raise BadInput(f"{path}: runs[{i}].path: expected a folder name, got {_json_type(rel)} {rel!r}")
        contained_path(dataset_dir, rel, f"{path}: runs[{i}].path")
    for key, kind in (("dataset", dict), ("created_at", str)):
        if manifest.get(key) is not None and not isinstance(manifest[key], kind):
            raise BadInput(f"{path}: {key}: expected {'an object' if kind is dict else 'a string'}, "
                           f"got {_json_type(manifest[key])}")
    return manifest


def included_runs(path: str | os.PathLike) -> list[Path]:
    """Return a dataset's included runs per its manifest (each inside the folder), else `list_runs(path)`."""
    path = Path(path)
    if path.is_dir() and (path / MANIFEST_JSON).is_file():
        entries = read_manifest(path).get("runs", [])
        runs = [path / e["path"] for e in entries if e.get("included") and e.get("path")]
        if runs:
            return runs
    return list_runs(path)
