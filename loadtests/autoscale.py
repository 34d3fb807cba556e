"""Closed-loop autoscaling inside a lab run: reactive (HPA-like) or predictive (the model).

The harness feeds every row the collector writes to `Autoscaler.on_row`; the policy
decides, and `ScaleTargetSink` changes the embedded target's gunicorn worker count for
real. Each decision is appended to `autoscale.jsonl`, which the collector reads back into
the `autoscale_action` column of the second in which it was taken, next to
`target_workers`, so the run records both the cost and the actions.

Scaling waits for gunicorn (seconds), so actions run on a `monitor.sinks.Lane`: while one
is in progress the newest waits and an older waiting one is dropped (a `dropped` record
in autoscale.jsonl, counted in run.json); after a failed action the next ones are skipped
for 2, 4, 8 ... s instead of hammering a target that does not respond.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from lab_errors import BadInput

MODES = ("off", "reactive", "predictive")
ACTIONS_FILE = "autoscale.jsonl"


class Autoscaler:
    def __init__(self, mode: str, master_pid: int, run_dir: Path, slo: dict, *,
                 model_dir: Path | None = None, min_workers: int = 1, max_workers: int = 6):
        from monitor.policy import Policy, ReactivePolicy
        from monitor.sinks import Backoff, Lane, ScaleTargetSink

        if mode not in MODES or mode == "off":
            raise BadInput(f"--autoscale: expected reactive or predictive, got {mode!r}")
        self.mode = mode
        self.online = None
        if mode == "predictive":
            if model_dir is None:
                raise BadInput("--autoscale predictive needs --model DIR (a model trained with lab.py train)")
            from modeling.pipeline import load_bundle
            from monitor.live import OnlineModel

            bundle = load_bundle(model_dir)
            if bundle.meta.get("profile", "lab") != "lab":
                raise BadInput(f"{model_dir}: --autoscale predictive inside a lab run uses a --profile lab "
                               f"model (it reads the collector's rows)")
            self.online = OnlineModel(bundle)
            self.policy = Policy.preset("default", min_workers=min_workers, max_workers=max_workers,
                                        slo_latency_p95_ms=slo["latency_p95_ms"])
        else:
            # The rule most teams run: add capacity once the SLO is already broken or CPU is high.
            self.policy = ReactivePolicy.preset("cpu_or_slo", min_workers=min_workers,
                                                max_workers=max_workers,
                                                slo_latency_p95_ms=slo["latency_p95_ms"],
                                                slo_error_rate=slo["error_rate"])
        self.sink = ScaleTargetSink(master_pid, min_workers=min_workers, max_workers=max_workers)
        self.path = run_dir / ACTIONS_FILE
        self.path.touch()
        self._write_lock = threading.Lock()   # the decision thread and the action lane both append
        # Scaling waits for gunicorn to change its workers (seconds); decisions go on meanwhile,
        # and at most one action waits for the one in progress.
        self.lane = Lane("autoscale", lambda job: self._act(*job), self._dropped)
        self.backoff = Backoff()
        self.decisions = 0
        self.actions = 0
        self.dropped = 0
        self.skipped = 0

    def on_row(self, row: dict) -> None:
        """Decide on the newest row and act (scaling blocks briefly until workers change)."""
        from monitor.policy import Prediction

        now = time.time()
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
        record = {"ts": now, "action": str(decision.action), "amount": decision.amount,
                  "probability": prediction.probability, "reason": decision.reason,
                  "row_elapsed_s": row.get("elapsed_s")}
        # Written at once, so the collector labels the second the decision was taken in.
        self._write(record)
        if decision.taken:
            self.actions += 1
            self.lane.submit((decision, now))

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

    def close(self) -> None:
        """Finish the action in progress; one still waiting when the run ends is dropped (and logged)."""
        self.lane.close(discard_waiting=True)


def _opt(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def _int(value):
    v = _opt(value)
    return None if v is None else int(v)
