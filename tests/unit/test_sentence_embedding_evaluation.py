"""The evaluators against sentence-transformers 6.2.0's own `EmbeddingSimilarityEvaluator`,
`InformationRetrievalEvaluator` and `LabelAccuracyEvaluator`, run on the same vectors through a
stand-in model whose `encode` looks each text's vector up. Ties are deliberate: equal gold scores,
equal similarities, and corpus ids whose string order is not their index order.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer.evaluation import (
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
    LabelAccuracyEvaluator,
)
from sentence_transformers.sentence_transformer.losses import SoftmaxLoss
from sentence_transformers.util import cos_sim

from bert_jax.tasks.sentence_embeddings.evaluation import (
    embedding_retrieval_metrics,
    nli_accuracy,
    rank_corpus,
    retrieval_metrics,
    similarity_correlations,
)
from bert_jax.tasks.sentence_embeddings.losses import nli_logits

HIDDEN = 16
NO_CARD = SimpleNamespace(set_evaluation_metrics=lambda *args, **kwargs: None)


class PrecomputedEncoder:
    """Stands in for a SentenceTransformer whose vectors are already known."""
    similarity_fn_name = "cosine"
    model_card_data = NO_CARD

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def encode(self, sentences, convert_to_tensor: bool = False, **_):
        stacked = np.stack([self.vectors[s] for s in sentences]).astype(np.float32)
        return torch.from_numpy(stacked) if convert_to_tensor else stacked

    encode_query = encode_document = encode

    def similarity(self, a, b):
        return cos_sim(a, b)


def test_similarity_correlations_match_embedding_similarity_evaluator():
    rng = np.random.default_rng(0)
    n = 40
    u = rng.normal(size=(n, HIDDEN)).astype(np.float32)
    v = (u + rng.normal(size=(n, HIDDEN))).astype(np.float32)
    v[5], u[5] = v[4], u[4]  # Two pairs with equal similarities.
    cosines = np.sum(u * v, axis=1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    # STS-style gold scores 0-5 in halves (many ties) that follow the similarities loosely.
    gold = np.round(np.clip(2.5 * (cosines + 1) + rng.normal(size=n), 0, 5) * 2) / 2
    first, second = [f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)]
    encoder = PrecomputedEncoder({**dict(zip(first, u)), **dict(zip(second, v))})
    expected = EmbeddingSimilarityEvaluator(first, second, gold.tolist())(encoder)

    ours = similarity_correlations(u, v, gold)
    assert ours["pearson_cosine"] == pytest.approx(expected["pearson_cosine"], abs=1e-7)
    assert ours["spearman_cosine"] == pytest.approx(expected["spearman_cosine"], abs=1e-7)
    assert 0.2 < ours["spearman_cosine"] < 0.99  # Not a degenerate case.


def _retrieval_case(tied: bool):
    """Queries, a corpus and relevance judgements; `tied`: unit vectors with components 0 and
    +-1/2, whose cosines are exact multiples of 1/4, so that many documents tie exactly."""
    rng = np.random.default_rng(1 if tied else 2)
    num_queries, num_docs = 30, 45
    if tied:
        def draw(n):
            x = np.zeros((n, HIDDEN), np.float32)
            for row in x:
                row[rng.choice(HIDDEN, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
            return x
        queries, corpus = draw(num_queries), draw(num_docs)
    else:
        queries = rng.normal(size=(num_queries, HIDDEN)).astype(np.float32)
        corpus = rng.normal(size=(num_docs, HIDDEN)).astype(np.float32)
    query_ids = [f"q{i}" for i in range(num_queries)]
    corpus_ids = [f"d{i}" for i in range(num_docs)]  # "d10" sorts before "d2".
    relevant = {q: {f"d{j}" for j in rng.choice(num_docs, rng.integers(1, 4), replace=False)}
                for q in query_ids[:-2]}
    relevant[query_ids[-2]] = set()  # Left out of the means, as the evaluator leaves it out.
    relevant["unknown-query"] = {"d0"}
    return queries, corpus, query_ids, corpus_ids, relevant


@pytest.mark.parametrize("tied", [False, True])
def test_retrieval_metrics_match_information_retrieval_evaluator(tied):
    queries, corpus, query_ids, corpus_ids, relevant = _retrieval_case(tied)
    texts = {**{f"query {q}": x for q, x in zip(query_ids, queries)},
             **{f"document {d}": x for d, x in zip(corpus_ids, corpus)}}
    evaluator = InformationRetrievalEvaluator(
        {q: f"query {q}" for q in query_ids}, {d: f"document {d}" for d in corpus_ids}, relevant,
        corpus_chunk_size=7)  # Chunks of the corpus: its ties are resolved across chunks.
    expected = evaluator(PrecomputedEncoder(texts))

    ours = embedding_retrieval_metrics(queries, corpus, query_ids, corpus_ids, relevant)
    assert {f"cosine_{name}" for name in ours} == set(expected)
    for name, value in ours.items():
        assert value == pytest.approx(expected[f"cosine_{name}"], abs=1e-12), name
    assert 0 < ours["mrr@10"] < 1


def test_ties_rank_by_ascending_corpus_id():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], np.float32)
    assert rank_corpus(scores, ["d3", "d0", "d10", "d2", "d1"], 5).tolist() == [[1, 2, 3, 0, 4]]
    metrics = retrieval_metrics(scores, ["q"], ["d3", "d0", "d10", "d2", "d1"], {"q": {"d2"}})
    assert metrics["mrr@10"] == pytest.approx(1 / 3)  # "d0", then "d10" (ties: string order), then "d2".


def test_nli_accuracy_matches_label_accuracy_evaluator():
    rng = np.random.default_rng(3)
    n = 50
    u, v = rng.normal(size=(2, n, HIDDEN)).astype(np.float32)
    labels = rng.integers(0, 3, size=n)

    class GivenEmbeddings(torch.nn.Module):
        device = torch.device("cpu")
        model_card_data = NO_CARD

        def forward(self, features):
            return {"sentence_embedding": features["embedding"]}

        @staticmethod
        def smart_batching_collate(batch):
            us, vs, ys = zip(*batch)
            return [{"embedding": torch.tensor(np.stack(us))}, {"embedding": torch.tensor(np.stack(vs))}], torch.tensor(ys)

    model = GivenEmbeddings()
    torch.manual_seed(0)
    softmax_model = SoftmaxLoss(model, embedding_dimension=HIDDEN, num_labels=3)
    loader = torch.utils.data.DataLoader(list(zip(u, v, labels.tolist())), batch_size=16)
    expected = LabelAccuracyEvaluator(loader, softmax_model=softmax_model, write_csv=False)(model)["accuracy"]

    classifier = {"kernel": jnp.asarray(softmax_model.classifier.weight.detach().numpy().T),
                  "bias": jnp.asarray(softmax_model.classifier.bias.detach().numpy())}
    ours = nli_accuracy(np.asarray(nli_logits(classifier, jnp.asarray(u), jnp.asarray(v))), labels)
    assert ours == expected
    assert 0 < ours < 1
