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


def redact_url(url, keep_path: bool = True) -> str:
    """Return a URL fit for a message or a log: never its user-info, never a control character.

    `user:secret@` is dropped from the authority; with keep_path=False the path and query
    become `/…` too (a webhook's path is its secret). Never raises, whatever the text.
    """
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    shown = (f"{scheme}://" if sep else "") + authority.rpartition("@")[2]
    if tail.strip("/"):
        shown += tail if keep_path else "/…"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in shown)


def is_loopback_host(host: str) -> bool:
    """Whether `host` is `localhost` or a loopback literal (127.0.0.0/8, ::1); no DNS lookup."""
    import ipaddress

    host = str(host).strip("[]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
