# %% [markdown]
# # 6. Regimes with KMeans
#
# **Learning goal.** Cluster the seconds of a run into operating *regimes* with KMeans,
# and hold the clusters against the system's real states (the ground-truth labels).
# Learn what unsupervised clusters find (what the metrics show) and what they miss (a
# cause the metrics do not show), and measure the agreement with ARI and NMI. Then
# cluster the target's *endpoints* from the raw request samples.
#
# **Time:** about 35 minutes. **Data:** `course/data/course`: fit on every scenario but
# `mixed`, look at the `mixed` runs.

# %%
import sys; sys.path[:0] = [".", ".."]  # finds classroom.py from course/ and course/solutions/
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from classroom import DATASET
from contract.runfolder import read_samples
from modeling.data import load_runs
from modeling.products import ProductClusters, endpoint_profiles
from modeling.regimes import RegimeModel

runs = load_runs([DATASET])
train = [r for r in runs if r.attrs["scenario"] != "mixed"]
test = [r for r in runs if r.attrs["scenario"] == "mixed"]

# %% [markdown]
# ## Fit the regimes
#
# `RegimeModel` describes each second by the level and trend of p95 latency, error rate,
# CPU and memory over its last 5 s, standardises them on the training runs, chooses k by
# silhouette and names each cluster by rule from its median member (`saturated`,
# `erroring`, `recovering`, `busy`, `stable`, ...: `modeling/regimes.py`). It is what
# `lab.py train` fits beside the LSTM.

# %%
regimes = RegimeModel(seed=0).fit(train)
print("k =", regimes.k_, "|", regimes.names_)
names = [regimes.predict_names(r) for r in test]
test[0].assign(regime=names[0])[["elapsed_s", "phase", "fault", "slo_violation", "latency_p95_ms", "regime"]].iloc[::4]

# %% [markdown]
# ## Exercise 1: the system's states
#
# Write the ground truth of each second: the injected fault's kind while a fault is
# active (`fault:latency`, ...), else `overload` when the SLO is violated, else `normal`.

# %% tags=["exercise"]
def states(frame):
    fault = frame["fault"].astype(str)
    return np.where(fault != "none", "fault:" + fault,
                    np.where(frame[____] == 1, ____, "normal"))


truth = [states(r) for r in test]
pd.crosstab(pd.Series(np.concatenate(truth), name="state"), pd.Series(np.concatenate(names), name="regime"))

# %% tags=["solution"]
def states(frame):
    fault = frame["fault"].astype(str)
    return np.where(fault != "none", "fault:" + fault,
                    np.where(frame["slo_violation"] == 1, "overload", "normal"))


truth = [states(r) for r in test]
pd.crosstab(pd.Series(np.concatenate(truth), name="state"), pd.Series(np.concatenate(names), name="regime"))

# %% [markdown]
# ## Exercise 2: how well do clusters match states?
#
# The adjusted Rand index (ARI) is 1 for the same grouping and about 0 for chance; the
# normalised mutual information (NMI) is 0 to 1. Neither cares about the names, only about
# which seconds go together. Leave out the first seconds of each run, whose regime is
# `unknown` (no 5 s history yet).

# %% tags=["exercise"]
t_all, n_all = np.concatenate(truth), np.concatenate(names)
known = n_all != "unknown"
ari = adjusted_rand_score(t_all[known], ____)
nmi = normalized_mutual_info_score(t_all[known], n_all[known])
print(f"ARI {ari:.2f}, NMI {nmi:.2f} over {known.sum()} seconds")

# %% tags=["solution"]
t_all, n_all = np.concatenate(truth), np.concatenate(names)
known = n_all != "unknown"
ari = adjusted_rand_score(t_all[known], n_all[known])
nmi = normalized_mutual_info_score(t_all[known], n_all[known])
print(f"ARI {ari:.2f}, NMI {nmi:.2f} over {known.sum()} seconds")

# %% [markdown]
# *Discuss.* Which states does a cluster find, and which are spread over clusters? A
# latency fault of +100 ms, or the start of a memory leak, may change nothing the
# features see: can any clustering of these features find it? What else could tell a
# state apart (queue time `srv_queue_p95_ms`, `outstanding`, `rss_mb`'s trend)? Try
# `RegimeModel(k=4, seed=0)` and see what a fixed k does to ARI.

# %%
fig, ax = plt.subplots(figsize=(9, 3))
r, n = test[0], names[0]
for name in sorted(set(n)):
    mine = n == name
    ax.scatter(r["elapsed_s"][mine], r["latency_p95_ms"][mine], s=12, label=name)
ax.fill_between(r["elapsed_s"], 0, 1, where=r["fault"] != "none", color="grey", alpha=0.2,
                transform=ax.get_xaxis_transform())
ax.set_yscale("log")
ax.set_ylabel("p95 ms")
ax.set_xlabel(f"elapsed s ({r.attrs['run_id']}; grey: a fault)")
ax.legend(fontsize=8, ncol=3)
plt.show()

# %% [markdown]
# ## Exercise 3: endpoints from the raw samples
#
# The same tool groups the target's endpoints. Every request of a run is a line of
# `locust/samples-*.csv` (`read_samples`). Per endpoint (`name`), compute the request count,
# the median and the 95th percentile of `response_time_ms`, and the error share (1 - mean
# of `ok`), then compare with the lab's `endpoint_profiles` and its `ProductClusters`.

# %% tags=["exercise"]
samples = pd.concat([read_samples(DATASET / "runs" / r.attrs["run_id"]) for r in train], ignore_index=True)
by = samples.groupby("name")
mine = pd.DataFrame({"requests": by.size(),
                     "p50_ms": by["response_time_ms"].median(),
                     "p95_ms": by["response_time_ms"].quantile(____),
                     "error_share": 1 - by[____].mean()})
mine.round(3)

# %% tags=["solution"]
samples = pd.concat([read_samples(DATASET / "runs" / r.attrs["run_id"]) for r in train], ignore_index=True)
by = samples.groupby("name")
mine = pd.DataFrame({"requests": by.size(),
                     "p50_ms": by["response_time_ms"].median(),
                     "p95_ms": by["response_time_ms"].quantile(0.95),
                     "error_share": 1 - by["ok"].mean()})
mine.round(3)

# %%
profiles = endpoint_profiles(samples)
products = ProductClusters(seed=0).fit(profiles)
profiles.assign(cluster=profiles.index.map(products.assignments())).round(3)

# %% [markdown]
# *Discuss.* These samples pool quiet and overloaded seconds: under overload every
# endpoint queues behind the same threads, so its p95 says more about the queue than
# about the endpoint. Cluster the samples of quiet seconds only: does the grouping change?
#
# **Further:** `lab.py train` fits both models and `lab.py evaluate` reports the regime
# ARI with a run-bootstrap interval (`metrics.json`, `regimes`).

# %% tags=["figures"]
figures = {"k": int(regimes.k_), "names": list(regimes.names_), "ari": float(ari), "nmi": float(nmi),
           "seconds": int(known.sum()), "states": sorted(set(t_all)),
           "endpoints": products.assignments(), "endpoint_requests": {k: int(v) for k, v in mine["requests"].items()}}
print(json.dumps(figures, indent=1))
