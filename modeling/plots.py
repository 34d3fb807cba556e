"""The report's figures: matplotlib Figures (Agg, no pyplot state) sized for a classroom screen.

Every function returns a `matplotlib.figure.Figure`; `modeling/report/` saves them as PNG
inside `style()`, which sets large fonts. Shared visual language across figures:

- phases: alternating light grey bands, named above the top panel;
- faults: a coloured band per kind (FAULT_COLOURS), the same colour in every figure;
- SLO: a dark red dashed line; seconds that violate it: dark red marks.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

SLO_COLOUR = "#B00020"
PHASE_SHADES = ("#EDEDED", "#FFFFFF")
FAULT_COLOURS = {"latency": "#E69F00", "errors": "#CC79A7", "cpu": "#8C564B", "memory": "#009E73"}
OTHER_FAULT = "#999999"
# Okabe-Ito colours, readable for colour-blind viewers.
BLUE, SKY, GREEN, ORANGE, VERMILLION, PURPLE, GREY = ("#0072B2", "#56B4E9", "#009E73", "#E69F00",
                                                     "#D55E00", "#CC79A7", "#666666")
MODEL_STYLES = {  # forecasters and alerts: colour, line width, label
    "lstm": (BLUE, 3.2, "LSTM"),
    "persistence": (GREY, 2.0, "naive persistence"),
    "moving_average": (GREEN, 2.0, "moving average"),
    "ewma": (ORANGE, 2.0, "EWMA"),
    "linear": (VERMILLION, 2.0, "linear (predict_linear)"),
    "auto_ets": ("#CC79A7", 2.0, "AutoETS (statsforecast)"),
    "lstm_forecast": (SKY, 2.0, "LSTM forecast crosses SLO"),
    "reactive": (GREY, 2.0, "reactive threshold alert"),
    "predict_linear": (VERMILLION, 2.0, "predict_linear crosses SLO"),
    "always_on": ("#000000", 2.0, "always on"),
}
ALERT_LABELS = {"lstm": "LSTM warning head", "lstm_upper": "LSTM upper quantile\ncrosses SLO",
                "lstm_forecast": "LSTM forecast\ncrosses SLO",
                "reactive": "reactive alert\n(SLO already broken)", "predict_linear": "predict_linear\ncrosses SLO",
                "always_on": "always on\n(a trivial alarm)"}
REGIME_COLOURS = {"stable": "#009E73", "light": "#8FD3B6", "busy": "#F0E442", "degraded": "#E69F00",
                  "saturated": "#D55E00", "recovering": "#56B4E9", "erroring": "#CC79A7",
                  "memory-pressure": "#8C564B", "unknown": "#DDDDDD",
                  "normal": "#009E73", "overload": "#D55E00", "healthy": "#009E73", "exhaustion": "#8C564B"}

# Column -> (label, unit, factor applied to the stored value for display).
METRICS: dict[str, tuple[str, str, float]] = {
    "latency_p50_ms": ("median (p50) latency", "ms", 1.0),
    "latency_p95_ms": ("p95 latency", "ms", 1.0),
    "latency_p99_ms": ("p99 latency", "ms", 1.0),
    "latency_p95_window_ms": ("p95 latency (SLO window)", "ms", 1.0),
    "latency_p99_window_ms": ("p99 latency (SLO window)", "ms", 1.0),
    "error_rate_window": ("error rate (SLO window)", "%", 100.0),
    "srv_latency_p95_ms": ("server p95 latency", "ms", 1.0),
    "error_rate": ("error rate", "%", 100.0),
    "srv_error_rate": ("server error rate", "%", 100.0),
    "rps": ("requests per second", "req/s", 1.0),
    "srv_rps": ("server requests per second", "req/s", 1.0),
    "cpu_percent": ("target CPU", "% of one core", 1.0),
    "rss_mb": ("target memory (RSS)", "MiB", 1.0),
    "users": ("simulated users", "users", 1.0),
}

STYLE = {
    "font.size": 15, "axes.titlesize": 17, "axes.titleweight": "bold", "axes.labelsize": 15,
    "xtick.labelsize": 13, "ytick.labelsize": 13, "legend.fontsize": 13, "figure.titlesize": 20,
    "figure.titleweight": "bold", "axes.grid": True, "grid.alpha": 0.35, "axes.spines.top": False,
    "axes.spines.right": False, "lines.linewidth": 2.0, "savefig.dpi": 100, "figure.dpi": 100,
    "legend.framealpha": 0.9,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply the report's large-font style while figures are made and saved."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float) -> Any:
    """Return a Figure on an Agg canvas: no pyplot, no GUI, freed with its last reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the global backend stays untouched (a notebook keeps its own)
    return fig


def label(column: str) -> str:
    """Return 'p95 latency (ms)' for a column name."""
    name, unit, _ = METRICS.get(column, (column, "", 1.0))
    return f"{name} ({unit})" if unit else name


