"""The objective of token tagging (NER): softmax cross-entropy at the positions that carry a
word's tag, the mean over those of the whole global batch (as `run_ner.py`, whose -100 labels
`torch.nn.CrossEntropyLoss` ignores).

The batch's `label_ids` and `label_weights` (`input_pipeline.tasks.tagging_features`): a tag id
and weight 1 at each word's first sub-token; weight 0 at its other sub-tokens, `[CLS]`, `[SEP]`
and padding, whose ids are not read.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.model.task_heads import BertForTokenClassification
from bert_jax.tasks.head_objective import HeadObjective, cross_entropy
from bert_jax.training.objective import Batch, Metrics, Sums


class TokenClassificationObjective(HeadObjective):
    """Cross-entropy over the tagged tokens (token accuracy reported beside it)."""

    model: BertForTokenClassification

    def _weights(self, batch: Batch) -> jax.Array:
        return batch["label_weights"].astype(jnp.float32) * batch["example_weights"][:, None]

    def totals(self, batch: Batch) -> Sums:
        return {"tokens": jnp.sum(self._weights(batch))}

    def loss(self, params: Any, batch: Batch, totals: Sums,
             dropout_key: jax.Array | None) -> tuple[jax.Array, Sums]:
        logits, weights = self.outputs(params, batch, dropout_key), self._weights(batch)
        labels = jnp.where(weights > 0, batch["label_ids"], 0).astype(jnp.int32)
        loss_sum = jnp.sum(weights * cross_entropy(logits, labels))
        correct = jnp.sum(weights * (jnp.argmax(logits, axis=-1) == labels))
        # A batch without a tagged token (possible, if unlikely) adds nothing rather than NaN.
        return loss_sum / jnp.maximum(totals["tokens"], 1.0), {
            "loss_sum": loss_sum, "correct": correct, "tagged_tokens": jnp.sum(weights)}

    def summarize(self, sums: Sums) -> Metrics:
        tokens = jnp.maximum(sums["tagged_tokens"], 1.0)
        return {"loss": sums["loss_sum"] / tokens, "accuracy": sums["correct"] / tokens}
