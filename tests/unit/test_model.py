"""The Flax BERT: output shapes, padding masked out, the masked-position head, parameter counts
against Hugging Face's BERT of the same shape, and config validation."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.model import BertConfig, BertForPreTraining

TINY = BertConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                  max_position_embeddings=64)
# One input shape for every test: the model runs op by op, and each op compiles once per shape
# (a new batch size costs seconds; no assertion here depends on it).
BATCH, LENGTH = 2, 16


def _init(config: BertConfig, batch: int = BATCH, length: int = LENGTH):
    model = BertForPreTraining(config)
    ids = jnp.ones((batch, length), jnp.int32)
    params = nn.unbox(model.init(jax.random.key(0), ids, ids, ids)["params"])
    return model, params


def _random_inputs(rng: np.random.Generator, batch: int, length: int, vocab: int):
    ids = rng.integers(5, vocab, (batch, length)).astype(np.int32)
    lengths = rng.integers(length // 2, length + 1, batch)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
    segments = (np.arange(length)[None, :] >= (lengths // 2)[:, None]).astype(np.int32) * mask
    return ids * mask, mask, segments


def test_output_shapes():
    model, params = _init(TINY)
    ids, mask, seg = _random_inputs(np.random.default_rng(0), BATCH, LENGTH, TINY.vocab_size)
    positions = np.array([[1, 2, 3, 0, 0]] * BATCH, np.int32)
    out = model.apply({"params": params}, ids, mask, seg, positions)
    assert out["mlm_logits"].shape == (BATCH, 5, TINY.vocab_size)
    assert out["nsp_logits"].shape == (BATCH, 2)
    full = model.apply({"params": params}, ids, mask, seg)
    assert full["mlm_logits"].shape == (BATCH, LENGTH, TINY.vocab_size)
    assert out["mlm_logits"].dtype == jnp.float32


def test_masked_positions_match_full_sequence_logits():
    model, params = _init(TINY)
    ids, mask, seg = _random_inputs(np.random.default_rng(1), BATCH, LENGTH, TINY.vocab_size)
    positions = np.array([[3, 1, 7], [0, 5, 5]], np.int32)
    at_positions = model.apply({"params": params}, ids, mask, seg, positions)["mlm_logits"]
    full = model.apply({"params": params}, ids, mask, seg)["mlm_logits"]
    expected = np.take_along_axis(np.asarray(full), positions[..., None], axis=1)
    np.testing.assert_allclose(at_positions, expected, rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_outputs():
    """Changing the tokens and segments of padded positions leaves every real position's
    output (and the pooled output) unchanged: padded keys get no attention."""
    model, params = _init(TINY)
    rng = np.random.default_rng(3)  # Both rows padded.
    ids, mask, seg = _random_inputs(rng, BATCH, LENGTH, TINY.vocab_size)
    noisy_ids = np.where(mask == 1, ids, rng.integers(5, TINY.vocab_size, ids.shape)).astype(np.int32)
    noisy_seg = np.where(mask == 1, seg, 1).astype(np.int32)
    assert (noisy_ids != ids).any()
    a = model.apply({"params": params}, ids, mask, seg)
    b = model.apply({"params": params}, noisy_ids, mask, noisy_seg)
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(a["mlm_logits"])[valid], np.asarray(b["mlm_logits"])[valid],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a["nsp_logits"], b["nsp_logits"], rtol=1e-5, atol=1e-5)
    # And the mask matters: attending to the padding would change the outputs.
    c = model.apply({"params": params}, noisy_ids, np.ones_like(mask), noisy_seg)
    assert not np.allclose(np.asarray(a["mlm_logits"])[valid], np.asarray(c["mlm_logits"])[valid], atol=1e-3)


def test_dropout_only_when_not_deterministic():
    model, params = _init(TINY)
    ids, mask, seg = _random_inputs(np.random.default_rng(3), BATCH, LENGTH, TINY.vocab_size)
    eval_a = model.apply({"params": params}, ids, mask, seg)
    eval_b = model.apply({"params": params}, ids, mask, seg, deterministic=True)
    np.testing.assert_array_equal(eval_a["nsp_logits"], eval_b["nsp_logits"])
    train_a = model.apply({"params": params}, ids, mask, seg, deterministic=False,
                          rngs={"dropout": jax.random.key(0)})
    train_b = model.apply({"params": params}, ids, mask, seg, deterministic=False,
                          rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(train_a["mlm_logits"], train_b["mlm_logits"])


def test_bfloat16_compute_keeps_float32_params_and_logits():
    config = BertConfig(**{**TINY.__dict__, "dtype": "bfloat16"})
    model, params = _init(config)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    ids, mask, seg = _random_inputs(np.random.default_rng(4), BATCH, LENGTH, config.vocab_size)
    out = model.apply({"params": params}, ids, mask, seg)
    full = BertForPreTraining(TINY).apply({"params": params}, ids, mask, seg)
    assert out["mlm_logits"].dtype == jnp.float32
    # bf16 has 8 bits of mantissa: close to float32, not equal.
    np.testing.assert_allclose(out["mlm_logits"], full["mlm_logits"], atol=0.1)


@pytest.mark.parametrize("size", ["tiny", "mini", "base"])
def test_parameter_count_equals_huggingface_bert(size):
    """Same shapes as `transformers`' BertForPreTraining (counting its tied decoder once)."""
    import transformers

    from bert_jax.config.defaults import model_size

    config = BertConfig(**model_size(size))
    shapes = jax.eval_shape(lambda: BertForPreTraining(config).init(
        jax.random.key(0), jnp.ones((1, 8), jnp.int32), jnp.ones((1, 8), jnp.int32),
        jnp.ones((1, 8), jnp.int32)))["params"]
    ours = sum(np.prod(x.shape) for x in jax.tree.leaves(nn.unbox(shapes)))
    hf_config = transformers.BertConfig(
        hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size)
    with torch_meta_device():
        hf = transformers.BertForPreTraining(hf_config)
    theirs = sum(p.numel() for p in hf.parameters())  # .parameters() lists tied tensors once.
    assert ours == theirs
    if size == "base":
        assert 110e6 < ours < 111e6  # "BERT-Base ... Total Parameters=110M"


