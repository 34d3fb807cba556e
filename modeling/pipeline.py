"""Train, save, load and evaluate the lab's model bundle (what `lab.py train/evaluate` do).

A model folder holds:

    forecaster/      model.keras + params.json (LSTM forecaster and early-warning head)
    regimes.json     KMeans regimes (centroids, scaling, names)
    baselines.json   the baselines' settings and the best baseline per metric, chosen on the
                     training runs (modeling.baselines.BaselineSuite)
    products.json    KMeans over endpoints by performance profile (when samples exist)
    train.json       sources (relative to the model folder), the split (train and held-out
                     runs), settings, data summary
    metrics.json     written by evaluate

The folder is written whole (runio.atomic_folder): training fills a temporary sibling and
renames it into place, so retraining never leaves a file of the previous model behind
(a stale products.json or metrics.json), and a failed training leaves the old model as
it was. train.json is written last inside it; a folder without one is not a model.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from contract.errors import BadInput, LabError
from contract.runfolder import atomic_folder, atomic_write_json, read_json

from .data import DataWarning, default_inputs, load_runs, resolve_targets, row_interval, run_name, split_runs
from .protocol import read_split, split_by_manifest
from .profiles import LIVE_FEATURES, apply_profile
from contract.runfolder import read_samples
from .products import ProductClusters, endpoint_profiles
from .forecaster import LSTMForecaster
from .regimes import RegimeModel
from .evaluate import evaluate
from .data import chronological_split

FORECASTER_DIR = "forecaster"

TRAIN_JSON = "train.json"
METRICS_JSON = "metrics.json"
BASELINES_JSON = "baselines.json"


@dataclass
class Bundle:
    folder: Path
    forecaster: Any
    regimes: Any | None
    products: Any | None
    meta: dict
    baselines: Any | None = None

    def paths(self, key: str) -> list[str | None]:
        """train.json's `sources` or `test_sources` as paths: relative ones are to the model folder.

        A model folder names its data relative to itself, so a model shipped beside its
        runs (course/data) finds them wherever the two are copied; older folders stored
        absolute paths, which are kept as they are.
        """
        return [None if p is None else str(Path(p) if Path(p).is_absolute() else self.folder / p)
                for p in self.meta.get(key) or []]


def _relative_to(folder: Path, source: str | Path) -> str:
    """`source` relative to the model `folder` (both made absolute first), for train.json."""
    return os.path.relpath(Path(source).absolute(), Path(folder).absolute())


def _run_folders(runs: Sequence[pd.DataFrame]) -> list[Path]:
    return [Path(r.attrs["source"]) for r in runs
            if r.attrs.get("source") and Path(r.attrs["source"]).is_dir()]


def fit_products(run_dirs: Sequence[Path], seed: int = 0):
    """Cluster endpoints by their profile over the training runs' raw samples (None without samples)."""

    frames = []
    for folder in run_dirs:
        try:
            frames.append(read_samples(folder))
        except BadInput:
            continue
    if not frames:
        return None
    profiles = endpoint_profiles(pd.concat(frames, ignore_index=True))
    if len(profiles) < 3:
        return None
    return ProductClusters(seed=seed).fit(profiles)


