"""The Sentence-BERT objectives for `training.loop.train`, over one `BiEncoder`:

  NliObjective          SoftmaxLoss: (premise, hypothesis, label), the classifier trained too
  StsObjective          CosineSimilarityLoss: (sentence1, sentence2, score in [0, 1])
  ContrastiveObjective  MultipleNegativesRankingLoss: (anchor, positive[, negative ...]), every
                        anchor ranked against the candidates of the GLOBAL batch (all data-parallel
                        devices and hosts), scale 20; with `mini_batch_size` or the loop's
                        `grad_accum_steps`, its exact gradient by GradCache

A batch holds each side's tokens as `{side}_input_ids` and `{side}_input_mask` [rows, length]
(sides "a", "b", then "negative_1", "negative_2", ...), with `labels` (NLI, int) or `scores` (STS,
float) and `example_weights` (0 on the padding rows of a partial batch: no loss, and in the ranking
loss no candidate either). Losses are normalized by the real examples of the whole global batch.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.model import BertConfig, SentenceConfig
from bert_jax.model.flops import train_flops_per_step
from bert_jax.tasks.sentence_embeddings.bi_encoder import BiEncoder
from bert_jax.tasks.sentence_embeddings.global_negatives import batch_axes, global_multiple_negatives_ranking_loss
from bert_jax.tasks.sentence_embeddings.gradient_cache import gradient_cached_value_and_grad
from bert_jax.tasks.sentence_embeddings.losses import (
    NLI_LABELS,
    RANKING_SCALE,
    cosine_squared_errors,
    multiple_negatives_ranking_loss,
    nli_cross_entropy,
    nli_logits,
)
from bert_jax.training.objective import Batch, Metrics, Objective, Sums
from input_pipeline.tasks.sentence_features import side_names


class SentenceObjective(Objective):
    """What the three objectives share: the bi-encoder, its parameters, the encoding of each
    side, and the counts (real examples, sequences and tokens)."""

    sides: tuple[str, ...] = ("a", "b")
    num_labels: int = 0

    def __init__(self, config: BertConfig, sentence: SentenceConfig | None = None, max_seq_length: int = 128):
        self.model = BiEncoder(config, sentence or SentenceConfig(), self.num_labels)
        self.config, self.max_seq_length = config, max_seq_length

    def init_params(self, rng: jax.Array) -> Any:
        ids = jnp.zeros((1, self.max_seq_length), jnp.int32)
        return self.model.init(rng, ids, ids)["params"]

    def encode(self, params: Any, batch: Batch, side: str, dropout_key: jax.Array | None) -> jax.Array:
        """[rows, hidden] vectors of one side of `batch`; each side draws its own dropout."""
        rngs = None
        if dropout_key is not None:
            rngs = {"dropout": jax.random.fold_in(dropout_key, self.sides.index(side))}
        return self.model.apply({"params": params}, batch[f"{side}_input_ids"], batch[f"{side}_input_mask"],
                                dropout_key is None, rngs=rngs, method=BiEncoder.encode)

    def totals(self, batch: Batch) -> Sums:
        return {"examples": jnp.sum(batch["example_weights"].astype(jnp.float32))}

    def step_metrics(self, batch: Batch, totals: Sums) -> Metrics:
        weights = batch["example_weights"].astype(jnp.float32)
        tokens = sum(jnp.sum(weights[:, None] * batch[f"{side}_input_mask"]) for side in self.sides)
        # At the batch's own (bucket) length, a constant of the compiled step.
        rows, length = batch[f"{self.sides[0]}_input_ids"].shape
        return {"sequences": totals["examples"] * len(self.sides), "tokens": tokens,
                "flops": jnp.float32(self.flops(rows, length))}

    def flops(self, rows: int, length: int) -> float:
        """Training FLOPs of a batch of `rows` examples padded to `length`: every side is one
        encoder pass; the pooling and the loss are negligible next to it, and GradCache's second
        forward pass is recomputation, which MFU does not count."""
        return train_flops_per_step(self.config, len(self.sides) * rows, length, 0)

    def train_flops(self, stage: Hashable, global_batch_size: int) -> float:
        return self.flops(global_batch_size, self.max_seq_length)


class NliObjective(SentenceObjective):
    """SoftmaxLoss: cross-entropy of the classifier on (u, v, |u - v|) of (premise, hypothesis),
    labels 0..num_labels-1; reports the loss and the accuracy."""

    num_labels = NLI_LABELS

    def logits(self, params: Any, batch: Batch, dropout_key: jax.Array | None = None) -> jax.Array:
        """[rows, num_labels] logits of the batch's pairs."""
        u, v = (self.encode(params, batch, side, dropout_key) for side in self.sides)
        return nli_logits(params["nli_classifier"], u, v)

    def loss(self, params, batch, totals, dropout_key):
        u, v = (self.encode(params, batch, side, dropout_key) for side in self.sides)
        weights = batch["example_weights"].astype(jnp.float32)
        labels = batch["labels"]
        cross_entropy = jnp.sum(weights * nli_cross_entropy(params["nli_classifier"], u, v, labels))
        correct = jnp.argmax(nli_logits(params["nli_classifier"], u, v), axis=-1) == labels
        sums = {"cross_entropy_sum": cross_entropy, "correct": jnp.sum(weights * correct),
                "examples": jnp.sum(weights)}
        return cross_entropy / totals["examples"], sums

    def summarize(self, sums):
        return {"loss": sums["cross_entropy_sum"] / sums["examples"],
                "accuracy": sums["correct"] / sums["examples"]}


