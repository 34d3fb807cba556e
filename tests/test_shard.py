"""`generate-dataset --shard I/N` and `lab.py dataset merge`: the matrix over N machines.

Fast tests record the matrix with the harness replaced by the run factory (the same run id
gives the same files), so one machine's dataset and N shards merged can be compared byte
for byte; the slow test records real runs through the command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import runfactory
from contract.errors import BadInput
from workflows import matrix
from workflows.matrix import Cell, parse_shard, plan_matrix, shard_cells, shard_plan

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["smoke", "spike", "soak", "fault-cpu"]


# ------------------------------------------------------------------ partition


def test_shards_are_disjoint_complete_deterministic_and_balanced():
    plan = plan_matrix(SCENARIOS, [1, 2, 3], 2)
    cells = plan.cells
    longest = max(plan.planned_s.values())
    for n in range(1, len(cells) + 1):
        parts = shard_cells(cells, plan.planned_s, n)
        assert len(parts) == n and all(parts)
        flat = [c for part in parts for c in part]
        assert sorted(flat, key=cells.index) == cells and len(set(flat)) == len(cells)
        assert parts == shard_cells(list(cells), dict(plan.planned_s), n), "same input, same parts"
        for part in parts:   # each part keeps the matrix order
            assert part == sorted(part, key=cells.index)
        load = [sum(plan.planned_s[c.scenario] for c in part) for part in parts]
        assert max(load) - min(load) <= longest


def test_shard_plans_keep_the_matrix_run_ids_and_record_their_part():
    plan = plan_matrix(SCENARIOS, [1, 2], 1)
    shards = [shard_plan(plan, (i, 3)) for i in range(3)]
    ids = [run_id for s in shards for run_id in s.shard_meta()["run_ids"]]
    assert sorted(ids) == sorted(plan.run_id(c) for c in plan.cells)
    assert all(s.shard_meta()["matrix_run_ids"] == [plan.run_id(c) for c in plan.cells] for s in shards)
    assert shard_plan(plan, None) is plan and plan.shard_meta() is None
    assert abs(shards[0].total_s - plan.total_s / 3) <= max(plan.planned_s.values())


@pytest.mark.parametrize("text", ["1", "2/2", "-1/2", "a/b", "0/0", "1/", "/3"])
def test_a_bad_shard_is_one_line_naming_the_option(text):
    with pytest.raises(BadInput) as err:
        parse_shard(text)
    assert str(err.value).startswith("--shard: ") and "\n" not in str(err.value)


def test_more_shards_than_runs_is_refused():
    cells = [Cell("smoke", 1, 1), Cell("smoke", 2, 1)]
    with pytest.raises(BadInput, match="3 shards for 2 runs"):
        shard_cells(cells, {"smoke": 20}, 3)


# ------------------------------------------------------------------ merge


@pytest.fixture
def factory_runs(monkeypatch):
    """generate_dataset with each run written by the run factory: a run id always gives the same files."""

    def fake_run(opts, on_row=None):
        name = opts.run_id.rsplit("-s", 1)[0]
        runfactory.make_run(opts.out, 30, name, opts.seed, run_id=opts.run_id)

    monkeypatch.setattr(matrix, "run_scenario", fake_run)


def record(out: Path, plan, shard=None) -> Path:
    part = shard_plan(plan, shard)
    command = "python lab.py generate-dataset --scenarios smoke,spike,step --seeds 1,2" + (
        f" --shard {shard[0]}/{shard[1]}" if shard else "")
    matrix.generate_dataset(out, part, command=command)
    return out


@pytest.fixture
def matrix_plan():
    return plan_matrix(["smoke", "spike", "step"], [1, 2], 1)


def shards(tmp_path: Path, plan, n: int) -> list[Path]:
    return [record(tmp_path / f"shard-{i}", plan, (i, n)) for i in range(n)]


def test_merged_shards_equal_the_dataset_one_machine_writes(tmp_path, factory_runs, matrix_plan):
    from collector.dataset import merge_datasets

    single = record(tmp_path / "single", matrix_plan)
    parts = shards(tmp_path, matrix_plan, 3)
    build = merge_datasets(list(reversed(parts)), tmp_path / "merged", command="python lab.py dataset merge ...")

    one = pq.read_table(single / "dataset.parquet").to_pandas()
    merged = pq.read_table(build.parquet).to_pandas()
    pd.testing.assert_frame_equal(one, merged)          # same rows, columns, labels, order
    assert (single / "dataset.parquet").read_bytes() == build.parquet.read_bytes()
    assert set(merged["run_id"]) == {matrix_plan.run_id(c) for c in matrix_plan.cells}

    a = json.loads((single / "manifest.json").read_text())
    b = build.manifest
    for key in ("rows", "hours", "runs_included", "columns", "runs", "scenarios", "seeds"):
        assert a[key] == b[key], key
    assert b["dataset"]["sha256"] == a["dataset"]["sha256"]
    generation = b["generation"]
    assert generation["command"] == a["generation"]["command"], "the card's command is one machine's"
    assert [m["shard"] for m in generation["merged_from"]] == ["0/3", "1/3", "2/3"]
    assert (build.dataset_dir / "CARD.md").read_text().count("--shard") == 0
    for part in parts:   # the shards are left as they were
        assert (part / "manifest.json").is_file()


def test_merge_is_idempotent_and_keeps_the_parts(tmp_path, factory_runs, matrix_plan):
    from collector.dataset import merge_datasets

    parts = shards(tmp_path, matrix_plan, 2)
    first = merge_datasets(parts, tmp_path / "merged").parquet.read_bytes()
    again = merge_datasets(parts, tmp_path / "merged").parquet.read_bytes()
    assert first == again


def edit_manifest(part: Path, change) -> None:
    path = part / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("spoil, expected", [
    (lambda m: m.update(seeds=[1, 2, 3]), "seeds differ"),
    (lambda m: m.update(scenarios=["smoke", "spike"]), "scenarios differ"),
    (lambda m: m["generation"].update(duration_s=30), "duration differ"),
    (lambda m: m["versions"].update(pandas="0.0.1"), "package versions differ"),
    (lambda m: m["generation"]["shard"].update(index=0), "shard 0/2 given twice"),
    (lambda m: m["generation"].pop("shard"), "generation.shard: missing"),
])
def test_merge_refuses_mismatched_shards_with_one_line(tmp_path, factory_runs, matrix_plan, spoil, expected):
    from collector.dataset import merge_datasets

    parts = shards(tmp_path, matrix_plan, 2)
    edit_manifest(parts[1], spoil)
    with pytest.raises(BadInput) as err:
        merge_datasets(parts, tmp_path / "merged")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "merged" / "manifest.json").exists()


def test_merge_refuses_a_missing_shard(tmp_path, factory_runs, matrix_plan):
    from collector.dataset import merge_datasets

    parts = shards(tmp_path, matrix_plan, 3)
    with pytest.raises(BadInput, match=r"shard 1/3 missing \(given 0/3, 2/3\)"):
        merge_datasets([parts[0], parts[2]], tmp_path / "merged")


def test_merge_refuses_a_corrupted_run_naming_it(tmp_path, factory_runs, matrix_plan):
    from collector.dataset import merge_datasets

    parts = shards(tmp_path, matrix_plan, 2)
    victim = sorted((parts[1] / "runs").iterdir())[0]
    csv = victim / "metrics.csv"
    csv.write_text(csv.read_text().replace(",", ";", 1))
    with pytest.raises(BadInput) as err:
        merge_datasets(parts, tmp_path / "merged")
    assert str(err.value) == f"{victim}: checksum mismatch or missing file: metrics.csv"


def test_merge_refuses_a_shard_with_a_run_missing(tmp_path, factory_runs, matrix_plan):
    import shutil

    from collector.dataset import merge_datasets

    parts = shards(tmp_path, matrix_plan, 2)
    gone = sorted((parts[0] / "runs").iterdir())[-1]
    shutil.rmtree(gone)
    with pytest.raises(BadInput, match="missing: run shard 0/2's generate-dataset command again"):
        merge_datasets(parts, tmp_path / "merged")


def test_merge_of_shards_from_different_hosts_warns_and_records_it(tmp_path, factory_runs, matrix_plan):
    from collector.dataset import merge_datasets

    parts = shards(tmp_path, matrix_plan, 2)
    edit_manifest(parts[1], lambda m: m["host"].update(hostname="node-b", cpu_model="Other CPU"))
    warnings = []
    build = merge_datasets(parts, tmp_path / "merged", on_warning=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("shards_on_different_hosts:") and "node-b" in warnings[0]
    assert build.manifest["generation"]["warnings"] == warnings
    assert {m["host"] for m in build.manifest["generation"]["merged_from"]} >= {"node-b"}


def test_cli_merge_prints_one_line_and_a_refusal_exits_2(tmp_path, factory_runs, matrix_plan):
    parts = shards(tmp_path, matrix_plan, 2)
    cmd = [sys.executable, str(ROOT / "lab.py"), "dataset", "merge", *map(str, parts), "--out", str(tmp_path / "m")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "6 runs from 2 shards" in done.stdout and (tmp_path / "m" / "dataset.parquet").is_file()
    refused = subprocess.run(cmd[:4] + [str(parts[0]), "--out", str(tmp_path / "m2")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "shard 1/2 missing" in refused.stderr


# ------------------------------------------------------------------ real runs


@pytest.mark.slow
def test_two_shards_recorded_for_real_merge_into_the_single_machine_matrix(tmp_path):
    """Same run ids, rows and schedule labels as one machine recording the same matrix."""
    args = ["--scenarios", "smoke", "--seeds", "1,2", "--duration", "6", "--quiet"]

    def generate(out: Path, *extra: str) -> None:
        done = subprocess.run([sys.executable, str(ROOT / "lab.py"), "generate-dataset", "--out", str(out),
                               *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr

    generate(tmp_path / "single")
    generate(tmp_path / "a", "--shard", "0/2")
    generate(tmp_path / "b", "--shard", "1/2")
    assert {p.name for p in (tmp_path / "a" / "runs").iterdir()} == {"smoke-s1-r1"}
    merged = subprocess.run([sys.executable, str(ROOT / "lab.py"), "dataset", "merge", str(tmp_path / "a"),
                             str(tmp_path / "b"), "--out", str(tmp_path / "merged")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr

    one = pq.read_table(tmp_path / "single" / "dataset.parquet").to_pandas()
    both = pq.read_table(tmp_path / "merged" / "dataset.parquet").to_pandas()
    assert list(one.columns) == list(both.columns)
    labels = ["run_id", "scenario", "elapsed_s", "phase", "fault", "planned_users"]
    pd.testing.assert_frame_equal(one[labels], both[labels])
    manifest = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert manifest["runs_included"] == 2 and manifest["rows"] == 12
    assert manifest["generation"]["command"].endswith("--duration 6 --quiet")