def values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return a column as floats in display units (error rates in %), NaN where missing."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    factor = METRICS.get(column, ("", "", 1.0))[2]
    v = np.array(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    v[~np.isfinite(v)] = np.nan
    return v * factor


def elapsed(frame: pd.DataFrame) -> np.ndarray:
    """Return the seconds axis (elapsed_s, or row numbers)."""
    if "elapsed_s" in frame:
        return np.array(pd.to_numeric(frame["elapsed_s"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    return np.arange(len(frame), dtype="float64")


def segments(labels: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """Return (first row, row after last, value) for each stretch of equal consecutive labels."""
    out: list[tuple[int, int, Any]] = []
    for i, value in enumerate(labels):
        if out and out[-1][2] == value:
            out[-1] = (out[-1][0], i + 1, value)
        else:
            out.append((i, i + 1, value))
    return out


def phase_segments(frame: pd.DataFrame, max_segments: int = 12) -> list[tuple[int, int, str]]:
    """Return the phase stretches, merging 'cycle1-05s'-style sub-phases into 'cycle1' when there are many."""
    if "phase" not in frame:
        return []
    names = frame["phase"].fillna("").astype(str).tolist()
    segs = segments(names)
    while len(segs) > max_segments:
        shorter = [re.sub(r"[-_ .][^-_ .]*$", "", n) for n in names]
        if shorter == names:
            break
        names = shorter
        segs = segments(names)
    return segs


def _span(x: np.ndarray, first: int, stop: int) -> tuple[float, float]:
    return float(x[first]) - 0.5, float(x[stop - 1]) + 0.5


def shade_phases(axes: Sequence[Any], frame: pd.DataFrame, x: np.ndarray, top: Any | None = None,
                 fontsize: float = 13) -> list[tuple[int, int, str]]:
    """Shade phases as alternating bands on every axis; name them above `top`."""
    from matplotlib.transforms import blended_transform_factory

    segs = phase_segments(frame)
    if not segs or (len(segs) == 1 and not segs[0][2]):
        return segs
    lo, hi = float(np.nanmin(x)) - 0.5, float(np.nanmax(x)) + 0.5
    for i, (a, b, name) in enumerate(segs):
        x0, x1 = _span(x, a, b)
        for ax in axes:
            ax.axvspan(x0, x1, color=PHASE_SHADES[i % 2], zorder=0, lw=0)
            if i:
                ax.axvline(x0, color="#BBBBBB", lw=1, zorder=0.5)
        if top is not None and name:
            width = (x1 - x0) / max(hi - lo, 1e-9)
            # Too narrow a band gets no name rather than overlapping text.
            if width * 95 >= min(len(name), 14) * fontsize / 13:
                text = name if len(name) <= 14 else name[:13] + "…"
                top.text((x0 + x1) / 2, 1.02, text, ha="center", va="bottom", fontsize=fontsize,
                         color="#333333", transform=blended_transform_factory(top.transData, top.transAxes),
                         clip_on=False)
    return segs


def fault_segments(frame: pd.DataFrame) -> list[tuple[int, int, str]]:
    """Return the stretches of seconds with a fault active (kind != none)."""
    if "fault" not in frame:
        return []
    kinds = frame["fault"].fillna("none").astype(str).tolist()
    return [s for s in segments(kinds) if s[2] not in ("none", "", "nan")]


def fault_colour(kind: str) -> str:
    return FAULT_COLOURS.get(kind, OTHER_FAULT)


def shade_faults(axes: Sequence[Any], frame: pd.DataFrame, x: np.ndarray, alpha: float = 0.3) -> list[str]:
    """Shade fault windows on every axis in their kind's colour; return the kinds seen."""
    kinds = []
    for a, b, kind in fault_segments(frame):
        x0, x1 = _span(x, a, b)
        for ax in axes:
            ax.axvspan(x0, x1, color=fault_colour(kind), alpha=alpha, zorder=0.6, lw=0)
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def violation_mask(frame: pd.DataFrame) -> np.ndarray:
    if "slo_violation" not in frame:
        return np.zeros(len(frame), bool)
    return pd.to_numeric(frame["slo_violation"], errors="coerce").fillna(0).to_numpy() > 0


def down_mask(frame: pd.DataFrame) -> np.ndarray:
    if "target_up" not in frame:
        return np.zeros(len(frame), bool)
    return pd.to_numeric(frame["target_up"], errors="coerce").fillna(0).to_numpy() == 0


def bars(ax: Any, x: np.ndarray, mask: np.ndarray, y: float, height: float, colour: str, **kw: Any) -> None:
    """Draw the True stretches of mask as horizontal bars at height y."""
    spans = [_span(x, a, b) for a, b, v in segments(mask.tolist()) if v]
    if spans:
        ax.broken_barh([(x0, x1 - x0) for x0, x1 in spans], (y, height), color=colour, **kw)


def use_log(v: np.ndarray) -> bool:
    """Tell whether positive values span enough decades to need a log axis."""
    pos = v[np.isfinite(v) & (v > 0)]
    return len(pos) > 1 and float(pos.max()) / max(float(np.percentile(pos, 5)), 1e-9) > 30


def plain_log_ticks(axis: Any) -> None:
    """Label a log axis at 1, 2, 5 x 10^n with plain numbers (no 4x10^3 notation)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def thousands(axis: Any) -> None:
    """Label a linear axis 12,500 rather than 12500."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"))


def log_axis(ax: Any) -> None:
    """Switch ax to a log y axis with plain-number tick labels."""
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)


def slo_line(ax: Any, value: float | None, text: str) -> None:
    if value is not None and math.isfinite(value):
        ax.axhline(value, color=SLO_COLOUR, ls="--", lw=2.2, label=text, zorder=3)


def legend_patches(fault_kinds: Sequence[str], phases: bool, violations: bool = True,
                   down: bool = False, phase_text: str = "phase (named on top)") -> list[Any]:
    from matplotlib.patches import Patch

    handles = []
    if phases:
        handles.append(Patch(facecolor=PHASE_SHADES[0], edgecolor="#BBBBBB", label=phase_text))
    handles += [Patch(facecolor=fault_colour(k), alpha=0.45, label=f"fault injected: {k}") for k in fault_kinds]
    if violations:
        handles.append(Patch(facecolor=SLO_COLOUR, label="SLO violated"))
    if down:
        handles.append(Patch(facecolor="#222222", label="target down / no data"))
    return handles


# ---------------------------------------------------------------- runs and datasets


def _legend_right(ax: Any, **kw: Any) -> None:
    """Put ax's legend to the right of the plot, where it hides no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)


def run_timeline(frame: pd.DataFrame, slo: Mapping[str, float], title: str) -> Any:
    """Plot a run's metrics over time with phases, faults and SLO violations."""
    x = elapsed(frame)
    fig = new_figure(16, 18)
    axes = fig.subplots(7, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.8, 1.8, 1.8, 1.8, 0.8]})
    lat, thr, err, cpu, mem, usr, strip = axes

    p50, p95 = values(frame, "latency_p50_ms"), values(frame, "latency_p95_ms")
    lat.plot(x, p95, color=BLUE, lw=2.4, label="p95 latency\n(95% of requests faster)")
    lat.plot(x, p50, color=SKY, lw=2.0, label="median (p50) latency")
    slo_line(lat, slo.get("latency_p95_ms"), f"SLO: p95 ≤ {slo.get('latency_p95_ms', 0):,.0f} ms")
    viol = violation_mask(frame)
    if viol.any():
        lat.scatter(x[viol], p95[viol], s=22, color=SLO_COLOUR, zorder=4, label="second that violated the SLO")
    if use_log(np.concatenate([p50, p95])):
        log_axis(lat)
        lat.set_ylabel("latency\n(ms, log scale)")
    else:
        lat.set_ylabel("latency (ms)")
        lat.set_ylim(bottom=0)
        thousands(lat.yaxis)
    lat.set_title("Response time seen by the load generator", loc="left", pad=30)

    thr.plot(x, values(frame, "rps"), color=BLUE, label="client: completed")
    thr.plot(x, values(frame, "srv_rps"), color=GREEN, ls="--", label="server (Prometheus)")
    thr.set_ylabel("requests/s")
    thr.set_ylim(bottom=0)
    thr.set_title("Throughput", loc="left")

    e = values(frame, "error_rate")
    err.plot(x, e, color=VERMILLION, label="client error rate")
    err.plot(x, values(frame, "srv_error_rate"), color=PURPLE, ls="--", label="server 5xx rate")
    slo_line(err, 100 * slo["error_rate"] if slo.get("error_rate") is not None else None,
             f"SLO: errors ≤ {100 * slo.get('error_rate', 0):g} %")
    err.set_ylabel("errors (%)")
    top = float(np.nanmax(np.append(e[np.isfinite(e)], 0.0)))
    err.set_ylim(0, max(2.5 * 100 * slo.get("error_rate", 0.02), top * 1.15))
    err.set_title("Errors (% of requests)", loc="left")

    cpu.plot(x, values(frame, "cpu_percent"), color=BLUE, label="target CPU")
    cpu.set_ylabel("CPU\n(% of one core)")
    cpu.set_ylim(bottom=0)
    cpu.set_title("Target CPU (all its processes; 100 % = one core busy)", loc="left")

    mem.plot(x, values(frame, "rss_mb"), color=GREEN, label="target memory (RSS)")
    mem.set_ylabel("memory (MiB)")
    mem.set_ylim(bottom=0)  # from zero: a 2 MiB wobble must not look like a leak
    mem.set_title("Target memory (resident set of all its processes)", loc="left")

    u = values(frame, "users")
    usr.fill_between(x, np.nan_to_num(u), color="#CCCCCC", alpha=0.5, step="mid", lw=0)
    usr.plot(x, u, color="#333333", drawstyle="steps-mid", label="running users")
    usr.set_ylabel("users")
    usr.set_ylim(0, max(1.0, float(np.nanmax(np.append(u[np.isfinite(u)], 0.0)))) * 1.15)
    usr.set_title("Load: simulated users", loc="left")

    down = down_mask(frame)
    bars(strip, x, viol, 1.1, 0.8, SLO_COLOUR)
    bars(strip, x, down, 0.1, 0.8, "#222222")
    strip.set_yticks([0.5, 1.5], ["target down", "SLO violated"])
    strip.set_ylim(0, 2)
    strip.grid(False)
    strip.set_xlabel("time since the start of the run (s)")

    panels = [lat, thr, err, cpu, mem, usr, strip]
    segs = shade_phases(panels, frame, x, top=lat)
    kinds = shade_faults(panels, frame, x)
    for ax in panels[:-1]:
        _legend_right(ax)
    lat.set_xlim(float(np.nanmin(x)) - 0.5, float(np.nanmax(x)) + 0.5)
    fig.suptitle(title)
    fig.legend(handles=legend_patches(kinds, bool(segs), True, bool(down.any())), loc="outside lower center",
               ncols=4, frameon=False)
    return fig


