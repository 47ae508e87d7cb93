"""The parameters of a finished (or running) pretraining run, read from its work directory's
checkpoints on one device: what export, import and inference start from.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections

from bert_jax.config.run import OptimizerConfig
from bert_jax.config.validation import bert_config, config_rules
from bert_jax.model import BertForPreTraining
from bert_jax.parallel import sharding
from bert_jax.state.checkpointer import Checkpointer
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import abstract_state, pretraining_init, state_shardings


def load_trained_params(workdir: str | os.PathLike, step: int | None = None
                        ) -> tuple[Any, ml_collections.ConfigDict, int]:
    """The parameters and config of a checkpoint in `workdir` (the latest if `step` is None),
    on this host's first device, for export and inference."""
    checkpointer = Checkpointer(workdir, async_save=False)
    try:
        step = checkpointer.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}; run "
                                    "`bert-jax pretrain` with this work directory first.")
        config = ml_collections.ConfigDict(checkpointer.restore_config(step))
        mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.local_devices()[:1])
        init = pretraining_init(BertForPreTraining(bert_config(config)), config.data.max_seq_length,
                                config.data.max_predictions_per_seq)
        optimizer, _ = make_optimizer(OptimizerConfig.from_config(config.optimizer), config.train.num_steps)
        shardings = state_shardings(init, optimizer, mesh, config_rules(config))
        state = checkpointer.restore(step, abstract_state(init, optimizer, shardings))
    finally:
        checkpointer.close()
    return state.params, config, step

