"""Operating regimes: KMeans over load-normalised features pooled over the last seconds, named as system states.

Each second t gets features over its last `span` seconds (t - span + 1 .. t), none of them
the load level itself (`FEATURES`):

- queue time: mean and trend (least-squares slope per second) of log1p of the server-side
  queue p95 (`srv_queue_p95_ms`; the client p95 where a run has no queue time);
- backlog per request thread: mean and trend of log1p(outstanding / (workers x threads))
  (`srv_in_flight` where a run has no `outstanding`);
- net inflow share: (arrivals - completions) / max(arrivals, completions, 1), pooled;
- error share: failures / completions, pooled;
- CPU per request: log1p(sum of CPU % / sum of completions);
- RSS slope (MB/s), and the in-flight floor per thread (the least requests in flight in the
  span, / the thread pool: stuck threads never leave it);
- the client p95 latency, log1p of its mean.

A second in which nothing completed (rps 0: a stalled target) has no latency, queue time or
error rate; those carry their last value through it instead of leaving the span undefined.

The features are standardised on the training runs (each scale at least `SCALE_FLOORS`, so
a feature that barely moves in training cannot blow up). k is the number of system states
(`modeling.states.STATES`) unless given. With `init="states"` KMeans starts from the mean of
each state's training seconds (a supervised start; then at most `iterations` Lloyd steps
move the centroids: 1 keeps them by the states' means, 300 lets KMeans find its own
optimum); a state that no training second is in gets a prototype centroid (the healthy
profile with that state's signature set past its rule's threshold) and is named as such.
With `init="k-means++"` KMeans starts as scikit-learn does (10 starts). The defaults (span
10 s, the states' start, 1 Lloyd step, min dwell 5 s) are the setting leave-one-scenario-out
chose on the small preset (benchmarks/README.md); `tune_regimes` chooses again per dataset.

Names: the cluster-to-state map is learned on the training runs: the one-to-one assignment
(Hungarian, scipy) that maximises the summed share of each state's seconds that its cluster
holds; clusters beyond the states take their majority state. Names are the states' own
(healthy, saturated, ...), never numbered.

Stickiness (`smoothing`): "dwell" (default) gives every stretch shorter than `min_dwell_s`
the regime before it; "none" keeps the nearest centroid. (An HMM decode with hmmlearn, the
clusters as states and transitions counted on the training runs, was tried and scored
lower on the small preset's validation folds: benchmarks/README.md.) Saved as JSON:
nothing is unpickled on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from contract.errors import BadInput, LabError
from contract.runfolder import atomic_write_json, read_json

from .data import DEFAULT_MAX_GAP_S, Scaler, fill_gaps, require_columns, run_slo
from .states import (ERRORING, EXHAUSTION, HEALTHY, LEAK_MB_PER_S, QUEUE_FLOOR_MS, RECOVERING, SATURATED, STATES,
                     min_dwell, pool_threads, system_states, trailing)

FORMAT = "stability-lab/regimes/2"
FEATURES: tuple[str, ...] = (
    "queue_ms:level", "queue_ms:trend", "backlog_per_thread:level", "backlog_per_thread:trend",
    "net_inflow_share:level", "error_share:level", "cpu_per_request:level", "rss_mb:trend",
    "in_flight_floor_per_thread:level", "latency_p95_ms:level")
SCALE_FLOORS: dict[str, float] = {
    "queue_ms:level": 0.25, "queue_ms:trend": 0.02, "backlog_per_thread:level": 0.1,
    "backlog_per_thread:trend": 0.02, "net_inflow_share:level": 0.05, "error_share:level": 0.01,
    "cpu_per_request:level": 0.05, "rss_mb:trend": 0.25, "in_flight_floor_per_thread:level": 0.05,
    "latency_p95_ms:level": 0.25}
REQUIRED = ("latency_p95_ms", "error_rate", "cpu_percent", "rps", "rss_mb")
# Columns used when every training run has values in them; otherwise the fallback in brackets.
OPTIONAL = ("srv_queue_p95_ms", "outstanding", "srv_in_flight", "arrivals", "failures")
DEFAULT_SPAN = 10
DEFAULT_DWELL_S = 5
DEFAULT_ITERATIONS = 1      # the Lloyd steps leave-one-scenario-out chose on the small preset (benchmarks/README.md)
MIN_STATE_S = 5              # a state with fewer training seconds gets a prototype centroid
SMOOTHINGS = ("dwell", "none")
INITS = ("states", "k-means++")
UNKNOWN = "unknown"


def _has(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and pd.to_numeric(frame[column], errors="coerce").notna().any()


def feature_sources(runs: Sequence[pd.DataFrame]) -> list[str]:
    """Return the raw columns the features read: REQUIRED plus every OPTIONAL one all runs have values in."""
    require_columns(runs, REQUIRED)
    return [*REQUIRED, *(c for c in OPTIONAL if all(_has(r, c) for r in runs))]


def regime_features(frame: pd.DataFrame, sources: Sequence[str], pool: float, span: int = DEFAULT_SPAN,
                    max_gap_s: int = DEFAULT_MAX_GAP_S) -> np.ndarray:
    """Return the (n, len(FEATURES)) features of each second; NaN where a span is not complete."""
    require_columns([frame], sources)
    raw = fill_gaps(frame, list(sources), max_gap_s)[:, :-1]
    v = {c: raw[:, j] for j, c in enumerate(sources)}
    rps = v["rps"]
    idle = rps == 0                      # nothing completed: no latency to measure, the last one stands
    for c in ("latency_p95_ms", "srv_queue_p95_ms", "error_rate"):
        if c in v and idle.any():
            v[c] = np.where(idle & np.isnan(v[c]), pd.Series(v[c]).ffill().to_numpy(), v[c])
    queue = v.get("srv_queue_p95_ms", v["latency_p95_ms"])
    backlog = v.get("outstanding", v.get("srv_in_flight"))
    failures = v["failures"] if "failures" in v else v["error_rate"] * rps
    done = trailing(rps, span, "sum")
    pos = lambda x: np.log1p(np.clip(x, 0, None))  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = {
            "queue_ms:level": trailing(pos(queue), span, "mean"),
            "queue_ms:trend": trailing(pos(queue), span, "slope"),
            "net_inflow_share:level": ((trailing(v["arrivals"], span, "sum") - done)
                                       / np.maximum(np.maximum(trailing(v["arrivals"], span, "sum"), done), 1.0)
                                       if "arrivals" in v else np.where(np.isnan(done), np.nan, 0.0)),
            "error_share:level": np.where(done > 0, trailing(failures, span, "sum") / np.maximum(done, 1e-9),
                                          np.where(np.isnan(done), np.nan, 0.0)),
            "cpu_per_request:level": pos(trailing(v["cpu_percent"], span, "sum") / np.maximum(done, 1.0)),
            "rss_mb:trend": trailing(v["rss_mb"], span, "slope"),
            "latency_p95_ms:level": pos(trailing(v["latency_p95_ms"], span, "mean")),
        }
        if backlog is not None:
            cols["backlog_per_thread:level"] = trailing(pos(backlog / pool), span, "mean")
            cols["backlog_per_thread:trend"] = trailing(pos(backlog / pool), span, "slope")
        flight = v.get("srv_in_flight")
        cols["in_flight_floor_per_thread:level"] = (trailing(flight, span, "min") / pool if flight is not None
                                                    else np.where(np.isnan(done), np.nan, 0.0))
    zeros = np.where(np.isnan(done), np.nan, 0.0)
    return np.column_stack([cols.get(f, zeros) for f in FEATURES])


class RegimeModel:
    """KMeans regimes over load-normalised windowed features, named as the system states.

    Parameters
    ----------
    k : int, optional
        Number of clusters; the number of system states when None.
    span : int
        Seconds pooled behind each second's features (10-30).
    init : {"states", "k-means++"}
        KMeans start: the training states' means, or scikit-learn's k-means++.
    smoothing : {"dwell", "none"}
        Temporal stickiness of the predicted regimes.
    min_dwell_s : int
        Shortest regime stretch kept by the "dwell" smoothing.
    iterations : int
        KMeans's Lloyd iterations at most (`max_iter`); from the states' start, 1 keeps the
        centroids near the training states' means, 300 lets KMeans find its own optimum.
    seed : int
        KMeans seed.
    """

    def __init__(self, k: int | None = None, span: int = DEFAULT_SPAN, init: str = "states",
                 smoothing: str = "dwell", min_dwell_s: int = DEFAULT_DWELL_S,
                 iterations: int = DEFAULT_ITERATIONS, max_gap_s: int = DEFAULT_MAX_GAP_S, seed: int = 0):
        self.k = k
        self.iterations = iterations
        self.span = span
        self.init = init
        self.smoothing = smoothing
        self.min_dwell_s = min_dwell_s
        self.max_gap_s = max_gap_s
        self.seed = seed

    # ------------------------------------------------------------ fitting

    def _check_params(self) -> None:
        if self.init not in INITS:
            raise BadInput(f"regimes: init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.smoothing not in SMOOTHINGS:
            raise BadInput(f"regimes: smoothing must be one of {', '.join(SMOOTHINGS)}, got {self.smoothing!r}")
        if self.k is not None and self.k < 2:
            raise BadInput(f"regimes: k must be 2 or more, got {self.k}")
        if int(self.iterations) < 1:
            raise BadInput(f"regimes: iterations must be 1 or more, got {self.iterations}")
        if not 2 <= int(self.span) <= 120:
            raise BadInput(f"regimes: span must be 2-120 s, got {self.span}")

    def fit(self, runs: Sequence[pd.DataFrame], y: None = None) -> RegimeModel:
        """Fit scaling, KMeans and the cluster-to-state map on the training runs' complete seconds."""
        from sklearn.cluster import KMeans

        self._check_params()
        runs = [runs] if isinstance(runs, pd.DataFrame) else list(runs)
        self.metrics = feature_sources(runs)
        pools = [pool_threads(r) for r in runs]
        self.pool_ = float(np.median(pools))
        feats = [regime_features(r, self.metrics, p, self.span, self.max_gap_s) for r, p in zip(runs, pools)]
        truth = [system_states(r, pool=p) for r, p in zip(runs, pools)]
        ok = [~np.isnan(f).any(axis=1) for f in feats]
        rows = np.vstack([f[m] for f, m in zip(feats, ok)])
        states = np.concatenate([t[m] for t, m in zip(truth, ok)])
        k = int(self.k or len(STATES))
        if len(rows) < k + 1:
            raise BadInput(f"regimes: need at least {k + 1} complete seconds (span {self.span} s, no long gaps), "
                           f"got {len(rows)}")
        self.scaler_ = Scaler("standard").fit(rows, list(FEATURES))
        spread = np.nan_to_num(np.nanstd(rows, axis=0))
        self.scaler_.scale = [max(float(s), SCALE_FLOORS[f]) for s, f in zip(spread, FEATURES)]
        z = self.scaler_.transform(rows)
        present = [s for s in STATES if (states == s).sum() >= MIN_STATE_S]
        absent = [s for s in STATES if s not in present] if k == len(STATES) else []
        if self.init == "states" and k == len(STATES):
            start = np.vstack([z[states == s].mean(axis=0) for s in present])
            km = KMeans(n_clusters=len(present), init=start, n_init=1, max_iter=self.iterations,
                        random_state=self.seed).fit(z)
        else:
            km = KMeans(n_clusters=k - len(absent), n_init=10, random_state=self.seed).fit(z)
        labels = km.labels_
        names = self._map(labels, states, km.n_clusters, present)
        self.slo_ = {key: float(np.median([run_slo(r)[key] for r in runs])) for key in ("latency_p95_ms", "error_rate")}
        prototypes = [self._prototype(rows, states, s) for s in absent]
        self.centroids_ = np.vstack([km.cluster_centers_, *prototypes]) if prototypes else km.cluster_centers_
        self.names_ = names + absent
        self.k_ = len(self.names_)
        self.profiles_ = [dict(zip(FEATURES, np.median(rows[labels == i], axis=0).tolist())) if (labels == i).any()
                          else dict(zip(FEATURES, self.scaler_.inverse_transform(self.centroids_[i]).tolist()))
                          for i in range(self.k_)]
        self.sizes_ = np.bincount(labels, minlength=self.k_).tolist()
        self.train_shares_ = {s: round(float((states == s).mean()), 4) for s in STATES}
        self.n_features_in_ = z.shape[1]
        return self

    @staticmethod
    def _map(labels: np.ndarray, states: np.ndarray, n_clusters: int, present: Sequence[str]) -> list[str]:
        """The cluster-to-state map: Hungarian on each state's share per cluster, then majority for the rest."""
        from scipy.optimize import linear_sum_assignment

        share = np.zeros((n_clusters, len(present)))
        for j, s in enumerate(present):
            mine = states == s
            share[:, j] = np.bincount(labels[mine], minlength=n_clusters) / max(1, mine.sum())
        names: list[str | None] = [None] * n_clusters
        rows, cols = linear_sum_assignment(-share)
        for i, j in zip(rows, cols):
            names[i] = present[j]
        for i in range(n_clusters):
            if names[i] is None:
                members = states[labels == i]
                values, counts = np.unique(members, return_counts=True)
                names[i] = str(values[np.argmax(counts)]) if len(values) else HEALTHY
        return [str(n) for n in names]

    def _prototype(self, rows: np.ndarray, states: np.ndarray, state: str) -> np.ndarray:
        """A centroid for a state no training second is in: the healthy profile past that state's rule."""
        base = rows[states == HEALTHY] if (states == HEALTHY).any() else rows
        raw = dict(zip(FEATURES, np.median(base, axis=0)))
        if state == ERRORING:
            raw["error_share:level"] = 2 * self.slo_["error_rate"] + 0.05
        elif state == EXHAUSTION:
            raw["rss_mb:trend"] = 2 * LEAK_MB_PER_S
        elif state in (SATURATED, RECOVERING):
            raw["backlog_per_thread:level"] = np.log1p(2.0)
            raw["queue_ms:level"] = np.log1p(2 * QUEUE_FLOOR_MS)
            raw["backlog_per_thread:trend"] = 0.05 if state == SATURATED else -0.1
        return self.scaler_.transform(np.array([raw[f] for f in FEATURES]))

    # ------------------------------------------------------------ prediction

    def _check_fitted(self) -> None:
        if not hasattr(self, "centroids_"):
            raise LabError("this RegimeModel is not fitted yet; call fit() or load() first")

    def _nearest(self, rows: np.ndarray) -> np.ndarray:
        z = self.scaler_.transform(rows)
        dist = ((z[:, None, :] - np.asarray(self.centroids_)[None]) ** 2).sum(axis=2)
        return dist.argmin(axis=1)

    def _features(self, frame: pd.DataFrame) -> np.ndarray:
        return regime_features(frame, self.metrics, pool_threads(frame, default=self.pool_), self.span, self.max_gap_s)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the cluster index of each second after smoothing (-1 where the features are undefined)."""
        self._check_fitted()
        feats = self._features(frame)
        ok = ~np.isnan(feats).any(axis=1)
        labels = np.full(len(frame), -1, dtype=int)
        if not ok.any():
            return labels
        labels[ok] = self._nearest(feats[ok])
        if self.smoothing == "dwell":
            labels = min_dwell(labels, self.min_dwell_s, keep=(-1,)).astype(int)
        return labels

    def predict_names(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the regime name of each second ("unknown" where undefined)."""
        names = np.array([*self.names_, UNKNOWN], dtype=object)
        return names[self.predict(frame)]  # -1 picks the trailing UNKNOWN

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the standardised features of each second (NaN where undefined)."""
        self._check_fitted()
        return self.scaler_.transform(self._features(frame))

    # ------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Return everything needed to predict, as JSON-ready data."""
        self._check_fitted()
        return {"format": FORMAT,
                "params": {"k": self.k, "span": self.span, "init": self.init, "smoothing": self.smoothing,
                           "min_dwell_s": self.min_dwell_s, "iterations": self.iterations,
                           "max_gap_s": self.max_gap_s, "seed": self.seed},
                "features": list(FEATURES), "sources": list(self.metrics), "pool_threads": self.pool_,
                "k": self.k_, "names": self.names_, "centroids": np.asarray(self.centroids_).tolist(),
                "profiles": self.profiles_, "sizes": self.sizes_,
                "scaler": self.scaler_.to_dict(), "slo": self.slo_, "train_shares": self.train_shares_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegimeModel:
        """Rebuild a fitted model from `to_dict()` output, checking shapes."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise BadInput(f"regimes: format is not {FORMAT!r} (found {found!r}; retrain with `lab.py train`)")
        try:
            p = data["params"]
            model = cls(k=p["k"], span=int(p["span"]), init=str(p["init"]), smoothing=str(p["smoothing"]),
                        min_dwell_s=int(p["min_dwell_s"]), iterations=int(p.get("iterations", 300)),
                        max_gap_s=int(p["max_gap_s"]), seed=int(p["seed"]))
            model._check_params()
            if list(data["features"]) != list(FEATURES):
                raise ValueError(f"features {data['features']} are not this lab's")
            model.metrics = [str(c) for c in data["sources"]]
            model.pool_ = float(data["pool_threads"])
            model.k_ = int(data["k"])
            model.names_ = [str(n) for n in data["names"]]
            model.centroids_ = np.asarray(data["centroids"], dtype="float64")
            model.profiles_ = [{str(k): float(v) for k, v in p.items()} for p in data["profiles"]]
            model.sizes_ = [int(v) for v in data.get("sizes", [])]
            model.scaler_ = Scaler.from_dict(data["scaler"])
            model.slo_ = {k: float(v) for k, v in data["slo"].items()}
            model.train_shares_ = {str(k): float(v) for k, v in (data.get("train_shares") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"regimes: malformed ({exc})") from None
        width = len(FEATURES)
        if model.centroids_.shape != (model.k_, width) or len(model.names_) != model.k_ \
                or len(model.scaler_.columns) != width:
            raise BadInput(f"regimes: centroids {model.centroids_.shape}, names {len(model.names_)} and scaler "
                           f"{len(model.scaler_.columns)} do not fit k={model.k_}, {width} features")
        model.n_features_in_ = width
        return model

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> RegimeModel:
        """Read a model written by `save`."""
        path = Path(path)
        data = read_json(path, "regimes.json")
        try:
            return cls.from_dict(data)
        except BadInput as exc:
            raise BadInput(f"{path}: {exc}") from None


# ---------------------------------------------------------------- choosing the settings on training runs

DEFAULT_GRID: dict[str, dict[str, Any]] = {
    f"span{span}-{init}-it{iterations}-{smoothing}": {"span": span, "init": init, "iterations": iterations,
                                                     "smoothing": smoothing}
    for span in (10, 20, 30) for init, iterations in (("states", 1), ("states", 300), ("k-means++", 300))
    for smoothing in SMOOTHINGS}


def validation_score(truth: np.ndarray, names: np.ndarray) -> dict[str, Any]:
    """ARI, each state's recall and the objective: the mean of ARI and the mean recall over the states.

    (The mean, not the worst state's recall: out of fold, a state seen in one training scenario
    only, such as exhaustion, is never in the fitting runs of its own fold, so its recall
    there says nothing about the settings.)
    """
    from sklearn.metrics import adjusted_rand_score

    recall = {s: float(np.mean(names[truth == s] == s)) for s in STATES if (truth == s).any()}
    ari = float(adjusted_rand_score(truth, names))
    mean = float(np.mean(list(recall.values()))) if recall else 0.0
    return {"ari": ari, "recall": recall, "min_recall": min(recall.values(), default=0.0), "mean_recall": mean,
            "objective": (ari + mean) / 2}


def tune_regimes(train: Sequence[pd.DataFrame], grid: dict[str, dict[str, Any]] | None = None, *,
                 seed: int = 0) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """Choose the regime settings by leave-one-scenario-out on the training runs (never the test split).

    Each setting is fitted on the other training scenarios and predicts the left-out one;
    the out-of-fold predictions are pooled and scored by `validation_score`. Returns the
    chosen name, its settings, and every setting's score.
    """
    from .protocol import scenario_folds

    grid = grid or DEFAULT_GRID
    folds = scenario_folds(train)
    scores: dict[str, dict[str, Any]] = {}
    for name, params in grid.items():
        truth, names = [], []
        for _, fit_runs, val_runs in folds:
            model = RegimeModel(seed=seed, **params).fit(fit_runs)
            for r in val_runs:
                n = model.predict_names(r)
                ok = n != UNKNOWN
                truth.append(system_states(r, pool=pool_threads(r, default=model.pool_))[ok])
                names.append(n[ok])
        scores[name] = validation_score(np.concatenate(truth), np.concatenate(names))
    best = max(grid, key=lambda n: (round(scores[n]["objective"], 6), scores[n]["ari"]))
    return best, dict(grid[best]), scores
