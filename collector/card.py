"""The data card (CARD.md) of a dataset: what each column means and how far to trust it."""

from __future__ import annotations

from typing import Any, Sequence

from contract import schema
from contract.schema import COLUMN_DOCS, COLUMNS, EXTRA_COLUMNS

KEY_DOCS = {
    "run_id": ("label", "run folder the row comes from (runs/<run_id>/)"),
    "scenario": ("label", "name of the scenario the run played"),
}

CONTRACT = [c for c in COLUMNS if c not in EXTRA_COLUMNS]
# Columns only some runs have (e.g. the direct scrape of Prometheus-server runs).
OPTIONAL_DOCS: dict[str, tuple[str, str]] = dict(getattr(schema, "DIRECT_SCRAPE_DOCS", {}))

LIMITATIONS = [
    "One machine: the target, the load generator and the collector share one host, so "
    "results describe this machine's capacity, not a production system's.",
    "Loopback network: requests never leave the host; there is no network latency, loss "
    "or bandwidth limit in the data.",
    "On a machine with two or more CPUs the target and Locust run on separate CPU sets "
    "(`run.json`: target.cpus, loadgen.cpus); on one CPU they share it, and under heavy "
    "load Locust itself slows down (see `loadgen_cpu_percent` and `loadgen_saturated`).",
    "Client-side latency includes Locust's own overhead (gevent scheduling, HTTP client), "
    "so it is higher than the server-side latency for the same request.",
    "Open-model latency is timed from each request's intended send: it shows a stall in "
    "full. While the target answers nothing, no request completes, so the pooled window "
    "of those seconds is empty and `slo_violation` is 0 until the backlog's first answers "
    "arrive; `outstanding` shows the stall as it happens.",
    "Server-side quantiles (`srv_latency_*`) are interpolated within Prometheus histogram "
    "buckets (as `histogram_quantile` does): their precision is the bucket width.",
    "Per-second client quantiles come from the requests completed in that second; a second "
    "with few requests has noisy quantiles (use the pooled `*_window` columns, which the "
    "SLO label reads), and a second with none has empty values.",
    "Labels are the injected ground truth (`fault`) and a threshold rule (`slo_violation`); "
    "a fault's effect can lag its label, and load alone can violate the SLO.",
    "A second the collector could not observe is a row with empty measurements and "
    "`target_up=0`; `target_up=0` therefore means 'not observed', not only 'target down'.",
    "Process metrics are sampled once per second with psutil; short spikes between "
    "samples are not seen.",
    "Synthetic workload: a Flask app with a cost model, not a real application.",
]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def render_card(manifest: dict[str, Any], metas: Sequence[dict], scenarios: Sequence[dict],
                info: dict[str, Any] | None = None) -> str:
    """Return the Markdown data card of a dataset from its manifest and run metadata."""
    included = [r for r in manifest["runs"] if r.get("included")]
    lines = _summary(manifest, included) + _files()
    if info:
        lines += _balance(info)
    lines += _columns(manifest) + _labels(scenarios) + _scenarios(scenarios, included) + _split(manifest)
    lines += _machine(manifest, metas) + _reproduce(manifest) + _limitations(included)
    return "\n".join(lines) + "\n"


def _summary(manifest: dict[str, Any], included: Sequence[dict]) -> list[str]:
    name = manifest.get("name", "dataset")
    return [
        f"# Data card: {name}", "",
        "Labelled per-second load-test runs recorded by Stability Lab: client-side (Locust), "
        "server-side (Prometheus) and process (psutil) metrics of an instrumented Flask "
        "target under scheduled load and fault injection.", "",
        "## Summary", "",
        f"- runs: {len(included)} included"
        + (f", {manifest.get('runs_excluded')} excluded (see manifest.json)" if manifest.get("runs_excluded") else ""),
        f"- rows: {manifest['rows']:,} (one per second of each run)",
        f"- hours of data: {manifest['hours']:.2f}",
        f"- scenarios: {', '.join(manifest.get('scenarios') or []) or '-'}",
        f"- seeds: {', '.join(str(s) for s in manifest.get('seeds') or []) or '-'}",
        f"- created: {manifest.get('created_at')}",
        "",
    ]


