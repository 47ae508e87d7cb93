"""The train state (step, parameters, optimizer state): created directly in its sharded layout,
or described abstractly (shapes, dtypes, shardings) for a checkpoint to be restored into.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from bert_jax.model import BertForPreTraining
from bert_jax.parallel import sharding


@flax.struct.dataclass
class TrainState:
    """Everything a pretraining or fine-tuning run updates: what its checkpoints hold."""
    step: jax.Array
    params: Any
    opt_state: Any


def _dummy_batch(config: ml_collections.ConfigDict, batch_size: int = 1) -> dict[str, jax.Array]:
    seq, preds = config.data.max_seq_length, config.data.max_predictions_per_seq
    ids = jnp.zeros((batch_size, seq), jnp.int32)
    return {"input_ids": ids, "input_mask": ids, "segment_ids": ids,
            "masked_lm_positions": jnp.zeros((batch_size, preds), jnp.int32)}


def init_params(model: BertForPreTraining, config: ml_collections.ConfigDict, rng: jax.Array) -> Any:
    """Parameters with their logical-axis annotations (`nn.Partitioned` boxes)."""
    batch = _dummy_batch(config)
    return model.init(rng, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                      batch["masked_lm_positions"])["params"]


def state_shardings(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> TrainState:
    """Where every array of the train state lives: parameters by their logical axes and the rules
    in `bert_jax.parallel.sharding`; optimizer moments like the parameters they track."""
    boxed = jax.eval_shape(functools.partial(init_params, model, config), jax.random.key(0))
    param_specs = nn.get_partition_spec(boxed)
    abstract_params = nn.unbox(boxed)
    opt_specs = optax.tree_map_params(
        optimizer, lambda _, spec: spec, jax.eval_shape(optimizer.init, abstract_params), param_specs,
        transform_non_params=lambda _: jax.sharding.PartitionSpec(),
        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    specs = TrainState(step=jax.sharding.PartitionSpec(), params=param_specs, opt_state=opt_specs)
    return sharding.logical_to_sharding(specs, mesh, sharding.config_rules(config))


def abstract_state(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                   config: ml_collections.ConfigDict, shardings: TrainState) -> TrainState:
    """Shapes, dtypes and shardings of the train state, without allocating it (for restoring)."""
    shapes = jax.eval_shape(functools.partial(_init_state, model, optimizer, config), jax.random.key(0))
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)


def create_state(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                 config: ml_collections.ConfigDict, shardings: TrainState) -> TrainState:
    """A freshly initialized train state, created directly in its sharded layout."""
    init = functools.partial(_init_state, model, optimizer, config)
    return jax.jit(init, out_shardings=shardings)(jax.random.key(config.train.seed))


def _init_state(model: BertForPreTraining, optimizer: optax.GradientTransformation,
                config: ml_collections.ConfigDict, rng: jax.Array) -> TrainState:
    params = nn.unbox(init_params(model, config, rng))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))

