"""Fine-tuning configs: the shipped ones hold BERT's recipe and validate; every broken rule is
named with its field and value in one error; the model's shape comes from the `init_from`
checkpoint's config file (a work directory's, a Hugging Face directory's, a Google checkpoint's,
none of their weights read) unless set; the loop's run config counts epochs, warm-up and
evaluations in steps; `bert-jax finetune`'s flags land in their fields."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from bert_jax.cli import build_parser
from bert_jax.cli.finetune import config_from_args
from bert_jax.config.files import config_names, load_config
from bert_jax.config.finetuning import finetuning_run, is_finetuning_config, resolve_model, validate_finetuning
from bert_jax.config.validation import validate
from bert_jax.convert.sources import source_model
from bert_jax.model import BertConfig

FINETUNING_CONFIGS = [n for n in config_names() if is_finetuning_config(load_config(n))]
TINY = BertConfig(vocab_size=30, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                  max_position_embeddings=64)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na\tx\n")
    (tmp_path / "model").mkdir()
    return tmp_path


def _config(name, files, *overrides):
    return load_config(name, [f"data.train_file={files / 'train.tsv'}", f"train.init_from={files / 'model'}",
                              *overrides])


def test_the_glue_config_is_the_papers_recipe_and_every_config_validates(files):
    assert {"finetune_glue", "finetune_klue", "finetune_large"} <= set(FINETUNING_CONFIGS)
    glue = load_config("finetune_glue")
    assert (glue.optimizer.name, glue.optimizer.learning_rate, glue.optimizer.weight_decay,
            glue.optimizer.warmup_fraction) == ("adamw", 2e-5, 0.01, 0.1)
    assert (glue.train.global_batch_size, glue.train.num_epochs, glue.task.max_seq_length,
            glue.train.eval_every) == (32, 3, 128, 0)
    assert all(value is None for value in glue.model.values())  # all from the checkpoint
    for name in FINETUNING_CONFIGS:
        validate_finetuning(_config(name, files), num_devices=1)
        with pytest.raises(ValueError, match="fine-tuning config .* `bert-jax finetune"):
            validate(load_config(name), num_devices=1)


def test_every_broken_rule_is_named_with_its_field(files):
    config = _config("finetune_glue", files, "task.type=sentiment", "task.max_seq_length=2",
                     "optimizer.warmup_fraction=1.5", "optimizer.learning_rate=0.0",
                     "train.global_batch_size=30", "mesh.shape.data=4", "task.text_fields=a,b,c",
                     "task.pair_truncation=middle", "task.metric=f1", "model.max_position_embeddings=1")
    config.data.train_file = str(files / "missing.tsv")
    config.train.init_from = str(files / "nowhere")
    with pytest.raises(ValueError) as error:
        validate_finetuning(config, num_devices=8)
    message = str(error.value)
    for expected in ("task.type='sentiment' must be one of", "task.max_seq_length=2 must be at least 4",
                     "optimizer.warmup_fraction=1.5 must be in [0, 1]",
                     "optimizer.learning_rate=0.0 must be positive", "data.train_file=",
                     "missing.tsv' does not exist", "train.init_from=", "nowhere' does not exist",
                     "mesh.shape", "task.text_fields='a,b,c' names one text field or two",
                     "task.pair_truncation='middle'",
                     "task.metric='f1' picks the best evaluation, but data.eval_file is empty",
                     "task.max_seq_length=2 exceeds model.max_position_embeddings=1"):
        assert expected in message, expected
    qa = _config("finetune_glue", files, "task.type=qa", "task.max_seq_length=64")
    with pytest.raises(ValueError, match=r"task.max_seq_length=64 must be at least 68 \(task.max_query_length"):
        validate_finetuning(qa, num_devices=1)


def _write_sources(root):
    """A Hugging Face directory, a Google checkpoint and a work directory of `TINY`, each with
    empty weight files: reading a source's shape must not read its weights."""
    hf, google, workdir = root / "hf", root / "google", root / "workdir"
    for directory in (hf, google, workdir / "checkpoints"):
        directory.mkdir(parents=True)
    (hf / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": 30, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}))
    (hf / "model.safetensors").write_bytes(b"")
    (hf / "vocab.txt").write_text("[PAD]\n")
    (hf / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    (google / "bert_config.json").write_text(json.dumps({
        "vocab_size": 30, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 64, "hidden_act": "gelu",
        "type_vocab_size": 2}))
    (google / "bert_model.ckpt.index").write_bytes(b"")
    (google / "vocab.txt").write_text("[PAD]\nThe\n")  # cased: "The" lower-cases to another token
    (workdir / "config.json").write_text(json.dumps({
        "model": dataclasses.asdict(dataclasses.replace(TINY, scan_layers=True)),
        "data": {"vocab_file": "/somewhere/vocab.txt", "do_lower_case": True}}))
    return hf, google, workdir


def test_the_model_comes_from_the_init_from_checkpoints_config_unless_set(tmp_path):
    hf, google, workdir = _write_sources(tmp_path)
    expected = {"hf": (str(hf / "vocab.txt"), False), "google": (str(google / "vocab.txt"), False),
                "workdir": ("/somewhere/vocab.txt", True)}
    for source in (hf, google, workdir):
        model = source_model(source)
        # bert_config.json's "gelu" is Google's tanh approximation (convert.google_checkpoint).
        gelu = "gelu_tanh" if source is google else "gelu"
        assert model.config == dataclasses.replace(TINY, hidden_act=gelu), source.name
        assert (model.vocab_file, model.do_lower_case) == expected[source.name]

    config = load_config("finetune_glue", ["model.hidden_dropout_rate=0.0", "model.dtype=bfloat16"])
    resolved = resolve_model(config, source_model(hf).config)
    assert resolved.model.to_dict() == dataclasses.asdict(dataclasses.replace(
        TINY, hidden_dropout_rate=0.0, dtype="bfloat16"))
    assert config.model.num_layers is None  # the config given is not changed


def test_the_run_config_counts_epochs_warmup_and_evaluations_in_steps():
    config = resolve_model(load_config("finetune_glue", ["train.num_epochs=2.5", "train.seed=7"]), TINY)
    run = finetuning_run(config, steps_per_epoch=11, best_metric="matthews_correlation")
    assert run.loop.num_steps == 28  # ceil(2.5 x 11)
    assert run.optimizer.warmup_steps == 3 and run.optimizer.learning_rate == 2e-5  # round(0.1 x 28)
    assert run.loop.eval_every == 11 and run.loop.seed == 7 and run.loop.eval_steps == 0
    assert run.checkpoints.best_metric == "matthews_correlation" and run.model == TINY
    assert run.user_config == config.to_dict() and "task.max_seq_length" in run.resume_invariants
    every_50 = finetuning_run(resolve_model(load_config("finetune_glue", ["train.eval_every=50"]), TINY), 11)
    assert every_50.loop.eval_every == 50


def test_the_commands_flags_land_in_their_fields():
    args = build_parser().parse_args([
        "finetune", "--task", "tagging", "--init-from", "hf", "--train", "1.conll", "--eval", "2.conll",
        "--format", "conll2003", "--text-fields", "tokens", "--label-field", "0", "--labels", "l.txt",
        "--workdir", "w", "--config", "finetune_klue", "--set", "optimizer.learning_rate=3e-5",
        "--set", "task.format=klue/ner"])
    assert isinstance(args, argparse.Namespace)
    config = config_from_args(args)
    assert (config.task.type, config.train.init_from, config.data.train_file, config.data.eval_file) == (
        "tagging", "hf", "1.conll", "2.conll")
    assert (config.task.text_fields, config.task.label_field, config.task.labels_file) == ("tokens", "0", "l.txt")
    assert config.task.format == "klue/ner" and config.optimizer.learning_rate == 3e-5  # --set comes last
    with pytest.raises(ValueError, match="not a fine-tuning config"):
        config_from_args(build_parser().parse_args(["finetune", "--task", "qa", "--init-from", "x", "--train",
                                                    "y", "--workdir", "w", "--config", "cpu_demo"]))