def run_grid(runs: Sequence[tuple[str, pd.DataFrame, Mapping[str, float]]], columns: int = 3) -> Any:
    """Plot small p95-latency timelines of many runs, one panel each, with faults and violations."""
    n = len(runs)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = new_figure(5.2 * cols, 3.3 * rows + 1.2)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharey=True)).ravel()
    all_kinds: list[str] = []
    # One y scale for every panel, so that runs compare at a glance.
    log = use_log(np.concatenate([values(frame, "latency_p95_ms") for _, frame, _ in runs]))
    from matplotlib.transforms import blended_transform_factory

    for ax, (name, frame, slo) in zip(axes, runs):
        x = elapsed(frame)
        p95 = values(frame, "latency_p95_ms")
        ax.plot(x, p95, color=BLUE, lw=1.6)
        slo_line(ax, slo.get("latency_p95_ms"), "SLO")
        viol = violation_mask(frame)
        if viol.any():
            ax.scatter(x[viol], np.ones(int(viol.sum())), marker="|", s=60, color=SLO_COLOUR, clip_on=False,
                       zorder=4, transform=blended_transform_factory(ax.transData, ax.transAxes))
        shade_phases([ax], frame, x)
        all_kinds += [k for k in shade_faults([ax], frame, x) if k not in all_kinds]
        ax.set_title(name if len(name) <= 32 else name[:31] + "…", fontsize=13)
        ax.tick_params(labelsize=11)
        ax.set_xlabel("time (s)", fontsize=12)
        ax.set_ylabel("p95 (ms)", fontsize=12)
    if log:
        log_axis(axes[0])
    else:
        axes[0].set_ylim(bottom=0)
        thousands(axes[0].yaxis)
    for ax in axes[n:]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=BLUE, lw=2, label="p95 latency (ms)"),
               Line2D([], [], color=SLO_COLOUR, ls="--", lw=2, label="SLO threshold"),
               Line2D([], [], color=SLO_COLOUR, marker="|", ls="", markersize=12, label="SLO violated"),
               *legend_patches(all_kinds, phases=True, violations=False, phase_text="phase (alternating bands)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), frameon=False)
    fig.suptitle("Every run at a glance: p95 latency over time")
    return fig


def merge_names(shares: Mapping[str, float], limit: int) -> tuple[dict[str, float], bool]:
    """Merge 'cycle1-05s'-style names into 'cycle1' (summing shares) while there are more than limit."""
    out, merged = dict(shares), False
    while len(out) > limit:
        shorter: dict[str, float] = {}
        for name, share in out.items():
            key = re.sub(r"[-_ .][^-_ .]*$", "", name)
            shorter[key] = shorter.get(key, 0.0) + share
        if len(shorter) == len(out):
            break
        out, merged = shorter, True
    return out, merged


def dataset_shares(info: Mapping[str, Any], max_bars: int = 12) -> Any:
    """Plot the dataset's share of seconds per phase, per fault, per SLO state, and runs per scenario."""
    fig = new_figure(15, 10)
    (a, b), (c, d) = fig.subplots(2, 2)

    def hbar(ax, shares: Mapping[str, float], title: str, colours=None, percent: bool = True):
        items = sorted(shares.items(), key=lambda kv: -kv[1])
        if len(items) > max_bars:
            rest = sum(v for _, v in items[max_bars - 1:])
            items = items[:max_bars - 1] + [(f"{len(items) - max_bars + 1} others", rest)]
        names = [k or "(none)" for k, _ in items][::-1]
        vals = [100 * v if percent else v for _, v in items][::-1]
        cols = [(colours or {}).get(k, BLUE) for k, _ in items][::-1]
        ax.barh(names, vals, color=cols)
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:.1f} %" if percent else f" {v:g}", va="center", fontsize=13)
        ax.set_title(title, loc="left")
        ax.set_xlim(0, max(vals + [1]) * 1.25)
        ax.grid(axis="y", visible=False)

    phases, merged = merge_names(info.get("phase_share", {}), max_bars)
    hbar(a, phases, "Share of seconds per phase" + (" (sub-phases merged)" if merged else ""))
    a.set_xlabel("% of all seconds")
    fault_cols = {k: fault_colour(k) for k in info.get("fault_share", {})}
    fault_cols["none"] = "#BBBBBB"
    hbar(b, info.get("fault_share", {}), "Share of seconds per injected fault", fault_cols)
    b.set_xlabel("% of all seconds")
    v, down = float(info.get("slo_violation_share", 0)), float(info.get("target_down_share", 0))
    hbar(c, {"SLO violated": v, "within SLO": max(0.0, 1 - v), "target down / no data": down},
         "SLO state of each second",
         {"SLO violated": SLO_COLOUR, "within SLO": GREEN, "target down / no data": "#222222"})
    c.set_xlabel("% of all seconds")
    runs = {name: s.get("runs", 0) for name, s in (info.get("scenarios") or {}).items()}
    hbar(d, runs, "Runs per scenario", percent=False)
    d.set_xlabel("runs")
    fig.suptitle(f"Dataset composition: {info.get('runs', 0)} runs, {info.get('hours', 0):.2f} hours")
    return fig