def torch_meta_device():
    import torch
    return torch.device("meta")


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="hidden_size=100 must be divisible by model.num_heads=12"):
        BertConfig(hidden_size=100, num_heads=12)
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig(hidden_act="relu")


def test_attention_cudnn_insists_on_cudnn_and_auto_falls_back_to_xla():
    """"auto" takes cuDNN's kernel only where it can run (a GPU, bf16/fp16, head_dim a multiple
    of 8 up to 128) and XLA's otherwise; "cudnn" asks for it regardless, and fails clearly where
    there is none. (Its numerics against plain attention are checked on a GPU by
    benchmarks/gpu_suite.py.)"""
    from bert_jax.model.bert import cudnn_attention_supported

    ids, mask, segments = _random_inputs(np.random.default_rng(5), BATCH, LENGTH, TINY.vocab_size)
    positions = np.array([[1, 2, 3]] * BATCH, np.int32)
    q = jnp.zeros((2, 8, 4, 16), jnp.bfloat16)
    assert cudnn_attention_supported(q) == (jax.default_backend() == "gpu")
    assert not cudnn_attention_supported(q.astype(jnp.float32))
    cudnn = BertForPreTraining(dataclasses.replace(TINY, attention="cudnn", dtype="bfloat16"))
    if jax.default_backend() != "gpu":
        with pytest.raises(Exception, match="(?i)cudnn|gpu"):
            cudnn.init(jax.random.key(0), ids, mask, segments, positions)


def test_a_row_of_padding_alone_stays_finite():
    """The filler rows of a partial evaluation batch have no real token at all."""
    ids, mask, segments = _random_inputs(np.random.default_rng(6), BATCH, LENGTH, TINY.vocab_size)
    positions = np.array([[1, 2, 3]] * BATCH, np.int32)
    mask[0] = 0
    assert mask[1].any()
    for attention in ("auto", "plain"):
        model = BertForPreTraining(dataclasses.replace(TINY, attention=attention))
        params = nn.unbox(model.init(jax.random.key(0), ids, mask, segments, positions)["params"])
        out = model.apply({"params": params}, ids, mask, segments, positions)
        assert np.isfinite(np.asarray(out["mlm_logits"])).all()
