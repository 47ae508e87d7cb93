"""The evaluators of sentence-transformers 6.2.0 as functions of vectors (or scores) already
computed, so that any encoder (a JAX bi-encoder, BM25) is measured by the same code:

  similarity_correlations  `EmbeddingSimilarityEvaluator`: Pearson and Spearman correlation of
                           cos(u_i, v_i) with gold scores (STS)
  retrieval_metrics        `InformationRetrievalEvaluator`: Accuracy, Precision, Recall, MRR, NDCG
                           and MAP at its default cut-offs, from a [queries, corpus] score matrix;
                           documents ranked by score, ties by ascending corpus id, as it does
  nli_accuracy             `LabelAccuracyEvaluator`: argmax of the NLI classifier's logits

Host-side numpy: evaluation runs once per evaluation interval on vectors that are already there.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

# InformationRetrievalEvaluator's default cut-offs.
ACCURACY_AT_K = (1, 3, 5, 10)
PRECISION_RECALL_AT_K = (1, 3, 5, 10)
MRR_AT_K = (10,)
NDCG_AT_K = (10,)
MAP_AT_K = (100,)

_NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's, as in util.cos_sim.
_QUERY_BLOCK = 256      # Queries ranked at a time: bounds the sort's [block, corpus] work arrays.


def _normalized(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _NORMALIZE_EPS)


def cosine_scores(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """[n, m] float32 cosine similarities of the rows of queries [n, d] and documents [m, d]."""
    return _normalized(queries) @ _normalized(documents).T


# --- STS: EmbeddingSimilarityEvaluator. ---------------------------------------------------------

def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    # scipy.stats.pearsonr's arithmetic: centered, each side normalized, then the dot product.
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    return float(np.clip(np.dot(x / np.linalg.norm(x), y / np.linalg.norm(y)), -1.0, 1.0))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (scipy.stats.rankdata)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(x)]
    group = np.repeat(np.arange(len(starts)), ends - starts)
    ranks = np.empty(len(x), np.float64)
    ranks[order] = ((starts + ends + 1) / 2)[group]
    return ranks


def similarity_correlations(embeddings1: np.ndarray, embeddings2: np.ndarray,
                            gold_scores: Sequence[float]) -> dict[str, float]:
    """{"pearson_cosine", "spearman_cosine"} of cos(embeddings1[i], embeddings2[i]) [n, d] with
    `gold_scores` [n] (any scale: correlations ignore it). Spearman is the main STS number."""
    scores = np.sum(_normalized(embeddings1) * _normalized(embeddings2), axis=-1)
    gold = np.asarray(gold_scores, np.float64)
    return {"pearson_cosine": _pearson(gold, scores),
            "spearman_cosine": _pearson(_average_ranks(gold), _average_ranks(scores))}


# --- NLI: LabelAccuracyEvaluator. ---------------------------------------------------------------

def nli_accuracy(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The share of rows whose highest logit [n, num_labels] is the label [n] (ties: the first)."""
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))


# --- Retrieval: InformationRetrievalEvaluator. --------------------------------------------------

def rank_corpus(scores: np.ndarray, corpus_ids: Sequence[Hashable], top_k: int) -> np.ndarray:
    """[queries, min(top_k, corpus)] column indices of each row of `scores` [queries, corpus],
    best first: by descending score, equal scores by ascending corpus id (the evaluator's total
    order, so results do not depend on how the corpus is chunked)."""
    scores = np.asarray(scores)
    by_id = np.array(sorted(range(len(corpus_ids)), key=corpus_ids.__getitem__), np.int64)
    top_k = min(top_k, len(corpus_ids))
    ranked = []
    for start in range(0, len(scores), _QUERY_BLOCK):
        # Columns in id order, then a stable sort on the score alone: ties keep id order.
        block = scores[start:start + _QUERY_BLOCK][:, by_id]
        ranked.append(by_id[np.argsort(-block, axis=-1, kind="stable")[:, :top_k]])
    return np.concatenate(ranked) if ranked else np.zeros((0, top_k), np.int64)


def _dcg(relevances: np.ndarray) -> float:
    return float(np.sum(relevances / np.log2(np.arange(len(relevances)) + 2)))


def retrieval_metrics(scores: np.ndarray, query_ids: Sequence[Hashable], corpus_ids: Sequence[Hashable],
                      relevant_docs: Mapping[Hashable, set], *,
                      accuracy_at_k: Sequence[int] = ACCURACY_AT_K,
                      precision_recall_at_k: Sequence[int] = PRECISION_RECALL_AT_K,
                      mrr_at_k: Sequence[int] = MRR_AT_K, ndcg_at_k: Sequence[int] = NDCG_AT_K,
                      map_at_k: Sequence[int] = MAP_AT_K) -> dict[str, float]:
    """InformationRetrievalEvaluator's metrics from `scores` [queries, corpus] (row i for
    `query_ids[i]`, column j for `corpus_ids[j]`) and `relevant_docs` (query id -> set of corpus
    ids): {"accuracy@1", ..., "precision@k", "recall@k", "mrr@10", "ndcg@10", "map@100"}, each
    the mean over the queries with at least one relevant document (the others are left out, as
    the evaluator leaves them out)."""
    keep = [i for i, q in enumerate(query_ids) if relevant_docs.get(q)]
    if not keep:
        raise ValueError("no query has a relevant document: nothing to evaluate.")
    max_k = max(*accuracy_at_k, *precision_recall_at_k, *mrr_at_k, *ndcg_at_k, *map_at_k)
    ranked = rank_corpus(np.asarray(scores)[keep], corpus_ids, max_k)
    metrics: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        metrics.setdefault(name, []).append(value)

    for row, i in zip(ranked, keep):
        relevant = relevant_docs[query_ids[i]]
        hits = np.array([corpus_ids[j] in relevant for j in row], np.float64)
        for k in accuracy_at_k:
            add(f"accuracy@{k}", float(hits[:k].any()))
        for k in precision_recall_at_k:
            add(f"precision@{k}", hits[:k].sum() / k)
            add(f"recall@{k}", hits[:k].sum() / len(relevant))
        for k in mrr_at_k:
            first = np.flatnonzero(hits[:k])
            add(f"mrr@{k}", 1.0 / (first[0] + 1) if len(first) else 0.0)
        for k in ndcg_at_k:
            add(f"ndcg@{k}", _dcg(hits[:k]) / _dcg(np.ones(min(len(relevant), k))))
        for k in map_at_k:
            precisions = np.cumsum(hits[:k]) / np.arange(1, len(hits[:k]) + 1)
            add(f"map@{k}", float(np.sum(precisions * hits[:k])) / min(k, len(relevant)))
    return {name: float(np.mean(values)) for name, values in metrics.items()}


def embedding_retrieval_metrics(query_embeddings: np.ndarray, corpus_embeddings: np.ndarray,
                                query_ids: Sequence[Hashable], corpus_ids: Sequence[Hashable],
                                relevant_docs: Mapping[Hashable, set], **cutoffs) -> dict[str, float]:
    """`retrieval_metrics` of the cosine similarities of query [n, d] and corpus [m, d] vectors."""
    return retrieval_metrics(cosine_scores(query_embeddings, corpus_embeddings), query_ids, corpus_ids,
                             relevant_docs, **cutoffs)
