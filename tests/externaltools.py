"""External programs some tests need (promtool, prometheus, amtool, docker-compose, ...).

Import it as a module (`from externaltools import require_tool`), like runfactory.py.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Return the path of an external tool; skip locally, fail in CI, when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
