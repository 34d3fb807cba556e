# %% [markdown]
# # 2. Load models: the same stall, closed and open
#
# **Learning goal.** See how the way a load test sends requests decides what it can
# measure. A *closed* load generator (Locust users who wait for each answer, then think)
# slows down when the system stalls, so few requests see the stall: it coordinates with
# the system it measures (*coordinated omission*). An *open* one sends at the planned rate
# whatever happens, and times each request from when it *should* have been sent.
#
# **Time:** about 30 minutes. **Data:** two runs of `course/data/signal`, one minute each,
# with the same stall: every request gets 1 s slower for 10 s, 25 s in. `stall` is open
# (40 requests/s), `stall-closed` closed (22 users offering about 40 requests/s); their
# files are `course/scenarios/stall.toml` and `stall-closed.toml`.

# %%
import sys; sys.path[:0] = [".", ".."]  # finds classroom.py from course/ and course/solutions/
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from classroom import SIGNAL, lab
from contract.runfolder import read_run, read_samples

runs = {"open": read_run(SIGNAL / "runs" / "stall-s5-r1"), "closed": read_run(SIGNAL / "runs" / "stall-closed-s5-r1")}
for model, r in runs.items():
    assert r.meta["load_model"] == model
    print(f"{model:>6}: {r.run_id} | {r.meta['scenario']['description']}")

# %% [markdown]
# Every built-in scenario of the lab is open, and each has a closed twin named
# `<name>-closed` (the original guide's model). `lab.py scenarios` lists them:

# %%
lab("scenarios")

# %% [markdown]
# ## What each generator sent, and what came back
#
# `arrivals` is what the load generator sent in a second, `rps` what completed,
# `outstanding` what was sent and not yet answered.

# %%
fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
for model, r in runs.items():
    f = r.frame
    axes[0].plot(f["elapsed_s"], f["arrivals"], label=f"{model}: sent/s")
    axes[1].plot(f["elapsed_s"], f["outstanding"], label=f"{model}: outstanding")
    axes[2].plot(f["elapsed_s"], f["latency_p95_window_ms"], label=f"{model}: pooled p95")
fault = runs["open"].meta["scenario"]["faults"][0]
for ax in axes:
    ax.axvspan(fault["start_s"], fault["start_s"] + fault["duration_s"], color="grey", alpha=0.2)
    ax.legend(loc="upper left", fontsize=8)
axes[2].set_yscale("log")
axes[2].set_xlabel("elapsed s (grey: the stall)")
plt.show()

# %% [markdown]
# ## Exercise 1: the requests that were due during the stall
#
# Each raw sample has `intended_ts`, when the request was due (open: its scheduled arrival;
# closed: when the user sent it) and `response_time_ms`, timed from then. Count the
# requests that were due while the stall lasted, and what the whole run's latency looks
# like to each generator.

# %% tags=["exercise"]
def stall_figures(r):
    samples = read_samples(r.path)
    t0 = pd.Timestamp(r.meta["t0"]).timestamp()
    fault = r.meta["scenario"]["faults"][0]
    start, end = t0 + fault["start_s"], t0 + fault["start_s"] + fault["duration_s"]
    due = samples[(samples["intended_ts"] >= ____) & (samples["intended_ts"] < ____)]
    before = samples[(samples["intended_ts"] >= t0 + 5) & (samples["intended_ts"] < start)]
    lat = samples["response_time_ms"]
    return {"requests": len(samples), "due_in_stall": len(due),
            "sent_per_s_before": len(before) / (start - t0 - 5),
            "sent_per_s_in_stall": len(due) / (end - start),
            "share_1s_or_more": float((lat >= 1000).mean()),
            "p99_ms": float(lat.quantile(0.99)), "max_ms": float(lat.max())}


stall = pd.DataFrame({model: stall_figures(r) for model, r in runs.items()})
stall.round(3)

