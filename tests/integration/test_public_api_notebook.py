"""The calls of the README's notebook example (section "Python API") work through `bert_jax` on
the tiny corpus and model the other tests share. The names themselves: tests/unit/test_public_api.py."""

from __future__ import annotations

from pathlib import Path

import bert_jax


def test_the_readme_notebook_calls_work_on_the_tiny_fixtures(tiny_corpus, tiny_trained_model, tmp_path):
    """The example's calls, with its arguments, through `bert_jax`. The example trains for a minute;
    here the model is `tiny_trained_model`, trained by the same `train_and_evaluate`."""
    corpus, vocab = str(tiny_corpus["train_text"]), str(tmp_path / "vocab.txt")
    bert_jax.train_vocab_from_files([corpus], vocab, vocab_size=2000)
    assert Path(vocab).read_bytes() == tiny_corpus["vocab"].read_bytes()  # The fixture's, made alike.
    manifest = bert_jax.create_pretraining_data(
        [corpus], vocab, tmp_path / "shards",
        bert_jax.CreationConfig(max_seq_length=64, max_predictions_per_seq=10))
    assert manifest["num_instances"] > 0 and manifest["max_seq_length"] == 64
    config = bert_jax.load_config("cpu_demo", ["data.train_files=shards", "data.vocab_file=vocab.txt",
                                               "model.vocab_size=2000", "train.num_steps=200"])
    assert (config.data.train_files, config.model.vocab_size, config.train.num_steps) == ("shards", 2000, 200)

    workdir, export = tiny_trained_model
    predictions = bert_jax.FillMask.load(workdir)(["Return the [MASK] of the list."], top_k=3)
    assert [len(per_mask) for per_text in predictions for per_mask in per_text] == [3]
    encoder = bert_jax.SentenceEncoder.load(workdir)
    vectors = encoder(["Return a new list.", "Open the file."]).sentence_vectors
    assert vectors.shape == (2, encoder.config.hidden_size)
    params, model_config, _ = bert_jax.load_model(workdir)
    vocab = tiny_corpus["vocab"]  # The example's vocab.txt, which trained this model.
    out = bert_jax.export_to_huggingface(params, model_config, vocab, True, tmp_path / "hf")
    assert (out / "model.safetensors").read_bytes() == (export / "model.safetensors").read_bytes()
