"""The Sentence-BERT pooling and losses against sentence-transformers 6.2.0 itself: its `Pooling`
and `Normalize` modules, and `SoftmaxLoss`, `CosineSimilarityLoss` and
`MultipleNegativesRankingLoss` called through their own `forward` with a stand-in model that
returns given embeddings. Values and gradients w.r.t. the embeddings (and the NLI classifier)
agree within 1e-5 on tiny random vectors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from sentence_transformers.base.modules.normalize import Normalize
from sentence_transformers.sentence_transformer.losses import (
    CosineSimilarityLoss,
    MultipleNegativesRankingLoss,
    SoftmaxLoss,
)
from sentence_transformers.sentence_transformer.modules.pooling import Pooling

from bert_jax.tasks.sentence_embeddings.losses import (
    cosine_similarity_loss,
    multiple_negatives_ranking_loss,
    nli_logits,
    softmax_loss,
)
from bert_jax.tasks.sentence_embeddings.pooling import SENTENCE_POOLINGS, sentence_vectors

BATCH, HIDDEN = 6, 8
RTOL, ATOL = 1e-5, 1e-6  # float32 round-off of sums over at most 3 * 6 terms.


class GivenEmbeddings(torch.nn.Module):
    """Stands in for a SentenceTransformer: the "sentence_embedding" of a column is the tensor its
    features carry, so the loss's own forward runs on embeddings chosen here."""
    device = torch.device("cpu")

    def forward(self, features: dict) -> dict:
        return {"sentence_embedding": features["embedding"]}


