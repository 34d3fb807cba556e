"""Does predictive autoscaling beat reactive? The compare-autoscale table for spike and ramp.

Trains (or reuses) a lab-profile model on a dataset whose spike and ramp runs are held
out, then runs each scenario three times on the same seed (no autoscaling, reactive
HPA-like, predictive) and prints seconds in SLO violation, p95/p99, failures and
worker-seconds. The goal: predictive cuts violation seconds by at least half against
reactive with no more worker-seconds. The verdict is printed either way.

    python benchmarks/autoscale.py --model models/dev [--duration 120] [--seed 3]
    python benchmarks/autoscale.py --dataset datasets/dev   # trains models/bench-autoscale first
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflows.compare import COLUMNS, compare_autoscale, verdict  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--scenarios", default="spike,ramp")
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    model = args.model
    if model is None:
        if args.dataset is None:
            parser.error("give --model or --dataset")
        from modeling.pipeline import train_bundle

        model = Path("models/bench-autoscale")
        train_bundle([str(args.dataset)], model, holdout=["spike", "ramp"], seed=0)
    out = Path(tempfile.mkdtemp(prefix="lab-autoscale-"))
    for scenario in args.scenarios.split(","):
        results = compare_autoscale(scenario, model, out=out / scenario, seed=args.seed,
                                    duration_s=args.duration)
        print(f"\n{scenario} (seed {args.seed}{f', scaled to {args.duration} s' if args.duration else ''}):")
        print("".join(f"{c:>16}" for c in COLUMNS))
        for r in results:
            print("".join(f"{(f'{r[c]:.0f}' if c == 'worker_seconds' else str(r[c])):>16}" for c in COLUMNS))
        print(verdict(results), flush=True)
    print(f"\nrun folders under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
