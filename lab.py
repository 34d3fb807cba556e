"""Stability Lab command line: `python lab.py --help` (also installed as `lab`).

Each command is its options plus one call into a package. Errors are translated here,
once, into one line and the exit codes of docs/contract.md: LabError (2 for bad input,
1 for failed work), OSError (1, naming the path), a usage error (2), Ctrl-C (130).
"""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape as _escape

from contract.errors import LabError

app = typer.Typer(help="Stability Lab: load-test an instrumented target, record labelled runs, forecast "
                  "instability.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True)
out = Console(soft_wrap=True)  # paths and messages never break mid-word when piped
# typer 0.25+ carries its own copy of click: take the exception classes typer raises.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {_escape(message)}", highlight=False)


def lab_command(fn, on: typer.Typer = app):
    """Register a command (on `on`: app or a sub-app) whose errors become one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LabError as exc:
            raise fail(_escape(str(exc)), exc.exit_code) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(_escape(f"{where}{exc.strerror or exc}"), 1) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return on.command()(wrapper)


def run() -> None:
    """Entry point: usage errors (a bad option value, a missing argument) as one line, exit 2."""
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        err.print(f"[bold red]error:[/] {_escape(where + exc.format_message())}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("interrupted", highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


@lab_command
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="gunicorn worker processes.")] = 2,
    threads: Annotated[int, typer.Option(min=1, max=256, help="Threads per worker (gthread).")] = 4,
    metrics_port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Also serve /metrics on this port from the gunicorn master, outside the worker pool (answers even when the workers are saturated).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the target's random costs and faults.")] = 0,
    bind_all: Annotated[bool, typer.Option("--bind-all", help="Listen on all interfaces (0.0.0.0) instead of 127.0.0.1.")] = False,
    token: Annotated[Optional[str], typer.Option(help="Bearer token for /admin (generated when not given).", envvar="LAB_ADMIN_TOKEN")] = None,
    admin_allow_remote: Annotated[bool, typer.Option("--admin-allow-remote", help="Let /admin answer clients that are not on loopback (containers, a lab runner on another machine); the bearer token is still required.")] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="Print one line per request.")] = False,
    dev: Annotated[bool, typer.Option("--dev", help="Flask's development server with debug on (never for load tests).")] = False,
    max_worker_rss_mb: Annotated[Optional[float], typer.Option(min=1, help="Kill (SIGKILL) a worker whose resident memory passes this many MB, as a container's OOM kill does; gunicorn starts a replacement.")] = None,
):
    """Run the instrumented target app under gunicorn in the foreground."""
    from target_app.server import TargetConfig, serve_command

    config = TargetConfig(port=port, host="0.0.0.0" if bind_all else "127.0.0.1", workers=workers,
                          threads=threads, seed=seed, access_log=access_log, metrics_port=metrics_port,
                          admin_allow_remote=admin_allow_remote, max_worker_rss_mb=max_worker_rss_mb)
    raise typer.Exit(serve_command(config, token=token, dev=dev, say=out.print,
                                   warn=lambda m: err.print(f"[yellow]{m}[/]")))


@lab_command
def scenarios():
    """List the built-in scenarios with a one-line description each."""
    from loadtests.report_console import print_scenarios

    print_scenarios(out)


@lab_command
def run_scenario(
    scenario: Annotated[Optional[str], typer.Argument(help="Built-in scenario name or path to a .toml file (default: the lab's default scenario).")] = None,
    duration: Annotated[Optional[int], typer.Option(min=1, help="Scale the scenario to this many seconds (see --truncate).")] = None,
    truncate: Annotated[bool, typer.Option("--truncate", help="With --duration: cut the scenario instead of scaling it.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed for Locust users and the target (overrides the scenario's).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives the run folder.")] = Path("runs"),
    host: Annotated[Optional[str], typer.Option(help="Use an external target at this URL instead of the embedded one.")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a --host that is not a loopback address.")] = False,
    admin_token: Annotated[Optional[str], typer.Option(help="Admin token of an external --host, for fault injection.", envvar="LAB_ADMIN_TOKEN")] = None,
    workers: Annotated[int, typer.Option(min=0, max=64, help="Locust worker processes (0: one local runner).")] = 0,
    expect_workers: Annotated[int, typer.Option(min=0, max=1024, help="Locust workers started elsewhere (other machines) that connect to this run's master; the lab starts none.")] = 0,
    master_bind: Annotated[Optional[str], typer.Option(help="HOST[:PORT] the master listens on for --expect-workers (default 127.0.0.1:5557; another address needs --allow-remote).")] = None,
    target_workers: Annotated[Optional[int], typer.Option(min=1, max=64, help="gunicorn workers of the embedded target.")] = None,
    target_threads: Annotated[Optional[int], typer.Option(min=1, max=256, help="Threads per target worker.")] = None,
    prometheus_url: Annotated[Optional[str], typer.Option(help="Read server-side metrics from this Prometheus server instead of scraping /metrics.")] = None,
    autoscale: Annotated[str, typer.Option(help="off, reactive (Kubernetes HPA rule) or predictive (HPA led by the model's forecast); scales the embedded target's workers.")] = "off",
    scale_metric: Annotated[str, typer.Option(help="The HPA's metric: slo (SLO-window p95), queue or cpu.")] = "slo",
    model: Annotated[Optional[Path], typer.Option(help="Model folder for --autoscale predictive.")] = None,
    min_workers: Annotated[int, typer.Option(min=1, max=64, help="Fewest target workers when autoscaling.")] = 1,
    max_workers: Annotated[int, typer.Option(min=1, max=64, help="Most target workers when autoscaling.")] = 6,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run one scenario against the target and record one labelled row per second."""
    from loadtests.harness import RunOptions, resolve_scenario
    from loadtests.report_console import RunProgress, print_summary
    from workflows.autoscale import check_autoscale_options, record_run

    opts = RunOptions(scenario=scenario, duration_s=duration, truncate=truncate, seed=seed,
                      out=out_dir, host=host, allow_remote=allow_remote, admin_token=admin_token,
                      workers=workers, target_workers=target_workers, target_threads=target_threads,
                      prometheus_url=prometheus_url, expect_workers=expect_workers, master_bind=master_bind)
    check_autoscale_options(autoscale, model, min_workers, max_workers, scale_metric)
    with RunProgress(out, enabled=not quiet, label=scenario or "run") as progress:
        progress.set_total(resolve_scenario(opts).duration_s)
        result = record_run(opts, autoscale=autoscale, model_dir=model, min_workers=min_workers, max_workers=max_workers,
                            metric=scale_metric, on_row=progress.row, on_status=progress.status)
    print_summary(out, result)


from collector.export import ExportFormat  # noqa: E402  (typer needs the Enum when the command is defined)


@lab_command
def generate_dataset(
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder (e.g. datasets/mylab).")] = Path("datasets/lab"),
    preset: Annotated[Optional[str], typer.Option(help="bench (every open-model built-in x 5 seeds, full length, ~3.3 h) or small (~20 min): fixed seeds and a train/test split in the manifest (docs/datasets.md).")] = None,
    scenarios_: Annotated[Optional[str], typer.Option("--scenarios", help="Comma-separated scenario names or .toml paths (default: spike,ramp,step,wave,fault-*,mixed; with --preset: its own).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Runs per scenario, seeds --seed, --seed+1, ...")] = 1,
    seed: Annotated[int, typer.Option(help="First seed.")] = 1,
    seeds: Annotated[Optional[str], typer.Option(help="Explicit comma-separated seeds (instead of --seed/--repeats).")] = None,
    duration: Annotated[Optional[int], typer.Option(min=1, help="Scale every scenario to this many seconds.")] = None,
    workers: Annotated[int, typer.Option(min=0, max=64, help="Locust worker processes per run.")] = 0,
    shard: Annotated[Optional[str], typer.Option(help="I/N: record only part I (0..N-1) of the matrix, for N machines; join the parts with `dataset merge`.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run scenarios x seeds into one dataset folder, then write dataset.parquet, manifest.json and CARD.md."""
    from loadtests.report_console import MatrixProgress
    from workflows.matrix import generate_dataset as generate, parse_shard, shard_plan
    from workflows.presets import dataset_plan

    plan, extra = dataset_plan(preset, scenarios_, seeds, seed, repeats, duration)
    plan = shard_plan(plan, parse_shard(shard))
    out.print(f"dataset {out_dir}: {len(plan.cells)} runs, {plan.total_s / 60:.1f} min of scenario time")
    command = "python lab.py generate-dataset " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    with MatrixProgress(out, plan, enabled=not quiet) as progress:
        result, build = generate(out_dir, plan, command=command, workers=workers, extra_meta=extra,
                                 on_cell_start=progress.cell, on_row=progress.row)
    out.print(f"{len(result.done)} runs ({len(result.kept)} kept from before, {len(result.redone)} redone) -> "
              f"[bold]{build.parquet}[/], {build.card.name}, {build.manifest_path.name}")


@lab_command
def dataset_info(
    path: Annotated[Path, typer.Argument(help="Dataset folder, its dataset.parquet, a folder of runs or one run folder.")],
):
    """Summarise a dataset: runs, hours, share of seconds per phase, fault and SLO state."""
    from collector.dataset import dataset_info as summarise, print_dataset_info

    print_dataset_info(out, summarise(path))


app.add_typer(dataset_app := typer.Typer(help="Dataset folders made of parts: merge shards.", no_args_is_help=True),
              name="dataset")


@functools.partial(lab_command, on=dataset_app)
def merge(
    parts: Annotated[list[Path], typer.Argument(help="The dataset folders of every shard (generate-dataset --shard I/N).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to write (runs, dataset.parquet, manifest, card).")],
):
    """Check the shards of one matrix (checksums, scenarios, seeds, versions) and join them into one dataset."""
    from collector.dataset import merge_datasets, print_merge

    print_merge(out, merge_datasets(parts, out_dir, command=shlex.join(["python", "lab.py", *sys.argv[1:]]),
                                    on_warning=warn))


@lab_command
def import_csv(
    file: Annotated[Path, typer.Argument(help="External metrics CSV (Kaggle, Prometheus or NAB export).")],
    timestamp_col: Annotated[str, typer.Option(help="Timestamp column: ISO 8601 text, epoch seconds or epoch milliseconds.")],
    label_col: Annotated[Optional[str], typer.Option(help="Column whose nonzero or true values mark violations; becomes slo_violation.")] = None,
    interval: Annotated[Optional[int], typer.Option(min=1, help="Seconds per row after resampling (default: the median step of the file).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives the run folder.")] = Path("runs"),
    max_rows: Annotated[int, typer.Option(min=1, help="Refuse a file whose timestamps span more rows than this after resampling (a stray date would ask for billions).")] = 2_000_000,
    column_map: Annotated[Optional[list[str]], typer.Option("--map", help="SRC=DST: name a source column as a lab column (value=cpu_percent); repeatable. Other numeric columns keep their own (sanitized) names.")] = None,
    nab_windows: Annotated[Optional[Path], typer.Option(help="NAB's labels/combined_windows.json: the rows inside this file's [start, end] windows become slo_violation.")] = None,
):
    """Turn an external metrics CSV into a run folder the modelling commands accept."""
    from collector.importer import import_csv as run_import, parse_column_map, print_import

    run_dir = run_import(file, timestamp_col=timestamp_col, label_col=label_col, out_dir=out_dir, interval_s=interval,
                         max_rows=max_rows, column_map=parse_column_map(column_map), nab_windows=nab_windows)
    print_import(out, run_dir)


@lab_command
def import_prometheus(
    url: Annotated[str, typer.Option(help="Prometheus base URL (loopback unless --allow-remote).")],
    query: Annotated[list[str], typer.Option(help="NAME=PROMQL, one column per query (one series each); repeatable. The model keeps them for `monitor --prometheus-url`.")],
    start: Annotated[str, typer.Option(help="ISO 8601, epoch seconds, or now-30m (s, m, h, d).")],
    end: Annotated[str, typer.Option(help="Same forms as --start.")] = "now",
    step: Annotated[int, typer.Option(min=1, help="Seconds between rows (1 for a model `monitor` serves).")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives the run folder.")] = Path("runs"),
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a Prometheus that is not on a loopback address.")] = False,
):
    """Range-query a Prometheus server into a run folder (gaps kept as empty cells, the queries in run.json)."""
    from collector.promimport import import_prometheus as run_import, parse_queries, print_prometheus_import
    print_prometheus_import(out, run_import(url, parse_queries(query), start=start, end=end, step_s=step, out_dir=out_dir, allow_remote=allow_remote))


@lab_command
def export(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder, a folder of runs or one run folder.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="nab: a timestamp,value CSV per metric plus label windows; csv: one CSV; parquet: one Parquet file.")] = ExportFormat.nab,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: exports/<dataset>-<format>).")] = None,
    columns: Annotated[Optional[str], typer.Option(help="Comma-separated columns to export (default: every metric column).")] = None,
):
    """Export runs for other tools: NAB layout with fault and SLO windows, CSV or Parquet."""
    from collector.export import export_dataset

    target = out_dir or Path("exports") / f"{dataset.resolve().name}-{fmt.value}"
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    done = {"runs": 0, "rows": 0}
    with out.status("exporting") as status:
        def progress(run_dir, rows):
            done["runs"] += 1
            done["rows"] += rows
            status.update(f"exporting: {done['runs']} run(s), {done['rows']:,} rows")

        written = export_dataset(dataset, fmt=fmt, out_dir=target, columns=wanted, on_run=progress)
    out.print(f"exported {done['runs']} run(s), {done['rows']:,} rows as {fmt.value}")
    out.print(f"wrote [bold]{written}[/]")


@lab_command
def train(
    sources: Annotated[list[Path], typer.Argument(help="Run folders, dataset folders, folders of runs or imported CSV files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")] = Path("models/lab"),
    holdout: Annotated[Optional[str], typer.Option(help="Comma-separated scenario names held out for evaluation (default: a dataset's fixed split from its manifest, else a random quarter of the runs; one run: its last quarter).")] = None,
    preset: Annotated[str, typer.Option(help="default, guide (the original guide's LSTM) or tiny.")] = "default",
    target: Annotated[Optional[str], typer.Option(help="Comma-separated columns to forecast (default: the lab's key metrics; an imported run names its own, like cpu_percent).")] = None,
    window: Annotated[Optional[int], typer.Option(min=1, help="Rows of history per prediction (seconds for the lab's runs; 24 rows of 5-minute data are two hours).")] = None,
    horizon: Annotated[Optional[int], typer.Option(min=1, help="Rows ahead to forecast (seconds for the lab's runs).")] = None,
    units: Annotated[Optional[int], typer.Option(min=1, help="LSTM units.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Maximum epochs (early stopping may end sooner).")] = None,
    normalise: Annotated[Optional[str], typer.Option(help="global (the training runs' scaler), level (each window relative to its own median), window (standardised by its own median and spread: a model that serves servers at other levels) or auto (the lowest validation RelMAE of the three).")] = None,
    plan: Annotated[Optional[str], typer.Option(help="Give the model the scenario's plan (planned_rate or planned_users) for the next H s: 'ahead' (serving needs the plan too) or 'held' (the plan of now repeated, what a monitor without a plan feeds).")] = None,
    regimes_k: Annotated[Optional[int], typer.Option("--regimes-k", min=2, help="Number of regimes (default: the number of system states).")] = None,
    profile: Annotated[str, typer.Option(help="lab: every column of a run; live: only what a monitor sees of a running target (its /metrics, processes, host), for `lab.py monitor`.")] = "lab",
    seed: Annotated[int, typer.Option(help="Seed for the split, weights and KMeans.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Fit the LSTM forecaster, the KMeans regimes and the endpoint clusters on runs."""
    from modeling.console import EpochProgress, print_training
    from modeling.pipeline import train_bundle

    params = {k: v for k, v in dict(window=window, horizon=horizon, units=units, epochs=epochs, normalise=normalise).items() if v is not None}
    with EpochProgress(out, enabled=not quiet) as progress:
        bundle = train_bundle([str(s) for s in sources], out_dir, holdout=[h.strip() for h in holdout.split(",")] if holdout else None,
                              preset=preset, params=params, seed=seed, regimes_k=regimes_k, plan=plan, on_epoch=progress.epoch,
                              profile=profile, on_warning=warn, targets=target.split(",") if target is not None else None)
    print_training(out, bundle, out_dir)


@lab_command
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model folder written by train.")],
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Held-out runs (default: the runs held out at training).")] = None,
    metrics_out: Annotated[Optional[Path], typer.Option("--out", help="Where to write metrics.json (default: in the model folder).")] = None,
):
    """Score a model and the baselines on held-out runs; print tables and write metrics.json."""
    from modeling.console import print_evaluation
    from modeling.pipeline import METRICS_JSON, evaluate_bundle, load_bundle

    result = evaluate_bundle(load_bundle(model), [str(r) for r in runs] if runs else None, metrics_out)
    print_evaluation(out, result)
    out.print(f"metrics: [bold]{metrics_out or model / METRICS_JSON}[/]")


@lab_command
def report(
    target: Annotated[Path, typer.Argument(help="A run folder, a dataset folder (or folder of runs) or a model folder.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for report.html and its PNGs (default: reports/<name>/).")] = None,
    timelines: Annotated[int, typer.Option(min=0, max=50, help="Dataset: how many runs get a full-size timeline (one per scenario first).")] = 3,
):
    """Write an HTML report with plots for a run, a dataset or a model (report.html + PNGs)."""
    from modeling.report import build_report

    with out.status("writing the report") as status:
        result = build_report(target, out_dir, timelines=timelines, on_step=status.update)
    n = len(result.figures)
    out.print(f"{result.kind} report with {n} figure{'s' if n != 1 else ''}", highlight=False)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {_escape(note)}", highlight=False)
    out.print(str(result.path), soft_wrap=True, highlight=False)


@lab_command
def monitor(
    model: Annotated[Path, typer.Option(help="Model folder trained with --profile live, or on import-prometheus runs (it keeps their queries).")],
    target: Annotated[Optional[str], typer.Option(help="URL of the running target (e.g. http://127.0.0.1:5000); not needed for a model trained on PromQL.")] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the monitor's own /metrics.")] = 9105,
    bind_all: Annotated[bool, typer.Option("--bind-all", help="Serve the monitor's /metrics on all interfaces.")] = False,
    metrics_url: Annotated[Optional[str], typer.Option(help="Where to scrape the target (default: TARGET/metrics; a lab target's --metrics-port listener is better under load).")] = None,
    prometheus_url: Annotated[Optional[str], typer.Option(help="Read the server-side metrics from this Prometheus server; a model trained on PromQL asks it the same queries every second.")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a target that is not a loopback address.")] = False,
    policy: Annotated[Optional[str], typer.Option(help="Policy preset: default, or guide (scale up when predicted stability < 80%).")] = None,
    policy_file: Annotated[Optional[Path], typer.Option(help="TOML file with a \\[policy] table (thresholds, cool-downs, bounds; kind = \"reactive\": the HPA rule).")] = None,
    sinks_file: Annotated[Optional[Path], typer.Option(help="TOML file with \\[\\[sinks]] tables.")] = None,
    webhook: Annotated[Optional[str], typer.Option(help="Post scale and alert actions to this webhook (https, or http on loopback); the environment variable keeps its secret out of process lists.", envvar="LAB_WEBHOOK_URL")] = None,
    alertmanager: Annotated[Optional[str], typer.Option(help="Alertmanager base URL; alerts go to /api/v2/alerts.")] = None,
    scale_target: Annotated[bool, typer.Option("--scale-target", help="Change the lab target's gunicorn worker count for real (TTIN/TTOU).")] = False,
    min_workers: Annotated[int, typer.Option(min=1, max=64, help="Lowest worker count when scaling.")] = 1,
    max_workers: Annotated[int, typer.Option(min=1, max=64, help="Highest worker count when scaling.")] = 8,
    events: Annotated[Path, typer.Option(help="JSON-lines log of every decision, taken or skipped.")] = Path("monitor-events.jsonl"),
    duration: Annotated[Optional[float], typer.Option(min=0, help="Stop after this many seconds (default: until Ctrl-C).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No status line.")] = False,
):
    """Predict instability of a running target every second, and recommend or take actions."""
    from workflows.monitoring import Monitor, MonitorOptions

    watch = Monitor(MonitorOptions(
        target=target, model=model, port=port, bind_all=bind_all, metrics_url=metrics_url,
        prometheus_url=prometheus_url, allow_remote=allow_remote, policy=policy, policy_file=policy_file,
        sinks_file=sinks_file, webhook=webhook, alertmanager=alertmanager, scale_target=scale_target,
        min_workers=min_workers, max_workers=max_workers, events=events, duration_s=duration))
    err.print(_escape(watch.describe()), highlight=False)
    seconds = watch.run(on_step=None if quiet else lambda step: out.print(watch.status(step), highlight=False))
    err.print(f"monitor stopped after {seconds} s; events in {_escape(str(events))}", highlight=False)


@lab_command
def compare_autoscale(
    scenario: Annotated[str, typer.Argument(help="Built-in scenario name or .toml path (the wait-bound scale-spike, scale-ramp suit it).")],
    model: Annotated[Path, typer.Option(help="Model folder (trained with --profile lab) for the predictive mode.")],
    seed: Annotated[int, typer.Option(help="First seed.")] = 1,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds seed .. seed+N-1, each run in all three modes (paired).")] = 1,
    duration: Annotated[Optional[int], typer.Option(min=1, help="Scale the scenario to this many seconds.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the run folders and the plot.")] = Path("runs/compare"),
    min_workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
    max_workers: Annotated[int, typer.Option(min=1, max=64)] = 6,
    scale_metric: Annotated[str, typer.Option(help="The HPA's metric: slo (SLO-window p95), queue or cpu.")] = "slo",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run a scenario with no, reactive (HPA) and predictive autoscaling on the same seeds; compare."""
    from workflows.compare import compare_command

    compare_command(out, scenario, model, quiet=quiet, out=out_dir, seed=seed, seeds=seeds, duration_s=duration,
                    min_workers=min_workers, max_workers=max_workers, metric=scale_metric)


@lab_command
def quickstart(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the dataset, model and report.")] = Path("quickstart"),
    seed: Annotated[int, typer.Option(help="Seed of the runs and the model.")] = 1,
    run_seconds: Annotated[int, typer.Option(min=20, help="Length of each recorded run.")] = 40,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
):
    """The whole lab in about five minutes: record a small dataset, train, evaluate, report."""
    from loadtests.report_console import RunProgress
    from workflows.quickstart import print_quickstart, run_quickstart

    with RunProgress(out, enabled=not quiet, label="quickstart") as progress:
        progress.set_total(run_seconds)
        result = run_quickstart(
            out_dir, seed=seed, run_seconds=run_seconds,
            on_stage=lambda m: (out.print(m) if quiet else progress.status(m)) and None,
            on_row=progress.row,
            on_epoch=lambda e, n, logs: progress.status(f"training: epoch {e}/{n} val_loss {logs.get('val_loss', float('nan')):.4f}"))
    print_quickstart(out, result)


if __name__ == "__main__":
    run()