# ---------------------------------------------------------------- models


def actual_vs_predicted(frame: pd.DataFrame, t: np.ndarray, forecast: np.ndarray, naive: np.ndarray,
                        key: Sequence[str], horizon: int, run: str, upper: np.ndarray | None = None,
                        quantile: float | None = None) -> Any:
    """Plot each key metric's actual values against the LSTM and naive forecasts 1 s and H s ahead.

    `t` holds each window's last input row; `forecast`, `naive` and `upper` (the upper
    quantile, drawn as a band above the median when given) are (n, H, K).
    """
    x = elapsed(frame)
    steps = [1] if horizon == 1 else [1, horizon]
    fig = new_figure(16, 3.6 * len(key) + 1.2)
    axes = np.atleast_2d(fig.subplots(len(key), len(steps), squeeze=False))
    for i, metric in enumerate(key):
        factor = METRICS.get(metric, ("", "", 1.0))[2]
        unit = METRICS.get(metric, ("", "", 1.0))[1]
        actual = values(frame, metric)
        for j, h in enumerate(steps):
            ax = axes[i, j]
            rows = t + h
            ok = rows < len(frame)
            xs = x[rows[ok]]
            pred = forecast[ok, h - 1, i] * factor
            base = naive[ok, h - 1, i] * factor
            truth = actual[rows[ok]]
            ax.plot(x, actual, color="#111111", lw=2.2, label="actual")
            if upper is not None:
                ax.fill_between(xs, np.minimum(pred, upper[ok, h - 1, i] * factor), upper[ok, h - 1, i] * factor,
                                color=BLUE, alpha=0.18, lw=0,
                                label=f"LSTM median to p{round(100 * (quantile or 0.9))} band")
            ax.plot(xs, pred, color=BLUE, lw=2.2, label="LSTM forecast (median)")
            # Drawn last and dotted: an LSTM that copies the past hides under it otherwise.
            ax.plot(xs, base, color="#444444", lw=1.8, ls=":", label="naive persistence (last value seen)")
            good = np.isfinite(truth)
            mae = float(np.mean(np.abs(pred[good] - truth[good]))) if good.any() else float("nan")
            mae_n = float(np.mean(np.abs(base[good] - truth[good]))) if good.any() else float("nan")
            ax.set_title(f"{METRICS.get(metric, (metric,))[0]}, {h} s ahead\n"
                         f"MAE: LSTM {_num(mae)} {unit}, naive {_num(mae_n)} {unit}", loc="left", fontsize=15)
            ax.set_ylabel(label(metric))
            if metric.startswith("latency") and use_log(actual):
                log_axis(ax)
            else:
                top = float(np.nanmax(np.concatenate([actual[np.isfinite(actual)], pred, [0.0]])))
                ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
                thousands(ax.yaxis)
                if top == 0:
                    ax.text(0.5, 0.5, "always 0 in this run", transform=ax.transAxes, ha="center",
                            fontsize=15, color="#555555")
            if i == len(key) - 1:
                ax.set_xlabel("time in the held-out run (s)")
    handles, labels_ = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle(f"Actual vs predicted on held-out run {run}")
    return fig


