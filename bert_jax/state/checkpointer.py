"""Orbax checkpoints of the train state, with the run's config and the data position.

Saves are asynchronous (training continues while the arrays are written) and atomic (orbax writes
to a temporary directory and renames it once complete), and the last `max_to_keep` are kept.
Each process also saves the position of its data iterator (`input_pipeline.reading.reader.DataIterator`)
in the same checkpoint, so that a resumed run reads exactly what an uninterrupted one would.

A save that fails (a full disk, lost permissions) stops the run with a `CheckpointError` at the
next save or wait, never silently, naming the step whose save failed. A checkpoint that cannot be
restored (damaged, half-copied) is moved to `workdir/damaged_checkpoints/` by the run that owns
the directory (`set_aside`); readers (export, inference) leave the directory as it is and use the
newest checkpoint that restores (`restore_newest`).

A restore that fails part-way leaves orbax's reads of the other arrays in flight; when they finish,
each tells an event loop orbax has already closed, and Python prints "Event loop is closed" for
every one of them (thousands for a BERT) before the one useful message. Those echoes are dropped
(`_drop_closed_loop_echoes`); the failure itself is raised as usual.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from bert_jax.errors import DamagedWeights, RunStopped
from input_pipeline import remote_files

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
# Custom metadata of each checkpoint: how many processes saved their data positions into it.
DATA_PROCESS_COUNT = "data_process_count"
logger = logging.getLogger(__name__)
T = TypeVar("T")


class CheckpointError(RunStopped):
    """Writing a checkpoint failed; the run must stop rather than go on without one."""


class DataIteratorHandler(ocp.CheckpointHandler):
    """Saves each process's data iterator position into the checkpoint, beside the arrays."""

    def save(self, directory: epath.Path, args: "DataIteratorSave") -> None:
        prefix = directory / f"process_{jax.process_index()}-of-{jax.process_count()}"
        prefix.mkdir(parents=True, exist_ok=True)
        args.iterator.save(os.fspath(prefix / "iterator"))
        (prefix / "position.json").write_text(json.dumps(args.position))

    def restore(self, directory: epath.Path, args: "DataIteratorRestore") -> dict | None:
        """Restores `args.iterator` in place and returns the saved position description, or
        returns None (leaving the iterator at its start) when the position saved describes
        another stream (another phase, files or batch size). Call only when the checkpoint was
        saved by as many processes as now (`Checkpointer.restore_data` checks): a missing file
        then means a damaged checkpoint and raises FileNotFoundError."""
        prefix = directory / f"process_{jax.process_index()}-of-{jax.process_count()}"
        if not (prefix / "position.json").exists():
            raise FileNotFoundError(
                f"the data position {prefix / 'position.json'} is missing although the checkpoint "
                f"was saved by {jax.process_count()} processes, as many as now: the checkpoint is "
                "incomplete")
        position = json.loads((prefix / "position.json").read_text())
        if position != args.position:
            return None
        args.iterator.restore(os.fspath(prefix / "iterator"))
        return position


@ocp.args.register_with_handler(DataIteratorHandler, for_save=True)
@dataclasses.dataclass
class DataIteratorSave(ocp.args.CheckpointArgs):
    iterator: Any
    position: dict  # What the iterator reads (e.g. the training phase); checked at restore.


@ocp.args.register_with_handler(DataIteratorHandler, for_restore=True)
@dataclasses.dataclass
class DataIteratorRestore(ocp.args.CheckpointArgs):
    iterator: Any
    position: dict


def damage_reason(error: BaseException) -> str:
    """Why a checkpoint failed to restore, in one line (orbax's errors quote whole tensorstore
    specs over many lines)."""
    first_line = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"[:300]


def _drop_closed_loop_echoes() -> None:
    """Makes `sys.unraisablehook` drop the "Event loop is closed" errors raised when a read that
    a failed restore left in flight finishes after orbax closed its event loop (see the module
    docstring): nobody waits for those reads any more. Every other unraisable error goes to the
    hook that was in place. Idempotent."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_echoes", False):
        return

    def hook(unraisable: Any) -> None:
        error, frame = unraisable.exc_value, unraisable.exc_traceback
        names = []
        while frame is not None:
            names.append(frame.tb_frame.f_code.co_name)
            frame = frame.tb_next
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"
                and "call_soon_threadsafe" in names):
            previous(unraisable)

    hook.drops_closed_loop_echoes = True
    sys.unraisablehook = hook


def checkpoint_directory(workdir: str | os.PathLike) -> str:
    """`workdir/checkpoints`, absolute for a local work dir; a gs://... one stays as it is."""
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    return directory if remote_files.is_remote(directory) else os.path.abspath(directory)


