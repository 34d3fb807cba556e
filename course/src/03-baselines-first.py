# %% [markdown]
# # 3. Baselines first
#
# **Learning goal.** Before any neural network, forecast the pooled p95 with the simple
# methods a model has to beat: persistence ("the next seconds look like now"), an
# exponentially weighted mean (EWMA) and AutoETS (exponential smoothing with its form
# chosen by AICc). Score them two ways, MASE and RelMAE, learn what each one divides by,
# and see why a score on a few held-out runs needs an interval before it means anything.
#
# **Time:** about 40 minutes. **Data:** `course/data/course`: train on every scenario but
# `mixed`, test on the two `mixed` runs (a scenario the forecasters never saw).

# %%
import sys; sys.path[:0] = [".", ".."]  # finds classroom.py from course/ and course/solutions/
import json

import matplotlib.pyplot as plt
import numpy as np

from classroom import DATASET
from modeling import baselines as bl
from modeling.data import load_runs
from modeling.metrics import block_ids, mase, paired_ratio, relmae

TARGET = "latency_p95_window_ms"    # the pooled p95 the SLO label reads
W, H = 15, 5                        # 15 s of history in, 5 s ahead out

runs = load_runs([DATASET])
train = [r for r in runs if r.attrs["scenario"] != "mixed"]
test = [r for r in runs if r.attrs["scenario"] == "mixed"]
print("train:", [r.attrs["run_id"] for r in train])
print("test: ", [r.attrs["run_id"] for r in test])


# %% [markdown]
# ## Windows
#
# A forecaster sees the last W seconds and predicts the next H. Cut every run into
# windows (never across two runs), and drop the windows that touch a second with no
# pooled value (no request completed in the window).

# %%
def windows(frames):
    """Return x (n, W, 1), y (n, H), the run index and the row of "now" of every complete window."""
    xs, ys, run, now = [], [], [], []
    for i, frame in enumerate(frames):
        v = frame[TARGET].to_numpy(dtype=float)
        view = np.lib.stride_tricks.sliding_window_view(v, W + H)
        ok = np.isfinite(view).all(axis=1)
        xs.append(view[ok, :W])
        ys.append(view[ok, W:])
        run.append(np.full(ok.sum(), i))
        now.append(np.flatnonzero(ok) + W - 1)
    return np.concatenate(xs)[..., None], np.concatenate(ys), np.concatenate(run), np.concatenate(now)


x_train, y_train, _, _ = windows(train)
x_test, y_test, run_test, now_test = windows(test)
print(f"{len(x_train)} training windows, {len(x_test)} test windows")

# %% [markdown]
# ## Exercise 1: choose EWMA's weight on the training windows
#
# `bl.ewma(x, H, alpha)` predicts the exponentially weighted mean of the window (weight
# `alpha` on the newest second) for every future second; it returns (n, H, 1). Choose
# alpha among 0.1, 0.3 and 0.6 by the MAE at h = H on the *training* windows. Choosing it
# on the test runs would make the test score a training score.

# %% tags=["exercise"]
def mae_at_h(forecast, y):
    return float(np.mean(np.abs(forecast[:, -1, 0] - y[:, -1])))


train_mae = {alpha: mae_at_h(bl.ewma(____, H, alpha), ____) for alpha in (0.1, 0.3, 0.6)}
alpha = min(train_mae, key=train_mae.get)
print(train_mae, "-> alpha", alpha)

# %% tags=["solution"]
def mae_at_h(forecast, y):
    return float(np.mean(np.abs(forecast[:, -1, 0] - y[:, -1])))


train_mae = {alpha: mae_at_h(bl.ewma(x_train, H, alpha), y_train) for alpha in (0.1, 0.3, 0.6)}
alpha = min(train_mae, key=train_mae.get)
print(train_mae, "-> alpha", alpha)

# %% [markdown]
# ## The three forecasts on the test windows
#
# AutoETS is fitted on each window's own 15 s (nothing after them); a window whose history
# is flat repeats its last value. Forecasts are clipped to valid values (no negative
# latency), as the lab does.

# %%
forecasts = {
    "persistence": bl.persistence(x_test, H),
    "ewma": bl.ewma(x_test, H, alpha),
    "auto_ets": bl.auto_ets(x_test, H)[0],
}
forecasts = {name: bl.clip_forecast(f, [TARGET])[..., 0] for name, f in forecasts.items()}

k = run_test == 0
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(now_test[k] + H, y_test[k, -1], "k", lw=2, label=f"actual, {H} s later")
for name, f in forecasts.items():
    ax.plot(now_test[k] + H, f[k, -1], lw=1, label=name)
