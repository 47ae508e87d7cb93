"""The train state (step, parameters, optimizer state): created directly in its sharded layout,
or described abstractly (shapes, dtypes, shardings) for a checkpoint to be restored into.

Whatever the model, it enters as its initializer: `init(rng)` returning the parameters with their
logical-axis annotations (`nn.Partitioned` boxes), as `model.init(rng, ...)["params"]` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from bert_jax.model import BertForPreTraining
from bert_jax.parallel import sharding

# rng -> parameters with their logical-axis boxes.
ParamsInit = Callable[[jax.Array], Any]


@flax.struct.dataclass
class TrainState:
    """Everything a pretraining or fine-tuning run updates: what its checkpoints hold."""
    step: jax.Array
    params: Any
    opt_state: Any


def pretraining_init(model: BertForPreTraining, max_seq_length: int,
                     max_predictions_per_seq: int) -> ParamsInit:
    """The initializer of `model`'s parameters, traced on one row of these shapes."""
    def init(rng: jax.Array) -> Any:
        ids = jnp.zeros((1, max_seq_length), jnp.int32)
        return model.init(rng, ids, ids, ids, jnp.zeros((1, max_predictions_per_seq), jnp.int32))["params"]
    return init


def state_shardings(init: ParamsInit, optimizer: optax.GradientTransformation, mesh: jax.sharding.Mesh,
                    rules: Sequence[tuple[str, Any]] = sharding.LOGICAL_RULES) -> TrainState:
    """Where every array of the train state lives: parameters by their logical axes and `rules`
    (`config.run.MeshConfig.rules`); optimizer moments like the parameters they track."""
    boxed = jax.eval_shape(init, jax.random.key(0))
    param_specs = nn.get_partition_spec(boxed)
    abstract_params = nn.unbox(boxed)
    opt_specs = optax.tree_map_params(
        optimizer, lambda _, spec: spec, jax.eval_shape(optimizer.init, abstract_params), param_specs,
        transform_non_params=lambda _: jax.sharding.PartitionSpec(),
        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    specs = TrainState(step=jax.sharding.PartitionSpec(), params=param_specs, opt_state=opt_specs)
    return sharding.logical_to_sharding(specs, mesh, rules)


def abstract_state(init: ParamsInit, optimizer: optax.GradientTransformation,
                   shardings: TrainState) -> TrainState:
    """Shapes, dtypes and shardings of the train state, without allocating it (for restoring)."""
    shapes = jax.eval_shape(functools.partial(_init_state, init, optimizer), jax.random.key(0))
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)


def create_state(init: ParamsInit, optimizer: optax.GradientTransformation, shardings: TrainState,
                 seed: int) -> TrainState:
    """A freshly initialized train state, created directly in its sharded layout."""
    return jax.jit(functools.partial(_init_state, init, optimizer), out_shardings=shardings)(
        jax.random.key(seed))


def _init_state(init: ParamsInit, optimizer: optax.GradientTransformation, rng: jax.Array) -> TrainState:
    params = nn.unbox(init(rng))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
