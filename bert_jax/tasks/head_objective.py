"""What the fine-tuning objectives share: a task head's model (`model.task_heads`), its
parameters, its forward pass with dropout, and the throughput counts of a batch. Each objective
(`tasks.classification`, `tasks.tagging`, `tasks.question_answering`) adds its loss.

Every batch holds the features of `input_pipeline.tasks` (`input_ids`, `input_mask`,
`segment_ids`, the task's labels) and `example_weights` (`training.array_batches`: 0 for the
padding rows of a partial batch), which weight every row's contribution to the loss.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bert_jax.training.objective import Batch, Metrics, Objective, Sums


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """-log softmax(logits)[label] over the last axis, in float32 (as `torch.nn.CrossEntropyLoss`
    before its reduction); `labels` must be valid class ids (mask the others out afterwards)."""
    logits = logits.astype(jnp.float32)
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked


class HeadObjective(Objective):
    """The part of a task's objective that is not its loss: `model` is a task head of
    `model.task_heads`, called on `input_ids`, `input_mask` and `segment_ids`."""

    def __init__(self, model: nn.Module):
        self.model = model

    def init_params(self, rng: jax.Array) -> Any:
        ids = jnp.zeros((1, 8), jnp.int32)  # parameter shapes do not depend on the length
        return self.model.init(rng, ids, ids, ids)["params"]

    def outputs(self, params: Any, batch: Batch, dropout_key: jax.Array | None = None) -> Any:
        """The head's logits for `batch`; dropout drawn from `dropout_key` (None: none)."""
        return self.model.apply({"params": params}, batch["input_ids"], batch["input_mask"],
                                batch["segment_ids"], deterministic=dropout_key is None,
                                rngs=None if dropout_key is None else {"dropout": dropout_key})

    def step_metrics(self, batch: Batch, totals: Sums) -> Metrics:
        weights = batch["example_weights"]
        return {"sequences": jnp.sum(weights),
                "tokens": jnp.sum((batch["input_mask"] > 0) * weights[:, None])}
