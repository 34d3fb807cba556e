"""Capacity of the served target: throughput and p50/p95/p99 per concurrency level.

Sweeps concurrency with wrk (a C load generator, so the client is not the bottleneck)
against `/` and `/stress`, with the Prometheus exporter on and off, on a real gunicorn
target on a free loopback port. Prints one table; the knee is where throughput stops
growing and p95 starts climbing.

    python benchmarks/target_capacity.py [--seconds 8] [--workers 2] [--threads 8]
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from target_app.server import Target, TargetConfig, free_port  # noqa: E402

LUA = """
done = function(summary, latency, requests)
  local out = string.format('{"requests": %d, "errors": %d, "seconds": %.3f, "p50": %.3f, "p95": %.3f, "p99": %.3f}',
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000)
  io.stderr:write("RESULT " .. out .. "\\n")
end
"""

LEVELS = {"/": [1, 2, 4, 8, 16, 32, 64], "/stress": [1, 4, 8, 16, 32, 64]}


def run_wrk(wrk: str, url: str, connections: int, seconds: int, script: Path) -> dict:
    proc = subprocess.run([wrk, "-t", str(min(connections, 2)), "-c", str(connections),
                           "-d", f"{seconds}s", "--timeout", "30s", "-s", str(script), url],
                          capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stderr.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"wrk gave no result: {proc.stdout} {proc.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    script = Path(tempfile.mkdtemp()) / "report.lua"
    script.write_text(LUA)
    print(f"target: gunicorn gthread, {args.workers} workers x {args.threads} threads; "
          f"{args.seconds} s per level; wrk")
    print(f"{'exporter':<9}{'endpoint':<9}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for metrics in (True, False):
        config = TargetConfig(port=free_port(), workers=args.workers, threads=args.threads,
                              metrics=metrics)
        with Target(config) as target:
            for path, levels in LEVELS.items():
                for conc in levels:
                    r = run_wrk(wrk, target.url + path, conc, args.seconds, script)
                    print(f"{'on' if metrics else 'off':<9}{path:<9}{conc:>5}"
                          f"{r['requests'] / r['seconds']:>9.1f}{r['p50']:>9.1f}{r['p95']:>9.1f}"
                          f"{r['p99']:>9.1f}{r['errors']:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
