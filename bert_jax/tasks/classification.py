"""The objective of sequence classification (single sentences and pairs): softmax cross-entropy
over `num_labels` classes, or, with one output, the mean squared error of a regression score, as
`transformers`' `BertForSequenceClassification` chooses (`problem_type` "regression" when
`num_labels == 1`). Both are means over the real examples of the whole global batch.

The batch's `label` (`input_pipeline.tasks.features.TextFeatures`) is class ids (int32) or
scores (float32).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.model.task_heads import BertForSequenceClassification
from bert_jax.tasks.head_objective import HeadObjective, cross_entropy
from bert_jax.training.objective import Batch, Metrics, Sums


class SequenceClassificationObjective(HeadObjective):
    """Cross-entropy (accuracy reported beside it), or the squared error of one score."""

    model: BertForSequenceClassification

    def __init__(self, model: BertForSequenceClassification):
        super().__init__(model)
        self.regression = model.num_labels == 1

    def totals(self, batch: Batch) -> Sums:
        return {"examples": jnp.sum(batch["example_weights"])}

    def loss(self, params: Any, batch: Batch, totals: Sums,
             dropout_key: jax.Array | None) -> tuple[jax.Array, Sums]:
        logits, weights = self.outputs(params, batch, dropout_key), batch["example_weights"]
        if self.regression:
            losses = (logits[:, 0] - batch["label"].astype(jnp.float32)) ** 2
            sums = {}
        else:
            labels = batch["label"].astype(jnp.int32)
            losses = cross_entropy(logits, labels)
            sums = {"correct": jnp.sum(weights * (jnp.argmax(logits, axis=-1) == labels))}
        loss_sum = jnp.sum(weights * losses)
        return loss_sum / totals["examples"], sums | {"loss_sum": loss_sum, "examples": jnp.sum(weights)}

    def summarize(self, sums: Sums) -> Metrics:
        metrics = {"loss": sums["loss_sum"] / sums["examples"]}
        if not self.regression:
            metrics["accuracy"] = sums["correct"] / sums["examples"]
        return metrics
