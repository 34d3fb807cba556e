"""generate-dataset presets: which runs, and the fixed train/validation/test split in the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.errors import BadInput
from workflows.presets import PRESETS, dataset_plan


def scenario_file(folder: Path, name: str, model: str = "open") -> Path:
    load = "rate = 10" if model == "open" else "users = 5\nspawn_rate = 5"
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nduration_s = 60\n\n[[stages]]\nname = "only"\nuntil_s = 60\n{load}\n')
    return path


def test_the_small_preset_fixes_seeds_length_and_a_split_of_held_out_scenarios_and_seeds(tmp_path):
    p = PRESETS["small"]
    files = ",".join(str(scenario_file(tmp_path, n)) for n in p.scenarios)
    plan, extra = dataset_plan("small", files, None, 1, 1, None)
    assert len(plan.cells) == len(p.scenarios) * len(p.seeds) and plan.duration_s == 120
    assert plan.total_s == pytest.approx(20 * 60, rel=0.01)                 # about 20 minutes of rows
    split = extra["split"]
    everything = {f"{n}-s{s}-r1" for n in p.scenarios for s in p.seeds}
    assert set(split["train"]) | set(split["test"]) == everything
    assert not set(split["train"]) & set(split["test"])
    assert {f"mixed-s{s}-r1" for s in p.seeds} <= set(split["test"])           # a held-out scenario, every seed
    assert {f"{n}-s2-r1" for n in p.scenarios} <= set(split["test"])          # a held-out seed, every scenario
    assert split["train"] == [f"{n}-s1-r1" for n in p.scenarios if n != "mixed"]
    assert split["validation_folds"] == {n: [f"{n}-s1-r1"] for n in p.scenarios if n != "mixed"}


def test_the_bench_preset_is_every_open_built_in_at_full_length_with_five_seeds():
    p = PRESETS["bench"]
    assert p.duration_s is None and len(p.seeds) >= 5
    assert {"spike", "ramp", "step", "wave", "mixed", "fault-threads"} <= set(p.scenarios)
    assert "smoke" not in p.scenarios
    assert set(p.test_scenarios) < set(p.scenarios) and set(p.test_seeds) < set(p.seeds)


def test_a_preset_refuses_closed_scenarios_other_names_and_options_that_would_move_the_split(tmp_path):
    p = PRESETS["small"]
    files = [scenario_file(tmp_path, n) for n in p.scenarios]
    (tmp_path / "closed").mkdir()
    closed = scenario_file(tmp_path / "closed", "spike", "closed")
    with pytest.raises(BadInput, match="scenario spike uses the closed model"):
        dataset_plan("small", ",".join(str(f) for f in [closed, *files[1:]]), None, 1, 1, None)
    with pytest.raises(BadInput, match="--scenarios: with --preset small they must be"):
        dataset_plan("small", ",".join(str(f) for f in files[1:]), None, 1, 1, None)
    with pytest.raises(BadInput, match="leave out --seeds, --repeats and --duration"):
        dataset_plan("small", None, "1,2", 1, 1, None)
    with pytest.raises(BadInput, match="--preset: must be one of"):
        dataset_plan("huge", None, None, 1, 1, None)
    plan, extra = dataset_plan(None, str(files[0]), "3,4", 1, 1, 30)           # no preset: as before
    assert [c.seed for c in plan.cells] == [3, 4] and extra == {}
