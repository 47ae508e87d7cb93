"""Steps with a non-finite loss or gradient: the step skips their update (`training.step`); the
loop counts them, and stops the run once too many come in a row."""

from __future__ import annotations

import logging
from typing import Any

from bert_jax.errors import RunStopped
from bert_jax.state.checkpointer import Checkpointer

logger = logging.getLogger("bert_jax")


class TrainingDiverged(RunStopped):
    """Too many consecutive steps had a non-finite loss or gradient."""


class NonFiniteStreak:
    """Counts consecutive skipped (non-finite) steps over the fetched per-step metrics and stops
    the run once `limit` come in a row."""

    def __init__(self, limit: int):
        self.limit = limit
        self.length = 0
        self.total = 0

    def update(self, fetched: list[dict[str, Any]], last_step: int, checkpointer: Checkpointer) -> None:
        for offset, metrics in enumerate(fetched):
            if metrics["skipped"]:
                self.length += 1
                self.total += 1
                if self.length == 1:
                    logger.warning("step %d: non-finite loss (%s) or gradient norm (%s); the update "
                                   "is skipped", last_step - len(fetched) + 1 + offset,
                                   metrics["loss"], metrics["grad_norm"])
            else:
                self.length = 0
            if self.length >= self.limit:
                first = last_step - len(fetched) + 1 + offset - self.length + 1
                checkpointer.wait_until_finished()
                latest = checkpointer.latest_step()
                kept = (f"the last checkpoint is step {latest} in {checkpointer.directory}" if latest
                        else "no checkpoint was saved")
                raise TrainingDiverged(
                    f"{self.length} consecutive steps ({first} to {first + self.length - 1}) had a "
                    f"non-finite loss or gradient (train.max_consecutive_nonfinite={self.limit}); "
                    f"their updates were skipped and the run stops. The parameters did not change "
                    f"since step {first - 1}; {kept}. Lower the learning rate, check the data, or "
                    "use float32 compute.")
