"""A dataset folder: run folders plus `dataset.parquet`, `manifest.json` and `CARD.md`.

The Parquet file is built after the runs, one row group per run, so memory stays bounded
by the largest run however many runs there are. The manifest is written last: a dataset
folder with a manifest has all three files complete and consistent.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from contract.errors import BadInput, LabError

from contract.runfolder import (
    INT_COLUMNS, RUNS_DIR, atomic_path, METRICS_CSV, RUN_JSON, STR_COLUMNS, Run, atomic_write_json, atomic_write_text,
    host_facts, list_runs, package_versions, read_manifest, read_meta, read_run, sha256_file,
    utc_iso, verify_checksums,
)
from contract.schema import COLUMNS
from .card import render_card

PARQUET = "dataset.parquet"
MANIFEST = "manifest.json"
CARD = "CARD.md"
FORMAT = "stability-lab-dataset/1"
# Columns the dataset adds in front of each run's own columns.
KEY_COLUMNS = ["run_id", "scenario"]


@dataclass
class DatasetBuild:
    """What build_dataset_files wrote."""
    dataset_dir: Path
    parquet: Path
    manifest_path: Path
    card: Path
    manifest: dict[str, Any]
    excluded: dict[str, str] = field(default_factory=dict)  # run_id -> reason

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])


# ---------------------------------------------------------------- Parquet


def _run_header(run_dir: Path) -> list[str]:
    with open(run_dir / METRICS_CSV, encoding="utf-8") as fh:
        return fh.readline().strip().split(",")


def dataset_columns(run_dirs: Sequence[Path]) -> list[str]:
    """Return the dataset's columns: keys, the contract columns, then extras in first-seen order."""
    extras: list[str] = []
    for run_dir in run_dirs:
        extras += [c for c in _run_header(run_dir) if c not in COLUMNS and c not in extras]
    return KEY_COLUMNS + COLUMNS + [c for c in extras if c not in KEY_COLUMNS]


def parquet_schema(columns: Sequence[str], string_extras: Iterable[str] = ()):
    """Return the pyarrow schema of the dataset for these columns."""
    import pyarrow as pa

    strings = set(KEY_COLUMNS) | set(STR_COLUMNS) | set(string_extras)
    fields = []
    for col in columns:
        if col == "timestamp":
            kind = pa.timestamp("ms", tz="UTC")
        elif col in INT_COLUMNS:
            kind = pa.int64()
        elif col in strings:
            kind = pa.string()
        else:
            kind = pa.float64()
        fields.append(pa.field(col, kind))
    return pa.schema(fields)


def _string_extras(run_dirs: Sequence[Path], columns: Sequence[str]) -> set[str]:
    # Extras are floats unless some run holds text in them; only extras are read here.
    extras = [c for c in columns if c not in KEY_COLUMNS and c not in COLUMNS]
    found: set[str] = set()
    if not extras:
        return found
    import pandas as pd

    for run_dir in run_dirs:
        present = [c for c in extras if c in _run_header(run_dir)]
        if not present:
            continue
        frame = read_run(run_dir, columns=COLUMNS + present).frame
        found |= {c for c in present if not pd.api.types.is_numeric_dtype(frame[c])}
    return found


