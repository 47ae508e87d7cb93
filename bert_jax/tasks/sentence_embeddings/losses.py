"""The Sentence-BERT objectives as pure float32 functions of sentence vectors, each equal (value
and gradient) to its sentence-transformers 6.2.0 loss with that loss's defaults:

  softmax_loss                    `SoftmaxLoss`: NLI, cross-entropy of W[u; v; |u - v|] + b
                                  (`nli_cross_entropy`: each row's)
  cosine_similarity_loss          `CosineSimilarityLoss`: STS, MSE of cos(u, v) against a score
                                  in [0, 1] (the caller scales gold scores, e.g. STS-B's 0-5 by 1/5;
                                  `cosine_squared_errors`: each row's)
  multiple_negatives_ranking_loss `MultipleNegativesRankingLoss`: each anchor against every
                                  positive (and hard negative) of the batch, scale 20
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.tasks.sentence_embeddings.similarity import cosine_similarity_matrix, pairwise_cosine_similarity

NLI_LABELS = 3   # entailment, neutral, contradiction: SNLI and MultiNLI.
RANKING_SCALE = 20.0  # MultipleNegativesRankingLoss's default, temperature 0.05.


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """[batch] -log softmax(logits)[label], in float32."""
    logits = logits.astype(jnp.float32)
    picked = jnp.take_along_axis(logits, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked


# --- NLI: SoftmaxLoss. --------------------------------------------------------------------------

def nli_features(u: jax.Array, v: jax.Array) -> jax.Array:
    """[batch, 3 * hidden]: (u, v, |u - v|) concatenated in SoftmaxLoss's order (its defaults:
    `concatenation_sent_rep` and `concatenation_sent_difference` on, the product u * v off)."""
    u, v = u.astype(jnp.float32), v.astype(jnp.float32)
    return jnp.concatenate([u, v, jnp.abs(u - v)], axis=-1)


def init_nli_classifier(rng: jax.Array, hidden_size: int, num_labels: int = NLI_LABELS) -> dict[str, jax.Array]:
    """The classifier's parameters, {"kernel": [3 * hidden, num_labels], "bias": [num_labels]},
    drawn as SoftmaxLoss's `torch.nn.Linear` draws them: uniform in +-1/sqrt(fan in)."""
    fan_in = 3 * hidden_size
    bound = 1.0 / math.sqrt(fan_in)
    kernel_rng, bias_rng = jax.random.split(rng)
    return {"kernel": jax.random.uniform(kernel_rng, (fan_in, num_labels), jnp.float32, -bound, bound),
            "bias": jax.random.uniform(bias_rng, (num_labels,), jnp.float32, -bound, bound)}


def nli_logits(classifier: dict[str, Any], u: jax.Array, v: jax.Array) -> jax.Array:
    """[batch, num_labels] logits of the NLI classifier on the pair vectors u, v [batch, hidden]."""
    # Full float32 precision, as in `cosine_similarity_matrix`: the product is tiny.
    return jnp.matmul(nli_features(u, v), classifier["kernel"], precision=jax.lax.Precision.HIGHEST) + classifier["bias"]


def nli_cross_entropy(classifier: dict[str, Any], u: jax.Array, v: jax.Array, labels: jax.Array) -> jax.Array:
    """[batch] cross-entropy of each row's `nli_logits` against its integer label."""
    return _cross_entropy(nli_logits(classifier, u, v), labels)


def softmax_loss(classifier: dict[str, Any], u: jax.Array, v: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of `nli_logits` against integer `labels` [batch]."""
    return jnp.mean(nli_cross_entropy(classifier, u, v, labels))


# --- STS: CosineSimilarityLoss. -----------------------------------------------------------------

def cosine_squared_errors(u: jax.Array, v: jax.Array, scores: jax.Array) -> jax.Array:
    """[batch] squared error of cos(u_i, v_i) against `scores[i]`."""
    return jnp.square(pairwise_cosine_similarity(u, v) - scores.astype(jnp.float32))


def cosine_similarity_loss(u: jax.Array, v: jax.Array, scores: jax.Array) -> jax.Array:
    """Mean squared error of cos(u_i, v_i) against `scores` [batch] (identity transformation)."""
    return jnp.mean(cosine_squared_errors(u, v, scores))


# --- Contrastive pairs: MultipleNegativesRankingLoss. -------------------------------------------

def multiple_negatives_ranking_loss(anchors: jax.Array, positives: jax.Array,
                                    negatives: Sequence[jax.Array] = (), *, scale: float = RANKING_SCALE,
                                    example_weights: jax.Array | None = None,
                                    axis_name: Hashable | tuple[Hashable, ...] | None = None) -> jax.Array:
    """Mean over anchors of the cross-entropy of `scale * cos(anchor_i, candidate_j)` with the
    candidate i as the label, the candidates being all positives, then all of each hard negative
    column: [positives; negatives[0]; negatives[1]; ...], every array [batch, hidden]. Only
    sentence-transformers' default "query_to_doc" direction: 6.2.0 adds no symmetric
    (positive -> anchors) term unless asked.

    `example_weights` [batch] (1 for real rows, 0 for the padding of a partial batch) makes the
    mean a weighted one, and a row of weight 0 is no candidate of any anchor either: its positive
    and hard negatives drop out of every softmax, so padding neither adds nor removes negatives.

    With `axis_name` (inside `shard_map` or `vmap` over those axes, each instance holding a
    contiguous slice of the batch), the candidates are gathered from all instances, so every anchor
    meets the whole global batch's candidates; the result is the global mean, the same on all.
    """
    candidates = [positives, *negatives]
    rows = anchors.shape[0]
    weights = jnp.ones((rows,), jnp.float32) if example_weights is None else example_weights.astype(jnp.float32)
    candidate_weights = weights
    first_row = 0
    if axis_name is not None:
        # Tiled: instance k's rows land at k * rows, so this instance's anchor i pairs with
        # global candidate first_row + i, and hard negative columns stay whole blocks.
        candidates = [jax.lax.all_gather(c, axis_name, tiled=True) for c in candidates]
        candidate_weights = jax.lax.all_gather(weights, axis_name, tiled=True)
        first_row = jax.lax.axis_index(axis_name) * rows
    logits = scale * cosine_similarity_matrix(anchors, jnp.concatenate(candidates, axis=0))
    if example_weights is not None:
        # Far below any scaled cosine (|logit| <= scale) yet finite: exp() of it is exactly 0, and
        # a padding anchor, all of whose own candidates may be padding too, stays finite (its
        # weight then removes it).
        real = jnp.tile(candidate_weights > 0, len(candidates))
        logits = jnp.where(real[None, :], logits, -1e4 * scale)
    losses = weights * _cross_entropy(logits, first_row + jnp.arange(rows))
    if axis_name is None:
        return jnp.sum(losses) / jnp.sum(weights)
    return jax.lax.psum(jnp.sum(losses), axis_name) / jax.lax.psum(jnp.sum(weights), axis_name)
