# %% [markdown]
# # 4. The LSTM
#
# **Learning goal.** Train the lab's LSTM forecaster (the tiny preset: seconds on a
# laptop), score it against the baselines of notebook 3 on a scenario it never saw, and
# read its figures the way the lab does: a gain over the best baseline counts only when
# its interval says so.
#
# **Time:** about 40 minutes. **Data:** `course/data/course`, with `fault-threads` held
# out. **Writes:** a model folder in `course/work/tiny` (notebook 5 reuses it).

# %%
import sys; sys.path[:0] = [".", ".."]  # finds classroom.py from course/ and course/solutions/
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from classroom import DATASET, TINY_MODEL, TINY_TRAIN, lab
from modeling.data import load_runs
from modeling.pipeline import load_bundle

# %% [markdown]
# ## Train and evaluate
#
# `lab.py train` splits the runs (here: hold out the `fault-threads` scenario, both seeds;
# notebook 3 held out `mixed`), fits the scaler on the training runs only, trains the LSTM
# (a forecast head for the next H seconds and a warning head for "the SLO is violated
# within H"), and chooses the baselines' settings on the training windows. `lab.py evaluate` scores everything on the held-out runs and
# writes `metrics.json`. The tiny preset is a 15 s window, a 5 s horizon and 8 LSTM units
# here (`lab.py train --help` lists every option).

# %%
print("options:", " ".join(TINY_TRAIN))
lab("train", DATASET, *TINY_TRAIN, "--out", TINY_MODEL, "--quiet")
lab("evaluate", TINY_MODEL)
metrics = json.loads((TINY_MODEL / "metrics.json").read_text())
lat = metrics["data"]["slo_columns"][0]
H = metrics["data"]["horizon_s"]

# %% [markdown]
# ## Exercise 1: the table behind the verdict
#
# `metrics["summary"][forecaster][metric]` holds, at h = H, `mae_at_h`, `mase_at_h`,
# `relmae_at_h` and the interval `relmae_ci_at_h` ([low, high]). Build one table over
# every forecaster for the pooled p95 (`lat`).

# %% tags=["exercise"]
table = pd.DataFrame({name: {"MAE ms": s[lat][____], "MASE": s[lat]["mase_at_h"],
                             "RelMAE": s[lat][____], "RelMAE low": s[lat]["relmae_ci_at_h"][0],
                             "RelMAE high": s[lat]["relmae_ci_at_h"][1]}
                      for name, s in metrics["summary"].items()}).T
table.sort_values("MAE ms").round(3)

# %% tags=["solution"]
table = pd.DataFrame({name: {"MAE ms": s[lat]["mae_at_h"], "MASE": s[lat]["mase_at_h"],
                             "RelMAE": s[lat]["relmae_at_h"], "RelMAE low": s[lat]["relmae_ci_at_h"][0],
                             "RelMAE high": s[lat]["relmae_ci_at_h"][1]}
                      for name, s in metrics["summary"].items()}).T
table.sort_values("MAE ms").round(3)

# %% [markdown]
# ## Exercise 2: read the interval
#
# `metrics["comparison"][lat]` compares the LSTM with the best baseline, the one chosen on
# the *training* windows (`best_baseline`): `mae_gain` = 1 - MAE(LSTM) / MAE(baseline),
# and its paired block-bootstrap interval `ci_low`..`ci_high`. Write the verdict: "better"
# when the whole interval is above 0, "worse" when it is wholly below 0, else "cannot tell".

# %% tags=["exercise"]
c = metrics["comparison"][lat]
if c["ci_low"] is None:
    verdict = "cannot tell (no interval)"
elif ____:
    verdict = "better"
elif ____:
    verdict = "worse"
else:
    verdict = "cannot tell"
print(f"MAE gain over {c['best_baseline']}: {c['mae_gain']:+.1%} (95% {c['ci_low']:+.1%} to "
      f"{c['ci_high']:+.1%}, {c['blocks']} blocks) -> {verdict}")

# %% tags=["solution"]
c = metrics["comparison"][lat]
if c["ci_low"] is None:
    verdict = "cannot tell (no interval)"
