"""Stability Lab command line: `python lab.py --help` (also installed as `lab`).

Each command is argument handling plus one call into a package; LabError is
translated here, once, into a one-line message and the exit codes of DESIGN.md.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from lab_errors import LabError

app = typer.Typer(
    help="Stability Lab: load-test an instrumented target, record labelled runs, "
    "forecast instability.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


@app.callback()
def main() -> None:
    """Stability Lab: load-test an instrumented target, record labelled runs, forecast instability."""


def lab_command(fn):
    """Register a command whose LabError becomes a one-line message and exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LabError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return app.command()(wrapper)


# ---------------------------------------------------------------- serve (target)


@lab_command
def serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="gunicorn worker processes.")] = 2,
    threads: Annotated[int, typer.Option(min=1, max=256, help="Threads per worker (gthread).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed for the target's random costs and faults.")] = 0,
    bind_all: Annotated[bool, typer.Option("--bind-all", help="Listen on all interfaces (0.0.0.0) instead of 127.0.0.1.")] = False,
    token: Annotated[Optional[str], typer.Option(help="Bearer token for /admin (generated when not given).", envvar="LAB_ADMIN_TOKEN")] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Print one line per request.")] = False,
    dev: Annotated[bool, typer.Option("--dev", help="Flask's development server with debug on (never for load tests).")] = False,
):
    """Run the instrumented target app under gunicorn in the foreground."""
    from target_app.server import TargetConfig, serve_foreground

    host = "0.0.0.0" if bind_all else "127.0.0.1"
    config = TargetConfig(port=port, host=host, workers=workers, threads=threads, seed=seed,
                          access_log=access_log)
    if token:
        config.token = token
    if dev:
        from target_app.app import create_app

        err.print("[yellow]--dev: Flask development server, debug on, one process; not for load tests[/]")
        create_app({"SEED": seed, "ADMIN_TOKEN": config.token, "DEBUG": True}).run(
            host=host, port=port, debug=True, use_reloader=False)
        return

    def ready(target):
        out.print(f"target serving on [bold]{target.url}[/] (pid {target.pid}, {workers} workers x {threads} threads)")
        out.print(f"admin token: {config.token}")
        out.print(f"try: curl {target.url}/stress   |   metrics: {target.url}/metrics   |   Ctrl-C stops")

    code = serve_foreground(config, on_ready=ready)
    raise typer.Exit(code or 0)


# ---------------------------------------------------------------- scenarios and runs


@lab_command
def scenarios():
    """List the built-in scenarios with a one-line description each."""
    from rich.table import Table

    from loadtests.scenario import DEFAULT_SCENARIO, builtin_scenarios

    table = Table("name", "duration", "stages", "faults", "description", box=None)
    for sc in builtin_scenarios():
        name = sc.name + (" (default)" if sc.name == DEFAULT_SCENARIO else "")
        faults = ", ".join(f"{f.kind}@{f.start_s}s" for f in sc.faults) or "-"
        table.add_row(name, f"{sc.duration_s} s", str(len(sc.stages)), faults, sc.description)
    out.print(table)


@lab_command
def run_scenario(
    scenario: Annotated[Optional[str], typer.Argument(help="Built-in scenario name or path to a .toml file (default: the lab's default scenario).")] = None,
    duration: Annotated[Optional[int], typer.Option(help="Scale the scenario to this many seconds (see --truncate).")] = None,
    truncate: Annotated[bool, typer.Option("--truncate", help="With --duration: cut the scenario instead of scaling it.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed for Locust users and the target (overrides the scenario's).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives the run folder.")] = Path("runs"),
    host: Annotated[Optional[str], typer.Option(help="Use an external target at this URL instead of the embedded one.")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a --host that is not a loopback address.")] = False,
    admin_token: Annotated[Optional[str], typer.Option(help="Admin token of an external --host, for fault injection.", envvar="LAB_ADMIN_TOKEN")] = None,
    workers: Annotated[int, typer.Option(min=0, max=64, help="Locust worker processes (0: one local runner).")] = 0,
    target_workers: Annotated[Optional[int], typer.Option(min=1, max=64, help="gunicorn workers of the embedded target.")] = None,
    target_threads: Annotated[Optional[int], typer.Option(min=1, max=256, help="Threads per target worker.")] = None,
    prometheus_url: Annotated[Optional[str], typer.Option(help="Read server-side metrics from this Prometheus server instead of scraping /metrics.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run one scenario against the target and record one labelled row per second."""
    from loadtests.harness import RunOptions, run_scenario as run
    from loadtests.report_console import RunProgress, print_summary

    opts = RunOptions(scenario=scenario, duration_s=duration, truncate=truncate, seed=seed,
                      out=out_dir, host=host, allow_remote=allow_remote, admin_token=admin_token,
                      workers=workers, target_workers=target_workers, target_threads=target_threads,
                      prometheus_url=prometheus_url)
    from loadtests.harness import resolve_scenario

    with RunProgress(out, enabled=not quiet, label=scenario or "run") as progress:
        progress.set_total(resolve_scenario(opts).duration_s)
        result = run(opts, on_row=progress.row, on_status=progress.status)
    print_summary(out, result)

# ---------------------------------------------------------------- end of commands

if __name__ == "__main__":
    app()
