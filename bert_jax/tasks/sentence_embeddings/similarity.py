"""Cosine similarities with the conventions of sentence-transformers (which follows PyTorch's):
the in-batch ranking loss and the evaluators normalize each vector with
`torch.nn.functional.normalize` (norm clamped at 1e-12) and multiply; `CosineSimilarityLoss`
calls `torch.cosine_similarity` (norms clamped at 1e-8). The clamps only matter for vectors of
near-zero length, which pooled BERT outputs never are, but they keep such a vector (a padded row)
from producing a NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NORMALIZE_EPS = 1e-12      # torch.nn.functional.normalize's default.
COSINE_SIMILARITY_EPS = 1e-8  # torch.cosine_similarity's default.


def _clamped_norm(x: jax.Array, eps: float) -> jax.Array:
    # sqrt(max(|x|^2, eps^2)) equals max(|x|, eps) but has a zero, not NaN, gradient at x = 0.
    return jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), eps * eps))


def l2_normalize(x: jax.Array, eps: float = NORMALIZE_EPS) -> jax.Array:
    """`x / max(|x|, eps)` over the last axis, in float32 (`torch.nn.functional.normalize`)."""
    x = x.astype(jnp.float32)
    return x / _clamped_norm(x, eps)


def cosine_similarity_matrix(a: jax.Array, b: jax.Array) -> jax.Array:
    """[n, m] cosine similarities of the rows of a [n, d] and b [m, d] (sentence-transformers'
    `util.cos_sim`). The product runs at full float32 precision: at JAX's default precision GPUs
    multiply float32 in TF32 and TPUs in bfloat16 passes, which the ranking loss's scale of 20
    multiplies (on an H200, 512 x 512 logits were off by up to 4e-3 at the default, 7e-6 here)."""
    return jnp.matmul(l2_normalize(a), l2_normalize(b).T, precision=jax.lax.Precision.HIGHEST)


def pairwise_cosine_similarity(a: jax.Array, b: jax.Array, eps: float = COSINE_SIMILARITY_EPS) -> jax.Array:
    """[n] cosine similarities of row i of a [n, d] with row i of b [n, d] (`torch.cosine_similarity`,
    which divides each vector by its own clamped norm)."""
    return jnp.sum(l2_normalize(a, eps) * l2_normalize(b, eps), axis=-1)