def _files() -> list[str]:
    return [
        "## Files", "",
        "- `dataset.parquet`: every included run, one row per second, a row group per run; "
        "`run_id` and `scenario` come first, then the run's columns.",
        "- `runs/<run_id>/`: the run folders as run-scenario wrote them (`run.json`, "
        "`metrics.csv`, raw Locust samples, `events.jsonl`).",
        "- `manifest.json`: runs, scenarios, seeds, package versions, host facts and sha256 "
        "checksums of every run file and of `dataset.parquet`.",
        "",
    ]


def _columns(manifest: dict[str, Any]) -> list[str]:
    rows = []
    for col in manifest.get("columns") or (list(KEY_DOCS) + COLUMNS):
        unit, meaning = (KEY_DOCS.get(col) or COLUMN_DOCS.get(col) or OPTIONAL_DOCS.get(col)
                         or ("", "extra column of some runs (imported or added; see their run.json)"))
        kind = "key" if col in KEY_DOCS else "contract" if col in CONTRACT else "lab extra" if col in COLUMNS else "extra"
        rows.append((f"`{col}`", unit, meaning, kind))
    return (["## Columns", ""] + _table(["column", "unit", "meaning", "kind"], rows)
            + ["", "Empty cells (nulls in Parquet) mean the value was not observed in that second.", ""])


def _labels(scenarios: Sequence[dict]) -> list[str]:
    lines = ["## Labels", "",
             "- `phase`: the name of the scenario stage in force in that second (stages are "
             "a piecewise load plan; see Scenarios).",
             "- `fault`: the fault kind the scenario injected in that second (`latency`, "
             "`errors`, `cpu`, `memory`, `threads`) or `none`; `fault_intensity` its intensity "
             "(0..1). This is the schedule sent to the target, i.e. ground truth of the cause.",
             "- `incident`: a consequence the target saw happen in that second: `worker_killed` "
             "(a worker above `[target] max_worker_rss_mb`, killed like an OOM kill), "
             "`pool_exhausted` (every handler thread of a worker stuck), or `none`. Recorded "
             "when it happened, from the target's own counters, not from the plan.",
             "- `slo_violation`: 1 when the client-side p95 pooled over the trailing "
             "`slo.window_s` seconds (`latency_p95_window_ms`) exceeds `slo.latency_p95_ms`, or "
             "the pooled error rate (`error_rate_window`) exceeds `slo.error_rate`, else 0 (a "
             "window without requests is 0). With `window_s = 1` this is the per-second rule.",
             "- `planned_users` / `planned_rate`: the scenario's plan for the second (closed / "
             "open model): the only columns a model may read ahead of time.",
             "- Load models: closed runs (stages with `users`) have Locust users who wait for "
             "each answer, so a stall sends less load and the queue is bounded by the user "
             "count; open runs (stages with `rate`) send Poisson arrivals at the planned rate "
             "whatever the answers, and time latency from each request's intended send, so a "
             "stall shows in full and the backlog (`outstanding`) keeps growing while arrivals "
             "exceed capacity. `run.json` names the model (`load_model`).",
             "- `target_up`: 1 when the target's `/metrics` answered within the second.", "",
             "SLO thresholds per scenario:", ""]
    lines += _table(["scenario", "load model", "latency_p95_ms", "error_rate", "window_s"],
                    [(s.get("name"), s.get("load_model", "closed"), (s.get("slo") or {}).get("latency_p95_ms"),
                      (s.get("slo") or {}).get("error_rate"), (s.get("slo") or {}).get("window_s", 1))
                     for s in scenarios])
    return lines + [""]


def _scenarios(scenarios: Sequence[dict], included: Sequence[dict]) -> list[str]:
    lines = ["## Scenarios", ""]
    counts: dict[str, list] = {}
    for r in included:
        counts.setdefault(str(r.get("scenario")), []).append(r.get("seed"))
    for s in scenarios:
        seeds = counts.get(str(s.get("name")), [])
        lines += [f"### {s.get('name')}", "",
                  str(s.get("description") or "(no description)"), "",
                  f"- duration: {s.get('duration_s')} s; runs: {len(seeds)}; seeds: "
                  f"{', '.join(str(x) for x in sorted(set(seeds), key=str)) or '-'}",
                  f"- source: {s.get('source') or '-'}", ""]
        if s.get("stages"):
            lines += _table(["stage", "until_s", "users", "spawn_rate", "rate", "ramp_s"],
                            [(st.get("name"), st.get("until_s"), st.get("users"), st.get("spawn_rate"),
                              st.get("rate"), st.get("ramp_s")) for st in s["stages"]])
            lines += [""]
        if s.get("faults"):
            lines += _table(["fault", "start_s", "duration_s", "intensity"],
                            [(f.get("kind"), f.get("start_s"), f.get("duration_s"), f.get("intensity"))
                             for f in s["faults"]])
        else:
            lines += ["No faults injected."]
        lines += [""]
    return lines


