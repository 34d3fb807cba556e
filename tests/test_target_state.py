"""The target's state folders and child processes never outlive the lab: sweep, exit, parent death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_folder(root: Path, name: str, age_s: float) -> Path:
    path = root / name
    path.mkdir()
    (path / "faults.json").write_text("{}")
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def test_sweep_removes_only_stale_folders_of_dead_owners(tmp_path):
    from target_app.statedir import STALE_AFTER_S, sweep_stale

    gone = dead_pid()
    stale = make_folder(tmp_path, f"lab-target-{gone}-abc_1", STALE_AFTER_S + 5)
    live_owner = make_folder(tmp_path, f"lab-target-{os.getpid()}-def", STALE_AFTER_S + 5)
    fresh = make_folder(tmp_path, f"lab-target-{gone}-ghi", 1)
    unnamed = make_folder(tmp_path, "lab-target-xyz", STALE_AFTER_S + 5)
    other = make_folder(tmp_path, "keep-me", STALE_AFTER_S + 5)
    elsewhere = make_folder(tmp_path, "elsewhere", STALE_AFTER_S + 5)
    link = tmp_path / f"lab-target-{gone}-lnk"
    link.symlink_to(elsewhere)
    old = time.time() - STALE_AFTER_S - 5
    os.utime(link, (old, old), follow_symlinks=False)

    assert sweep_stale(tmp_path) == [stale]
    assert not stale.exists()
    for kept in (live_owner, fresh, unnamed, other, elsewhere / "faults.json"):
        assert kept.exists()
    assert link.is_symlink()


def test_new_state_dir_names_its_owner_and_sweeps_first(tmp_path, monkeypatch):
    import tempfile

    from target_app.statedir import STALE_AFTER_S, new_state_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = make_folder(tmp_path, f"lab-target-{dead_pid()}-old", STALE_AFTER_S + 5)
    made = new_state_dir()
    assert made.parent == tmp_path and made.name.startswith(f"lab-target-{os.getpid()}-")
    assert not stale.exists()


def test_create_app_removes_its_own_temporary_folder_at_exit(tmp_path):
    code = "from target_app.app import create_app; print(create_app().config['STATE_DIR'])"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("LAB_STATE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert Path(out).parent == tmp_path
    assert not Path(out).exists()
    assert list(tmp_path.iterdir()) == []


FORK_AND_ORPHAN = textwrap.dedent("""
    import os, sys, time
    from target_app.server import die_with_parent

    marker, wait_for_orphan = sys.argv[1], sys.argv[2] == "1"
    spawner = os.getpid()
    child = os.fork()
    if child == 0:
        if wait_for_orphan:
            while os.getppid() == spawner:   # the spawner dies before the child arms the signal
                time.sleep(0.01)
        die_with_parent()
        open(marker, "w").write(str(os.getpid()))
        os._exit(0)
    if wait_for_orphan:
        os._exit(0)
    os.waitpid(child, 0)
""")


@pytest.mark.parametrize("orphaned", [False, True])
def test_a_child_whose_spawner_is_already_gone_exits(tmp_path, orphaned):
    marker = tmp_path / "survived"
    subprocess.run([sys.executable, "-c", FORK_AND_ORPHAN, str(marker), "1" if orphaned else "0"],
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=30)
    time.sleep(0.5)   # the orphan has had time to write the marker if it were to survive
    assert marker.exists() is not orphaned


@pytest.mark.slow
def test_sigkill_of_the_lab_leaves_no_target_and_its_folder_is_swept(tmp_path):
    """The parent is SIGKILLed: gunicorn follows it, and the next target removes the folder."""
    from target_app.statedir import STALE_AFTER_S, new_state_dir

    script = textwrap.dedent("""
        import sys, time
        from target_app.server import Target, TargetConfig, free_port
        target = Target(TargetConfig(port=free_port(), workers=1, threads=1)).start()
        print(target.state_dir, target.pid, flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        state_dir, master = parent.stdout.readline().split()
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 20
        while psutil.pid_exists(int(master)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(int(master)), "gunicorn outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
    left = Path(state_dir)
    assert left.exists() and left.parent == tmp_path    # SIGKILL: nobody could remove it
    old = time.time() - STALE_AFTER_S - 5
    os.utime(left, (old, old))

    import tempfile
    saved, tempfile.tempdir = tempfile.tempdir, str(tmp_path)
    try:
        fresh = new_state_dir()
    finally:
        tempfile.tempdir = saved
    assert not left.exists() and fresh.exists()


@pytest.mark.slow
def test_a_named_state_folder_holds_the_state_and_no_temporary_one_is_made(tmp_path, monkeypatch):
    import tempfile

    import requests

    from target_app.server import Target, TargetConfig, free_port

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    named = tmp_path / "run" / "target"
    config = TargetConfig(port=free_port(), workers=1, threads=1, state_dir=named)
    with Target(config) as target:
        resp = requests.post(target.url + "/admin/faults", json={"kind": "errors", "intensity": 0.1},
                             headers={"Authorization": f"Bearer {config.token}"}, timeout=5)
        assert resp.status_code == 201
        assert (named / "faults.json").exists() and (named / "prometheus").is_dir()
    assert (named / "faults.json").exists() and not (named / "prometheus").exists()
    assert list(scratch.iterdir()) == []


SPAWN_FROM_A_FORK = textwrap.dedent("""
    import os, subprocess, sys
    from target_app.server import die_with_parent

    marker = sys.argv[1]
    child = os.fork()          # a process that imported the module long before it spawns
    if child == 0:
        proc = subprocess.Popen([sys.executable, "-c", f"open({marker!r}, 'w').write('ok')"],
                                preexec_fn=die_with_parent)
        os._exit(proc.wait())
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


def test_die_with_parent_knows_its_spawner_in_a_forked_process(tmp_path):
    """The spawner is the process that forks the child, not the one that imported the module."""
    marker = tmp_path / "ran"
    done = subprocess.run([sys.executable, "-c", SPAWN_FROM_A_FORK, str(marker)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30)
    assert done.returncode == 0 and marker.read_text() == "ok"