def _table_for(run: Run, schema):
    import pyarrow as pa

    frame = run.frame
    frame.insert(0, "run_id", run.run_id)
    frame.insert(1, "scenario", run.scenario_name)
    for f in schema:
        if f.name not in frame:
            frame[f.name] = None
        elif pa.types.is_string(f.type) and f.name not in KEY_COLUMNS:
            frame[f.name] = frame[f.name].astype("str").where(frame[f.name].notna(), None)
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def write_runs_parquet(run_dirs: Sequence[Path], path: str | os.PathLike,
                       on_run=None) -> tuple[int, list[int]]:
    """Write the runs into one Parquet file, a row group per run, atomically.

    Returns the total rows and the rows of each run. on_run(run_dir, rows) is called
    after each run, for progress bars.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    run_dirs = list(run_dirs)
    columns = dataset_columns(run_dirs)
    schema = parquet_schema(columns, _string_extras(run_dirs, columns))
    per_run: list[int] = []
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for run_dir in run_dirs:
                table = _table_for(read_run(run_dir), schema)
                # One row group per run keeps peak memory at one run and lets readers
                # fetch a run without scanning the rest.
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                per_run.append(table.num_rows)
                if on_run:
                    on_run(run_dir, table.num_rows)
                del table
    return sum(per_run), per_run


# ---------------------------------------------------------------- build


def _run_entry(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """Return the manifest entry of a run and why it is excluded (None when included)."""
    entry: dict[str, Any] = {"run_id": run_dir.name, "path": f"runs/{run_dir.name}"}
    try:
        meta = read_meta(run_dir)
    except BadInput as exc:
        return {**entry, "status": "unreadable"}, str(exc)
    scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
    entry.update({
        "run_id": meta.get("run_id") or run_dir.name, "scenario": scenario.get("name"),
        "seed": meta.get("seed"), "status": meta.get("status"),
        "started_at": meta.get("started_at"), "ended_at": meta.get("ended_at"),
        "interval_s": meta.get("interval_s", 1), "warnings": len(meta.get("warnings") or []),
        "files": dict(meta.get("files") or {}),
        "run_json_sha256": sha256_file(run_dir / RUN_JSON),
    })
    if meta.get("status") != "complete":
        return entry, f"status is {meta.get('status')!r}, not 'complete'"
    if METRICS_CSV not in entry["files"]:
        return entry, f"{RUN_JSON} has no checksum for {METRICS_CSV}"
    bad = verify_checksums(run_dir, meta)
    if bad:
        return entry, f"checksum mismatch or missing file: {', '.join(bad)}"
    return entry, None


def build_dataset_files(dataset_dir: str | os.PathLike, *, scenarios: Sequence[Any] | None = None,
                        seeds: Sequence[int | None] | None = None,
                        extra_meta: dict[str, Any] | None = None, on_run=None) -> DatasetBuild:
    """Write dataset.parquet, CARD.md and manifest.json for the runs under dataset_dir/runs/.

    Parameters
    ----------
    dataset_dir : the dataset folder; its run folders are in ``runs/``.
    scenarios : the scenarios generate-dataset ran (names or scenario dicts); derived from
        the runs when None.
    seeds : the seeds it used; derived from the runs when None.
    extra_meta : stored under ``generation`` in the manifest; ``command`` (the command
        line) is shown in the card's "How to reproduce".
    on_run : called as on_run(run_dir, rows) after each run is written to Parquet.

    Returns
    -------
    DatasetBuild with the paths written, the manifest and the excluded runs.

    Only complete runs whose files match their checksums go into the Parquet file; the
    others are listed in the manifest with ``included: false`` and the reason.
    """

    dataset_dir = Path(dataset_dir)
    runs_dir = dataset_dir / "runs"
    if not runs_dir.is_dir():
        raise BadInput(f"{dataset_dir}: no runs/ folder (not a dataset folder)")
    run_dirs = list_runs(runs_dir)
    entries, included, excluded = [], [], {}
    for run_dir in run_dirs:
        entry, reason = _run_entry(run_dir)
        entry["included"] = reason is None
        if reason is None:
            try:
                # Validate header, time and elapsed_s before writing anything.
                read_run(run_dir, columns=["timestamp", "elapsed_s"])
            except BadInput as exc:
                reason = str(exc)
                entry["included"] = False
        if reason is None:
            included.append(run_dir)
        else:
            entry["excluded_reason"] = excluded[entry["run_id"]] = reason
        entries.append(entry)
    if not included:
        raise LabError(f"{runs_dir}: no complete run to build a dataset from "
                       f"({len(run_dirs)} run folder(s), none complete with matching checksums)")

    parquet = dataset_dir / PARQUET
    total, per_run = write_runs_parquet(included, parquet, on_run=on_run)
    rows_of = dict(zip((d.name for d in included), per_run))
    for entry in entries:
        entry["rows"] = rows_of.get(Path(entry["path"]).name, 0) if entry["included"] else None
    hours = sum(e["rows"] * float(e.get("interval_s") or 1) for e in entries if e["included"]) / 3600

    metas = [read_meta(d) for d in included]
    scenario_dicts = _distinct_scenarios(metas)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "name": dataset_dir.resolve().name,
        "created_at": utc_iso(time.time()),
        "rows": total,
        "hours": round(hours, 4),
        "runs_included": len(included),
        "runs_excluded": len(excluded),
        "columns": dataset_columns(included),
        "runs": entries,
        "scenarios": _scenario_names(scenarios, scenario_dicts),
        "seeds": list(seeds) if seeds is not None else sorted(
            {m.get("seed") for m in metas}, key=lambda s: (s is None, s)),
        "dataset": {"file": PARQUET, "sha256": sha256_file(parquet), "bytes": parquet.stat().st_size,
                    "rows": total, "row_groups": len(per_run)},
        "versions": package_versions(),
        "host": host_facts(),
        "generation": dict(extra_meta or {}),
    }
    info = dataset_info(parquet)
    card = atomic_write_text(dataset_dir / CARD, render_card(manifest, metas, scenario_dicts, info))
    manifest["card_sha256"] = sha256_file(card)
    manifest_path = atomic_write_json(dataset_dir / MANIFEST, manifest)
    return DatasetBuild(dataset_dir, parquet, manifest_path, card, manifest, excluded)


def _distinct_scenarios(metas: Sequence[dict]) -> list[dict]:
    """Return each distinct scenario dict once, in first-seen order."""
    seen: dict[str, dict] = {}
    for meta in metas:
        scenario = meta.get("scenario")
        if isinstance(scenario, dict):
            # Seeds differ between repeats of one scenario; they do not make it distinct.
            key = json.dumps({k: v for k, v in scenario.items() if k != "seed"}, sort_keys=True)
            seen.setdefault(key, scenario)
    return list(seen.values())


def _scenario_names(given: Sequence[Any] | None, dicts: Sequence[dict]) -> list[str]:
    if given is None:
        return list(dict.fromkeys(str(d.get("name")) for d in dicts))
    return [str(s.get("name")) if isinstance(s, dict) else str(getattr(s, "name", s)) for s in given]


# ---------------------------------------------------------------- info


INFO_COLUMNS = ["run_id", "scenario", "elapsed_s", "phase", "fault", "slo_violation", "target_up"]


def _parquet_chunks(parquet: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(parquet)
        missing = [c for c in INFO_COLUMNS if c not in pf.schema_arrow.names]
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise BadInput(f"{parquet}: not a dataset Parquet file: {exc}") from None
    if missing:
        raise BadInput(f"{parquet}: column '{missing[0]}' missing (not a dataset Parquet file)")
    # Row group by row group (a run each when we wrote it): memory stays at one run.
    for i in range(pf.num_row_groups):
        yield pf.read_row_group(i, columns=INFO_COLUMNS).to_pandas()


def _run_chunks(path: Path):
    for run_dir in list_runs(path):
        run = read_run(run_dir, columns=INFO_COLUMNS[2:])
        run.frame.insert(0, "run_id", run.run_id)
        run.frame.insert(1, "scenario", run.scenario_name)
        yield run.frame


def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise a dataset folder, a Parquet file or run folders: runs, hours, label shares."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or folder")
    parquet = path if path.is_file() else path / PARQUET
    manifest = None
    if parquet.is_file():
        chunks, source = _parquet_chunks(parquet), "parquet"
        if (parquet.parent / MANIFEST).is_file():
            manifest = read_manifest(parquet.parent)
    else:
        chunks, source = _run_chunks(path), "runs"
    return _summarise(chunks, path, source, manifest)


def _summarise(chunks, path: Path, source: str, manifest: dict | None) -> dict[str, Any]:
    from collections import Counter

    rows = violations = down = 0
    seconds = 0.0
    phases: Counter = Counter()
    faults: Counter = Counter()
    scenario_rows: Counter = Counter()
    run_scenario: dict[str, str] = {}
    for frame in chunks:
        rows += len(frame)
        violations += int(frame["slo_violation"].sum())
        down += int((frame["target_up"] == 0).sum())
        phases.update(frame["phase"].fillna("").astype("str").value_counts().to_dict())
        faults.update(frame["fault"].fillna("").astype("str").value_counts().to_dict())
        scenario_rows.update(frame["scenario"].astype("str").value_counts().to_dict())
        for run_id, part in frame.groupby("run_id", sort=False):
            run_scenario.setdefault(str(run_id), str(part["scenario"].iloc[0]))
            # Imported runs may be sampled every N seconds: hours count sampled time, not rows.
            step = float(part["elapsed_s"].diff().median()) if len(part) > 1 else 1.0
            seconds += len(part) * step
    runs_per_scenario = Counter(run_scenario.values())
    info: dict[str, Any] = {
        "path": str(path), "source": source, "runs": len(run_scenario), "rows": rows,
        "hours": round(seconds / 3600, 3),
        "phase_share": _shares(phases, rows),
        "fault_share": _shares(faults, rows),
        "slo_violation_share": round(violations / rows, 4) if rows else 0.0,
        "target_down_share": round(down / rows, 4) if rows else 0.0,
        "scenarios": {name: {"runs": runs_per_scenario[name], "rows": int(scenario_rows[name])}
                      for name in runs_per_scenario},
    }
    if manifest:
        info["created_at"] = manifest.get("created_at")
        info["runs_excluded"] = manifest.get("runs_excluded", 0)
        info["dataset_sha256"] = (manifest.get("dataset") or {}).get("sha256")
    return info


def _shares(counts, total: int) -> dict[str, float]:
    return {str(k): round(v / total, 4) for k, v in counts.most_common()} if total else {}


def print_dataset_info(console, info: dict[str, Any]) -> None:
    """Render dataset_info's dict as rich tables."""
    from rich.table import Table

    head = Table(box=None, show_header=False)
    head.add_row("path", info["path"])
    head.add_row("runs", str(info["runs"]) + (f" ({info['runs_excluded']} excluded)"
                                                if info.get("runs_excluded") else ""))
    head.add_row("rows", f"{info['rows']:,}")
    head.add_row("hours", f"{info['hours']:.2f}")
    head.add_row("SLO violation", f"{info['slo_violation_share']:.1%} of seconds")
    head.add_row("target down", f"{info['target_down_share']:.1%} of seconds")
    if info.get("created_at"):
        head.add_row("created", info["created_at"])
    console.print(head)
    for title, key in (("phase", "phase_share"), ("fault", "fault_share")):
        table = Table(title, "share of seconds", box=None)
        for name, share in info[key].items():
            table.add_row(name, f"{share:.1%}")
        console.print(table)
    table = Table("scenario", "runs", "rows", box=None)
    for name, counts in info["scenarios"].items():
        table.add_row(name, str(counts["runs"]), f"{counts['rows']:,}")
    console.print(table)


