"""The tuning protocol: a dataset's fixed split, leave-one-scenario-out tuning, a test split opened once.

A dataset made with `generate-dataset --preset` carries its split in `manifest.json`
(`generation.split`): `train` and `test` run ids (the test split holds the held-out
scenarios, every seed, and the held-out seeds, every scenario), and `validation_folds`,
one per training scenario. Everything that is tuned — the LSTM's hyper-parameters, the
alarm threshold, the baselines' settings, the best baseline — is chosen on the training
runs: a setting is scored by leave-one-scenario-out validation (fit on the other training
scenarios, predict the left-out one), and the threshold is chosen on the pooled
out-of-fold predictions. `SealedTest` loads the test runs only when a reported figure
asks for them, once per figure, and records that it did; nothing in `tune` can reach it.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from contract.errors import BadInput, LabError

from .data import Windows, load_runs, run_name, slo_columns
from .metrics import choose_threshold, forecast_scores


def read_split(dataset: str | Path) -> dict[str, Any] | None:
    """Return the split recorded in a dataset folder's manifest, or None when it has none."""
    manifest = Path(dataset) / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{manifest}: not a valid manifest: {exc}") from None
    split = (data.get("generation") or {}).get("split") if isinstance(data, dict) else None
    if split is None:
        return None
    if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("train", "test")):
        raise BadInput(f"{manifest}: generation.split: needs lists 'train' and 'test' of run ids")
    return split


@dataclass
class DatasetSplit:
    """The fixed split of a dataset folder: training run folders, and the test split behind a seal."""

    folder: Path
    split: dict[str, Any]
    train_dirs: list[Path]
    test_dirs: list[Path]

    @classmethod
    def of(cls, dataset: str | Path) -> DatasetSplit:
        """Read the split of a dataset folder (BadInput when it has none, or names runs it lacks)."""
        folder = Path(dataset)
        split = read_split(folder)
        if split is None:
            raise BadInput(f"{folder}: the manifest holds no split (make the dataset with "
                           f"`generate-dataset --preset small|bench`)")
        paths = {e["run_id"]: folder / e["path"] for e in json.loads((folder / "manifest.json").read_text())["runs"]
                 if isinstance(e, dict) and e.get("included") and e.get("path") and e.get("run_id")}
        missing = [r for r in split["train"] + split["test"] if r not in paths]
        if missing:
            raise BadInput(f"{folder / 'manifest.json'}: split names run {missing[0]}, which is not an included run")
        return cls(folder, split, [paths[r] for r in split["train"]], [paths[r] for r in split["test"]])

    def train_runs(self) -> list[pd.DataFrame]:
        """Load the training runs (and nothing else)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_runs(self.train_dirs)

    def sealed_test(self) -> SealedTest:
        return SealedTest(self.test_dirs)


@dataclass
class SealedTest:
    """The test split: loaded on demand, once per reported figure, every opening recorded."""

    dirs: list[Path]
    opened: list[dict[str, Any]] = field(default_factory=list)

    def open(self, figure: str) -> list[pd.DataFrame]:
        """Load the test runs for one reported figure; a second opening for the same figure is refused."""
        if any(o["figure"] == figure for o in self.opened):
            raise LabError(f"the test split was already opened for {figure!r}: a figure is scored on it once")
        self.opened.append({"figure": figure, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "runs": len(self.dirs)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_runs(self.dirs)


def split_by_manifest(runs: Sequence[pd.DataFrame], split: dict[str, Any]) -> tuple[list, list]:
    """Return (train, test) runs as the manifest's split names them."""
    train_ids, test_ids = set(split["train"]), set(split["test"])
    return ([r for r in runs if run_name(r) in train_ids], [r for r in runs if run_name(r) in test_ids])


# ---------------------------------------------------------------- leave-one-scenario-out


def scenario_folds(runs: Sequence[pd.DataFrame]) -> list[tuple[str, list[pd.DataFrame], list[pd.DataFrame]]]:
    """Return (left-out scenario, fit runs, validation runs) per training scenario."""
    names = sorted({str(r.attrs.get("scenario")) for r in runs})
    if len(names) < 2:
        raise BadInput(f"leave-one-scenario-out needs at least two training scenarios, got {', '.join(names)}")
    return [(n, [r for r in runs if str(r.attrs.get("scenario")) != n],
             [r for r in runs if str(r.attrs.get("scenario")) == n]) for n in names]


