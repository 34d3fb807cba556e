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


# ---------------------------------------------------------------- end of commands

if __name__ == "__main__":
    app()
