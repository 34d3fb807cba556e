"""Online inference latency: what one monitor second costs, by path.

Trains the default forecaster architecture (window 30, one LSTM of 32 units, the median,
upper-quantile and warning heads) for one epoch on synthetic runs, then times, over the
same stream of rows:

- `predict_one(frame)`: a DataFrame of the last W + 30 rows per call (the derived inputs
  and the gap rule computed with pandas: the monitor's path before the ring buffer);
- `OnlineDerived.update(row)` + `OnlineWindow.push(row)` + `predict_filled`: the
  monitor's hot path now, the derived inputs and a NumPy ring buffer that applies the gap
  rule as rows arrive, then the compiled model call;
- the compiled model call alone, as the floor.

    .venv/bin/python benchmarks/inference.py --calls 1000

Prints p50 / p99 / max in ms per path; figures go to benchmarks/README.md.
"""

from __future__ import annotations

import _paths  # noqa: F401  (the repository on sys.path; this folder off it)

import argparse
import json
import os
import time

import numpy as np


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "calls": len(a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000, help="timed calls per path")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args()
    os.environ.setdefault("LAB_TF_THREADS", "2")

    from modeling.features import OnlineDerived
    from modeling.forecaster import LSTMForecaster
    from modeling.online import OnlineWindow
    from modeling.synthetic import synthetic_run

    import pandas as pd

    runs = [synthetic_run(s, seed=1) for s in ("spike-closed", "ramp-closed", "fault-latency-closed")]
    model = LSTMForecaster(epochs=1, validation_fraction=0.2, seed=0).fit(runs)
    W = int(model.params_["window"])
    columns = [c for c in model.columns_ if c != "missing"]
    # The timed stream: soak runs of several seeds end to end (a synthetic run is at most its scenario's length).
    stream = pd.concat([synthetic_run("soak-closed", seed=s) for s in range(1, 2 + args.calls // 250)],
                       ignore_index=True)
    rows = stream.to_dict("records")
    n = min(args.calls, len(rows) - 2 * (W + 30))

    # Warm up (trace the compiled call once) outside the timings.
    span = W + 30
    model.predict_one(stream.iloc[:span])
    old: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        model.predict_one(stream.iloc[i:i + span])
        old.append((time.perf_counter() - t) * 1000)

    derived = OnlineDerived()
    online = OnlineWindow(columns, W, int(model.params_["max_gap_s"]))
    for row in rows[:span]:
        online.push(derived.update(row))
    new: list[float] = []
    for row in rows[span:span + n]:
        t = time.perf_counter()
        online.push(derived.update(row))
        model.predict_filled(online.values())
        new.append((time.perf_counter() - t) * 1000)

    serve = model._serving_fn()
    x = {"window": np.zeros((1, W, len(model.columns_)), dtype="float32")}
    floor: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        serve(x)
        floor.append((time.perf_counter() - t) * 1000)

    out = {"window": W, "features": len(model.columns_), "horizon": int(model.params_["horizon"]),
           "heads": sorted(model.model_.output_names) if hasattr(model.model_, "output_names") else None,
           "predict_one_dataframe": _percentiles(old), "ring_buffer_predict_filled": _percentiles(new),
           "compiled_call_only": _percentiles(floor), "cpus": os.cpu_count(),
           "load_average": [round(v, 2) for v in os.getloadavg()]}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"window {W} s x {out['features']} features, horizon {out['horizon']} s; "
          f"{n} calls per path; load average {out['load_average']}")
    for name in ("predict_one_dataframe", "ring_buffer_predict_filled", "compiled_call_only"):
        r = out[name]
        print(f"{name:28s} p50 {r['p50_ms']:7.3f} ms   p99 {r['p99_ms']:7.3f} ms   max {r['max_ms']:7.3f} ms")


if __name__ == "__main__":
    main()
