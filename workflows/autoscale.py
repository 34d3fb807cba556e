"""Closed-loop autoscaling inside a lab run: reactive (Kubernetes' HPA) or predictive (HPA + the model).

`Autoscaler` is a row hook of the harness (`loadtests.harness.RowHook`): the harness hands
it every row the collector records; the policy decides, and `ScaleTargetSink` changes the
embedded target's gunicorn worker count for real. The policy is a `monitor.hpa.ScalerPolicy`:
the HPA rule on the row's metric (`slo`: the SLO window's p95, `queue`, `cpu`), and in
predictive mode the same rule led by the model's forecast (`monitor.hpa.LeadScaler`, with
the measured worker boot time as its lead). Inside a lab run the scenario's plan is known,
so a model trained with `--plan ahead` is served the plan of its next H seconds. A taken action labels the second in
which it was taken (`autoscale_action`, next to `target_workers`), and every decision and
its outcome is kept in the run's `autoscale.jsonl` for the record.

Scaling waits for gunicorn (seconds), so actions run on a `monitor.sinks.Lane`: while one
is in progress the newest waits and an older waiting one is dropped (a `dropped` record
in autoscale.jsonl, counted in run.json); after a failed action the next ones are skipped
for 2, 4, 8 ... s instead of hammering a target that does not respond.

`record_run` is `run-scenario` with or without autoscaling: every option is checked (and a
predictive model loaded) before the target starts.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

from contract.errors import BadInput, LabError
from contract.runfolder import AUTOSCALE_JSONL
from loadtests.harness import RunOptions, RunResult, resolve_scenario, run_scenario
from contract.scenario import Scenario
from monitor.hpa import DEFAULT_BOOT_LEAD_S, HPA_METRICS, HpaConfig, HpaScaler, LeadConfig, LeadScaler, ScalerPolicy
from monitor.policy import Prediction
from monitor.sinks import Backoff, Lane, ScaleTargetSink
from monitor.live import OnlineModel

MODES = ("off", "reactive", "predictive")


class Autoscaler:
    """Decide on each row and scale the embedded target (a harness row hook)."""
    name = "autoscale"
    columns = ("autoscale_action",)

    def __init__(self, mode: str, slo: dict, *, model_dir: Path | None = None,
                 min_workers: int = 1, max_workers: int = 6, metric: str = "slo",
                 target: float | None = None, lead_s: float = DEFAULT_BOOT_LEAD_S,
                 scenario: Scenario | None = None):
        check_autoscale_options(mode, model_dir, min_workers, max_workers, metric)
        self.mode, self.model_dir, self.scenario = mode, model_dir, scenario
        self.min_workers, self.max_workers = min_workers, max_workers
        self.online = None
        self.hpa = hpa = HpaScaler(HpaConfig(metric=metric, target=target or _default_target(metric, slo),
                                             min_workers=min_workers, max_workers=max_workers))
        self.lead_s = lead_s
        if mode == "predictive":
            # Here, not at the top: every run-scenario imports this module, and the model
            # code (scikit-learn and its scipy) adds about a second to a run without a model.
            from modeling.pipeline import load_bundle

            bundle = load_bundle(model_dir)
            if bundle.meta.get("profile", "lab") != "lab":
                raise BadInput(f"{model_dir}: --autoscale predictive inside a lab run uses a --profile lab "
                               f"model (it reads the collector's rows)")
            # Inside a lab run the scenario's plan is known: a model trained on it is served it.
            plan = None
            if scenario is not None and bundle.forecaster.params_.get("future") == "plan" \
                    and getattr(bundle.forecaster, "known_future_", None):
                plan = scenario.plan_of(bundle.forecaster.known_future_[0])   # the run's own plan ahead
            self.online = OnlineModel(bundle, plan=plan)
            lead = LeadConfig(slo_p95_ms=slo["latency_p95_ms"], lead_s=lead_s)
            self.policy = ScalerPolicy(LeadScaler(hpa, lead), metric)
        else:
            # Kubernetes' HPA with its default behaviour, on the SLO window, queue time or CPU.
            self.policy = ScalerPolicy(hpa, metric)
        self.sink: ScaleTargetSink | None = None
        self.lane: Lane | None = None
        self.backoff = Backoff()
        self.path: Path | None = None
        self._write_lock = threading.Lock()   # the decision thread and the action lane both append
        self.decisions = 0
        self.actions = 0
        self.dropped = 0
        self.skipped = 0

    # ---------------------------------------------------------------- RowHook
    def start(self, target_pid: int | None, run_dir: Path) -> dict:
        if target_pid is None:
            raise BadInput("--autoscale scales the embedded target; it cannot be used with --host")
        self.sink = ScaleTargetSink(target_pid, min_workers=self.min_workers, max_workers=self.max_workers)
        self.path = run_dir / AUTOSCALE_JSONL
        self.path.touch()
        # Scaling waits for gunicorn to change its workers (seconds); decisions go on meanwhile,
        # and at most one action waits for the one in progress.
        self.lane = Lane("autoscale", lambda job: self._act(*job), self._dropped)
        return {"mode": self.mode, "model": str(self.model_dir) if self.model_dir else None,
                "min_workers": self.min_workers, "max_workers": self.max_workers,
                "policy": getattr(self.policy, "name", type(self.policy).__name__),
                "lead_s": self.lead_s if self.mode == "predictive" else None,
                "hpa": {k: getattr(self.hpa.config, k) for k in ("metric", "target", "time_factor")}}

    def on_row(self, row: dict) -> dict | None:
        """Decide on the newest row; a taken action is started now and labels this second."""
        now = time.time()
        if hasattr(self.policy, "observe"):
            self.policy.observe(row, None if self.lane.busy() else self._live_workers())
        if self.online is not None:
            self.online.observe(row)
            prediction = self.online.predict(now, row)
        else:
            prediction = Prediction(
                timestamp=now, observed_p95_ms=_opt(row.get("latency_p95_ms")),
                observed_error_rate=_opt(row.get("error_rate")),
                slo_violation=bool(row.get("slo_violation")), workers=_int(row.get("target_workers")),
                cpu_percent=_opt(row.get("cpu_percent")), target_up=bool(row.get("target_up", 1)))
        decision = self.policy.decide(prediction)
        self.decisions += 1
        self._write({"ts": now, "action": str(decision.action), "amount": decision.amount,
                     "desired_workers": decision.desired_workers,
                     "probability": prediction.probability, "reason": decision.reason,
                     "row_elapsed_s": row.get("elapsed_s")})
        if not decision.taken:
            return None
        self.actions += 1
        self.lane.submit((decision, now))
        return {"autoscale_action": f"{decision.action}:{decision.amount or 0}"}

    def _live_workers(self) -> int | None:
        try:
            return self.sink.workers()
        except LabError:
            return None

    def close(self) -> dict:
        """Finish the action in progress; one still waiting when the run ends is dropped (and logged)."""
        if self.lane is not None:
            self.lane.close(discard_waiting=True)
        return {"decisions": self.decisions, "actions": self.actions, "dropped": self.dropped,
                "skipped": self.skipped}

    # ---------------------------------------------------------------- acting
    def _act(self, decision, decided_at: float) -> None:
        result = {"ts": time.time(), "result_of": decided_at, "action": str(decision.action)}
        if self.backoff.left() > 0:
            self.skipped += 1
            result.update(outcome="skipped", reason=self.backoff.reason())
            self._write(result)
            return
        try:
            result["outcome"] = self.sink.handle(decision)
        except Exception as exc:  # a failed scale is recorded, the run goes on
            result["outcome"] = f"failed: {exc}"
        if str(result["outcome"]).startswith("failed"):
            self.backoff.failed()
        else:
            self.backoff.succeeded()
        result["workers"] = (self.sink.last_result or {}).get("workers")
        self._write(result)

    def _dropped(self, job) -> None:
        decision, decided_at = job
        self.dropped += 1
        self._write({"ts": time.time(), "result_of": decided_at, "action": str(decision.action),
                     "outcome": "dropped", "reason": "a newer action replaced it while scaling was busy"})

    def _write(self, record: dict) -> None:
        with self._write_lock, open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def check_autoscale_options(mode: str, model_dir: Path | None, min_workers: int, max_workers: int,
                            metric: str = "slo") -> None:
    """Refuse bad autoscaling options before anything starts."""
    if mode not in MODES:
        raise BadInput(f"--autoscale: expected one of {', '.join(MODES)}, got {mode!r}")
    if metric not in HPA_METRICS:
        raise BadInput(f"--scale-metric: expected one of {', '.join(HPA_METRICS)}, got {metric!r}")
    if min_workers < 1 or max_workers < min_workers:
        raise BadInput(f"--min-workers {min_workers} and --max-workers {max_workers}: "
                       f"need 1 <= min-workers <= max-workers")
    if mode == "predictive" and model_dir is None:
        raise BadInput("--autoscale predictive needs --model DIR (a model trained with lab.py train)")
    if mode != "predictive" and model_dir is not None and mode != "off":
        raise BadInput(f"--model is used by --autoscale predictive only, not {mode}")


def _default_target(metric: str, slo: dict) -> float:
    """The HPA's target: the SLO's p95 for the SLO window, a tenth of it for queue time, 70 % CPU."""
    return {"slo": slo["latency_p95_ms"], "queue": slo["latency_p95_ms"] / 10.0, "cpu": 70.0}[metric]


def record_run(opts: RunOptions, *, autoscale: str = "off", model_dir: Path | None = None,
               min_workers: int = 1, max_workers: int = 6, metric: str = "slo",
               on_row: Callable[[dict], None] | None = None,
               on_status: Callable[[str], None] | None = None) -> RunResult:
    """One labelled run, with closed-loop autoscaling when `autoscale` is not off."""
    check_autoscale_options(autoscale, model_dir, min_workers, max_workers, metric)
    hooks = []
    if autoscale != "off":
        if opts.host:
            raise BadInput("--autoscale scales the embedded target; it cannot be used with --host")
        scenario = resolve_scenario(opts)
        slo = scenario.slo
        hooks.append(Autoscaler(autoscale, {"latency_p95_ms": slo.latency_p95_ms, "error_rate": slo.error_rate},
                                model_dir=model_dir, min_workers=min_workers, max_workers=max_workers,
                                metric=metric, scenario=scenario))
    return run_scenario(opts, on_row=on_row, on_status=on_status, hooks=hooks)


def _opt(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _int(value):
    v = _opt(value)
    return None if v is None else int(v)
