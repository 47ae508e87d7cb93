"""The work-directory lock (`bert_jax.state.workdir_lock`), with real processes holding it: a live
holder refuses the next run naming host, pid and start, and nothing is written; a holder killed
with SIGKILL is taken over with a warning; of runs racing for a free or a stale lock, exactly one
wins. In-process cases (a pid now another process's, another host, an unreadable lock):
tests/unit/test_workdir_lock.py; the `bert-jax pretrain` side: test_resilience.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bert_jax.errors import WorkdirInUse
from bert_jax.state.workdir_lock import LOCK_NAME, locked, process_start

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
               JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


HOLD = """
    import sys, time
    from bert_jax.state.workdir_lock import locked
    with locked(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
"""


def _holder(workdir: Path) -> subprocess.Popen:
    process = _python(HOLD, str(workdir))
    assert process.stdout.readline() == "held\n", process.stderr.read()
    return process


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


def test_a_live_holder_refuses_the_next_run_naming_it_and_nothing_is_written(tmp_path):
    workdir = tmp_path / "run"
    holder = _holder(workdir)
    try:
        recorded = json.loads((workdir / LOCK_NAME).read_text())
        assert recorded["host"] == socket.gethostname() and recorded["pid"] == holder.pid
        assert recorded["process_start"] == process_start(holder.pid)
        before = _listing(workdir)
        with pytest.raises(WorkdirInUse) as refused, locked(workdir):
            pass
        message = str(refused.value)
        assert (f"work directory {workdir} is in use: another run holds it (host {socket.gethostname()}, "
                f"pid {holder.pid}, started {recorded['started']})") in message
        assert _listing(workdir) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    workdir = tmp_path / "run"
    holder = _holder(workdir)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    stale = json.loads((workdir / LOCK_NAME).read_text())
    with caplog.at_level(logging.WARNING), locked(workdir):
        assert json.loads((workdir / LOCK_NAME).read_text())["pid"] == os.getpid()
    [warning] = [r.getMessage() for r in caplog.records if "taking over the lock" in r.getMessage()]
    assert f"pid {holder.pid}, started {stale['started']}" in warning
    assert f"no process {holder.pid} is running" in warning
    assert sorted(p.name for p in workdir.iterdir()) == []


RACE = """
    import os, sys, time
    from bert_jax.errors import WorkdirInUse
    from bert_jax.state import workdir_lock
    # Each racer pauses between reading the lock and acting on what it read: the window in which a
    # lock that is not taken atomically (a check, then a write) lets every one of them in.
    read = workdir_lock.WorkdirLock._read
    def slow_read(self, path):
        holder = read(self, path)
        time.sleep(0.2)
        return holder
    workdir_lock.WorkdirLock._read = slow_read
    lock = workdir_lock.WorkdirLock(sys.argv[1])
    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.001)
    try:
        lock.acquire()
    except WorkdirInUse:
        print("refused", flush=True)
    else:
        print("won", flush=True)
        time.sleep(3)  # still holding while the others try
        lock.release()
"""


@pytest.mark.parametrize("stale", [False, True], ids=["free lock", "stale lock"])
def test_of_runs_racing_for_the_lock_exactly_one_wins(tmp_path, stale):
    workdir, go = tmp_path / "run", tmp_path / "go"
    workdir.mkdir()
    if stale:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        (workdir / LOCK_NAME).write_text(json.dumps(
            {"host": socket.gethostname(), "pid": int(dead.stdout), "started": "2026-01-01T00:00:00+00:00"}))
    racers = [_python(RACE, str(workdir), str(go)) for _ in range(6)]
    assert [p.stdout.readline() for p in racers] == ["ready\n"] * 6
    go.touch()
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert outcomes == ["refused"] * 5 + ["won"], [p.stderr for p in racers]
    assert sorted(p.name for p in workdir.iterdir()) == []  # released, no leftovers
