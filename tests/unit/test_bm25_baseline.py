"""The BM25 baseline scores with `bm25s` and ranks with the shared retrieval evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from bert_jax.tasks.sentence_embeddings.bm25_baseline import bm25_retrieval_metrics, bm25_scores
from input_pipeline.text.stdlib_retrieval import DocstringPair, RetrievalTask

DOCUMENTS = ["Open a file for reading and return a stream.",
             "Compute the square root of a number.",
             "Join the path components with the separator of the platform."]


def test_bm25_scores_favour_the_documents_sharing_rare_words():
    scores = bm25_scores(["square root", "path separator", "the"], DOCUMENTS)
    assert scores.shape == (3, 3) and scores.dtype == np.float32
    assert scores[0].argmax() == 1 and scores[1].argmax() == 2
    assert not scores[2].any()  # A stop word alone matches nothing.


def test_bm25_metrics_come_from_the_retrieval_evaluator():
    queries = ["Read a stream.", "Square root of a number?", "Split a path with the separator."]
    test = tuple(DocstringPair("m.py", i, f"f{i}", q, d) for i, (q, d) in enumerate(zip(queries, DOCUMENTS)))
    metrics = bm25_retrieval_metrics(RetrievalTask(train=(), test=test))
    assert metrics["recall@1"] == pytest.approx(1.0)
    assert metrics["mrr@10"] == pytest.approx(1.0)
