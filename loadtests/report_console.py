"""Terminal views of a run: the live progress bar and the closing summary table."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from contract.scenario import DEFAULT_SCENARIO, builtin_scenarios


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


class MatrixProgress:
    """Overall progress of generate-dataset: runs done, the current run's second, time left."""
    def __init__(self, console: Console, plan, enabled: bool = True):
        self.console = console
        self.plan = plan
        self.enabled = enabled
        self.progress: Progress | None = None
        self.overall = self.current = None
        self.base_s = 0
        self.cell_s = 0

    def __enter__(self) -> "MatrixProgress":
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[label]}[/]"), BarColumn(),
                TextColumn("{task.description}"), TimeRemainingColumn(), console=self.console)
            self.progress.__enter__()
            self.overall = self.progress.add_task("", total=self.plan.total_s, label="dataset")
            self.current = self.progress.add_task("waiting", total=None, label="run")
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def cell(self, cell, n: int, total: int, eta_s: float) -> None:
        done_s = sum(self.plan.planned_s[c.scenario] for c in self.plan.cells[:n - 1])
        self.base_s = done_s
        self.cell_s = self.plan.planned_s[cell.scenario]
        if self.progress is not None:
            self.progress.update(self.overall, completed=done_s,
                                 description=f"run {n}/{total}, about {eta_s / 60:.1f} min left")
            self.progress.update(self.current, total=self.cell_s, completed=0,
                                 label=f"{cell.scenario} seed {cell.seed}", description="starting")
        else:
            self.console.print(f"run {n}/{total}: {cell.scenario} seed {cell.seed} "
                               f"(about {eta_s / 60:.1f} min left)")

    def row(self, row: dict) -> None:
        if self.progress is None:
            return
        second = row.get("elapsed_s", 0) + 1
        p95 = row.get("latency_p95_ms")
        self.progress.update(self.current, completed=second,
                             description=f"{row.get('phase')} users={row.get('users') or 0} "
                                         f"p95={f'{p95:.0f} ms' if p95 is not None else '-'}")
        self.progress.update(self.overall, completed=self.base_s + second)


def print_scenarios(console: Console) -> None:
    """The built-in scenarios, one line each, the default marked."""
    table = Table("name", "duration", "stages", "faults", "description", box=None)
    for sc in builtin_scenarios():
        name = sc.name + (" (default)" if sc.name == DEFAULT_SCENARIO else "")
        faults = ", ".join(f"{f.kind}@{f.start_s}s" for f in sc.faults) or "-"
        table.add_row(name, f"{sc.duration_s} s", str(len(sc.stages)), faults, sc.description)
    console.print(table)
