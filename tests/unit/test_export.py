"""Export to the Hugging Face format, checked by loading it in `transformers` (PyTorch, CPU):
every output within 1e-4 of ours."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import torch
import transformers

from bert_jax.convert.export_directory import MARKER_NAME, STAGING_PREFIX
from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.model import BertConfig, BertForPreTraining
from tests.support.export_fixtures import CONFIG


def small_inputs(vocab_size: int):
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
    ids, mask, seg = small_inputs(config.vocab_size)
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
    ids, mask, seg = small_inputs(config.vocab_size)
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
    from input_pipeline.tokenizers.wordpiece import BertTokenizer

    config, _, out = exported
    hf_config = json.loads((out / "config.json").read_text())
    assert hf_config["hidden_act"] == {"gelu": "gelu", "gelu_tanh": "gelu_new"}[config.hidden_act]
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    ours = BertTokenizer.from_vocab_file(uncased_vocab_path)
    text = "The Quick brown fox jumps over the [MASK] dog, naïvely."
    assert hf_tokenizer(text)["input_ids"] == [ours.cls_id, *ours.encode(text), ours.sep_id]
    assert not [p for d in (out, out.parent) for p in d.iterdir() if STAGING_PREFIX in p.name]


def test_export_refuses_to_overwrite_a_foreign_directory(tmp_path, uncased_vocab_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": 30522})
    with pytest.raises(FileExistsError, match="holds files that bert-jax did not write"):
        export_to_huggingface({}, config, uncased_vocab_path, True, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_export_writes_the_tokenizer_files(exported):
    config, _, out = exported
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "vocab.txt",
                                                "tokenizer.json", "tokenizer_config.json",
                                                "special_tokens_map.json", "README.md", MARKER_NAME}
    special = json.loads((out / "special_tokens_map.json").read_text())
    assert special == {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                       "cls_token": "[CLS]", "mask_token": "[MASK]"}
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "BertTokenizer" and tokenizer_config["do_lower_case"]
    assert tokenizer_config["model_max_length"] == config.max_position_embeddings


def test_sentencepiece_export_files(sentencepiece_export):
    _, _, tokenizer, out = sentencepiece_export
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "spiece.model",
                                                "tokenizer.json", "tokenizer_config.json",
                                                "special_tokens_map.json", "README.md", MARKER_NAME}
    assert (out / "spiece.model").read_bytes() == open(tokenizer.model_path, "rb").read()


def test_sentencepiece_export_tokenizes_as_ours(sentencepiece_export):
    """`AutoTokenizer` on the export against our SentencePieceTokenizer on held-out docstring
    lines and prompts: the same ids, except Viterbi ties of the unigram lattice (the same text in
    pieces of equal total score), which must be rare."""
    from conftest import stdlib_docstring_lines

    _, _, ours, out = sentencepiece_export
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    scores = [ours._sp.get_score(i) for i in range(ours.vocab_size)]
    prompts = ["The capital of France is [MASK].", "x[MASK]y", "a [MASK][MASK] b",
               "``quoted''  naïve   CAFÉ", "[CLS] one [SEP] two", "   spaces   around   "]
    lines = list(stdlib_docstring_lines(20_000)[12_000:14_000]) + prompts
    ties = 0
    for line in lines:
        a, b = [ours.cls_id, *ours.encode(line), ours.sep_id], theirs(line)["input_ids"]
        if a != b:
            assert line not in prompts, (line, a, b)
            assert ours.decode(a) == ours.decode(b) and sum(scores[i] for i in a) == pytest.approx(
                sum(scores[i] for i in b), abs=1e-4), (line, a, b)
            ties += 1
    assert ties <= 0.005 * len(lines)
    pair = theirs("first part", "second part")
    assert pair["input_ids"] == [ours.cls_id, *ours.encode("first part"), ours.sep_id,
                                 *ours.encode("second part"), ours.sep_id]
    assert pair["token_type_ids"] == [0] * (len(ours.encode("first part")) + 2) + \
        [1] * (len(ours.encode("second part")) + 1)
    assert theirs.decode(pair["input_ids"], skip_special_tokens=True) == "first part second part"


def test_sentencepiece_export_fill_mask_pipeline(sentencepiece_export):
    """pipeline("fill-mask") on the export: the top-5 tokens of our own logits, in order, with
    probabilities within 1e-4."""
    config, params, ours, out = sentencepiece_export
    pipeline = transformers.pipeline("fill-mask", model=str(out), top_k=5)
    for text in ["Return the [MASK] of the file.", "If the value is [MASK], raise an error."]:
        ids = np.array([[ours.cls_id, *ours.encode(text), ours.sep_id]])
        position = int(np.flatnonzero(ids[0] == ours.mask_id)[0])
        logits = BertForPreTraining(config).apply({"params": params}, ids, np.ones_like(ids),
                                                  np.zeros_like(ids))["mlm_logits"][0, position]
        probs = np.asarray(jax.nn.softmax(logits))
        top = np.argsort(-probs)[:5]
        theirs = pipeline(text)
        assert [p["token"] for p in theirs] == top.tolist()
        np.testing.assert_allclose([p["score"] for p in theirs], probs[top], atol=1e-4)
        assert [p["token_str"] for p in theirs] == [ours.decode([t]) for t in top]
