"""A run survives kills and preemption, and stops clearly when it cannot go on.

Real `bert-jax pretrain` subprocesses on the tiny corpus, with dropout on: killed with SIGKILL at
a step and while an asynchronous checkpoint save writes its arrays in the background, then
restarted from their work directory, they report bitwise the metrics of an uninterrupted run at
every later step, each step once in `metrics.jsonl`, each restart taking over the killed run's
lock of the work directory while a second run started meanwhile is refused; SIGTERM saves and exits 0 (in one process, and in two processes signalled
unevenly, which agree on the step); a process of a two-process run that dies or hangs makes the
other exit within seconds; a save that fails (the file size limit standing in for a full disk)
stops the run with exit 1 and a clear message, the tracebacks of orbax's threads in a file;
a job whose work directory another run holds stops on every process; processes that would resume from different
checkpoints or data positions refuse to start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Printed by `slow_save_pretrain.py` when a save's background array write starts.
ARRAY_WRITE_IN_FLIGHT = "slow_save_pretrain: an array write is in flight in the background"
STEPS = 14
TIMEOUT_S = 120
# Throughput and timing numbers differ between any two runs; everything else must not.
TIMING_KEYS = {"steps_per_second", "step_seconds", "sequences_per_second", "tokens_per_second",
               "tflops_per_second", "mfu", "prefix"}


@pytest.fixture(scope="module")
def overrides(tiny_run_overrides) -> list[str]:
    return [o for o in tiny_run_overrides if not o.startswith("data.eval_files=")] + [
        "data.eval_files=", f"train.num_steps={STEPS}", "train.checkpoint_every=3",
        "train.log_every=1", "train.keep_checkpoints=10", "optimizer.warmup_steps=2",
        # cpu_demo has no dropout: with it on, the metrics depend on the dropout keys, so an exact
        # resume also proves that they are derived as an uninterrupted run derives them.
        "model.hidden_dropout_rate=0.1", "model.attention_dropout_rate=0.1"]


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
               SLOW_SAVE_SECONDS="5")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return env


def _command(workdir: Path, overrides: list[str], *extra: str, slow_save: bool = False) -> list[str]:
    entry = [str(REPO / "tests" / "support" / "slow_save_pretrain.py")] if slow_save else ["-m", "bert_jax.cli"]
    command = [sys.executable, *entry, "pretrain", "--config", "cpu_demo", "--workdir", str(workdir)]
    for item in overrides:
        command += ["--set", item]
    return command + list(extra)


def _reports(workdir: Path, start_line: int = 0) -> list[dict]:
    """The training reports in `workdir/metrics.jsonl` from line `start_line` on."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[start_line:]
    return [json.loads(line) for line in lines if line.endswith("}") and '"prefix": "train"' in line]


