"""Gunicorn hooks for the target (settings come from the command line the launcher builds)."""

import os
import shutil


def on_starting(server):
    # Stale files from a previous run would be summed into this one's metrics.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def when_ready(server):
    port = os.environ.get("LAB_METRICS_PORT")
    if port:
        from target_app.metrics import start_metrics_server

        start_metrics_server(int(port), os.environ.get("LAB_METRICS_HOST", "127.0.0.1"),
                             os.environ["LAB_STATE_DIR"])


def post_fork(server, worker):
    # Seeds per worker: the same seed and worker number draw the same numbers.
    os.environ["LAB_WORKER_INDEX"] = str(worker.age)


def child_exit(server, worker):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