def error_by_horizon(result: Mapping[str, Any]) -> Any:
    """Plot RelMAE (or MAE where it is undefined) by horizon step, LSTM vs every baseline."""
    data = result["data"]
    key, H = data["key_metrics"], int(data["horizon_s"])
    cols = 2 if len(key) > 1 else 1
    rows = math.ceil(len(key) / cols)
    fig = new_figure(15, 4.6 * rows + 1.0)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    steps = np.arange(1, H + 1)
    for ax, metric in zip(axes, key):
        series = {name: scores[metric] for name, scores in result["forecast"].items() if metric in scores}
        # RelMAE (metrics.json from before the textbook MASE called it "mase").
        rel = {name: s.get("relmae", s["mase"]) for name, s in series.items()}
        use_mase = any(v is not None for r in rel.values() for v in r)
        name_, unit, factor = METRICS.get(metric, (metric, "", 1.0))
        for model in [m for m in series if m != "lstm"] + (["lstm"] if "lstm" in series else []):
            colour, width, text = MODEL_STYLES.get(model, ("#000000", 2.0, model))
            ys = [np.nan if v is None else (v if use_mase else v * factor)
                  for v in (rel[model] if use_mase else series[model]["mae"])]
            ax.plot(steps, ys, color=colour, lw=width, marker="o", ms=7 if model == "lstm" else 5,
                    ls="--" if model == "persistence" else "-", label=text, zorder=5 if model == "lstm" else 3)
        if use_mase:
            ax.axhline(1.0, color="#222222", lw=1, ls=":")
            lo, hi = ax.get_ylim()
            lo, hi = min(lo, 0.95), max(hi, 1.05)
            ax.axhspan(lo, 1.0, color=GREEN, alpha=0.08, lw=0, zorder=0)
            ax.text(0.01, 0.02, "better than naive", transform=ax.transAxes, fontsize=12, color=GREEN)
            ax.set_ylim(lo, hi)
            ax.set_ylabel("RelMAE (1 = naive)")
            ax.set_title(f"{name_}: error relative to naive", loc="left")
        else:
            ax.set_ylabel(f"MAE ({unit})")
            ax.set_title(f"{name_}: MAE (RelMAE undefined)", loc="left")
            ax.set_ylim(bottom=0)
            if ax.get_ylim()[1] <= 0:
                ax.set_ylim(0, 1)
            ax.text(0.5, 0.6, "naive persistence is exact here:\nthe metric did not change in the\n"
                              "held-out windows, so RelMAE is undefined", transform=ax.transAxes,
                    ha="center", fontsize=13, color="#555555")
        ax.set_xlabel("seconds ahead (horizon step)")
        ax.set_xticks(steps if H <= 15 else steps[:: max(1, H // 10)])
    for ax in axes[len(key):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(labels)), frameon=False)
    fig.suptitle("Forecast error by horizon: LSTM vs baselines (lower is better)")
    return fig


def warning_timeline(frame: pd.DataFrame, t: np.ndarray, probability: np.ndarray, threshold: float,
                     alarms: Mapping[str, np.ndarray], horizon: int, run: str) -> Any:
    """Plot the early-warning probability over a held-out run with violations and alarms."""
    x = elapsed(frame)
    fig = new_figure(15, 9)
    ax, strip = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.6]})
    viol = violation_mask(frame)
    for a, b, v in segments(viol.tolist()):
        if v:
            x0, x1 = _span(x, a, b)
            ax.axvspan(x0, x1, color=SLO_COLOUR, alpha=0.18, lw=0, zorder=0)
    ax.plot(x[t], probability, color=BLUE, lw=2.6, label=f"P(SLO violated within the next {horizon} s)")
    ax.axhline(threshold, color="#222222", ls="--", lw=2, label=f"alarm threshold {threshold:.2f}")
    ax.set_ylim(-0.02, 1.3)  # headroom above 1 holds the legend clear of the curve
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("probability")
    ax.set_title("LSTM early-warning head", loc="left")
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color=SLO_COLOUR, alpha=0.3))
    labels.append("seconds that violated the SLO")
    ax.legend(handles, labels, loc="upper left", ncols=3)

    names = list(alarms)
    for i, name in enumerate(names):
        y = len(names) - i
        colour = MODEL_STYLES.get(name, (BLUE,))[0]
        mask = np.zeros(len(frame), bool)
        mask[t[np.asarray(alarms[name]) > 0]] = True
        bars(strip, x, mask, y - 0.35, 0.7, colour)
    bars(strip, x, viol, -0.35, 0.7, SLO_COLOUR)
    strip.set_yticks(range(len(names), -1, -1),
                     [ALERT_LABELS.get(n, n).replace("\n", " ") for n in names] + ["SLO violated"])
    strip.set_ylim(-0.7, len(names) + 0.7)
    strip.grid(False)
    strip.set_title("When each alert fires (an alarm before the red bar is an early warning)", loc="left")
    strip.set_xlabel("time in the held-out run (s)")
    ax.set_xlim(float(np.nanmin(x)) - 0.5, float(np.nanmax(x)) + 0.5)
    fig.suptitle(f"Early warning on held-out run {run}")
    return fig


