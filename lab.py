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


# ---------------------------------------------------------------- end of commands

if __name__ == "__main__":
    app()
