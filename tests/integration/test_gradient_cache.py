"""GradCache gives the plain gradient: on a tiny real `BertModel` (bi-encoder, mean pooling, the
in-batch ranking loss), the loss and parameter gradient computed chunk by chunk equal those of one
pass over the whole batch, with dropout too (each chunk's two passes share its key); and, in a
session with 8 devices, under `jax.jit` with the batch sharded over ("data", "fsdp") and the
global-negatives loss (run so, with a skip counted as a failure, by
tests/integration/test_eight_device_unit_tests.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.model import BertConfig, BertModel
from bert_jax.parallel import sharding
from bert_jax.tasks.sentence_embeddings.global_negatives import global_multiple_negatives_ranking_loss
from bert_jax.tasks.sentence_embeddings.gradient_cache import (
    gradient_cached_value_and_grad,
    join_chunks,
    split_chunks,
)
from bert_jax.tasks.sentence_embeddings.losses import multiple_negatives_ranking_loss
from bert_jax.tasks.sentence_embeddings.pooling import sentence_vectors

CONFIG = BertConfig(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                    max_position_embeddings=16)
BATCH, LENGTH, CHUNKS = 16, 12, 4
MODEL = BertModel(CONFIG)
# Relative to each leaf's largest gradient: float32 round-off of sums reordered over chunks. The
# attention key bias has an exactly zero gradient (softmax ignores a per-query constant), so its
# values are round-off, ~1e-12: the absolute part.
RTOL, ATOL = 1e-5, 1e-10


def _texts(rng: np.random.Generator) -> dict[str, jax.Array]:
    lengths = rng.integers(2, LENGTH + 1, size=BATCH)
    mask = (np.arange(LENGTH) < lengths[:, None]).astype(np.int32)
    return {"input_ids": jnp.asarray(rng.integers(1, CONFIG.vocab_size, size=(BATCH, LENGTH)) * mask),
            "input_mask": jnp.asarray(mask)}


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    batch = {"anchor": _texts(rng), "positive": _texts(rng)}
    anchor = batch["anchor"]
    params = jax.jit(MODEL.init)(jax.random.key(0), anchor["input_ids"], anchor["input_mask"],
                                 jnp.zeros_like(anchor["input_ids"]))["params"]
    return params, batch


@pytest.fixture(scope="module")
def plain(setup):
    """The loss and gradient of one pass over the whole batch, without dropout."""
    params, batch = setup
    return jax.jit(jax.value_and_grad(lambda p: ranking_loss(encode(p, batch, None))))(params)


def encode(params, rows, rng):
    """Both columns through the one shared encoder, mean-pooled."""
    def column(texts, key):
        sequence, _ = MODEL.apply({"params": params}, texts["input_ids"], texts["input_mask"],
                                  jnp.zeros_like(texts["input_ids"]), deterministic=key is None,
                                  rngs=None if key is None else {"dropout": key})
        return sentence_vectors(sequence, texts["input_mask"], "mean")
    keys = (None, None) if rng is None else jax.random.split(rng)
    return {"anchor": column(rows["anchor"], keys[0]), "positive": column(rows["positive"], keys[1])}


def ranking_loss(embeddings):
    return multiple_negatives_ranking_loss(embeddings["anchor"], embeddings["positive"])


def _assert_same(value, grads, expected_value, expected_grads) -> None:
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    for path, ours in jax.tree_util.tree_leaves_with_path(grads):
        theirs = np.asarray(dict(jax.tree_util.tree_leaves_with_path(expected_grads))[path])
        np.testing.assert_allclose(ours, theirs, atol=RTOL * np.abs(theirs).max() + ATOL, rtol=0,
                                   err_msg=jax.tree_util.keystr(path))


def test_chunks_are_strided_and_join_back():
    rows = jnp.arange(BATCH * 2).reshape(BATCH, 2)
    chunks = split_chunks(rows, CHUNKS)
    assert chunks.shape == (CHUNKS, BATCH // CHUNKS, 2)
    assert chunks[1, :, 0].tolist() == [2 * r for r in range(1, BATCH, CHUNKS)]
    assert (join_chunks(chunks) == rows).all()
    with pytest.raises(ValueError, match="does not split into 5 equal chunks"):
        split_chunks(rows, 5)


def test_gradient_cache_equals_the_plain_gradient(setup, plain):
    params, batch = setup
    cached = jax.jit(lambda p: gradient_cached_value_and_grad(encode, ranking_loss, p, batch, CHUNKS))(params)
    _assert_same(*cached, *plain)


def test_gradient_cache_with_dropout_equals_the_plain_gradient_of_the_same_masks(setup, plain):
    params, batch = setup
    rng = jax.random.key(1)

    def with_dropout(p):
        # The function GradCache differentiates, differentiated whole: chunk k encoded with key k.
        chunks, keys = split_chunks(batch, CHUNKS), jax.random.split(rng, CHUNKS)
        return ranking_loss(join_chunks(jax.lax.map(lambda c: encode(p, *c), (chunks, keys))))

    expected = jax.jit(jax.value_and_grad(with_dropout))(params)
    cached = jax.jit(lambda p: gradient_cached_value_and_grad(encode, ranking_loss, p, batch, CHUNKS, rng))(params)
    _assert_same(*cached, *expected)
    assert abs(float(cached[0]) - float(plain[0])) > 1e-3, "dropout was active"


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
def test_gradient_cache_with_global_negatives_on_a_mesh(setup, plain):
    params, batch = setup
    mesh = sharding.make_mesh({"data": 2, "fsdp": 4, "tensor": 1}, jax.devices()[:8])
    # Two rows per device: with two chunks, every device holds one row of each chunk.
    sharded = jax.device_put(batch, sharding.batch_sharding(mesh))
    replicated = jax.device_put(params, sharding.replicated(mesh))

    def global_loss(embeddings):
        return global_multiple_negatives_ranking_loss(embeddings["anchor"], embeddings["positive"], mesh=mesh)

    cached = jax.jit(lambda p, b: gradient_cached_value_and_grad(encode, global_loss, p, b, 2))(replicated, sharded)
    _assert_same(*cached, *plain)