class Checkpointer:
    """Saves and restores `{"state": train state, "config": config dict}` under `workdir/checkpoints`."""

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 3, async_save: bool = True,
                 cleanup_tmp_directories: bool = False):
        self.workdir = os.fspath(workdir)
        self.directory = checkpoint_directory(workdir)
        self.manager = ocp.CheckpointManager(
            self.directory,
            # The training loop removes the temporary directories of saves cut short by a kill
            # (a reader, e.g. an export next to a running job, must not: one may be in flight).
            # They lie inside `directory`, as everything this class ever deletes does.
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 enable_async_checkpointing=async_save,
                                                 cleanup_tmp_directories=cleanup_tmp_directories),
            item_names=("state", "config", "data"))
        # The step whose background write may still be running: when orbax reports that write's
        # failure later (at the next save or wait), the message must name it, not the step that
        # happened to find out.
        self._in_flight: int | None = None

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints, newest first."""
        return sorted(self.manager.all_steps(), reverse=True)

    def save(self, step: int, state: Any, config: dict, data_iterator: Any = None,
             data_position: dict | None = None) -> None:
        """Starts saving `state` (and the data iterator's position) at `step`; returns before the
        arrays are on disk (async). The iterator is saved now, synchronously, so it must not
        have read past `step`. Raises CheckpointError if this save or the previous one failed
        (naming the step that failed)."""
        items = dict(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config))
        metadata = {}
        if data_iterator is not None:
            items["data"] = DataIteratorSave(data_iterator, data_position or {})
            # Lets a restore tell a data position that is missing (a damaged checkpoint) from one
            # saved by another number of processes (the stream legitimately restarts).
            metadata[DATA_PROCESS_COUNT] = jax.process_count()
        # Orbax would wait for the previous save inside `save` anyway; waiting here first lets a
        # failure of that save's background write be reported under its own step.
        self.wait_until_finished()
        try:
            self.manager.save(step, args=ocp.args.Composite(**items), force=True,
                              custom_metadata=metadata)
        except Exception as e:
            raise self._save_failed(e, step) from e
        self._in_flight = step

    def _save_failed(self, error: Exception, step: int | None) -> CheckpointError:
        # Orbax drops a failed save from its list of steps, so every step listed is complete.
        saved = [s for s in self.all_steps() if step is None or s < step]
        kept = (f"the last complete checkpoint is step {saved[0]}" if saved
                else "no complete checkpoint exists yet")
        return CheckpointError(
            f"saving a checkpoint{'' if step is None else f' (step {step})'} in {self.directory} "
            f"failed: {type(error).__name__}: {error}. The run stops here; {kept}. Free disk space "
            "or fix the directory's permissions, then rerun the same command to resume.")

    def restore(self, step: int, abstract_state: Any) -> Any:
        """The state saved at `step`, laid out like `abstract_state` (shapes, dtypes, shardings)."""
        _drop_closed_loop_echoes()
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
        return restored["state"]

    def restore_params_as_saved(self, step: int) -> Any:
        """The parameters alone (no optimizer state) saved at `step`, in the tree and dtypes the
        checkpoint holds them, on this host's first device: for readers of a run whose model
        they do not build (a Sentence-BERT bi-encoder, a task head)."""
        _drop_closed_loop_echoes()
        path = os.path.join(self.directory, str(step), "state")
        saved = ocp.StandardCheckpointer().metadata(path)
        if saved.item_metadata is None or "params" not in saved.item_metadata.tree:
            raise FileNotFoundError(f"{path} describes no parameters: the checkpoint is incomplete")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = {"params": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                                         saved.item_metadata.tree["params"])}
        restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True)))
        return restored["state"]["params"]

    def restore_data(self, step: int, data_iterator: Any, data_position: dict | None = None) -> bool:
        """Moves `data_iterator` to where it was at `step`. Returns False (with a warning), leaving
        the iterator at its start, when the checkpoint legitimately has no usable position: it was
        saved by another number of processes (each read other files) or for another stream
        (`data_position` differs: another phase, files or batch size), or holds none. Raises when
        the position was saved by as many processes as now but is missing or unreadable: the
        checkpoint is incomplete, and `resume` sets it aside like any damaged one."""
        saved_by = self._data_process_count(step)
        if saved_by is None:
            logger.warning("checkpoint %d holds no data position (saved without one, e.g. by an "
                           "older version): the data stream restarts from its beginning", step)
            return False
        if saved_by != jax.process_count():
            logger.warning("checkpoint %d's data position was saved by %d processes, this run has %d "
                           "(each reads other files): parameters and optimizer state are restored, "
                           "the data stream restarts from its beginning", step, saved_by,
                           jax.process_count())
            return False
        position = self.manager.restore(step, args=ocp.args.Composite(
            data=DataIteratorRestore(data_iterator, data_position or {})))["data"]
        if position is None:
            logger.warning("checkpoint %d's data position is for another stream than %s (another "
                           "phase, files or batch size): the data stream restarts from its "
                           "beginning", step, data_position)
        return position is not None

    def _data_process_count(self, step: int) -> int | None:
        """How many processes saved the data position of `step`; None if the checkpoint holds
        none. Raises FileNotFoundError when its metadata says one was saved but none is there."""
        step_dir = epath.Path(self.directory) / str(step)
        try:
            metadata = ocp.metadata.get_step_metadata(step_dir)
        except Exception:  # noqa: BLE001 - unreadable metadata: judge by the files alone
            metadata = None
        custom = (metadata.custom_metadata if metadata else None) or {}
        if DATA_PROCESS_COUNT in custom:
            count = int(custom[DATA_PROCESS_COUNT])
            if not (step_dir / "data").exists():
                raise FileNotFoundError(
                    f"{step_dir / 'data'} (the data position saved by {count} processes) is "
                    "missing: the checkpoint is incomplete")
            return count
        # Checkpoints saved before the count was recorded: the process directories' names tell it.
        saved = "data" in ((metadata.item_handlers if metadata else None) or {})
        names = [p.name for p in (step_dir / "data").iterdir()] if (step_dir / "data").exists() else []
        counts = {int(m.group(1)) for m in map(re.compile(r"process_\d+-of-(\d+)").fullmatch, names) if m}
        if len(counts) == 1:
            return counts.pop()
        if saved or names:
            raise FileNotFoundError(
                f"{step_dir / 'data'} (the data position the checkpoint's metadata lists) is missing "
                f"or holds no single process count ({sorted(names)}): the checkpoint is incomplete")
        return None

    def restore_newest(self, restore: Callable[[int], T], step: int | None = None) -> tuple[int, T]:
        """(step, `restore(step)`) for `step`, or when None for the newest checkpoint that
        restores: one that raises is passed over with one warning naming it and the step used.
        Read-only, for those who read a run's checkpoints (export, inference): nothing in the
        work directory is moved (the run itself sets damaged checkpoints aside, `set_aside`).

        Raises FileNotFoundError if there is no checkpoint (or none of `step`), DamagedWeights
        if the asked-for `step`, or every checkpoint, fails to restore.
        """
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}; run `bert-jax pretrain` "
                                    "with this work directory first.")
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(f"no checkpoint of step {step} in {self.directory}; its "
                                        f"steps are {', '.join(map(str, steps))}.")
            try:
                return step, restore(step)
            except Exception as e:  # noqa: BLE001 - any failure to read means a damaged checkpoint
                others = [s for s in steps if s != step]
                raise DamagedWeights(
                    f"checkpoint {os.path.join(self.directory, str(step))} cannot be restored "
                    f"({damage_reason(e)}); "
                    + (f"the work directory's other steps are {', '.join(map(str, others))}: pass "
                       "one with --step, or leave --step out for the newest that restores."
                       if others else "it is the only checkpoint.")) from e
        damaged = []
        for candidate in steps:
            try:
                value = restore(candidate)
            except Exception as e:  # noqa: BLE001 - any failure to read means a damaged checkpoint
                damaged.append(f"{os.path.join(self.directory, str(candidate))} ({damage_reason(e)})")
                continue
            if damaged:
                logger.warning("checkpoint %s cannot be restored; using step %d, the newest that "
                               "does (the work directory is left as it is)",
                               "; checkpoint ".join(damaged), candidate)
            return candidate, value
        raise DamagedWeights(f"no checkpoint in {self.directory} can be restored: "
                             + "; ".join(damaged))

    def restore_config(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def wait_until_finished(self) -> None:
        """Blocks until the saves in flight are on disk; raises CheckpointError if one failed."""
        step, self._in_flight = self._in_flight, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(e, step) from e

    def set_aside(self, step: int, reason: str) -> str:
        """Moves the checkpoint of `step`, which could not be restored, out of the way (into
        `workdir/damaged_checkpoints/`, kept for inspection) so that the run resumes from the
        one before it and can later save `step` again. Call on every process; process 0 moves."""
        target = os.path.join(self.workdir, DAMAGED_DIR, f"{step}-{int(time.time())}")
        logger.warning("checkpoint %s cannot be restored (%s); moving it to %s and falling back "
                       "to the checkpoint before it", os.path.join(self.directory, str(step)),
                       reason, target)
        if jax.process_index() == 0:
            epath.Path(target).parent.mkdir(parents=True, exist_ok=True)
            epath.Path(self.directory, str(step)).rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
        self.manager.reload()
        return target

    def close(self) -> None:
        self.manager.close()
