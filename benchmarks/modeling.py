"""Modelling benchmark under the tuning protocol: tune on training scenarios, score the test split once.

    python lab.py generate-dataset --preset small --out datasets/small      # ~20 min of runs
    python benchmarks/modeling.py --dataset datasets/small --out results.json
    python benchmarks/modeling.py --dataset datasets/bench --configs w60,w60+plan

The dataset's manifest fixes the split (held-out scenarios and held-out seeds are the test
split; `modeling/protocol.py`). Everything tuned is chosen on the training runs only:
the LSTM's configuration (from CONFIGS) and its alarm threshold by leave-one-scenario-out
validation, the baselines' settings and the best baseline per metric on the training
windows. The test split is opened once, for the one evaluation whose figures are printed
(and recorded under `protocol.test_opened` in the JSON); the script refuses to open it
again. Timings use training runs only. `benchmarks/README.md` records the figures.
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# This file is named modeling.py: take its folder off the path so `modeling` is the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

# name -> LSTMForecaster keyword arguments; "plan" stands for the dataset's plan column.
# The defaults are the residual over the EWMA of the log targets, MAE loss, a p90 head and
# a calibrated warning; "+persist" is the model before the models issue (residual over the
# last value, MSE, no upper head), kept to show what the change is worth.
CONFIGS: dict[str, dict] = {
    "w15": {"window": 15},
    "w30": {"window": 30},
    "w30+median": {"window": 30, "base": "median"},
    "w30+plan": {"window": 30, "known_future": ["plan"]},
    "w30+persist": {"window": 30, "base": "last", "loss": "mse", "quantile": 0, "calibrate": False},
    "w60": {"window": 60},
}
TEST_FIGURES = "held-out scores: forecasts and baselines, model vs best baseline, early warning, regimes, goals"


def resolve(configs: dict[str, dict], plan: str | None) -> dict[str, dict]:
    """Replace the "plan" placeholder by the dataset's plan column (configs needing one are dropped without)."""
    out = {}
    for name, params in configs.items():
        if "plan" in params.get("known_future", ()):
            if plan is None:
                continue
            params = {**params, "known_future": [plan]}
        out[name] = params
    return out