def reliability(result: Mapping[str, Any]) -> Any:
    """Plot the warning probability's reliability diagram: observed share of violations per probability bin."""
    cal = result.get("calibration") or {}
    bins = [b for b in cal.get("bins", []) if b.get("windows")]
    fig = new_figure(11, 6.5)
    a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    a.plot([0, 1], [0, 1], color="#888888", ls="--", lw=1.5, label="perfectly calibrated")
    if bins:
        a.plot([x["mean_probability"] for x in bins], [x["observed"] for x in bins], "o-", color=BLUE, lw=2.2,
               label="LSTM warning head")
    if cal.get("base_rate") is not None:
        a.axhline(cal["base_rate"], color=ORANGE, ls=":", lw=1.5, label="base rate")
    a.set_xlim(0, 1)
    a.set_ylim(0, 1)
    a.set_xlabel("predicted P(SLO violated within H s)")
    a.set_ylabel("observed share of windows that broke it")
    a.legend(loc="upper left", frameon=False)
    b.bar([x["low"] + 0.05 for x in cal.get("bins", [])], [x["windows"] for x in cal.get("bins", [])],
          width=0.09, color=BLUE)
    b.set_xlim(0, 1)
    b.set_xlabel("predicted probability")
    b.set_ylabel("windows")
    brier = cal.get("brier")
    fig.suptitle("Calibration of the warning probability" + (
        f": Brier {brier:.3f} (base rate {cal['brier_base_rate']:.3f})" if brier is not None else ""))
    return fig


