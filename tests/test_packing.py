"""Sequence packing (`input_pipeline.reading.packing`): every example goes whole into one row, and the
model computes for a packed example exactly what it computes for it alone in a row."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.model import BertConfig, BertForPreTraining
from bert_jax.training.step import pretraining_sums
from input_pipeline.reading.packing import PackedBatches, PackingConfig, pack_examples
from input_pipeline.reading.reader import ReaderConfig, numpy_batches

SEQ, PREDS = 64, 10


def bert_like_examples(n: int, seed: int = 0, seq: int = SEQ, preds: int = PREDS) -> dict[str, np.ndarray]:
    """Examples in the original layout ([CLS] A [SEP] B [SEP], then padding; predictions first,
    then zero padding) with lengths from 5 to `seq`, most of them short."""
    rng = np.random.default_rng(seed)
    out = {name: np.zeros((n, seq), np.int32) for name in ("input_ids", "input_mask", "segment_ids")}
    out |= {"masked_lm_positions": np.zeros((n, preds), np.int32),
            "masked_lm_ids": np.zeros((n, preds), np.int32),
            "masked_lm_weights": np.zeros((n, preds), np.float32),
            "next_sentence_labels": rng.integers(0, 2, n).astype(np.int32)}
    for i in range(n):
        length = int(min(seq, 5 + rng.geometric(1 / 20)))
        a = int(rng.integers(1, length - 3)) if length > 4 else 1
        out["input_ids"][i, :length] = rng.integers(5, 100, length)
        out["input_ids"][i, [0, a + 1, length - 1]] = [2, 3, 3]
        out["input_mask"][i, :length] = 1
        out["segment_ids"][i, a + 2:length] = 1
        count = min(preds, max(1, round(0.15 * length)))
        out["masked_lm_positions"][i, :count] = np.sort(rng.choice(np.arange(1, length), count, replace=False))
        out["masked_lm_ids"][i, :count] = rng.integers(5, 100, count)
        out["masked_lm_weights"][i, :count] = 1.0
    return out


def unpack(packed: dict[str, np.ndarray]) -> list[dict]:
    """Each packed sequence as (row, slot, its tokens, segments, predictions, label)."""
    found = []
    for r in range(len(packed["input_ids"])):
        for slot in np.flatnonzero(packed["next_sentence_weights"][r]):
            tokens = packed["input_mask"][r] == slot + 1
            start = packed["cls_positions"][r, slot]
            span = np.flatnonzero(tokens)
            assert span[0] == start and np.all(np.diff(span) == 1), "a sequence is one contiguous span"
            np.testing.assert_array_equal(packed["position_ids"][r, span], np.arange(len(span)))
            predicted = (packed["masked_lm_weights"][r] > 0) & tokens[packed["masked_lm_positions"][r]]
            found.append({"row": r, "input_ids": packed["input_ids"][r, span].tolist(),
                          "segment_ids": packed["segment_ids"][r, span].tolist(),
                          "positions": (packed["masked_lm_positions"][r, predicted] - start).tolist(),
                          "ids": packed["masked_lm_ids"][r, predicted].tolist(),
                          "label": int(packed["next_sentence_labels"][r, slot])})
    return found


def as_originals(examples: dict[str, np.ndarray]) -> list[dict]:
    out = []
    for i in range(len(examples["input_ids"])):
        n = int(examples["input_mask"][i].sum())
        k = int((examples["masked_lm_weights"][i] > 0).sum())
        out.append({"input_ids": examples["input_ids"][i, :n].tolist(),
                    "segment_ids": examples["segment_ids"][i, :n].tolist(),
                    "positions": examples["masked_lm_positions"][i, :k].tolist(),
                    "ids": examples["masked_lm_ids"][i, :k].tolist(),
                    "label": int(examples["next_sentence_labels"][i])})
    return out


def key(example: dict) -> str:
    return repr({k: v for k, v in example.items() if k != "row"})


def test_every_example_goes_whole_into_one_row_within_the_capacities():
    examples = bert_like_examples(500)
    config = PackingConfig(max_sequences_per_pack=3, max_predictions_per_pack=PREDS + 3)
    packed = pack_examples(examples, SEQ, config)
    found = unpack(packed)
    assert sorted(map(key, found)) == sorted(map(key, as_originals(examples)))
    assert packed["input_mask"].max() <= 3
    assert np.count_nonzero(packed["masked_lm_weights"], axis=1).max() <= PREDS + 3
    assert np.all((packed["input_mask"] > 0).sum(1) <= SEQ)
    # Padding is zero everywhere, as in an unpacked row.
    padding = packed["input_mask"] == 0
    for name in ("input_ids", "segment_ids", "position_ids"):
        assert not packed[name][padding].any()
    assert len(packed["input_ids"]) < 0.5 * len(examples["input_ids"])


def test_first_fit_decreasing_comes_close_to_the_fewest_rows():
    examples = bert_like_examples(500)
    lengths = examples["input_mask"].sum(1)
    predictions = (examples["masked_lm_weights"] > 0).sum(1)
    # With room for 8 sequences the tokens bind: no row can hold more than SEQ of them.
    rows = len(pack_examples(examples, SEQ, PackingConfig(8, PREDS + 8))["input_ids"])
    assert rows <= 1.02 * np.ceil(lengths.sum() / SEQ)

    def next_fit(k: int) -> int:  # the examples in their order, a new row when one is full
        rows, tokens, preds, slots = 0, SEQ + 1, 0, k
        for length, count in zip(lengths, predictions):
            if tokens + length > SEQ or preds + count > PREDS + k or slots >= k:
                rows, tokens, preds, slots = rows + 1, 0, 0, 0
            tokens, preds, slots = tokens + length, preds + count, slots + 1
        return rows

    for k in (3, 8):
        assert len(pack_examples(examples, SEQ, PackingConfig(k, PREDS + k))["input_ids"]) < 0.9 * next_fit(k)


def test_packing_is_deterministic_and_full_rows_stay_alone():
    examples = bert_like_examples(200, seed=1)
    examples["input_mask"][:5] = 1  # five full-length examples
    config = PackingConfig(max_sequences_per_pack=4, max_predictions_per_pack=PREDS + 4)
    a, b = pack_examples(examples, SEQ, config), pack_examples(examples, SEQ, config)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(1 for r in range(len(a["input_ids"])) if a["next_sentence_weights"][r].sum() == 1
               and (a["input_mask"][r] > 0).all()) >= 5


def test_an_example_too_long_for_a_row_is_an_error():
    examples = bert_like_examples(4)
    examples["input_mask"][:, 20:] = 0
    examples["input_mask"][2] = 1
    with pytest.raises(ValueError, match="example 2 of the window has 64 tokens and .* predictions, "
                                         "but a packed row holds 32 tokens and 12 predictions"):
        pack_examples(examples, 32, PackingConfig(max_predictions_per_pack=12))


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


def test_packed_batches_resume_to_the_same_rows(tiny_corpus, tmp_path):
    reader = ReaderConfig(file_patterns=(str(tiny_corpus["train"]),), batch_size=64, max_seq_length=64,
                          max_predictions_per_seq=10, seed=3, shuffle_buffer=200)
    packing = PackingConfig(max_sequences_per_pack=4, max_predictions_per_pack=14)

    def batches():
        return PackedBatches(numpy_batches(reader), batch_size=16, max_seq_length=64, config=packing, seed=3)

    straight = batches()
    expected = [next(straight) for _ in range(12)]
    for stop in (1, 5):
        first = batches()
        for _ in range(stop):
            next(first)
        first.save(str(tmp_path / f"at{stop}"))
        resumed = batches()
        resumed.restore(str(tmp_path / f"at{stop}"))
        for want in expected[stop:]:
            got = next(resumed)
            assert all(np.array_equal(got[k], want[k]) for k in want)
    # The shards of real text pack: fewer rows than examples (at length 64 most are full).
    rows = sum(len(b["input_ids"]) for b in expected)
    sequences = sum(b["next_sentence_weights"].sum() for b in expected)
    assert sequences > 1.05 * rows


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
