"""One output file (a vocab, a SentencePiece model, encoded vectors): written whole or not at all,
and never over a file that the command was not told to replace.

`write_output_file` writes into a temporary file beside the target (`.NAME.tmp-<pid>`, in the same
directory, so that the rename is atomic), flushed to disk, then renames it to the target's name:
a crash leaves the target as it was (and at most that temporary file), never a half-written file
under the final name. An existing target is refused unless `overwrite`; without `overwrite` the
file is put in place with link(2), which fails if the name was taken while it was being written,
so a file that appears meanwhile is not replaced either. The file is created by open(2), so its
mode is 0666 less the umask (0644 usually), as any file the user writes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import BinaryIO


def refuse_existing_file(path: str | os.PathLike, overwrite: bool, flag: str = "--output") -> None:
    """Raises FileExistsError (IsADirectoryError for a directory) if `path` exists and may not
    be replaced: always for a directory, for a file unless `overwrite`; FileNotFoundError or
    PermissionError if its directory does not exist or may not be written. Commands call it
    before their work, so that a path they cannot write stops them at once, not after hours."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{flag} {path} is a directory; give the path of a file to write.")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{flag} {path} exists; pass --overwrite to replace it, or choose "
                              "another path. Nothing was written.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{flag} {path}: its directory {directory} does not exist; create "
                                "it first. Nothing was written.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{flag} {path}: its directory {directory} may not be "
                              "written by this user; choose another path or fix the directory's "
                              "permissions. Nothing was written.")


def write_output_file(path: str | os.PathLike, write: Callable[[BinaryIO], None], *,
                      overwrite: bool = False, flag: str = "--output") -> None:
    """Calls `write` with a binary file open on a temporary file beside `path` and renames that
    to `path` once `write` returned (see the module docstring). The directory must exist.

    Raises:
      FileExistsError: if `path` exists (or appears while writing) and not `overwrite`.
      IsADirectoryError: if `path` is a directory.
      OSError: if writing fails (a full disk, a read-only directory), naming `path`; its errno
        is the failure's.
    """
    path = os.fspath(path)
    refuse_existing_file(path, overwrite, flag)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path, flag)
    except FileExistsError:
        raise  # (its message names the file already)
    except OSError as e:
        # A full disk or a read-only directory: by itself the error names no file, or the
        # temporary one.
        raise OSError(e.errno, f"writing {path} failed: {e.strerror or e}. Nothing was written "
                      f"under that name{' (the file there is as it was)' if os.path.lexists(path) else ''}; "
                      "free disk space or choose a writable directory, then rerun.") from e
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def _link_new(tmp: str, path: str, flag: str) -> None:
    """`tmp` under the name `path`, which must still be free."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{flag} {path} was created by something else while this command "
                              "wrote it; it is left as it is. Pass --overwrite to replace it, or "
                              "choose another path.") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: the check before writing is the best it allows.
        refuse_existing_file(path, False, flag)
        os.replace(tmp, path)