def lead_time(result: Mapping[str, Any]) -> Any:
    """Plot F1 and mean lead time of the LSTM warning against the alert baselines."""
    ew = result["early_warning"]
    names = [n for n in ("lstm", "lstm_upper", "lstm_forecast", "reactive", "predict_linear", "always_on")
             if isinstance(ew.get(n), dict)]
    fig = new_figure(15, 6.5)
    a, b = fig.subplots(1, 2)
    labels = [ALERT_LABELS.get(n, n) for n in names]
    colours = [MODEL_STYLES.get(n, (BLUE,))[0] for n in names]
    f1 = [ew[n].get("f1_in_budget", ew[n].get("f1")) or 0.0 for n in names]
    a.bar(labels, f1, color=colours)
    for i, v in enumerate(f1):
        a.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=14)
    goals = result.get("goals", {})
    goal = float((goals.get("warning_f1") or goals.get("lstm_warning_f1") or {}).get("goal", ">= 0.8").split()[1])
    a.axhline(goal, color="#222222", ls=":", lw=1.5, label=f"goal F1 ≥ {goal:g}")
    a.set_ylim(0, 1.1)
    a.set_ylabel("event F1 within the false-alarm budget")
    a.set_title("Accuracy of the warnings (0 when over budget)", loc="left")
    a.legend(loc="upper right")
    leads = [ew[n].get("mean_lead_s") for n in names]
    b.bar(labels, [v or 0.0 for v in leads], color=colours)
    for i, (n, v) in enumerate(zip(names, leads)):
        onsets, detected = ew[n].get("episodes", ew[n].get("onsets")), ew[n].get("detected")
        text = "none caught" if v is None else f"{v:.1f} s"
        if onsets:
            text += f"\ncaught {detected} of {onsets}"
        b.text(i, v or 0.0, text, ha="center", va="bottom", fontsize=13)
    horizon = float(ew.get("lstm", {}).get("mean_achievable_lead_s") or result["data"]["horizon_s"])
    b.axhline(horizon, color="#222222", ls=":", lw=1.5, label=f"mean achievable lead, {horizon:.0f} s")
    b.legend(loc="upper right")
    top = max([v or 0.0 for v in leads] + [horizon])
    b.set_ylim(0, top * 1.45 + 0.5)
    b.set_ylabel("mean lead time (s)")
    b.set_title("How early the first alarm comes before a violation", loc="left")
    for ax in (a, b):
        ax.tick_params(axis="x", labelsize=12)
        ax.grid(axis="x", visible=False)
    fig.suptitle("Early warning: LSTM vs simple alert rules")
    return fig


def _regime_colour(name: str, seen: dict[str, str]) -> str:
    if name in seen:
        return seen[name]
    base = name.split(":")[-1] if name.startswith("fault:") else re.sub(r"-\d+$", "", name)
    colour = FAULT_COLOURS.get(base) if name.startswith("fault:") else REGIME_COLOURS.get(base)
    if colour is None:
        colour = ["#0072B2", "#F0E442", "#999999", "#56B4E9", "#000000"][len(seen) % 5]
    elif name != base and not name.startswith("fault:"):
        # "stable-2": the same hue, darker, so variants of a name stay related.
        import matplotlib.colors as mcolors

        r, g, bl = mcolors.to_rgb(colour)
        k = 0.6 ** (int(name.rsplit("-", 1)[1]) - 1)
        colour = mcolors.to_hex((r * k, g * k, bl * k))
    seen[name] = colour
    return colour


