"""A small model config and inputs shared by the model tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bert_jax.model import BertConfig


def small_inputs(batch: int = 3, length: int = 12, vocab: int = 100):
    ids = jax.random.randint(jax.random.key(1), (batch, length), 5, vocab)
    mask = jnp.ones((batch, length), jnp.int32).at[1, length - 4:].set(0)
    positions = jnp.tile(jnp.arange(1, 4)[None], (batch, 1))
    return ids, mask, (ids > 50).astype(jnp.int32), positions


SMALL = BertConfig(vocab_size=100, hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64)
