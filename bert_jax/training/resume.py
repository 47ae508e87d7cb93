"""Where a run starts: the newest checkpoint of its work directory that restores (damaged ones set
aside), or a fresh state; and the check that every process of a multi-host run agrees on it.
"""

from __future__ import annotations

import json
import logging
import zlib

import jax
import numpy as np
import optax
from jax.experimental import multihost_utils

from bert_jax.config.run import RunConfig
from bert_jax.config.validation import check_resumable
from bert_jax.convert.sources import initialize_params
from bert_jax.state.checkpointer import Checkpointer, damage_reason
from bert_jax.state.train_state import ParamsInit, TrainState, abstract_state, create_state
from bert_jax.training.objective import Batches, TrainData

logger = logging.getLogger("bert_jax")


def resume(checkpointer: Checkpointer, run: RunConfig, init: ParamsInit, data: TrainData,
           optimizer: optax.GradientTransformation, shardings: TrainState
           ) -> tuple[int, TrainState, Batches]:
    """(step, train state, training batches) to start from: the newest checkpoint that restores,
    else a fresh state at step 0 (`init`ialized, then holding the weights of `run.init_from`
    where it has them).

    The saved config must be compatible (`validation.check_resumable` on
    `run.resume_invariants`). A checkpoint that fails to restore on any process is set aside on
    all of them, with a warning naming it, and the one before it is tried. Finally every process
    checks that all agree on the step and the data position.
    """
    abstract = abstract_state(init, optimizer, shardings)
    start_step, state, batches, data_restored = 0, None, None, False
    steps = checkpointer.all_steps()
    _check_processes_agree({"newest checkpoint": steps[0] if steps else -1})
    for step in steps:
        error = None
        try:
            saved_config = checkpointer.restore_config(step)
        except Exception as e:  # noqa: BLE001 - any failure to read means a damaged checkpoint
            error = e
        if _all_processes(error is None):  # every process makes the same collective calls
            check_resumable(saved_config, run.user_config, checkpointer.workdir, run.resume_invariants)
            try:
                state = checkpointer.restore(step, abstract)
                stage = data.stage_at(step)
                batches = data.batches(stage)
                # At a stage switch the new stage's stream starts afresh, as it does unbroken.
                data_restored = (data.stage_at(step - 1) != stage or
                                 checkpointer.restore_data(step, batches, data.position(stage)))
            except Exception as e:  # noqa: BLE001
                error = e
        if _all_processes(error is None):
            logger.info("resuming from the checkpoint of step %d in %s", step, checkpointer.directory)
            start_step = step
            break
        checkpointer.set_aside(step, damage_reason(error) if error
                               else "it failed to restore on another process")
        state = batches = None
    if state is None:
        state = create_state(init, optimizer, shardings, run.loop.seed)
        if run.init_from:
            # Only a fresh run starts from imported weights; a resumed one has its own.
            state = state.replace(params=initialize_params(run.init_from, state.params,
                                                           shardings.params, run.model))
        batches = data.batches(data.stage_at(0))
    position = json.dumps(data.position(data.stage_at(start_step)), sort_keys=True)
    # 31 bits of the CRC: the all-gather narrows integers to int32 (JAX without x64).
    _check_processes_agree({"step": start_step, "data position": zlib.crc32(position.encode()) & 0x7FFFFFFF,
                            "data position restored": data_restored})
    return start_step, state, batches


def _all_processes(ok: bool) -> bool:
    """Whether `ok` holds on every process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return ok
    return bool(np.all(multihost_utils.process_allgather(np.array(ok))))


def _check_processes_agree(values: dict[str, int]) -> None:
    """Raises unless every process holds the same `values`: processes that resumed from other
    checkpoints or data positions (another work directory, another config) would silently train
    on inconsistent state. A collective: every process must call it."""
    if jax.process_count() == 1:
        return
    everyone = np.asarray(multihost_utils.process_allgather(np.array(list(values.values()), np.int64)))
    if not (everyone == everyone[0]).all():
        per_process = "; ".join(f"process {i}: {dict(zip(values, row.tolist()))}" for i, row in enumerate(everyone))
        raise RuntimeError(f"the processes do not agree on {', '.join(values)} ({per_process}); every "
                           "process must see the same work directory and config.")