def _line_count(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _numbers(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in TIMING_KEYS}


def _checkpoint_steps(workdir: Path) -> list[int]:
    directory = workdir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.exists() else []


def _wait_until(condition, processes: list[subprocess.Popen], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if any(p.poll() is not None for p in processes):
            raise AssertionError(f"a process exited (codes {[p.poll() for p in processes]}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start(command: list[str], log: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(command, env=_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT, **kwargs)


@pytest.fixture(scope="module")
def reference(overrides, tmp_path_factory) -> dict[int, dict]:
    """Step -> metrics of an uninterrupted run."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(_command(workdir, overrides), env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = {r["step"]: _numbers(r) for r in _reports(workdir)}
    assert sorted(reports) == list(range(1, STEPS + 1))
    saved = json.loads((workdir / "config.json").read_text())["model"]
    assert saved["hidden_dropout_rate"] > 0 and saved["attention_dropout_rate"] > 0
    return reports


def _assert_continues_exactly(reports: list[dict], reference: dict[int, dict], first_step: int) -> None:
    assert reports, "the resumed run reported nothing"
    assert [r["step"] for r in reports] == list(range(first_step, first_step + len(reports)))
    for report in reports:
        assert _numbers(report) == reference[report["step"]], report["step"]


def test_runs_killed_anywhere_resume_to_bitwise_the_same_metrics(overrides, reference, tmp_path):
    workdir = tmp_path / "run"

    # 1. SIGKILL at some step between two checkpoints.
    process = _start(_command(workdir, overrides), tmp_path / "1.log")
    _wait_until(lambda: _checkpoint_steps(workdir) and any(r["step"] >= 4 for r in _reports(workdir)),
                [process], "step 4 and the checkpoint of step 3")
    process.send_signal(signal.SIGKILL)
    process.wait()
    _assert_continues_exactly(_reports(workdir), reference, 1)
    killed = [process.pid]
    assert json.loads((workdir / "run.lock").read_text())["pid"] == process.pid  # left behind

    # 2. SIGKILL while a checkpoint's arrays are being written in the background, training going
    # on (the write is delayed to catch it: it prints a line when it starts).
    before = _checkpoint_steps(workdir)
    in_flight = lambda: {p.name for p in (workdir / "checkpoints").iterdir() if "tmp" in p.name}  # noqa: E731
    log = tmp_path / "2.log"

    def writing() -> set[int]:
        """Steps whose array write has started and is not committed. (The temporary directories
        are named by step alone: run 1, killed during a save, may have left one of the same name.)"""
        started = re.findall(rf"{re.escape(ARRAY_WRITE_IN_FLIGHT)}: step (\d+)", log.read_text())
        return set(map(int, started)) - set(_checkpoint_steps(workdir))
    process = _start(_command(workdir, overrides, slow_save=True), log)
    _wait_until(writing, [process], "an array write in flight")
    # The run of 1 left its lock: this one took it over, naming it.
    assert _took_over_from(log.read_text(), killed[-1])
    # Meanwhile a second run in the same directory (another learning rate) is refused at once,
    # naming this one; it changes nothing (config.json keeps this run's learning rate).
    second = subprocess.run(_command(workdir, overrides + ["optimizer.learning_rate=0.5"]), env=_env(),
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert process.poll() is None
    assert second.returncode == 2, second.stderr[-3000:]
    [refusal] = second.stderr.strip().splitlines()
    assert refusal.startswith(f"bert-jax pretrain: error: work directory {workdir} is in use: another run "
                              f"holds it (host {socket.gethostname()}, pid {process.pid}, started 20"), refusal
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed.append(process.pid)
    assert json.loads((workdir / "config.json").read_text())["optimizer"]["learning_rate"] != 0.5
    [interrupted_step] = writing()
    assert f"{interrupted_step}.orbax-checkpoint-tmp" in in_flight()
    assert interrupted_step not in _checkpoint_steps(workdir)  # no half-written checkpoint
    # (the rows run 1 logged after its checkpoint replaced by this run's)
    _assert_continues_exactly(_reports(workdir), reference, 1)
    assert _reports(workdir)[-1]["step"] > max(before)
    before = _checkpoint_steps(workdir)
    assert max(before) < interrupted_step

    # 3. The restart removes the half-written save and resumes from the last complete one; then
    # 4. runs to the end undisturbed, and releases the lock.
    done = subprocess.run(_command(workdir, overrides), env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _took_over_from(done.stderr, killed[-1])
    assert not in_flight()
    assert f"resuming from the checkpoint of step {max(before)}" in done.stderr
    assert not (workdir / "run.lock").exists()
    # metrics.jsonl holds every step once, as the uninterrupted run logged it: the rows the killed
    # runs logged after their last checkpoints were replaced, not repeated.
    _assert_continues_exactly(_reports(workdir), reference, 1)
    assert _reports(workdir)[-1]["step"] == STEPS


def _took_over_from(log: str, pid: int) -> bool:
    return (f"taking over the lock left by a run that is gone (host {socket.gethostname()}, pid {pid}, "
            in log and f"no process {pid} is running on this host" in log)


def test_sigterm_saves_and_exits_0_then_resumes_exactly(overrides, reference, tmp_path):
    workdir = tmp_path / "run"
    process = _start(_command(workdir, overrides), tmp_path / "run.log")
    _wait_until(lambda: any(r["step"] >= 4 for r in _reports(workdir)), [process], "step 4")
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert process.wait(timeout=60) == 0
    assert time.monotonic() - signalled < 60
    log = (tmp_path / "run.log").read_text()
    stopped = max(r["step"] for r in _reports(workdir))
    assert stopped < STEPS
    assert f"preempted: the checkpoint of step {stopped} is saved" in log
    assert max(_checkpoint_steps(workdir)) == stopped
    _assert_continues_exactly(_reports(workdir), reference, 1)

    lines = _line_count(workdir)
    done = subprocess.run(_command(workdir, overrides), env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_continues_exactly(_reports(workdir, lines), reference, stopped + 1)


def _two_processes(workdir: Path, overrides: list[str], tmp_path: Path, *extra: str) -> list[subprocess.Popen]:
    from tests.support.multihost_worker import free_port

    coordinator = f"localhost:{free_port()}"
    return [_start(_command(workdir, overrides, "--distributed", "explicit", "--coordinator-address",
                            coordinator, "--num-processes", "2", "--process-id", str(i), *extra),
                   tmp_path / f"process_{i}.log") for i in range(2)]


def _stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        process.wait()


def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_saved_step(overrides, tmp_path):
    """JAX's preemption sync point: only process 1 is signalled; both save the same step."""
    workdir = tmp_path / "run"
    long_run = overrides + ["train.num_steps=1000", "train.checkpoint_every=1000"]
    processes = _two_processes(workdir, long_run, tmp_path)
    try:
        _wait_until(lambda: any(r["step"] >= 3 for r in _reports(workdir)), processes, "step 3")
        processes[1].send_signal(signal.SIGTERM)
        assert [p.wait(timeout=90) for p in processes] == [0, 0]
    finally:
        _stop_all(processes)
    steps = set()
    for i in range(2):
        log = (tmp_path / f"process_{i}.log").read_text()
        [line] = [line for line in log.splitlines() if "preempted: the checkpoint of step" in line]
        steps.add(int(line.split("of step ")[1].split()[0]))
    [step] = steps
    assert _checkpoint_steps(workdir) == [step]
    assert sorted(p.name for p in (workdir / "checkpoints" / str(step) / "data").iterdir()
                  if p.name.startswith("process_")) == ["process_0-of-2", "process_1-of-2"]


@pytest.mark.parametrize("signalled, stop", [(1, signal.SIGKILL), (0, signal.SIGSTOP)],
                         ids=["process 1 killed", "process 0 hung"])
def test_a_dead_or_hung_process_stops_the_other_within_seconds(overrides, tmp_path, signalled, stop):
    workdir = tmp_path / "run"
    long_run = overrides + ["train.num_steps=1000", "train.checkpoint_every=1000"]
    processes = _two_processes(workdir, long_run, tmp_path, "--heartbeat-timeout", "5")
    other = processes[1 - signalled]
    try:
        _wait_until(lambda: any(r["step"] >= 3 for r in _reports(workdir)), processes, "step 3")
        processes[signalled].send_signal(stop)
        start = time.monotonic()
        code = other.wait(timeout=60)
        assert code != 0
        assert time.monotonic() - start < 60
    finally:
        _stop_all(processes)
    log = (tmp_path / f"process_{1 - signalled}.log").read_text()
    # JAX's runtime ends the process itself, naming the cause: missing heartbeats, or the peer's
    # connection gone in the middle of a collective.
    assert any(reason in log for reason in ("heartbeat", "Heartbeat", "another task died",
                                            "Connection reset by peer")), log[-3000:]


@pytest.mark.parametrize("limit, failed_write", [(200_000, "iterator"), (400_000, "in OCDBT database")],
                         ids=["the save's blocking part fails", "only its background array writes fail"])
def test_a_failed_checkpoint_save_stops_the_run_with_a_clear_error(overrides, tmp_path, limit, failed_write):
    """A file-size limit stands in for a full disk: 200 kB stops the data position's file (written
    while the step waits, 294 kB); 400 kB lets that file through and stops only the arrays'
    background writes (the state's 2.6 MB go into one to three files whose split varies from run
    to run, the largest 0.7 to 2 MB; at 1 MB some saves got through). Either way stderr holds the
    log lines, one line naming the file of the background threads' tracebacks, and the message.
    Before, the arrays' case printed 30 tracebacks (490 lines) for this tiny model, and more for
    a larger one; and then, in about one run in ten, asyncio's "Task exception was never
    retrieved" with a `write_fragment` traceback for each array write that failed after orbax
    had stopped waiting, at exit, after the message (`tests/unit/test_background_errors.py`
    proves that case every time)."""
    workdir = tmp_path / "run"
    limited = [sys.executable, str(REPO / "tests" / "support" / "file_size_limit.py"), str(limit),
               *_command(workdir, overrides)]
    done = subprocess.run(limited, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 1, done.stderr[-3000:]
    [message] = [line for line in done.stderr.splitlines() if line.startswith("bert-jax pretrain: stopped:")]
    assert "saving a checkpoint (step 3)" in message and "failed" in message and failed_write in message
    assert "Free disk space" in message and "rerun the same command to resume" in message
    assert _checkpoint_steps(workdir) == []  # nothing half-written under a checkpoint's name
    assert max(r["step"] for r in _reports(workdir)) < STEPS
    assert "Traceback" not in done.stderr
    # Besides the timestamped log lines: the pointer to the tracebacks, and the message.
    other = [line for line in done.stderr.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line)]
    assert len(other) <= 2 and other[-1] == message, other
    details = workdir / "errors.log"
    assert f"with their tracebacks: {details})" in done.stderr
    assert "Traceback" in details.read_text()


def test_processes_that_would_resume_from_different_checkpoints_refuse_to_start(overrides, tmp_path):
    """Process 0 sees a work directory with a checkpoint, process 1 an empty one (as when a path
    is not shared storage): both stop with an error naming what differs, before training."""
    from tests.support.multihost_worker import free_port

    with_checkpoint, empty = tmp_path / "a", tmp_path / "b"
    done = subprocess.run(_command(with_checkpoint, overrides + ["train.num_steps=3"]), env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    coordinator = f"localhost:{free_port()}"
    processes = [_start(_command(workdir, overrides, "--distributed", "explicit", "--coordinator-address",
                                 coordinator, "--num-processes", "2", "--process-id", str(i),
                                 "--heartbeat-timeout", "5"), tmp_path / f"process_{i}.log")
                 for i, workdir in enumerate((with_checkpoint, empty))]
    try:
        assert all(p.wait(timeout=TIMEOUT_S) != 0 for p in processes)
    finally:
        _stop_all(processes)
    for i in range(2):
        log = (tmp_path / f"process_{i}.log").read_text()
        assert ("the processes do not agree on newest checkpoint (process 0: {'newest checkpoint': 3}; "
                "process 1: {'newest checkpoint': -1})") in log, log[-3000:]
    assert _reports(empty) == [] and _checkpoint_steps(empty) == []


def test_processes_that_agree_on_the_checkpoint_but_not_the_data_position_refuse_to_start(overrides, tmp_path):
    """Both processes resume from the same checkpoint of a two-process run, but process 1 was
    started with another data config (a stale command line: another shuffle buffer, which a
    resume accepts as a change): its saved position is for another stream, so it would restart
    its data from the beginning while process 0 goes on. Both stop before training, naming each
    process's step, data position and whether it was restored."""
    from tests.support.multihost_worker import free_port

    workdir = tmp_path / "run"
    first = _two_processes(workdir, overrides + ["train.num_steps=3"], tmp_path)
    try:
        assert [p.wait(timeout=TIMEOUT_S) for p in first] == [0, 0]
    finally:
        _stop_all(first)
    assert _checkpoint_steps(workdir) == [3]
    lines = _line_count(workdir)

    coordinator = f"localhost:{free_port()}"
    processes = [_start(_command(workdir, overrides + changed, "--distributed", "explicit",
                                 "--coordinator-address", coordinator, "--num-processes", "2",
                                 "--process-id", str(i), "--heartbeat-timeout", "5"),
                        tmp_path / f"restart_{i}.log")
                 for i, changed in enumerate(([], ["data.shuffle_buffer=400"]))]
    try:
        assert all(p.wait(timeout=TIMEOUT_S) != 0 for p in processes)
    finally:
        _stop_all(processes)
    positions = set()
    for i in range(2):
        log = (tmp_path / f"restart_{i}.log").read_text()
        # (The data position is named by a checksum of its description.)
        found = re.search(r"the processes do not agree on step, data position, data position restored "
                          r"\(process 0: \{'step': 3, 'data position': (\d+), 'data position restored': 1\}; "
                          r"process 1: \{'step': 3, 'data position': (\d+), 'data position restored': 0\}\)",
                          log)
        assert found, log[-3000:]
        positions.add(found.groups())
    [(position_0, position_1)] = positions  # both name the same values
    assert position_0 != position_1
    assert _line_count(workdir) == lines and _checkpoint_steps(workdir) == [3]  # nothing trained


# Holds the lock of the work directory argv[1] (`state.workdir_lock`) until killed.
HOLD_THE_LOCK = """
import sys, time
from bert_jax.state.workdir_lock import locked
with locked(sys.argv[1]):
    print("held", flush=True)
    time.sleep(300)
"""


def test_a_locked_work_directory_stops_every_process_of_a_job_before_anything_is_written(overrides, tmp_path):
    """A two-process job in a work directory another run holds: process 0 (which takes the job's
    lock) names the holder, process 1 names process 0; both exit 2 and nothing is written."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(workdir)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = sorted((p.name, p.stat().st_mtime_ns) for p in workdir.iterdir())
        processes = _two_processes(workdir, overrides, tmp_path, "--heartbeat-timeout", "5")
        try:
            assert [p.wait(timeout=TIMEOUT_S) for p in processes] == [2, 2]
        finally:
            _stop_all(processes)
        assert sorted((p.name, p.stat().st_mtime_ns) for p in workdir.iterdir()) == before
    finally:
        holder.kill()
        holder.wait()
    log_0, log_1 = ((tmp_path / f"process_{i}.log").read_text() for i in range(2))
    assert (f"bert-jax pretrain: error: work directory {workdir} is in use: another run holds it (host "
            f"{socket.gethostname()}, pid {holder.pid}, started") in log_0, log_0[-3000:]
    assert (f"bert-jax pretrain: error: process 0 could not lock the work directory {workdir}") in log_1, log_1[-3000:]
