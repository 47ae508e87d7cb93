"""Inference over many shapes: a stream of requests (fill-mask, encode, NSP) compiles once per
bucket; a text padded far (beside a long one) pools to the vectors it gets alone, and fill-mask
answers a batch as it answers each text alone; a model without heads encodes and refuses head
tasks; every inference subcommand has --help (subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import transformers

from bert_jax.cli import main
from bert_jax.inference.batching import ShapeBuckets, padded_batches, sequence_pair, single_sequence
from bert_jax.inference.encode import POOLINGS, SentenceEncoder
from bert_jax.inference.fill_mask import FillMask
from bert_jax.inference.next_sentence import NextSentencePredictor
from tests.conftest import stdlib_docstring_lines
from tests.support.inference_texts import MASKED_TEXTS, SENTENCES


def test_a_bert_model_without_heads_encodes_and_refuses_head_tasks(tiny_trained_model, tmp_path, capsys):
    """A directory `transformers.BertModel` saved (no masked-LM or NSP head) loads through the
    importer: encoding works and matches the full export; the tasks needing heads refuse."""
    _, export = tiny_trained_model
    bare = tmp_path / "bert_model"
    transformers.BertModel.from_pretrained(export).save_pretrained(bare)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copyfile(export / name, bare / name)
    for pooling in ("mean", "pooler"):  # BertModel keeps the pooler.
        np.testing.assert_allclose(SentenceEncoder.load(bare)(SENTENCES, pooling=pooling).sentence_vectors,
                                   SentenceEncoder.load(export)(SENTENCES, pooling=pooling).sentence_vectors,
                                   atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"has no masked_lm parameters .* fill-mask needs them"):
        FillMask.load(bare)
    with pytest.raises(ValueError, match=r"has no next_sentence parameters .* next-sentence prediction needs"):
        NextSentencePredictor.load(bare)
    assert main(["fill-mask", "--model", str(bare), "a [MASK]."]) == 2
    assert "fill-mask needs them" in capsys.readouterr().err
    assert main(["export-serving", "--model", str(bare), "--output", str(tmp_path / "serving")]) == 0
    metadata = json.loads((tmp_path / "serving" / "serving.json").read_text())
    assert sorted(o["name"] for o in metadata["outputs"]) == ["pooled_output", "sequence_output"]


def _varied_texts(count: int, seed: int = 0) -> list[str]:
    """Real lines joined in runs of 1 to 12, so lengths span several buckets (about 5 to 400 tokens)."""
    lines = stdlib_docstring_lines(2000)
    rng = np.random.default_rng(seed)
    return [" ".join(lines[j] for j in rng.integers(0, len(lines), rng.integers(1, 13)))
            for _ in range(count)]


def test_many_texts_compile_once_per_bucket(tiny_trained_model):
    fill_mask = FillMask.load(tiny_trained_model[0], max_batch_size=4)
    words = "the file name of a new object is returned by this function".split()
    rng = np.random.default_rng(0)
    texts = []
    for _ in range(60):  # 3 to 40 words, 1 to 3 masks.
        text = list(rng.choice(words, int(rng.integers(3, 41))))
        for position in rng.choice(len(text), int(rng.integers(1, 4)), replace=False):
            text[position] = "[MASK]"
        texts.append(" ".join(text))
    for start in range(0, len(texts), 7):
        fill_mask(texts[start:start + 7], top_k=2)
    compiled = fill_mask.trace_count
    # Lengths 16, 32, 64; batches 1, 2, 4; masks per text 1, 2, 4: at most 27 programs.
    assert compiled <= 27 and compiled == fill_mask._top_k._cache_size()
    for start in range(0, len(texts), 7):
        fill_mask(texts[start:start + 7], top_k=2)
    assert fill_mask.trace_count == compiled
    print(f"fill-mask: {len(texts)} texts, {compiled} traces")


@pytest.mark.parametrize("task", ["encode", "nsp"])
def test_a_stream_of_requests_compiles_once_per_bucket(tiny_trained_model, task):
    cls = SentenceEncoder if task == "encode" else NextSentencePredictor
    model = cls.load(tiny_trained_model[0], max_batch_size=8)
    buckets = model.buckets
    assert buckets == ShapeBuckets((16, 32, 64, 128, 256, 512), (1, 2, 4, 8))
    texts = _varied_texts(400)
    rng = np.random.default_rng(1)
    requests, start = [], 0
    while start < len(texts):  # Requests of 1 to 20 texts.
        size = int(rng.integers(1, 21))
        requests.append(texts[start:start + size])
        start += size

    def run(request):
        if task == "encode":
            model(request, truncate=True)
        else:
            model(list(zip(request, reversed(request))), truncate=True)

    def tokens(request):
        if task == "encode":
            return [single_sequence(model.tokenizer, t, 512, truncate=True) for t in request]
        return [sequence_pair(model.tokenizer, a, b, 512, truncate=True)
                for a, b in zip(request, reversed(request))]

    shapes = {b.input_ids.shape for r in requests for b in padded_batches(tokens(r), buckets)}
    lengths = {len(s.ids) for r in requests for s in tokens(r)}
    for request in requests:
        run(request)
    compiled = model.trace_count
    jitted = model._encode if task == "encode" else model._logits
    print(f"{task}: {len(texts)} texts of {len(lengths)} distinct token lengths "
          f"({min(lengths)}-{max(lengths)}) in {len(requests)} requests: {compiled} traces, "
          f"{len(shapes)} distinct bucket shapes, {buckets.num_shapes} possible; "
          f"jit cache size {jitted._cache_size()}")
    assert compiled == len(shapes) <= buckets.num_shapes
    assert jitted._cache_size() == compiled
    assert len(lengths) > 5 * compiled  # Far fewer programs than lengths.
    for request in requests:  # The same stream again: nothing new to compile.
        run(request)
    assert model.trace_count == compiled


@pytest.mark.parametrize("subcommand", ["nsp", "encode", "export-serving", "fill-mask"])
def test_new_subcommands_have_help(subcommand):
    result = subprocess.run([sys.executable, "-m", "bert_jax.cli", subcommand, "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"usage: bert-jax {subcommand}" in result.stdout and "--model" in result.stdout


def test_pooling_ignores_padding(tiny_trained_model):
    """A text alone and beside a much longer one (so padded far) gets the same vectors."""
    encoder = SentenceEncoder.load(tiny_trained_model[0])
    long_text = " ".join(SENTENCES * 6)
    for pooling in POOLINGS:
        alone = encoder([SENTENCES[0]], pooling=pooling).sentence_vectors[0]
        padded = encoder([SENTENCES[0], long_text], pooling=pooling).sentence_vectors[0]
        np.testing.assert_allclose(alone, padded, atol=1e-5, rtol=0, err_msg=pooling)


def test_batches_give_the_same_answers_as_single_texts(tiny_trained_model):
    workdir, _ = tiny_trained_model
    fill_mask = FillMask.from_workdir(workdir)
    batched = fill_mask(MASKED_TEXTS, top_k=3)
    for text, expected in zip(MASKED_TEXTS, batched):
        single = fill_mask(text, top_k=3)[0]
        assert [[p["token"] for p in m] for m in single] == [[p["token"] for p in m] for m in expected]
