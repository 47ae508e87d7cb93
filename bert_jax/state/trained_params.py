"""The parameters of a finished (or running) run, pretraining or another objective's (a task
head, Sentence-BERT), read from its work directory's checkpoints on one device: what export,
import and inference start from.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from bert_jax.config.run import OptimizerConfig
from bert_jax.config.validation import bert_config, config_rules
from bert_jax.errors import DamagedWeights
from bert_jax.model import BertForPreTraining
from bert_jax.parallel import sharding
from bert_jax.state.checkpointer import Checkpointer
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import abstract_state, pretraining_init, state_shardings


def load_trained_params(workdir: str | os.PathLike, step: int | None = None
                        ) -> tuple[Any, ml_collections.ConfigDict, int]:
    """(parameters, config, step) of a checkpoint in `workdir`, on this host's first device, for
    export and inference: of `step`, or when None of the newest checkpoint that restores (a
    damaged newer one is passed over with a warning; the work directory is not changed). A
    pretraining run's are restored into the state its config builds (so a checkpoint of another
    shape is refused as damaged); another objective's as saved (`load_saved_params`).

    Raises FileNotFoundError without checkpoints, DamagedWeights when `step` (or every
    checkpoint) cannot be restored or holds non-finite parameters, naming the checkpoint and the
    parameter.
    """
    return _load(workdir, step, as_saved=False)


def load_saved_params(workdir: str | os.PathLike, step: int | None = None
                      ) -> tuple[Any, ml_collections.ConfigDict, int]:
    """As `load_trained_params`, for a checkpoint of any objective (a task head's as well as
    pretraining's): the parameters are restored in the tree and dtypes the checkpoint records,
    whatever model and optimizer made it."""
    return _load(workdir, step, as_saved=True)


def _load(workdir: str | os.PathLike, step: int | None, as_saved: bool) -> tuple[Any, ml_collections.ConfigDict, int]:
    checkpointer = Checkpointer(workdir, async_save=False)

    def restore(step: int) -> tuple[Any, ml_collections.ConfigDict]:
        config = ml_collections.ConfigDict(checkpointer.restore_config(step))
        if as_saved or not is_pretraining_run(config):
            params = checkpointer.restore_params_as_saved(step)
        else:
            mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.local_devices()[:1])
            init = pretraining_init(BertForPreTraining(bert_config(config)), config.data.max_seq_length,
                                    config.data.max_predictions_per_seq)
            optimizer, _ = make_optimizer(OptimizerConfig.from_config(config.optimizer), config.train.num_steps)
            shardings = state_shardings(init, optimizer, mesh, config_rules(config))
            params = checkpointer.restore(step, abstract_state(init, optimizer, shardings)).params
        check_finite_params(params, os.path.join(checkpointer.directory, str(step)))
        return params, config

    try:
        step, (params, config) = checkpointer.restore_newest(restore, step)
    finally:
        checkpointer.close()
    return params, config, step


def is_pretraining_run(config: ml_collections.ConfigDict) -> bool:
    """Whether a run config trains `BertForPreTraining` (its parameters laid out as such), not
    another objective on the loop: a Sentence-BERT run's config has a `sbert` section."""
    return "sbert" not in config


def check_finite_params(params: Any, source: str) -> None:
    """Raises DamagedWeights naming the first parameter (by path) of `params`, restored from
    `source`, that holds a NaN or an infinity. One reduction per parameter, on its device."""
    finite = jax.device_get(jax.tree.map(lambda x: jnp.isfinite(x).all(), params))
    for path, ok in jax.tree_util.tree_flatten_with_path(finite)[0]:
        if not ok:
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            raise DamagedWeights(f"{source}: parameter {name} holds non-finite values (NaN or "
                                 "infinity): the checkpoint is damaged or was saved from a "
                                 "diverged run; use another checkpoint (--step).")
