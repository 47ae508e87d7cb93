"""Evaluation during Sentence-BERT training, as `training.objective.Evaluator`s for the loop: one
pass over a held-out set in file order, the bi-encoder's vectors (or NLI logits) computed on the
mesh, the metrics of sentence-transformers' evaluators (`evaluation`) on the host:

  StsEvaluation        `EmbeddingSimilarityEvaluator`: spearman_cosine (the main STS number) and
                       pearson_cosine of cos(u, v) with the gold scores
  NliEvaluation        `LabelAccuracyEvaluator`: accuracy of the softmax head
  RetrievalEvaluation  `InformationRetrievalEvaluator` over the (anchor, positive) pairs: each
                       distinct anchor a query, each distinct positive a document, a query's
                       positives its relevant documents; recall@k, mrr@10, ndcg@10, map@100 ...

Batches are length-bucketed like training's, so an evaluation compiles at most one program per
bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np

from bert_jax.tasks.sentence_embeddings.evaluation import (
    embedding_retrieval_metrics,
    nli_accuracy,
    similarity_correlations,
)
from bert_jax.tasks.sentence_embeddings.objectives import NliObjective, SentenceObjective
from bert_jax.training.array_batches import ArrayBatches, LengthBuckets
from bert_jax.training.objective import Batch
from input_pipeline.tasks.sentence_features import SentenceFeatures
from input_pipeline.tasks.sentence_pairs import SentenceData

# What each objective's evaluation reports as its main number: the best checkpoint's metric.
MAIN_METRICS = {"nli": "accuracy", "sts": "spearman_cosine", "pairs": "mrr@10"}


class SentenceEvaluation:
    """One pass over `features` (in order, padded to whole batches of `batch_size` with weight-0
    rows), each batch cut to its length bucket."""

    def __init__(self, objective: SentenceObjective, features: SentenceFeatures, batch_size: int,
                 bucket_lengths: tuple[int, ...]):
        self.objective, self.features, self.batch_size = objective, features, batch_size
        sequence_features = tuple(name for name in features.arrays if name.endswith(("_input_ids", "_input_mask")))
        self.buckets = LengthBuckets(bucket_lengths, features.lengths, sequence_features)

    def batches(self) -> Iterable[dict[str, np.ndarray]]:
        return ArrayBatches(self.features.arrays, self.batch_size, shuffle=False, repeat=False,
                            process_index=jax.process_index(), process_count=jax.process_count(),
                            buckets=self.buckets)

    def _vectors(self, params: Any, batch: Batch, sides: tuple[str, ...]) -> dict[str, jax.Array]:
        return {side: self.objective.encode(params, batch, side, None) for side in sides} | {
            "weights": batch["example_weights"]}

    @staticmethod
    def _real_rows(outputs: Iterator[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Every batch's outputs one after the other, the padding rows left out."""
        outputs = list(outputs)
        real = np.concatenate([o["weights"] for o in outputs]) > 0
        return {name: np.concatenate([o[name] for o in outputs])[real] for name in outputs[0] if name != "weights"}


class StsEvaluation(SentenceEvaluation):
    """Spearman and Pearson correlation of the cosine similarity of each pair's vectors with its
    gold score."""

    def outputs(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        return self._vectors(params, batch, ("a", "b")) | {"scores": batch["scores"]}

    def metrics(self, outputs: Iterator[Any]) -> dict[str, float]:
        rows = self._real_rows(outputs)
        return similarity_correlations(rows["a"], rows["b"], rows["scores"])


class NliEvaluation(SentenceEvaluation):
    """Accuracy of the NLI classifier over (u, v, |u - v|)."""

    objective: NliObjective

    def outputs(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        return {"logits": self.objective.logits(params, batch), "labels": batch["labels"],
                "weights": batch["example_weights"]}

    def metrics(self, outputs: Iterator[Any]) -> dict[str, float]:
        rows = self._real_rows(outputs)
        return {"accuracy": nli_accuracy(rows["logits"], rows["labels"])}


class RetrievalEvaluation(SentenceEvaluation):
    """Information retrieval over the pairs of `data`: queries are the distinct anchors, the
    corpus the distinct positives, and a query's relevant documents the positives it is paired
    with (hard negatives, if any, are not used)."""

    def __init__(self, objective: SentenceObjective, data: SentenceData, features: SentenceFeatures,
                 batch_size: int, bucket_lengths: tuple[int, ...]):
        super().__init__(objective, features, batch_size, bucket_lengths)
        # Each distinct text is identified by (and its vector taken from) its first row.
        first_anchor, first_positive = {}, {}
        for row, example in enumerate(data.examples):
            first_anchor.setdefault(example.texts[0], row)
            first_positive.setdefault(example.texts[1], row)
        self.query_rows, self.corpus_rows = list(first_anchor.values()), list(first_positive.values())
        self.relevant: dict[int, set[int]] = {}
        for example in data.examples:
            self.relevant.setdefault(first_anchor[example.texts[0]], set()).add(first_positive[example.texts[1]])

    def outputs(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        return self._vectors(params, batch, ("a", "b"))

    def metrics(self, outputs: Iterator[Any]) -> dict[str, float]:
        rows = self._real_rows(outputs)
        return embedding_retrieval_metrics(rows["a"][self.query_rows], rows["b"][self.corpus_rows],
                                           self.query_rows, self.corpus_rows, self.relevant)
