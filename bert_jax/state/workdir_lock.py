"""One run at a time in a work directory: `workdir/run.lock`, taken before the run writes
anything and removed when it ends.

Two runs in one work directory corrupt each other (interleaved `metrics.jsonl` rows, one's
`config.json` over the other's checkpoints, orbax removing the other's saves in flight). The lock
file is created atomically (a complete file hard-linked to the name, which fails if the name
exists) and records who holds it: host, pid, start time, the process's start time since boot
and the boot (Linux `/proc`), the command.

A lock that is there already belongs to a live run, or to one that was killed (SIGKILL, a lost
machine): nothing runs at exit then.

* Its holder ran on this host: it is stale if no process has its pid, or the process with that
  pid started at another time or in another boot (a pid reused). A stale lock is taken over, with
  a warning naming the old holder; the takeover is itself guarded by an atomically created
  `run.lock.takeover`, so that two reruns racing for one stale lock do not both win.
* It ran on another host: nothing here can prove it dead, and a wrong guess corrupts a live run.
  The run is refused, naming the holder and the file to remove if the holder is known to be gone.

On a bucket (`gs://`, through `tf.io.gfile`) nothing creates a file atomically only if it is
absent: the lock is best effort (checked, written, read back; two runs starting within the same
second can both pass). See docs/reliability.md.

On a pod, the lock is the job's, not each host's: process 0 takes it, and every process learns
the outcome in one all-gather before any of them goes on (`training.loop`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator

from bert_jax.errors import WorkdirInUse
from input_pipeline import remote_files
from input_pipeline.shards.directory import process_is_running

logger = logging.getLogger("bert_jax")

LOCK_NAME = "run.lock"
# A takeover holds its guard for a few file operations; one older than this was left by a
# process killed in the middle of one.
_TAKEOVER_GUARD_EXPIRY_S = 60.0
_TAKEOVER_WAIT_S = 5.0

# Locks this process holds, by work directory: taken again (the demo around its pretraining),
# a lock is counted, not refused.
_held: dict[str, list] = {}


def _this_host() -> str:
    return socket.gethostname() or "localhost"


def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When process `pid` started: "<boot id>/<clock ticks since boot>", or None where `/proc` does
    not say (not Linux, or no such process). Equal for one process, different for a later one
    that reuses the pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            # The command name (field 2) is parenthesized and may hold spaces; the start time is
            # field 22, the 20th after it.
            ticks = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{_read_first_line('/proc/sys/kernel/random/boot_id') or '?'}/{ticks}"


def describe(holder: dict) -> str:
    """"host H, pid P, started T" of a lock's holder."""
    return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")


def _staleness(holder: dict) -> str | None:
    """Why the run that holds the lock `holder` is certainly gone, or None if it may be alive."""
    if holder.get("host") != _this_host() or not isinstance(holder.get("pid"), int):
        return None
    pid = holder["pid"]
    if not process_is_running(pid):
        return f"no process {pid} is running on this host"
    recorded, now = holder.get("process_start"), process_start(pid)
    if recorded and now and recorded != now:
        return f"process {pid} is now another process (a pid reused)"
    return None


