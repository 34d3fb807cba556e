"""Is there a signal worth forecasting? Noise, coordinated omission, throughput, achievable lead, repeatability.

Five measurements on this machine, each through the real harness (embedded gunicorn target,
Locust subprocesses, the collector), printed as tables; `benchmarks/README.md` records them.

1. noise: steady open-model load at three rates below capacity; sd(log) of the per-second
   `latency_p95_ms` against the pooled `latency_p95_window_ms` (10 s), and 20 s pooling from
   the raw samples; for the lab's open mix and for the guide's mix with /stress (1 in 13).
2. omission: the same 5 s stall (every target process SIGSTOPped) under the closed and the
   open model at about the same offered rate: max and p99 latency seen against the stall.
3. throughput: the achieved rate against the plan below capacity, the open model's best
   against wrk on the same target and endpoint, and the collector's tick jitter at full load.
4. lead: for every SLO-violation episode of the built-in open scenarios, the seconds from
   the first observable precursor (plan change, fault start, incident, queue-time rise) to
   the violation.
5. repeat: the same scenario and seed twice; per-phase means of rps, pooled p95 and CPU.

    python benchmarks/signal.py                       # everything (about 45 min on two cores)
    python benchmarks/signal.py --parts noise,repeat  # some of it
    python benchmarks/signal.py --parts lead --lead-runs datasets/bench   # lead on recorded runs
"""

from __future__ import annotations

import _paths  # noqa: F401,I001  (first: see benchmarks/_paths.py)

import argparse
import json
import sys
from pathlib import Path
import math
import os
import shutil
import signal as signals
import subprocess
import tempfile
import threading
import time

import numpy as np
import pandas as pd

from contract.runfolder import list_runs, read_run, read_samples  # noqa: E402
from contract.scenario import builtin_scenarios  # noqa: E402
from loadtests.harness import RunOptions, cpu_placement, run_scenario  # noqa: E402
from target_app.server import Target, TargetConfig, free_port  # noqa: E402

OPEN_MIX = "browse = 5\nproduct = 4\nsearch = 2\ncheckout = 1"
GUIDE_MIX = "browse = 5\nproduct = 4\nsearch = 2\ncheckout = 1\nstress = 1"
SETTLE_S = 15          # seconds after a stage change left out of the steady-state noise


# ---------------------------------------------------------------- helpers


def record(toml: str, tmp: Path, name: str, **opts):
    path = tmp / f"{name}.toml"
    path.write_text(toml)
    return run_scenario(RunOptions(scenario=str(path), out=tmp / "runs", **opts))


def sd_log(values) -> float:
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.std(np.log(v), ddof=1)) if v.size > 2 else math.nan


def pooled_p95(samples: pd.DataFrame, t0: float, seconds: range, window: int) -> list[float]:
    """p95 of every request completed in the trailing `window` seconds, for each second."""
    ts, lat = samples["ts"].to_numpy(), samples["response_time_ms"].to_numpy()
    out = []
    for s in seconds:
        mask = (ts >= t0 + s - window + 1) & (ts < t0 + s + 1)
        out.append(float(np.percentile(lat[mask], 95)) if mask.any() else math.nan)
    return out


def run_t0(run) -> float:
    return pd.Timestamp(run.meta["t0"]).timestamp()


def episodes(flags: np.ndarray, min_gap: int = 3) -> list[tuple[int, int]]:
    """Maximal runs of 1s, merging runs separated by fewer than `min_gap` zero seconds."""
    spans, start, last = [], None, None
    for i, f in enumerate(flags):
        if f:
            if start is None or i - last > min_gap:
                if start is not None:
                    spans.append((start, last))
                start = i
            last = i
    if start is not None:
        spans.append((start, last))
    return spans


# ---------------------------------------------------------------- 1. noise


def noise_scenario(rates: list[float], stage_s: int, mix: str) -> str:
    stages = "".join(f'\n[[stages]]\nname = "r{int(r)}"\nuntil_s = {stage_s * (i + 1)}\nrate = {r:g}\n'
                     for i, r in enumerate(rates))
    return (f'name = "noise"\nduration_s = {stage_s * len(rates)}\nseed = 11\n'
            f'[slo]\nlatency_p95_ms = 500\nwindow_s = 10\n[load.mix]\n{mix}\n{stages}')


