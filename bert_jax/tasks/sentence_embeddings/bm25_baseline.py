"""BM25 (Robertson et al.; Lucene's variant, k1 = 1.5, b = 0.75, as `bm25s` implements it) on the
standard library retrieval task, scored by the same `evaluation.retrieval_metrics` as a trained
encoder: the lexical baseline a bi-encoder has to beat. Queries and documents are lower-cased,
split into words of two or more letters or digits, and English stop words are dropped (`bm25s`'s
defaults); there is no stemming.

    python -m bert_jax.tasks.sentence_embeddings.bm25_baseline
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

from bert_jax.tasks.sentence_embeddings.evaluation import retrieval_metrics
from input_pipeline.text.stdlib_retrieval import RetrievalTask, stdlib_retrieval_task

HEADLINE_METRICS = ("recall@1", "recall@10", "mrr@10")


def bm25_scores(queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
    """[queries, documents] float32 BM25 scores of every query against every document."""
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(documents), show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize(list(queries), return_ids=False, show_progress=False)
    scores = np.zeros((len(query_tokens), len(documents)), np.float32)
    for i, tokens in enumerate(query_tokens):
        if tokens:  # A query of stop words only has no terms, so it matches nothing (bm25s raises).
            scores[i] = retriever.get_scores(tokens)
    return scores


def bm25_retrieval_metrics(task: RetrievalTask) -> dict[str, float]:
    """`retrieval_metrics` of BM25 on the task's test queries against its test corpus."""
    queries, corpus = task.queries, task.corpus
    scores = bm25_scores(list(queries.values()), list(corpus.values()))
    return retrieval_metrics(scores, list(queries), list(corpus), task.relevant_docs)


if __name__ == "__main__":
    task = stdlib_retrieval_task()
    metrics = bm25_retrieval_metrics(task)
    print(f"BM25 on {len(task.test)} held-out standard library queries ({len(task.train)} training pairs):")
    for name in HEADLINE_METRICS:
        print(f"  {name:10s} {metrics[name]:.4f}")
