"""Packed rows through the model and the training loop: each sequence gets its unpacked outputs,
losses and gradients, and a packed run resumes to the same metrics."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.model import BertConfig, BertForPreTraining
from bert_jax.training.pretraining import pretraining_sums
from input_pipeline.reading.packing import PackingConfig, pack_examples
from tests.support.packing_examples import PREDS, SEQ, as_originals, bert_like_examples, key, unpack

TINY = BertConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                  max_position_embeddings=SEQ, hidden_dropout_rate=0.0, attention_dropout_rate=0.0)


@pytest.mark.parametrize("attention,scan_layers", [("plain", False), ("auto", True)])
def test_packed_rows_give_each_sequence_its_unpacked_outputs_losses_and_gradients(attention, scan_layers):
    config = dataclasses.replace(TINY, attention=attention, scan_layers=scan_layers)
    model = BertForPreTraining(config)
    examples = bert_like_examples(24, seed=2)
    packing = PackingConfig(max_sequences_per_pack=4, max_predictions_per_pack=PREDS + 4)
    packed = pack_examples(examples, SEQ, packing)
    assert len(packed["input_ids"]) < 12
    params = model.init(jax.random.key(0), examples["input_ids"], examples["input_mask"],
                        examples["segment_ids"], examples["masked_lm_positions"])["params"]

    alone = model.apply({"params": params}, examples["input_ids"], examples["input_mask"],
                        examples["segment_ids"], examples["masked_lm_positions"])
    together = model.apply({"params": params}, packed["input_ids"], packed["input_mask"],
                           packed["segment_ids"], packed["masked_lm_positions"],
                           position_ids=packed["position_ids"], cls_positions=packed["cls_positions"])
    # Match every packed sequence to its original by content, then compare their outputs.
    originals = {key(e): i for i, e in enumerate(as_originals(examples))}
    slots_seen = 0
    for r in range(len(packed["input_ids"])):
        for slot in np.flatnonzero(packed["next_sentence_weights"][r]):
            mine = [e for e in unpack({k: v[r:r + 1] for k, v in packed.items()})
                    if e["label"] == packed["next_sentence_labels"][r, slot]]
            start = packed["cls_positions"][r, slot]
            mine = [e for e in mine if packed["input_ids"][r, start:start + len(e["input_ids"])].tolist()
                    == e["input_ids"]]
            i = originals[key(mine[0])]
            np.testing.assert_allclose(together["nsp_logits"][r, slot], alone["nsp_logits"][i],
                                       rtol=1e-5, atol=1e-5)
            count = len(mine[0]["positions"])
            columns = np.flatnonzero((packed["masked_lm_positions"][r] >= start)
                                     & (packed["masked_lm_positions"][r] < start + len(mine[0]["input_ids"]))
                                     & (packed["masked_lm_weights"][r] > 0))
            np.testing.assert_allclose(together["mlm_logits"][r, columns], alone["mlm_logits"][i, :count],
                                       rtol=1e-5, atol=1e-5)
            slots_seen += 1
    assert slots_seen == 24

    def loss(params, batch):
        sums = pretraining_sums(model, params, batch, dropout_key=None)
        return sums["mlm_nll_sum"] + sums["nsp_nll_sum"], sums

    (loss_alone, sums_alone), grads_alone = jax.value_and_grad(loss, has_aux=True)(params, examples)
    (loss_packed, sums_packed), grads_packed = jax.value_and_grad(loss, has_aux=True)(params, packed)
    for name in sums_alone:
        np.testing.assert_allclose(sums_packed[name], sums_alone[name], rtol=1e-5, err_msg=name)
    for a, b in zip(jax.tree.leaves(grads_alone), jax.tree.leaves(grads_packed)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    flat = jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads_alone)])
    diff = jnp.concatenate([(a - b).ravel() for a, b in zip(jax.tree.leaves(grads_alone),
                                                            jax.tree.leaves(grads_packed))])
    assert float(jnp.linalg.norm(diff) / jnp.linalg.norm(flat)) < 1e-5


def test_packed_pretraining_resumes_to_the_same_metrics(tiny_run_config, tmp_path):
    """Packed rows end to end through `train_and_evaluate`: the data position saved in a
    checkpoint (the reader's and the rows not yet served) lets a resumed run log what an
    uninterrupted one logs, bitwise; throughput counts the sequences, not the rows."""
    import shutil

    from bert_jax.state.checkpointer import checkpoint_directory
    from bert_jax.training.loop import train_and_evaluate

    def config():
        c = tiny_run_config(num_steps=12, log_every=2, checkpoint_every=6)
        c.data.eval_files = ""
        c.optimizer.warmup_steps = 3
        c.data.packing = True
        c.data.packing_window = 40  # not a multiple of the batch of 16: rows carry over
        return c

    straight = []
    train_and_evaluate(config(), tmp_path / "straight", on_report=straight.append)
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(f"{checkpoint_directory(tmp_path / 'resumed')}/12")
    resumed = []
    train_and_evaluate(config(), tmp_path / "resumed", on_report=resumed.append)

    timing = ("steps_per_second", "step_seconds", "sequences_per_second", "tokens_per_second",
              "tflops_per_second", "mfu")
    drop = lambda r: {k: v for k, v in r.items() if k not in timing}  # noqa: E731
    assert [r["step"] for r in resumed] == [8, 10, 12]
    assert [drop(r) for r in resumed] == [drop(r) for r in straight[3:]]
    assert all(r["sequences_per_second"] > 16 * r["steps_per_second"] for r in straight)
    assert all(np.isfinite(r["loss"]) for r in straight)