def part_noise(tmp: Path, args) -> None:
    rates = [args.capacity * f for f in (0.3, 0.5, 0.7)]
    print(f"\n1. steady-state noise: open model, stages at {', '.join(f'{r:.0f}' for r in rates)} req/s "
          f"(30/50/70% of ~{args.capacity:.0f} req/s capacity), {args.stage_seconds} s each, "
          f"first {SETTLE_S} s of a stage left out; sd of log(p95)")
    print(f"   {'mix':<22}{'rate':>6}{'p95 1 s':>10}{'p95 10 s':>10}{'p95 20 s':>10}{'median 10 s':>13}")
    for label, mix in (("open (no /stress)", OPEN_MIX), ("guide (1/13 /stress)", GUIDE_MIX)):
        result = record(noise_scenario(rates, args.stage_seconds, mix), tmp, f"noise-{len(label)}")
        run = read_run(result.run_dir)
        frame, samples, t0 = run.frame, read_samples(result.run_dir), run_t0(run)
        for i, rate in enumerate(rates):
            secs = range(i * args.stage_seconds + SETTLE_S, (i + 1) * args.stage_seconds)
            part = frame[frame["elapsed_s"].isin(list(secs))]
            p20 = pooled_p95(samples, t0, secs, 20)
            print(f"   {label:<22}{rate:>6.0f}{sd_log(part['latency_p95_ms']):>10.2f}"
                  f"{sd_log(part['latency_p95_window_ms']):>10.2f}{sd_log(p20):>10.2f}"
                  f"{part['latency_p95_window_ms'].median():>11.0f} ms")
    print("   goal for the pooled (10 s) p95 at steady load: sd(log) <= 0.15")


# ---------------------------------------------------------------- 2. coordinated omission


class Stall:
    """A row hook that freezes every target process for `seconds` once the run reaches `at_s`."""

    name, columns = "stall", ()

    def __init__(self, at_s: int, seconds: float):
        self.at_s, self.seconds = at_s, seconds
        self.pid = None
        self.window: tuple[float, float] | None = None

    def start(self, target_pid, run_dir) -> dict:
        self.pid = target_pid
        return {"at_s": self.at_s, "seconds": self.seconds}

    def on_row(self, row):
        # Rows arrive about two seconds after their second: schedule the stall from there.
        if self.window is None and row["elapsed_s"] >= self.at_s - 3:
            self.window = (0.0, 0.0)
            threading.Thread(target=self._stall, daemon=True).start()
        return None

    def _stall(self) -> None:
        import psutil

        procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        began = time.time()
        for p in procs:
            p.send_signal(signals.SIGSTOP)
        time.sleep(self.seconds)
        for p in procs:
            p.send_signal(signals.SIGCONT)
        self.window = (began, time.time())

    def close(self) -> dict:
        return {"window": self.window}


def part_omission(tmp: Path, args) -> None:
    rate, stall_s, at_s, length = 40, 5.0, 20, 45
    closed = (f'name = "stall-closed"\nduration_s = {length}\nseed = 5\n[load]\nwait_min_s = 0.3\n'
              f'wait_max_s = 0.7\n[load.mix]\n{OPEN_MIX}\n[[stages]]\nname = "steady"\nuntil_s = {length}\n'
              f'users = {int(rate * 0.55)}\nspawn_rate = 50\n')
    opened = (f'name = "stall-open"\nduration_s = {length}\nseed = 5\n[load.mix]\n{OPEN_MIX}\n'
              f'[[stages]]\nname = "steady"\nuntil_s = {length}\nrate = {rate}\n')
    print(f"\n2. coordinated omission: every target process stopped for {stall_s:.0f} s at ~{at_s} s, "
          f"about {rate} req/s offered")
    print(f"   {'model':<8}{'requests':>9}{'due in stall':>14}{'>= 1 s':>8}{'max ms':>9}{'p99 ms':>9}"
          f"{'p99.9 ms':>10}{'max / stall':>13}")
    for label, toml in (("closed", closed), ("open", opened)):
        path = tmp / f"{label}.toml"
        path.write_text(toml)
        hook = Stall(at_s, stall_s)
        result = run_scenario(RunOptions(scenario=str(path), out=tmp / "runs"), hooks=[hook])
        samples = read_samples(result.run_dir)
        began, ended = hook.window or (math.nan, math.nan)
        lat = samples["response_time_ms"].to_numpy()
        # Requests that were due during the stall (by their intended send).
        due = samples[(samples["intended_ts"] >= began) & (samples["intended_ts"] < ended)]
        slow = float((lat >= 1000).mean())
        print(f"   {label:<8}{len(samples):>9}{len(due):>14}{100 * slow:>7.1f}%{lat.max():>9.0f}"
              f"{np.percentile(lat, 99):>9.0f}{np.percentile(lat, 99.9):>10.0f}{lat.max() / (1000 * stall_s):>13.2f}")
    print("   closed: the users wait in the stall and send nothing, so few samples see it; open: every")
    print("   arrival due in the stall is timed from its intended send, and the backlog after it too")


# ---------------------------------------------------------------- 3. throughput and jitter


