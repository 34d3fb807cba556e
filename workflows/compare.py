"""compare-autoscale: the same scenario and seed under off, reactive and predictive scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from contract.errors import BadInput
from loadtests.harness import RunOptions
from modeling.pipeline import is_model_folder
from workflows.autoscale import record_run

COLUMNS = ("mode", "slo_violation_s", "p95_ms", "p99_ms", "failures", "requests",
           "worker_seconds", "scale_actions")


def compare_autoscale(scenario: str, model_dir: Path | None, *, out: Path, seed: int | None = None,
                      duration_s: int | None = None, modes=("off", "reactive", "predictive"),
                      min_workers: int = 1, max_workers: int = 6,
                      on_mode: Callable[[str], None] | None = None,
                      on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Run each mode on the same scenario and seed; return one result row per mode."""
    if "predictive" in modes and (model_dir is None or not is_model_folder(model_dir)):
        raise BadInput(f"--model: {model_dir} is not a model folder (train one with lab.py train)")
    results = []
    for mode in modes:
        if on_mode:
            on_mode(mode)
        result = record_run(RunOptions(scenario=scenario, seed=seed, duration_s=duration_s, out=out),
                            autoscale=mode, model_dir=model_dir if mode == "predictive" else None,
                            min_workers=min_workers, max_workers=max_workers, on_row=on_row)
        s = result.summary
        results.append({
            "mode": mode, "run_dir": str(result.run_dir), "slo_violation_s": s.get("slo_violation_s"),
            "p95_ms": s.get("p95_ms"), "p99_ms": s.get("p99_ms"), "failures": s.get("failures"),
            "requests": s.get("requests"), "worker_seconds": s.get("worker_seconds"),
            "scale_actions": s.get("autoscale_actions", 0),
        })
    return results


def verdict(results: list[dict]) -> str:
    """Say whether predictive scaling halved the violation seconds of reactive at no more cost."""
    by = {r["mode"]: r for r in results}
    if "reactive" not in by or "predictive" not in by:
        return ""
    r, p = by["reactive"], by["predictive"]
    halved = p["slo_violation_s"] <= r["slo_violation_s"] / 2
    cheaper = p["worker_seconds"] <= r["worker_seconds"]
    return (f"predictive vs reactive: {p['slo_violation_s']} vs {r['slo_violation_s']} s in SLO violation "
            f"({'at most half: goal met' if halved else 'not halved: goal not met'}), "
            f"{p['worker_seconds']:.0f} vs {r['worker_seconds']:.0f} worker-seconds "
            f"({'no more' if cheaper else 'more'} capacity used)")


def print_comparison(console, scenario: str, results: list[dict]) -> None:
    """The comparison table, the verdict and the run folders."""
    from rich.table import Table

    table = Table(title=f"autoscaling on {scenario}", box=None)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in results:
        table.add_row(*[str(r[c]) if c != "worker_seconds" else f"{r[c]:.0f}" for c in COLUMNS])
    console.print(table)
    console.print(verdict(results), highlight=False)
    for r in results:
        console.print(f"{r['mode']}: {r['run_dir']}")
