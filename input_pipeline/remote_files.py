"""File access that works for local paths and for remote ones (`gs://bucket/...` on a TPU pod).

Local paths go through the standard library; a path with a scheme goes through TensorFlow's
`tf.io.gfile` (Cloud Storage, and `ram://` in tests), imported only then, so that local work
never pays for importing TensorFlow.
"""

from __future__ import annotations

import glob as _glob
import os
import shutil
from typing import IO


def is_remote(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def _gfile():
    import tensorflow as tf  # only for remote paths: local work never imports TensorFlow
    return tf.io.gfile


def open_file(path: str | os.PathLike, mode: str = "r") -> IO:
    if is_remote(path):
        return _gfile().GFile(os.fspath(path), mode)
    return open(path, mode, encoding=None if "b" in mode else "utf-8")


def exists(path: str | os.PathLike) -> bool:
    return _gfile().exists(os.fspath(path)) if is_remote(path) else os.path.exists(path)


def exists_or_checkpoint_prefix(path: str | os.PathLike) -> bool:
    """Whether `path` exists, or names a TensorFlow checkpoint by its prefix (`path.index`
    exists: Google's `bert_model.ckpt`)."""
    return exists(path) or exists(os.fspath(path) + ".index")


def isdir(path: str | os.PathLike) -> bool:
    return _gfile().isdir(os.fspath(path)) if is_remote(path) else os.path.isdir(path)


def isfile(path: str | os.PathLike) -> bool:
    return exists(path) and not isdir(path)


def glob(pattern: str) -> list[str]:
    """Sorted matches of `pattern`."""
    return sorted(_gfile().glob(pattern) if is_remote(pattern) else _glob.glob(pattern))


def listdir(path: str | os.PathLike) -> list[str]:
    """The names of the entries of directory `path`, sorted (without the trailing "/" that Cloud
    Storage gives its directories)."""
    if is_remote(path):
        return sorted(name.rstrip("/") for name in _gfile().listdir(os.fspath(path)))
    return sorted(os.listdir(path))


def makedirs(path: str | os.PathLike) -> None:
    if is_remote(path):
        _gfile().makedirs(os.fspath(path))
    else:
        os.makedirs(path, exist_ok=True)


def replace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Renames `source` to `target`, replacing it (atomic on local file systems; on Cloud Storage
    a copy then a delete, so readers see either the old or the complete new object)."""
    if is_remote(target):
        _gfile().rename(os.fspath(source), os.fspath(target), overwrite=True)
    else:
        os.replace(source, target)


def remove(path: str | os.PathLike) -> None:
    if is_remote(path):
        _gfile().remove(os.fspath(path))
    else:
        os.unlink(path)


def rmtree(path: str | os.PathLike) -> None:
    """Removes the directory `path` and everything in it."""
    if is_remote(path):
        _gfile().rmtree(os.fspath(path))
    else:
        shutil.rmtree(path)
