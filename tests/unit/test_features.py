"""The record format (`input_pipeline.shards.features`): `serialize_examples` writes, byte for byte, what
protobuf's own deterministic serializer writes for the same `tf.train.Example`, for ids at every
varint boundary, both standard shapes, unmasked (dynamic-masking) instances and lengths whose
varints change size; and records parse back through `parse_examples`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from input_pipeline.shards import features  # noqa: E402
from input_pipeline.shards.features import parse_examples, serialize_example, serialize_examples  # noqa: E402

NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
         "masked_lm_weights", "next_sentence_labels")
# Every size of varint, on both sides of each boundary, and ids of large vocabularies.
VARINT_EDGES = np.array([0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28,
                         2**31 - 1, 2**35 - 1, 2**35, 2**42, 2**49, 2**56 - 1, 2**56, 2**63 - 1,
                         30521, 30522, 119546, 250001], dtype=np.int64)


def protobuf_bytes(arrays: dict[str, np.ndarray], i: int) -> bytes:
    """Row i as protobuf itself serializes it, map keys sorted (deterministic)."""
    feature = {}
    for name in NAMES:
        values = np.asarray(arrays[name][i]).reshape(-1).tolist()
        if name == "masked_lm_weights":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def assert_protobuf_bytes(arrays: dict[str, np.ndarray]) -> list[bytes]:
    ours = serialize_examples(*(arrays[name] for name in NAMES))
    assert len(ours) == len(arrays["input_ids"])
    for i, record in enumerate(ours):
        assert record == protobuf_bytes(arrays, i), f"row {i}"
    return ours


def realistic(n: int, length: int, predictions: int, rng: np.random.Generator,
              masked: bool = True) -> dict[str, np.ndarray]:
    """Rows shaped like pretraining instances: padded ids, a segment boundary, sorted positions
    with their labels, weights 1.0 then 0.0 (all zero when not `masked`)."""
    tokens = rng.integers(2, length + 1, n)
    real = np.arange(length) < tokens[:, None]
    input_ids = np.where(real, rng.integers(999, 30522, (n, length)), 0).astype(np.int32)
    segment_ids = (real & (np.arange(length) > tokens[:, None] // 2)).astype(np.int32)
    k = np.minimum(predictions, np.maximum(1, np.rint(0.15 * tokens).astype(int))) * masked
    slots = np.arange(predictions) < k[:, None]
    positions = np.sort(rng.integers(1, length, (n, predictions)), axis=1)
    return {
        "input_ids": input_ids, "input_mask": real.astype(np.int32), "segment_ids": segment_ids,
        "masked_lm_positions": np.where(slots, positions, 0).astype(np.int32),
        "masked_lm_ids": np.where(slots, rng.integers(999, 30522, (n, predictions)), 0),
        "masked_lm_weights": slots.astype(np.float32),
        "next_sentence_labels": rng.integers(0, 2, n).astype(np.int32),
    }


@pytest.mark.parametrize("length, predictions", [(128, 20), (512, 76)])
def test_realistic_rows_are_protobufs_bytes(length, predictions):
    rng = np.random.default_rng(length)
    assert_protobuf_bytes(realistic(300, length, predictions, rng))


@pytest.mark.parametrize("length, predictions", [(128, 20), (512, 76)])
def test_unmasked_rows_are_protobufs_bytes(length, predictions):
    """Dynamic-masking shards store no predictions: all-zero masked-LM features."""
    rng = np.random.default_rng(length + 1)
    arrays = realistic(200, length, predictions, rng, masked=False)
    assert not arrays["masked_lm_weights"].any() and not arrays["masked_lm_ids"].any()
    assert_protobuf_bytes(arrays)


@pytest.mark.parametrize("length, predictions", [(128, 20), (512, 76)])
def test_varint_edges_are_protobufs_bytes(length, predictions):
    rng = np.random.default_rng(length + 2)
    n = 100
    arrays = {
        "input_ids": rng.choice(VARINT_EDGES, (n, length)),
        "input_mask": rng.integers(0, 2, (n, length)),
        "segment_ids": rng.choice(VARINT_EDGES[:6], (n, length)),
        "masked_lm_positions": rng.integers(0, length, (n, predictions)),
        "masked_lm_ids": rng.choice(VARINT_EDGES, (n, predictions)),
        "masked_lm_weights": rng.choice(np.array([0.0, -0.0, 1.0, 0.5, 1e-40, 3.4e38, np.inf,
                                                  -2.5], dtype=np.float32), (n, predictions)),
        "next_sentence_labels": rng.choice(VARINT_EDGES, n),
    }
    # One row of each edge throughout, so every size occurs alone in a row too.
    for i, value in enumerate(VARINT_EDGES):
        arrays["input_ids"][i] = value
    assert_protobuf_bytes(arrays)


def test_negative_and_unsigned_values_are_protobufs_bytes():
    """Negative int64s are ten-byte varints (two's complement); uint64 above 2**63 is written as
    the int64 of the same bits, as protobuf does."""
    rng = np.random.default_rng(3)
    arrays = realistic(20, 16, 4, rng)
    arrays["input_ids"] = rng.choice(np.array([-1, -128, -2**63, 0, 5, 2**63 - 1]), (20, 16))
    assert_protobuf_bytes(arrays)
    big = rng.choice(np.array([0, 2**63, 2**64 - 1, 300], dtype=np.uint64), (20, 16))
    ours = serialize_examples(*(big if name == "input_ids" else arrays[name] for name in NAMES))
    as_int64 = dict(arrays, input_ids=big.view(np.int64))
    assert ours == [protobuf_bytes(as_int64, i) for i in range(20)]


def test_message_lengths_across_varint_sizes():
    """Rows of 1 to 60 tokens put the nested messages' lengths on both sides of 127/128 bytes,
    and a 6,000-token row of three-byte ids needs three-byte lengths (above 16,383 bytes)."""
    rng = np.random.default_rng(4)
    for length in range(1, 61):
        arrays = {name: rng.integers(0, 2**15, (4, length)) for name in NAMES[:3]}
        arrays |= {"masked_lm_positions": rng.integers(0, 200, (4, 3)),
                   "masked_lm_ids": rng.integers(0, 2**15, (4, 3)),
                   "masked_lm_weights": rng.random((4, 3)).astype(np.float32),
                   "next_sentence_labels": rng.integers(0, 2, (4, 1))}
        assert_protobuf_bytes(arrays)
    long = realistic(3, 6000, 900, rng)
    long["input_ids"][:] = 2**20
    records = assert_protobuf_bytes(long)
    assert min(len(r) for r in records) > 2**14 + 6000


def test_empty_lists_are_protobufs_bytes():
    """A list with no values has no packed field at all (P = 0 here, and L = 0)."""
    rng = np.random.default_rng(8)
    assert_protobuf_bytes(realistic(5, 16, 0, rng))
    arrays = realistic(5, 16, 3, rng)
    assert_protobuf_bytes({name: a[:, :0] if a.ndim == 2 and name != "next_sentence_labels"
                           else a for name, a in arrays.items()})


def test_block_does_not_change_a_rows_bytes(monkeypatch):
    """Serialized alone, among rows with longer varints, or in a block cut into chunks, a row's
    bytes are the same."""
    rng = np.random.default_rng(5)
    arrays = realistic(50, 128, 20, rng)
    arrays["input_ids"][7] = np.where(arrays["input_mask"][7] > 0, 2**30, 0)
    together = serialize_examples(*(arrays[name] for name in NAMES))
    for i in (0, 7, 49):
        alone = serialize_examples(*(arrays[name][i:i + 1] for name in NAMES))
        assert alone == [together[i]]
    assert serialize_examples(*(arrays[name][:0] for name in NAMES)) == []
    monkeypatch.setattr(features, "_CHUNK_BYTES", 10_000)  # chunks of 6 rows
    assert serialize_examples(*(arrays[name] for name in NAMES)) == together


def test_records_parse_back():
    rng = np.random.default_rng(6)
    arrays = realistic(64, 128, 20, rng)
    records = serialize_examples(*(arrays[name] for name in NAMES))
    parsed = {k: v.numpy() for k, v in parse_examples(tf.constant(records), 128, 20).items()}
    assert set(parsed) == set(NAMES)
    for name in NAMES:
        np.testing.assert_array_equal(parsed[name], arrays[name], err_msg=name)
    assert parsed["input_ids"].dtype == np.int32 and parsed["next_sentence_labels"].shape == (64,)


def test_serialize_example_is_the_padded_row():
    """The one-instance form pads as the original script does and writes the same bytes."""
    ids, segments = [101, 2023, 103, 102, 7592, 102], [0, 0, 0, 0, 1, 1]
    record = serialize_example(ids, segments, [2], [2003], 1, max_seq_length=10,
                               max_predictions_per_seq=3)
    arrays = {
        "input_ids": np.array([ids + [0] * 4]), "input_mask": np.array([[1] * 6 + [0] * 4]),
        "segment_ids": np.array([segments + [0] * 4]), "masked_lm_positions": np.array([[2, 0, 0]]),
        "masked_lm_ids": np.array([[2003, 0, 0]]),
        "masked_lm_weights": np.array([[1.0, 0.0, 0.0]], dtype=np.float32),
        "next_sentence_labels": np.array([1]),
    }
    assert record == protobuf_bytes(arrays, 0)
    with pytest.raises(ValueError, match="does not fit"):
        serialize_example(ids, segments, [2], [2003], 1, max_seq_length=5,
                          max_predictions_per_seq=3)


def test_bad_shapes_and_types_are_refused():
    rng = np.random.default_rng(7)
    arrays = realistic(4, 16, 4, rng)
    with pytest.raises(ValueError, match="segment_ids"):
        serialize_examples(*(arrays[name][:3] if name == "segment_ids" else arrays[name]
                             for name in NAMES))
    with pytest.raises(ValueError, match="input_ids"):
        serialize_examples(*(arrays[name].astype(np.float32) if name == "input_ids"
                             else arrays[name] for name in NAMES))