def _machine(manifest: dict[str, Any], metas: Sequence[dict]) -> list[str]:
    lines = ["## Machine", ""]
    hosts = _distinct([m.get("host") or {} for m in metas])
    for host in hosts or [manifest.get("host") or {}]:
        lines += [f"- {host.get('cpu_model') or 'unknown CPU'}, {host.get('cpu_physical')} physical / "
                  f"{host.get('cpu_logical')} logical cores, {host.get('memory_gib')} GiB memory, "
                  f"{host.get('platform') or '-'}, Python {host.get('python') or '-'}"]
    versions = manifest.get("versions") or {}
    return lines + ["", "Package versions when the dataset was built: "
                    + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".", ""]


def _split(manifest: dict[str, Any]) -> list[str]:
    """The fixed train/validation/test split of a preset dataset (manifest generation.split)."""
    split = (manifest.get("generation") or {}).get("split")
    if not isinstance(split, dict):
        return []
    folds = split.get("validation_folds") or {}
    return ["## Split", "",
            f"Preset `{split.get('preset')}`: {split.get('about', '')}. The split is fixed in `manifest.json` "
            f"(`generation.split`), so any two models are compared on the same runs.", "",
            f"- test: {len(split.get('test') or [])} runs: the held-out scenarios "
            f"{', '.join(split.get('test_scenarios') or []) or '-'} (every seed) and the held-out seeds "
            f"{', '.join(str(s) for s in split.get('test_seeds') or []) or '-'} (every scenario)",
            f"- train: {len(split.get('train') or [])} runs of {len(folds)} scenarios",
            f"- validation: {split.get('validation', 'leave-one-scenario-out')}: {len(folds)} folds, one per "
            "training scenario; tuning never reads the test split", ""]


def _reproduce(manifest: dict[str, Any]) -> list[str]:
    lines = ["## How to reproduce", ""]
    command = (manifest.get("generation") or {}).get("command")
    if command:
        lines += ["```", str(command), "```", ""]
    else:
        lines += ["The generating command line was not recorded; `runs/*/run.json` holds each "
                  "run's resolved scenario and seed, so `lab run-scenario` can repeat a run.", ""]
    return lines + ["Runs are not bit-for-bit reproducible: timing depends on the machine and its "
                    "load; seeds fix the load plan, user behaviour and the target's random costs.", "",
                    "Check integrity with `sha256sum dataset.parquet` against `manifest.json`.", ""]


def _limitations(included: Sequence[dict]) -> list[str]:
    lines = ["## Known limitations", ""] + [f"- {item}" for item in LIMITATIONS]
    warned = sum(int(r.get("warnings") or 0) for r in included)
    if warned:
        lines += [f"- {warned} run warning(s) were recorded (gaps, load generator saturation, ...); "
                  "see each run's `run.json`."]
    return lines


def _balance(info: dict[str, Any]) -> list[str]:
    lines = ["## Label balance", "",
             f"- SLO violation: {info['slo_violation_share']:.1%} of seconds",
             f"- target not observed (`target_up=0`): {info['target_down_share']:.1%} of seconds", ""]
    lines += _table(["fault", "share of seconds"], [(k, f"{v:.1%}") for k, v in info["fault_share"].items()])
    lines += [""]
    lines += _table(["phase", "share of seconds"], [(k, f"{v:.1%}") for k, v in info["phase_share"].items()])
    return lines + [""]


def _distinct(items: Sequence[dict]) -> list[dict]:
    out: list[dict] = []
    for item in items:
        key = {k: item.get(k) for k in ("cpu_model", "cpu_logical", "cpu_physical", "memory_gib", "platform")}
        if key not in [{k: o.get(k) for k in key} for o in out]:
            out.append(item)
    return out
