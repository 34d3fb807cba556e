"""generate-dataset: a matrix of scenario runs into one dataset folder, resumable.

Each cell (scenario, seed, repeat) has a fixed run id, so a second invocation with the
same arguments finds the complete runs (status complete, checksums match) and keeps them,
and redoes only the cells whose folder is missing, interrupted or failed.

`--shard I/N` (`shard_plan`) keeps one part of the matrix: N machines each record a
disjoint part with the same run ids, and `lab.py dataset merge` (collector.dataset.merge_datasets)
joins the parts into the dataset one machine would have written.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

from collector.dataset import DatasetBuild, build_dataset_files
from contract.errors import BadInput
from contract.runfolder import RUNS_DIR, is_complete_run
from loadtests.harness import RunOptions, resolve_scenario, run_scenario


@dataclass(frozen=True)
class Cell:
    scenario: str
    seed: int
    repeat: int

    @property
    def run_id(self) -> str:
        return f"{self.scenario}-s{self.seed}-r{self.repeat}"


@dataclass
class MatrixPlan:
    scenarios: list[str]
    seeds: list[int]
    repeats: int
    duration_s: int | None = None
    cells: list[Cell] = field(default_factory=list)
    planned_s: dict[str, int] = field(default_factory=dict)
    shard: tuple[int, int] | None = None      # (index, count) when this plan is one shard
    all_run_ids: list[str] = field(default_factory=list)   # the whole matrix's, when sharded

    @property
    def total_s(self) -> int:
        return sum(self.planned_s[c.scenario] for c in self.cells)

    def shard_meta(self) -> dict | None:
        """The manifest's `generation.shard`: which part of which matrix this dataset holds."""
        if self.shard is None:
            return None
        return {"index": self.shard[0], "count": self.shard[1],
                "run_ids": [self.run_id(c) for c in self.cells], "matrix_run_ids": self.all_run_ids}

    def run_id(self, cell: Cell) -> str:
        return cell_name(cell, self.names[cell.scenario])

    @cached_property
    def names(self) -> dict[str, str]:
        """Scenario argument (name or .toml path) -> the scenario's name in run ids."""
        return {arg: resolve_scenario(RunOptions(scenario=arg)).name for arg in self.scenarios}


def plan_matrix(scenarios: list[str], seeds: list[int], repeats: int,
                duration_s: int | None = None) -> MatrixPlan:
    """Validate every scenario up front and lay out the cells (scenario x seed x repeat)."""
    if not scenarios:
        raise BadInput("--scenarios: give at least one scenario name or .toml path")
    if repeats < 1:
        raise BadInput(f"--repeats: must be at least 1, got {repeats}")
    plan = MatrixPlan(scenarios, seeds, repeats, duration_s)
    for name in scenarios:
        scenario = resolve_scenario(RunOptions(scenario=name, duration_s=duration_s))
        plan.planned_s[name] = scenario.duration_s
    if len({resolve_scenario(RunOptions(scenario=n)).name for n in scenarios}) != len(scenarios):
        raise BadInput("--scenarios: two entries have the same scenario name")
    plan.cells = [Cell(name, seed, r) for name in scenarios for seed in seeds
                  for r in range(1, repeats + 1)]
    return plan