def concat_windows(parts: Sequence[Windows]) -> Windows:
    """Join windows of disjoint runs into one set (run indexes renumbered).

    Folds may choose different input columns, so the joined inputs keep the key metrics only.
    """
    offset, runs = 0, []
    for w in parts:
        runs.append(w.run + offset)
        offset += len(w.run_ids)
    first = parts[0]
    return Windows(x=np.concatenate([w.x_key for w in parts]), y=np.concatenate([w.y for w in parts]),
                   warn=np.concatenate([w.warn for w in parts]), future=np.concatenate([w.future for w in parts]),
                   run=np.concatenate(runs), t=np.concatenate([w.t for w in parts]),
                   slo=np.concatenate([w.slo for w in parts]), run_ids=[r for w in parts for r in w.run_ids],
                   columns=list(first.key_metrics), key_metrics=first.key_metrics,
                   violation=[v for w in parts for v in w.violation], window=first.window, horizon=first.horizon,
                   frames=[f for w in parts for f in w.frames])


@dataclass
class Tuned:
    """What the protocol chose, and the validation figures it chose by."""

    config: str
    params: dict[str, Any]
    threshold: float
    threshold_note: str
    scores: dict[str, dict[str, Any]]
    fits: int
    seconds: float


def _fold_predictions(params: dict[str, Any], folds, seed: int, on_fit) -> tuple[Windows, np.ndarray, np.ndarray]:
    from .forecaster import LSTMForecaster

    windows, forecasts, probs = [], [], []
    for name, fit_runs, val_runs in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LSTMForecaster(**params, seed=seed).fit(fit_runs)
            try:
                pred = model.predict(val_runs)
            except BadInput:
                continue                       # the left-out scenario's runs are too short for this window
        if on_fit:
            on_fit(name)
        windows.append(pred.windows)
        forecasts.append(pred.forecast)
        probs.append(pred.probability)
    if not windows:
        raise BadInput("no validation fold gave a window with these settings")
    return concat_windows(windows), np.concatenate(forecasts), np.concatenate(probs)


def tune(train_runs: Sequence[pd.DataFrame], grid: dict[str, dict[str, Any]], *, seed: int = 0,
         on_fit: Callable[[str, str], None] | None = None) -> Tuned:
    """Choose a configuration and the alarm threshold by leave-one-scenario-out validation on training runs.

    Each configuration is fitted once per fold; its out-of-fold forecasts are pooled and
    scored by RelMAE at h = H on the SLO latency target (lower wins; the mean RelMAE over
    every key metric breaks ties). The chosen configuration's alarm threshold is chosen on
    its pooled out-of-fold warning probabilities (`metrics.choose_threshold`).
    """
    from .baselines import persistence

    started = time.monotonic()
    folds = scenario_folds(train_runs)
    scores, kept = {}, {}
    for config, params in grid.items():
        w, forecast, prob = _fold_predictions(params, folds, seed, on_fit and (lambda f, c=config: on_fit(c, f)))
        lat = slo_columns(w.key_metrics)[0]
        s = forecast_scores(w.y, forecast, persistence(w.x_key, w.horizon), w.key_metrics)
        rel = [s[m]["relmae"][-1] for m in w.key_metrics]
        scores[config] = {"relmae_at_h": s[lat]["relmae"][-1], "relmae_mean_at_h": float(np.nanmean(
            [np.nan if v is None else v for v in rel])), "windows": len(w), "folds": len(folds)}
        kept[config] = (w, prob)
    best = min(scores, key=lambda c: (np.nan_to_num(scores[c]["relmae_at_h"], nan=np.inf),
                                      np.nan_to_num(scores[c]["relmae_mean_at_h"], nan=np.inf)))
    threshold, note = choose_threshold(*kept[best])
    return Tuned(best, dict(grid[best]), threshold, f"leave-one-scenario-out: {note}", scores,
                 fits=len(grid) * len(folds), seconds=round(time.monotonic() - started, 1))
