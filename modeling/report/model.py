"""The model report: how a model folder was trained, its scores, and figures on a held-out run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from contract.runfolder import read_meta
from contract.errors import BadInput

from .. import plots
from ..baselines import forecast_all
from ..data import chronological_split, load_runs, run_folders, run_name
from ..evaluate import alarms_of, default_suite
from ..pipeline import METRICS_JSON, evaluate_bundle, load_bundle, read_meta_json
from ..products import endpoint_profiles, read_samples
from ..states import pool_threads, system_states
from .page import FigureWriter, Page, fmt, pct

ALERT_NAMES = {"lstm": "LSTM warning head", "lstm_upper": "LSTM upper quantile crosses the SLO",
               "lstm_forecast": "LSTM forecast crosses the SLO",
               "reactive": "reactive alert (for: k of n s)", "predict_linear": "predict_linear crosses the SLO",
               "always_on": "always on (a trivial alarm)"}


def model_report(path: Path, writer: FigureWriter) -> Page:
    """Build the page of the model folder at `path`, evaluating it first if metrics.json is missing."""
    writer.on_step("loading the model")
    bundle = load_bundle(path)
    page = Page(f"Model report: {path.resolve().name}", f"Folder {path}")
    result, computed = _metrics(path, bundle, writer)
    page.summary = model_facts(bundle, result)
    if computed:
        page.summary.append(("metrics.json", "computed now for this report (it was missing)"))
    horizon = int(result["data"]["horizon_s"])
    _add_scores(page, result, horizon)

    runs, notes = _held_out_runs(bundle)
    for n in notes:
        page.note(n)
    run = _pick_run(runs, int(bundle.forecaster.params_["window"]), int(bundle.forecaster.params_["horizon"]))
    pred = _forecast(page, writer, bundle, run, runs)
    _add_forecast_figures(page, writer, result, bundle, run, pred, horizon)
    _add_warning_figures(page, writer, result, bundle, run, pred, horizon)
    if bundle.regimes is not None and run is not None:
        _add_regimes_figure(page, writer, result, bundle, run)
    if bundle.products is not None:
        _add_products_figure(page, writer, bundle)
    _add_training_figure(page, writer, bundle)
    if pred is None and not runs:
        page.note("the held-out runs were not found, so the figures that need them are left out")
    return page


def _metrics(path: Path, bundle: Any, writer: FigureWriter) -> tuple[dict[str, Any], bool]:
    """Return the model's metrics.json, computed now when it is missing, and whether it was."""
    result = read_meta_json(path / METRICS_JSON)
    computed = False
    if not result:
        writer.on_step("evaluating (no metrics.json yet)")
        result = evaluate_bundle(bundle)
        computed = True
    if not {"data", "forecast", "early_warning"} <= set(result):
        raise BadInput(f"{path / METRICS_JSON}: not a metrics.json written by `lab.py evaluate`")
    return result, computed


