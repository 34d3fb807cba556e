"""Terminal views of training and evaluation: epoch progress and the results tables."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .data import duration_text


class EpochProgress:
    """A progress bar with the training and validation loss per epoch."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console, self.enabled = console, enabled
        self.progress = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            self.progress = Progress(TextColumn("[bold]train[/]"), BarColumn(),
                                     TextColumn("epoch {task.completed}/{task.total}"),
                                     TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=self.console)
            self.progress.__enter__()
            self.task = self.progress.add_task("", total=None)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        if self.progress is None:
            return
        desc = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss"))
        self.progress.update(self.task, completed=epoch, total=epochs, description=desc)


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(ci) -> str:
    return "-" if not ci or ci[0] is None else f"{_f(ci[0])}-{_f(ci[1])}"


def print_evaluation(console: Console, result: dict) -> None:
    """Print RelMAE and MASE per metric and model, the model against its best baseline, early warning, goals, verdict."""
    data = result["data"]
    H = data["horizon_s"]
    interval = float(data.get("interval_s") or 1)
    ahead = duration_text(int(H), interval)
    table = Table(title=f"forecast {ahead} ahead: RelMAE (below 1 beats naive persistence) [95% interval] / MASE",
                  box=None)
    table.add_column("model", style="bold")
    for metric in data["key_metrics"]:
        table.add_column(metric, justify="right")
    for name, scores in result["summary"].items():
        table.add_row(name, *[f"{_f(scores[m].get('relmae_at_h'))} [{_ci(scores[m].get('relmae_ci_at_h'))}] / "
                              f"{_f(scores[m].get('mase_at_h'))}" for m in data["key_metrics"]])
    console.print(table)
    table = Table(title=f"LSTM against its best baseline (chosen on the training runs), MAE at {ahead}", box=None)
    for col in ("metric", "best baseline", "MAE gain", "95% interval", "windows", "runs"):
        table.add_column(col, justify="left" if col in ("metric", "best baseline") else "right")
    for metric, c in result.get("comparison", {}).items():
        table.add_row(metric, c["best_baseline"], _f(c["mae_gain"]), _ci([c["ci_low"], c["ci_high"]]),
                      str(c["windows"]), str(c["runs"]))
    console.print(table)
    ew = result["early_warning"]
    per = "h"                                          # per hour of data at any row interval
    table = Table(title=f"early warning by episode (headline: F1 within {_f(ew.get('budget_per_h'), 0)} false alarms/{per})",
                  box=None)
    for col in ("alert", "headline", "F1 [95%]", "precision", "recall", "false alarms/h", "mean lead s",
                "share of achievable"):
        table.add_column(col, justify="right" if col != "alert" else "left")
    for name, s in ew.items():
        if isinstance(s, dict):
            table.add_row(name, _f(s.get("f1_in_budget")), f"{_f(s.get('f1'))} [{_ci((s.get('ci') or {}).get('f1'))}]",
                          _f(s.get("precision")), _f(s.get("recall")), _f(s.get("false_alarms_per_h"), 1),
                          _f(s.get("mean_lead_s"), 1), _f(s.get("lead_share")))
    console.print(table)
    if "regimes" in result:
        r = result["regimes"]
        console.print(f"regimes: k={r['k']} ({', '.join(r['names'])})  ARI {_f(r['ari'])} [{_ci(r.get('ari_ci'))}]  "
                      f"NMI {_f(r['nmi'])} [{_ci(r.get('nmi_ci'))}]  silhouette {_f(r.get('silhouette'))}")
        regime_table(console, r)
    if "products" in result:
        groups: dict[str, list[str]] = {}
        for endpoint, cluster in result["products"]["clusters"].items():
            groups.setdefault(cluster, []).append(endpoint)
        console.print("endpoint clusters: " + "; ".join(f"{c}: {', '.join(e)}" for c, e in groups.items()))
    goals = result.get("goals", {})
    if goals:
        table = Table(title="goals (met only when the 95% interval supports it)", box=None)
        for col in ("goal", "figure", "95% interval", "target", "status"):
            table.add_column(col)
        colour = {"met": "green", "not met": "red"}
        for name, g in goals.items():
            st = g.get("status", "met" if g["met"] else "not met")
            table.add_row(name, _f(g["value"]), _ci(g.get("ci")), g["goal"], f"[{colour.get(st, 'yellow')}]{st}[/]")
        console.print(table)
    for line in result.get("verdict", []):
        console.print(line, highlight=False)


def print_training(console: Console, bundle, out_dir) -> None:
    """What `train` fitted, on what, and what to run next."""
    m = bundle.meta
    console.print(f"trained on {len(m['train_runs'])} runs ({m['train_rows']} rows) in {m['train_seconds']} s, "
                  f"{m['epochs_run']} epochs; held out: {len(m['test_runs'])} runs ({m['split']})")
    interval = float(m.get("interval_s") or 1)
    p = bundle.forecaster.params_
    console.print(f"forecasts {', '.join(bundle.forecaster.key_metrics_)}: window {duration_text(int(p['window']), interval)}, "
                  f"horizon {duration_text(int(p['horizon']), interval)}"
                  + (f" (rows {interval:g} s apart)" if interval != 1 else ""), highlight=False)
    scores = bundle.forecaster.training_summary_.get("normalise_scores")
    if p.get("normalise", "global") != "global" or scores:
        console.print(f"normalise: {p['normalise']}" + (" (auto, validation RelMAE: " + ", ".join(
            f"{k} {_f(v, 3)}" for k, v in scores.items()) + ")" if scores else ""), highlight=False)
    if m.get("queries"):
        console.print(f"PromQL kept for `monitor --prometheus-url`: {', '.join(m['queries'])}", highlight=False)
    if bundle.regimes is not None:
        console.print(f"regimes: k={bundle.regimes.k_} ({', '.join(bundle.regimes.names_)})")
    console.print(f"model folder: [bold]{out_dir}[/]   next: python lab.py evaluate {out_dir}")


def regime_table(console: Console, r: dict) -> None:
    """Print each system state's recall and each regime's P(SLO violation ahead)."""
    ahead = r.get("p_violation_ahead") or {}
    table = Table(title=f"regimes vs system states (P(violation) within {r.get('ahead_s', 30)} s; "
                        f"base rate {_f(r.get('p_violation_base'))})", box=None)
    for col in ("state", "truth share", "recall", "95% interval", "predicted share", "P(violation ahead)"):
        table.add_column(col, justify="left" if col == "state" else "right")
    names = list(dict.fromkeys([*(r.get("recall") or {}), *ahead]))
    for s in names:
        rec = (r.get("recall") or {}).get(s)
        table.add_row(s, _f((r.get("truth_shares") or {}).get(s)), _f(rec),
                      _ci((r.get("recall_ci") or {}).get(s)) if rec is not None else "-",
                      _f((r.get("shares") or {}).get(s)), _f((ahead.get(s) or {}).get("p_violation")))
    console.print(table)
