"""How long a new gunicorn worker takes to serve: from TTIN to its first answer.

This is the lead a predictive scaler needs on this machine: a worker asked for later than
this before the SLO breaks comes too late. Starts the lab's target (2 x 4, as the
autoscaling scenarios), then N times: send TTIN to the master, time when the new worker
process appears (fork) and when a /healthz answer first carries its pid (serving, polled
every 10 ms on fresh connections), then TTOU back to 2 workers and wait until it is gone.
The load average is printed too: a busy machine boots slower.

    python benchmarks/worker_boot.py [--repeats 10] [--load-rps 0]
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import os
import signal
import statistics
import sys
import threading
import time

import requests

from target_app.server import Target, TargetConfig, free_port


def boot_once(target: Target, base: set[int], timeout_s: float = 30.0) -> tuple[float, float]:
    """Send TTIN; return (seconds to the new process, seconds to its first answer)."""
    t0 = time.monotonic()
    target.signal(signal.SIGTTIN)
    new = None
    while new is None:
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError("no new worker within the timeout")
        extra = set(target.worker_pids()) - base
        new = next(iter(extra), None)
        if new is None:
            time.sleep(0.002)
    forked = time.monotonic() - t0
    while True:
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"worker {new} did not answer within the timeout")
        try:
            r = requests.get(target.url + "/healthz", timeout=2, headers={"Connection": "close"})
            if r.ok and r.json().get("pid") == new:
                return forked, time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.01)


def back_to(target: Target, count: int, timeout_s: float = 30.0) -> None:
    target.signal(signal.SIGTTOU)
    deadline = time.monotonic() + timeout_s
    while len(target.worker_pids()) > count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)


def background_load(url: str, rps: float, stop: threading.Event) -> None:
    """Wait-bound /stress requests at about `rps` per second, each on its own thread."""
    while not stop.wait(1.0 / rps):
        threading.Thread(target=lambda: requests.get(url + "/stress", timeout=30), daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--load-rps", type=float, default=0.0, help="/stress requests per second meanwhile")
    args = parser.parse_args()
    target = Target(TargetConfig(port=free_port(), workers=2, threads=4)).start()
    stop = threading.Event()
    try:
        if args.load_rps > 0:
            threading.Thread(target=background_load, args=(target.url, args.load_rps, stop), daemon=True).start()
        base = set(target.worker_pids())
        forks, serves = [], []
        for _ in range(args.repeats):
            forked, served = boot_once(target, base)
            forks.append(forked)
            serves.append(served)
            back_to(target, len(base))
            base = set(target.worker_pids())
    finally:
        stop.set()
        target.stop()
    load = os.getloadavg()
    print(f"{args.repeats} boots of a 4-thread worker, load {args.load_rps:g} /stress per s, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    for name, xs in (("TTIN -> new process", forks), ("TTIN -> first answer", serves)):
        print(f"{name:>22}: median {statistics.median(xs):.2f} s, max {max(xs):.2f} s, "
              f"all {' '.join(f'{x:.2f}' for x in xs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
