"""The work-directory lock (`bert_jax.state.workdir_lock`) in one process: it is released at exit
and taken again by the same process; a lock whose pid now belongs to another process is taken over
with a warning; a holder on another host is refused with the file to remove; an unreadable lock is
refused, not overwritten. With real processes holding or racing for it (killed with SIGKILL,
six racers): tests/integration/test_workdir_lock_processes.py; the `bert-jax pretrain` side:
tests/integration/test_resilience.py."""

from __future__ import annotations

import json
import logging
import os
import socket

import pytest

from bert_jax.errors import WorkdirInUse
from bert_jax.state.workdir_lock import LOCK_NAME, locked, process_start


def test_the_lock_is_released_at_exit_and_taken_again_by_the_same_process(tmp_path):
    workdir = tmp_path / "run"
    with locked(workdir):
        with locked(workdir):  # the demo around its pretraining
            pass
        assert (workdir / LOCK_NAME).exists()
    assert not (workdir / LOCK_NAME).exists()
    with pytest.raises(RuntimeError, match="stopped"), locked(workdir):
        raise RuntimeError("stopped")
    assert not (workdir / LOCK_NAME).exists()


def test_a_lock_whose_pid_now_belongs_to_another_process_is_taken_over(tmp_path, caplog):
    """The pid of a killed run, reused by a process started later (here: this test's own
    parent, alive, with another start time recorded)."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    pid = os.getppid()
    boot, ticks = process_start(pid).split("/")
    (workdir / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00+00:00",
         "process_start": f"{boot}/{int(ticks) + 1}"}))
    with caplog.at_level(logging.WARNING), locked(workdir):
        pass
    assert any(f"process {pid} is now another process" in r.getMessage() for r in caplog.records)

    # The same record with the process's real start time: it is the holder, alive.
    (workdir / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00+00:00",
         "process_start": process_start(pid)}))
    with pytest.raises(WorkdirInUse, match=f"pid {pid}, started 2026-01-01"), locked(workdir):
        pass


def test_a_lock_of_another_host_is_refused_naming_the_file_to_remove(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    lock = workdir / LOCK_NAME
    lock.write_text(json.dumps({"host": "tpu-vm-7", "pid": 1, "started": "2026-12-01T08:00:00+00:00"}))
    before = lock.read_text()
    with pytest.raises(WorkdirInUse) as refused, locked(workdir):
        pass
    message = str(refused.value)
    assert "host tpu-vm-7, pid 1, started 2026-12-01T08:00:00+00:00" in message
    assert "cannot tell whether it is still running" in message and f"remove {lock}" in message
    assert lock.read_text() == before


def test_an_unreadable_lock_is_refused_not_overwritten(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / LOCK_NAME).write_text("")
    with pytest.raises(WorkdirInUse, match="empty or unreadable"), locked(workdir):
        pass
    assert (workdir / LOCK_NAME).read_text() == ""
