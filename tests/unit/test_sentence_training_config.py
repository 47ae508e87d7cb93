"""The config of `bert-jax sbert-train` (`tasks/sentence_embeddings/training_config.py`): SBERT's
recipe as defaults, each objective's main evaluation metric, the length buckets, and every rule
checked at start-up with the field, its value and what to do."""

from __future__ import annotations

import pytest

from bert_jax.config.files import load_config
from bert_jax.tasks.sentence_embeddings.training_config import (
    bucket_lengths,
    sentence_training_config,
    validate,
)


def test_the_configs_hold_sbert_recipe():
    for objective, metric in (("nli", "accuracy"), ("sts", "spearman_cosine"), ("pairs", "mrr@10")):
        config = load_config(f"sbert_{objective}")
        assert config.sbert.objective == objective and config.sbert.best_metric == metric
        assert (config.train.global_batch_size, config.optimizer.learning_rate, config.sbert.warmup_fraction,
                config.sbert.epochs, config.data.max_seq_length, config.sentence.pooling) == (16, 2e-5, 0.1, 1, 128, "mean")
        assert bucket_lengths(config) == (32, 64, 128)
    config = sentence_training_config(None, ["data.max_seq_length=200"], objective="sts", train_file="a.tsv")
    assert config.sbert.train_file == "a.tsv" and bucket_lengths(config) == (32, 64, 128, 200)


def test_every_rule_is_checked_before_anything_runs(tmp_path):
    config = sentence_training_config(None, objective="pairs")
    config.sbert.update(objective="qa", eval_file=str(tmp_path / "missing.jsonl"), length_buckets=(64, 32),
                        warmup_fraction=1.5, mini_batch_size=3, eval_batch_size=5)
    config.data.max_seq_length = 1000
    config.train.global_batch_size = 16
    with pytest.raises(ValueError) as error:
        validate(config, num_devices=1)
    message = str(error.value)
    for expected in ("sbert.objective='qa' must be one of ('nli', 'sts', 'pairs')",
                     "sbert.train_file is empty: give the training data (--train)",
                     f"sbert.eval_file='{tmp_path / 'missing.jsonl'}' does not exist",
                     "data.vocab_file='' does not exist: set train.init_from (--init-from)",
                     "data.max_seq_length=1000 must be in [3, model.max_position_embeddings=512]",
                     "sbert.length_buckets=(64, 32) must be distinct lengths of at least 3, ascending",
                     "sbert.warmup_fraction=1.5 must be in [0, 1]",
                     "sbert.mini_batch_size=3 is for the pairs objective and must divide train.global_batch_size=16"):
        assert expected in message, expected
    with pytest.raises(ValueError, match=r"--objective must be one of"):
        sentence_training_config(None)
    with pytest.raises(ValueError, match=r"config 'cpu_demo' has no sbert section"):
        sentence_training_config("cpu_demo")
    with pytest.raises(FileNotFoundError, match=r"train.init_from='nowhere/' does not exist"):
        sentence_training_config(None, objective="nli", init_from="nowhere/")
