"""The optimizer: AdamW as BERT was pretrained (or LAMB for very large batches), gradient
clipping, and a linear warm-up followed by linear decay of the learning rate."""

from __future__ import annotations

from typing import Any

import jax
import optax

from bert_jax.config.run import OptimizerConfig


def learning_rate_schedule(config: OptimizerConfig, num_train_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to `learning_rate` over `warmup_steps`, then linear decay to 0 at
    `num_train_steps` (BERT's `polynomial_decay` with power 1)."""
    warmup = optax.linear_schedule(0.0, config.learning_rate, max(config.warmup_steps, 1))
    decay = optax.linear_schedule(config.learning_rate, 0.0,
                                  max(num_train_steps - config.warmup_steps, 1))
    return optax.join_schedules([warmup, decay], [config.warmup_steps])


def decay_mask(params: Any) -> Any:
    """True where weight decay applies: not on LayerNorm parameters nor on biases (as in BERT's
    `exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"]`)."""
    def applies(path, _):
        names = [getattr(k, "key", str(k)) for k in path]
        return not (names[-1] in ("bias", "output_bias") or "layer_norm" in names[-2])
    return jax.tree_util.tree_map_with_path(applies, params)


def make_optimizer(config: OptimizerConfig,
                   num_train_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer named by `config.name` ("adamw" or "lamb") and its schedule."""
    schedule = learning_rate_schedule(config, num_train_steps)
    if config.name == "adamw":
        update = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                             weight_decay=config.weight_decay, mask=decay_mask)
    elif config.name == "lamb":
        update = optax.lamb(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                            weight_decay=config.weight_decay, mask=decay_mask)
    else:
        raise ValueError(f"optimizer.name={config.name!r} must be 'adamw' or 'lamb'.")
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), update), schedule
