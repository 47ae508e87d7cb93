"""The trainer's data: dynamic masking (RoBERTa) and the two-phase schedule (seq 128, then 512),
end to end on the tiny corpus, plus the reader's dynamic masking on its own."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest

from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data


@pytest.fixture(scope="module")
def extra_shards(tiny_corpus, tmp_path_factory):
    """Dynamic-masking shards (seq 64) and phase-2 shards (seq 128) of the tiny corpus."""
    root = tmp_path_factory.mktemp("extra_shards")
    creation = CreationConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1, num_shards=4)
    create_pretraining_data([str(tiny_corpus["train_text"])], tiny_corpus["vocab"], root / "dynamic",
                            dataclasses.replace(creation, masking="dynamic"))
    create_pretraining_data([str(tiny_corpus["train_text"])], tiny_corpus["vocab"], root / "phase2",
                            dataclasses.replace(creation, max_seq_length=128, max_predictions_per_seq=20))
    return {"dynamic": root / "dynamic", "phase2": root / "phase2"}


def dynamic_reader(extra_shards, tiny_corpus, **kwargs):
    from input_pipeline.instances.masking import MaskingConfig
    from input_pipeline.reading.reader import ReaderConfig
    from input_pipeline.tokenizers.loading import load_tokenizer

    masking = MaskingConfig.from_tokenizer(load_tokenizer(tiny_corpus["vocab"]), max_predictions_per_seq=10)
    defaults = dict(file_patterns=(str(extra_shards["dynamic"]),), batch_size=32, max_seq_length=64,
                    max_predictions_per_seq=10, seed=3, shuffle_buffer=100, dynamic_masking=masking)
    return ReaderConfig(**{**defaults, **kwargs})


def masks_by_example(batches) -> dict[tuple, tuple]:
    """The masked input of every example, keyed by its unmasked tokens."""
    out = {}
    for b in batches:
        for i in range(len(b["input_ids"])):
            k = int(b["masked_lm_weights"][i].sum())
            original = b["input_ids"][i].copy()
            original[b["masked_lm_positions"][i, :k]] = b["masked_lm_ids"][i, :k]
            out[tuple(original)] = (tuple(b["input_ids"][i]), tuple(b["masked_lm_positions"][i, :k]))
    return out


def test_dynamic_masking_masks_each_example_the_same_whatever_the_batching(extra_shards, tiny_corpus):
    """An example's mask in an epoch depends on (seed, epoch, example) only: one pass read with
    another batch size and by two processes masks every example identically."""
    from input_pipeline.reading.reader import numpy_batches

    one = masks_by_example(numpy_batches(dynamic_reader(extra_shards, tiny_corpus, repeat=False)))
    split = {}
    for index in range(2):
        split |= masks_by_example(numpy_batches(
            dynamic_reader(extra_shards, tiny_corpus, repeat=False, batch_size=7), index, 2))
    split.pop(tuple([0] * 64), None)  # padding rows of the finite pass
    one.pop(tuple([0] * 64), None)
    assert len(one) > 500 and split == one
    # 15% of the tokens, [MASK] for most of them; [CLS] and [SEP] never.
    positions = [len(p) for _, p in one.values()]
    assert 0.12 < sum(positions) / sum(int(np.count_nonzero(k)) - 3 for k in one) < 0.16
    assert all(ids[0] == 2 for ids, _ in one.values())


def test_dynamic_masking_masks_afresh_every_epoch(extra_shards, tiny_corpus):
    from input_pipeline.reading.reader import count_examples, list_shards, numpy_batches

    reader = dynamic_reader(extra_shards, tiny_corpus, shuffle_buffer=1)
    per_epoch = count_examples(list_shards(reader.file_patterns))
    iterator = numpy_batches(reader)
    batches = [next(iterator) for _ in range(2 * per_epoch // 32)]
    first = masks_by_example(batches[:per_epoch // 32 - 1])
    second = masks_by_example(batches[per_epoch // 32 + 1:])
    common = set(first) & set(second)
    assert len(common) > 200
    # 6 of ~40 tokens: the same choice twice is rare.
    assert sum(first[k] == second[k] for k in common) < 0.05 * len(common)


def test_dynamic_shards_train_and_need_the_flag(tiny_run_config, extra_shards, tmp_path):
    from bert_jax.training.loop import train_and_evaluate

    config = tiny_run_config(num_steps=6, log_every=3)
    config.optimizer.warmup_steps = 2
    config.data.train_files = str(extra_shards["dynamic"])
    config.data.eval_files = ""
    with pytest.raises(ValueError, match="data.dynamic_masking=True"):
        train_and_evaluate(config, tmp_path / "refused")
    config.data.dynamic_masking = True
    results = train_and_evaluate(config, tmp_path / "dynamic")
    assert np.isfinite(results["train_loss"]) and results["train_mlm_loss"] > 0


def _assert_one_optimizer_state_across_phases(config, workdir, step: int) -> None:
    """Phase 2 continues phase 1's optimizer: in the checkpoint of a phase-2 step, AdamW has
    counted every step since the start (a state re-initialized at the switch would count
    `step - switch_step`), and the learning rate of every logged step is the one schedule's."""
    import jax
    import optax

    from bert_jax.config.pretraining import PretrainingData
    from bert_jax.state.checkpointer import Checkpointer
    from bert_jax.state.train_state import abstract_state
    from tests.support.pretraining_parts import pretraining_parts

    parts = pretraining_parts(config)
    schedule = parts.schedule
    switch_step = PretrainingData.from_config(config).phases[1].start_step
    assert 0 < switch_step < step
    checkpointer = Checkpointer(workdir, async_save=False)
    state = checkpointer.restore(step, abstract_state(parts.objective.init_params, parts.optimizer, parts.shardings))
    checkpointer.close()
    [adam] = [s for s in jax.tree.leaves(state.opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
              if isinstance(s, optax.ScaleByAdamState)]
    assert int(adam.count) == step > step - switch_step
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    rates = {r["step"]: r["learning_rate"] for r in records if r["prefix"] == "train"}
    assert max(rates) > switch_step
    previous = 0
    for logged_step, rate in sorted(rates.items()):
        # A logged value is the mean over the steps since the last log; the update that made
        # step s used the schedule at s - 1.
        expected = np.mean([float(schedule(s)) for s in range(previous, logged_step)])
        assert rate == pytest.approx(expected, rel=1e-6), logged_step
        previous = logged_step


def test_two_phases_switch_shards_and_resume_in_phase_two(tiny_run_config, extra_shards, tmp_path, caplog):
    from bert_jax.training.loop import train_and_evaluate

    config = tiny_run_config(num_steps=8, log_every=2, checkpoint_every=3)
    config.optimizer.warmup_steps = 2
    config.data.phase2_train_files = str(extra_shards["phase2"])
    config.data.phase2_max_seq_length = 128
    config.data.phase2_max_predictions_per_seq = 20
    config.data.phase2_start_fraction = 0.5
    config.data.eval_files = ""
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        full = train_and_evaluate(config, tmp_path / "full")
    log = caplog.text
    assert "switching to phase 2" in log and "sequence length 128" in log
    positions = {step: json.loads((tmp_path / "full" / "checkpoints" / str(step) / "data" /
                                   "process_0-of-1" / "position.json").read_text())
                 for step in (6, 8)}
    assert positions[6]["phase"] == 2 and positions[6]["max_seq_length"] == 128
    _assert_one_optimizer_state_across_phases(config, tmp_path / "full", step=6)

    # As if killed after the checkpoint of step 6 (in phase 2): resuming reads on from the saved
    # phase-2 position and ends with the very same losses.
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "8")
    resumed = train_and_evaluate(config, tmp_path / "resumed")
    assert resumed["train_loss"] == full["train_loss"]
    assert resumed["train_mlm_loss"] == full["train_mlm_loss"]
