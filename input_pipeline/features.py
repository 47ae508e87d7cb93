"""The pretraining example format: Google's original BERT TFRecord features, names and types.

Shards written by Google's `create_pretraining_data.py` and by us parse with the same schema
(`run_pretraining.py`'s `name_to_features`), so either can feed either trainer.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tf.io.FixedLenFeature]:
    """The parsing schema of the original `run_pretraining.py`."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def serialize_example(input_ids: Sequence[int], segment_ids: Sequence[int],
                      masked_lm_positions: Sequence[int], masked_lm_ids: Sequence[int],
                      next_sentence_label: int, max_seq_length: int,
                      max_predictions_per_seq: int) -> bytes:
    """One instance as a serialized `tf.train.Example`, padded with zeros as the original pads."""
    length, num_predictions = len(input_ids), len(masked_lm_positions)
    if length > max_seq_length or num_predictions > max_predictions_per_seq:
        raise ValueError(f"instance of {length} tokens and {num_predictions} predictions does not "
                         f"fit max_seq_length={max_seq_length}, "
                         f"max_predictions_per_seq={max_predictions_per_seq}")
    seq_pad = [0] * (max_seq_length - length)
    pred_pad = [0] * (max_predictions_per_seq - num_predictions)

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    features = {
        "input_ids": ints(list(input_ids) + seq_pad),
        "input_mask": ints([1] * length + seq_pad),
        "segment_ids": ints(list(segment_ids) + seq_pad),
        "masked_lm_positions": ints(list(masked_lm_positions) + pred_pad),
        "masked_lm_ids": ints(list(masked_lm_ids) + pred_pad),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(
            value=[1.0] * num_predictions + [0.0] * len(pred_pad))),
        "next_sentence_labels": ints([next_sentence_label]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_examples(serialized: tf.Tensor, max_seq_length: int,
                   max_predictions_per_seq: int) -> dict[str, tf.Tensor]:
    """Parses a batch of serialized examples into int32/float32 tensors (TPUs and the model want
    int32; the file format is int64). `next_sentence_labels` becomes shape [batch]."""
    parsed = tf.io.parse_example(serialized, feature_spec(max_seq_length, max_predictions_per_seq))
    batch = {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in parsed.items()}
    batch["next_sentence_labels"] = tf.squeeze(batch["next_sentence_labels"], -1)
    return batch