class WorkdirLock:
    """The lock of one work directory: `acquire`, then `release`."""

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = os.fspath(workdir)
        self.path = os.path.join(self.workdir, LOCK_NAME)
        self.remote = remote_files.is_remote(self.workdir)
        self.holder = {
            "host": _this_host(), "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "process_start": process_start(os.getpid()),
            "command": " ".join(sys.argv)[:500], "token": uuid.uuid4().hex}

    def acquire(self) -> None:
        """Takes the lock, taking over a stale one (with a warning); raises WorkdirInUse, having
        written nothing, if another run may hold it."""
        deadline = time.monotonic() + _TAKEOVER_WAIT_S
        while True:
            holder = self._read(self.path)
            if holder is None:
                if self._create(self.path):
                    return
                continue  # another run created it in between: read whose it is
            reason = _staleness(holder) if holder else None
            if reason is None:
                raise self._in_use(holder)
            if self._take_over(holder, reason):
                return
            if time.monotonic() > deadline:
                raise WorkdirInUse(
                    f"work directory {self.workdir}: another run is taking over its stale lock "
                    f"{self.path} (left by {describe(holder)}); run one command at a time.")
            time.sleep(0.1)

    def release(self) -> None:
        """Removes the lock file if it is still this run's."""
        with contextlib.suppress(OSError):
            if (self._read(self.path) or {}).get("token") == self.holder["token"]:
                remote_files.remove(self.path)

    def _in_use(self, holder: dict | None) -> WorkdirInUse:
        if holder:
            who = f"another run holds it ({describe(holder)})"
            if holder.get("host") != _this_host():
                who += (f"; it ran on another host, so this one cannot tell whether it is still "
                        f"running. If it is not (stopped, or its machine gone), remove {self.path} "
                        "and rerun")
            else:
                who += "; wait for it to finish or stop it, then rerun"
        else:
            who = (f"its lock file {self.path} is empty or unreadable (a run may be writing it); if no "
                   "run uses this directory, remove the file and rerun")
        return WorkdirInUse(f"work directory {self.workdir} is in use: {who}. Two runs in one work "
                            "directory would overwrite each other's checkpoints and logs.")

    def _read(self, path: str) -> dict | None:
        """The holder recorded in `path`; None if there is no such file; {} if it is not a lock's
        JSON (empty, being written, damaged)."""
        try:
            with remote_files.open_file(path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            if remote_files.is_remote(path) and not remote_files.exists(path):
                return None
            raise WorkdirInUse(f"cannot read the lock file {path} of work directory "
                               f"{self.workdir}: {e}") from e
        try:
            holder = json.loads(text)
        except ValueError:
            return {}
        return holder if isinstance(holder, dict) else {}

    def _create(self, path: str) -> bool:
        """Creates `path` holding this run's record, atomically; False if it exists already."""
        content = json.dumps(self.holder, indent=1) + "\n"
        if self.remote:
            # Best effort: no create-if-absent through gfile. Written, then read back: of two runs
            # writing at once, the one whose record was overwritten sees it.
            with remote_files.open_file(path, "w") as f:
                f.write(content)
            return (self._read(path) or {}).get("token") == self.holder["token"]
        # Written complete under a name of its own, then linked to `path` (which fails if `path`
        # exists): no reader ever sees a half-written lock.
        staging = f"{path}.{self.holder['host']}-{os.getpid()}.tmp"
        with open(staging, "w", encoding="utf-8") as f:
            f.write(content)
        try:
            os.link(staging, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            return self._create_exclusive(path, content)  # a file system without hard links
        finally:
            os.unlink(staging)

    @staticmethod
    def _create_exclusive(path: str, content: str) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        return True

    def _take_over(self, stale: dict, reason: str) -> bool:
        """Replaces the stale lock `stale` by this run's under the takeover guard; False if
        another run is taking it over (or has just done so)."""
        guard = self.path + ".takeover"
        if not self._create(guard):
            with contextlib.suppress(OSError):
                if not self.remote and time.time() - os.stat(guard).st_mtime > _TAKEOVER_GUARD_EXPIRY_S:
                    os.unlink(guard)  # left by a run killed during its own takeover
            return False
        try:
            if self._read(self.path) != stale:
                return False  # taken over already, by a run that has since released its guard
            staging = f"{self.path}.{self.holder['host']}-{os.getpid()}.takeover.tmp"
            with remote_files.open_file(staging, "w") as f:
                f.write(json.dumps(self.holder, indent=1) + "\n")
            remote_files.replace(staging, self.path)
        finally:
            remote_files.remove(guard)
        logger.warning("work directory %s: taking over the lock left by a run that is gone (%s: %s)",
                       self.workdir, describe(stale), reason)
        return True


@contextlib.contextmanager
def locked(workdir: str | os.PathLike) -> Iterator[None]:
    """Holds the lock of `workdir` (made if missing) in this process; taken again in the same
    process, it is counted, and removed when the outermost holder exits."""
    remote_files.makedirs(workdir)
    key = _key(workdir)
    if key in _held:
        _held[key][1] += 1
    else:
        lock = WorkdirLock(workdir)
        lock.acquire()
        _held[key] = [lock, 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if not _held[key][1]:
            _held.pop(key)[0].release()


def _key(workdir: str | os.PathLike) -> str:
    path = os.fspath(workdir)
    return path if remote_files.is_remote(path) else os.path.realpath(path)