def cell_name(cell: Cell, scenario_name: str) -> str:
    return f"{scenario_name}-s{cell.seed}-r{cell.repeat}"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard I/N` -> (I, N), I counted from 0 (as JOB_COMPLETION_INDEX and Slurm arrays 0-(N-1))."""
    if text is None:
        return None
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise BadInput(f"--shard: expected I/N such as 0/4, got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise BadInput(f"--shard: expected I/N with 0 <= I < N, got {text!r}")
    return i, n


def shard_cells(cells: list[Cell], planned_s: dict[str, int], count: int) -> list[list[Cell]]:
    """Split the cells into `count` disjoint parts of about equal planned time, deterministically.

    Longest first, each to the part with the least planned time so far (ties: the lower
    part, then the earlier cell), so a soak run and many smoke runs still balance; each
    part keeps the matrix order. Depends on nothing but the cells and their planned seconds.
    """
    if count > len(cells):
        raise BadInput(f"--shard: {count} shards for {len(cells)} runs; use at most {len(cells)}")
    load = [0] * count
    owner: dict[int, int] = {}
    for pos in sorted(range(len(cells)), key=lambda k: (-planned_s[cells[k].scenario], k)):
        part = min(range(count), key=lambda p: (load[p], p))
        owner[pos] = part
        load[part] += planned_s[cells[pos].scenario]
    return [[c for k, c in enumerate(cells) if owner[k] == part] for part in range(count)]


def shard_plan(plan: MatrixPlan, shard: tuple[int, int] | None) -> MatrixPlan:
    """Return the plan of shard `shard` = (I, N) of `plan` (the plan itself when None)."""
    if shard is None:
        return plan
    index, count = shard
    parts = shard_cells(plan.cells, plan.planned_s, count)
    return MatrixPlan(plan.scenarios, plan.seeds, plan.repeats, plan.duration_s, parts[index],
                      dict(plan.planned_s), shard, [plan.run_id(c) for c in plan.cells])


@dataclass
class MatrixResult:
    dataset_dir: Path
    done: list[Path]
    kept: list[Path]
    redone: list[Path]


def run_matrix(plan: MatrixPlan, dataset_dir: Path, *, base: RunOptions | None = None,
               on_cell_start: Callable[[Cell, int, int, float], None] | None = None,
               on_row: Callable[[dict], None] | None = None) -> MatrixResult:
    """Run every cell that has no complete run yet; Ctrl-C stops after keeping what is done."""
    runs_dir = dataset_dir / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = base or RunOptions()
    done, kept, redone = [], [], []
    remaining_s = plan.total_s
    elapsed_per_planned = None      # measured wall seconds per planned second, for the ETA
    started = time.monotonic()
    spent_planned = 0
    for n, cell in enumerate(plan.cells, 1):
        scenario_name = resolve_scenario(RunOptions(scenario=cell.scenario)).name
        run_dir = runs_dir / cell_name(cell, scenario_name)
        if run_dir.exists() and is_complete_run(run_dir):
            kept.append(run_dir)
            done.append(run_dir)
            remaining_s -= plan.planned_s[cell.scenario]
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)     # interrupted or failed: redo it from scratch
            redone.append(run_dir)
        eta = remaining_s * (elapsed_per_planned or 1.15)
        if on_cell_start:
            on_cell_start(cell, n, len(plan.cells), eta)
        opts = RunOptions(**{**base.__dict__, "scenario": cell.scenario, "seed": cell.seed,
                             "duration_s": plan.duration_s, "out": runs_dir,
                             "run_id": run_dir.name})
        run_scenario(opts, on_row=on_row)
        done.append(run_dir)
        remaining_s -= plan.planned_s[cell.scenario]
        spent_planned += plan.planned_s[cell.scenario]
        elapsed_per_planned = (time.monotonic() - started) / max(spent_planned, 1)
    return MatrixResult(dataset_dir, done, kept, redone)


def parse_seeds(seeds: str | None, first: int, repeats: int) -> list[int]:
    """`--seeds 1,2,5`, or `repeats` seeds from `first` on."""
    if not seeds:
        return list(range(first, first + repeats))
    try:
        return [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"--seeds: expected comma-separated integers, got {seeds!r}") from None


def generate_dataset(dataset_dir: Path, plan: MatrixPlan, *, command: str, workers: int = 0,
                     extra_meta: dict | None = None,
                     on_cell_start: Callable[[Cell, int, int, float], None] | None = None,
                     on_row: Callable[[dict], None] | None = None) -> tuple[MatrixResult, DatasetBuild]:
    """Record the plan's missing runs, then write dataset.parquet, manifest.json and CARD.md."""
    result = run_matrix(plan, dataset_dir, base=RunOptions(workers=workers),
                        on_cell_start=on_cell_start, on_row=on_row)
    build = build_dataset_files(dataset_dir, scenarios=plan.scenarios, seeds=plan.seeds,
                                extra_meta={"command": command, "repeats": plan.repeats,
                                            "duration_s": plan.duration_s,
                                            **({"shard": plan.shard_meta()} if plan.shard else {}),
                                            **(extra_meta or {})})
    return result, build
