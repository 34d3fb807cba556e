"""compare-autoscale: a scenario under off, reactive and predictive scaling, on the same seeds.

Every seed is run once per mode (paired: the same arrivals, the same target seed), the
modes' order rotating from seed to seed so that a machine that gets busier during the
comparison does not always hurt the same mode. Per run: seconds in SLO violation,
p95/p99, failures, worker-seconds and scale actions. Per pair of modes: the mean paired
difference predictive - reactive with a 95 % paired bootstrap interval over the seeds
(scipy.stats.bootstrap, percentile method), and the relative change of the totals.
`plot_modes` draws each mode's workers and SLO-window p95 over time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from contract.errors import BadInput
from loadtests.harness import RunOptions
from modeling.pipeline import is_model_folder
from workflows.autoscale import record_run

MODES = ("off", "reactive", "predictive")
COLUMNS = ("seed", "mode", "slo_violation_s", "p95_ms", "p99_ms", "failures", "requests",
           "worker_seconds", "scale_actions")
PAIRED = ("slo_violation_s", "worker_seconds", "p95_ms", "p99_ms", "failures")
BOOTSTRAP_RESAMPLES = 9999


def compare_autoscale(scenario: str, model_dir: Path | None, *, out: Path, seed: int | None = None,
                      seeds: list[int] | None = None, duration_s: int | None = None, modes=MODES,
                      min_workers: int = 1, max_workers: int = 6, metric: str = "slo",
                      on_mode: Callable[[str], None] | None = None,
                      on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Run each mode on each seed (paired); return one result row per run, seed by seed."""
    if "predictive" in modes and (model_dir is None or not is_model_folder(model_dir)):
        raise BadInput(f"--model: {model_dir} is not a model folder (train one with lab.py train)")
    seeds = list(seeds) if seeds else [seed]
    results = []
    for i, s in enumerate(seeds):
        order = list(modes[i % len(modes):]) + list(modes[:i % len(modes)])
        runs = {}
        for mode in order:
            if on_mode:
                on_mode(mode if s is None else f"{mode}, seed {s}")
            result = record_run(RunOptions(scenario=scenario, seed=s, duration_s=duration_s, out=out),
                                autoscale=mode, model_dir=model_dir if mode == "predictive" else None,
                                min_workers=min_workers, max_workers=max_workers, metric=metric,
                                on_row=on_row)
            runs[mode] = _result_row(s, mode, result)
        results += [runs[m] for m in modes]
    return results


def _result_row(seed: int | None, mode: str, result) -> dict:
    s = result.summary
    return {"seed": seed, "mode": mode, "run_dir": str(result.run_dir),
            "slo_violation_s": s.get("slo_violation_s"), "p95_ms": s.get("p95_ms"), "p99_ms": s.get("p99_ms"),
            "failures": s.get("failures"), "requests": s.get("requests"),
            "worker_seconds": s.get("worker_seconds"), "scale_actions": s.get("autoscale_actions", 0)}


def paired(results: list[dict], metric: str, a: str = "predictive", b: str = "reactive",
           confidence: float = 0.95, random_state: int = 0) -> dict | None:
    """Mean of a - b over the seeds both modes ran, with a paired bootstrap interval; None without pairs."""
    from scipy.stats import bootstrap

    by = {(r["seed"], r["mode"]): r for r in results}
    pairs = [(by[(s, a)][metric], by[(s, b)][metric]) for s in dict.fromkeys(r["seed"] for r in results)
             if (s, a) in by and (s, b) in by and by[(s, a)][metric] is not None and by[(s, b)][metric] is not None]
    if not pairs:
        return None
    x, y = (np.asarray(v, dtype=float) for v in zip(*pairs))
    diff = x - y
    total = float(y.sum())
    out = {"metric": metric, "n": len(pairs), "mean_diff": float(diff.mean()),
           "relative": float(x.sum() / total - 1.0) if total else math.nan, "low": math.nan, "high": math.nan}
    if len(pairs) == 1 or np.ptp(diff) == 0:
        out["low"] = out["high"] = float(diff.mean()) if np.ptp(diff) == 0 else math.nan
        return out
    res = bootstrap((x, y), lambda u, v, axis=-1: np.mean(u - v, axis=axis), paired=True,
                    vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
                    method="percentile", random_state=random_state)
    out["low"], out["high"] = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return out


def verdict(results: list[dict]) -> str:
    """Whether predictive halved reactive's violation seconds at no more worker-seconds, interval excluding no gain."""
    slo, cost = paired(results, "slo_violation_s"), paired(results, "worker_seconds")
    if slo is None or cost is None:
        return ""
    halved = slo["relative"] <= -0.5
    sure = slo["high"] < 0
    cheaper = cost["mean_diff"] <= 0
    met = halved and sure and cheaper
    return (f"predictive - reactive over {slo['n']} seed(s): SLO-violation s {slo['mean_diff']:+.1f} per run "
            f"[{slo['low']:+.1f}, {slo['high']:+.1f}] ({slo['relative']:+.0%} of the total), worker-s "
            f"{cost['mean_diff']:+.0f} [{cost['low']:+.0f}, {cost['high']:+.0f}]: goal "
            f"{'met' if met else 'not met'} (halved: {halved}, interval excludes no gain: {sure}, "
            f"no more worker-seconds: {cheaper})")