def _vectors(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _reference(loss: torch.nn.Module, columns: list[np.ndarray], labels) -> tuple[float, list[np.ndarray]]:
    """The torch loss's value and its gradient w.r.t. each column of embeddings."""
    tensors = [torch.tensor(c, requires_grad=True) for c in columns]
    value = loss([{"embedding": t} for t in tensors], labels)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


def _assert_close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("pooling", SENTENCE_POOLINGS)
def test_pooling_matches_sentence_transformers(pooling, normalize):
    tokens = _vectors(0, BATCH, 7, HIDDEN)
    lengths = np.array([7, 1, 3, 5, 2, 6])  # Right padding, [CLS] first, as our batches are laid out.
    mask = (np.arange(7) < lengths[:, None]).astype(np.int32)
    tokens[mask == 0] = 100.0  # Padding that leaks into any pooling shows.
    features = Pooling(HIDDEN, pooling)({"token_embeddings": torch.tensor(tokens), "attention_mask": torch.tensor(mask)})
    if normalize:
        features = Normalize()(features)
    _assert_close(sentence_vectors(jnp.asarray(tokens), jnp.asarray(mask), pooling, normalize),
                  features["sentence_embedding"].numpy(), f"{pooling}, normalize={normalize}")


def test_softmax_loss_matches_sentence_transformers():
    u, v = _vectors(1, BATCH, HIDDEN), _vectors(2, BATCH, HIDDEN)
    labels = np.array([0, 1, 2, 2, 1, 0])
    torch.manual_seed(0)
    reference = SoftmaxLoss(GivenEmbeddings(), embedding_dimension=HIDDEN, num_labels=3)
    expected, (grad_u, grad_v) = _reference(reference, [u, v], torch.tensor(labels))
    classifier = {"kernel": jnp.asarray(reference.classifier.weight.detach().numpy().T),
                  "bias": jnp.asarray(reference.classifier.bias.detach().numpy())}

    value, (grad_classifier, grad_u_ours, grad_v_ours) = jax.value_and_grad(softmax_loss, argnums=(0, 1, 2))(
        classifier, jnp.asarray(u), jnp.asarray(v), jnp.asarray(labels))
    _assert_close(value, expected, "loss")
    _assert_close(grad_u_ours, grad_u, "d loss / d u")
    _assert_close(grad_v_ours, grad_v, "d loss / d v")
    _assert_close(grad_classifier["kernel"], reference.classifier.weight.grad.numpy().T, "d loss / d kernel")
    _assert_close(grad_classifier["bias"], reference.classifier.bias.grad.numpy(), "d loss / d bias")
    # The logits themselves: SoftmaxLoss without labels returns (embeddings, logits).
    _, logits = reference([{"embedding": torch.tensor(u)}, {"embedding": torch.tensor(v)}], None)
    _assert_close(nli_logits(classifier, jnp.asarray(u), jnp.asarray(v)), logits.detach().numpy(), "logits")


def test_cosine_similarity_loss_matches_sentence_transformers():
    u, v = _vectors(3, BATCH, HIDDEN), _vectors(4, BATCH, HIDDEN)
    scores = np.array([0.0, 0.2, 0.45, 0.6, 0.8, 1.0], np.float32)  # STS-B's 0-5 scaled to [0, 1].
    expected, (grad_u, grad_v) = _reference(CosineSimilarityLoss(GivenEmbeddings()), [u, v], torch.tensor(scores))
    value, (grad_u_ours, grad_v_ours) = jax.value_and_grad(cosine_similarity_loss, argnums=(0, 1))(
        jnp.asarray(u), jnp.asarray(v), jnp.asarray(scores))
    _assert_close(value, expected, "loss")
    _assert_close(grad_u_ours, grad_u, "d loss / d u")
    _assert_close(grad_v_ours, grad_v, "d loss / d v")


@pytest.mark.parametrize("num_negatives", [0, 1, 2])
def test_multiple_negatives_ranking_loss_matches_sentence_transformers(num_negatives):
    columns = [_vectors(10 + i, BATCH, HIDDEN) for i in range(2 + num_negatives)]
    # A positive close to its anchor, so the loss is not near log(candidates) where errors hide.
    columns[1] = columns[0] + 0.5 * columns[1]
    reference = MultipleNegativesRankingLoss(GivenEmbeddings())
    assert reference.scale == 20.0 and reference.directions == ("query_to_doc",)
    expected, expected_grads = _reference(reference, columns, None)

    def loss(*embeddings):
        return multiple_negatives_ranking_loss(embeddings[0], embeddings[1], embeddings[2:])

    value, grads = jax.value_and_grad(loss, argnums=tuple(range(len(columns))))(*map(jnp.asarray, columns))
    _assert_close(value, expected, "loss")
    for i, (ours, theirs) in enumerate(zip(grads, expected_grads)):
        _assert_close(ours, theirs, f"d loss / d column {i}")


@pytest.mark.parametrize("num_negatives", [0, 1])
def test_ranking_loss_padding_rows_are_neither_examples_nor_negatives(num_negatives):
    """Rows of weight 0 (a partial batch's padding) that copy real rows: the loss and the real
    rows' gradients are MultipleNegativesRankingLoss's on the real rows alone; the padding's
    gradients are 0."""
    real = 4
    columns = [_vectors(20 + i, real, HIDDEN) for i in range(2 + num_negatives)]
    columns[1] = columns[0] + 0.5 * columns[1]
    expected, expected_grads = _reference(MultipleNegativesRankingLoss(GivenEmbeddings()), columns, None)
    padded = [np.concatenate([c, c[:BATCH - real]]) for c in columns]  # as close as negatives get
    weights = jnp.asarray(np.arange(BATCH) < real, jnp.float32)

    def loss(*embeddings):
        return multiple_negatives_ranking_loss(embeddings[0], embeddings[1], embeddings[2:], example_weights=weights)

    value, grads = jax.value_and_grad(loss, argnums=tuple(range(len(padded))))(*map(jnp.asarray, padded))
    _assert_close(value, expected, "loss")
    for i, (ours, theirs) in enumerate(zip(grads, expected_grads)):
        _assert_close(ours[:real], theirs, f"d loss / d column {i}, real rows")
        _assert_close(ours[real:], np.zeros_like(ours[real:]), f"d loss / d column {i}, padding rows")
