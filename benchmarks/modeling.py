"""Modelling benchmark: the issue's goal figures, timings, and the experiment grid behind the defaults.

    python benchmarks/modeling.py                      # default model on a generated synthetic dataset
    python benchmarks/modeling.py --grid --model-seeds 0,1,2   # every configuration in GRID (about an hour)
    python benchmarks/modeling.py --runs DATASET --holdout mixed,wave   # real runs instead

Training runs and held-out runs never share a scenario. Results go to stdout as a table
and, with --out, to a JSON file. Figures are recorded in docs/modeling.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRAIN_SCENARIOS = ["spike", "ramp", "step", "fault-latency", "fault-errors", "fault-cpu", "fault-memory", "soak"]
HELDOUT_SCENARIOS = ["mixed", "wave"]

# name -> LSTMForecaster keyword arguments (on top of the defaults).
GRID: dict[str, dict] = {
    "default": {},
    "window15": {"window": 15},
    "window30": {"window": 30},
    "units16": {"units": 16},
    "units64": {"units": 64},
    "dropout0": {"dropout": 0.0},
    "dropout0.3": {"dropout": 0.3},
    "lr1e-3": {"learning_rate": 1e-3},
    "lr1e-2": {"learning_rate": 1e-2},
    "layers2": {"layers": 2},
    "huber": {"loss": "huber"},
    "mae": {"loss": "mae"},
    "no-delta": {"delta": False},
    "no-log": {"log_latency": False},
    "no-early-stop": {"patience": 0, "epochs": 30},
    "known-future": {"known_future": ["users"]},
    "window20": {"window": 20},
    "window15+huber": {"window": 15, "loss": "huber"},
    "known-future+window10": {"known_future": ["users"], "window": 10},
    "known-future+window20": {"known_future": ["users"], "window": 20},
    "known-future+window60": {"known_future": ["users"], "window": 60},
    "known-future+window15": {"known_future": ["users"], "window": 15},
    "known-future+window15+huber": {"known_future": ["users"], "window": 15, "loss": "huber"},
    "guide": {"preset": "guide"},
}


def datasets(args: argparse.Namespace):
    """Return (train, test) runs: generated synthetic ones or loaded and split by scenario."""
    from modeling.data import load_runs, split_runs
    from modeling.synthetic import synthetic_run

    if args.runs:
        runs = load_runs(args.runs)
        return split_runs(runs, holdout=args.holdout.split(","))
    train = [synthetic_run(s, seed=i) for s in TRAIN_SCENARIOS for i in args.seeds]
    test = [synthetic_run(s, seed=i) for s in HELDOUT_SCENARIOS for i in args.test_seeds]
    return train, test


def row(name: str, model, result: dict) -> dict:
    """Flatten one evaluation into the figures the table shows."""
    lstm = result["summary"]["lstm"]
    mase_all = [v for s in result["forecast"]["lstm"].values() for v in s["mase"] if v is not None]
    ew = result["early_warning"]
    return {
        "config": name,
        **{f"mase@H {m}": lstm[m]["mase_at_h"] for m in result["data"]["key_metrics"]},
        "mase mean": float(np.mean(mase_all)), "mase worst": float(np.max(mase_all)),
        "f1": ew["lstm"]["f1"], "f1 fcst": ew["lstm_forecast"]["f1"],
        "f1 reactive": ew["reactive"]["f1"], "f1 linear": ew["predict_linear"]["f1"],
        "event recall": ew["lstm"]["event_recall"], "lead s": ew["lstm"]["mean_lead_s"],
        "false/h": ew["lstm"]["false_alarms_per_hour"],
        "epochs": model.epochs_trained_, "s/epoch": model.training_summary_["seconds_per_epoch"],
        "fit s": model.training_summary_["fit_seconds"],
    }


def mean_row(rows: list[dict]) -> dict:
    """Average the figures of one configuration over model seeds (None stays out of the mean)."""
    out = {"config": rows[0]["config"], "seeds": len(rows)}
    for key in rows[0]:
        if key == "config":
            continue
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    if len(rows) > 1:
        out["f1 sd"] = float(np.std([r["f1"] for r in rows]))
    return out


def print_table(rows: list[dict]) -> None:
    """Print rows as an aligned plain-text table."""
    cols = list(rows[0])
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    width = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.rjust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(fmt(r.get(c)).rjust(width[c]) for c in cols))


def timings(model) -> dict:
    """Measure training seconds per epoch on one hour of data and online inference latency."""
    from contract.scenario import load_scenario
    from modeling.forecaster import LSTMForecaster
    from modeling.synthetic import synthetic_run

    hour = synthetic_run(load_scenario("mixed").scaled(3600), seed=5)
    params = {k: v for k, v in model.get_params().items() if k not in ("epochs", "patience", "validation_fraction")}
    started = time.perf_counter()
    LSTMForecaster(**params, epochs=2, patience=0, validation_fraction=0.0).fit([hour])
    per_epoch = (time.perf_counter() - started) / 2
    W = model.params_["window"]
    H = model.params_["horizon"]
    future = hour["users"].iloc[W:W + H].to_numpy() if model.known_future_ else None
    model.predict_one(hour.iloc[:W], future=future)          # trace the compiled function once
    lat = []
    for i in range(300):
        t = time.perf_counter()
        model.predict_one(hour.iloc[i:i + W], future=future)
        lat.append((time.perf_counter() - t) * 1000)
    return {"seconds_per_epoch_1h_incl_setup": round(per_epoch, 2),
            "predict_one_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "predict_one_ms_p99": round(float(np.percentile(lat, 99)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="store_true", help="run every configuration in GRID")
    parser.add_argument("--configs", default="", help="comma-separated GRID names to run")
    parser.add_argument("--runs", nargs="*", help="run or dataset folders instead of synthetic runs")
    parser.add_argument("--holdout", default="mixed,wave", help="scenarios held out for testing (with --runs)")
    parser.add_argument("--seeds", default="1,2,3", help="synthetic seeds of the training runs")
    parser.add_argument("--test-seeds", default="7,8", help="synthetic seeds of the held-out runs")
    parser.add_argument("--model-seeds", default="0", help="comma-separated model seeds; figures are averaged")
    parser.add_argument("--no-timings", action="store_true")
    parser.add_argument("--out", type=Path, help="write all results as JSON here")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.test_seeds = [int(s) for s in args.test_seeds.split(",")]
    warnings.simplefilter("ignore")

    from modeling.evaluate import evaluate
    from modeling.forecaster import LSTMForecaster
    from modeling.regimes import RegimeModel

    train, test = datasets(args)
    print(f"train: {len(train)} runs, {sum(map(len, train))} rows; held out: "
          f"{len(test)} runs ({', '.join(sorted({str(r.attrs.get('scenario')) for r in test}))}), "
          f"{sum(map(len, test))} rows", flush=True)
    names = list(GRID) if args.grid else (args.configs.split(",") if args.configs else ["default"])
    unknown = [n for n in names if n not in GRID]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; choose from {', '.join(GRID)}")
    seeds = [int(s) for s in args.model_seeds.split(",")]
    regimes = RegimeModel().fit(train)
    rows, results, per_seed, first = [], {}, {}, None
    for name in names:
        runs_rows = []
        for seed in seeds:
            model = LSTMForecaster(**GRID[name], seed=seed).fit(train)
            result = evaluate(model, test, regimes)
            runs_rows.append(row(name, model, result))
            results[f"{name}/seed{seed}"] = result
            first = first or (model, result)
            print(json.dumps(runs_rows[-1]), flush=True)
        per_seed[name] = runs_rows
        rows.append(mean_row(runs_rows))
    print()
    print_table(rows)
    model, result = first
    print("\ngoals (first configuration):")
    for goal, figure in result["goals"].items():
        value = figure["value"]
        shown = "-" if value is None else f"{value:.3f}"
        print(f"  {goal:22s} {shown:>8s}  goal {figure['goal']:45s} {'met' if figure['met'] else 'NOT met'}")
    print("\n".join(result["verdict"]))
    extra = {} if args.no_timings else timings(model)
    if extra:
        print("timings:", json.dumps(extra))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "per_seed": per_seed, "results": results,
                                        "timings": extra}, indent=1))


if __name__ == "__main__":
    main()
