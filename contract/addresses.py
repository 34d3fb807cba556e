"""Addresses the lab is handed: is a host loopback, and a URL fit to show (no user-info).

Decided from the text alone, without DNS: a name that resolves to loopback today may not
tomorrow (DNS rebinding), so only loopback literals and `localhost` count as local.
"""

from __future__ import annotations

import ipaddress

LOCALHOST_NAMES = ("localhost", "localhost.")


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
    host = str(host).strip("[]")
    if host.lower() in LOCALHOST_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
