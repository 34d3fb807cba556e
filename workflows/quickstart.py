"""quickstart: the whole lab in a few minutes on a laptop.

A small dataset of short real runs (the embedded target under Locust), a model trained on
some scenarios and scored on a scenario it never saw, a report, and a three-line verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from modeling.pipeline import evaluate_bundle, train_bundle
from modeling.report import build_report
from workflows.matrix import generate_dataset, plan_matrix

TRAIN_SCENARIOS = ("spike", "ramp", "step", "fault-latency")
HELD_OUT = "mixed"
# Short runs and a short window keep it to about five minutes on two cores.
RUN_SECONDS = 40
MODEL_PARAMS = {"window": 15, "horizon": 10, "epochs": 40}


@dataclass
class QuickstartResult:
    folder: Path
    dataset: Path
    model: Path
    report: Path
    metrics: dict
    timings: dict = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)


def three_lines(metrics: dict) -> list[str]:
    """Does the LSTM beat naive, how early does it warn, how well do regimes match."""
    s = metrics["summary"]
    H = metrics["data"]["horizon_s"]
    key = metrics["data"]["key_metrics"]
    mase = {m: s["lstm"][m]["mase_at_h"] for m in key}
    wins = [m for m, v in mase.items() if v is not None and v < 1]
    figures = ", ".join(f"{m} {v:.2f}" if v is not None else f"{m} n/a" for m, v in mase.items())
    line1 = (f"1. Forecast {H} s ahead: the LSTM beats naive persistence on {len(wins)} of {len(key)} "
             f"key metrics (MASE {figures}; below 1 wins).")
    ew = metrics["early_warning"]
    lead, react = ew["lstm"].get("mean_lead_s"), ew["reactive"].get("mean_lead_s")
    line2 = (f"2. Early warning: F1 {ew['lstm']['f1']:.2f} vs {ew['reactive']['f1']:.2f} for the reactive "
             f"alert; mean lead {'-' if lead is None else f'{lead:.1f} s'} vs "
             f"{'-' if react is None else f'{react:.1f} s'} (how early a violation is flagged).")
    r = metrics.get("regimes")
    line3 = ("3. Regimes: " + (f"ARI {r['ari']:.2f} against the ground truth (1 = same grouping, 0 = chance), "
                               f"k={r['k']}: {', '.join(r['names'])}." if r else "not fitted."))
    return [line1, line2, line3]


def run_quickstart(folder: Path, *, seed: int = 1, run_seconds: int = RUN_SECONDS,
                   on_stage: Callable[[str], None] | None = None,
                   on_row: Callable[[dict], None] | None = None,
                   on_epoch: Callable[[int, int, dict], None] | None = None) -> QuickstartResult:
    """Generate, train, evaluate and report; every step writes into `folder`."""

    stage = on_stage or (lambda _m: None)
    timings = {}
    dataset = folder / "dataset"
    names = [*TRAIN_SCENARIOS, HELD_OUT]
    started = time.monotonic()
    stage(f"1/4 recording {len(names)} runs of {run_seconds} s ({', '.join(names)})")
    generate_dataset(dataset, plan_matrix(names, [seed], 1, run_seconds),
                     command="python lab.py quickstart", on_row=on_row)
    timings["record_s"] = round(time.monotonic() - started, 1)

    t = time.monotonic()
    stage(f"2/4 training on {', '.join(TRAIN_SCENARIOS)}; {HELD_OUT} held out")
    model = folder / "model"
    bundle = train_bundle([str(dataset)], model, holdout=[HELD_OUT], params=MODEL_PARAMS,
                          seed=seed, on_epoch=on_epoch)
    timings["train_s"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    stage(f"3/4 evaluating on the held-out {HELD_OUT} run against the baselines")
    metrics = evaluate_bundle(bundle)
    timings["evaluate_s"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    stage("4/4 writing the report")
    report = build_report(model, folder / "report")
    timings["report_s"] = round(time.monotonic() - t, 1)
    timings["total_s"] = round(time.monotonic() - started, 1)
    return QuickstartResult(folder, dataset, model, report.path, metrics, timings, three_lines(metrics))


def print_quickstart(console, result: QuickstartResult) -> None:
    """Where the time went, the three-line verdict and the report's path."""
    t = result.timings
    console.print(f"done in {t['total_s'] / 60:.1f} min (recording {t['record_s']:.0f} s, training "
                  f"{t['train_s']:.0f} s, evaluation {t['evaluate_s']:.0f} s, report {t['report_s']:.0f} s)")
    for line in result.verdict:
        console.print(line, highlight=False)
    console.print(f"report: [bold]{result.report}[/]")
