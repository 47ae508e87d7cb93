"""A directory of shards: which files in it are the data, and how create-data fills or replaces it.

Reading: `manifest.json` names the data. `shard_files` gives exactly the files it lists, whatever
else the directory holds, and the `*.tfrecord` files it leaves out (shards of another run, say),
so that a reader can name them. A directory without a manifest (shards made by Google's script)
is read whole (`*.tfrecord`), unless create-data is writing it (below): then it is refused.

Writing: create-data writes only through `StagedOutput`.

* `prepare` refuses an output directory that holds anything create-data did not write (named,
  whatever the flags), and an earlier run's output unless `overwrite`; it removes what runs that
  died on this host left (a staging directory `.create-data-<host>-<pid>` whose process no longer
  exists), and nothing else; then it makes this run's staging directory inside the output.
* The run writes everything into its staging directory: block files, shards, report, manifest.
* `commit` puts the new set in place by renames, the manifest first out and last in: the old
  manifest moves into the staging directory, the old run's own files (the shards its manifest
  lists, its input report) are removed, the new ones moved in, the new manifest last. While the
  directory has no manifest but a staging directory, `shard_files` refuses it as being written,
  so a reader that goes by the manifest sees the old set, the new set, or that error, never a mix.
* A run that fails before `commit` removes its staging directory and leaves the output as it was.
  A run killed leaves its staging directory (and, killed during `commit`, the output without a
  manifest); the next run on this host removes both: the staging directory and the files that
  its manifests list, provably that run's own.

Everything goes through `remote_files`, so the same holds on Cloud Storage, where a rename is a
copy and a delete: the commit takes longer there, in the same order. A staging directory of
another host cannot be proved dead, so it is never removed: `prepare` refuses, naming it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Sequence

from input_pipeline import remote_files
from input_pipeline.shards.manifest import MANIFEST_NAME

logger = logging.getLogger(__name__)

INPUT_REPORT_NAME = "input_report.json"
STAGING_PREFIX = ".create-data-"
# In a staging directory during `commit`: the manifest of the set being replaced.
REPLACED_MANIFEST_NAME = "replaced-manifest.json"
# What create-data writes in a staging directory (with `.tmp-<pid>` while a file is written).
_STAGING_FILE = re.compile(r"(block-\d+|.+-\d{5,}-of-\d{5,}\.tfrecord|manifest\.json|"
                           r"replaced-manifest\.json|input_report\.json)(\.tmp-\d+)?")
_STAGING_NAME = re.compile(re.escape(STAGING_PREFIX) + r"(.+)-(\d+)")
_REMOVE_ADVICE = "move them away (or choose another --output-dir) and run again"


def manifest_files(manifest: dict, where: str) -> list[str]:
    """The names of the shard files `manifest` (read from `where`) lists; a ValueError for a
    name that is not that of a `.tfrecord` file in the directory (one that could point outside
    it, or at the manifest itself), since `--overwrite` removes the files a manifest lists."""
    names = []
    for shard in manifest.get("shards", []):
        name = shard.get("file") if isinstance(shard, dict) else None
        if (not isinstance(name, str) or not name.endswith(".tfrecord") or "/" in name
                or "\\" in name or os.sep in name or name.startswith(".")):
            raise ValueError(f"{where} lists {name!r} as a shard file, which is not the name of a "
                             ".tfrecord file in its directory: the manifest is damaged or not "
                             "create-data's; make the shards again with `bert-jax create-data`.")
        names.append(name)
    return names


def shard_files(directory: str) -> tuple[list[str], list[str]]:
    """The shard files to read in `directory`, and the `*.tfrecord` files it holds but leaves out.

    With a manifest, the files it lists, in its order (FileNotFoundError naming any that is
    missing); without one, every `*.tfrecord`, sorted.

    Raises:
      ValueError: if create-data is writing the directory, or was killed while putting shards in
        place (no manifest, and a staging directory).
      FileNotFoundError: if the manifest lists files that are not there.
    """
    names = remote_files.listdir(directory)
    tfrecords = [name for name in names if name.endswith(".tfrecord")]
    listed = _listed_names(directory, names)
    if listed is None:
        return [os.path.join(directory, name) for name in tfrecords], []
    missing = [name for name in listed if name not in names]
    if missing:
        raise FileNotFoundError(
            f"{os.path.join(directory, MANIFEST_NAME)} lists {len(missing)} shard file(s) that are "
            f"not in {directory} ({_some(missing)}): the directory is incomplete (a copy cut "
            "short?); copy it again, or make the shards again with `bert-jax create-data`.")
    keep = set(listed)
    return ([os.path.join(directory, name) for name in listed],
            [os.path.join(directory, name) for name in tfrecords if name not in keep])


def listed_only(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """`paths` (shard files a glob matched) split into those to read and those left out: in a
    directory with a manifest, the files it does not list. Raises as `shard_files`."""
    listed: dict[str, set[str] | None] = {}
    keep, leave = [], []
    for path in paths:
        directory = os.path.dirname(path) or "."
        if directory not in listed:
            names = _listed_names(directory, remote_files.listdir(directory))
            listed[directory] = None if names is None else set(names)
        names = listed[directory]
        (keep if names is None or os.path.basename(path) in names else leave).append(path)
    return keep, leave


def _listed_names(directory: str, names: Sequence[str]) -> list[str] | None:
    """The shard files the manifest of `directory` lists; None without a manifest, unless
    create-data is writing the directory (a ValueError)."""
    if MANIFEST_NAME in names:
        manifest = _read(os.path.join(directory, MANIFEST_NAME))
        if manifest is not None:
            return manifest_files(manifest, os.path.join(directory, MANIFEST_NAME))
    staging = [name for name in names if name.startswith(STAGING_PREFIX)]
    if staging:
        raise ValueError(
            f"{directory} is being written by create-data ({os.path.join(directory, staging[0])} "
            f"is its staging directory, and there is no {MANIFEST_NAME} yet), or a create-data run "
            "was killed while putting its shards in place; wait for it to finish, or run it again.")
    return None


def _read(path: str) -> dict:
    """The manifest at `path`; a ValueError naming it if it is not a JSON object."""
    try:
        with remote_files.open_file(path) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        manifest = e
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a create-data manifest (not a JSON object: {manifest}); "
                         "make the shards again with `bert-jax create-data`, or move the file "
                         "away.")
    return manifest


def _some(names: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def staging_name(pid: int | None = None, host: str | None = None) -> str:
    """The name of the staging directory of create-data process `pid` (this one) on `host`
    (this one)."""
    host = host or re.sub(r"[^\w.-]", "_", socket.gethostname()) or "localhost"
    return f"{STAGING_PREFIX}{host}-{os.getpid() if pid is None else pid}"


def process_is_running(pid: int) -> bool:
    """Whether a process of this id exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Another user's process: it exists.
        return True
    return True