ax.set_yscale("log")
ax.set_xlabel(f"elapsed s ({test[0].attrs['run_id']})")
ax.set_ylabel("pooled p95 ms")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Exercise 2: MASE and RelMAE
#
# - **MASE** divides a forecaster's MAE by the *in-sample one-step naive MAE of the
#   training series*: the mean |y(t) - y(t-1)| over the training runs. The scale is one
#   number per metric, the same for every forecaster and horizon. Above 1 at h = 5 is
#   normal: forecasting 5 s ahead is harder than 1 s ahead.
# - **RelMAE** divides by the MAE of persistence *on the same test windows and horizon*:
#   below 1 beats "the next H seconds look like now".
#
# `modeling.metrics.mase(y_true, y_pred, y_train)` takes the training series as a list of
# arrays; `relmae(y_true, y_pred, y_naive)` takes persistence's forecast. Score each
# forecaster at h = H.

# %% tags=["exercise"]
train_series = [r[TARGET].to_numpy(dtype=float) for r in train]
scores = {name: {"MAE_ms": float(np.mean(np.abs(f[:, -1] - y_test[:, -1]))),
                 "MASE": mase(y_test[:, -1], f[:, -1], ____),
                 "RelMAE": relmae(y_test[:, -1], f[:, -1], ____)}
          for name, f in forecasts.items()}
scores

# %% tags=["solution"]
train_series = [r[TARGET].to_numpy(dtype=float) for r in train]
scores = {name: {"MAE_ms": float(np.mean(np.abs(f[:, -1] - y_test[:, -1]))),
                 "MASE": mase(y_test[:, -1], f[:, -1], train_series),
                 "RelMAE": relmae(y_test[:, -1], f[:, -1], forecasts["persistence"][:, -1])}
          for name, f in forecasts.items()}
scores

# %% [markdown]
# *Discuss.* Why is persistence's RelMAE exactly 1? MASE and RelMAE rank the three the
# same way here: when would they not (think of comparing across metrics, or across
# datasets with a different persistence)?

# %% [markdown]
# ## Exercise 3: why a score needs an interval
#
# These figures come from two runs of one minute. Another two runs would give other
# figures. The lab's interval is a *paired block bootstrap*: cut the test windows into
# blocks of 30 consecutive seconds inside each run (neighbouring windows share targets,
# so they are resampled together), draw blocks with replacement 2,000 times, and score
# both forecasters on the same draw. `paired_ratio(err_a, err_b, blocks)` returns
# sum|a| / sum|b| with its 95 % interval. Compute the interval of each RelMAE.

# %% tags=["exercise"]
blocks = block_ids(run_test, now_test, 30)
naive_err = np.abs(forecasts["persistence"][:, -1] - y_test[:, -1])
intervals = {}
for name in ("ewma", "auto_ets"):
    err = np.abs(forecasts[name][:, -1] - y_test[:, -1])
    intervals[name] = paired_ratio(____, ____, blocks)
    print(f"{name:>9}: RelMAE {intervals[name]['ratio']:.2f}, 95% {intervals[name]['ci_low']:.2f} to "
          f"{intervals[name]['ci_high']:.2f} ({intervals[name]['blocks']} blocks)")

# %% tags=["solution"]
blocks = block_ids(run_test, now_test, 30)
naive_err = np.abs(forecasts["persistence"][:, -1] - y_test[:, -1])
intervals = {}
for name in ("ewma", "auto_ets"):
    err = np.abs(forecasts[name][:, -1] - y_test[:, -1])
    intervals[name] = paired_ratio(err, naive_err, blocks)
    print(f"{name:>9}: RelMAE {intervals[name]['ratio']:.2f}, 95% {intervals[name]['ci_low']:.2f} to "
          f"{intervals[name]['ci_high']:.2f} ({intervals[name]['blocks']} blocks)")

# %% [markdown]
# *Discuss.* Does the interval of either forecaster lie wholly below 1? If it straddles 1,
# what may you say about it, and what may you not? How many blocks are behind it, and what
# would you record to narrow it (`python lab.py generate-dataset --preset small` gives
# 20 minutes of runs)? `lab.py evaluate` reports every figure with such an interval, and
# calls a goal met only when the whole interval is on its side.

# %% tags=["figures"]
figures = {"horizon_s": H, "window_s": W, "ewma_alpha": alpha, "test_windows": int(len(x_test)),
           "blocks": int(intervals["ewma"]["blocks"]),
           "mase": {n: s["MASE"] for n, s in scores.items()},
           "relmae": {n: s["RelMAE"] for n, s in scores.items()},
           "relmae_ci": {n: [i["ci_low"], i["ci_high"]] for n, i in intervals.items()}}
print(json.dumps(figures, indent=1))
