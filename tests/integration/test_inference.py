"""Next-sentence prediction and encoding from our checkpoint against `transformers` on the export
of the same checkpoint (`BertForNextSentencePrediction`, `BertModel`): the same token ids, logits,
probabilities and vectors within 1e-4. Loading from a work directory and from its export gives the
same model, and a stream of requests of varied sizes compiles once per bucket shape, then never."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import torch
import transformers

from bert_jax.cli import main
from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.inference.batching import sequence_pair
from bert_jax.inference.encode import POOLINGS, SentenceEncoder, load_token_vectors
from bert_jax.inference.loading import load_model
from bert_jax.inference.next_sentence import NextSentencePredictor, read_pairs
from bert_jax.model import unscan_params
from tests.support.inference_texts import SENTENCES

PAIRS = [
    ("Return the value of the named attribute of object.", "If the string is the name of one "
     "of the object's attributes, the result is the value of that attribute."),
    ("Open the file and return a stream.", "Raise an error if the file cannot be opened."),
    ("The socket must be bound to an address.", "Return a new list containing all items."),
    ("Short.", "x"),
]


@pytest.mark.parametrize("head", ["trained", "random"])
def test_nsp_matches_transformers(tiny_trained_model, head, tmp_path):
    """The tiny_trained_model head (a few steps leave it near 0.5), and a random one of larger weights whose
    probabilities are far from 0.5, so that reading the wrong index could not pass."""
    workdir, export = tiny_trained_model
    if head == "trained":
        predictor = NextSentencePredictor.load(workdir)
    else:
        params, config, tokenizer = load_model(workdir)
        kernel = np.random.default_rng(0).normal(0, 0.5, params["next_sentence"]["kernel"].shape)
        params = {**params, "next_sentence": {"kernel": kernel.astype(np.float32),
                                              "bias": np.zeros(2, np.float32)}}
        predictor = NextSentencePredictor(params, config, tokenizer)
        export = export_to_huggingface(params, config, tiny_trained_model[1] / "vocab.txt", True,
                                       tmp_path / "hf")
    logits, probabilities = predictor.logits(PAIRS), predictor(PAIRS)

    tokenizer = transformers.BertTokenizer.from_pretrained(export)
    inputs = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    for i, (a, b) in enumerate(PAIRS):  # The same [CLS] A [SEP] B [SEP] ids and segments.
        ours = sequence_pair(predictor.tokenizer, a, b, 512)
        n = len(ours.ids)
        assert inputs["input_ids"][i, :n].tolist() == ours.ids
        assert inputs["token_type_ids"][i, :n].tolist() == ours.segments
    model = transformers.BertForNextSentencePrediction.from_pretrained(export).eval()
    with torch.no_grad():
        theirs = model(**inputs).logits.numpy()
    their_probabilities = torch.softmax(torch.tensor(theirs), -1)[:, 0].numpy()  # 0 = "is next".
    print(f"NSP ({head} head) P(is next) {np.round(probabilities, 4).tolist()}: max |logit "
          f"difference| {np.abs(logits - theirs).max():.2e}, max |probability difference| "
          f"{np.abs(probabilities - their_probabilities).max():.2e}")
    np.testing.assert_allclose(logits, theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(probabilities, their_probabilities, atol=1e-4, rtol=0)
    if head == "random":
        assert np.abs(probabilities - 0.5).min() > 0.05


@pytest.fixture(scope="module")
def transformers_encodings(tiny_trained_model) -> dict:
    """`transformers.BertModel` on the export, SENTENCES in one padded batch: `input_ids`,
    `hidden` (last_hidden_state), `mask` (attention_mask), and `pooled`, the sentence vectors of
    every pooling, computed here from its outputs."""
    _, export = tiny_trained_model
    tokenizer = transformers.BertTokenizer.from_pretrained(export)
    inputs = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    model = transformers.BertModel.from_pretrained(export).eval()
    with torch.no_grad():
        out = model(**inputs)
    hidden, mask = out.last_hidden_state.numpy(), inputs["attention_mask"].numpy()
    real = mask[..., None] > 0
    pooled = {
        "mean": (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True),
        "max": np.where(real, hidden, -np.inf).max(1),
        "cls": hidden[:, 0],
        "pooler": out.pooler_output.numpy(),
    }
    return {"input_ids": inputs["input_ids"].numpy(), "hidden": hidden, "mask": mask, "pooled": pooled}


def test_encode_matches_transformers(tiny_trained_model, transformers_encodings):
    workdir, export = tiny_trained_model
    encoder = SentenceEncoder.load(export)
    hidden, mask = transformers_encodings["hidden"], transformers_encodings["mask"]
    input_ids = transformers_encodings["input_ids"]
    expected = transformers_encodings["pooled"]
    assert set(expected) == set(POOLINGS)
    differences = {}
    for pooling in POOLINGS:
        encodings = encoder(SENTENCES, pooling=pooling, with_tokens=True)
        differences[pooling] = np.abs(encodings.sentence_vectors - expected[pooling]).max()
        np.testing.assert_allclose(encodings.sentence_vectors, expected[pooling], atol=1e-4, rtol=0)
    for i in range(len(SENTENCES)):
        n = int(mask[i].sum())
        assert encodings.token_ids[encodings.offsets[i]:encodings.offsets[i + 1]].tolist() == \
            input_ids[i, :n].tolist()
        np.testing.assert_allclose(encodings.tokens(i), hidden[i, :n], atol=1e-4, rtol=0)
    differences["tokens"] = max(np.abs(encodings.tokens(i) - hidden[i, :int(mask[i].sum())]).max()
                                for i in range(len(SENTENCES)))
    print("encode max |difference| vs BertModel: "
          + ", ".join(f"{k} {v:.2e}" for k, v in differences.items()))


def test_work_directory_and_its_export_load_the_same_model(tiny_trained_model):
    workdir, export = tiny_trained_model
    params, config, tokenizer = load_model(workdir)
    hf_params, hf_config, hf_tokenizer = load_model(export)
    assert config.scan_layers and not hf_config.scan_layers
    ours = jax.tree.leaves_with_path(unscan_params(params, config.num_layers))
    theirs = dict(jax.tree.leaves_with_path(hf_params))
    assert len(ours) == len(theirs)
    for path, value in ours:
        np.testing.assert_array_equal(np.asarray(value), np.asarray(theirs[path]), err_msg=str(path))
    assert hf_tokenizer.vocab == tokenizer.vocab
    a = SentenceEncoder(params, config, tokenizer)(SENTENCES).sentence_vectors
    b = SentenceEncoder(hf_params, hf_config, hf_tokenizer)(SENTENCES).sentence_vectors
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_too_long_inputs_are_refused_or_truncated(tiny_trained_model):
    encoder = SentenceEncoder.load(tiny_trained_model[0])
    too_long = " ".join(SENTENCES * 30)
    with pytest.raises(ValueError, match=r"text 2 .* at most 512\. .*truncate"):
        encoder(["fine", too_long])
    encodings = encoder(["fine", too_long], truncate=True, with_tokens=True)
    assert encodings.offsets[2] - encodings.offsets[1] == 512
    assert encodings.token_ids[encodings.offsets[2] - 1] == encoder.tokenizer.sep_id
    predictor = NextSentencePredictor.load(tiny_trained_model[0])
    with pytest.raises(ValueError, match=r"pair 1 .* at most 512"):
        predictor([(too_long, "b")])
    pair = sequence_pair(predictor.tokenizer, too_long, "short text", 512, truncate=True)
    assert len(pair.ids) == 512 and pair.segments.count(1) == len(predictor.tokenizer.encode("short text")) + 1


def test_nsp_command_line(tiny_trained_model, tmp_path, capsys):
    workdir, export = tiny_trained_model
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS[:2]) + "\n", encoding="utf-8")
    assert main(["nsp", "--model", str(export), "--file", str(pairs),
                 "--pair", PAIRS[2][0], PAIRS[2][1]]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["sentence_a"], r["sentence_b"]) for r in records] == [PAIRS[2], *PAIRS[:2]]
    expected = NextSentencePredictor.load(workdir)([PAIRS[2], *PAIRS[:2]])
    np.testing.assert_allclose([r["is_next"] for r in records], expected, atol=1e-5)
    assert main(["nsp", "--model", str(workdir), "--pair", "A.", "B.", "--format", "table"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["is_next", "sentence"] and len(table) == 2

    pairs.write_text("only one sentence\n", encoding="utf-8")
    assert main(["nsp", "--model", str(export), "--file", str(pairs)]) == 2
    assert f"{pairs}:1: expected 'sentence A<TAB>sentence B'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=":1:"):
        read_pairs(pairs)
    assert main(["nsp", "--model", str(export)]) == 2
    assert "no sentence pairs" in capsys.readouterr().err
    assert main(["nsp", "--model", str(tmp_path / "nowhere"), "--pair", "a", "b"]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("pooling", POOLINGS)
def test_encode_command_line(tiny_trained_model, transformers_encodings, pooling, tmp_path, capsys):
    """Every pooling the command offers, from the work directory: the .npy against
    `transformers.BertModel` on the export pooled the same way, and the token vectors, ragged
    (.npz) and padded (.npy and its mask), against its last_hidden_state and attention_mask."""
    workdir, _ = tiny_trained_model
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out, tokens, padded = tmp_path / "vectors.npy", tmp_path / "tokens.npz", tmp_path / "padded.npy"
    assert main(["encode", "--model", str(workdir), "--input", str(text), "--output", str(out),
                 "--tokens", str(tokens), "--padded-tokens", str(padded), "--pooling", pooling]) == 0
    assert f"wrote {len(SENTENCES)} {pooling}-pooled sentence vectors" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(out), transformers_encodings["pooled"][pooling], atol=1e-4, rtol=0)
    expected = SentenceEncoder.load(workdir)(SENTENCES, pooling=pooling, with_tokens=True)
    np.testing.assert_allclose(np.load(out), expected.sentence_vectors, atol=1e-6)
    per_text = load_token_vectors(tokens)
    assert len(per_text) == len(SENTENCES)
    for i, vectors in enumerate(per_text):
        np.testing.assert_allclose(vectors, expected.tokens(i), atol=1e-6)
    with np.load(tokens) as data:
        assert data["offsets"].tolist() == expected.offsets.tolist()

    hidden, mask = transformers_encodings["hidden"], transformers_encodings["mask"]
    vectors, padded_mask = np.load(padded), np.load(tmp_path / "padded.mask.npy")
    assert vectors.shape == hidden.shape and vectors.dtype == np.float32
    assert padded_mask.dtype == np.int32 and np.array_equal(padded_mask, mask)
    np.testing.assert_allclose(vectors[mask == 1], hidden[mask == 1], atol=1e-4, rtol=0)
    assert not vectors[mask == 0].any()

    assert main(["encode", "--model", str(workdir), "--input", str(tmp_path / "missing.txt"),
                 "--output", str(out)]) == 2
    assert "missing.txt" in capsys.readouterr().err