def wrk_rps(url: str, connections: int, seconds: int, cpus) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    cmd = [wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    for line in proc.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def part_throughput(tmp: Path, args) -> None:
    loadgen_cpus, target_cpus = cpu_placement()
    print(f"\n3. throughput: target on CPUs {target_cpus}, load generators on {loadgen_cpus}")
    before = os.sched_getaffinity(0)
    config = TargetConfig(port=free_port(), workers=2, threads=8)
    if target_cpus:
        os.sched_setaffinity(0, target_cpus)      # gunicorn inherits this ...
    target = Target(config).start()
    if loadgen_cpus:
        os.sched_setaffinity(0, loadgen_cpus)     # ... and Locust and the collector this
    try:
        wrk = wrk_rps(target.url + "/products/1", 16, args.wrk_seconds, loadgen_cpus)
        rows = []
        for fraction in args.rate_fractions:
            plan = (wrk or 800) * fraction
            toml = (f'name = "rate"\nduration_s = 30\nseed = 3\n[load]\nmax_in_flight = {args.max_in_flight}\n'
                    f'[load.mix]\nproduct = 1\n[[stages]]\nname = "full"\nuntil_s = 30\nrate = {plan:.0f}\n')
            result = record(toml, tmp, f"rate-{fraction}", host=target.url, admin_token=config.token)
            frame = read_run(result.run_dir).frame.iloc[5:]
            collector = json.loads((result.run_dir / "collector.json").read_text())
            rows.append((plan, frame["arrivals"].mean(), frame["rps"].mean(), frame["dropped"].sum(),
                         collector["tick_jitter_ms"], result.meta["warnings"]))
    finally:
        target.stop()
        os.sched_setaffinity(0, before)
    print(f"   wrk (1 thread, 16 connections, /products/1): "
          f"{'not installed' if wrk is None else f'{wrk:.0f} req/s'}")
    print(f"   {'planned':>8}{'sent/s':>9}{'done/s':>9}{'dropped':>9}{'vs plan':>9}{'vs wrk':>8}"
          f"{'jitter p50':>12}{'p99':>8}{'max':>8}")
    for plan, sent, done, dropped, jitter, warnings in rows:
        vs_wrk = f"{done / wrk:.2f}" if wrk else "-"
        print(f"   {plan:>8.0f}{sent:>9.1f}{done:>9.1f}{dropped:>9.0f}{done / plan:>9.2f}{vs_wrk:>8}"
              f"{jitter['p50']:>10.1f}ms{jitter['p99']:>6.1f}ms{jitter['max']:>6.1f}ms")
        for w in warnings:
            print(f"      warning: {w[:110]}")
    print("   goals: the lab's best >= 0.9 x wrk; collector tick jitter p99 < 20 ms at full load")


# ---------------------------------------------------------------- 4. achievable lead


def precursors(frame: pd.DataFrame, onset: int, since: int) -> dict[str, int | None]:
    """The observable precursors of an SLO episode starting at `onset`, searched back to `since`.

    - plan change: the start of the last change of the plan before the onset; a ramp is one
      change from its first second (each second of a ramp differs from the one before);
    - fault start: the last second a fault began, and incident: the first incident, in the span;
    - queue rise: the first second after the cause whose queue time (or backlog) is three
      times its level in the 15 s before the cause.
    The cause is the later of the plan change and the fault start; the achievable lead is
    onset - cause.
    """
    f = frame.set_index("elapsed_s")
    window = f.loc[since:onset]
    plan = window["planned_rate"].where(window["planned_rate"].notna(), window.get("planned_users"))
    changing = (plan.diff().fillna(0) != 0).to_numpy()
    seconds = window.index.to_numpy()
    change = None
    if changing.any():
        i = int(np.flatnonzero(changing)[-1])
        while i > 0 and changing[i - 1]:
            i -= 1                                   # back to the first second of that ramp
        change = int(seconds[i])
    faults = window.index[(window["fault"] != "none") & (window["fault"].shift(fill_value="none") == "none")].tolist()
    incidents = window.index[window["incident"].fillna("none") != "none"].tolist()
    fault = max(faults, default=None)
    cause = max([c for c in (change, fault) if c is not None], default=None)
    found = {"plan_change": change, "fault_start": fault, "incident": min(incidents, default=None),
             "queue_rise": None, "cause": cause}
    base = f.loc[max(0, (cause or since) - 15):(cause or since) - 1]
    for column, floor in (("srv_queue_p95_ms", 20.0), ("outstanding", 5.0)):
        if column not in base or not base[column].notna().any():
            continue
        ref = float(base[column].median())
        rising = window.loc[(cause or since):onset, column]
        above = rising.index[rising > max(3 * ref, ref + floor)]
        if len(above):
            first = int(above[0])
            found["queue_rise"] = first if found["queue_rise"] is None else min(first, found["queue_rise"])
    return found


def part_lead(tmp: Path, args) -> None:
    if args.lead_runs:
        runs = [read_run(p) for p in list_runs(args.lead_runs)]
    else:
        runs = []
        for sc in builtin_scenarios():
            if sc.load_model != "open" or sc.name in ("smoke", "soak"):
                continue
            opts = {"duration_s": args.lead_duration} if args.lead_duration else {}
            result = run_scenario(RunOptions(scenario=sc.name, out=tmp / "runs", seed=1, **opts))
            runs.append(read_run(result.run_dir))
    print("\n4. achievable lead: SLO-violation episodes of the open built-in scenarios "
          f"({'recorded runs in ' + str(args.lead_runs) if args.lead_runs else 'seed 1'})")
    print(f"   {'scenario':<16}{'onset s':>8}{'cause':>14}{'cause s':>8}{'lead s':>7}"
          f"{'queue rise s':>13}{'lead from rise':>15}{'incident s':>11}")
    leads, observable = [], []
    for run in runs:
        frame = run.frame
        flags = frame["slo_violation"].to_numpy() > 0
        previous_end = 0
        for start, end in episodes(flags):
            onset = int(frame["elapsed_s"].iloc[start])
            p = precursors(frame, onset, previous_end)
            previous_end = int(frame["elapsed_s"].iloc[end]) + 1
            cause = p["cause"]
            kind = ("fault start" if cause is not None and cause == p["fault_start"] else
                    "plan change" if cause is not None else "-")
            lead = onset - cause if cause is not None else None
            rise = p["queue_rise"]
            if lead is not None:
                leads.append(lead)
            if rise is not None:
                observable.append(onset - rise)
            print(f"   {run.scenario_name:<16}{onset:>8}{kind:>14}{'-' if cause is None else cause:>8}"
                  f"{'-' if lead is None else lead:>7}{'-' if rise is None else rise:>13}"
                  f"{'-' if rise is None else onset - rise:>15}{'-' if p['incident'] is None else p['incident']:>11}")
    if leads:
        print(f"   {len(leads)} episodes: lead from the cause median {np.median(leads):.0f} s "
              f"(range {min(leads)}-{max(leads)} s); from the first queue rise median "
              f"{np.median(observable) if observable else float('nan'):.0f} s")


# ---------------------------------------------------------------- 5. repeatability


def part_repeat(tmp: Path, args) -> None:
    frames = []
    for n in range(2):
        opts = {"duration_s": args.repeat_duration} if args.repeat_duration else {}
        result = run_scenario(RunOptions(scenario=args.repeat_scenario, seed=3, out=tmp / f"repeat{n}", **opts))
        frames.append(read_run(result.run_dir).frame)
    print(f"\n5. repeatability: {args.repeat_scenario} twice with seed 3; per-phase means, relative difference")
    print(f"   {'phase':<12}{'rps':>22}{'p95 window ms':>26}{'cpu %':>22}")
    worst = 0.0
    for phase in frames[0]["phase"].unique():
        cells = []
        for column in ("rps", "latency_p95_window_ms", "cpu_percent"):
            a, b = (f.loc[f["phase"] == phase, column].mean() for f in frames)
            diff = abs(a - b) / max(abs(a), abs(b), 1e-9)
            worst = max(worst, diff)
            cells.append(f"{a:8.1f} {b:8.1f} {100 * diff:4.0f}%")
        print(f"   {phase:<12}" + "".join(f"{c:>24}" for c in cells))
    print(f"   largest difference {100 * worst:.0f}% (goal: within 10%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="noise,omission,throughput,lead,repeat")
    parser.add_argument("--capacity", type=float, default=150.0,
                        help="req/s the default 2x4 target serves with the open mix (see the scenario files)")
    parser.add_argument("--stage-seconds", type=int, default=75)
    parser.add_argument("--wrk-seconds", type=int, default=15)
    parser.add_argument("--rate-fractions", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 0.9, 1.0, 1.2],
                        help="planned rates as fractions of wrk's")
    parser.add_argument("--max-in-flight", type=int, default=32,
                        help="the throughput runs' [load] max_in_flight (connections, like wrk's -c)")
    parser.add_argument("--lead-runs", type=Path, help="recorded runs or a dataset instead of new runs")
    parser.add_argument("--lead-duration", type=int, help="scale each built-in to this many seconds")
    parser.add_argument("--repeat-scenario", default="spike")
    parser.add_argument("--repeat-duration", type=int)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lab-signal-"))
    started = time.monotonic()
    parts = {"noise": part_noise, "omission": part_omission, "throughput": part_throughput,
             "lead": part_lead, "repeat": part_repeat}
    try:
        for name in args.parts.split(","):
            parts[name.strip()](tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n(measured in {(time.monotonic() - started) / 60:.1f} min on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