def model_facts(bundle: Any, result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the summary rows of a model: how it was trained and what it was scored on."""
    meta, p = bundle.meta, getattr(bundle.forecaster, "params_", {})
    train_runs, test_runs = meta.get("train_runs") or [], meta.get("test_runs") or []

    def names(xs: Sequence[str]) -> str:
        return ", ".join(xs[:8]) + (f" … ({len(xs)} in all)" if len(xs) > 8 else "")

    data = result.get("data", {})
    rows = [("model folder", str(bundle.folder)),
            ("created (UTC)", str(meta.get("created_at", "?"))),
            ("LSTM", f"preset {meta.get('preset', '?')}: window {p.get('window')} s in, horizon "
                     f"{p.get('horizon')} s out, {p.get('layers')} layer(s) of {p.get('units')} units"
                     + (f", knows the plan ({', '.join(p['known_future'])}, "
                        f"{'held' if p.get('future') == 'hold' else 'ahead'})" if p.get("known_future") else "")),
            ("forecast metrics", ", ".join(plots.label(m) for m in data.get("key_metrics", p.get("key_metrics", [])))),
            ("training", f"{len(train_runs)} runs, {meta.get('train_rows', '?')} rows, "
                         f"{meta.get('epochs_run', '?')} epochs in {meta.get('train_seconds', '?')} s"),
            ("trained on", names(train_runs)),
            ("split", str(meta.get("split", "?"))),
            ("evaluated on", f"{names(data.get('runs', test_runs))} ({data.get('windows', '?')} windows)"),
            ("alarm threshold", f"{fmt(data.get('alarm_threshold'))} (warning probability that raises an alarm)")]
    if bundle.regimes is not None:
        rows.append(("regimes", f"k={bundle.regimes.k_}: {', '.join(bundle.regimes.names_)}"))
    if bundle.products is not None:
        rows.append(("endpoint clusters", f"k={bundle.products.k_}: {', '.join(dict.fromkeys(bundle.products.names_))}"))
    return rows


def _add_scores(page: Page, result: Mapping[str, Any], horizon: int) -> None:
    """Add the verdict, the goals table and the forecast-error table of metrics.json."""
    page.section("Verdict", "The evaluation's own summary, in plain sentences. RelMAE compares a forecast's "
                            "error with naive persistence (\u201cthe next seconds look like now\u201d): below 1 "
                            "the model is better than that, above 1 it is worse. Intervals are 95% block-bootstrap "
                            "intervals over the held-out runs.")
    page.bullets([line.strip() for line in result.get("verdict") or ["(no verdict in metrics.json)"]], "verdict")
    goals = result.get("goals") or {}
    if goals:
        page.section("Goals", "The project's targets for a model evaluated on scenarios it never saw in training.")
        page.table(["goal", "figure", "95% interval", "target", "status"],
                   [[k.replace("_", " "), fmt(g.get("value")),
                     "-" if not g.get("ci") or g["ci"][0] is None else f"{fmt(g['ci'][0])} to {fmt(g['ci'][1])}",
                     g.get("goal"), g.get("status", "met" if g.get("met") else "not met")]
                    for k, g in goals.items()], numeric=(1,))
    key = result["data"]["key_metrics"]
    page.section(f"Forecast error {horizon} s ahead (RelMAE)",
                 "One row per forecaster, one column per metric; lower is better and 1.00 is naive persistence. "
                 "n/a: the metric did not change on these runs, so persistence is exact and RelMAE is undefined.")
    page.table(["forecaster", *[plots.METRICS.get(m, (m,))[0] for m in key]],
               [[plots.MODEL_STYLES.get(n, ("", 0, n))[2],
                 *[fmt(s.get(m, {}).get("relmae_at_h", s.get(m, {}).get("mase_at_h"))) for m in key]]
                for n, s in result.get("summary", {}).items()], numeric=range(1, len(key) + 1))


def _held_out_runs(bundle: Any) -> tuple[list[pd.DataFrame], list[str]]:
    """Load the runs held out at training (their tails for a one-run split); note what is missing."""
    notes, sources = [], []
    for s in bundle.paths("test_sources"):
        if s and Path(s).exists():
            sources.append(s)
        elif s:
            notes.append(f"held-out run {s} not found (train.json names its runs relative to the model folder)")
    if not sources:
        return [], notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_runs(sources)
    if any("[" in name for name in bundle.meta.get("test_runs", [])):
        runs = [chronological_split(r)[1] for r in runs]
    return runs, notes


def _pick_run(runs: Sequence[pd.DataFrame], window: int, horizon: int) -> pd.DataFrame | None:
    """Return the held-out run with the most SLO-violation seconds among those long enough to forecast."""
    usable = [r for r in runs if len(r) >= window + horizon]
    if not usable:
        return None
    return max(usable, key=lambda r: int(plots.violation_mask(r).sum()))


def _forecast(page: Page, writer: FigureWriter, bundle: Any, run: pd.DataFrame | None,
              runs: Sequence[pd.DataFrame]) -> Any:
    """Return the model's prediction on the picked held-out run, or None (with a note saying why)."""
    p = bundle.forecaster.params_
    if run is None:
        if runs:
            page.note(f"no held-out run is long enough for a {p['window']} s window and {p['horizon']} s horizon")
        return None
    writer.on_step(f"forecasting {run_name(run)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bundle.forecaster.predict([run])
    except BadInput as exc:
        page.note(f"cannot forecast held-out run {run_name(run)}: {exc}")
        return None


def _add_forecast_figures(page: Page, writer: FigureWriter, result: Mapping[str, Any], bundle: Any,
                          run: pd.DataFrame | None, pred: Any, horizon: int) -> None:
    """Add actual vs predicted on the held-out run (when forecast) and the error by horizon."""
    if pred is not None:
        w, window = pred.windows, bundle.forecaster.params_["window"]
        naive = forecast_all(w.x_key, horizon, w.key_metrics)["persistence"]
        name = writer.save("actual_vs_predicted.png", plots.actual_vs_predicted, run, w.t, pred.forecast, naive,
                           w.key_metrics, horizon, run_name(run), getattr(pred, "upper", None),
                           bundle.forecaster.params_.get("quantile"))
        page.figure(name, "Actual vs predicted",
                    f"The original guide's plot, on run {run_name(run)}, which the model never saw in training. "
                    f"Black: what happened. Blue: what the LSTM predicted for that second (its median; the shaded "
                    f"band reaches up to its upper quantile, where the model has one), "
                    + ("1 s ahead" if horizon == 1 else f"1 s ahead (left) and {horizon} s ahead (right)")
                    + f", from the {window} seconds before. Dotted grey: naive persistence, "
                    f"which just repeats the last value it saw. A forecast that looks like the black line shifted "
                    f"right is only copying the past; the MAE in each panel's title says which of the two is closer "
                    f"on average.")
    name = writer.save("error_by_horizon.png", plots.error_by_horizon, result)
    page.figure(name, "Error by horizon: LSTM vs baselines",
                "For each metric, the average forecast error at each step ahead on all held-out runs, relative to "
                "naive persistence (dashed grey, always 1). Baselines: moving average and EWMA (smoothed recent "
                "values) and linear extrapolation (what Prometheus predict_linear does). Errors usually grow "
                "with the horizon; the LSTM is useful where its thick blue line is below 1 and below the others.")


def _add_warning_figures(page: Page, writer: FigureWriter, result: Mapping[str, Any], bundle: Any,
                         run: pd.DataFrame | None, pred: Any, horizon: int) -> None:
    """Add the early-warning timeline (when forecast), the lead-time figure and the alert table."""
    if pred is not None:
        w = pred.windows
        alarms = alarms_of(pred, bundle.baselines or default_suite(horizon, w.key_metrics))
        alarms.pop("always_on")
        name = writer.save("early_warning.png", plots.warning_timeline, run, w.t, pred.probability,
                           float(bundle.forecaster.warn_threshold_), alarms, horizon, run_name(run))
        page.figure(name, "Early warning over time",
                    f"Top: at each second the LSTM's probability that the SLO will be broken within the next "
                    f"{horizon} s (blue), with the alarm threshold (dashed). Red bands are the seconds that actually "
                    f"broke the SLO. Bottom: when each alert rule fires. A good early warning fires shortly before a "
                    f"red band starts and stays quiet elsewhere; the reactive alert can only fire once the SLO "
                    f"is already broken.")
    name = writer.save("lead_time.png", plots.lead_time, result)
    page.figure(name, "Lead time: how early does each alert warn?",
                f"Left: event F1 (violation episodes caught against false alarms; 1 is perfect), counted as 0 "
                f"when an alert raises more false alarms per hour than the budget, as an alarm that is always on "
                f"does. Right: for each violation episode, how many seconds before its onset the first alarm came "
                f"(searched back to the first observable precursor: a plan change, a fault start, an incident), "
                f"averaged, and the share of episodes caught. A reactive alert has a lead time of 0 by definition.")
    if (result.get("calibration") or {}).get("bins"):
        name = writer.save("calibration.png", plots.reliability, result)
        page.figure(name, "Is the warning probability a probability?",
                    "Left: windows grouped by the probability the warning head gave them; for each group, the share "
                    "that really broke the SLO within the horizon. On the dashed diagonal, 30% means 3 in 10. The "
                    "probability was recalibrated on the validation runs (Platt scaling); the Brier score in the "
                    "title must be below the base rate's (always saying the average share) for it to carry "
                    "information. Right: how many windows each group holds.")
    ew = result["early_warning"]
    page.table(["alert", "precision", "recall", "F1", "F1 within budget", "mean lead (s)", "share of achievable lead",
                "false alarms / h"],
               [[ALERT_NAMES.get(n, n), fmt(s.get("precision")), fmt(s.get("recall")), fmt(s.get("f1")),
                 fmt(s.get("f1_in_budget")), fmt(s.get("mean_lead_s"), 1), pct(s.get("lead_share")),
                 fmt(s.get("false_alarms_per_h", s.get("false_alarms_per_hour")), 1)]
                for n, s in ew.items() if isinstance(s, dict)], numeric=range(1, 8))


def _add_regimes_figure(page: Page, writer: FigureWriter, result: Mapping[str, Any], bundle: Any,
                        run: pd.DataFrame) -> None:
    """Add the model's regimes against the ground truth on the held-out run."""
    regimes = bundle.regimes.predict_names(run)
    truth = system_states(run, pool=pool_threads(run, default=getattr(bundle.regimes, "pool_", None)))
    name = writer.save("regimes.png", plots.regimes_timeline, run, regimes, truth,
                       dict(run.attrs.get("slo") or {}), run_name(run))
    r = result.get("regimes") or {}
    recall = ", ".join(f"{s} {fmt(v)}" for s, v in (r.get("recall") or {}).items())
    page.figure(name, "Operating regimes vs the system states",
                "KMeans groups the seconds by load-normalised features pooled over the last seconds (queue "
                "time, backlog per thread, arrivals against completions, error share, CPU per request, RSS "
                "slope), without the load level; each cluster carries the system state it matched on the "
                "training runs (healthy, saturated, recovering, erroring, exhaustion). The middle strip is the "
                "model's regime, the bottom strip the system state by the documented rules (docs/modeling.md): "
                "matching boundaries mean the regimes found the mechanism. On all held-out runs: ARI "
                f"{fmt(r.get('ari'))}, NMI {fmt(r.get('nmi'))} (1 = perfect agreement, 0 = chance); recall per "
                f"state {recall or 'n/a'}. Grey 'unknown' marks the first seconds, before a full feature window.")
    ahead = r.get("p_violation_ahead") or {}
    states = list(dict.fromkeys([*(r.get("recall") or {}), *ahead]))
    if states:
        ci = r.get("recall_ci") or {}
        page.table(["state", "recall", "95% interval", f"P(SLO violation within {r.get('ahead_s', 30)} s)"],
                   [[st, fmt((r.get("recall") or {}).get(st)),
                     "-" if not (ci.get(st) or [None])[0] else f"{fmt(ci[st][0])}-{fmt(ci[st][1])}",
                     fmt((ahead.get(st) or {}).get("p_violation"))] for st in states], numeric=(1, 3))


def _add_products_figure(page: Page, writer: FigureWriter, bundle: Any) -> None:
    """Add the endpoint clusters, with the training runs' endpoints when their samples are found."""
    profiles = _training_profiles(bundle)
    prod = bundle.products
    labels = ([prod.names_[i] for i in prod.predict(profiles)] if profiles is not None else [])
    centres = prod.scaler_.inverse_transform(np.asarray(prod.centroids_))[:, :2]
    name = writer.save("product_clusters.png", plots.product_clusters, profiles,
                       list(profiles.index) if profiles is not None else [], labels,
                       np.expm1(centres), prod.names_)
    page.figure(name, "Product (endpoint) clusters",
                "Each dot is one endpoint of the target's product catalogue, placed by its median and p95 "
                "response time over the training runs (both axes logarithmic). KMeans also used each endpoint's "
                "request rate and error share; the colour is its cluster, named light, medium or heavy by p95. "
                "Endpoints in the same cluster stress the service alike, so they are candidates for the same "
                "capacity plan or cache."
                + ("" if profiles is not None else " (The training runs' per-request samples were not found, "
                                                   "so only the cluster centres are shown.)"))


def _training_profiles(bundle: Any) -> pd.DataFrame | None:
    """Rebuild the endpoint profiles the product clusters were fitted on (None without samples)."""
    train_ids = set(bundle.meta.get("train_runs") or [])
    frames = []
    for source in bundle.paths("sources"):
        p = Path(source)
        if not p.is_dir():
            continue
        try:
            folders = run_folders(p)
        except BadInput:
            continue
        for folder in folders:
            try:
                run_id = str(read_meta(folder).get("run_id") or folder.name)
                if run_id in train_ids:
                    frames.append(read_samples(folder))
            except BadInput:
                continue
    if not frames:
        return None
    try:
        return endpoint_profiles(pd.concat(frames, ignore_index=True))
    except BadInput:
        return None


def _add_training_figure(page: Page, writer: FigureWriter, bundle: Any) -> None:
    """Add the loss curves of training, when the model kept its history."""
    history = getattr(bundle.forecaster, "history_", {}) or {}
    if not history.get("loss"):
        return
    name = writer.save("training_curves.png", plots.training_curves, history,
                       bundle.forecaster.params_.get("warn_weight"))
    page.figure(name, "Training curves",
                "Loss per epoch on the training windows (blue) and on validation windows the optimiser does "
                "not learn from (orange); the total adds the forecast head's error and the weighted warning head's "
                "error (dashed). Both falling: the model is learning. Training falling while "
                "validation rises: it is memorising (overfitting), and early stopping keeps the best "
                "validation epoch (circled). The loss is in scaled units, so compare its shape, not its value.")
