"""The output directory of an export (`bert-jax export`, `export --sentence-transformers`,
`export-serving`): what an export may write there, replace and remove, and how it does so
without ever leaving a half-written file under a final name.

An export lists what it wrote in a marker file, `.bert-jax-export.json`: each file's path (relative
to the directory) and SHA-256, which bert-jax wrote it (and its version). The rules:

* A new directory, or an empty one, is written.
* A directory that holds anything and no marker (a model downloaded from the Hub, another tool's
  output, an export from before the marker existed) is refused, whatever the flags: an export
  never deletes or replaces a file it did not write.
* A directory with a marker (an earlier export) is refused unless `overwrite`. With it, the new
  export replaces the files the marker lists and removes those of them it does not write again;
  everything else in the directory (notes or an onnx/ added since) is left as it is. A listed
  file that was changed since (its SHA-256 differs: it is the user's now) is refused, and so is a
  new file whose name is taken by a file the marker does not list.

The export is written into a staging directory: `.NAME.bert-jax-export-<host>-<pid>` beside a new
directory, which is then renamed to NAME whole; `.bert-jax-export-<host>-<pid>` inside an existing
one, whose files are then renamed into place one by one (each rename atomic) under a marker that
lists the old and the new files, then the final marker. An export that fails removes its staging
directory and leaves the output as it was. One killed leaves its staging directory, which the next
export into the same directory on this host removes (its process no longer runs); killed while
renaming, it leaves the marker of both sets, so the next `--overwrite` takes them all for its own.
Every file written is made mode 0666 less the umask (safetensors and other writers may create
0600 files), like any file the user writes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from safetensors import SafetensorError

from input_pipeline.shards.directory import process_is_running

logger = logging.getLogger(__name__)

MARKER_NAME = ".bert-jax-export.json"
STAGING_PREFIX = ".bert-jax-export-"
_MARKER_FORMAT = 1
# The errors of a write that found no room or a read-only file system: the export stops with one
# line naming its directory (safetensors reports them as "I/O error: ... (os error N)").
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS)


def _host() -> str:
    return re.sub(r"[^\w.-]", "_", socket.gethostname()) or "localhost"


def _some(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _version() -> str:
    try:
        return metadata.version("bert-jax")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_marker(directory: Path) -> dict[str, Any]:
    """The marker of an earlier export in `directory`; a ValueError naming it if it is not one
    (so that `overwrite` can never be made to remove a file outside the directory, or the marker)."""
    path = directory / MARKER_NAME
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        marker = e
    files = marker.get("files") if isinstance(marker, dict) else None
    bad = None if isinstance(files, dict) else "no 'files' object"
    for name, digest in (files or {}).items() if bad is None else ():
        pure = PurePosixPath(name)
        if (pure.is_absolute() or not pure.parts or ".." in pure.parts or "\\" in name
                or str(pure) != name or name == MARKER_NAME or not isinstance(digest, (str, type(None)))):
            bad = f"it lists {name!r}, which is not a file this export writes"
            break
    if bad is not None:
        raise ValueError(f"{path} is not a bert-jax export marker ({bad}): it is damaged or not "
                         "ours, so nothing in the directory is taken for an earlier export; move it "
                         f"away, or choose another output directory.")
    return marker


class ExportDirectory:
    """An export's output directory, written through a staging directory (see the module
    docstring): `prepare`, write the files into `staging`, `commit`; `discard` on failure.
    `staged_export` does all three."""

    def __init__(self, output_dir: str | os.PathLike, *, overwrite: bool = False,
                 writer: str = "bert-jax export", flag: str = "--output"):
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.writer = writer
        self.flag = flag
        self.staging: Path | None = None
        self._fresh = False
        self._old: dict[str, str | None] = {}

    def _staging_pattern(self) -> tuple[Path, re.Pattern]:
        """(the directory that holds staging directories, their names' pattern)."""
        if self._fresh:
            prefix = f".{self.output_dir.name}{STAGING_PREFIX}"
            return self.output_dir.parent, re.compile(re.escape(prefix) + r"(.+)-(\d+)")
        return self.output_dir, re.compile(re.escape(STAGING_PREFIX) + r"(.+)-(\d+)")

    def prepare(self) -> Path:
        """Checks the output directory, removes what dead exports of this host left, and makes
        the staging directory; returns it.

        Raises:
          FileExistsError: the directory holds files no export wrote, or an earlier export and
            not `overwrite`, or files of one that were changed since, or another export is writing.
          NotADirectoryError: the output is a file.
          PermissionError: the output (or its parent) may not be written, naming it.
          ValueError: its marker is damaged.
        """
        out = self.output_dir
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{self.flag} {out} is a file, not a directory; nothing was written.")
        self._fresh = not out.exists()
        where, _ = self._staging_pattern()
        name = (f".{out.name}" if self._fresh else "") + f"{STAGING_PREFIX}{_host()}-{os.getpid()}"
        try:
            if self._fresh:
                out.parent.mkdir(parents=True, exist_ok=True)
            self._remove_dead_staging()
            if not self._fresh:
                self._check_existing()
            self.staging = where / name
            self.staging.mkdir()
        except PermissionError as e:
            # Alone, it named the staging directory, a name the user never gave.
            raise PermissionError(e.errno, f"{self.flag} {out} cannot be written ({e.strerror} "
                                  f"making {e.filename or out}); nothing was written. Choose a directory "
                                  "this user may write, or fix its permissions.") from e
        return self.staging

    def _check_existing(self) -> None:
        out = self.output_dir
        _, staging = self._staging_pattern()
        names = sorted(name for name in os.listdir(out) if not staging.fullmatch(name))
        if not names:
            return
        if MARKER_NAME not in names:
            raise FileExistsError(
                f"{self.flag} {out} holds files that bert-jax did not write ({_some(names)}; no "
                f"{MARKER_NAME}). An export goes into a new or empty directory, or replaces its own "
                f"earlier export (--overwrite), and never deletes or replaces what it did not "
                f"write: choose another {self.flag}. Nothing was written.")
        marker = read_marker(out)
        listed = marker["files"]
        if not self.overwrite:
            raise FileExistsError(
                f"{self.flag} {out} holds an earlier export ({len(listed)} files by "
                f"{marker.get('written_by', 'bert-jax')}, listed in {MARKER_NAME}); pass "
                f"--overwrite to replace those files (nothing else there is touched), or choose "
                f"another {self.flag}. Nothing was written.")
        if marker.get("complete", True):
            changed = [name for name, digest in listed.items()
                       if (out / name).is_file() and digest is not None and _sha256(out / name) != digest]
            if changed:
                raise FileExistsError(
                    f"{self.flag} {out}: {_some(changed)} changed since bert-jax exported them (they "
                    f"differ from {MARKER_NAME}), so they are yours now and --overwrite leaves them "
                    f"alone: move them away, or choose another {self.flag}. Nothing was written.")
        self._old = dict(listed)

    def _remove_dead_staging(self) -> None:
        """Removes staging directories of this output left by exports of this host that no
        longer run; refuses one that may still be writing."""
        where, pattern = self._staging_pattern()
        for name in sorted(os.listdir(where)):
            owner = pattern.fullmatch(name)
            if owner is None:
                continue
            host, pid = owner.group(1), int(owner.group(2))
            path = where / name
            # Our own pid's is an earlier process's: this one has no staging directory yet.
            if host != _host() or (pid != os.getpid() and process_is_running(pid)):
                raise FileExistsError(
                    f"{path} is the staging directory of an export (pid {pid} on host {host}) that "
                    f"may still be writing {self.output_dir}; wait for it to finish, or, if it no "
                    f"longer runs, remove {path} and run again.")
            logger.warning("removing %s, left by an export (pid %d on this host) that no longer runs",
                           path, pid)
            shutil.rmtree(path)

    def commit(self) -> Path:
        """Puts the staged files in place (see the module docstring); returns the directory."""
        out, staging = self.output_dir, self.staging
        assert staging is not None, "prepare() first"
        umask = os.umask(0)
        os.umask(umask)
        written = {}
        for path in sorted(staging.rglob("*")):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
            if path.is_file():
                written[path.relative_to(staging).as_posix()] = _sha256(path)
        if self._fresh:
            self._write_marker(written, staging, complete=True)
            os.rename(staging, out)  # fails if a non-empty directory took the name meanwhile
            return out

        taken = [name for name in written
                 if _occupied(out, name) and (name not in self._old or (out / name).is_dir())]
        if taken:
            raise FileExistsError(
                f"{self.flag} {out}: this export writes {_some(taken)}, where the directory holds "
                f"something the earlier export there did not write (not in its {MARKER_NAME}): "
                f"move it away, or choose another {self.flag}. Nothing was changed.")
        # From here on the marker lists every file of ours in the directory, old or new.
        self._write_marker({**self._old, **written}, out, complete=False)
        for name in written:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, out / name)
        for directory in sorted(staging.rglob("*")):  # empty ones (a SavedModel's assets/) too
            if not os.path.lexists(out / directory.relative_to(staging)):
                (out / directory.relative_to(staging)).mkdir()
        for name in self._old:
            if name not in written and (out / name).is_file():
                (out / name).unlink()
                _remove_empty_parents(out, name)
        self._write_marker(written, out, complete=True)
        shutil.rmtree(staging)
        return out

    def _write_marker(self, files: dict[str, str | None], directory: Path, complete: bool) -> None:
        marker = {"format": _MARKER_FORMAT, "written_by": self.writer, "bert_jax_version": _version(),
                  "complete": complete, "files": dict(sorted(files.items()))}
        tmp = self.staging / f"{MARKER_NAME}.tmp"
        tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, directory / MARKER_NAME)

    def discard(self) -> None:
        """Removes the staging directory (and nothing else)."""
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging)


