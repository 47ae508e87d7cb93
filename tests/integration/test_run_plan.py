"""`bert-jax pretrain --dry-run`'s plan (`training.plan`): its numbers against references nobody
here wrote, and the work directory left untouched."""

from __future__ import annotations

import json
import re

import pytest

from bert_jax.cli import main


def test_the_dry_run_counts_what_transformers_counts_and_writes_nothing(tiny_run_config, tiny_run_overrides,
                                                                         tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForPreTraining as HFBertForPreTraining

    from bert_jax.config.validation import bert_config

    workdir = tmp_path / "run"
    overrides = [arg for item in tiny_run_overrides + ("train.global_batch_size=8", "train.num_steps=40",
                                                       "optimizer.warmup_steps=4")
                 for arg in ("--set", item)]
    assert main(["pretrain", "--config", "cpu_demo", "--workdir", str(workdir), "--dry-run", *overrides]) == 0
    printed = capsys.readouterr().out
    assert not workdir.exists()

    ours = bert_config(tiny_run_config())
    reference = HFBertForPreTraining(HFBertConfig(
        vocab_size=ours.vocab_size, hidden_size=ours.hidden_size, num_hidden_layers=ours.num_layers,
        num_attention_heads=ours.num_heads, intermediate_size=ours.intermediate_size,
        max_position_embeddings=ours.max_position_embeddings, type_vocab_size=ours.type_vocab_size))
    with torch.no_grad():  # The decoder's weight is the tied word embedding: counted once by both.
        parameters = reference.num_parameters()
    assert f"parameters: {parameters:,}\n" in printed
    manifest = json.loads(open(f"{tiny_run_config().data.train_files}/manifest.json").read())
    sequences = manifest["num_instances"]
    assert f"an epoch: {sequences / 8:,.1f} steps ({sequences:,} sequences)" in printed
    assert "phase 1 (sequence length 64): 40 steps;" in printed
    # XLA's plan holds at least the float32 parameters, both Adam moments and the gradients.
    planned_mib = float(re.search(r"device memory planned per device: ([0-9.,]+) MiB", printed)
                        .group(1).replace(",", ""))
    assert planned_mib * 2**20 >= 4 * 4 * parameters * 0.99


def test_print_config_prints_the_effective_config_and_writes_nothing(tiny_run_overrides, tmp_path, capsys):
    workdir = tmp_path / "run"
    overrides = [arg for item in tiny_run_overrides + ("train.global_batch_size=8",) for arg in ("--set", item)]
    assert main(["pretrain", "--config", "cpu_demo", "--workdir", str(workdir), "--print-config", *overrides]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert effective["train"]["global_batch_size"] == 8
    assert effective["model"]["hidden_size"] != 0
    assert not workdir.exists()


def test_pretrain_without_a_work_directory_says_what_is_missing(capsys):
    assert main(["pretrain", "--config", "bert_tiny"]) == 2
    assert "--workdir is required" in capsys.readouterr().err
