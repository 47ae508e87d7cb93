"""The pretraining objective, optimizer and state shardings of a run config, built as
`training.loop.train_and_evaluate` builds them, for tests that drive the step or the state
directly."""

from __future__ import annotations

from typing import Any, NamedTuple

import ml_collections
import optax

from bert_jax.config.pretraining import PretrainingData
from bert_jax.config.run import RunConfig
from bert_jax.model import BertForPreTraining
from bert_jax.parallel import sharding
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import TrainState, create_state, state_shardings
from bert_jax.training.pretraining import PretrainingObjective


class PretrainingParts(NamedTuple):
    run: RunConfig
    data: PretrainingData
    objective: PretrainingObjective
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    shardings: TrainState

    def fresh_state(self) -> TrainState:
        return create_state(self.objective.init_params, self.optimizer, self.shardings, self.run.loop.seed)


def pretraining_parts(config: ml_collections.ConfigDict, mesh: Any = None) -> PretrainingParts:
    """The parts of `config`'s run on `mesh` (default: the config's own mesh)."""
    run, data = RunConfig.from_config(config), PretrainingData.from_config(config)
    objective = PretrainingObjective.for_data(BertForPreTraining(run.model), data)
    optimizer, schedule = make_optimizer(run.optimizer, run.loop.num_steps)
    mesh = mesh if mesh is not None else sharding.make_mesh(dict(run.mesh.shape))
    return PretrainingParts(run, data, objective, optimizer, schedule,
                            state_shardings(objective.init_params, optimizer, mesh, run.mesh.rules))
