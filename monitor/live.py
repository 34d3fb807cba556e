"""The live monitor: sample the target at 1 Hz, predict, decide, act, export.

`OnlineModel` turns the newest rows into a `Prediction` (forecast per horizon, probability
of an SLO violation within the horizon, regime). `run_monitor` is the standalone loop of
`lab.py monitor`; the lab's closed-loop autoscaler feeds the collector's rows to the same
`OnlineModel` instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from contract.errors import BadInput
from contract.schema import slo_limits, violates_slo
from modeling.data import POOLED_FALLBACK, has_slo_pair, slo_columns
from modeling.features import OnlineDerived, as_float
from modeling.online import OnlineWindow

from .policy import Decision, Prediction
from modeling.profiles import live_row


class OnlineModel:
    """Keep the model's window of rows and predict from it once per second."""
    def __init__(self, bundle, max_rows: int | None = None, plan: "Callable[[int], float] | None" = None):
        """`plan(second)` gives the model's known-future column (the scenario's planned rate or
        users) for a second of the run being watched, when the monitor knows the scenario (a lab
        run); a model trained on the plan ahead is then served the next H seconds of it."""
        self.bundle = bundle
        f = bundle.forecaster
        self.forecaster = f
        self.regimes = bundle.regimes
        self.profile = bundle.meta.get("profile", "lab")
        self.window = int(f.params_["window"])
        self.horizon = int(f.params_["horizon"])
        self.columns = [c for c in f.columns_ if c != "missing"]
        self.key = list(f.key_metrics_) if hasattr(f, "key_metrics_") else list(f.params_["key_metrics"])
        span = getattr(self.regimes, "span", 5) if self.regimes is not None else 0
        self.rows: deque = deque(maxlen=max_rows or max(self.window, span) + 5)
        self.known_future = list(getattr(f, "known_future_", []) or [])
        # Training and serving agree: a model trained on the plan ahead needs it, which a monitor
        # watching anything but a lab run does not have (a lab run's autoscaler passes `plan`);
        # a `future="hold"` model is trained on the plan of now repeated, as served.
        self.future_mode = f.params_.get("future", "legacy") if self.known_future else None
        self.plan = plan if self.future_mode == "plan" else None
        if self.future_mode == "plan" and plan is None:
            raise BadInput(f"{bundle.folder}: this model was trained on the scenario's plan ahead "
                           f"({', '.join(self.known_future)}), and this monitor watches no lab run whose plan "
                           f"it could read; train it with --plan held (the plan of now, repeated) to serve it here")

        self.online = OnlineWindow(self.columns, self.window, int(f.params_.get("max_gap_s", 5)))
        self._serves_filled = hasattr(f, "predict_filled")
        self.derived = OnlineDerived()

    def observe(self, row: dict) -> None:
        row = self.derived.update(row)       # the derived inputs, as training computed them
        self.rows.append(row)
        # A row without a pooled-window value (a live view, an older collector) is served its
        # per-second stand-in, as training read such runs (modeling.data.pooled_targets).
        missing = [c for c in POOLED_FALLBACK if c in self.columns and math.isnan(as_float(row.get(c)))]
        if missing:
            row = {**row, **{c: row.get(POOLED_FALLBACK[c]) for c in missing}}
        self.online.push(row)

    @property
    def ready(self) -> bool:
        return len(self.rows) >= self.window

    def frame(self) -> pd.DataFrame:
        cols = list(dict.fromkeys(self.columns + (list(self.regimes.metrics) if self.regimes is not None else [])))
        data = {c: [as_float(r.get(c)) for r in self.rows] for c in cols}
        return pd.DataFrame(data)

    def predict(self, now: float, latest: dict, future_users: list[float] | None = None) -> Prediction:
        """Predict from the rows so far; before the window is full only the observed values are set."""
        observed = dict(
            observed_p95_ms=_opt(latest.get("latency_p95_ms")),
            observed_error_rate=_opt(latest.get("error_rate")),
            slo_violation=bool(latest["slo_violation"]) if latest.get("slo_violation") not in (None, "") else None,
            workers=int(latest["target_workers"]) if _opt(latest.get("target_workers")) is not None else None,
            cpu_percent=_opt(latest.get("cpu_percent")),
            target_up=bool(latest.get("target_up", 1)),
        )
        if not self.ready:
            return Prediction(timestamp=now, **observed)
        future = None
        if future_users is not None:
            future = np.asarray(future_users, dtype=float)
        elif self.plan is not None:                 # the watched run's plan, the next H seconds
            elapsed = as_float(latest.get("elapsed_s"))
            now_s = 0 if math.isnan(elapsed) else int(elapsed)
            future = np.asarray([self.plan(now_s + 1 + i) for i in range(self.horizon)], dtype=float)
        elif self.future_mode == "legacy":          # models trained before the plan columns: users held
            future = np.asarray([as_float(latest.get("users"))] * self.horizon, dtype=float)
        if self._serves_filled:
            out = self.forecaster.predict_filled(self.online.values(), future=future)
            forecast, probability, upper = out.forecast, out.probability, out.upper
        else:                                        # a stand-in forecaster (tests) with predict_one only
            forecast, probability = self.forecaster.predict_one(self.frame()[self.columns], future=future)
            upper = None
        # A model of other columns (train --target) forecasts no latency: the policy sees its probability only.
        col = self.key.index(slo_columns(self.key)[0]) if has_slo_pair(self.key) else None
        p95 = tuple(float(v) for v in forecast[:, col]) if col is not None else ()
        p95_upper = tuple(float(v) for v in upper[:, col]) if upper is not None and col is not None else None
        regime = None
        if self.regimes is not None:
            names = self.regimes.predict_names(self.frame())
            regime = str(names[-1]) if len(names) else None
        return Prediction(timestamp=now, probability=float(probability), p95_ms=p95, p95_upper_ms=p95_upper,
                          regime=regime, **observed)


