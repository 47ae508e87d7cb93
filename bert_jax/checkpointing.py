"""Orbax checkpoints of the train state, with the run's config and the data position.

Saves are asynchronous (training continues while the arrays are written) and atomic (orbax writes
to a temporary directory and renames it once complete), and the last `max_to_keep` are kept.
Each process also saves the position of its data iterator (`input_pipeline.reader.DataIterator`)
in the same checkpoint, so that a resumed run reads exactly what an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from input_pipeline import remote_files

CHECKPOINT_DIR = "checkpoints"
logger = logging.getLogger(__name__)


class DataIteratorHandler(ocp.CheckpointHandler):
    """Saves each process's data iterator position into the checkpoint, beside the arrays."""

    def save(self, directory: epath.Path, args: "DataIteratorSave") -> None:
        prefix = directory / f"process_{jax.process_index()}-of-{jax.process_count()}"
        prefix.mkdir(parents=True, exist_ok=True)
        args.iterator.save(os.fspath(prefix / "iterator"))
        (prefix / "position.json").write_text(json.dumps(args.position))

    def restore(self, directory: epath.Path, args: "DataIteratorRestore") -> dict | None:
        """Restores `args.iterator` in place and returns the saved position description, or
        returns None (leaving the iterator at its start) when the data position was saved by a
        different number of processes: each process then read other files."""
        prefix = directory / f"process_{jax.process_index()}-of-{jax.process_count()}"
        if not (prefix / "position.json").exists():
            return None
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


def checkpoint_directory(workdir: str | os.PathLike) -> str:
    """`workdir/checkpoints`, absolute for a local work dir; a gs://... one stays as it is."""
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    return directory if remote_files.is_remote(directory) else os.path.abspath(directory)


class Checkpointer:
    """Saves and restores `{"state": train state, "config": config dict}` under `workdir/checkpoints`."""

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 3, async_save: bool = True):
        self.directory = checkpoint_directory(workdir)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 enable_async_checkpointing=async_save),
            item_names=("state", "config", "data"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, config: dict, data_iterator: Any = None,
             data_position: dict | None = None) -> None:
        """Starts saving `state` (and the data iterator's position) at `step`; returns before the
        arrays are on disk (async). The iterator is saved now, synchronously, so it must not
        have read past `step`."""
        items = dict(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config))
        if data_iterator is not None:
            items["data"] = DataIteratorSave(data_iterator, data_position or {})
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, step: int, abstract_state: Any) -> Any:
        """The state saved at `step`, laid out like `abstract_state` (shapes, dtypes, shardings)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
        return restored["state"]

    def restore_data(self, step: int, data_iterator: Any, data_position: dict | None = None) -> bool:
        """Moves `data_iterator` to where it was at `step`; False (and a warning) when the
        checkpoint has no usable data position, so that the run reads from the start."""
        position = None
        if (epath.Path(self.directory) / str(step) / "data").exists():
            position = self.manager.restore(step, args=ocp.args.Composite(
                data=DataIteratorRestore(data_iterator, data_position or {})))["data"]
        if position is None:
            logger.warning("checkpoint %d has no data position for %s (saved by another number of "
                           "processes, another phase, or an older version): the data stream "
                           "restarts from its beginning", step, data_position)
        return position is not None

    def restore_config(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def wait_until_finished(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
