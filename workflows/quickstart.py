"""quickstart: the whole lab in a few minutes on a laptop.

A small dataset of short real runs (the embedded target under Locust), a model trained on
some scenarios and scored on two runs of a scenario it never saw, a report, a three-line
verdict with intervals, and a line on what so small a sample can and cannot show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from modeling.pipeline import evaluate_bundle, train_bundle
from modeling.report import build_report
from workflows.matrix import Cell, generate_dataset, plan_matrix

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


def _ci(ci, pct: bool = False) -> str:
    if not ci or ci[0] is None:
        return "no interval"
    return f"95% {100 * ci[0]:+.0f}% to {100 * ci[1]:+.0f}%" if pct else f"95% {ci[0]:.2f} to {ci[1]:.2f}"


def three_lines(metrics: dict) -> list[str]:
    """Does the LSTM beat naive and its best baseline, how early does it warn, how well do regimes match; with intervals."""
    d = metrics["data"]
    H, lat = d["horizon_s"], d["slo_columns"][0]
    s = metrics["summary"]["lstm"][lat]
    c = metrics["comparison"][lat]
    rel = "n/a" if s["relmae_at_h"] is None else f"{s['relmae_at_h']:.2f}"
    gain = "n/a" if c["mae_gain"] is None else f"{100 * c['mae_gain']:+.0f}%"
    line1 = (f"1. Forecast {H} s ahead ({lat}): RelMAE {rel} ({_ci(s['relmae_ci_at_h'])}; below 1 beats persistence); "
             f"MAE gain over the best baseline ({c['best_baseline']}) {gain} ({_ci([c['ci_low'], c['ci_high']], pct=True)}), "
             f"{metrics['goals']['mae_gain_p95']['status']}.")
    ew = metrics["early_warning"]
    m = ew["lstm"]
    share = "-" if m["lead_share"] is None else f"{100 * m['lead_share']:.0f}%"
    line2 = (f"2. Early warning: event F1 {m['f1'] or 0:.2f} ({_ci(m['ci']['f1'])}) on {m['episodes']} episode(s), "
             f"{m['false_alarms_per_h'] or 0:.0f} false alarms/h (budget {ew['budget_per_h']:g}), lead "
             f"{share} of achievable; "
             f"always-on scores {ew['always_on']['f1_in_budget']:.2f} on the same figure.")
    r = metrics.get("regimes")
    line3 = ("3. Regimes: " + (f"ARI {r['ari']:.2f} ({_ci(r.get('ari_ci'))}) against the ground truth "
                               f"(1 = same grouping, 0 = chance), k={r['k']}: {', '.join(r['names'])}." if r else
                               "not fitted."))
    return [line1, line2, line3]


def sample_note(metrics: dict) -> str:
    """What the quickstart's small sample can and cannot show."""
    d = metrics["data"]
    blocks = metrics["comparison"][d["slo_columns"][0]]["blocks"]
    return (f"This sample is {d['windows']} held-out windows ({blocks} bootstrap block(s) of {d['block_s']} s) of "
            f"{d['runs_with_windows']} run(s) and {metrics['early_warning']['lstm']['episodes']} violation "
            f"episode(s): it shows the whole pipeline working, not whether the model beats its baselines; with "
            f"so few blocks and episodes even the intervals understate the uncertainty, and an always-on alarm "
            f"can look as good as a model. For that: python lab.py generate-dataset --preset small (about "
            f"20 min) or --preset bench, then python benchmarks/modeling.py --dataset <folder>.")


def run_quickstart(folder: Path, *, seed: int = 1, run_seconds: int = RUN_SECONDS,
                   on_stage: Callable[[str], None] | None = None,
                   on_row: Callable[[dict], None] | None = None,
                   on_epoch: Callable[[int, int, dict], None] | None = None) -> QuickstartResult:
    """Generate, train, evaluate and report; every step writes into `folder`."""

    stage = on_stage or (lambda _m: None)
    timings = {}
    dataset = folder / "dataset"
    names = [*TRAIN_SCENARIOS, HELD_OUT]
    plan = plan_matrix(names, [seed], 1, run_seconds)
    # Two held-out runs (two seeds): the fewest that give a bootstrap interval at all.
    plan.cells.append(Cell(HELD_OUT, seed + 1, 1))
    plan.seeds = [seed, seed + 1]
    started = time.monotonic()
    stage(f"1/4 recording {len(plan.cells)} runs of {run_seconds} s ({', '.join(names)}; {HELD_OUT} twice)")
    generate_dataset(dataset, plan, command="python lab.py quickstart", on_row=on_row)
    timings["record_s"] = round(time.monotonic() - started, 1)

    t = time.monotonic()
    stage(f"2/4 training on {', '.join(TRAIN_SCENARIOS)}; {HELD_OUT} held out")
    model = folder / "model"
    bundle = train_bundle([str(dataset)], model, holdout=[HELD_OUT], params=MODEL_PARAMS,
                          seed=seed, on_epoch=on_epoch)
    timings["train_s"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    stage(f"3/4 evaluating on the held-out {HELD_OUT} runs against the baselines")
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
    console.print(sample_note(result.metrics), highlight=False)
    console.print(f"report: [bold]{result.report}[/]")
