"""The Sentence-BERT objectives' batches: their losses are normalized by the whole global batch,
so two accumulated micro-batches give the gradient of one pass (NLI, STS); the ranking loss, which
couples all rows, gets the one-pass gradient from GradCache instead (`mini_batch_size` or the
loop's `grad_accum_steps`); and, in a session with 8 devices, its gradient on a mesh whose batch
axes split the batch (each device ranking against the global batch) equals one device's. Padding
rows (weight 0) change nothing: the same batch with its padding rows filled differently gives the
same gradient. Parity with sentence-transformers' training: tests/integration/test_sentence_training_parity.py.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import linen as nn

from bert_jax.model import BertConfig, SentenceConfig
from bert_jax.parallel import sharding
from bert_jax.tasks.sentence_embeddings.objectives import ContrastiveObjective, NliObjective, StsObjective

CONFIG = BertConfig(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                    max_position_embeddings=16, hidden_dropout_rate=0.0, attention_dropout_rate=0.0)
ROWS, LENGTH, REAL = 16, 10, 13
RTOL, ATOL = 1e-5, 1e-8  # float32 sums reordered over micro-batches, chunks or devices


def _batch(seed: int = 0, padding_seed: int = 99) -> dict[str, np.ndarray]:
    """ROWS rows (the last ROWS - REAL of weight 0, their tokens drawn from `padding_seed`) of
    sides a, b, negative_1, with NLI labels and STS scores."""
    rng, padding = np.random.default_rng(seed), np.random.default_rng(padding_seed)
    batch = {}
    for side in ("a", "b", "negative_1"):
        lengths = rng.integers(2, LENGTH + 1, ROWS)
        mask = (np.arange(LENGTH) < lengths[:, None]).astype(np.int32)
        ids = rng.integers(1, CONFIG.vocab_size, (ROWS, LENGTH))
        ids[REAL:] = padding.integers(1, CONFIG.vocab_size, (ROWS - REAL, LENGTH))
        batch[f"{side}_input_ids"], batch[f"{side}_input_mask"] = (ids * mask).astype(np.int32), mask
    batch["labels"] = rng.integers(0, 3, ROWS).astype(np.int32)
    batch["scores"] = rng.random(ROWS).astype(np.float32)
    batch["example_weights"] = (np.arange(ROWS) < REAL).astype(np.float32)
    return batch


def _params(objective):
    return nn.unbox(objective.init_params(jax.random.key(0)))


def _gradients(objective, params, batch, grad_accum_steps=1):
    return jax.jit(lambda p, b: objective.gradients(p, b, jax.random.key(1), grad_accum_steps))(params, batch)


def _assert_same(actual, expected) -> None:
    (grads, metrics), (expected_grads, expected_metrics) = actual, expected
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=RTOL)
    for path, ours, theirs in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(grads),
                                  jax.tree.leaves(expected_grads)):
        scale = float(np.max(np.abs(theirs))) or 1.0
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * scale + ATOL,
                                   err_msg=jax.tree_util.keystr(path[0]))


OBJECTIVES = {"nli": lambda: NliObjective(CONFIG, SentenceConfig(), LENGTH),
              "sts": lambda: StsObjective(CONFIG, SentenceConfig(pooling="max"), LENGTH),
              "pairs": lambda: ContrastiveObjective(CONFIG, SentenceConfig(normalize=True), LENGTH),
              "triplets": lambda: ContrastiveObjective(CONFIG, SentenceConfig(pooling="cls"), LENGTH, num_negatives=1)}


@pytest.mark.parametrize("name", OBJECTIVES)
def test_padding_rows_change_nothing(name):
    objective = OBJECTIVES[name]()
    params = _params(objective)
    _assert_same(_gradients(objective, params, _batch(padding_seed=1)), _gradients(objective, params, _batch()))


@pytest.mark.parametrize("name", ["nli", "sts"])
def test_accumulated_micro_batches_equal_one_pass(name):
    objective = OBJECTIVES[name]()
    params, batch = _params(objective), _batch()
    _assert_same(_gradients(objective, params, batch, grad_accum_steps=4), _gradients(objective, params, batch))


@pytest.mark.parametrize("name", ["pairs", "triplets"])
def test_gradient_cache_equals_one_pass(name):
    plain = OBJECTIVES[name]()
    params, batch = _params(plain), _batch()
    expected = _gradients(plain, params, batch)
    _assert_same(_gradients(plain, params, batch, grad_accum_steps=4), expected)
    cached = OBJECTIVES[name]()
    cached.mini_batch_size = 2
    _assert_same(_gradients(cached, params, batch), expected)
    with pytest.raises(ValueError, match="set one of them"):
        _gradients(cached, params, batch, grad_accum_steps=2)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
@pytest.mark.parametrize("mini_batch_size", [0, 8])
@pytest.mark.parametrize("name", ["pairs", "triplets"])
def test_ranking_on_a_mesh_equals_one_device(name, mini_batch_size):
    objective = OBJECTIVES[name]()
    objective.mini_batch_size = mini_batch_size
    params, batch = _params(objective), _batch()
    mesh = sharding.make_mesh({"data": 4, "fsdp": 2, "tensor": 1}, jax.devices()[:8])
    step = jax.jit(sharding.with_logical_rules(lambda p, b: objective.gradients(p, b, jax.random.key(1)), mesh),
                   in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)))
    on_mesh = step(params, batch)
    _assert_same(on_mesh, _gradients(objective, params, batch))
    text = step.lower(params, batch).as_text()
    assert "all-gather" in text or "all_gather" in text, "the candidates are gathered over the mesh"
