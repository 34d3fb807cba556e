"""The target's state folders (shared fault file, metrics files): never left behind.

A caller that names a folder keeps the state there (the harness: under the run folder).
Otherwise the state goes to a temporary folder named `lab-target-<owner pid>-*`, removed
by its owner when it stops; a folder whose owner died without removing it (SIGKILL) is
swept by the next target that starts.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

import psutil

PREFIX = "lab-target-"
# A dead owner's gunicorn tree gets SIGTERM and may take its graceful timeout to exit:
# leave a folder alone until nothing in it has changed for this long.
STALE_AFTER_S = 60.0

_NAME = re.compile(rf"{PREFIX}(\d+)-\w+")


def new_state_dir() -> Path:
    """Sweep stale folders, then make a temporary state folder owned by this process."""
    sweep_stale()
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def sweep_stale(root: str | os.PathLike | None = None, now: float | None = None) -> list[Path]:
    """Remove this user's `lab-target-<pid>-*` folders whose owning process is gone."""
    root = Path(root or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if now - info.st_mtime < STALE_AFTER_S or psutil.pid_exists(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed
