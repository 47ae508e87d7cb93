"""In-memory training data (`training.array_batches`): every example once per epoch in an order
drawn from (seed, epoch), a partial last batch padded with weight-0 rows, each process its own
slice of every global batch, and a position that saves and restores exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bert_jax.training.array_batches import ArrayBatches, LengthBuckets, doubling_lengths, steps_per_epoch


def _arrays(n: int = 11) -> dict[str, np.ndarray]:
    return {"example_id": np.arange(n, dtype=np.int32), "tokens": np.arange(3 * n, dtype=np.int32).reshape(n, 3)}


def _epoch(batches: ArrayBatches) -> list[dict[str, np.ndarray]]:
    return [next(batches) for _ in range(batches.batches_per_epoch)]


def test_an_epoch_serves_every_example_once_then_pads_with_weight_zero():
    batches = ArrayBatches(_arrays(11), 4, seed=3)
    assert batches.batches_per_epoch == steps_per_epoch(11, 4) == 3
    epochs = [_epoch(batches) for _ in range(3)]
    for epoch, served in enumerate(epochs):
        ids = np.concatenate([b["example_id"] for b in served])
        weights = np.concatenate([b["example_weights"] for b in served])
        assert weights.tolist() == [1.0] * 11 + [0.0]
        assert sorted(ids[:11].tolist()) == list(range(11))
        np.testing.assert_array_equal(ids[:11], np.random.default_rng([3, epoch]).permutation(11))
        assert ids[11] == 0  # padding: a copy of the first example, with its features
        np.testing.assert_array_equal(served[-1]["tokens"][-1], _arrays()["tokens"][0])
    assert not np.array_equal(*(np.concatenate([b["example_id"] for b in e]) for e in epochs[:2]))


def test_processes_take_their_slices_of_the_same_global_batches():
    whole = ArrayBatches(_arrays(11), 4, seed=1)
    halves = [ArrayBatches(_arrays(11), 4, seed=1, process_index=i, process_count=2) for i in range(2)]
    for _ in range(7):
        batch = next(whole)
        parts = [next(h) for h in halves]
        for name in batch:
            np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), batch[name])
            assert all(len(p[name]) == 2 for p in parts)
    with pytest.raises(ValueError, match="does not divide among 3 processes"):
        ArrayBatches(_arrays(), 4, process_count=3)


def test_a_restored_position_continues_where_the_saved_one_was(tmp_path):
    batches = ArrayBatches(_arrays(11), 4, seed=5)
    for _ in range(4):  # into the second epoch
        next(batches)
    batches.save(str(tmp_path / "iterator"))
    expected = [next(batches) for _ in range(5)]
    resumed = ArrayBatches(_arrays(11), 4, seed=5)
    resumed.restore(str(tmp_path / "iterator"))
    for want in expected:
        got = next(resumed)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    with pytest.raises(ValueError, match="position in 11 examples, these are 12"):
        ArrayBatches(_arrays(12), 4).restore(str(tmp_path / "iterator"))


def test_one_pass_in_order_for_evaluation():
    batches = ArrayBatches(_arrays(5), 4, shuffle=False, repeat=False)
    served = list(batches)
    assert [b["example_id"].tolist() for b in served] == [[0, 1, 2, 3], [4, 0, 0, 0]]
    assert [b["example_weights"].tolist() for b in served] == [[1, 1, 1, 1], [1, 0, 0, 0]]


def test_length_buckets_cut_each_global_batch_to_the_smallest_length_that_holds_it():
    """Each batch's sequence features are cut to the smallest bucket holding its longest real
    example (padding rows do not count), the same on every process; at most len(lengths) shapes
    occur, and the cut drops only padding."""
    assert doubling_lengths(128) == (32, 64, 128) and doubling_lengths(100, 16) == (16, 32, 64, 100)
    rng = np.random.default_rng(0)
    n, max_length = 37, 20
    lengths = rng.integers(1, max_length + 1, n)
    lengths[0] = max_length  # the padding rows' copy of example 0 must not choose the bucket
    ids = np.where(np.arange(max_length) < lengths[:, None], rng.integers(1, 99, (n, max_length)), 0)
    arrays = {"ids": ids.astype(np.int32), "label": np.arange(n, dtype=np.int32)}
    buckets = LengthBuckets((4, 8, 16, max_length), lengths, ("ids",))
    whole = ArrayBatches(arrays, 6, seed=2, buckets=buckets)
    halves = [ArrayBatches(arrays, 6, seed=2, buckets=buckets, process_index=i, process_count=2) for i in range(2)]
    shapes = set()
    for _ in range(3 * whole.batches_per_epoch):
        batch = next(whole)
        real = batch["example_weights"] > 0
        longest = lengths[batch["label"][real]].max()
        length = batch["ids"].shape[1]
        assert length == min(b for b in buckets.lengths if b >= longest)
        np.testing.assert_array_equal(batch["ids"], ids[batch["label"]][:, :length])
        assert not ids[batch["label"][real]][:, length:].any()  # only padding was cut
        parts = [next(half) for half in halves]
        np.testing.assert_array_equal(np.concatenate([p["ids"] for p in parts]), batch["ids"])
        shapes.add(batch["ids"].shape)
    assert len(shapes) <= len(buckets.lengths) and len(shapes) > 1
    with pytest.raises(ValueError, match="longer than the longest bucket"):
        LengthBuckets((4, 8), lengths, ("ids",))
    with pytest.raises(ValueError, match="do not fit these features"):
        ArrayBatches(arrays, 6, buckets=LengthBuckets((4, 8, 16, 32), lengths, ("ids",)))
