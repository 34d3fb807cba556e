"""Dataset presets: the benchmark dataset and a small one for development, each with a fixed split.

`generate-dataset --preset bench` records every open-model built-in scenario (smoke, a
20 s test run, and the closed loop's scale-spike and scale-ramp left out) at full length for seeds 1..5; `--preset small` five of them
scaled to 120 s for seeds 1 and 2 (about 20 minutes of runs). The split is fixed when the
dataset is planned and stored in its manifest (`generation.split`, read by
`modeling.protocol`): the test split holds the held-out scenarios (every seed) and the
held-out seeds (every scenario); the rest is training, with one leave-one-scenario-out
validation fold per training scenario. So any two models are compared on the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.errors import BadInput
from contract.scenario import OPEN
from loadtests.harness import RunOptions, resolve_scenario

from .matrix import MatrixPlan, cell_name, parse_seeds, plan_matrix

DEFAULT_SCENARIOS = "spike,ramp,step,wave,fault-latency,fault-errors,fault-cpu,fault-memory,mixed"


@dataclass(frozen=True)
class Preset:
    scenarios: tuple[str, ...]
    seeds: tuple[int, ...]
    duration_s: int | None
    test_scenarios: tuple[str, ...]
    test_seeds: tuple[int, ...]
    about: str


PRESETS: dict[str, Preset] = {
    "bench": Preset(
        scenarios=("spike", "ramp", "step", "wave", "mixed", "soak", "fault-latency", "fault-errors",
                   "fault-cpu", "fault-memory", "fault-threads"),
        seeds=(1, 2, 3, 4, 5), duration_s=None, test_scenarios=("mixed", "wave"), test_seeds=(5,),
        about="every open-model built-in but smoke and scale-*, full length, seeds 1-5 (about 3.3 h of rows)"),
    "small": Preset(
        scenarios=("spike", "ramp", "fault-latency", "fault-threads", "mixed"),
        seeds=(1, 2), duration_s=120, test_scenarios=("mixed",), test_seeds=(2,),
        about="five open-model built-ins scaled to 120 s, seeds 1-2 (20 min of rows), for development"),
}


def preset_split(preset_name: str, preset: Preset, plan: MatrixPlan) -> dict:
    """Return the fixed split of a preset's plan: run ids of train, test and each validation fold."""
    names = {c.scenario: resolve_scenario(RunOptions(scenario=c.scenario)).name for c in plan.cells}
    test, train, folds = [], [], {}
    for cell in plan.cells:
        name = names[cell.scenario]
        run_id = cell_name(cell, name)
        if name in preset.test_scenarios or cell.seed in preset.test_seeds:
            test.append(run_id)
        else:
            train.append(run_id)
            folds.setdefault(name, []).append(run_id)
    return {"preset": preset_name, "about": preset.about, "test_scenarios": list(preset.test_scenarios),
            "test_seeds": list(preset.test_seeds), "train": train, "test": test,
            "validation": "leave-one-scenario-out over the training scenarios (modeling/protocol.py)",
            "validation_folds": folds}


def _check_open(plan: MatrixPlan, preset_name: str) -> None:
    for source in plan.scenarios:
        scenario = resolve_scenario(RunOptions(scenario=source))
        if scenario.load_model != OPEN:
            raise BadInput(f"--preset {preset_name}: scenario {scenario.name} uses the {scenario.load_model} "
                           f"model; the presets record the open-model built-ins")


def dataset_plan(preset: str | None, scenarios: str | None, seeds: str | None, seed: int, repeats: int,
                 duration: int | None) -> tuple[MatrixPlan, dict]:
    """Plan generate-dataset from its options; with a preset, also its split (for the manifest).

    With `--preset`, `--scenarios` may name the preset's scenarios as .toml files (same
    names, e.g. edited copies); `--seeds`, `--repeats` and `--duration` are refused, since
    they would change the fixed split.
    """
    names = [n.strip() for n in (scenarios or DEFAULT_SCENARIOS).split(",") if n.strip()]
    if preset is None:
        return plan_matrix(names, parse_seeds(seeds, seed, repeats), 1, duration), {}
    if preset not in PRESETS:
        raise BadInput(f"--preset: must be one of {', '.join(PRESETS)}, got {preset!r}")
    if seeds or repeats != 1 or duration is not None:
        raise BadInput(f"--preset {preset}: fixes seeds, repeats and duration (and so the split); "
                       f"leave out --seeds, --repeats and --duration")
    p = PRESETS[preset]
    sources = names if scenarios else list(p.scenarios)
    given = {resolve_scenario(RunOptions(scenario=s)).name for s in sources}
    if given != set(p.scenarios):
        raise BadInput(f"--scenarios: with --preset {preset} they must be {', '.join(p.scenarios)} "
                       f"(missing: {', '.join(sorted(set(p.scenarios) - given)) or '-'}; "
                       f"extra: {', '.join(sorted(given - set(p.scenarios))) or '-'})")
    plan = plan_matrix(sources, list(p.seeds), 1, p.duration_s)
    _check_open(plan, preset)
    return plan, {"preset": preset, "split": preset_split(preset, p, plan)}
