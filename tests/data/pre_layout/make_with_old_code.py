"""Writes a tiny work directory and its shards with the code before the package layout, and what
that code computes from them, for tests/integration/test_layout_compatibility.py. Kept as a record
of how tests/data/pre_layout was made; it runs only with commit c59e4df's modules importable:

    git worktree add /tmp/old c59e4df && PYTHONPATH=/tmp/old python make_with_old_code.py OUT_DIR
"""
import json
import shutil
import sys
from pathlib import Path

out = Path(sys.argv[1]).resolve()
out.mkdir(parents=True)  # a new directory: nothing of anyone else is overwritten
from bert_jax import experiment_config
from bert_jax.fill_mask import FillMask
from bert_jax.train import train_and_evaluate
from input_pipeline.create_pretraining_data import CreationConfig, create_pretraining_data
from input_pipeline.stdlib_corpus import write_stdlib_corpus
from input_pipeline.vocabulary import train_vocab_from_files

write_stdlib_corpus(out / "train.txt", out / "held_out.txt", max_bytes=12_000)
(out / "held_out.txt").unlink()
train_vocab_from_files([str(out / "train.txt")], str(out / "vocab.txt"), 200)
create_pretraining_data([out / "train.txt"], out / "vocab.txt", out / "shards",
                        CreationConfig(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=2))
vocab_size = sum(1 for _ in open(out / "vocab.txt"))
OVERRIDES = ["model.hidden_size=16", "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=32",
             f"model.vocab_size={vocab_size}", "model.max_position_embeddings=32",
             "data.max_seq_length=32", "data.max_predictions_per_seq=5", "data.shuffle_buffer=100",
             "optimizer.learning_rate=0.002", "optimizer.warmup_steps=2",
             "train.global_batch_size=8", "train.log_every=1", "train.checkpoint_every=2",
             "train.eval_every=0", "train.eval_steps=0", "model.hidden_dropout_rate=0.1",
             "model.attention_dropout_rate=0.1",
             "data.train_files=shards", "data.vocab_file=vocab.txt"]
# Relative paths: the test runs in a copy of this directory.
import os

os.chdir(out)
train_and_evaluate(experiment_config.load_config("cpu_demo", OVERRIDES + ["train.num_steps=4"]), "workdir")
shutil.rmtree(out / "workdir" / "checkpoints" / "2")
# The same run continued to step 6 by the old code, in a copy: what the new code must reproduce.
shutil.copytree(out / "workdir", out / "continued")
reports = []
train_and_evaluate(experiment_config.load_config("cpu_demo", OVERRIDES + ["train.num_steps=6"]), "continued",
                   on_report=reports.append)
shutil.rmtree(out / "continued")
fill = FillMask.from_workdir(out / "workdir")
texts = ["Return the [MASK] of the list.", "The [MASK] is closed."]
predictions = [fill(t, top_k=3)[0] for t in texts]
(out / "expected.json").write_text(json.dumps({
    "overrides": OVERRIDES,
    "losses_of_steps_5_and_6_resumed": [r["loss"] for r in reports if r["step"] in (5, 6)],
    "fill_mask": {"texts": texts, "predictions": predictions}}, indent=1) + "\n")
