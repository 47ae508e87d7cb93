"""Scanned and unrolled layers, the remat policies, and fused and plain attention compute the
same (slow: each case compiles several models)."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.model import BertForPreTraining
from tests.support.model_inputs import SMALL, small_inputs


@pytest.mark.parametrize("remat", ["none", "full", "dots", "dots_no_batch"])
def test_scanned_layers_compute_what_unrolled_layers_compute(remat):
    """nn.scan over the layers (with any remat policy) is the same function of the same weights
    as the unrolled layers, forward and backward, with and without dropout."""
    from bert_jax.model import unscan_params

    scanned = BertForPreTraining(dataclasses.replace(SMALL, scan_layers=True, remat=remat))
    unrolled = BertForPreTraining(SMALL)
    ids, mask, segments, positions = small_inputs()
    boxed = scanned.init(jax.random.key(0), ids, mask, segments, positions)["params"]
    assert nn.get_partition_spec(boxed)["bert"]["layers"]["layer"]["intermediate"]["kernel"] == \
        jax.sharding.PartitionSpec("layers", "embed", "mlp")
    params = nn.unbox(boxed)
    per_layer = unscan_params(params, SMALL.num_layers)
    assert set(per_layer["bert"]) == {"embeddings", "pooler", "layer_0", "layer_1", "layer_2"}

    def loss(model, p):
        out = model.apply({"params": p}, ids, mask, segments, positions)
        return out["mlm_logits"].sum() + out["nsp_logits"].sum()

    np.testing.assert_allclose(loss(scanned, params), loss(unrolled, per_layer), rtol=1e-6)
    g_scanned = unscan_params(jax.grad(lambda p: loss(scanned, p))(params), SMALL.num_layers)
    g_unrolled = jax.grad(lambda p: loss(unrolled, p))(per_layer)
    for a, b in zip(jax.tree.leaves(g_scanned), jax.tree.leaves(g_unrolled)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5)
    # With dropout the layers draw different masks, but remat must redraw the same ones it used.
    train = lambda p: scanned.apply({"params": p}, ids, mask, segments, positions, deterministic=False,  # noqa: E731
                                    rngs={"dropout": jax.random.key(3)})["mlm_logits"].sum()
    assert np.isfinite(jax.grad(train)(params)["bert"]["layers"]["layer"]["output"]["kernel"]).all()


def test_remat_trades_memory_for_recomputation():
    """The remat policies really change what the backward pass keeps: XLA's memory plan for the
    gradient shrinks from "none" (every activation kept) through the "dots" policies to "full"
    (only each layer's input kept), and "full" recomputes the forward matmuls."""
    base = dataclasses.replace(SMALL, vocab_size=1000, hidden_size=128, num_layers=4,
                               intermediate_size=512, scan_layers=True, hidden_dropout_rate=0.0,
                               attention_dropout_rate=0.0)
    ids = jnp.zeros((8, 128), jnp.int32)
    positions = jnp.zeros((8, 20), jnp.int32)
    temp, matmuls = {}, {}
    for remat in ("none", "dots", "full"):
        model = BertForPreTraining(dataclasses.replace(base, remat=remat))
        params = nn.unbox(model.init(jax.random.key(0), ids, ids + 1, ids, positions)["params"])
        grad = jax.jit(jax.grad(lambda p, m=model: m.apply(
            {"params": p}, ids, ids + 1, ids, positions)["mlm_logits"].sum()))
        compiled = grad.lower(params).compile()
        temp[remat] = compiled.memory_analysis().temp_size_in_bytes
        matmuls[remat] = compiled.as_text().count(" dot(")
    assert temp["full"] < 0.6 * temp["dots"] < 0.9 * temp["none"], temp
    assert matmuls["full"] > matmuls["none"], matmuls


def test_fused_attention_equals_plain_attention():
    """jax.nn.dot_product_attention (the default without attention dropout) and the explicit
    einsum-softmax-einsum give the same outputs, padding included."""
    ids, mask, segments, positions = small_inputs()
    auto = BertForPreTraining(SMALL)
    plain = BertForPreTraining(dataclasses.replace(SMALL, attention="plain"))
    params = nn.unbox(auto.init(jax.random.key(0), ids, mask, segments, positions)["params"])
    a = auto.apply({"params": params}, ids, mask, segments, positions)
    b = plain.apply({"params": params}, ids, mask, segments, positions)
    np.testing.assert_allclose(a["mlm_logits"], b["mlm_logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a["nsp_logits"], b["nsp_logits"], rtol=1e-5, atol=1e-5)
