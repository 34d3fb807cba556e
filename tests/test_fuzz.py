"""Fuzz the two parsers users feed files to: scenario TOML and import-csv.

Whatever the input, the outcome is a result or one line of BadInput (exit 2), never
another exception, within a memory bound and a time bound per input. The examples are
derandomized so the suite cannot fail by chance; LAB_FUZZ_RANDOM=1 and
LAB_FUZZ_EXAMPLES=2000 turn this into a longer, random search.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contract.errors import BadInput

MEMORY_LIMIT = 64 * 2**20          # per input, traced Python allocations (numpy and pandas included)
FUZZ = settings(
    max_examples=int(os.environ.get("LAB_FUZZ_EXAMPLES", "100")),
    deadline=timedelta(seconds=5),
    derandomize=not os.environ.get("LAB_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(call) -> object:
    """Run `call`; return its result, or the BadInput, after checking the message and the memory."""
    tracemalloc.start()
    try:
        try:
            return call()
        except BadInput as exc:
            message = str(exc)
            assert message.strip() and "\n" not in message and "Traceback" not in message, repr(message)
            return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"{peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------- scenario TOML

SCALARS = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.integers(min_value=-5, max_value=400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1, max_value=2),
    st.booleans(),
    st.text(max_size=70),
    st.sampled_from(["latency", "errors", "cpu", "memory", "threads", "warm", "", "a/b", "../x"]),
    st.datetimes(),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))
KEYS = {
    "": ["name", "description", "duration_s", "seed", "bogus"],
    "slo": ["latency_p95_ms", "error_rate", "window_s", "nope"],
    "target": ["workers", "threads", "max_worker_rss_mb"],
    "load": ["wait_min_s", "wait_max_s", "max_in_flight"],
    "load.mix": ["browse", "product", "search", "checkout", "stress", "other"],
    "stages": ["name", "until_s", "users", "spawn_rate", "rate", "ramp_s"],
    "faults": ["kind", "start_s", "duration_s", "intensity"],
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)        # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return value.isoformat()            # a local date-time


def table(draw, section: str) -> dict:
    keys = draw(st.lists(st.sampled_from(KEYS[section]) | st.text(min_size=1, max_size=8), max_size=6,
                         unique=True))
    return {k: draw(VALUES) for k in keys}


@st.composite
def scenario_texts(draw) -> str:
    """TOML documents shaped like scenario files, with keys and values anywhere from right to absurd."""
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table(draw, "").items()]
    for section in ("slo", "target", "load", "load.mix"):
        if draw(st.booleans()):
            lines += [f"[{section}]"] + [f"{json.dumps(k)} = {toml_value(v)}"
                                         for k, v in table(draw, section).items()]
    for section in ("stages", "faults"):
        for _ in range(draw(st.integers(0, 4))):
            lines += [f"[[{section}]]"] + [f"{json.dumps(k)} = {toml_value(v)}"
                                           for k, v in table(draw, section).items()]
    return "\n".join(lines) + "\n"


@st.composite
def mutated_builtins(draw) -> str:
    """A built-in scenario file with one line changed, dropped or repeated."""
    from contract.scenario import _builtin_dir

    paths = sorted(Path(str(_builtin_dir())).glob("*.toml"))
    lines = draw(st.sampled_from(paths)).read_text().splitlines()
    i = draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(["value", "drop", "repeat", "text"]))
    if how == "value" and "=" in lines[i]:
        lines[i] = lines[i].split("=", 1)[0] + "= " + toml_value(draw(VALUES))
    elif how == "drop":
        del lines[i]
    elif how == "repeat":
        lines.insert(i, lines[i])
    else:
        lines[i] = draw(st.text(max_size=40))
    return "\n".join(lines) + "\n"


def _check_scenario(text: str) -> None:
    from contract.scenario import Scenario, parse_scenario

    result = outcome(lambda: parse_scenario(text, "fuzz.toml"))
    event("accepted" if isinstance(result, Scenario) else "refused")
    if isinstance(result, Scenario):
        assert parse_scenario(result.to_toml(), "again.toml") == result     # what it accepts, it can write
    else:
        assert str(result).startswith("fuzz.toml: "), str(result)


@FUZZ
@given(scenario_texts())
def test_scenario_files_shaped_like_scenarios(text):
    _check_scenario(text)


@FUZZ
@given(mutated_builtins())
def test_scenario_files_one_edit_away_from_a_builtin(text):
    _check_scenario(text)


@FUZZ
@given(st.text(max_size=400))
def test_scenario_files_of_any_text(text):
    _check_scenario(text)


# ---------------------------------------------------------------- import-csv

CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["", " ", "NaN", "inf", "true", "False", "anomaly", "x", "1e400", "-0", "0x10"]),
    st.text(max_size=12),
)


def stamp(draw, kind: str, start: float, step: float, i: int) -> str:
    if draw(st.integers(0, 49)) == 0:           # a stray value now and then
        return draw(st.one_of(CELLS, st.sampled_from(["4070908800", "99999999999999", "2099-01-01",
                                                      "-99999999999", "1e300", "0", "9999-12-31T23:59:59Z"])))
    t = start + step * i
    if kind == "epoch_s":
        return repr(round(t, 3))
    if kind == "epoch_ms":
        return str(int(t * 1000))
    if kind == "iso":
        from datetime import datetime, timezone

        try:
            return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return str(t)
    if kind == "us":
        from datetime import datetime, timezone

        try:
            return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%m/%d/%Y %H:%M")
        except (OverflowError, OSError, ValueError):
            return str(t)
    return draw(CELLS)


NAMES = st.sampled_from(["value", "cpu_percent", "rps", "label", "Unnamed: 0", "elapsed_s", "a,b", ' "q" ',
                         "Latency (ms)", "timestamp_src", "x" * 200]) | st.text(min_size=1, max_size=10)
NUMBERS = st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-1000, 10**6).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.just(""))


def cell(draw, kind: str) -> str:
    if kind == "numeric":
        return draw(NUMBERS)
    if kind == "label":
        return draw(st.sampled_from(["0", "1", "true", "false", "anomaly", "", "ok", "2"]))
    if kind == "mixed":
        return draw(NUMBERS) if draw(st.integers(0, 9)) else draw(CELLS)
    return draw(CELLS)


@st.composite
def csv_files(draw) -> tuple[bytes, str, str | None, int | None]:
    """A metrics CSV, the timestamp column, the label column and --interval to import it with.

    Mostly close to a real export (a timestamp column, numeric columns, 20 to 60 rows) so
    that both outcomes are common, with every part sometimes wrong.
    """
    extras = draw(st.lists(NAMES, min_size=1, max_size=4, unique_by=lambda n: n.strip())
                  .filter(lambda ns: all(n.strip() != "timestamp" for n in ns)))
    names = draw(st.permutations(["timestamp"] + extras))
    kinds = {n: draw(st.sampled_from(["numeric"] * 6 + ["label", "mixed", "text"])) for n in extras}
    ts_col = draw(st.sampled_from(["timestamp"] * 20 + ["absent", extras[0]]))
    labels = [n for n in extras if kinds[n] == "label"]
    label_col = draw(st.sampled_from([None] * 8 + ["absent"] + labels * 4))
    ts_kind = draw(st.sampled_from(["epoch_s", "epoch_s", "epoch_ms", "iso", "iso", "us", "junk"]))
    start = (draw(st.floats(-1e10, 1e10)) if draw(st.integers(0, 9)) == 0
             else draw(st.sampled_from([1_396_310_400.0] * 12 + [0.0, -1e9, 4e9, 9.2e9])))
    step = draw(st.sampled_from([1.0] * 5 + [5.0, 60.0, 300.0, 0.4, 0.0, -1.0, 86400.0 * 30]))
    rows = draw(st.integers(0, 80)) if draw(st.integers(0, 4)) == 0 else draw(st.integers(20, 60))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    for i in range(rows):
        writer.writerow([stamp(draw, ts_kind, start, step, i) if n == "timestamp" else cell(draw, kinds[n])
                         for n in names])
    data = out.getvalue().encode("utf-8")
    if draw(st.integers(0, 14)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]       # broken bytes somewhere
    interval = draw(st.sampled_from([None] * 6 + [1, 2, 3600]))
    return data, ts_col.strip(), label_col and label_col.strip(), interval


def _check_import(data: bytes, ts_col: str, label_col: str | None, interval: int | None) -> None:
    from collector.importer import import_csv
    from contract.runfolder import read_run

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(data)
        result = outcome(lambda: import_csv(path, timestamp_col=ts_col, label_col=label_col,
                                            out_dir=Path(folder) / "runs", interval_s=interval,
                                            max_rows=20_000))
        # For --hypothesis-show-statistics: how often each outcome comes up.
        event("imported" if not isinstance(result, BadInput) else
              "refused: " + str(result)[len(str(path)) + 2:].split(":")[0][:30])
        if isinstance(result, BadInput):
            assert str(result).startswith(f"{path}"), str(result)
        else:
            run = read_run(result)                   # what it writes is a run folder by the contract
            assert len(run.frame) == run.meta["rows"] <= 20_000


@FUZZ
@given(csv_files())
def test_import_csv_of_generated_metrics_files(case):
    _check_import(*case)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(["timestamp", "ts", ""]))
def test_import_csv_of_any_bytes(data, ts_col):
    _check_import(data, ts_col, None, None)


@pytest.mark.parametrize("text", ["ts,v\n" + "".join(f"{1_396_310_400 + i},{i}\n" for i in range(30)),
                                  "ts,v\n1,2\n"])
def test_the_fuzz_checks_see_both_outcomes(text):
    """The harness above is not vacuous: a good file imports, a bad one is one line."""
    from collector.importer import import_csv

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_text(text)
        result = outcome(lambda: import_csv(path, timestamp_col="ts", out_dir=Path(folder) / "runs"))
        assert isinstance(result, BadInput) == text.endswith("1,2\n")
