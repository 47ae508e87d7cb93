"""An objective other than pretraining, through the generic gradient that the train step updates
with (`Objective.gradients`): a regression head's loss over a partial batch is the mean over its
real rows alone (padding rows, whatever their labels, weigh nothing), and two micro-batches give
the gradient and metrics of one pass, as the loop's gradient accumulation needs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.config.run import OptimizerConfig
from bert_jax.model import BertConfig
from bert_jax.parallel import sharding
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import create_state, state_shardings
from bert_jax.training.array_batches import ArrayBatches
from tests.support.toy_regression import RegressionObjective, examples

MODEL = BertConfig(vocab_size=200, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                   max_position_embeddings=32, hidden_dropout_rate=0.0, attention_dropout_rate=0.0)


def test_a_partial_batch_in_micro_batches_is_the_mean_over_its_real_rows():
    objective = RegressionObjective(MODEL)
    optimizer, _ = make_optimizer(OptimizerConfig(learning_rate=1e-3, warmup_steps=0), 10)
    mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
    state = create_state(objective.init_params, optimizer,
                         state_shardings(objective.init_params, optimizer, mesh), seed=0)
    # The last batch of an epoch of 13 examples in batches of 8: 5 real rows, 3 padding rows.
    batches = ArrayBatches(examples(13, seed=0), 8, shuffle=False)
    next(batches)
    batch = next(batches)
    assert batch["example_weights"].tolist() == [1] * 5 + [0] * 3
    batch["labels"][5:] = 1e3  # padding that counted would dominate the loss

    real = {k: v[:5] for k, v in batch.items()}
    # Compiled whole: op by op, the model's many small dispatches took most of this test's time.
    predictions = np.asarray(jax.jit(objective.predict)(state.params, real))
    expected_loss = float(np.mean((predictions - real["labels"]) ** 2))

    def loss_of_real_rows(params):
        return jnp.mean((objective.predict(params, real) - real["labels"]) ** 2)
    expected_grads = jax.jit(jax.grad(loss_of_real_rows))(state.params)

    key = jax.random.key(0)
    for k in (1, 2):
        grads, metrics = jax.jit(functools.partial(objective.gradients, grad_accum_steps=k))(
            state.params, batch, key)
        np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-5)
        assert metrics["sequences"] == 5
        for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads), strict=True):
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7)

