"""A small model config and inputs shared by the model tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.model import BertConfig


def small_inputs(batch: int = 3, length: int = 12, vocab: int = 100):
    ids = jax.random.randint(jax.random.key(1), (batch, length), 5, vocab)
    mask = jnp.ones((batch, length), jnp.int32).at[1, length - 4:].set(0)
    positions = jnp.tile(jnp.arange(1, 4)[None], (batch, 1))
    return ids, mask, (ids > 50).astype(jnp.int32), positions


SMALL = BertConfig(vocab_size=100, hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64)


def random_pretraining_batch(rows: int, length: int = 64, predictions: int = 10, vocab: int = 1000) -> dict:
    """A pretraining batch of random ids, masks, predictions and labels (numpy, seed 0)."""
    rng = np.random.default_rng(0)
    return {"input_ids": rng.integers(5, vocab, (rows, length)).astype(np.int32),
            "input_mask": (np.arange(length)[None] < rng.integers(20, length + 1, (rows, 1))).astype(np.int32),
            "segment_ids": np.zeros((rows, length), np.int32),
            "masked_lm_positions": rng.integers(1, 20, (rows, predictions)).astype(np.int32),
            "masked_lm_ids": rng.integers(5, vocab, (rows, predictions)).astype(np.int32),
            "masked_lm_weights": (rng.random((rows, predictions)) < 0.8).astype(np.float32),
            "next_sentence_labels": rng.integers(0, 2, rows).astype(np.int32)}