def train_bundle(sources: Sequence[str | Path], out: Path, *, holdout: Sequence[str] | None = None,
                 test_fraction: float = 0.25, preset: str = "default", params: dict | None = None,
                 known_future: Sequence[str] = (), seed: int = 0, regimes_k: int | None = None,
                 on_epoch: Callable[[int, int, dict], None] | None = None,
                 on_warning: Callable[[str], None] | None = None, profile: str = "lab",
                 plan: str | None = None, targets: Sequence[str] | None = None) -> Bundle:
    """Load the sources, split by run (or in time for one run), fit and save every model.

    `plan` ("ahead" or "held") gives the forecaster the scenario's plan as its known future
    (`plan_column` picks planned_rate or planned_users, whichever the training runs have);
    a dataset folder with a fixed split in its manifest is split that way unless
    `holdout` says otherwise. `targets` are the columns to forecast (default: the lab's
    key metrics, `data.resolve_targets`); the inputs are every numeric column (the feature
    rule in modeling/data.py) unless the live profile names them. Window and horizon count
    rows: an imported run of 300 s rows with window 24 looks back two hours.
    """
    out = Path(out)
    _check_model_out(out)     # before the training, not after it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        runs = apply_profile(load_runs(sources), profile)
        manifest_split = read_split(sources[0]) if not holdout and len(sources) == 1 else None
        if manifest_split is not None:
            train, test = split_by_manifest(runs, manifest_split)
        else:
            train, test = split_runs(runs, holdout=holdout, test_fraction=test_fraction, seed=seed)
        started = time.monotonic()
        interval_s = row_interval(runs)
        key_metrics = resolve_targets(train, targets)
        features = ([c for c in LIVE_FEATURES if c in train[0].columns] if profile == "live"
                    else default_inputs(train, key_metrics))
        params = dict(params or {})
        if plan is not None:
            if plan not in ("ahead", "held"):
                raise BadInput(f"--plan: must be ahead or held, got {plan!r}")
            if profile == "live":
                raise BadInput("--plan: the live profile sees what a monitor sees of a running target, "
                               "and that has no plan")
            known_future, params["future"] = [plan_column(train)], {"ahead": "plan", "held": "hold"}[plan]
        forecaster = LSTMForecaster(preset=preset, known_future=known_future, seed=seed, key_metrics=key_metrics,
                                    features=features, **params).fit(train, on_epoch=on_epoch)
        train_s = time.monotonic() - started
        regimes = fit_regimes(train, regimes_k, seed)
        baselines = fit_baselines(forecaster, train)
        products = fit_products(_run_folders(train), seed=seed)
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for note in notes:
        if on_warning:
            on_warning(note)

    meta = {
        "sources": [_relative_to(out, s) for s in sources],
        "split": ("held-out scenarios: " + ", ".join(holdout)) if holdout else
                 (_manifest_split_text(manifest_split) if manifest_split is not None else
                  "chronological: first 75% / last 25% of the one run" if len(runs) == 1 else
                  f"random {test_fraction:.0%} of runs (seed {seed})"),
        "holdout_scenarios": list(holdout or []),
        "train_runs": [run_name(r) for r in train],
        "test_runs": [run_name(r) for r in test],
        "test_sources": [_relative_to(out, r.attrs["source"]) if r.attrs.get("source") else None
                         for r in test],
        "train_rows": int(sum(len(r) for r in train)),
        "train_seconds": round(train_s, 1),
        "epochs_run": len(getattr(forecaster, "history_", {}).get("loss", []) or []),
        "preset": preset, "params": forecaster.params_, "seed": seed, "profile": profile,
        "targets": list(key_metrics), "interval_s": interval_s,
        **({"queries": queries} if (queries := _queries_of(train)) else {}),
        "warnings": notes,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with atomic_folder(out) as tmp:
        forecaster.save(tmp / FORECASTER_DIR)
        if regimes is not None:
            regimes.save(tmp / "regimes.json")
        atomic_write_json(tmp / BASELINES_JSON, baselines.to_dict())
        if products is not None:
            products.save(tmp / "products.json")
        atomic_write_json(tmp / TRAIN_JSON, meta)
    return Bundle(out, forecaster, regimes, products, meta, baselines)


def fit_regimes(train: Sequence[pd.DataFrame], k: int | None, seed: int):
    """Fit the KMeans regimes, or None (with a DataWarning) when the runs lack the columns they read."""
    from .data import _finite
    from .regimes import REQUIRED as REGIME_METRICS

    empty = [m for m in REGIME_METRICS
             if not all(m in r.columns and pd.notna(_finite(r[m])).any() for r in train)]
    if empty:
        warnings.warn(f"regimes: not fitted: the training runs have no values in {', '.join(empty)} (the regimes "
                      f"read {', '.join(REGIME_METRICS)})", DataWarning, stacklevel=2)
        return None
    return RegimeModel(k=k, seed=seed).fit(train)


def _queries_of(runs: Sequence[pd.DataFrame]) -> dict[str, str] | None:
    """The PromQL behind each column of runs imported from Prometheus (import-prometheus), when they agree."""
    found = [((r.attrs.get("meta") or {}).get("source") or {}).get("queries") for r in runs]
    if not found or not all(isinstance(q, dict) and q for q in found):
        return None
    if any(q != found[0] for q in found[1:]):
        raise BadInput("the training runs were imported from Prometheus with different queries; "
                       "train on runs of the same --query set")
    return dict(found[0])


def plan_column(runs: Sequence[pd.DataFrame]) -> str:
    """Return the plan column every run has values in: planned_rate (open model), else planned_users."""
    for column in ("planned_rate", "planned_users"):
        if all(column in r.columns and pd.to_numeric(r[column], errors="coerce").notna().any() for r in runs):
            return column
    raise BadInput("--plan: the training runs hold no plan (planned_rate or planned_users empty in some run: "
                   "runs recorded before the plan columns, imported runs, or open and closed runs mixed)")


def _manifest_split_text(split: dict) -> str:
    return (f"the dataset's fixed split (preset {split.get('preset', '?')}): test = held-out scenarios "
            f"{', '.join(split.get('test_scenarios') or []) or '-'} and held-out seeds "
            f"{', '.join(str(s) for s in split.get('test_seeds') or []) or '-'}")


def fit_baselines(forecaster: Any, train: Sequence[pd.DataFrame]):
    """Choose the baselines' settings and the best baseline per metric on the training runs' windows."""
    from .baselines import BaselineSuite

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        windows = forecaster.windows(train)
    return BaselineSuite(horizon=int(forecaster.params_["horizon"]),
                         key_metrics=list(forecaster.key_metrics_)).fit(windows)


def is_model_folder(folder: str | Path) -> bool:
    """Tell whether a folder holds a model bundle written by `train_bundle`."""
    return (Path(folder) / FORECASTER_DIR).is_dir()


def _check_model_out(out: Path) -> None:
    """Refuse to replace something that is not a model folder (the whole folder is replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is a file, not a model folder")
    if out.is_dir() and any(out.iterdir()) and not ((out / TRAIN_JSON).is_file() or (out / FORECASTER_DIR).is_dir()):
        raise BadInput(f"{out}: exists and is not a model folder (no {TRAIN_JSON}, no forecaster/); "
                       f"training replaces the whole folder, so give a new or a model folder")


def load_bundle(folder: str | Path) -> Bundle:
    """Load a model folder written by train_bundle (Keras with safe_mode, the rest from JSON)."""
    folder = Path(folder)
    if not is_model_folder(folder):
        raise BadInput(f"{folder}: not a model folder (no forecaster/; train one with `lab.py train`)")
    if not (folder / TRAIN_JSON).is_file():
        raise BadInput(f"{folder / TRAIN_JSON}: missing (an incomplete model folder; train it again "
                       f"with `lab.py train`)")
    meta = read_json(folder / TRAIN_JSON, TRAIN_JSON)
    forecaster = LSTMForecaster.load(folder / FORECASTER_DIR)
    regimes = RegimeModel.load(folder / "regimes.json") if (folder / "regimes.json").exists() else None
    products = ProductClusters.load(folder / "products.json") if (folder / "products.json").exists() else None
    baselines = None
    if (folder / BASELINES_JSON).exists():
        from .baselines import BaselineSuite

        baselines = BaselineSuite.from_dict(read_meta_json(folder / BASELINES_JSON))
    return Bundle(folder, forecaster, regimes, products, meta, baselines)


def _baselines_of(bundle: Bundle):
    """The bundle's baselines; an older model folder without baselines.json gets them fitted on its training runs."""
    if bundle.baselines is not None or not bundle.meta.get("train_runs"):
        return bundle.baselines
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = apply_profile(load_runs(bundle.paths("sources")), bundle.meta.get("profile", "lab"))
    except (BadInput, OSError):
        return None                      # the training runs are gone: defaults, and metrics.json says so
    train = [r for r in runs if run_name(r) in set(bundle.meta["train_runs"])]
    return fit_baselines(bundle.forecaster, train) if train else None


def read_meta_json(path: Path) -> dict:
    """Read an optional JSON object of a model folder (metrics.json): {} when the file is absent."""
    return read_json(path, path.name) if path.exists() else {}


def evaluate_bundle(bundle: Bundle, sources: Sequence[str | Path] | None = None,
                    out: Path | None = None) -> dict:
    """Score the bundle on held-out runs (the ones recorded at training when none are given)."""
    if sources:
        runs = apply_profile(load_runs(sources), bundle.meta.get("profile", "lab"))
        # A run split in time trained on its head ("run[head]"): the whole run is no held-out run.
        train_ids = {t.split("[", 1)[0] for t in bundle.meta.get("train_runs", [])} | set(bundle.meta.get("train_runs", []))
        trained_at, given = bundle.meta.get("interval_s"), row_interval(runs)
        if trained_at is not None and float(trained_at) != given:
            raise BadInput(f"the runs have rows {given:g} s apart and {bundle.folder} was trained on rows "
                           f"{float(trained_at):g} s apart: its window and horizon count rows, so they would "
                           f"mean other durations (import the runs with --interval {float(trained_at):g})")
        overlap = [run_name(r) for r in runs if run_name(r) in train_ids]
        if overlap:
            raise BadInput(f"run {overlap[0]} was used for training; evaluate on held-out runs "
                           f"(or omit RUNS to use the runs held out at training)")
    else:
        held = [s for s in bundle.paths("test_sources") if s]
        if not held:
            raise BadInput(f"{bundle.folder}: no held-out runs recorded; give RUNS to evaluate on")
        runs = apply_profile(load_runs(held), bundle.meta.get("profile", "lab"))
        if any("[" in name for name in bundle.meta.get("test_runs", [])):
            # A single run was split in time: evaluate on its held-out tail only.

            runs = [chronological_split(r)[1] for r in runs]
    if not runs:
        raise LabError("no runs to evaluate on")
    result = evaluate(bundle.forecaster, runs, regimes=bundle.regimes, baselines=_baselines_of(bundle))
    if bundle.products is not None:
        result["products"] = {"clusters": bundle.products.assignments(),
                              "k": getattr(bundle.products, "k_", None)}
    result["model"] = {"folder": str(bundle.folder), "train_runs": bundle.meta.get("train_runs"),
                       "split": bundle.meta.get("split")}
    atomic_write_json(out or bundle.folder / METRICS_JSON, result)
    return result
