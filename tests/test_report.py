"""`lab.py report`: run, dataset and model reports (HTML + PNGs), and bad targets (exit 2)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runfactory import make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    from lab import app

    return CliRunner().invoke(app, ["report", *args])


def check_report(folder: Path) -> list[str]:
    """Assert report.html shows exactly the PNGs in its folder, each a real, sizeable image."""
    from PIL import Image

    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<h2>Summary</h2>" in html
    shown = re.findall(r'<img src="([^"]+)"', html)
    on_disk = sorted(p.name for p in folder.glob("*.png"))
    assert shown and sorted(shown) == on_disk, (shown, on_disk)
    for name in shown:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, name
        with Image.open(folder / name) as img:
            img.verify()
        with Image.open(folder / name) as img:
            assert img.format == "PNG" and img.width >= 1000 and img.height >= 500, (name, img.size)
    # Every figure comes with an explanation.
    assert html.count("<figcaption>") == len(shown)
    return shown


def test_run_report_plots_the_timeline_and_summarises_the_run(tmp_path):
    run = make_run(tmp_path / "runs", 90, "spike", 3, gaps=[50, 51],
                   faults=[{"kind": "errors", "start_s": 30, "duration_s": 15, "intensity": 0.3}])
    out = tmp_path / "rep"
    result = invoke(str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out / "report.html") in result.output.replace("\n", "")
    assert check_report(out) == ["timeline.png"]
    html = (out / "report.html").read_text()
    assert "Run report: " + run.name in html
    assert "errors 30–44 s" in html                       # the fault window, from the data
    assert "p95 latency ≤ 800 ms and error rate ≤ 2 %" in html
    assert "seconds violating the SLO" in html


def test_dataset_report_has_shares_a_grid_and_timelines_in_the_default_folder(tmp_path, monkeypatch):
    dataset = tmp_path / "ds-small"
    for i, (name, fault) in enumerate([("spike", "latency"), ("spike", "cpu"), ("ramp", "memory"),
                                       ("ramp", "errors")]):
        make_run(dataset / "runs", 60, name, i + 1, run_id=f"{name}-r{i}",
                 faults=[{"kind": fault, "start_s": 20, "duration_s": 10, "intensity": 0.5}])
    monkeypatch.chdir(tmp_path)
    result = invoke(str(dataset), "--timelines", "2")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "reports" / "ds-small"
    assert "reports/ds-small/report.html" in result.output.replace("\n", "")
    shown = check_report(folder)
    assert shown[:2] == ["dataset_shares.png", "runs_grid.png"]
    timelines = [s for s in shown if s.startswith("timeline-")]
    # One full timeline per scenario before a second of the same one.
    assert len(timelines) == 2 and {t.split("-")[1] for t in timelines} == {"spike", "ramp"}
    html = (folder / "report.html").read_text()
    for run_id in ("spike-r0", "spike-r1", "ramp-r2", "ramp-r3"):
        assert f"<td>{run_id}</td>" in html                # the runs table lists every run

    # Reusing the folder for another report drops the PNGs only the old report showed.
    run = dataset / "runs" / "spike-r0"
    assert invoke(str(run), "--out", str(folder)).exit_code == 0
    assert check_report(folder) == ["timeline.png"]


@pytest.mark.parametrize("make_target, message", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: p, "not a run, dataset or model folder"),
    (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "got a file"),
    (lambda p: (p / "metrics.csv").write_text("elapsed_s\n0\n") and p, "no run.json"),
])
def test_bad_target_exits_2_with_one_line(tmp_path, make_target, message):
    target = make_target(tmp_path)
    result = invoke(str(target), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out" / "report.html").exists()


@pytest.mark.slow
def test_model_report_on_a_tiny_model_computes_metrics_and_draws_every_figure(tmp_path):
    from modeling.pipeline import METRICS_JSON, train_bundle
    from modeling.synthetic import synthetic_run, synthetic_samples, write_run

    runs = tmp_path / "runs"
    for scenario in ("spike-closed", "fault-latency-closed", "fault-errors-closed"):
        folder = write_run(synthetic_run(scenario, seed=2, duration_s=100), runs / f"{scenario}-s2")
        (folder / "locust").mkdir()
        synthetic_samples(duration_s=30, rps=20, seed=len(scenario)).to_csv(
            folder / "locust" / "samples-1.csv", index=False)
    model = tmp_path / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_bundle([runs], model, holdout=["fault-latency-closed"], preset="tiny", seed=1, regimes_k=3)
    assert not (model / METRICS_JSON).exists()

    out = tmp_path / "rep"
    result = invoke(str(model), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert str(out / "report.html") in result.output.replace("\n", "")
    assert (model / METRICS_JSON).is_file()                # computed because it was missing
    shown = check_report(out)
    assert shown == ["actual_vs_predicted.png", "error_by_horizon.png", "early_warning.png", "lead_time.png",
                     "calibration.png", "regimes.png", "product_clusters.png", "training_curves.png"]
    html = (out / "report.html").read_text()
    metrics = json.loads((model / METRICS_JSON).read_text())
    assert metrics["verdict"][0] in html.replace("&#x27;", "'")    # the verdict lines, word for word
    for goal in metrics["goals"]:
        assert goal.replace("_", " ") in html                      # and the goals table
    # Scored and drawn on the held-out scenario, which training never saw.
    trained_on = re.search(r"<th>trained on</th><td>([^<]*)</td>", html).group(1)
    assert sorted(trained_on.split(", ")) == ["synthetic-fault-errors-closed-s2", "synthetic-spike-closed-s2"]
    assert "<th>evaluated on</th><td>synthetic-fault-latency-closed-s2 (" in html
    assert "on run synthetic-fault-latency-closed-s2, which the model never saw in training" in html
    assert "Operating regimes vs the system states" in html and "P(SLO violation within 30 s)" in html
