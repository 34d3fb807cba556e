"""A model folder is written whole: retraining replaces it, a failure keeps the old one."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from contract.errors import BadInput
from modeling.pipeline import load_bundle, train_bundle

pytestmark = pytest.mark.slow   # trains tiny models


@pytest.fixture(scope="module")
def runs(tiny_lab_model):
    return tiny_lab_model[0]        # spike-closed s1, ramp-closed s2, spike-closed s3 (tests/conftest.py)


@pytest.fixture(scope="module")
def trained(tiny_lab_model):
    return tiny_lab_model[1]        # train_bundle(runs, preset="tiny", seed=0); tests change copies only


def _copy(trained, tmp_path):
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "model"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_retraining_replaces_the_whole_folder_with_the_umask_modes(runs, trained, tmp_path):
    out = _copy(trained, tmp_path)
    # What an earlier model had and this one does not: a products model, an evaluation.
    (out / "products.json").write_text('{"stale": true}')
    (out / "metrics.json").write_text('{"stale": true}')
    first = json.loads((out / "train.json").read_text())["created_at"]
    bundle = train_bundle(runs, out, preset="tiny", seed=1)
    assert bundle.products is None
    assert not (out / "products.json").exists() and not (out / "metrics.json").exists()
    assert json.loads((out / "train.json").read_text())["seed"] == 1 and first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]       # no temporary siblings left
    mask = _umask()
    for path in [out, out / "forecaster", *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o777 if path.is_dir() else 0o666) & ~mask, (path, oct(mode))
    assert load_bundle(out).meta["seed"] == 1


def test_a_failed_training_keeps_the_old_model(runs, trained, tmp_path, monkeypatch):
    from modeling import regimes

    out = _copy(trained, tmp_path)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(regimes.RegimeModel, "save", broken)
    with pytest.raises(OSError):
        train_bundle(runs, out, preset="tiny", seed=1)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_load_bundle_refuses_a_folder_without_train_json(trained, tmp_path):
    out = _copy(trained, tmp_path)
    (out / "train.json").unlink()
    with pytest.raises(BadInput, match=rf"^{out / 'train.json'}: missing \(an incomplete model folder"):
        load_bundle(out)


def test_training_never_replaces_a_folder_that_is_not_a_model(runs, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("keep me")
    with pytest.raises(BadInput, match="exists and is not a model folder"):
        train_bundle(runs, notes, preset="tiny")
    assert (notes / "thesis.txt").read_text() == "keep me"


def test_a_model_names_its_runs_relative_to_itself_and_finds_them_when_both_move(runs, tmp_path):
    import shutil

    from modeling.pipeline import evaluate_bundle

    # The runs and the model side by side in one folder, as course/data ships them.
    home = tmp_path / "home"
    for src in runs:
        shutil.copytree(src, home / "runs" / Path(src).name)
    train_bundle([str(home / "runs" / Path(s).name) for s in runs], home / "model", preset="tiny", seed=0)
    meta = json.loads((home / "model" / "train.json").read_text())
    assert all(not Path(s).is_absolute() and s.startswith("../runs/") for s in meta["sources"] + meta["test_sources"])
    # Moved elsewhere together, the model still finds its held-out runs.
    moved = Path(shutil.move(str(home), str(tmp_path / "elsewhere")))
    bundle = load_bundle(moved / "model")
    assert all(Path(p).is_dir() for p in bundle.paths("test_sources"))
    result = evaluate_bundle(bundle)
    assert result["data"]["runs"] == meta["test_runs"]
    # An older folder's absolute paths are read as they are.
    old = dict(bundle.meta, test_sources=[str(moved / "runs" / Path(s).name) for s in meta["test_sources"]])
    assert type(bundle)(bundle.folder, None, None, None, old).paths("test_sources") == old["test_sources"]
