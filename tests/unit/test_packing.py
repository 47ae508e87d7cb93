"""Sequence packing (`input_pipeline.reading.packing`): every example goes whole into one row, and the
model computes for a packed example exactly what it computes for it alone in a row."""

from __future__ import annotations

import numpy as np
import pytest

from input_pipeline.reading.packing import PackedBatches, PackingConfig, pack_examples
from input_pipeline.reading.reader import ReaderConfig, numpy_batches
from tests.support.packing_examples import PREDS, SEQ, as_originals, bert_like_examples, key, unpack


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
