"""Export to the Hugging Face format, checked by loading it in `transformers` (PyTorch, CPU):
every output within 1e-4 of ours."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from bert_jax.hf_export import export_to_huggingface
from bert_jax.model import BertConfig, BertForPreTraining

CONFIG = BertConfig(vocab_size=0, hidden_size=48, num_layers=3, num_heads=4, intermediate_size=96,
                    max_position_embeddings=128)


def _perturbed_params(config: BertConfig, seed: int = 0):
    """Initialized parameters with every leaf (biases and LayerNorm scales included) moved off
    its initial constant, so a parameter exported to the wrong place cannot go unnoticed."""
    ids = jnp.ones((1, 8), jnp.int32)
    params = nn.unbox(BertForPreTraining(config).init(jax.random.key(seed), ids, ids, ids)["params"])
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, leaves)


@pytest.fixture(scope="module", params=["gelu", "gelu_tanh"])
def exported(request, tmp_path_factory, uncased_vocab_path):
    vocab_size = sum(1 for _ in open(uncased_vocab_path, encoding="utf-8"))
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": vocab_size, "hidden_act": request.param})
    params = _perturbed_params(config)
    out = tmp_path_factory.mktemp("export") / "hf"
    export_to_huggingface(params, config, uncased_vocab_path, True, out)
    return config, params, out


def _inputs(vocab_size: int):
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, vocab_size, (3, 40)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 10:] = 0
    segments = np.zeros_like(ids)
    segments[:, 12:] = 1
    return ids * mask, mask, segments * mask


def test_bert_for_pretraining_logits_match(exported):
    config, params, out = exported
    ids, mask, seg = _inputs(config.vocab_size)
    ours = BertForPreTraining(config).apply({"params": params}, ids, mask, seg)
    hf = transformers.BertForPreTraining.from_pretrained(out).eval()
    with torch.no_grad():
        theirs = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    token_type_ids=torch.tensor(seg))
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours["mlm_logits"])[valid],
                               theirs.prediction_logits.numpy()[valid], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours["nsp_logits"], theirs.seq_relationship_logits.numpy(), atol=1e-4, rtol=0)
    # The decoder is tied to the word embeddings on load, not left at a random init.
    torch.testing.assert_close(hf.cls.predictions.decoder.weight, hf.bert.embeddings.word_embeddings.weight)


def test_bert_model_and_masked_lm_load(exported):
    config, params, out = exported
    ids, mask, seg = _inputs(config.vocab_size)
    sequence, pooled = BertForPreTraining(config).apply(
        {"params": params}, ids, mask, seg, method=lambda m, *a: m.bert(*a))
    encoder = transformers.BertModel.from_pretrained(out).eval()
    masked_lm = transformers.BertForMaskedLM.from_pretrained(out).eval()
    with torch.no_grad():
        hidden = encoder(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                         token_type_ids=torch.tensor(seg))
        mlm = masked_lm(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                        token_type_ids=torch.tensor(seg)).logits.numpy()
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(sequence)[valid], hidden.last_hidden_state.numpy()[valid], atol=1e-4)
    np.testing.assert_allclose(pooled, hidden.pooler_output.numpy(), atol=1e-4)
    ours = BertForPreTraining(config).apply({"params": params}, ids, mask, seg)["mlm_logits"]
    np.testing.assert_allclose(np.asarray(ours)[valid], mlm[valid], atol=1e-4)


def test_export_directory_holds_a_tokenizer(exported, uncased_vocab_path):
    from input_pipeline.tokenization import BertTokenizer

    config, _, out = exported
    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["hidden_act"] == {"gelu": "gelu", "gelu_tanh": "gelu_new"}[config.hidden_act]
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    ours = BertTokenizer.from_vocab_file(uncased_vocab_path)
    text = "The Quick brown fox jumps over the [MASK] dog, naïvely."
    assert hf_tokenizer(text)["input_ids"] == [ours.cls_id, *ours.encode(text), ours.sep_id]
    assert not list(out.parent.glob("*.tmp-*"))


def test_export_refuses_to_overwrite_a_foreign_directory(tmp_path, uncased_vocab_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": 30522})
    with pytest.raises(FileExistsError, match="not an earlier export"):
        export_to_huggingface({}, config, uncased_vocab_path, True, precious)
    assert (precious / "notes.txt").read_text() == "keep me"
