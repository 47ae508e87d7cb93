"""The objective of extractive question answering (SQuAD): the mean of the start position's and
the end position's cross-entropy over the sequence, each the mean over the windows of the whole
global batch, as `transformers`' `BertForQuestionAnswering`: positions are clamped to
[0, length], and a position at `length` (outside the window) is ignored.

The batch's `start_positions` and `end_positions` (`input_pipeline.tasks.squad_features`): the
answer's first and last token in the window; `[CLS]` (0) where the window holds no answer.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.model.task_heads import BertForQuestionAnswering
from bert_jax.tasks.head_objective import HeadObjective, cross_entropy
from bert_jax.training.objective import Batch, Metrics, Sums

ENDS = ("start", "end")


class QuestionAnsweringObjective(HeadObjective):
    """(start cross-entropy + end cross-entropy) / 2."""

    model: BertForQuestionAnswering

    @staticmethod
    def _positions(batch: Batch, end: str) -> tuple[jax.Array, jax.Array]:
        """(positions clamped to [0, length - 1], weights: 0 where out of the window or on a
        padding row)."""
        length = batch["input_ids"].shape[1]
        positions = jnp.clip(batch[f"{end}_positions"], 0, length)
        weights = (positions < length) * batch["example_weights"]
        return jnp.minimum(positions, length - 1).astype(jnp.int32), weights

    def totals(self, batch: Batch) -> Sums:
        return {f"{end}s": jnp.sum(self._positions(batch, end)[1]) for end in ENDS}

    def loss(self, params: Any, batch: Batch, totals: Sums,
             dropout_key: jax.Array | None) -> tuple[jax.Array, Sums]:
        logits = self.outputs(params, batch, dropout_key)
        loss, sums = 0.0, {}
        for end in ENDS:
            positions, weights = self._positions(batch, end)
            loss_sum = jnp.sum(weights * cross_entropy(logits[f"{end}_logits"], positions))
            loss = loss + loss_sum / jnp.maximum(totals[f"{end}s"], 1.0) / 2
            sums |= {f"{end}_loss_sum": loss_sum, f"{end}s": jnp.sum(weights)}
        return loss, sums

    def summarize(self, sums: Sums) -> Metrics:
        means = {end: sums[f"{end}_loss_sum"] / jnp.maximum(sums[f"{end}s"], 1.0) for end in ENDS}
        return {"loss": (means["start"] + means["end"]) / 2,
                "start_loss": means["start"], "end_loss": means["end"]}
