"""Terminal views of a run: the live progress bar and the closing summary table."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class RunProgress:
    """A progress bar fed one collector row per second."""

    def __init__(self, console: Console, enabled: bool = True, label: str = "run"):
        self.console = console
        self.enabled = enabled
        self.label = label
        self.progress: Progress | None = None
        self.task = None

    def __enter__(self) -> "RunProgress":
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[label]}[/]"), BarColumn(),
                TextColumn("{task.completed:>4.0f}/{task.fields[planned]} s"),
                TextColumn("{task.description}"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("starting", total=None, label=self.label, planned="?")
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def status(self, message: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=message)

    def row(self, row: dict) -> None:
        if self.progress is None:
            return
        p95 = row.get("latency_p95_ms")
        rps = row.get("rps")
        slo = "[red]SLO violated[/]" if row.get("slo_violation") else "[green]SLO ok[/]"
        fault = f" fault={row['fault']}" if row.get("fault") not in (None, "none") else ""
        desc = (f"{row.get('phase')} users={row.get('users') or 0} "
                f"rps={rps if rps is not None else '-':>5} "
                f"p95={f'{p95:.0f} ms' if p95 is not None else '-':>8} {slo}{fault}")
        self.progress.update(self.task, completed=row.get("elapsed_s", 0) + 1, description=desc)

    def set_total(self, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, total=total, planned=total)


def print_summary(console: Console, result) -> None:
    """Print the run's summary table and path."""
    s = result.summary
    table = Table(title=f"run {result.meta['run_id']}: {result.status}", box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("requests", f"{s.get('requests', 0)} ({s.get('failures', 0)} failed)")
    if "p50_ms" in s:
        table.add_row("latency", f"p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  p99 {s['p99_ms']} ms")
    table.add_row("seconds", f"{s.get('seconds', 0)} recorded, {s.get('slo_violation_s', 0)} in SLO violation")
    if s.get("phase_s"):
        table.add_row("per phase", "  ".join(f"{k} {v} s" for k, v in s["phase_s"].items()))
    faults = {k: v for k, v in (s.get("fault_s") or {}).items() if k != "none"}
    if faults:
        table.add_row("faults", "  ".join(f"{k} {v} s" for k, v in faults.items()))
    for warning in result.meta.get("warnings", []):
        table.add_row("[yellow]warning[/]", warning)
    console.print(table)
    console.print(f"run folder: [bold]{result.run_dir}[/]")
