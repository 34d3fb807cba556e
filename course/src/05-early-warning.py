# %% [markdown]
# # 5. Early warning
#
# **Learning goal.** Score an alarm the way an on-call team lives with it: by *episode*
# (a stretch of SLO violation), with the *lead* it gave against the lead that was
# *achievable* (from the first observable cause), and with its *false alarms per hour*.
# See why an alarm that is always on scores a good F1 and is still useless, and why one
# that fires on the violation itself detects everything and warns of nothing.
#
# **Time:** about 35 minutes. **Data:** `course/data/course`; the held-out `fault-threads`
# runs of the tiny model of notebook 4 (trained here if notebook 4 has not run).

# %%
import sys; sys.path[:0] = [".", ".."]  # finds classroom.py from course/ and course/solutions/
import json

import numpy as np
import pandas as pd

from classroom import DATASET, tiny_model
from contract.runfolder import read_run
from modeling.metrics import FALSE_ALARM_BUDGET_PER_H, episode_scores, merge_episode_scores, precursor, violation_episodes

model = tiny_model()
metrics = json.loads((model / "metrics.json").read_text())
H = metrics["data"]["horizon_s"]
names = metrics["data"]["runs"]
test = [read_run(DATASET / "runs" / name).frame for name in names]
print("held-out runs:", names, "| horizon", H, "s")

# %% [markdown]
# ## Episodes and what was achievable
#
# An episode is a run of violating seconds; gaps shorter than H merge. Its *precursor*
# is the first observable cause since the previous episode: the last change of the plan
# (planned rate, stage) or fault start at or before the onset, else the first incident.
# The *achievable lead* is onset minus precursor: no alarm can be fairly asked to warn
# before the cause happened.

# %%
rows = []
for name, frame in zip(names, test):
    since = 0
    for onset, end in violation_episodes(frame["slo_violation"].to_numpy(), H):
        cause = precursor(frame, onset, since)
        rows.append({"run": name, "onset_s": onset, "end_s": end, "precursor_s": cause,
                     "achievable_lead_s": None if cause is None else onset - cause,
                     "phase_at_cause": None if cause is None else frame["phase"].iloc[cause],
                     "fault_at_onset": frame["fault"].iloc[onset]})
        since = end + 1
episodes = pd.DataFrame(rows)
episodes

# %% [markdown]
# ## Exercise 1: the always-on alarm
#
# `episode_scores(frame, alarm, H)` scores one run's alarm (one value per second: 1 fires,
# 0 quiet) by episode; `merge_episode_scores(parts)` combines runs into precision, recall,
# F1, `false_alarms_per_h` and the headline `f1_in_budget` (the F1 when false alarms stay
# within 10 per hour, else 0). A firing alarm outside every episode counts once per
# started minute, as Alertmanager repeats it. Score an alarm that is always on.

# %% tags=["exercise"]
always_on = merge_episode_scores([episode_scores(frame, np.____(len(frame)), H) for frame in test])
print({k: always_on[k] for k in ("episodes", "detected", "false_alarms", "false_alarms_per_h", "f1",
                                 "f1_in_budget", "lead_share")})

# %% tags=["solution"]
always_on = merge_episode_scores([episode_scores(frame, np.ones(len(frame)), H) for frame in test])
print({k: always_on[k] for k in ("episodes", "detected", "false_alarms", "false_alarms_per_h", "f1",
                                 "f1_in_budget", "lead_share")})

# %% [markdown]
# ## Exercise 2: the alarm that fires on the violation
#
# Now an alarm that fires exactly when `slo_violation` is 1: what a threshold alert on the
# SLO itself does. Score it the same way. Look at `recall`, `false_alarms_per_h` and
# `lead_share` (the mean share of the achievable lead it gave).

# %% tags=["exercise"]
on_violation = merge_episode_scores([episode_scores(frame, frame[____].to_numpy(), H) for frame in test])
print({k: on_violation[k] for k in ("episodes", "detected", "false_alarms_per_h", "f1", "f1_in_budget",
                                    "mean_lead_s", "lead_share")})

# %% tags=["solution"]
on_violation = merge_episode_scores([episode_scores(frame, frame["slo_violation"].to_numpy(), H) for frame in test])
print({k: on_violation[k] for k in ("episodes", "detected", "false_alarms_per_h", "f1", "f1_in_budget",
                                    "mean_lead_s", "lead_share")})

# %% [markdown]
# *Discuss.* One alarm detects every episode and breaks any budget; the other detects
# every episode and never warns early. Which figure catches each one? Why does the lab
# put `f1_in_budget` first and `lead_share` beside it (`docs/modeling.md`, "Metrics")?
# With two minutes of held-out runs, how many false alarms make 10 per hour?

# %% [markdown]
# ## Exercise 3: every alerter on the same episodes
#
# `lab.py evaluate` scored five alerters on these runs (`metrics["early_warning"]`): the
# LSTM's warning head (`lstm`), its forecast crossing the SLO (`lstm_forecast`),
# Prometheus' `predict_linear` crossing it, a reactive `for:` rule (`reactive`, k of the
# last n seconds violated) and `always_on`. Build the table and find the best alerter by
# the headline figure.

# %% tags=["exercise"]
ew = metrics["early_warning"]
alerters = ("lstm", "lstm_forecast", "predict_linear", "reactive", "always_on")
board = pd.DataFrame({n: {k: ew[n][k] for k in ("episodes", "detected", "false_alarms_per_h", "f1",
                                                "f1_in_budget", "lead_share")} for n in alerters}).T
best = board[____].astype(float).idxmax()
print("best by the headline figure:", best)
board

# %% tags=["solution"]
ew = metrics["early_warning"]
alerters = ("lstm", "lstm_forecast", "predict_linear", "reactive", "always_on")
board = pd.DataFrame({n: {k: ew[n][k] for k in ("episodes", "detected", "false_alarms_per_h", "f1",
                                                "f1_in_budget", "lead_share")} for n in alerters}).T
best = board["f1_in_budget"].astype(float).idxmax()
print("best by the headline figure:", best)
board

# %% [markdown]
# *Discuss.* Does any alerter earn its place on these runs? When two tie on the headline
# figure, which would you deploy, and why does `lead_share` decide it? The intervals
# (`ew["lstm"]["ci"]`) resample the held-out runs: with two runs, what do they say? The
# alarm threshold of the warning head was chosen on a validation part of the training
# runs, never on the test runs: read its note below. What went wrong, and what would
# you change in the training data to fix it?

# %%
print("LSTM F1 interval:", ew["lstm"]["ci"]["f1"], "| threshold", metrics["data"]["alarm_threshold"])
print(metrics["data"]["alarm_threshold_note"])

# %% tags=["figures"]
figures = {"horizon_s": H, "episodes": int(len(episodes)), "budget_per_h": FALSE_ALARM_BUDGET_PER_H,
           "achievable_lead_s": [None if v is None or pd.isna(v) else int(v) for v in episodes["achievable_lead_s"]],
           "always_on": {k: always_on[k] for k in ("f1", "false_alarms_per_h", "f1_in_budget", "recall")},
           "on_violation": {k: on_violation[k] for k in ("f1", "false_alarms_per_h", "f1_in_budget", "lead_share")},
           "lstm": {k: ew["lstm"][k] for k in ("f1", "false_alarms_per_h", "f1_in_budget", "lead_share")},
           "best_alerter": best}
print(json.dumps(figures, indent=1))
