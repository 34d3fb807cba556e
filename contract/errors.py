"""The lab's one exception family, translated to an exit code once, at the CLI."""

from __future__ import annotations


class LabError(Exception):
    """The work failed (exit 1). The message is one line a user can act on.

    One line by construction: a newline or other control character that came in with a
    file's content (a TOML key, a CSV header) is shown escaped (`\\n`), never as a break.
    """

    exit_code = 1

    def __init__(self, message: object = "", *args: object):
        super().__init__(one_line(str(message)), *args)


class BadInput(LabError):
    """Bad scenario, CSV, option or file (exit 2). Name the file, field or value."""

    exit_code = 2


class Interrupted(LabError):
    """Stopped by Ctrl-C or SIGTERM after keeping what was recorded (exit 130)."""

    exit_code = 130


def one_line(text: str) -> str:
    """Return `text` with every control or separator character escaped, so it prints as one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def read_text_file(path, what: str = "file") -> str:
    """Read a UTF-8 text file a user gave; every failure is a one-line BadInput naming it."""
    from pathlib import Path

    label = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{label}: file not found") from None
    except IsADirectoryError:
        raise BadInput(f"{label}: is a folder, not a {what}") from None
    except OSError as exc:
        raise BadInput(f"{label}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{label}: not UTF-8 text (byte {exc.start})") from None
