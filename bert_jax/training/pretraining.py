"""BERT's pretraining objective: the masked-LM and next-sentence losses of `BertForPreTraining` over
plain or packed rows (`PretrainingObjective`), and their held-out evaluation
(`PretrainingEvaluation`). Its data, by phase, is `training.phases.PhasedShards`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bert_jax.config.pretraining import Phase, PretrainingData
from bert_jax.model import BertForPreTraining, flops
from bert_jax.state.train_state import pretraining_init
from bert_jax.training.objective import Batch, Metrics, Objective, Sums
from bert_jax.training.phases import eval_batches


def masked_lm_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array,
                   input_tokens: jax.Array) -> dict[str, jax.Array]:
    """Sums of the weighted cross-entropy and correct predictions at the masked positions
    (padding predictions carry weight 0), and the sum of weights, so that means over any number of
    batches can be formed exactly.

    `input_tokens` are the model's inputs at those positions. The 10% of predictions left
    unchanged can be copied from the input, so accuracy is also counted over the replaced ones
    ([MASK] or a random token) alone: only context can predict those.
    """
    # Cross-entropy as logsumexp minus the label's logit, and "correct" as the label's logit
    # reaching the maximum: no index reduction (argmax) and no full log-softmax over the vocab.
    label_logits = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits, axis=-1) - label_logits
    correct = (label_logits >= jnp.max(logits, axis=-1)).astype(jnp.float32)
    replaced = weights * (input_tokens != labels)
    return {"mlm_nll_sum": jnp.sum(nll * weights), "mlm_correct_sum": jnp.sum(correct * weights),
            "mlm_weight_sum": jnp.sum(weights), "mlm_replaced_correct_sum": jnp.sum(correct * replaced),
            "mlm_replaced_sum": jnp.sum(replaced)}


def next_sentence_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
    """Sums of the cross-entropy and correct predictions of the next-sentence head; `weights` is
    0 for the padding examples of a partial evaluation batch."""
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return {"nsp_nll_sum": jnp.sum(nll * weights), "nsp_correct_sum": jnp.sum(correct * weights),
            "nsp_count": jnp.sum(weights)}


def next_sentence_weights(batch: Batch) -> jax.Array:
    """The weight of every next-sentence label: 1 per real sequence, 0 for the padding examples
    of a partial evaluation batch and for the empty sequence slots of packed rows."""
    labels = batch["next_sentence_labels"]
    if "next_sentence_weights" in batch:  # packed rows
        return batch["next_sentence_weights"]
    return batch.get("example_weights", jnp.ones(labels.shape, jnp.float32))


def pretraining_sums(model: BertForPreTraining, params: Any, batch: Batch,
                     dropout_key: jax.Array | None) -> dict[str, jax.Array]:
    """Loss and accuracy sums (`masked_lm_loss`, `next_sentence_loss`) of one batch of plain or
    packed rows (`input_pipeline.reading.packing`: with `position_ids` and `cls_positions`)."""
    outputs = model.apply(
        {"params": params}, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
        batch["masked_lm_positions"], deterministic=dropout_key is None,
        position_ids=batch.get("position_ids"), cls_positions=batch.get("cls_positions"),
        rngs=None if dropout_key is None else {"dropout": dropout_key})
    labels = batch["next_sentence_labels"]
    example_weights = next_sentence_weights(batch)
    input_tokens = jnp.take_along_axis(batch["input_ids"], batch["masked_lm_positions"], axis=1)
    return (masked_lm_loss(outputs["mlm_logits"], batch["masked_lm_ids"], batch["masked_lm_weights"],
                           input_tokens)
            | next_sentence_loss(outputs["nsp_logits"], labels, example_weights))


def summarize(sums: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Means from sums. The MLM loss is normalized by the number of real predictions (+1e-5 as in
    the original, so a batch without any is not a division by zero)."""
    mlm_loss = sums["mlm_nll_sum"] / (sums["mlm_weight_sum"] + 1e-5)
    nsp_loss = sums["nsp_nll_sum"] / sums["nsp_count"]
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": sums["mlm_correct_sum"] / (sums["mlm_weight_sum"] + 1e-5),
            "mlm_replaced_accuracy": sums["mlm_replaced_correct_sum"] / (sums["mlm_replaced_sum"] + 1e-5),
            "nsp_accuracy": sums["nsp_correct_sum"] / sums["nsp_count"]}


class PretrainingObjective(Objective):
    """The masked-LM loss (per real prediction) plus the next-sentence loss (per real sequence)
    of `BertForPreTraining`, each normalized over the whole global batch."""

    def __init__(self, model: BertForPreTraining, init_seq_length: int = 128,
                 init_predictions: int = 20):
        self.model = model
        self._init = pretraining_init(model, init_seq_length, init_predictions)

    @classmethod
    def for_data(cls, model: BertForPreTraining, data: PretrainingData) -> PretrainingObjective:
        """The objective of `model` on `data`'s phases (initialized on phase 1's shapes)."""
        first = data.phases[0]
        return cls(model, first.max_seq_length, first.max_predictions_per_seq)

    def init_params(self, rng: jax.Array) -> Any:
        return self._init(rng)

    def totals(self, batch: Batch) -> Sums:
        return {"mlm": jnp.sum(batch["masked_lm_weights"]) + 1e-5, "nsp": jnp.sum(next_sentence_weights(batch))}

    def loss(self, params: Any, batch: Batch, totals: Sums,
             dropout_key: jax.Array | None) -> tuple[jax.Array, Sums]:
        sums = pretraining_sums(self.model, params, batch, dropout_key)
        return sums["mlm_nll_sum"] / totals["mlm"] + sums["nsp_nll_sum"] / totals["nsp"], sums

    def summarize(self, sums: Sums) -> Metrics:
        return summarize(sums)

    def step_metrics(self, batch: Batch, totals: Sums) -> Metrics:
        # Real sequences and tokens (not padding): packed rows hold several.
        return {"sequences": totals["nsp"], "tokens": jnp.sum(batch["input_mask"] > 0, dtype=jnp.float32)}

    def train_flops(self, stage: Phase, global_batch_size: int) -> float:
        return flops.train_flops_per_step(self.model.config, global_batch_size, stage.max_seq_length,
                                          stage.predictions_per_row)


class PretrainingEvaluation:
    """Held-out loss and accuracies: the sums of every batch added up, then `summarize`d."""

    def __init__(self, objective: PretrainingObjective, data: PretrainingData):
        self.objective = objective
        self.data = data

    def batches(self) -> Iterable[dict[str, np.ndarray]]:
        return eval_batches(self.data)

    def outputs(self, params: Any, batch: Batch) -> Sums:
        return pretraining_sums(self.objective.model, params, batch, dropout_key=None)

    def metrics(self, outputs: Iterator[Sums]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for sums in outputs:
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)
        if not totals:
            raise ValueError(f"data.eval_files={self.data.eval_files!r} holds no examples.")
        return {k: float(v) for k, v in summarize(totals).items()} | {"examples": totals["nsp_count"]}
