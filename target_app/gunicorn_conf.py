"""Gunicorn hooks for the target (settings come from the command line the launcher builds)."""

import os
import shutil
import signal


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
    limit = os.environ.get("LAB_MAX_WORKER_RSS_MB")
    if limit:
        # In the master, like a container runtime's OOM killer outside the process it kills.
        from target_app.incidents import IncidentLog
        from target_app.watchdog import RssWatchdog

        incidents = IncidentLog(os.environ["LAB_STATE_DIR"], os.environ.get("LAB_INCIDENT_LOG"))
        RssWatchdog(lambda: list(server.WORKERS), float(limit), incidents,
                    log=server.log.warning).start()


def post_fork(server, worker):
    # Seeds per worker: the same seed and worker number draw the same numbers.
    os.environ["LAB_WORKER_INDEX"] = str(worker.age)
    # The pool a threads fault exhausts: gunicorn's own setting, whoever started it.
    os.environ["LAB_THREADS"] = str(server.cfg.threads)


def post_worker_init(worker):
    from target_app.faults import release_stuck_threads, start_watchers

    start_watchers()   # faults apply to this worker from its boot, traffic or not
    # Stuck threads (threads fault) would hold a stopping worker until its graceful timeout
    # and the interpreter's exit forever: release them when the worker is told to stop.
    previous = signal.getsignal(signal.SIGTERM)

    def _stop(signum, frame):
        release_stuck_threads()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, _stop)
    signal.siginterrupt(signal.SIGTERM, False)   # signal() reset what gunicorn had set


def worker_int(worker):
    from target_app.faults import release_stuck_threads

    release_stuck_threads()


def child_exit(server, worker):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