# %% tags=["solution"]
def stall_figures(r):
    samples = read_samples(r.path)
    t0 = pd.Timestamp(r.meta["t0"]).timestamp()
    fault = r.meta["scenario"]["faults"][0]
    start, end = t0 + fault["start_s"], t0 + fault["start_s"] + fault["duration_s"]
    due = samples[(samples["intended_ts"] >= start) & (samples["intended_ts"] < end)]
    before = samples[(samples["intended_ts"] >= t0 + 5) & (samples["intended_ts"] < start)]
    lat = samples["response_time_ms"]
    return {"requests": len(samples), "due_in_stall": len(due),
            "sent_per_s_before": len(before) / (start - t0 - 5),
            "sent_per_s_in_stall": len(due) / (end - start),
            "share_1s_or_more": float((lat >= 1000).mean()),
            "p99_ms": float(lat.quantile(0.99)), "max_ms": float(lat.max())}


stall = pd.DataFrame({model: stall_figures(r) for model, r in runs.items()})
stall.round(3)

# %% [markdown]
# *Discuss.* Both targets stalled alike. Which generator kept sending during the stall?
# Which p99 would you report to the team, and which one would your users have felt?

# %% [markdown]
# ## Exercise 2: where the time went
#
# In the open model a request due during the stall waits in the target's queue, and the
# requests due after it queue behind it until the backlog drains. Plot each request's
# latency against when it was due, for both runs, on one figure with a log scale.

# %% tags=["exercise"]
fig, ax = plt.subplots(figsize=(9, 3.5))
for model, r in runs.items():
    samples = read_samples(r.path)
    t0 = pd.Timestamp(r.meta["t0"]).timestamp()
    ax.scatter(samples["intended_ts"] - t0, samples[____], s=2, alpha=0.4, label=model)
ax.set_yscale("log")
ax.set_xlabel("due at (elapsed s)")
ax.set_ylabel("latency ms")
ax.legend()
plt.show()

# %% tags=["solution"]
fig, ax = plt.subplots(figsize=(9, 3.5))
for model, r in runs.items():
    samples = read_samples(r.path)
    t0 = pd.Timestamp(r.meta["t0"]).timestamp()
    ax.scatter(samples["intended_ts"] - t0, samples["response_time_ms"], s=2, alpha=0.4, label=model)
ax.set_yscale("log")
ax.set_xlabel("due at (elapsed s)")
ax.set_ylabel("latency ms")
ax.legend()
plt.show()

# %% [markdown]
# ## Exercise 3: the SLO seconds each model saw
#
# Both runs judge the SLO alike (p95 pooled over 10 s, 500 ms). Count the violating
# seconds of each, and the seconds in which the backlog (`outstanding`) was above 50.

# %% tags=["exercise"]
seen = pd.DataFrame({model: {"slo_violation_s": int(r.frame[____].sum()),
                             "backlog_over_50_s": int((r.frame[____] > 50).sum())}
                     for model, r in runs.items()})
seen

# %% tags=["solution"]
seen = pd.DataFrame({model: {"slo_violation_s": int(r.frame["slo_violation"].sum()),
                             "backlog_over_50_s": int((r.frame["outstanding"] > 50).sum())}
                     for model, r in runs.items()})
seen

# %% [markdown]
# *Discuss.* Which model is your production traffic: users on the internet who arrive
# whatever your service does, or a fixed pool of clients that wait for each answer? A
# forecaster trained on closed-model runs learns that a stall barely shows; the lab's
# built-ins are open for that reason (`docs/signal.md`, section 1).
#
# **To record the pair again:** `python lab.py run-scenario course/scenarios/stall.toml`
# and `python lab.py run-scenario course/scenarios/stall-closed.toml` (a minute each).
# To compare a built-in with its twin: `python lab.py run-scenario spike --duration 60`
# and `python lab.py run-scenario spike-closed --duration 60`.

# %% tags=["figures"]
figures = {model: {k: float(v) for k, v in stall[model].items()} for model in stall.columns}
for model in figures:
    figures[model].update({k: int(v) for k, v in seen[model].items()})
print(json.dumps(figures, indent=1))
