"""`lab.py serve`: refused combinations and what it prints (no real gunicorn here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner


@pytest.fixture
def served(monkeypatch):
    """Replace the foreground server: record the config, call on_ready once, print nothing else."""
    import target_app.server as server

    seen = []

    def fake_serve(config, on_ready=None):
        seen.append(config)
        on_ready(SimpleNamespace(url=config.url, pid=4242))
        return 0

    monkeypatch.setattr(server, "serve_foreground", fake_serve)
    monkeypatch.delenv("LAB_ADMIN_TOKEN", raising=False)
    return seen


def invoke(*args, env=None):
    import lab

    return CliRunner().invoke(lab.app, ["serve", *args], env=env)


def test_dev_with_bind_all_is_refused_before_anything_starts(monkeypatch):
    import target_app.app

    started = []
    monkeypatch.setattr(target_app.app, "create_app", lambda *a, **k: started.append(1))
    result = invoke("--dev", "--bind-all")
    assert result.exit_code == 2
    assert started == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dev" in lines[0] and "--bind-all" in lines[0]


def test_a_generated_token_is_printed_once(served):
    result = invoke()
    assert result.exit_code == 0, result.output
    token = served[-1].token
    assert token.startswith("lab_") and result.output.count(token) == 1


@pytest.mark.parametrize("how", ["option", "env"])
def test_a_token_the_user_gave_is_never_printed(served, how):
    secret = "lab_user-chosen-secret"
    result = (invoke("--token", secret) if how == "option"
              else invoke(env={"LAB_ADMIN_TOKEN": secret}))
    assert result.exit_code == 0, result.output
    assert served[-1].token == secret
    assert secret not in result.output and secret not in result.stderr
    assert "admin token" in result.output


def test_max_worker_rss_mb_reaches_the_target_config(served):
    assert invoke().exit_code == 0 and served[-1].max_worker_rss_mb is None
    result = invoke("--max-worker-rss-mb", "450")
    assert result.exit_code == 0, result.output
    assert served[-1].max_worker_rss_mb == 450.0
    assert invoke("--max-worker-rss-mb", "0").exit_code == 2
