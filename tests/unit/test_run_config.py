"""The typed run config (`config.run`, `config.pretraining`): every field of the user's config
reaches the dataclass that its component takes (none silently left at a default), and the phases
switch at the configured step."""

from __future__ import annotations

import dataclasses

from bert_jax.config.files import load_config
from bert_jax.config.pretraining import PretrainingData
from bert_jax.config.run import LoopConfig, OptimizerConfig, RunConfig
from bert_jax.config.validation import bert_config
from bert_jax.parallel.sharding import logical_rules

OVERRIDES = [
    "data.train_files=a,b", "data.eval_files=held_out", "data.vocab_file=vocab.txt", "data.do_lower_case=False",
    "data.max_seq_length=64", "data.max_predictions_per_seq=9", "data.shuffle_buffer=7",
    "data.dynamic_masking=True", "data.masked_lm_prob=0.2", "data.whole_word_masking=True",
    "data.phase2_train_files=long", "data.phase2_max_seq_length=256", "data.phase2_max_predictions_per_seq=30",
    "data.phase2_start_fraction=0.75", "data.packing=True", "data.max_sequences_per_pack=3",
    "data.packing_window=99", "optimizer.name=lamb", "optimizer.learning_rate=0.003",
    "optimizer.warmup_steps=17", "optimizer.b1=0.8", "optimizer.b2=0.97", "optimizer.eps=1e-7",
    "optimizer.weight_decay=0.02", "optimizer.clip_norm=2.0", "train.global_batch_size=48",
    "train.grad_accum_steps=3", "train.num_steps=1000", "train.seed=5", "train.init_from=somewhere",
    "train.rng_impl=rbg", "train.log_every=11", "train.checkpoint_every=13", "train.keep_checkpoints=4",
    "train.max_consecutive_nonfinite=6", "train.eval_every=19", "train.eval_steps=23",
    "train.peak_flops_per_device=1e15", "train.report_to=tensorboard, wandb", "mesh.shape.tensor=2",
    "mesh.rules.vocab=",
]


def test_every_field_reaches_the_typed_config():
    config = load_config("cpu_demo", OVERRIDES)
    run = RunConfig.from_config(config)
    assert run.model == bert_config(config)
    assert run.optimizer == OptimizerConfig(**config.optimizer.to_dict())
    assert dataclasses.asdict(run.loop) == {f.name: config.train[f.name] for f in dataclasses.fields(LoopConfig)
                                            } | {"report_to": ("tensorboard", "wandb")}
    assert (run.checkpoints.every, run.checkpoints.keep) == (13, 4) and run.init_from == "somewhere"
    assert dict(run.mesh.shape) == {"data": -1, "fsdp": 1, "tensor": 2}
    assert run.mesh.rules == logical_rules(dict(config.mesh.rules)) and ("vocab", None) in run.mesh.rules
    assert run.user_config == config.to_dict()
    # A field added to the config's `train` section must be read into one of them.
    read = {f.name for f in dataclasses.fields(LoopConfig)} | {"checkpoint_every", "keep_checkpoints", "init_from"}
    assert set(config.train) == read

    data = PretrainingData.from_config(config)
    phase1, phase2 = data.phases
    assert (phase1.files, phase1.max_seq_length, phase1.max_predictions_per_seq, phase1.start_step) == ("a,b", 64, 9, 0)
    assert phase1.file_patterns == ("a", "b")
    assert (phase2.files, phase2.max_seq_length, phase2.max_predictions_per_seq, phase2.start_step) == ("long", 256, 30, 750)
    assert (phase1.predictions_per_row, phase2.predictions_per_row) == (12, 33)  # one more per packed sequence
    assert (phase2.config_prefix, str(phase2)) == ("data.phase2_", "phase 2 (sequence length 256)")
    assert data.eval_phase == dataclasses.replace(phase1, files="held_out")
    values = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.name != "phases"}
    assert values == {"eval_files": "held_out", "vocab_file": "vocab.txt", "do_lower_case": False,
                      "vocab_size": config.model.vocab_size, "global_batch_size": 48, "seed": 5,
                      "shuffle_buffer": 7, "dynamic_masking": True, "masked_lm_prob": 0.2,
                      "whole_word_masking": True, "packing": True, "max_sequences_per_pack": 3,
                      "packing_window": 99}
    # Every field of the `data` section is read into PretrainingData or its phases.
    phase_fields = {"train_files", "max_seq_length", "max_predictions_per_seq", "phase2_train_files",
                    "phase2_max_seq_length", "phase2_max_predictions_per_seq", "phase2_start_fraction"}
    assert set(config.data) == (set(values) - {"vocab_size", "global_batch_size", "seed"}) | phase_fields


def test_the_phase_switches_at_its_start_step():
    config = load_config("cpu_demo", ["data.train_files=a", "data.phase2_train_files=b", "train.num_steps=10",
                                      "data.phase2_start_fraction=0.3"])
    data = PretrainingData.from_config(config)
    assert [data.phase_at(step).number for step in range(10)] == [1, 1, 1] + [2] * 7
    one_phase = PretrainingData.from_config(load_config("cpu_demo", ["data.train_files=a"]))
    assert len(one_phase.phases) == 1 and one_phase.phase_at(10**6).number == 1
    assert one_phase.position(one_phase.phases[0]) == {
        "phase": 1, "files": "a", "max_seq_length": 64, "max_predictions_per_seq": 10,
        "global_batch_size": 16, "seed": 0, "shuffle_buffer": 5000, "dynamic_masking": False}
