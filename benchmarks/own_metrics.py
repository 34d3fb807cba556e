"""Your own metrics on public data: NAB's AWS CloudWatch CPU series, trained on one server, scored on another.

    python benchmarks/own_metrics.py /work/data/nab --out results.json
    python benchmarks/own_metrics.py /work/data/nab --normalise auto   # per-window normalisation

FOLDER holds NAB files (github.com/numenta/NAB, under NAB's own licence, so they are not in
this repository): `ec2_cpu_utilization_<id>.csv` (timestamp,value every 5 minutes) and
`combined_windows.json` (NAB's label windows). For each ordered pair of servers (A, B) the
script does what a user does:

    python lab.py import-csv A.csv --timestamp-col timestamp --map value=cpu_percent --nab-windows combined_windows.json
    python lab.py train runs/imported-A --target cpu_percent --window W --horizon H [--normalise N]
    python lab.py evaluate models/A runs/imported-B

(`train` on one run fits on its first 75%; `--normalise` as `train --normalise`: global, the
default, or level, window, or auto, which keeps the lowest RelMAE on the training run's own
validation part, never the other server's), and prints RelMAE per horizon (h = 1..H rows of
5 minutes) with 95% block-bootstrap intervals for the LSTM and every baseline, and the event
F1 of the alerts on server B's NAB windows. Beside them the original guide's recipe on the
same files, the bar to beat: two stacked LSTM(50) with Dropout(0.2), a min-max scaler fitted
on all the data (both servers, test rows included: the guide's leak), 60 rows in, the next
row out (h > 1 by feeding its forecasts back), 20 epochs of batch 32, scored on the same
target rows of server B against the same persistence forecast. `benchmarks/README.md`
records the figures.
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

GUIDE_WINDOW = 60


def import_series(folder: Path, out: Path) -> dict[str, Path]:
    """Import every ec2_cpu_utilization_*.csv of `folder` with its NAB windows; return {server id: run folder}."""
    from collector.importer import import_csv

    labels = folder / "combined_windows.json"
    runs = {}
    for csv in sorted(folder.glob("ec2_cpu_utilization_*.csv")):
        runs[csv.stem.rsplit("_", 1)[1]] = import_csv(csv, timestamp_col="timestamp", out_dir=out,
                                                      column_map={"value": "cpu_percent"}, nab_windows=labels)
    if len(runs) < 2:
        raise SystemExit(f"{folder}: needs two or more ec2_cpu_utilization_*.csv files and combined_windows.json")
    return runs


def guide_forecast(train_values: np.ndarray, all_values: np.ndarray, test_values: np.ndarray, t: np.ndarray,
                   horizon: int, seed: int, epochs: int) -> tuple[np.ndarray, float]:
    """The guide's recipe: fit on the training rows, forecast H rows after each `t` of the test series."""
    from modeling.forecaster import configure_tensorflow

    keras = configure_tensorflow()
    keras.utils.set_random_seed(seed)
    lo, hi = np.nanmin(all_values), np.nanmax(all_values)          # fitted on everything: the guide's leak
    scale = lambda v: (v - lo) / (hi - lo)                          # noqa: E731
    a = scale(_ffill(train_values))
    view = np.lib.stride_tricks.sliding_window_view(a, GUIDE_WINDOW + 1)
    view = view[~np.isnan(view).any(axis=1)]
    x, y = view[:, :GUIDE_WINDOW, None], view[:, GUIDE_WINDOW:]
    model = keras.Sequential([keras.Input((GUIDE_WINDOW, 1)), keras.layers.LSTM(50, return_sequences=True),
                              keras.layers.Dropout(0.2), keras.layers.LSTM(50), keras.layers.Dropout(0.2),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mean_squared_error")
    started = time.monotonic()
    model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.2, verbose=0)
    fit_s = time.monotonic() - started
    b = scale(_ffill(test_values))
    window = np.stack([b[i - GUIDE_WINDOW + 1:i + 1] for i in t])[:, :, None]
    out = np.empty((len(t), horizon))
    for h in range(horizon):                                        # one step at a time, fed back
        step = model.predict(window, batch_size=1024, verbose=0)[:, 0]
        out[:, h] = step
        window = np.concatenate([window[:, 1:], step[:, None, None]], axis=1)
    return out * (hi - lo) + lo, fit_s


def _ffill(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.Series(values, dtype="float64").ffill().to_numpy()


def relmae_per_h(forecast: np.ndarray, w, rows: np.ndarray, n_boot: int) -> list[dict]:
    """RelMAE against persistence at each horizon on the windows `rows`, with block-bootstrap intervals."""
    from modeling.evaluate import block_size
    from modeling.metrics import block_ids, paired_ratio

    y, naive = w.y[rows, :, 0], w.x_key[rows, -1, 0]
    blocks = block_ids(w.run[rows], w.t[rows], block_size(w.horizon))
    return [paired_ratio(np.abs(forecast[:, h] - y[:, h]), np.abs(naive - y[:, h]), blocks, n_boot=n_boot)
            for h in range(w.horizon)]


def one_pair(train_run: Path, test_run: Path, work: Path, args) -> dict:
    """Train on one server, evaluate on another: the lab's bundle and the guide's recipe."""
    from contract.runfolder import read_run
    from modeling.pipeline import evaluate_bundle, train_bundle

    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = train_bundle([train_run], work / f"model-{train_run.name}", preset="default", seed=args.seed,
                              targets=["cpu_percent"],
                              params={"window": args.window, "horizon": args.horizon, "epochs": args.epochs,
                                      "normalise": args.normalise})
        train_s = time.monotonic() - started
        result = evaluate_bundle(bundle, [test_run], work / f"metrics-{train_run.name}-{test_run.name}.json")
        w = bundle.forecaster.windows([test_run])
    train_frame, test_frame = read_run(train_run).frame, read_run(test_run).frame
    head = train_frame.iloc[:int(round(len(train_frame) * 0.75))]           # the rows the bundle trained on
    values = [f["cpu_percent"].to_numpy(dtype="float64") for f in (head, test_frame)]
    rows = np.flatnonzero(w.t >= GUIDE_WINDOW - 1)
    guide, guide_s = guide_forecast(values[0], np.concatenate(values), values[1], w.t[rows], w.horizon,
                                    args.seed, args.guide_epochs)
    lstm = result["forecast"]
    summary = bundle.forecaster.training_summary_
    return {"train": train_run.name, "test": test_run.name, "train_seconds": round(train_s, 1),
            "normalise": bundle.forecaster.params_.get("normalise", "global"),
            "validation_relmae": summary.get("normalise_scores") or {bundle.forecaster.params_.get("normalise"):
                                                                     summary.get("validation_score")},
            "guide_fit_seconds": round(guide_s, 1), "windows": result["data"]["windows"],
            "relmae": {name: {"value": s["cpu_percent"]["relmae"], "ci": s["cpu_percent"]["relmae_ci"]}
                       for name, s in lstm.items()},
            "guide_relmae": [{"value": r["ratio"], "ci": [r["ci_low"], r["ci_high"]]}
                             for r in relmae_per_h(guide, w, rows, args.n_boot)],
            "guide_windows": int(len(rows)),
            "early_warning": {name: {k: s.get(k) for k in ("f1", "f1_in_budget", "precision", "recall", "detected",
                                                           "episodes", "false_alarms_per_h", "mean_lead_s")}
                              | {"f1_ci": s["ci"]["f1"]}
                              for name, s in result["early_warning"].items() if isinstance(s, dict)},
            "alarm_threshold": result["data"]["alarm_threshold"],
            "alarm_threshold_note": result["data"]["alarm_threshold_note"],
            "best_baseline": result["comparison"]["cpu_percent"]["best_baseline"]}


def _cell(v, ci) -> str:
    if v is None:
        return "-"
    return f"{v:.2f} [{ci[0]:.2f}-{ci[1]:.2f}]" if ci and ci[0] is not None else f"{v:.2f}"


def print_pair(r: dict, interval_s: int = 300) -> None:
    H = len(r["guide_relmae"])
    print(f"\n### trained on {r['train']}, evaluated on {r['test']} ({r['windows']} windows; LSTM trained in "
          f"{r['train_seconds']} s, guide recipe in {r['guide_fit_seconds']} s)")
    print(f"\nnormalise: {r['normalise']} (validation RelMAE on the training server's own validation part: "
          + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in r["validation_relmae"].items()) + ")")
    print("| model | " + " | ".join(f"h={h + 1} ({(h + 1) * interval_s // 60} min)" for h in range(H)) + " |")
    print("|---|" + "---|" * H)
    for name, s in r["relmae"].items():
        print(f"| {name} | " + " | ".join(_cell(v, c) for v, c in zip(s["value"], s["ci"])) + " |")
    print(f"| guide recipe ({r['guide_windows']} windows) | "
          + " | ".join(_cell(g["value"], g["ci"]) for g in r["guide_relmae"]) + " |")
    print(f"\nevent scores on {r['test']}'s NAB windows (alarm threshold {r['alarm_threshold']:.2f}: "
          f"{r['alarm_threshold_note']})")
    print("| alert | event F1 [95%] | detected / episodes | precision | false alarms per hour of data | headline |")
    print("|---|---|---|---|---|---|")
    for name, s in r["early_warning"].items():
        f1 = "-" if s["f1"] is None else _cell(s["f1"], s["f1_ci"])
        fa = "-" if s["false_alarms_per_h"] is None else f"{s['false_alarms_per_h']:.1f}"
        print(f"| {name} | {f1} | {s['detected']} / {s['episodes']} | {s['precision']:.2f} | {fa} | "
              f"{s['f1_in_budget']:.2f} |")
    print("| guide recipe | - (no alarm: the recipe forecasts values only) | - | - | - | - |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="Folder with NAB's ec2_cpu_utilization_*.csv and combined_windows.json")
    ap.add_argument("--window", type=int, default=24, help="Rows of history (24 x 5 min = 2 h).")
    ap.add_argument("--horizon", type=int, default=6, help="Rows ahead (6 x 5 min = 30 min).")
    ap.add_argument("--epochs", type=int, default=30, help="LSTM epochs at most (early stopping).")
    ap.add_argument("--guide-epochs", type=int, default=20)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--normalise", default="global", choices=("global", "level", "window", "auto"),
                    help="The LSTM's normalisation (train --normalise); auto picks on validation.")
    ap.add_argument("--out", type=Path, help="Write every figure as JSON here.")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="own-metrics-") as tmp:
        work = Path(tmp)
        runs = import_series(args.folder, work / "runs")
        ids = list(runs)
        results = [one_pair(runs[a], runs[b], work, args) for a in ids for b in ids if a != b]
    for r in results:
        print_pair(r)
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "pairs": results},
                                       indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
