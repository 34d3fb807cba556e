"""Does predictive autoscaling beat Kubernetes' HPA? compare-autoscale on the closed-loop scenarios.

For each scenario (default: the wait-bound scale-spike and scale-ramp), runs every seed in
the three modes (off, reactive HPA, predictive: the HPA led by the model's forecast),
paired by seed, and prints per run and per mode the seconds in SLO violation, p95/p99,
failures, worker-seconds and actions, the paired bootstrap intervals of
predictive - reactive and the verdict on the goal (predictive cuts violation seconds by
at least half at no more worker-seconds, the interval excluding no gain), as Markdown
rows for benchmarks/README.md. The machine's load average is sampled every 5 s meanwhile.

    python benchmarks/autoscale.py --model models/scale --seeds 5
    python benchmarks/autoscale.py --model models/scale --scenarios scale-spike --seeds 3 --duration 90
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from workflows.compare import (COLUMNS, PAIRED, cell_text, mode_means, paired, relative_text, run_comparison,
                               verdict)


class LoadSampler:
    """The 1-minute load average every `every_s` seconds, in a thread."""

    def __init__(self, every_s: float = 5.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        if not self.samples:
            return "no load samples"
        s = sorted(self.samples)
        return (f"1-min load average over the runs: median {s[len(s) // 2]:.2f}, min {s[0]:.2f}, "
                f"max {s[-1]:.2f} ({len(s)} samples, {os.cpu_count()} CPUs)")


def report(scenario: str, results: list[dict], plot: Path) -> None:
    print(f"\n### {scenario}\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in results + mode_means(results):
        print("| " + " | ".join(cell_text(r[c], c) for c in COLUMNS) + " |")
    print()
    for metric in PAIRED:
        d = paired(results, metric)
        if d is not None:
            print(f"- predictive - reactive, {metric}: {d['mean_diff']:+.1f} per run, 95 % paired bootstrap "
                  f"[{d['low']:+.1f}, {d['high']:+.1f}], totals {relative_text(d)}")
    print(f"- {verdict(results)}")
    print(f"- plot: {plot}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a --profile lab model (lab.py train)")
    parser.add_argument("--scenarios", default="scale-spike,scale-ramp")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--scale-metric", default="slo")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lab-autoscale-"))
    started = time.time()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with LoadSampler() as load:
        for scenario in args.scenarios.split(","):
            results, plot = run_comparison(scenario, args.model, out=out / scenario, seed=args.seed,
                                           seeds=args.seeds, duration_s=args.duration, metric=args.scale_metric)
            report(scenario, results, plot)
    print(f"\n{load.describe()}; wall {time.time() - started:.0f} s; run folders under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
