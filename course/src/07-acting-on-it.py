# %% [markdown]
# # 7. Acting on it: reactive against predictive scaling
#
# **Learning goal.** Follow a forecast into an action. The same load spike was run three
# times against the same target: with no autoscaling, with a *reactive* autoscaler (it
# adds gunicorn workers once the SLO is already broken or CPU is high, like Kubernetes'
# HPA) and with a *predictive* one (it acts on the model's early warning). Compare what
# each cost (worker-seconds) and what it bought (seconds in SLO violation), and decide
# what one run of each can and cannot tell you.
#
# **Time:** about 30 minutes. **Data:** `course/data/autoscale`: three runs of `spike`
# (seed 1, scaled to 60 s) recorded with `lab.py run-scenario --autoscale off|reactive|predictive`,
# and the model the predictive one used (trained on the course dataset without `spike`).
# Nothing is recorded here.

# %%
import sys; sys.path[:0] = [".", ".."]  # finds classroom.py from course/ and course/solutions/
import json

import matplotlib.pyplot as plt
import pandas as pd

from classroom import AUTOSCALE
from contract.runfolder import read_run
from workflows.compare import verdict

runs = {}
for folder in sorted((AUTOSCALE / "runs").iterdir()):
    r = read_run(folder)
    runs[(r.meta.get("autoscale") or {}).get("mode", "off")] = r
for mode, r in runs.items():
    print(f"{mode:>10}: {r.run_id} | {r.meta.get('autoscale')}")

# %% [markdown]
# ## Exercise 1: what each run cost and bought
#
# `run.json` carries a summary of every run (`r.meta["summary"]`): `slo_violation_s`,
# `p95_ms`, `p99_ms`, `failures`, `requests`, `worker_seconds` (the sum over seconds of
# the target's worker count: the cost) and `autoscale_actions`. Build one table.

# %% tags=["exercise"]
keys = ("slo_violation_s", "p95_ms", "p99_ms", "failures", "requests", "worker_seconds", "autoscale_actions")
table = pd.DataFrame({mode: {k: r.meta[____].get(k, 0) for k in keys} for mode, r in runs.items()}).T
table

# %% tags=["solution"]
keys = ("slo_violation_s", "p95_ms", "p99_ms", "failures", "requests", "worker_seconds", "autoscale_actions")
table = pd.DataFrame({mode: {k: r.meta["summary"].get(k, 0) for k in keys} for mode, r in runs.items()}).T
table

# %% [markdown]
# `lab.py compare-autoscale` prints the same table and a verdict: did predictive scaling
# at least halve reactive's violation seconds at no more cost? It pairs the modes by seed
# (here one seed, so there is no interval: `--seeds N` gives one).

# %%
print(verdict([{"mode": mode, "seed": 1, **{k: float(v) for k, v in row.items()}} for mode, row in table.iterrows()]))

# %% [markdown]
# ## When each one acted
#
# Every second records `target_workers` and, when the autoscaler acted in it,
# `autoscale_action` (`scale_up:1`, ...); each run folder's `autoscale.jsonl` keeps every
# decision, taken or not, with its reason.

# %%
fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
for mode, r in runs.items():
    f = r.frame
    axes[1].plot(f["elapsed_s"], f["target_workers"], drawstyle="steps-post", label=mode)
    axes[2].plot(f["elapsed_s"], f["latency_p95_window_ms"], label=mode)
base = runs["off"].frame
axes[0].plot(base["elapsed_s"], base["planned_rate"], "k--", label="planned rate")
axes[0].set_ylabel("requests/s")
axes[1].set_ylabel("workers")
axes[2].axhline(runs["off"].meta["scenario"]["slo"]["latency_p95_ms"], color="r", ls=":", label="SLO")
axes[2].set_yscale("log")
axes[2].set_ylabel("pooled p95 ms")
axes[2].set_xlabel("elapsed s")
for ax in axes:
    ax.legend(loc="upper right", fontsize=8)
plt.show()

for mode in ("reactive", "predictive"):
    decisions = [json.loads(line) for line in (runs[mode].path / "autoscale.jsonl").read_text().splitlines()]
    taken = [d for d in decisions if "result_of" not in d and d["action"] != "none"]
    print(f"{mode}: {len(decisions)} records; first decisions that acted:")
    for d in taken[:3]:
        print(f"   at {d['row_elapsed_s']} s: {d['action']} {d['amount']} ({d['reason']})")

# %% [markdown]
# ## Exercise 2: lead and lag
#
# The spike's plan rises at the start of the `spike` phase. For each autoscaled run, find
# the first second with a scale-up action, and the first second in SLO violation, and say
# how many seconds after the plan rose each came.

# %% tags=["exercise"]
def first(mask, frame):
    hits = frame.loc[mask, "elapsed_s"]
    return None if hits.empty else int(hits.iloc[0])


timing = {}
for mode, r in runs.items():
    f = r.frame
    rise = first(f["phase"] == "spike", f)
    timing[mode] = {"plan_rises_s": rise,
                    "first_scale_up_s": first(f.get("autoscale_action", pd.Series("none", f.index))
                                              .astype(str).str.startswith(____), f),
                    "first_violation_s": first(f[____] == 1, f)}
pd.DataFrame(timing).T

# %% tags=["solution"]
def first(mask, frame):
    hits = frame.loc[mask, "elapsed_s"]
    return None if hits.empty else int(hits.iloc[0])


timing = {}
for mode, r in runs.items():
    f = r.frame
    rise = first(f["phase"] == "spike", f)
    timing[mode] = {"plan_rises_s": rise,
                    "first_scale_up_s": first(f.get("autoscale_action", pd.Series("none", f.index))
                                              .astype(str).str.startswith("scale_up"), f),
                    "first_violation_s": first(f["slo_violation"] == 1, f)}
pd.DataFrame(timing).T

# %% [markdown]
# *Discuss.* Did the predictive autoscaler act before the violation, and did acting help?
# Scaling waits for gunicorn to boot a worker (seconds): how much lead does an action need
# to matter? On a machine of two cores the target's workers share one CPU, so what can an
# extra worker add (threads that wait on I/O, not CPU)? Above all: this is **one run per
# mode, one seed**. Would you change your autoscaler on it? What would you record to know
# (`python lab.py compare-autoscale spike --model MODEL --seed N` for several seeds, and an
# interval over them)?
#
# **To record these runs again** (a few minutes; never while another recording runs on the
# same machine): `bash course/make_data.sh` re-records the whole pack, or by hand
# `python lab.py run-scenario spike --seed 1 --duration 60 --autoscale reactive` and
# `... --autoscale predictive --model course/data/autoscale/model`.

# %% tags=["figures"]
figures = {mode: {k: float(v) for k, v in row.items()} for mode, row in table.iterrows()}
for mode in figures:
    figures[mode].update({k: v for k, v in timing[mode].items()})
print(json.dumps(figures, indent=1))
