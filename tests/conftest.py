"""Shared fixtures: the Flask app and test client, and a real gunicorn target on a free port."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def app(tmp_path):
    from target_app.app import create_app

    app = create_app({"TESTING": True, "SEED": 1, "STATE_DIR": str(tmp_path / "state"),
                      "ADMIN_TOKEN": "lab_test-token", "STRESS_WAIT_MIN_S": 0.0,
                      "STRESS_WAIT_MAX_S": 0.01})
    yield app
    app.extensions["lab_faults"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers():
    return {"Authorization": "Bearer lab_test-token"}


@pytest.fixture
def make_target(tmp_path):
    """Start real gunicorn targets on free loopback ports; stop them all afterwards."""
    from target_app.server import Target, TargetConfig, free_port

    started = []

    def _make(**kwargs):
        config = TargetConfig(port=free_port(), **kwargs)
        target = Target(config, log_path=tmp_path / f"target-{config.port}.log")
        started.append(target)
        return target.start()

    yield _make
    for target in started:
        target.stop()


@pytest.fixture(scope="session")
def tiny_lab_model(tmp_path_factory):
    """(three synthetic run folders, a tiny lab-profile model bundle trained on them), made once a session.

    Tests that read a lab-profile model share it (training one takes seconds of TensorFlow
    set-up); a test that changes the folder works on a copy of it.
    """
    from modeling.pipeline import train_bundle
    from modeling.synthetic import synthetic_run, write_run

    base = tmp_path_factory.mktemp("tiny-lab")
    runs = [str(write_run(synthetic_run(name, seed), base / "runs" / f"r{seed}"))
            for name, seed in (("spike-closed", 1), ("ramp-closed", 2), ("spike-closed", 3))]
    out = base / "model"
    train_bundle(runs, out, preset="tiny", seed=0)
    return runs, out
