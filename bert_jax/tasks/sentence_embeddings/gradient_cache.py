"""GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup"; sentence-transformers' `CachedMultipleNegativesRankingLoss`): the exact gradient of a
contrastive loss over a batch whose encoder activations do not fit in memory at once.

A contrastive loss couples every row with every other, so plain gradient accumulation (a loss per
micro-batch) changes the objective: fewer negatives. GradCache keeps the objective and splits the
work instead:
  1. embed every chunk without keeping activations (a forward pass only);
  2. the loss on the whole batch's embeddings, and its gradient w.r.t. those embeddings: small,
     [batch, hidden] per column;
  3. per chunk, run the encoder again and pull the cached embedding gradient back through it
     (a vjp), summing the parameter gradients over chunks.
By the chain rule the sum equals the plain gradient; the price is a second forward pass. Peak
memory is one chunk's activations plus the batch's embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def split_chunks(batch: PyTree, num_chunks: int) -> PyTree:
    """Every leaf [rows, ...] -> [num_chunks, rows / num_chunks, ...], chunk k holding rows
    k, k + num_chunks, k + 2 * num_chunks, ... Strided, not contiguous: with the rows split
    evenly over data-parallel devices (and each device's rows a multiple of `num_chunks`), every
    chunk then has the same number of rows on every device, so all devices work on every chunk."""
    def split(x):
        if x.shape[0] % num_chunks:
            raise ValueError(f"a batch of {x.shape[0]} rows does not split into {num_chunks} equal chunks.")
        return jnp.swapaxes(x.reshape(x.shape[0] // num_chunks, num_chunks, *x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def join_chunks(chunks: PyTree) -> PyTree:
    """The inverse of `split_chunks`: [num_chunks, rows / num_chunks, ...] -> [rows, ...] in the
    batch's own row order."""
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:]), chunks)


def gradient_cached_value_and_grad(
        encode: Callable[[PyTree, PyTree, jax.Array | None], PyTree],
        loss: Callable[[PyTree], jax.Array],
        params: PyTree, batch: PyTree, num_chunks: int, rng: jax.Array | None = None,
) -> tuple[jax.Array, PyTree]:
    """(loss(encode(params, batch)), its gradient w.r.t. `params`), computed chunk by chunk.

    `encode(params, rows, rng)` maps a pytree of [rows, ...] inputs (e.g. the token ids and masks
    of anchors and positives) to a pytree of [rows, hidden] embeddings, row by row (no row may
    depend on another: batch-norm-free encoders such as BERT); `loss(embeddings)` maps the
    embeddings of the whole batch to a scalar. `rng` (for dropout) is split into one key per
    chunk, and both passes over a chunk use its key, so they see the same dropout mask. Any
    parameters of the loss itself (a classifier) get no gradient here: close over them.
    """
    chunks = split_chunks(batch, num_chunks)
    rngs = jax.random.split(rng, num_chunks) if rng is not None else None

    # 1. A forward pass per chunk; nothing is differentiated, so no activations are kept.
    embeddings = jax.lax.map(lambda c: encode(params, *c), (chunks, rngs))
    # 2. The loss on the whole batch and its gradient w.r.t. the embeddings.
    value, embedding_grads = jax.value_and_grad(loss)(join_chunks(embeddings))
    embedding_grads = split_chunks(embedding_grads, num_chunks)

    # 3. Per chunk, the encoder's vjp with the cached gradient, summed over chunks.
    def accumulate(grads, chunk):
        inputs, chunk_rng, chunk_embedding_grads = chunk
        _, pull_back = jax.vjp(lambda p: encode(p, inputs, chunk_rng), params)
        (chunk_grads,) = pull_back(chunk_embedding_grads)
        return jax.tree.map(jnp.add, grads, chunk_grads), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    grads, _ = jax.lax.scan(accumulate, zeros, (chunks, rngs, embedding_grads))
    return value, grads
