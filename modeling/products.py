"""Product clusters: KMeans over the target's endpoints by their performance under load.

An endpoint's profile is its p50 and p95 latency (as log1p(ms)), its request rate and its
error share, from Locust's per-request samples (`locust/samples-*.csv`: ts,
response_time_ms, ok, name) or from a frame of per-endpoint stats with those columns.
Clusters are named by their median p95 rank: "light" (fastest), "heavy" (slowest) and
"medium", "medium-2", ... in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contract.errors import BadInput, LabError

from .data import Scaler
from contract.runfolder import SAMPLE_COLUMNS, atomic_write_json, read_json, read_samples  # noqa: F401

FORMAT = "stability-lab/products/1"
PROFILE_COLUMNS = ("p50_ms", "p95_ms", "rps", "error_share")


def endpoint_profiles(samples: pd.DataFrame, duration_s: float | None = None) -> pd.DataFrame:
    """Summarise per-request samples into one row per endpoint (PROFILE_COLUMNS plus requests)."""
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise BadInput(f"samples: column '{missing[0]}' missing")
    if samples.empty:
        raise BadInput("samples: no requests")
    span = duration_s or max(1.0, float(samples["ts"].max() - samples["ts"].min()))
    grouped = samples.groupby("name")
    rt = grouped["response_time_ms"]
    return pd.DataFrame({
        "requests": grouped.size(),
        "p50_ms": rt.median(),
        "p95_ms": rt.quantile(0.95),
        "rps": grouped.size() / span,
        "error_share": 1.0 - grouped["ok"].mean(),
    }).sort_index()


class ProductClusters:
    """KMeans over endpoint profiles, k by silhouette (2..n-1) unless given; JSON save/load."""
    def __init__(self, k: int | None = None, max_k: int = 5, seed: int = 0):
        self.k = k
        self.max_k = max_k
        self.seed = seed

    @staticmethod
    def _features(profiles: pd.DataFrame) -> np.ndarray:
        missing = [c for c in PROFILE_COLUMNS if c not in profiles.columns]
        if missing:
            raise BadInput(f"endpoint profiles: column '{missing[0]}' missing")
        x = profiles[list(PROFILE_COLUMNS)].to_numpy(dtype="float64").copy()
        x[:, :2] = np.log1p(np.clip(x[:, :2], 0, None))  # latencies span decades
        if np.isnan(x).any():
            raise BadInput("endpoint profiles: empty or non-numeric values")
        return x

    def fit(self, profiles: pd.DataFrame, y: None = None) -> ProductClusters:
        """Cluster the endpoints of a per-endpoint stats frame (index = endpoint name)."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        x = self._features(profiles)
        n = len(x)
        if n < 2:
            raise BadInput(f"endpoint profiles: need at least 2 endpoints, got {n}")
        self.scaler_ = Scaler("standard").fit(x, list(PROFILE_COLUMNS))
        z = self.scaler_.transform(x)
        candidates = [self.k] if self.k else list(range(2, min(self.max_k, n - 1) + 1)) or [min(2, n)]
        if self.k and not 1 <= self.k <= n:
            raise BadInput(f"k must be between 1 and {n} endpoints, got {self.k}")
        best = None
        for k in candidates:
            km = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit(z)
            score = (float(silhouette_score(z, km.labels_)) if 1 < len(set(km.labels_)) < n else float("nan"))
            if best is None or (np.isfinite(score) and not score <= best[0]):
                best = (score, k, km)
        self.silhouette_, self.k_, km = best
        self.centroids_ = km.cluster_centers_
        self.endpoints_ = [str(e) for e in profiles.index]
        self.labels_ = km.labels_.astype(int)
        # Name by the median p95 of each cluster's members, fastest first.
        p95 = [float(np.median(profiles["p95_ms"].to_numpy()[self.labels_ == i])) for i in range(self.k_)]
        order = np.argsort(p95)
        names = ["medium"] * self.k_
        names[order[0]] = "light"
        if self.k_ > 1:
            names[order[-1]] = "heavy"
        for j, i in enumerate(order[1:-1]):
            names[i] = "medium" if j == 0 else f"medium-{j + 1}"
        self.names_ = names
        return self

    def predict(self, profiles: pd.DataFrame) -> np.ndarray:
        """Return the cluster index of each endpoint profile."""
        if not hasattr(self, "centroids_"):
            raise LabError("this ProductClusters is not fitted yet; call fit() or load() first")
        z = self.scaler_.transform(self._features(profiles))
        return ((z[:, None, :] - np.asarray(self.centroids_)[None]) ** 2).sum(axis=2).argmin(axis=1)

    def assignments(self) -> dict[str, str]:
        """Return {endpoint: cluster name} for the fitted endpoints."""
        return {e: self.names_[i] for e, i in zip(self.endpoints_, self.labels_)}

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted model as JSON-ready data."""
        return {"format": FORMAT, "params": {"k": self.k, "max_k": self.max_k, "seed": self.seed},
                "k": self.k_, "names": self.names_, "centroids": np.asarray(self.centroids_).tolist(),
                "scaler": self.scaler_.to_dict(), "endpoints": self.endpoints_,
                "labels": self.labels_.tolist(), "silhouette": self.silhouette_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductClusters:
        """Rebuild a fitted model from `to_dict()` output."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInput(f"products: format is not {FORMAT!r}")
        try:
            model = cls(**data["params"])
            model.k_, model.names_ = int(data["k"]), [str(n) for n in data["names"]]
            model.centroids_ = np.asarray(data["centroids"], dtype="float64")
            model.scaler_ = Scaler.from_dict(data["scaler"])
            model.endpoints_ = [str(e) for e in data["endpoints"]]
            model.labels_ = np.asarray(data["labels"], dtype=int)
            model.silhouette_ = data.get("silhouette")
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"products: malformed ({exc})") from None
        if model.centroids_.shape != (model.k_, len(PROFILE_COLUMNS)) or len(model.names_) != model.k_:
            raise BadInput("products: centroids and names do not match k")
        return model

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON (atomically)."""

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ProductClusters:
        """Read a model written by `save`."""

        path = Path(path)
        data = read_json(path, "products.json")
        try:
            return cls.from_dict(data)
        except BadInput as exc:
            raise BadInput(f"{path}: {exc}") from None