class StagedOutput:
    """create-data's output directory, written through a staging directory inside it (see the
    module docstring): `prepare`, write into `staging`, `commit`; `discard` in any case."""

    def __init__(self, output_dir: str | os.PathLike, *, overwrite: bool = False):
        self.output_dir = os.fspath(output_dir)
        self.overwrite = overwrite
        self.staging = os.path.join(self.output_dir, staging_name())
        self._committing = False

    def prepare(self) -> str:
        """Checks the output directory (see the module docstring), removes dead runs' leftovers
        and makes the staging directory; returns its path.

        Raises:
          FileExistsError: the directory holds files create-data did not write, or an earlier
            run's output and not `overwrite`, or another create-data may be writing it.
          NotADirectoryError: the output is a file.
          PermissionError: the output directory may not be written (or made), naming it.
        """
        out = self.output_dir
        if remote_files.exists(out) and not remote_files.isdir(out):
            raise NotADirectoryError(f"--output-dir {out} is a file, not a directory.")
        self._makedirs(out)
        self._remove_dead_runs_leftovers()
        names = [name for name in remote_files.listdir(out) if not name.startswith(STAGING_PREFIX)]
        manifest = _read(os.path.join(out, MANIFEST_NAME)) if MANIFEST_NAME in names else None
        listed = ([] if manifest is None else
                  manifest_files(manifest, os.path.join(out, MANIFEST_NAME)))
        own = {MANIFEST_NAME, INPUT_REPORT_NAME, *listed} if manifest is not None else set()
        foreign = [name for name in names if name not in own]
        if foreign:
            raise FileExistsError(
                f"--output-dir {out} holds {len(foreign)} file(s) that create-data did not write "
                f"({_some(foreign)}"
                + (f"; not listed by its {MANIFEST_NAME}" if manifest is not None else "")
                + "). create-data writes into a new or empty directory, or replaces its own "
                f"earlier output there (--overwrite), and never deletes what it did not write: "
                f"{_REMOVE_ADVICE}.")
        if manifest is not None and not self.overwrite:
            raise FileExistsError(
                f"--output-dir {out} holds the output of an earlier create-data run "
                f"({manifest.get('num_instances', '?')} instances in {len(listed)} shard files, "
                f"listed by its {MANIFEST_NAME}); pass --overwrite to replace it (its own files "
                "only, once the new ones are complete), or choose another --output-dir.")
        self._makedirs(self.staging)
        # Two runs that start together both see each other's staging directory and stop: neither
        # goes on to replace what the other writes.
        others = [name for name in remote_files.listdir(out)
                  if name.startswith(STAGING_PREFIX) and name != os.path.basename(self.staging)]
        if others:
            self.discard()
            raise FileExistsError(f"another create-data started writing into {out} at the same "
                                  f"time ({os.path.join(out, others[0])}); run one at a time.")
        return self.staging

    def _makedirs(self, path: str) -> None:
        """Makes `path` (the output directory or the staging directory in it), naming
        --output-dir when it may not be written (PermissionError alone named the staging
        directory, a name the user never gave)."""
        try:
            remote_files.makedirs(path)
        except PermissionError as e:
            raise PermissionError(e.errno, f"--output-dir {self.output_dir} cannot be written "
                                  f"({e.strerror} making {path}); nothing was written. Choose a "
                                  "directory this user may write, or fix its permissions.") from e

    def _remove_dead_runs_leftovers(self) -> None:
        """Removes the staging directories of create-data runs of this host that no longer run,
        and, if a run was killed during `commit`, the files in the output that its manifests list;
        refuses (FileExistsError) a staging directory that might be alive or is not create-data's."""
        out = self.output_dir
        names = remote_files.listdir(out)
        for name in names:
            if not name.startswith(STAGING_PREFIX):
                continue
            path = os.path.join(out, name)
            owner = _STAGING_NAME.fullmatch(name)
            host, pid = (owner.group(1), int(owner.group(2))) if owner else ("?", -1)
            # Our own pid on this host is an earlier process's: ours has no staging directory yet.
            if name != staging_name(pid) or (pid != os.getpid() and process_is_running(pid)):
                raise FileExistsError(
                    f"{path} is the staging directory of a create-data run (pid {pid} on host "
                    f"{host}) that may still be writing into {out}; wait for it to finish, or, if "
                    f"it no longer runs, remove {path} and run again.")
            contents = remote_files.listdir(path) if remote_files.isdir(path) else [name]
            foreign = [entry for entry in contents if not _STAGING_FILE.fullmatch(entry)]
            if foreign:
                raise FileExistsError(
                    f"{path} is named like a create-data staging directory but holds files "
                    f"create-data does not write there ({_some(foreign)}); {_REMOVE_ADVICE}.")
            interrupted = []
            if MANIFEST_NAME not in names:
                # Killed during `commit`: what its manifests list may be in the output already.
                for manifest_name in (MANIFEST_NAME, REPLACED_MANIFEST_NAME):
                    if manifest_name in contents:
                        where = os.path.join(path, manifest_name)
                        listed = manifest_files(_read(where), where)
                        interrupted += [entry for entry in [*listed, INPUT_REPORT_NAME]
                                        if entry in names and entry not in interrupted]
            logger.warning("removing what a killed create-data run (pid %d on this host, no longer "
                           "running) left in %s: %s%s", pid, out, name,
                           f" and {', '.join(interrupted)}" if interrupted else "")
            for entry in interrupted:
                remote_files.remove(os.path.join(out, entry))
            remote_files.rmtree(path)

    def commit(self) -> None:
        """Replaces the output's earlier create-data files (if any) with the complete set in the
        staging directory, by renames, the manifest last (see the module docstring)."""
        out, staging = self.output_dir, self.staging
        where = os.path.join(staging, MANIFEST_NAME)
        new = manifest_files(_read(where), where)
        old = _read(os.path.join(out, MANIFEST_NAME)) if remote_files.exists(
            os.path.join(out, MANIFEST_NAME)) else None
        if old is not None and not self.overwrite:  # Another run finished first.
            raise FileExistsError(f"another create-data run wrote {out} while this one ran; "
                                  "pass --overwrite to replace its output, or run one at a time.")
        self._committing = True
        if old is not None:
            old_files = manifest_files(old, os.path.join(out, MANIFEST_NAME))
            remote_files.replace(os.path.join(out, MANIFEST_NAME),
                                 os.path.join(staging, REPLACED_MANIFEST_NAME))
            for name in old_files:
                if name not in new and remote_files.exists(os.path.join(out, name)):
                    remote_files.remove(os.path.join(out, name))
        for name in [*new, INPUT_REPORT_NAME, MANIFEST_NAME]:
            remote_files.replace(os.path.join(staging, name), os.path.join(out, name))
        remote_files.rmtree(staging)

    def discard(self) -> None:
        """Removes the staging directory, unless `commit` has begun: then it stays, so that
        readers refuse the output and the next run knows what to remove."""
        if not self._committing and remote_files.exists(self.staging):
            remote_files.rmtree(self.staging)
