"""The collector's cost and timing, and what the load generator achieves next to wrk.

Runs a 60 s (default) scenario at full load on cheap reads against the embedded target
through the real harness, then reports the collector's tick jitter (how late each 1 Hz
deadline fired, p50/p99) and its own CPU use, and compares Locust's achieved throughput
with wrk's against the same target and endpoint in the same script.

    python benchmarks/collector.py [--seconds 60] [--users 40] [--wrk-seconds 20]
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

from loadtests.harness import RunOptions, run_scenario  # noqa: E402
from target_app.server import Target, TargetConfig, free_port  # noqa: E402

SCENARIO = """
name = "bench-collector"
description = "full load on cheap reads, for the collector benchmark"
duration_s = {seconds}
seed = 1

[load]
wait_min_s = 0
wait_max_s = 0
mix = {{ product = 1 }}

[[stages]]
name = "full"
until_s = {seconds}
users = {users}
spawn_rate = {users}
"""


def wrk_rps(url: str, connections: int, seconds: int) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    proc = subprocess.run([wrk, "-t", "2", "-c", str(connections), "-d", f"{seconds}s", url],
                          capture_output=True, text=True, timeout=seconds + 60)
    for line in proc.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--wrk-seconds", type=int, default=20)
    parser.add_argument("--locust-workers", type=int, default=0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    scenario = tmp / "bench.toml"
    scenario.write_text(SCENARIO.format(seconds=args.seconds, users=args.users))

    config = TargetConfig(port=free_port(), workers=2, threads=8)
    with Target(config) as target:
        result = run_scenario(RunOptions(scenario=str(scenario), out=tmp / "runs", host=target.url,
                                         admin_token=config.token, workers=args.locust_workers))
        collector = json.loads((result.run_dir / "collector.json").read_text())
        locust_rps = result.summary["requests"] / args.seconds
        wrk = wrk_rps(target.url + "/products/1", args.users, args.wrk_seconds)

    jitter = collector["tick_jitter_ms"]
    print(f"collector over {args.seconds} s at full load ({args.users} users, no wait, /products/[id]):")
    print(f"  tick jitter  p50 {jitter['p50']:.2f} ms  p99 {jitter['p99']:.2f} ms  max {jitter['max']:.2f} ms")
    print(f"  own CPU      {collector['cpu_s']:.2f} s in {collector['wall_s']:.0f} s "
          f"= {100 * collector['cpu_s'] / collector['wall_s']:.1f}% of one core")
    print(f"  rows         {collector['rows']} of {args.seconds}; warnings: {collector['warnings'] or 'none'}")
    print("throughput against the same target (2 workers x 8 threads), same endpoint:")
    print(f"  Locust ({'local runner' if not args.locust_workers else f'{args.locust_workers} workers'})"
          f"  {locust_rps:8.1f} req/s  (p50 {result.summary.get('p50_ms')} ms, p95 {result.summary.get('p95_ms')} ms)")
    if wrk is None:
        print("  wrk            not installed (apt-get install wrk)")
    else:
        print(f"  wrk {args.users} conns   {wrk:8.1f} req/s  -> Locust reaches {100 * locust_rps / wrk:.0f}% of wrk")
    loadgen = [w for w in result.meta["warnings"] if w.startswith("loadgen_saturated")]
    if loadgen:
        print(f"  note: {loadgen[0]}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