class StsObjective(SentenceObjective):
    """CosineSimilarityLoss: squared error of cos(u, v) against `scores` already scaled to [0, 1]."""

    def loss(self, params, batch, totals, dropout_key):
        u, v = (self.encode(params, batch, side, dropout_key) for side in self.sides)
        weights = batch["example_weights"].astype(jnp.float32)
        squared = jnp.sum(weights * cosine_squared_errors(u, v, batch["scores"]))
        return squared / totals["examples"], {"squared_error_sum": squared, "examples": jnp.sum(weights)}

    def summarize(self, sums):
        return {"loss": sums["squared_error_sum"] / sums["examples"]}


def ranking_loss(anchors: jax.Array, positives: jax.Array, negatives: tuple[jax.Array, ...],
                 example_weights: jax.Array, scale: float = RANKING_SCALE) -> jax.Array:
    """The in-batch negatives loss of the global batch: over the mesh in scope while a step is
    traced (`parallel.sharding.with_logical_rules`) when it splits the batch over several devices,
    each device ranking its anchors against every device's candidates; on one device, directly."""
    mesh = jax.sharding.get_abstract_mesh()
    if not mesh.empty and any(mesh.shape[axis] > 1 for axis in batch_axes(mesh)):
        return global_multiple_negatives_ranking_loss(anchors, positives, negatives, mesh=mesh, scale=scale,
                                                      example_weights=example_weights)
    return multiple_negatives_ranking_loss(anchors, positives, negatives, scale=scale,
                                           example_weights=example_weights)


class ContrastiveObjective(SentenceObjective):
    """MultipleNegativesRankingLoss over (anchor, positive) pairs or (anchor, positive, negatives)
    tuples, with the global batch's candidates.

    The loss couples every row with every other, so it is not a sum over micro-batches: with
    `mini_batch_size` (rows per chunk) or the loop's `grad_accum_steps` > 1 (chunks), `gradients`
    is GradCache's (`gradient_cache`): the same gradient as one pass over the whole batch, in one
    chunk's activation memory."""

    def __init__(self, config: BertConfig, sentence: SentenceConfig | None = None, max_seq_length: int = 128,
                 num_negatives: int = 0, scale: float = RANKING_SCALE, mini_batch_size: int = 0):
        self.sides = side_names(2 + num_negatives)
        super().__init__(config, sentence, max_seq_length)
        self.scale, self.mini_batch_size = scale, mini_batch_size

    def _loss_of_vectors(self, vectors: dict[str, jax.Array], weights: jax.Array) -> jax.Array:
        anchors, positives, *negatives = (vectors[side] for side in self.sides)
        return ranking_loss(anchors, positives, tuple(negatives), weights, self.scale)

    def _sums(self, loss: jax.Array, totals: Sums) -> Sums:
        return {"ranking_loss_sum": loss * totals["examples"], "examples": totals["examples"]}

    def loss(self, params, batch, totals, dropout_key):
        """The loss of the whole global `batch` (never of a micro-batch: see `gradients`)."""
        vectors = {side: self.encode(params, batch, side, dropout_key) for side in self.sides}
        loss = self._loss_of_vectors(vectors, batch["example_weights"])
        return loss, self._sums(loss, totals)

    def summarize(self, sums):
        return {"loss": sums["ranking_loss_sum"] / sums["examples"]}

    def num_chunks(self, global_batch_rows: int, grad_accum_steps: int) -> int:
        """How many GradCache chunks a batch of `global_batch_rows` is embedded in (1: one pass)."""
        if not self.mini_batch_size:
            return grad_accum_steps
        if grad_accum_steps > 1:
            raise ValueError(f"mini_batch_size={self.mini_batch_size} and grad_accum_steps={grad_accum_steps} "
                             "both split the batch; set one of them.")
        if global_batch_rows % self.mini_batch_size:
            raise ValueError(f"mini_batch_size={self.mini_batch_size} must divide the batch of "
                             f"{global_batch_rows} rows.")
        return global_batch_rows // self.mini_batch_size

    def gradients(self, params, batch, dropout_key, grad_accum_steps=1):
        totals = self.totals(batch)
        num_chunks = self.num_chunks(batch["example_weights"].shape[0], grad_accum_steps)
        if num_chunks == 1:
            grads, sums = jax.grad(lambda p: self.loss(p, batch, totals, dropout_key), has_aux=True)(params)
        else:
            inputs = {k: v for k, v in batch.items() if k != "example_weights"}

            def encode(p, rows, key):
                return {side: self.encode(p, rows, side, key) for side in self.sides}

            loss, grads = gradient_cached_value_and_grad(
                encode, lambda vectors: self._loss_of_vectors(vectors, batch["example_weights"]),
                params, inputs, num_chunks, dropout_key)
            sums = self._sums(loss, totals)
        return grads, self.summarize(sums) | self.step_metrics(batch, totals)