def run_protocol(dataset: Path, configs: dict[str, dict], *, seed: int = 0, epochs: int | None = None,
                 log=print) -> dict:
    """Tune on the training runs, fit the final models, open the test split once, evaluate; return everything."""
    from contract.errors import BadInput
    from modeling.evaluate import evaluate
    from modeling.forecaster import LSTMForecaster
    from modeling.pipeline import fit_baselines, plan_column
    from modeling.protocol import DatasetSplit, tune
    from modeling.regimes import RegimeModel, tune_regimes

    split = DatasetSplit.of(dataset)
    train = split.train_runs()
    try:
        plan = plan_column(train)
    except BadInput:
        plan = None
    grid = resolve(configs, plan)
    if epochs:
        grid = {k: {**v, "epochs": epochs} for k, v in grid.items()}
    log(f"train: {len(train)} runs ({sum(map(len, train))} rows) of "
        f"{', '.join(sorted({str(r.attrs.get('scenario')) for r in train}))}; test split sealed: "
        f"{len(split.test_dirs)} runs; configurations {', '.join(grid)}")
    tuned = tune(train, grid, seed=seed, on_fit=lambda c, f: log(f"  fold {c} / left out {f}"))
    log(f"chosen by leave-one-scenario-out: {tuned.config} ({json.dumps(tuned.scores[tuned.config])}); "
        f"alarm threshold {tuned.threshold:.2f} ({tuned.threshold_note})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.monotonic()
        model = LSTMForecaster(**tuned.params, seed=seed).fit(train)
        fit_s = time.monotonic() - started
        model.warn_threshold_, model.threshold_note_ = tuned.threshold, tuned.threshold_note
        started = time.monotonic()
        suite = fit_baselines(model, train)
        suite_s = time.monotonic() - started
        regimes_chosen, regimes_params, regimes_scores = tune_regimes(train, seed=seed)
        regimes = RegimeModel(seed=seed, **regimes_params).fit(train)
    timing = timings(model, train)
    timing.update(final_fit_s=round(fit_s, 1), baselines_fit_s=round(suite_s, 1), tuning_s=tuned.seconds,
                  tuning_fits=tuned.fits)
    sealed = split.sealed_test()
    test = sealed.open(TEST_FIGURES)
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate(model, test, regimes, suite)
    timing["evaluate_s"] = round(time.monotonic() - started, 1)
    return {"dataset": str(dataset), "split": {k: v for k, v in split.split.items() if k not in ("train", "test")},
            "protocol": {"configs": grid, "validation": tuned.scores, "chosen": tuned.config,
                         "threshold": tuned.threshold, "threshold_note": tuned.threshold_note,
                         "baselines": suite.to_dict(), "test_opened": sealed.opened,
                         "regimes": {"chosen": regimes_chosen, "params": regimes_params, "validation": regimes_scores}},
            "result": result, "timings": timing}


REGIME_FIGURES = "held-out scores: regimes against the system states"


def run_regimes(dataset: Path, *, seed: int = 0, log=print) -> dict:
    """The regimes alone: settings chosen by leave-one-scenario-out on the training runs, the test split opened once."""
    from modeling.evaluate import regime_goals, score_regimes
    from modeling.protocol import DatasetSplit
    from modeling.regimes import RegimeModel, tune_regimes

    split = DatasetSplit.of(dataset)
    train = split.train_runs()
    log(f"train: {len(train)} runs ({sum(map(len, train))} rows); test split sealed: {len(split.test_dirs)} runs")
    started = time.monotonic()
    chosen, params, scores = tune_regimes(train, seed=seed)
    log(f"regimes chosen by leave-one-scenario-out: {chosen} (objective {scores[chosen]['objective']:.3f}, "
        f"ARI {scores[chosen]['ari']:.3f}, worst recall {scores[chosen]['min_recall']:.2f})")
    regimes = RegimeModel(seed=seed, **params).fit(train)
    tuning_s = round(time.monotonic() - started, 1)
    sealed = split.sealed_test()
    test = sealed.open(REGIME_FIGURES)
    result = score_regimes(regimes, test)
    return {"dataset": str(dataset), "split": {k: v for k, v in split.split.items() if k not in ("train", "test")},
            "protocol": {"regimes": {"chosen": chosen, "params": params, "validation": scores},
                         "test_opened": sealed.opened, "tuning_s": tuning_s},
            "regimes": result, "goals": regime_goals(result),
            "test_runs": [p.name for p in split.test_dirs]}


def regime_markdown(r: dict, goals: dict) -> list[str]:
    """The regime figures as Markdown: ARI and NMI, recall per state, P(violation ahead) per regime."""
    lines = [f"Regimes (k = {r['k']}: {', '.join(r['names'])}; settings {r.get('params')}) against the system "
             f"states on {r['runs']} test runs, {r['seconds']} seconds; 95% run-bootstrap intervals:", "",
             f"ARI {_f(r['ari'])} [{_ci(r['ari_ci'])}], NMI {_f(r['nmi'])} [{_ci(r.get('nmi_ci'))}].", "",
             f"| state | truth share | recall [95%] | predicted share | P(violation within {r.get('ahead_s', 30)} s) |",
             "|---|---:|---:|---:|---:|"]
    ahead = r.get("p_violation_ahead") or {}
    for s in dict.fromkeys([*(r.get("recall") or {}), *ahead]):
        rec = (r.get("recall") or {}).get(s)
        lines.append(f"| {s} | {_f((r.get('truth_shares') or {}).get(s))} | "
                     f"{_f(rec)} [{_ci((r.get('recall_ci') or {}).get(s)) if rec is not None else '–'}] | "
                     f"{_f((r.get('shares') or {}).get(s))} | {_f((ahead.get(s) or {}).get('p_violation'))} |")
    lines.append(f"| (all seconds) | | | | {_f(r.get('p_violation_base'))} |")
    lines += ["", "| goal | figure | 95% interval | target | status |", "|---|---:|---:|---|---|"]
    for name, g in goals.items():
        lines.append(f"| {name} | {_f(g['value'])} | {_ci(g['ci'])} | {g['goal']} | {g['status']} |")
    return lines


def timings(model, train) -> dict:
    """Online inference latency and AutoETS's cost per window, measured on a training run (never the test split)."""
    from modeling.baselines import auto_ets

    w = model.windows(train[:1])
    x = w.x_key[: min(100, len(w))]
    started = time.perf_counter()
    auto_ets(x, model.params_["horizon"])
    ets_ms = (time.perf_counter() - started) * 1000 / max(1, x.shape[0] * x.shape[2])
    run, W = train[0], model.params_["window"]
    future = None
    if model.known_future_:
        future = run[model.known_future_].iloc[W:W + model.params_["horizon"]].to_numpy()
    model.predict_one(run.iloc[:W + 30], future=future)          # trace the compiled function once
    lat = []
    for i in range(min(200, len(run) - W - 30 - model.params_["horizon"])):
        t = time.perf_counter()
        model.predict_one(run.iloc[i:i + W + 30], future=future)
        lat.append((time.perf_counter() - t) * 1000)
    return {"auto_ets_ms_per_window_and_metric": round(ets_ms, 2),
            "predict_one_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat else None,
            "predict_one_ms_p99": round(float(np.percentile(lat, 99)), 2) if lat else None}


# ---------------------------------------------------------------- printing


def _f(v, d: int = 2) -> str:
    return "–" if v is None else f"{v:.{d}f}"


def _ci(ci, d: int = 2) -> str:
    return "–" if not ci or ci[0] is None else f"{_f(ci[0], d)}–{_f(ci[1], d)}"


def markdown(out: dict) -> str:
    """The figures as Markdown tables (what benchmarks/README.md records)."""
    r = out["result"]
    d, key, H = r["data"], r["data"]["key_metrics"], r["data"]["horizon_s"]
    lines = [f"Test split: {d['windows']} windows of {d['runs_with_windows']} runs ({', '.join(d['scenarios'])}); "
             f"chosen configuration `{out['protocol']['chosen']}`; 95% block-bootstrap intervals "
             f"(blocks of {d['block_s']} s, {d['n_boot']} resamples).", ""]
    lines += [f"RelMAE at h = 1, 5, {H} s [95% interval] (below 1 beats persistence):", "",
              "| forecaster | " + " | ".join(key) + " |", "|---|" + "---|" * len(key)]
    steps = sorted({0, min(4, H - 1), H - 1})
    for name, scores in r["forecast"].items():
        cells = ["<br>".join(f"h{h + 1} {_f(scores[m]['relmae'][h])} [{_ci(scores[m]['relmae_ci'][h])}]"
                             for h in steps) for m in key]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"MASE at h = 1, 5, {H} s [95% interval] (scale: in-sample one-step naive MAE of the training "
                  "series):", "", "| forecaster | " + " | ".join(key) + " |", "|---|" + "---|" * len(key)]
    for name, scores in r["forecast"].items():
        cells = ["<br>".join(f"h{h + 1} {_f(scores[m]['mase'][h])} [{_ci(scores[m]['mase_ci'][h])}]"
                             for h in steps) for m in key]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"LSTM against its best baseline (chosen on the training runs), MAE at {H} s:", "",
              "| metric | best baseline | MAE LSTM | MAE baseline | gain | 95% interval | windows | runs |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for m, c in r["comparison"].items():
        lines.append(f"| {m} | {c['best_baseline']} | {_f(c['mae'], 3)} | {_f(c['mae_baseline'], 3)} | "
                     f"{_f(c['mae_gain'])} | {_ci([c['ci_low'], c['ci_high']])} | {c['windows']} | {c['runs']} |")
    ew = r["early_warning"]
    lines += ["", f"Early warning by episode (headline: event F1 within {ew['budget_per_h']:g} false alarms/h):", "",
              "| alert | headline | F1 [95%] | precision | recall | false alarms/h [95%] | mean lead s | "
              "share of achievable [95%] |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in ew.items():
        if isinstance(s, dict):
            lines.append(f"| {name} | {_f(s['f1_in_budget'])} | {_f(s['f1'])} [{_ci(s['ci']['f1'])}] | "
                         f"{_f(s['precision'])} | {_f(s['recall'])} | {_f(s['false_alarms_per_h'], 1)} "
                         f"[{_ci(s['ci']['false_alarms_per_h'], 1)}] | {_f(s['mean_lead_s'], 1)} | "
                         f"{_f(s['lead_share'])} [{_ci(s['ci']['lead_share'])}] |")
    inc = r.get("incident_warning")
    if inc:
        lines += ["", f"Incidents within {inc['horizon_s']} s (the incident head, by incident episode):", "",
                  "| alert | episodes | detected | false alarms/h | mean lead s [95%] | share of achievable |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in ("lstm", "always_on"):
            s = inc[name]
            lines.append(f"| {name} | {s['episodes']} | {s['detected']} | {_f(s['false_alarms_per_h'], 1)} | "
                         f"{_f(s['mean_lead_s'], 1)} [{_ci(s['ci']['mean_lead_s'], 1)}] | {_f(s['lead_share'])} |")
    if "regimes" in r:
        lines += [""] + regime_markdown(r["regimes"], {k: v for k, v in r["goals"].items() if k.startswith("regime")})
    lines += ["", "Goals:", "", "| goal | figure | 95% interval | target | status |", "|---|---:|---:|---|---|"]
    for name, g in r["goals"].items():
        lines.append(f"| {name} | {_f(g['value'])} | {_ci(g['ci'])} | {g['goal']} | {g['status']} |")
    return "\n".join(lines)


def regimes_main(args) -> None:
    """`--regimes-only`: print the regime figures (and write them as JSON with --out)."""
    from contract.errors import LabError
    from modeling.evaluate import jsonable

    try:
        out = jsonable(run_regimes(args.dataset, seed=args.seed, log=lambda m: print(m, flush=True)))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print()
    print("\n".join(regime_markdown(out["regimes"], out["goals"])))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder made with generate-dataset --preset")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated of {', '.join(CONFIGS)}")
    parser.add_argument("--seed", type=int, default=0, help="model seed")
    parser.add_argument("--epochs", type=int, help="cap the epochs of every fit (default: the model's)")
    parser.add_argument("--out", type=Path, help="write everything as JSON here")
    parser.add_argument("--regimes-only", action="store_true", help="tune and score the regimes alone (no LSTM)")
    args = parser.parse_args()
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    warnings.simplefilter("ignore")
    from contract.errors import LabError

    if args.regimes_only:
        regimes_main(args)
        return
    try:
        out = run_protocol(args.dataset, {n: CONFIGS[n] for n in names}, seed=args.seed, epochs=args.epochs,
                           log=lambda m: print(m, flush=True))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    print()
    print(markdown(out))
    print()
    print("\n".join(out["result"]["verdict"]))
    print("timings:", json.dumps(out["timings"]))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