def _occupied(directory: Path, name: str) -> bool:
    """Whether something in `directory` is in the way of writing the file `name` (which may be
    ours: the caller tells)."""
    path = directory
    for part in PurePosixPath(name).parts[:-1]:
        path = path / part
        if os.path.lexists(path) and not path.is_dir():
            return True
    return os.path.lexists(directory / name)


def _remove_empty_parents(directory: Path, name: str) -> None:
    """Removes the directories of the removed file `name` that it leaves empty."""
    for parent in PurePosixPath(name).parents:
        if str(parent) == ".":
            return
        try:
            (directory / parent).rmdir()
        except OSError:  # not empty: others' files (or ours) remain
            return


def check_export_directory(output_dir: str | os.PathLike, *, overwrite: bool = False,
                           flag: str = "--output") -> None:
    """Raises as `ExportDirectory.prepare` would for `output_dir`, writing nothing: for a command
    to refuse a directory before it spends minutes loading a model."""
    target = ExportDirectory(output_dir, overwrite=overwrite, flag=flag)
    out = target.output_dir
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{flag} {out} is a file, not a directory; nothing was written.")
    if out.exists():
        target._check_existing()


@contextlib.contextmanager
def staged_export(output_dir: str | os.PathLike, *, overwrite: bool = False,
                  writer: str = "bert-jax export", flag: str = "--output") -> Iterator[Path]:
    """Yields a staging directory to write an export into, and puts its files into `output_dir`
    when the block ends without an error (`ExportDirectory`); on an error, `output_dir` is left as
    it was and the staging directory removed."""
    target = ExportDirectory(output_dir, overwrite=overwrite, writer=writer, flag=flag)
    staging = target.prepare()
    try:
        try:
            yield staging
        except (OSError, SafetensorError) as e:
            reason = _no_room(e)
            if reason is None:
                raise
            raise OSError(reason[0], f"writing the export into {target.output_dir} failed: "
                          f"{reason[1]}. {target.output_dir} is as it was; free disk space (or "
                          f"choose another {flag}), then rerun.") from e
        target.commit()
    except BaseException:
        target.discard()
        raise


def _no_room(error: OSError | SafetensorError) -> tuple[int, str] | None:
    """(errno, what it means) when `error` is a write that found no room or a read-only file
    system (`_NO_ROOM`), else None."""
    if isinstance(error, OSError):
        number = error.errno
    else:
        found = re.search(r"\(os error (\d+)\)", str(error))
        number = int(found.group(1)) if found else None
    return (number, os.strerror(number)) if number in _NO_ROOM else None
