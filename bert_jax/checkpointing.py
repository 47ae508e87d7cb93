"""Orbax checkpoints of the train state, with the run's config saved in every checkpoint.

Saves are asynchronous (training continues while the arrays are written) and atomic (orbax writes
to a temporary directory and renames it once complete), and the last `max_to_keep` are kept.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
    """Saves and restores `{"state": train state, "config": config dict}` under `workdir/checkpoints`."""

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 3, async_save: bool = True):
        self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                 enable_async_checkpointing=async_save),
            item_names=("state", "config"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, config: dict) -> None:
        """Starts saving `state` at `step`; returns before the arrays are on disk (async)."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config)), force=True)

    def restore(self, step: int, abstract_state: Any) -> Any:
        """The state saved at `step`, laid out like `abstract_state` (shapes, dtypes, shardings)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state)))
        return restored["state"]

    def restore_config(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def wait_until_finished(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
