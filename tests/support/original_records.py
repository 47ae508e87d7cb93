"""Pretraining records read back with Google's original parsing schema (`run_pretraining.py`'s
`name_to_features`, written out here literally, not imported), for the unit tests of
`create_pretraining_data` and its comparison with Google's own script in tests/integration."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

# The sizes the shards of these tests are made with.
MAX_SEQ_LENGTH = 64
MAX_PREDICTIONS = 10


def original_schema(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """`name_to_features` of Google's `run_pretraining.py`."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def raw_records(path) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def parse_records(path, max_seq_length=MAX_SEQ_LENGTH, max_predictions=MAX_PREDICTIONS) -> list[dict]:
    schema = original_schema(max_seq_length, max_predictions)
    out = []
    for raw in raw_records(path):
        example = tf.train.Example.FromString(raw)
        assert set(example.features.feature) == set(schema)  # nothing more, nothing less
        parsed = tf.io.parse_single_example(raw, schema)
        out.append({k: v.numpy() for k, v in parsed.items()})
    return out
