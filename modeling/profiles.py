"""Feature profiles: what a model may read.

`lab` (default): every column of a lab run, client side included (the collector knows it).
`live`: only what a monitor sees of a running service from the outside of its clients:
the target's Prometheus metrics, its process tree and the host. The server-side columns
take the client-side names (`latency_p95_ms` is then the server's histogram p95), so one
forecaster, its baselines and the regimes work unchanged; the label stays the ground
truth `slo_violation` of the lab run (client-side SLO), so the live model learns to warn
of what users will see from what the server shows.
"""

from __future__ import annotations

import pandas as pd

from contract.errors import BadInput

from .data import POOLED_FALLBACK

PROFILES = ("lab", "live")

# server column -> the name it takes in the live view
LIVE_RENAME = {
    "srv_rps": "rps", "srv_error_rate": "error_rate", "srv_latency_p50_ms": "latency_p50_ms",
    "srv_latency_p95_ms": "latency_p95_ms", "srv_latency_p99_ms": "latency_p99_ms",
}
LIVE_FEATURES = [
    "rps", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "srv_in_flight",
    "cpu_percent", "rss_mb", "threads", "fds", "target_workers", "sys_cpu_percent",
    "sys_mem_percent", "target_up",
]
KEEP = ["timestamp", "elapsed_s", "phase", "users", "fault", "slo_violation"]


def live_view(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the run as a monitor would see it (server names mapped onto the client ones)."""
    missing = [c for c in LIVE_RENAME if c not in frame.columns]
    if missing:
        raise BadInput(f"{frame.attrs.get('run_id', '<run>')}: column '{missing[0]}' missing "
                       f"(the live profile reads the target's server-side metrics)")
    out = pd.DataFrame({new: frame[old] for old, new in LIVE_RENAME.items()}, index=frame.index)
    for col in KEEP + [c for c in LIVE_FEATURES if c not in LIVE_RENAME.values()]:
        if col in frame.columns:
            out[col] = frame[col]
    out.attrs = dict(frame.attrs)
    return out


def live_row(server: dict, process: dict) -> dict:
    """Build one live-view row from a TargetView sample."""
    row = {new: server.get(old) for old, new in LIVE_RENAME.items()}
    row["srv_in_flight"] = server.get("srv_in_flight")
    row["target_up"] = server.get("target_up", 0)
    row.update({k: v for k, v in process.items() if k in LIVE_FEATURES})
    # The live view has no pooled client window: its targets are the server's per-second
    # values, as `modeling.data.pooled_targets` takes them in training.
    for window_col, second_col in POOLED_FALLBACK.items():
        row.setdefault(window_col, row.get(second_col))
    return row


def apply_profile(runs: list[pd.DataFrame], profile: str) -> list[pd.DataFrame]:
    if profile not in PROFILES:
        raise BadInput(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return runs if profile == "lab" else [live_view(r) for r in runs]