def mode_means(results: list[dict]) -> list[dict]:
    """Per mode, the mean of each measure over its seeds."""
    rows = []
    for mode in dict.fromkeys(r["mode"] for r in results):
        mine = [r for r in results if r["mode"] == mode]
        row = {"seed": f"mean of {len(mine)}", "mode": mode}
        for col in COLUMNS[2:]:
            values = [r[col] for r in mine if r[col] is not None]
            row[col] = float(np.mean(values)) if values else None
        rows.append(row)
    return rows


def plot_modes(scenario: str, results: list[dict], path: Path, slo_p95_ms: float | None = None) -> Path:
    """Workers and the SLO window's p95 over time per mode (thin: each seed; thick: the median)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from contract.runfolder import METRICS_CSV
    import pandas as pd

    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax_w, ax_p = fig.subplots(2, 1, sharex=True)
    colours = {"off": "tab:gray", "reactive": "tab:orange", "predictive": "tab:blue"}
    for mode in dict.fromkeys(r["mode"] for r in results):
        frames = [pd.read_csv(Path(r["run_dir"]) / METRICS_CSV) for r in results if r["mode"] == mode]
        for col, ax in (("target_workers", ax_w), ("latency_p95_window_ms", ax_p)):
            series = pd.concat([f.set_index("elapsed_s")[col] for f in frames if col in f], axis=1)
            for _, s in series.items():
                ax.plot(s.index, s.values, color=colours.get(mode), alpha=0.25, linewidth=0.8)
            ax.plot(series.index, series.median(axis=1), color=colours.get(mode), linewidth=2,
                    label=f"{mode} (median of {series.shape[1]})")
    if slo_p95_ms:
        ax_p.axhline(slo_p95_ms, color="tab:red", linestyle="--", linewidth=1, label="SLO p95")
    ax_w.set_ylabel("gunicorn workers")
    ax_p.set_ylabel("SLO-window p95 (ms)")
    ax_p.set_yscale("log")
    ax_p.set_xlabel("elapsed s")
    ax_w.legend(loc="upper left", fontsize=8)
    ax_p.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"autoscaling on {scenario}: off, reactive (HPA) and predictive")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def relative_text(d: dict) -> str:
    """The relative change of the totals, or '-' when the reference total is 0."""
    return "-" if math.isnan(d["relative"]) else f"{d['relative']:+.0%}"


def cell_text(value, col: str) -> str:
    """One table cell of a comparison: '-' for none, whole ms and worker-seconds, else one decimal."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if col in ("worker_seconds", "p95_ms", "p99_ms") else f"{value:.1f}"
    return str(value)


def check_comparison(model_dir: Path | None, seeds: int, *, min_workers: int = 1, max_workers: int = 6,
                     metric: str = "slo", modes=MODES, **_) -> None:
    """Refuse bad comparison options before a target starts."""
    from workflows.autoscale import check_autoscale_options

    if seeds < 1:
        raise BadInput(f"--seeds: expected at least 1, got {seeds}")
    check_autoscale_options("off", None, min_workers, max_workers, metric)
    if "predictive" in modes and (model_dir is None or not is_model_folder(model_dir)):
        raise BadInput(f"--model: {model_dir} is not a model folder (train one with lab.py train)")


def run_comparison(scenario: str, model_dir: Path | None, *, out: Path, seed: int = 1, seeds: int = 1,
                   **kwargs) -> tuple[list[dict], Path]:
    """`compare_autoscale` on seeds seed .. seed + seeds - 1, then the plot in `out`; (results, plot)."""
    from loadtests.harness import resolve_scenario

    check_comparison(model_dir, seeds, **kwargs)
    results = compare_autoscale(scenario, model_dir, out=out, seeds=list(range(seed, seed + seeds)), **kwargs)
    slo = resolve_scenario(RunOptions(scenario=scenario)).slo.latency_p95_ms
    name = Path(scenario).stem if scenario.endswith(".toml") else scenario
    return results, plot_modes(scenario, results, out / f"{name}-autoscale.png", slo)


def compare_command(console, scenario: str, model_dir: Path | None, *, quiet: bool = False, **kwargs) -> None:
    """`lab.py compare-autoscale`: the comparison under a progress bar, then its tables."""
    from loadtests.report_console import RunProgress

    check_comparison(model_dir, kwargs.get("seeds", 1), **{k: v for k, v in kwargs.items() if k != "seeds"})
    with RunProgress(console, enabled=not quiet, label=scenario) as progress:
        results, plot = run_comparison(scenario, model_dir, on_mode=lambda m: progress.status(f"mode {m}"),
                                       on_row=progress.row, **kwargs)
    print_comparison(console, scenario, results, plot)


def print_comparison(console, scenario: str, results: list[dict], plot: Path | None = None) -> None:
    """The runs, the means per mode, the paired intervals, the verdict and the run folders."""
    from rich.table import Table

    table = Table(title=f"autoscaling on {scenario}", box=None)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("seed", "mode") else "right")
    for r in results + mode_means(results):
        table.add_row(*[cell_text(r[c], c) for c in COLUMNS])
    console.print(table)
    for metric in PAIRED:
        d = paired(results, metric)
        if d is not None:
            console.print(f"predictive - reactive {metric}: {d['mean_diff']:+.1f} per run, 95 % paired bootstrap "
                          f"[{d['low']:+.1f}, {d['high']:+.1f}], totals {relative_text(d)}", highlight=False)
    console.print(verdict(results), highlight=False)
    if plot is not None:
        console.print(f"plot: {plot}", highlight=False)
    for r in results:
        console.print(f"{r['mode']} seed {r['seed']}: {r['run_dir']}", highlight=False)
