"""Terminal views of training and evaluation: epoch progress and the results tables."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


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


def print_evaluation(console: Console, result: dict) -> None:
    """Print MASE per metric and model, early-warning scores, regimes and the verdict."""
    data = result["data"]
    H = data["horizon_s"]
    table = Table(title=f"forecast MASE at {H} s (below 1 beats naive persistence)", box=None)
    table.add_column("model", style="bold")
    for metric in data["key_metrics"]:
        table.add_column(metric, justify="right")
    for name, scores in result["summary"].items():
        table.add_row(name, *[_f(scores[m]["mase_at_h"]) for m in data["key_metrics"]])
    console.print(table)
    ew = result["early_warning"]
    table = Table(title=f"early warning: SLO violated within {H} s", box=None)
    for col in ("alert", "precision", "recall", "F1", "mean lead s", "event recall"):
        table.add_column(col, justify="right" if col != "alert" else "left")
    for name, s in ew.items():
        if isinstance(s, dict):
            table.add_row(name, _f(s.get("precision")), _f(s.get("recall")), _f(s.get("f1")),
                          _f(s.get("mean_lead_s"), 1), _f(s.get("event_recall")))
    console.print(table)
    if "regimes" in result:
        r = result["regimes"]
        console.print(f"regimes: k={r['k']} ({', '.join(r['names'])})  ARI {_f(r['ari'])}  "
                      f"NMI {_f(r['nmi'])}  silhouette {_f(r.get('silhouette'))}")
    if "products" in result:
        groups: dict[str, list[str]] = {}
        for endpoint, cluster in result["products"]["clusters"].items():
            groups.setdefault(cluster, []).append(endpoint)
        console.print("endpoint clusters: " + "; ".join(f"{c}: {', '.join(e)}" for c, e in groups.items()))
    goals = result.get("goals", {})
    if goals:
        table = Table(title="goals", box=None)
        for col in ("goal", "figure", "target", "met"):
            table.add_column(col)
        for name, g in goals.items():
            table.add_row(name, _f(g["value"]), g["goal"], "[green]yes[/]" if g["met"] else "[red]no[/]")
        console.print(table)
    for line in result.get("verdict", []):
        console.print(line, highlight=False)


def print_training(console: Console, bundle, out_dir) -> None:
    """What `train` fitted, on what, and what to run next."""
    m = bundle.meta
    console.print(f"trained on {len(m['train_runs'])} runs ({m['train_rows']} rows) in {m['train_seconds']} s, "
                  f"{m['epochs_run']} epochs; held out: {len(m['test_runs'])} runs ({m['split']})")
    if bundle.regimes is not None:
        console.print(f"regimes: k={bundle.regimes.k_} ({', '.join(bundle.regimes.names_)})")
    console.print(f"model folder: [bold]{out_dir}[/]   next: python lab.py evaluate {out_dir}")