def _opt(value) -> float | None:
    v = as_float(value)
    return None if math.isnan(v) else v


@dataclass
class MonitorStep:
    prediction: Prediction
    decision: Decision
    row: dict


def status_line(step: MonitorStep, horizon: int) -> str:
    p, d = step.prediction, step.decision
    up = "up" if p.target_up else "DOWN"
    now = f"{p.observed_p95_ms:.0f} ms" if p.observed_p95_ms is not None else "-"
    ahead = f"{p.p95_ms[-1]:.0f} ms" if p.p95_ms else "-"
    prob = f"{p.probability:.2f}" if p.probability is not None else "-"
    stab = f"{p.stability_percent:.0f}%" if p.stability_percent is not None else "-"
    action = str(d.action) + (f" {d.amount}" if d.amount else "")
    return (f"{time.strftime('%H:%M:%S')} target {up} workers={p.workers if p.workers is not None else '-'} "
            f"p95 now {now} in {horizon}s {ahead}  P(violation)={prob} stability={stab} "
            f"regime={p.regime or '-'} action={action}")


def run_monitor(*, model, view, policy, sinks, exporter, stop: threading.Event,
                duration_s: float | None = None, slo: dict | None = None,
                on_step: Callable[[MonitorStep], None] | None = None, make_row: Callable = live_row) -> int:
    """Sample, predict and act once per second until `stop` is set; return the seconds run.

    `make_row(server, process)` turns the view's sample into the model's row: the live
    profile's columns by default; a model trained on PromQL reads the queries' values as they are.
    """
    if model.profile != "live" and not model.bundle.meta.get("queries"):
        raise BadInput(f"{model.bundle.folder}: this model was trained with --profile lab (it needs the "
                       f"load generator's client-side columns); train one with --profile live to monitor "
                       f"a running target")
    slo = slo_limits(slo)
    sinks.on_drop = exporter.count_dropped
    sinks.on_log_error = exporter.count_event_log_error
    view.prime(time.time())
    start = time.monotonic()
    k = 0
    while not stop.is_set():
        k += 1
        delay = start + k - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        now = time.time()
        server, process = view.sample(now)
        row = make_row(server, process)
        p95, err = _opt(row.get("latency_p95_ms")), _opt(row.get("error_rate"))
        row["slo_violation"] = violates_slo(p95, err, slo)
        if not row["target_up"]:
            row["slo_violation"] = None
        model.observe(row)
        prediction = model.predict(now, row)
        decision = policy.decide(prediction)
        exporter.set_target(bool(row["target_up"]), prediction.workers)
        exporter.publish(prediction, decision)
        future = sinks.dispatch_async(decision)
        future.add_done_callback(lambda f, d=decision: _count(exporter, d, f))
        step = MonitorStep(prediction, decision, row)
        if on_step:
            on_step(step)
        if duration_s is not None and time.monotonic() - start >= duration_s:
            break
    return k


def _count(exporter, decision, future) -> None:
    # Sinks.dispatch_async catches every sink's and the event log's failure into the
    # outcomes (an event log that cannot be written is counted and reported there).
    exporter.count_outcomes(decision, future.result())