def regimes_timeline(frame: pd.DataFrame, predicted: np.ndarray, truth: np.ndarray, slo: Mapping[str, float],
                     run: str) -> Any:
    """Plot regime bands (KMeans) against the system states (the ground truth) under the run's p95 latency."""
    from matplotlib.patches import Patch

    x = elapsed(frame)
    fig = new_figure(15, 9.5)
    ax, reg, tru = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1, 1]})
    p95 = values(frame, "latency_p95_ms")
    ax.plot(x, p95, color=BLUE, lw=2.2, label="p95 latency")
    slo_line(ax, slo.get("latency_p95_ms"), "SLO")
    if use_log(p95):
        log_axis(ax)
    else:
        thousands(ax.yaxis)
    ax.set_ylabel("p95 latency (ms)")
    ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=13, frameon=False)
    ax.set_title("p95 latency, for context", loc="left", pad=28)
    colours: dict[str, str] = {}
    legends = []
    for strip, labels_, title in ((reg, predicted, "KMeans regime (the model)"),
                                  (tru, truth, "system state by rule (the ground truth)")):
        names = []
        for a, b, name in segments([str(v) for v in labels_]):
            x0, x1 = _span(x, a, b)
            strip.axvspan(x0, x1, color=_regime_colour(name, colours), lw=0)
            if name not in names:
                names.append(name)
        strip.set_yticks([])
        strip.grid(False)
        strip.set_title(title, loc="left")
        legends.append(strip.legend(handles=[Patch(color=colours[n], label=n) for n in names],
                                    loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=13, frameon=False))
    tru.set_xlabel("time in the held-out run (s)")
    shade_phases([ax], frame, x, top=ax)
    shade_faults([ax], frame, x, alpha=0.25)
    ax.set_xlim(float(np.nanmin(x)) - 0.5, float(np.nanmax(x)) + 0.5)
    fig.suptitle(f"Operating regimes on held-out run {run}")
    return fig


def product_clusters(profiles: pd.DataFrame | None, names: Sequence[str], clusters: Sequence[str],
                     centroids: np.ndarray | None, centroid_names: Sequence[str]) -> Any:
    """Scatter endpoints by p50 vs p95 latency, coloured by cluster and labelled."""
    fig = new_figure(12, 8.5)
    ax = fig.subplots()
    rank = {"light": 0, "heavy": 2}
    order = sorted(dict.fromkeys(centroid_names), key=lambda n: (rank.get(n, 1), n))
    palette = {"light": GREEN, "medium": ORANGE, "heavy": VERMILLION}
    extra = [BLUE, PURPLE, SKY, "#8C564B"]
    colours = {n: palette.get(n, extra[i % len(extra)]) for i, n in enumerate(order)}
    if profiles is not None and len(profiles):
        for cluster in order:
            mine = [i for i, c in enumerate(clusters) if c == cluster]
            if not mine:
                continue
            p = profiles.iloc[mine]
            ax.scatter(p["p50_ms"], p["p95_ms"], s=220, color=colours[cluster], edgecolor="black",
                       label=f"cluster “{cluster}”", zorder=4)
            for i in mine:
                ax.annotate(names[i], (profiles["p50_ms"].iloc[i], profiles["p95_ms"].iloc[i]),
                            xytext=(10, 6), textcoords="offset points", fontsize=14)
    if centroids is not None:
        for (p50, p95), cluster in zip(centroids, centroid_names):
            ax.scatter([p50], [p95], marker="X", s=380, color=colours[cluster], edgecolor="black",
                       alpha=0.55, zorder=3)
        ax.scatter([], [], marker="X", s=200, color="#AAAAAA", edgecolor="black", label="cluster centre")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        plain_log_ticks(axis)
    ax.margins(0.25)
    ax.set_xlabel("median (p50) latency (ms, log scale)")
    ax.set_ylabel("p95 latency (ms, log scale)")
    ax.legend(loc="upper left")
    fig.suptitle("Endpoints (products) grouped by how they perform under load")
    return fig


def training_curves(history: Mapping[str, Sequence[float]], warn_weight: float | None = None) -> Any:
    """Plot loss and validation loss per epoch, marking the best validation epoch."""
    fig = new_figure(14, 7.5)
    ax = fig.subplots()
    styles = {"loss": (BLUE, "-", "training loss"), "val_loss": (ORANGE, "-", "validation loss")}
    for key, (colour, ls, text) in styles.items():
        ys = history.get(key) or []
        if ys:
            ax.plot(range(1, len(ys) + 1), ys, color=colour, ls=ls, marker="o", ms=6, lw=2.6, label=text)
    parts = {"forecast_loss": (GREEN, "forecast head (training)"),
             "warning_loss": (PURPLE, "warning head (training)" + (f", weighted x{warn_weight:g} in the total"
                                                                   if warn_weight is not None else ""))}
    for key, (colour, text) in parts.items():
        ys = history.get(key) or []
        if ys:
            ax.plot(range(1, len(ys) + 1), ys, color=colour, lw=1.6, ls="--", label=text)
    val = history.get("val_loss") or []
    if val:
        best = int(np.nanargmin(val))
        ax.scatter([best + 1], [val[best]], s=220, facecolor="none", edgecolor="black", lw=2, zorder=5,
                   label=f"best validation epoch ({best + 1})")
    epochs = max((len(v) for v in history.values() if v), default=1)
    ax.set_xlabel("epoch (one pass over the training windows)")
    ax.set_ylabel("loss (scaled units, lower is better)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, epochs + 0.5)
    handles, labels_ = ax.get_legend_handles_labels()
    fig.legend(handles, labels_, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle("Training curves")
    return fig


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