# ---------------------------------------------------------------- merge shards


# What every shard of one matrix must agree on, as (label, manifest path).
_SHARD_AGREES = (("scenarios", ("scenarios",)), ("seeds", ("seeds",)),
                 ("repeats", ("generation", "repeats")), ("duration", ("generation", "duration_s")),
                 ("shard count", ("generation", "shard", "count")),
                 ("matrix run ids", ("generation", "shard", "matrix_run_ids")),
                 ("package versions", ("versions",)))
_HOST_KEYS = ("hostname", "cpu_model", "cpu_logical", "memory_gib")


def _dig(obj: dict, path: Sequence[str]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_shard_manifest(part: Path) -> dict[str, Any]:
    """Return the manifest of a dataset folder written by `generate-dataset --shard`."""
    path = part / MANIFEST
    if not path.is_file():
        raise BadInput(f"{part}: no {MANIFEST} (not a finished dataset; run its generate-dataset "
                       f"--shard command again)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise BadInput(f"{path}: not JSON: {exc}") from None
    shard = _dig(manifest, ("generation", "shard"))
    if not isinstance(shard, dict) or not {"index", "count", "run_ids", "matrix_run_ids"} <= set(shard):
        raise BadInput(f"{path}: generation.shard: missing (a dataset made without --shard I/N)")
    return manifest


def check_shards(parts: Sequence[Path], manifests: Sequence[dict]) -> list[str]:
    """Refuse shards of different matrices, or not every shard once; return warnings (hosts)."""
    first, first_part = manifests[0], parts[0]
    for part, manifest in zip(parts[1:], manifests[1:]):
        for label, path in _SHARD_AGREES:
            mine, theirs = _dig(manifest, path), _dig(first, path)
            if mine != theirs:
                raise BadInput(f"{part}: {label} differ from {first_part}'s: "
                               f"{_short(mine)} vs {_short(theirs)}")
    count = int(first["generation"]["shard"]["count"])
    seen: dict[int, Path] = {}
    for part, manifest in zip(parts, manifests):
        index = int(manifest["generation"]["shard"]["index"])
        if index in seen:
            raise BadInput(f"{part}: shard {index}/{count} given twice (also {seen[index]})")
        seen[index] = part
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise BadInput(f"dataset merge: shard {', '.join(missing)} missing "
                       f"(given {', '.join(f'{i}/{count}' for i in sorted(seen))})")
    hosts = {tuple(str((m.get("host") or {}).get(k)) for k in _HOST_KEYS) for m in manifests}
    if len(hosts) > 1:
        names = sorted({str((m.get("host") or {}).get("hostname")) for m in manifests})
        return [f"shards_on_different_hosts: recorded on {len(hosts)} different machines "
                f"({', '.join(names)}); latency and capacity are those of each run's machine "
                f"(runs/*/run.json host)"]
    return []


def _check_shard_runs(part: Path, manifest: dict) -> list[Path]:
    """Return the part's run folders: exactly its shard's run ids, each complete with matching checksums."""
    shard = manifest["generation"]["shard"]
    where = f"shard {shard['index']}/{shard['count']}"
    runs_dir = part / "runs"
    found = {p.name: p for p in list_runs(runs_dir)} if runs_dir.is_dir() else {}
    extra = sorted(set(found) - set(shard["run_ids"]))
    if extra:
        raise BadInput(f"{runs_dir / extra[0]}: not a run of {where} (a folder of another dataset?)")
    for run_id in shard["run_ids"]:
        if run_id not in found:
            raise BadInput(f"{runs_dir / run_id}: missing: run {where}'s generate-dataset command again")
        _entry, reason = _run_entry(found[run_id])
        if reason:
            raise BadInput(f"{found[run_id]}: {reason}")
    return [found[r] for r in shard["run_ids"]]


def _copy_run(source: Path, runs_dir: Path) -> None:
    """Copy a run folder into runs_dir (hard links where they work), whole or not at all."""
    import shutil

    dest = runs_dir / source.name
    if dest.exists():
        if (dest / RUN_JSON).is_file() and sha256_file(dest / RUN_JSON) == sha256_file(source / RUN_JSON):
            return     # the same run, merged before
        raise BadInput(f"{dest}: already holds a different run; merge into an empty folder")

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    tmp = runs_dir / f".{source.name}.merging"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=link_or_copy)
    os.replace(tmp, dest)


def _unsharded(command: str | None) -> str | None:
    """The shard's generate-dataset command without --shard: one machine's way to the same dataset."""
    import shlex

    if not command:
        return command
    words, out = shlex.split(command), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--shard":
            skip = True
        elif not word.startswith("--shard="):
            out.append(word)
    return " ".join(shlex.quote(w) for w in out)


def merge_datasets(parts: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   command: str | None = None, on_warning=None, on_run=None) -> DatasetBuild:
    """Join the shards of one matrix into one dataset folder: runs, dataset.parquet, manifest, card.

    Every shard of the matrix must be given once; they must agree on scenarios, seeds,
    repeats, duration and package versions (shards from different hosts are merged with
    a warning, recorded in the manifest); every run must be complete with matching
    checksums. The parts are left as they are; their runs are hard-linked or copied into
    out_dir/runs/, and the dataset files are built as generate-dataset builds them, so the
    Parquet file is the one a single machine writes from the same runs.
    """
    parts = [Path(p) for p in parts]
    if not parts:
        raise BadInput("dataset merge: give the shards' dataset folders")
    out = Path(out_dir)
    if any(out.resolve() == p.resolve() for p in parts):
        raise BadInput(f"--out: {out} is one of the shards; merge into a new folder")
    manifests = [read_shard_manifest(p) for p in parts]
    warnings = check_shards(parts, manifests)
    sources = [run for part, m in zip(parts, manifests) for run in _check_shard_runs(part, m)]
    matrix = manifests[0]["generation"]["shard"]["matrix_run_ids"]
    if sorted(r.name for r in sources) != sorted(matrix):
        raise BadInput(f"dataset merge: the shards' runs are not the matrix's {len(matrix)} runs")
    runs_dir = out / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    strangers = sorted({p.name for p in runs_dir.iterdir() if not p.name.startswith(".")} - set(matrix))
    if strangers:
        raise BadInput(f"{runs_dir / strangers[0]}: not a run of these shards; merge into an empty folder")
    for source in sources:
        _copy_run(source, runs_dir)
    for message in warnings:
        if on_warning:
            on_warning(message)
    first = manifests[0]
    generation = {k: v for k, v in first["generation"].items() if k != "shard"}
    generation.update({
        "command": _unsharded(first["generation"].get("command")),
        "merge_command": command,
        "warnings": warnings,
        "merged_from": [{"path": str(p), "shard": f"{m['generation']['shard']['index']}/"
                         f"{m['generation']['shard']['count']}", "runs": len(m['generation']['shard']['run_ids']),
                         "host": (m.get("host") or {}).get("hostname"), "created_at": m.get("created_at"),
                         "command": m["generation"].get("command")}
                        for p, m in sorted(zip(parts, manifests),
                                           key=lambda pm: pm[1]["generation"]["shard"]["index"])],
    })
    return build_dataset_files(out, scenarios=first.get("scenarios"), seeds=first.get("seeds"),
                               extra_meta=generation, on_run=on_run)


def print_merge(console, build: DatasetBuild) -> None:
    """One line for `dataset merge`: runs joined and the files written."""
    shards = len((build.manifest.get("generation") or {}).get("merged_from") or [])
    console.print(f"{build.manifest['runs_included']} runs from {shards} shards, {build.rows:,} rows -> "
                  f"[bold]{build.parquet}[/], {build.card.name}, {build.manifest_path.name}")
