"""Operating regimes: KMeans over the recent level, spread and trend of the key metrics.

Each second t gets features over its last `span` seconds (t - span + 1 .. t), per metric:
level (mean) and trend (least-squares slope per second); spread (standard deviation) is
available (`stats=`) but off by default: on synthetic runs it made the silhouette search
settle on k=3 (the clean memory and error separations win) and cut the held-out ARI from
0.35 to 0.12 (docs/modeling.md). Latencies enter as log1p(ms) so a 10x rise weighs the
same at any level. Features are
standardised on the training runs, k is chosen by silhouette over `k_range` unless given,
and each cluster is named from its profile (the median of its member seconds' raw
features: a robust centroid that a few extreme members cannot drag across a threshold)
by the first rule that holds:

1. mean error rate above the SLO error rate                      -> "erroring"
2. mean p95 latency above the SLO, latency trend falling        -> "recovering"
3. mean p95 latency above the SLO                               -> "saturated"
4. latency trend falling faster than 2 %/s                       -> "recovering"
5. mean p95 latency above 1.25x the typical (median) second's    -> "degraded"
6. memory (rss_mb) above the typical second's by 25 % or more   -> "memory-pressure"
7. CPU at least 1.5x the typical second's                        -> "busy"
8. request rate below half the typical second's                  -> "light"
9. otherwise                                                     -> "stable"

Repeated names get a suffix ("saturated-2"). Ground truth for ARI/NMI (`truth_regimes`):
the injected fault's kind while a fault is active ("fault:latency"), otherwise "overload"
in a second that violates the SLO, otherwise "normal".

Saved as JSON (centroids, scaler, names, parameters): nothing is unpickled on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from contract.errors import BadInput, LabError

from .data import (DEFAULT_MAX_GAP_S, DEFAULT_SLO, LABEL, Scaler, fill_gaps,
                   require_columns, run_slo)
from contract.runfolder import atomic_write_json, read_json

FORMAT = "stability-lab/regimes/1"
# rps is left out by default: the load level is not a regime (the truth labels do not
# separate light from heavy healthy load, and with rps KMeans mostly splits by load).
REGIME_METRICS: tuple[str, ...] = ("latency_p95_ms", "error_rate", "cpu_percent", "rss_mb")
STATS = ("level", "spread", "trend")
DEFAULT_STATS = ("level", "trend")
UNKNOWN = "unknown"


def regime_features(frame: pd.DataFrame, metrics: Sequence[str] = REGIME_METRICS, span: int = 5,
                    max_gap_s: int = DEFAULT_MAX_GAP_S, stats: Sequence[str] = STATS) -> np.ndarray:
    """Return (n, stats x metrics) level/spread/trend features per second; NaN where undefined."""
    from numpy.lib.stride_tricks import sliding_window_view

    require_columns([frame], metrics)
    values = fill_gaps(frame, list(metrics), max_gap_s)[:, :-1]
    for j, m in enumerate(metrics):
        if m.startswith("latency") or "latency" in m:
            values[:, j] = np.log1p(np.clip(values[:, j], 0, None))
    n, k = values.shape
    out = np.full((n, len(stats) * k), np.nan)
    if n < span:
        return out
    view = sliding_window_view(values, span, axis=0)                  # (n - span + 1, k, span)
    t = np.arange(span) - (span - 1) / 2
    level = view.mean(axis=2)
    spread = view.std(axis=2)
    trend = np.einsum("nks,s->nk", view - level[..., None], t) / (t @ t) if span > 1 else np.zeros_like(level)
    parts = {"level": level, "spread": spread, "trend": trend}
    out[span - 1:] = np.concatenate([parts[s] for s in stats], axis=1)
    return out


def feature_names(metrics: Sequence[str], stats: Sequence[str] = STATS) -> list[str]:
    """Return the feature column names in `regime_features` order."""
    return [f"{m}:{s}" for s in stats for m in metrics]


def truth_regimes(frame: pd.DataFrame) -> np.ndarray:
    """Return the ground-truth regime of each second (see the module docstring)."""
    fault = frame["fault"].astype(str).to_numpy() if "fault" in frame else np.array(["none"] * len(frame))
    violating = frame[LABEL].fillna(0).to_numpy() > 0 if LABEL in frame else np.zeros(len(frame), bool)
    return np.where(fault != "none", np.char.add("fault:", fault.astype(str)),
                    np.where(violating, "overload", "normal"))


class RegimeModel:
    """KMeans regimes over windowed features, named from their centroids.

    Parameters
    ----------
    k : int, optional
        Number of regimes; chosen by silhouette over `k_range` when None.
    k_range : tuple of int
        Inclusive range of k tried by the silhouette search.
    span : int
        Seconds of history behind each second's features.
    metrics : list of str
        Columns described by the statistics.
    stats : list of str
        Which of "level", "spread", "trend" to compute per metric.
    seed : int
        KMeans and silhouette sampling seed.
    """

    def __init__(self, k: int | None = None, k_range: tuple[int, int] = (2, 8), span: int = 5,
                 metrics: Sequence[str] = REGIME_METRICS, stats: Sequence[str] = DEFAULT_STATS,
                 max_gap_s: int = DEFAULT_MAX_GAP_S, seed: int = 0):
        self.k = k
        self.stats = stats
        self.k_range = k_range
        self.span = span
        self.metrics = metrics
        self.max_gap_s = max_gap_s
        self.seed = seed

    def _features(self, runs: Sequence[pd.DataFrame]) -> np.ndarray:
        return np.vstack([regime_features(r, self.metrics, self.span, self.max_gap_s, self.stats) for r in runs])

    def fit(self, runs: Sequence[pd.DataFrame], y: None = None) -> RegimeModel:
        """Fit scaling and KMeans on the complete feature rows of the training runs."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        runs = [runs] if isinstance(runs, pd.DataFrame) else list(runs)
        feats = self._features(runs)
        rows = feats[~np.isnan(feats).any(axis=1)]
        lo, hi = (self.k, self.k) if self.k else self.k_range
        if lo < 2 and not self.k:
            raise BadInput(f"k_range must start at 2 or more, got {self.k_range}")
        if len(rows) < max(hi, lo) + 1:
            raise BadInput(f"regimes: need at least {max(hi, lo) + 1} complete seconds "
                           f"(span {self.span} s, no long gaps), got {len(rows)}")
        self.scaler_ = Scaler("standard").fit(rows, feature_names(self.metrics, self.stats))
        z = self.scaler_.transform(rows)
        rng = np.random.default_rng(self.seed)
        sample = rng.choice(len(z), size=min(len(z), 3000), replace=False)
        self.silhouette_by_k_: dict[int, float] = {}
        best = None
        for k in range(lo, hi + 1):
            km = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit(z)
            labels = km.labels_
            score = (float(silhouette_score(z[sample], labels[sample])) if len(np.unique(labels[sample])) > 1
                     else float("nan"))
            self.silhouette_by_k_[k] = score
            if best is None or (np.isfinite(score) and score > best[0]):
                best = (score, k, km)
        score, self.k_, km = best
        self.silhouette_ = score
        self.centroids_ = km.cluster_centers_
        self.profiles_ = [dict(zip(feature_names(self.metrics, self.stats),
                                   np.median(rows[km.labels_ == i], axis=0).tolist()))
                          for i in range(self.k_)]
        self.sizes_ = np.bincount(km.labels_, minlength=self.k_).tolist()
        slos = [run_slo(r) for r in runs]
        self.slo_ = {key: float(np.median([s[key] for s in slos])) for key in DEFAULT_SLO}
        self.typical_ = dict(zip(feature_names(self.metrics, self.stats), np.median(rows, axis=0).tolist()))
        self.names_ = self._name_clusters()
        self.n_features_in_ = z.shape[1]
        return self

    def _name_clusters(self) -> list[str]:
        """Name each cluster by the docstring's rules."""
        names: list[str] = []
        for c in self.profiles_:
            typ = self.typical_
            get = lambda m, s="level": c.get(f"{m}:{s}", np.nan)  # noqa: E731
            typical = lambda m: typ.get(f"{m}:level", np.nan)  # noqa: E731
            lat_ms = float(np.expm1(get("latency_p95_ms")))
            lat_trend = get("latency_p95_ms", "trend")           # log units per second
            if get("error_rate") > self.slo_["error_rate"]:
                name = "erroring"
            elif lat_ms > self.slo_["latency_p95_ms"]:
                name = "recovering" if lat_trend < -0.02 else "saturated"
            elif lat_trend < -0.02:
                name = "recovering"
            elif lat_ms > 1.25 * float(np.expm1(typical("latency_p95_ms"))):
                name = "degraded"
            elif "rss_mb" in self.metrics and get("rss_mb") >= 1.25 * typical("rss_mb"):
                name = "memory-pressure"
            elif "cpu_percent" in self.metrics and get("cpu_percent") >= 1.5 * typical("cpu_percent"):
                name = "busy"
            elif "rps" in self.metrics and get("rps") < 0.5 * typical("rps"):
                name = "light"
            else:
                name = "stable"
            count = sum(1 for n in names if n == name or n.startswith(name + "-"))
            names.append(name if count == 0 else f"{name}-{count + 1}")
        return names

    def _check_fitted(self) -> None:
        if not hasattr(self, "centroids_"):
            raise LabError("this RegimeModel is not fitted yet; call fit() or load() first")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the cluster index of each second (-1 where the features are undefined)."""
        self._check_fitted()
        feats = regime_features(frame, self.metrics, self.span, self.max_gap_s, self.stats)
        ok = ~np.isnan(feats).any(axis=1)
        labels = np.full(len(frame), -1, dtype=int)
        if ok.any():
            z = self.scaler_.transform(feats[ok])
            dist = ((z[:, None, :] - np.asarray(self.centroids_)[None]) ** 2).sum(axis=2)
            labels[ok] = dist.argmin(axis=1)
        return labels

    def predict_names(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the regime name of each second ("unknown" where undefined)."""
        labels = self.predict(frame)
        names = np.array([*self.names_, UNKNOWN], dtype=object)
        return names[labels]  # -1 picks the trailing UNKNOWN

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the standardised features of each second (NaN where undefined)."""
        self._check_fitted()
        return self.scaler_.transform(regime_features(frame, self.metrics, self.span, self.max_gap_s, self.stats))

    # ------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Return everything needed to predict, as JSON-ready data."""
        self._check_fitted()
        return {"format": FORMAT,
                "params": {"k": self.k, "k_range": list(self.k_range), "span": self.span,
                           "metrics": list(self.metrics), "stats": list(self.stats), "max_gap_s": self.max_gap_s, "seed": self.seed},
                "k": self.k_, "names": self.names_, "centroids": np.asarray(self.centroids_).tolist(),
                "profiles": self.profiles_, "sizes": self.sizes_,
                "scaler": self.scaler_.to_dict(), "slo": self.slo_, "typical": self.typical_,
                "silhouette": self.silhouette_,
                "silhouette_by_k": {str(k): v for k, v in self.silhouette_by_k_.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegimeModel:
        """Rebuild a fitted model from `to_dict()` output, checking shapes."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInput(f"regimes: format is not {FORMAT!r}")
        try:
            p = data["params"]
            model = cls(k=p["k"], k_range=tuple(p["k_range"]), span=int(p["span"]),
                        metrics=[str(m) for m in p["metrics"]], stats=[str(x) for x in p["stats"]],
                        max_gap_s=int(p["max_gap_s"]),
                        seed=int(p["seed"]))
            model.k_ = int(data["k"])
            model.names_ = [str(n) for n in data["names"]]
            model.centroids_ = np.asarray(data["centroids"], dtype="float64")
            model.profiles_ = [{str(k): float(v) for k, v in p.items()} for p in data["profiles"]]
            model.sizes_ = [int(v) for v in data.get("sizes", [])]
            model.scaler_ = Scaler.from_dict(data["scaler"])
            model.slo_ = {k: float(v) for k, v in data["slo"].items()}
            model.typical_ = {k: float(v) for k, v in data["typical"].items()}
            model.silhouette_ = data.get("silhouette")
            model.silhouette_by_k_ = {int(k): v for k, v in (data.get("silhouette_by_k") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"regimes: malformed ({exc})") from None
        width = len(model.stats) * len(model.metrics)
        if model.centroids_.shape != (model.k_, width) or len(model.names_) != model.k_ \
                or len(model.scaler_.columns) != width:
            raise BadInput(f"regimes: centroids {model.centroids_.shape}, names {len(model.names_)} "
                           f"and scaler {len(model.scaler_.columns)} do not fit k={model.k_}, {width} features")
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