elif c["ci_low"] > 0:
    verdict = "better"
elif c["ci_high"] < 0:
    verdict = "worse"
else:
    verdict = "cannot tell"
print(f"MAE gain over {c['best_baseline']}: {c['mae_gain']:+.1%} (95% {c['ci_low']:+.1%} to "
      f"{c['ci_high']:+.1%}, {c['blocks']} blocks) -> {verdict}")

# %% [markdown]
# The lab writes the same judgement for each of its goals, `met` only when the interval
# lies wholly on the goal's side:

# %%
for name, goal in metrics["goals"].items():
    print(f"{name:>16}: {goal['status']:<16} {goal['goal']}")
print()
print("\n".join(metrics["verdict"]))

# %% [markdown]
# ## Exercise 3: look at the forecasts
#
# `load_bundle(folder)` loads the model folder; `bundle.forecaster.predict(runs)` cuts the
# runs into the model's windows and returns `forecast` (windows x H x key metrics),
# `probability` (the warning head) and `windows` (with `t`, the row of "now", and `y`,
# the actual values). Plot the forecast H seconds ahead against what happened, for one
# held-out run.

# %% tags=["exercise"]
bundle = load_bundle(TINY_MODEL)
held_out = load_runs([DATASET / "runs" / "fault-threads-s1-r1"])
pred = bundle.forecaster.predict(held_out)
k = pred.windows.key_metrics.index(lat)
fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
axes[0].plot(pred.windows.t + H, pred.windows.y[:, -1, k], "k", lw=2, label="actual")
axes[0].plot(pred.windows.t + H, pred.forecast[:, -1, ____], label=f"LSTM, {H} s ahead")
axes[0].set_yscale("log")
axes[0].set_ylabel("pooled p95 ms")
axes[0].legend(fontsize=8)
axes[1].plot(pred.windows.t, pred.____, label="P(SLO violated within H)")
axes[1].plot(pred.windows.t, pred.windows.warn, "r:", label="it was")
axes[1].legend(fontsize=8)
axes[1].set_xlabel("elapsed s")
plt.show()

# %% tags=["solution"]
bundle = load_bundle(TINY_MODEL)
held_out = load_runs([DATASET / "runs" / "fault-threads-s1-r1"])
pred = bundle.forecaster.predict(held_out)
k = pred.windows.key_metrics.index(lat)
fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
axes[0].plot(pred.windows.t + H, pred.windows.y[:, -1, k], "k", lw=2, label="actual")
axes[0].plot(pred.windows.t + H, pred.forecast[:, -1, k], label=f"LSTM, {H} s ahead")
axes[0].set_yscale("log")
axes[0].set_ylabel("pooled p95 ms")
axes[0].legend(fontsize=8)
axes[1].plot(pred.windows.t, pred.probability, label="P(SLO violated within H)")
axes[1].plot(pred.windows.t, pred.windows.warn, "r:", label="it was")
axes[1].legend(fontsize=8)
axes[1].set_xlabel("elapsed s")
plt.show()

# %% [markdown]
# *Discuss.* The forecast head predicts the *change* from the last value, so an untrained
# model is persistence: does the tiny model lag behind the actual curve like persistence
# does? What would you change first: more data, more epochs, a longer window, or the
# plan as an input (`--plan held`)? How would you find out without opening the test runs
# (`docs/modeling.md`, "Tuning protocol")? For a report with plots:
# `python lab.py report course/work/tiny`.

# %% tags=["figures"]
s = metrics["summary"]["lstm"][lat]
figures = {"horizon_s": H, "test_runs": metrics["data"]["runs"], "windows": metrics["data"]["windows"],
           "lstm": {"mase": s["mase_at_h"], "relmae": s["relmae_at_h"], "relmae_ci": s["relmae_ci_at_h"]},
           "best_baseline": c["best_baseline"], "mae_gain": c["mae_gain"], "mae_gain_ci": [c["ci_low"], c["ci_high"]],
           "verdict": verdict, "goals": {n: g["status"] for n, g in metrics["goals"].items()}}
print(json.dumps(figures, indent=1))
