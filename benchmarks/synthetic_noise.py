"""Does the synthetic generator's p95 scatter like a recorded one? (issue 14)

For each steady stage of a recorded open-model run (default: course/data/signal's noise run,
30 then 90 requests/s far below capacity), the synthetic generator holds a closed loop at the
same rate with the same request mix and SLO window, for several seeds; the script prints the
sd of log(p95) per second and pooled over the window, and the median p95, for the recording,
for the generator (median and range over the seeds), and the noise the generator drew before
issue 14 (sd 0.06 + 0.6/sqrt(rps) on the per-second p95, no pooled column).

    python benchmarks/synthetic_noise.py
    python benchmarks/synthetic_noise.py --run datasets/x/runs/noise-s1-r1 --seeds 10
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from contract.runfolder import read_run
from loadtests.harness import other_cpu
from modeling.synthetic import TargetModel, send_rate, synthetic_run

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "course" / "data" / "signal" / "runs" / "noise-s5-r1"
SKIP_S = 10          # seconds of each stage left out: the ramp and the first full window


def scatter(frame: pd.DataFrame) -> dict[str, float]:
    """sd of log(p95) per second and pooled, and the median per-second p95 (ms)."""
    return {"per_second": float(np.log(frame["latency_p95_ms"]).std()),
            "pooled": float(np.log(frame["latency_p95_window_ms"]).std()),
            "median_p95_ms": float(frame["latency_p95_ms"].median())}


def steady_stages(run) -> list[tuple[str, pd.DataFrame, float]]:
    """Each stage of the run past its first SKIP_S seconds, with its median rate."""
    out = []
    for name, rows in run.frame.groupby("phase", sort=False):
        rows = rows.iloc[SKIP_S:]
        if len(rows) >= 20:
            out.append((str(name), rows, float(rows["rps"].median())))
    return out


def simulate(run, rate: float, seconds: int, seed: int) -> pd.DataFrame:
    """The generator at `rate` with the run's mix and SLO window, far below capacity as the recording was."""
    sc = run.meta["scenario"]
    users = int(round(rate / send_rate(TargetModel().think_s)))     # the closed loop's users for `rate`
    spec = {"name": f"{sc['name']}-closed", "duration_s": seconds + 20, "slo": sc["slo"],
            "load": {"mix": sc["load"]["mix"]},
            "stages": [{"name": "hold", "until_s": seconds + 20, "users": users, "spawn_rate": 1000}]}
    frame = synthetic_run(spec, seed, model=TargetModel(capacity_rps=max(150.0, 1.6 * rate), jitter=0),
                          gaps=False)
    return frame.iloc[20:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=RECORDED, help="a recorded open-model run with steady stages")
    parser.add_argument("--seeds", type=int, default=5, help="synthetic seeds per stage")
    args = parser.parse_args()
    run = read_run(args.run)
    busy = other_cpu(run.frame, (run.meta.get("host") or {}).get("cpu_logical"))
    print(f"recorded: {args.run} (window {run.meta['scenario']['slo']['window_s']} s); CPU of other processes "
          f"while it recorded: median {busy.get('other_cpu_pct_median', 'n/a')} % of a core")
    print("| stage | rate | source | sd log p95 per second | sd log p95 pooled | median p95 |")
    print("|---|---|---|---|---|---|")
    for name, rows, rate in steady_stages(run):
        real = scatter(rows)
        print(f"| {name} | {rate:.0f}/s | recorded | {real['per_second']:.3f} | {real['pooled']:.3f} | "
              f"{real['median_p95_ms']:.0f} ms |")
        syn = [scatter(simulate(run, rate, len(rows), seed)) for seed in range(1, args.seeds + 1)]
        cell = {k: f"{np.median([s[k] for s in syn]):.3f} ({min(s[k] for s in syn):.3f}-{max(s[k] for s in syn):.3f})"
                for k in ("per_second", "pooled")}
        level = np.median([s["median_p95_ms"] for s in syn])
        print(f"| {name} | {rate:.0f}/s | synthetic, {args.seeds} seeds: median (range) | {cell['per_second']} | "
              f"{cell['pooled']} | {level:.0f} ms |")
        print(f"| {name} | {rate:.0f}/s | synthetic before issue 14 | {0.06 + 0.6 / math.sqrt(rate):.3f} | - | - |")


if __name__ == "__main__":
    main()
