"""Scale-out on one machine: the dataset matrix recorded as 1 shard and as 2 shards at once,
and the cost of `dataset merge` per hour of data.

1. Recording: the same matrix (--scenarios, --seeds, --duration) through `lab.py
   generate-dataset`, first as one process, then as `--shard 0/2` and `--shard 1/2` started
   together, then merged. Prints wall time, data seconds per wall second, and what the
   target measured (mean p95 latency, requests per second, share of SLO-violating seconds): two shards on one
   machine overlap their start-ups but put two targets and two load generators on the same
   cores, so the data is no longer the data of one run at a time.
2. Merge: synthetic shards (the test run factory: every column, one run folder per
   --merge-rows seconds) of --merge-hours hours in 2 shards, merged in a child process; wall
   time per hour of data.

    python benchmarks/scaleout.py [--scenarios smoke] [--seeds 1,2,3,4] [--duration 20]
                                  [--merge-hours 1 4] [--merge-rows 900] [--skip-recording]
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/signal.py would shadow the standard library's signal module (subprocess imports it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402



def lab(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "lab.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(proc.args[1:4])} failed ({proc.returncode}): {err.strip()[-500:]}")


def measured(dataset: Path) -> dict:
    import pandas as pd

    frame = pd.read_parquet(dataset / "dataset.parquet", columns=["run_id", "latency_p95_ms", "rps", "slo_violation"])
    warnings = sum(r.get("warnings", 0) for r in json.loads((dataset / "manifest.json").read_text())["runs"])
    return {"rows": len(frame), "p95_ms": round(float(frame["latency_p95_ms"].mean()), 1),
            "rps": round(float(frame["rps"].mean()), 2), "slo_share": round(float(frame["slo_violation"].mean()), 3),
            "run_warnings": warnings}


def recording(args, work: Path) -> list[dict]:
    matrix = ["--scenarios", args.scenarios, "--seeds", args.seeds, "--duration", str(args.duration), "--quiet"]
    results = []
    start = time.perf_counter()
    finish(lab("generate-dataset", "--out", str(work / "one"), *matrix))
    wall = time.perf_counter() - start
    results.append({"how": "1 shard", "wall_s": wall, **measured(work / "one")})

    start = time.perf_counter()
    shards = [lab("generate-dataset", "--out", str(work / f"shard-{i}"), "--shard", f"{i}/2", *matrix)
              for i in range(2)]
    for proc in shards:
        finish(proc)
    recorded = time.perf_counter() - start
    merge_start = time.perf_counter()
    finish(lab("dataset", "merge", str(work / "shard-0"), str(work / "shard-1"), "--out", str(work / "merged")))
    merge_s = time.perf_counter() - merge_start
    results.append({"how": "2 shards at once", "wall_s": recorded, "merge_s": merge_s, **measured(work / "merged")})
    for r in results:
        r["data_s_per_wall_s"] = round(r["rows"] / r["wall_s"], 3)
        r["wall_s"] = round(r["wall_s"], 1)
    return results


def merge_child(parts: list[str], out: str) -> None:
    from collector.dataset import merge_datasets

    start = time.perf_counter()
    build = merge_datasets([Path(p) for p in parts], Path(out))
    print(json.dumps({"merge_s": time.perf_counter() - start, "rows": build.rows}))


def merge_cost(args, work: Path) -> list[dict]:
    import runfactory
    from workflows import matrix
    from workflows.matrix import plan_matrix, shard_plan

    results = []
    for hours in args.merge_hours:
        runs = max(2, round(hours * 3600 / args.merge_rows))
        plan = plan_matrix(["smoke"], list(range(1, runs + 1)), 1)
        folder = work / f"merge-{hours}h"
        matrix.run_scenario = lambda opts, on_row=None: runfactory.make_run(
            opts.out, args.merge_rows, "smoke", opts.seed, run_id=opts.run_id)
        parts = []
        for i in range(2):
            part = folder / f"shard-{i}"
            matrix.generate_dataset(part, shard_plan(plan, (i, 2)), command="benchmark")
            parts.append(str(part))
        done = subprocess.run([sys.executable, __file__, "--merge-child", str(folder / "merged"), *parts],
                              capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        data_h = figures["rows"] / 3600
        results.append({"hours": round(data_h, 2), "runs": runs, "merge_s": round(figures["merge_s"], 2),
                        "merge_s_per_hour": round(figures["merge_s"] / data_h, 2)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="smoke")
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--merge-hours", type=float, nargs="+", default=[1, 4])
    parser.add_argument("--merge-rows", type=int, default=900)
    parser.add_argument("--skip-recording", action="store_true")
    parser.add_argument("--merge-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.merge_child:
        return merge_child(args.merge_child[1:], args.merge_child[0])
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="lab-scaleout-") as tmp:
        work = Path(tmp)
        if not args.skip_recording:
            print(f"\nrecording {args.scenarios} x seeds {args.seeds}, {args.duration} s each")
            print(f"{'how':<18} {'wall s':>7} {'merge s':>8} {'data s/wall s':>14} {'rows':>5} "
                  f"{'mean p95 ms':>12} {'mean rps':>9} {'SLO share':>10} {'run warnings':>13}")
            for r in recording(args, work):
                print(f"{r['how']:<18} {r['wall_s']:>7} {r.get('merge_s', 0):>8.2f} {r['data_s_per_wall_s']:>14} "
                      f"{r['rows']:>5} {r['p95_ms']:>12} {r['rps']:>9} {r['slo_share']:>10} {r['run_warnings']:>13}")
        print(f"\nmerge of 2 synthetic shards ({args.merge_rows}-row runs)")
        print(f"{'hours':>6} {'runs':>5} {'merge s':>8} {'s per hour of data':>19}")
        for r in merge_cost(args, work):
            print(f"{r['hours']:>6} {r['runs']:>5} {r['merge_s']:>8} {r['merge_s_per_hour']:>19}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
