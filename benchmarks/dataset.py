"""Cost of building `dataset.parquet`: wall time and peak memory per hour of data.

Writes N synthetic one-hour run folders (3600 rows, every column, like run-scenario's),
then builds the dataset files (Parquet, card, manifest) in a fresh child process per N,
so each peak RSS is that build's alone. Prints one table and the cost per hour.

    python benchmarks/dataset.py [--runs 1 2 4 8] [--rows 3600] [--keep DIR]
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def child(dataset_dir: str) -> None:
    """Build one dataset and print its timings and memory as one JSON line."""
    import pandas  # noqa: F401  (imports count in the baseline, not in the build)
    import pyarrow.parquet  # noqa: F401

    from collector import dataset

    baseline = _peak_rss_mb()
    parquet_s: list[float] = []
    write = dataset.write_runs_parquet

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            parquet_s.append(time.perf_counter() - start)

    dataset.write_runs_parquet = timed  # time the Parquet part of the build separately
    start = time.perf_counter()
    build = dataset.build_dataset_files(dataset_dir, extra_meta={"command": "benchmarks/dataset.py"})
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "parquet_s": parquet_s[0], "baseline_mb": baseline,
                      "peak_mb": _peak_rss_mb(), "rows": build.rows,
                      "parquet_mb": build.parquet.stat().st_size / 2**20}))


def make_runs(pool: Path, count: int, rows: int) -> list[Path]:
    """Write count synthetic runs into pool (reusing those already there)."""
    from runfactory import T0, make_run

    scenarios = ["spike", "steady", "ramp", "faults"]
    made = sorted(p for p in pool.iterdir() if p.is_dir()) if pool.exists() else []
    for i in range(len(made), count):
        faults = [{"kind": k, "start_s": (j + 1) * rows // 5, "duration_s": rows // 20, "intensity": 0.6}
                  for j, k in enumerate(("latency", "errors", "cpu", "memory"))]
        made.append(make_run(pool, rows, scenarios[i % 4], i, run_id=f"run-{i:03d}",
                             t0=T0 + i * (rows + 60), faults=faults, gaps=[rows // 3, rows // 3 + 1]))
    return made[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4, 8], help="run counts to build")
    parser.add_argument("--rows", type=int, default=3600, help="rows (seconds) per run")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0

    work = args.keep or Path(tempfile.mkdtemp(prefix="lab-bench-dataset-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        pool = work / "pool"
        started = time.perf_counter()
        runs = make_runs(pool, max(args.runs), args.rows)
        csv_mb = sum((r / "metrics.csv").stat().st_size for r in runs) / len(runs) / 2**20
        print(f"{len(runs)} synthetic runs of {args.rows} rows written in "
              f"{time.perf_counter() - started:.1f} s ({csv_mb:.2f} MiB of metrics.csv each)\n")
        hours_per_run = args.rows / 3600
        print(f"{'runs':>4} {'hours':>6} {'rows':>8} {'build s':>8} {'parquet s':>9} {'s/hour':>7} "
              f"{'peak MiB':>8} {'+MiB':>6} {'parquet MiB':>11} {'MiB/hour':>8}")
        results = []
        for n in sorted(args.runs):
            ds = work / f"ds-{n}"
            shutil.rmtree(ds, ignore_errors=True)
            (ds / "runs").mkdir(parents=True)
            for run in runs[:n]:
                (ds / "runs" / run.name).symlink_to(run.resolve(), target_is_directory=True)
            proc = subprocess.run([sys.executable, __file__, "--child", str(ds)], capture_output=True,
                                  text=True, check=False)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            hours = n * hours_per_run
            results.append({"runs": n, "hours": hours, **r})
            print(f"{n:>4} {hours:>6.2f} {r['rows']:>8} {r['wall_s']:>8.2f} {r['parquet_s']:>9.2f} "
                  f"{r['wall_s'] / hours:>7.2f} {r['peak_mb']:>8.0f} {r['peak_mb'] - r['baseline_mb']:>6.0f} "
                  f"{r['parquet_mb']:>11.2f} {r['parquet_mb'] / hours:>8.2f}")
        if len(results) > 1:
            # The slope between the smallest and largest N removes the fixed cost.
            a, b = results[0], results[-1]
            per_hour = (b["wall_s"] - a["wall_s"]) / (b["hours"] - a["hours"])
            mem_per_hour = (b["peak_mb"] - a["peak_mb"]) / (b["hours"] - a["hours"])
            print(f"\nmarginal cost: {per_hour:.2f} s and {mem_per_hour:+.1f} MiB peak RSS per extra hour "
                  f"of data; fixed cost {a['wall_s'] - per_hour * a['hours']:.2f} s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
