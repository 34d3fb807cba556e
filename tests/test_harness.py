"""The harness's checks of what it is pointed at: --host and the monitor's --target."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from contract.errors import BadInput
from loadtests.harness import check_host


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://127.9.8.7:1/", "http://[::1]:5000",
                                 "http://localhost:5000", "https://LOCALHOST", "http://127.0.0.1:65535/base"])
def test_loopback_literals_and_localhost_are_accepted(url):
    assert check_host(url, allow_remote=False) == url.rstrip("/")


def test_no_dns_lookup_decides_what_is_loopback(monkeypatch):
    """A name that resolves to loopback now may resolve elsewhere when Locust asks (DNS rebinding)."""
    calls = []

    def fake_getaddrinfo(host, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(BadInput, match=r"^--host: rebind\.example is not a loopback address .*--allow-remote$"):
        check_host("http://rebind.example:5000", allow_remote=False)
    assert check_host("http://localhost:5000", allow_remote=False) == "http://localhost:5000"
    assert calls == []
    assert check_host("http://rebind.example:5000", allow_remote=True) == "http://rebind.example:5000"


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:99999", "port '99999' is not a number from 1 to 65535"),
    ("http://127.0.0.1:abc", "port 'abc' is not a number from 1 to 65535"),
    ("http://127.0.0.1:0", "port 0 is not a number from 1 to 65535"),
    ("http://[::1", "an IPv6 host needs both brackets"),
    ("http://user:pw@127.0.0.1:5000", "a user name or password in the URL is refused"),
    ("http://token@localhost:5000", "a user name or password in the URL is refused"),
    ("http://127.0.0.1:5000/?x=1", "expected a base URL without '?' or '#'"),
    ("ftp://127.0.0.1", "is not an http(s) URL"),
    ("127.0.0.1:5000", "is not an http(s) URL"),
])
@pytest.mark.parametrize("option", ["--host", "--target"])
def test_bad_urls_are_one_line_naming_the_option(url, problem, option):
    for allow_remote in (False, True):
        with pytest.raises(BadInput) as err:
            check_host(url, allow_remote, option=option)
        message = str(err.value)
        assert message.startswith(f"{option}: ") and problem in message, message
        assert "pw" not in message and "token" not in message


@pytest.mark.parametrize("args, option", [
    (["run-scenario", "smoke", "--host", "http://127.0.0.1:99999"], "--host"),
    (["run-scenario", "smoke", "--host", "http://[::1"], "--host"),
    (["monitor", "--target", "http://127.0.0.1:abc", "--model", "nowhere"], "--target"),
    (["monitor", "--target", "http://example.com:5000", "--model", "nowhere"], "--target"),
])
def test_cli_refuses_bad_targets_in_one_line(tmp_path, args, option):
    from lab import app

    result = CliRunner().invoke(app, args + (["--out", str(tmp_path), "--quiet"] if args[0] == "run-scenario" else []))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {option}: ") and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_other_cpu_is_the_host_less_the_target_and_locust():
    import pandas as pd

    from loadtests.harness import other_cpu

    # Two cores: the host 60 % busy is 120 % of a core, of which the target used 70 and Locust 10.
    frame = pd.DataFrame({"sys_cpu_percent": [60.0] * 9 + [100.0], "cpu_percent": [70.0] * 10,
                          "loadgen_cpu_percent": [10.0] * 10})
    figures = other_cpu(frame, cores=2)
    assert figures["other_cpu_pct_median"] == 40.0 and 40.0 < figures["other_cpu_pct_p90"] <= 120.0
    assert other_cpu(frame.drop(columns="loadgen_cpu_percent"), cores=2) == {}
    quiet = frame.assign(sys_cpu_percent=30.0)          # less than the target and Locust: clipped at 0
    assert other_cpu(quiet, cores=2)["other_cpu_pct_median"] == 0.0
