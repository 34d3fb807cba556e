"""The lab's one exception family, translated to an exit code once, at the CLI."""

from __future__ import annotations


class LabError(Exception):
    """The work failed (exit 1). The message is one line a user can act on."""

    exit_code = 1


class BadInput(LabError):
    """Bad scenario, CSV, option or file (exit 2). Name the file, field or value."""

    exit_code = 2


class Interrupted(LabError):
    """Stopped by Ctrl-C or SIGTERM after keeping what was recorded (exit 130)."""

    exit_code = 130
