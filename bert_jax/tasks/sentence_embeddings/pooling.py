"""Sentence vectors from the encoder's token vectors, as sentence-transformers' `Pooling` (and
`Normalize`) modules make them: mean, max or `[CLS]` over the real tokens (`input_mask` 1), never
over padding. The arithmetic is `bert_jax.inference.encode.pool`'s, shared with `bert-jax encode`
so that a trained bi-encoder serves exactly the vectors it was trained on.
"""

from __future__ import annotations

import jax

from bert_jax.inference.encode import pool
from bert_jax.tasks.sentence_embeddings.similarity import l2_normalize

# BERT's pooler (tanh(dense([CLS]))) is `encode`'s fourth pooling, but no Sentence-BERT
# objective uses it: sentence-transformers' Pooling module has no such mode.
SENTENCE_POOLINGS = ("mean", "max", "cls")


def sentence_vectors(sequence: jax.Array, input_mask: jax.Array, pooling: str = "mean",
                     normalize: bool = False) -> jax.Array:
    """[batch, hidden] float32 sentence vectors from the sequence output [batch, length, hidden]
    and `input_mask` [batch, length] (1 on real tokens; `[CLS]` first, padding last). `cls` takes
    position 0, which for right-padded rows is sentence-transformers' first real token."""
    if pooling not in SENTENCE_POOLINGS:
        raise ValueError(f"pooling {pooling!r} must be one of {SENTENCE_POOLINGS}.")
    vectors = pool(sequence, None, input_mask, pooling)
    return l2_normalize(vectors) if normalize else vectors
