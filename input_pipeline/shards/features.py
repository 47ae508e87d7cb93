"""The pretraining example format: Google's original BERT TFRecord features, names and types.

Shards written by Google's `create_pretraining_data.py` and by us parse with the same schema
(`run_pretraining.py`'s `name_to_features`), so either can feed either trainer.

Records are written without TensorFlow or protobuf: `serialize_examples` assembles the bytes of
`tf.train.Example(...).SerializeToString(deterministic=True)` for a whole block of instances with
numpy, a few microseconds an instance (building each `tf.train.Example` in Python costs about
50). The layout it writes, from the protobuf encoding of
`tensorflow/core/example/{example,feature}.proto`:

    Example   = 0x0A len Features                        field 1: features
    Features  = (0x0A len Entry)*, keys in byte order     field 1: map<string, Feature> feature
    Entry     = 0x0A len key 0x12 len Feature             map entry: 1 key, 2 value
    Feature   = 0x1A len Int64List | 0x12 len FloatList   oneof: 3 int64_list, 2 float_list
    Int64List = 0x0A len varint*                          field 1, packed
    FloatList = 0x0A len float32-little-endian*           field 1, packed

where `len` is a varint and an empty list has no packed field at all.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

# The features in the byte order of their names, the order of deterministic serialization.
_INT64, _FLOAT = 0x1A, 0x12  # Tag bytes of Feature.int64_list and Feature.float_list.
_FEATURES = (
    ("input_ids", _INT64), ("input_mask", _INT64), ("masked_lm_ids", _INT64),
    ("masked_lm_positions", _INT64), ("masked_lm_weights", _FLOAT),
    ("next_sentence_labels", _INT64), ("segment_ids", _INT64),
)
assert [name for name, _ in _FEATURES] == sorted(name for name, _ in _FEATURES)
_KEY_SIZES = np.array([len(name) for name, _ in _FEATURES])

# Big blocks are serialized a few megabytes at a time: the temporaries (about 8 bytes a value)
# stay bounded, at no cost in speed (measured with chunks from 256 kB to 4 MB).
_CHUNK_BYTES = 1 << 22


def feature_spec(max_seq_length: int,
                 max_predictions_per_seq: int) -> dict[str, "tf.io.FixedLenFeature"]:
    """The parsing schema of the original `run_pretraining.py`."""
    import tensorflow as tf  # only the reader parses; the writers (data workers) never import it

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
    """One instance as a serialized `tf.train.Example`, padded with zeros as the original pads
    (`serialize_examples` for a block of one)."""
    length, num_predictions = len(input_ids), len(masked_lm_positions)
    if length > max_seq_length or num_predictions > max_predictions_per_seq:
        raise ValueError(f"instance of {length} tokens and {num_predictions} predictions does not "
                         f"fit max_seq_length={max_seq_length}, "
                         f"max_predictions_per_seq={max_predictions_per_seq}")
    if len(segment_ids) != length or len(masked_lm_ids) != num_predictions:
        raise ValueError(f"{length} input ids but {len(segment_ids)} segment ids, or "
                         f"{num_predictions} positions but {len(masked_lm_ids)} labels")
    seq = np.zeros((3, 1, max_seq_length), dtype=np.int64)
    seq[0, 0, :length] = input_ids
    seq[1, 0, :length] = 1
    seq[2, 0, :length] = segment_ids
    pred = np.zeros((2, 1, max_predictions_per_seq), dtype=np.int64)
    pred[0, 0, :num_predictions] = masked_lm_positions
    pred[1, 0, :num_predictions] = masked_lm_ids
    weights = np.zeros((1, max_predictions_per_seq), dtype=np.float32)
    weights[0, :num_predictions] = 1.0
    return serialize_examples(seq[0], seq[1], seq[2], pred[0], pred[1], weights,
                              np.array([next_sentence_label]))[0]


def serialize_examples(input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray,
                       masked_lm_positions: np.ndarray, masked_lm_ids: np.ndarray,
                       masked_lm_weights: np.ndarray,
                       next_sentence_labels: np.ndarray) -> list[bytes]:
    """N serialized `tf.train.Example`s, byte for byte what protobuf's deterministic serializer
    writes for the seven features (int64 lists, and a float list for `masked_lm_weights`).

    `input_ids`, `input_mask` and `segment_ids` are [N, L] integers, `masked_lm_positions` and
    `masked_lm_ids` [N, P] integers, `masked_lm_weights` [N, P] floats (stored as float32), and
    `next_sentence_labels` [N] or [N, 1] integers. Negative integers are written as protobuf
    writes them (ten-byte varints).
    """
    columns = {
        "input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
        "masked_lm_positions": masked_lm_positions, "masked_lm_ids": masked_lm_ids,
        "masked_lm_weights": masked_lm_weights, "next_sentence_labels": next_sentence_labels,
    }
    arrays = {name: np.asarray(value) for name, value in columns.items()}
    if arrays["next_sentence_labels"].ndim == 1:
        arrays["next_sentence_labels"] = arrays["next_sentence_labels"][:, None]
    n = len(arrays["input_ids"]) if arrays["input_ids"].ndim else None
    for name, array in arrays.items():
        if array.ndim != 2 or array.shape[0] != n:
            raise ValueError(f"{name} must be [N, width] with N = len(input_ids), "
                             f"got shape {np.shape(columns[name])}.")
        if name != "masked_lm_weights" and array.dtype.kind not in "iub":
            raise ValueError(f"{name} must hold integers, got {array.dtype}.")
    rows = max(1, _CHUNK_BYTES // (4 * sum(a.shape[1] for a in arrays.values()) + 1))
    records: list[bytes] = []
    for lo in range(0, n, rows):
        records += _serialize({name: a[lo:lo + rows] for name, a in arrays.items()})
    return records


def _serialize(arrays: dict[str, np.ndarray]) -> list[bytes]:
    """`serialize_examples` on checked [n, width] arrays, by feature name."""
    n = len(arrays["input_ids"])

    # Each feature's data: [N, w] bytes, which of them to keep (None: all), and its length.
    data = []
    for name, tag in _FEATURES:
        if tag == _FLOAT:
            floats = np.ascontiguousarray(arrays[name], dtype="<f4")
            data.append((floats.view(np.uint8).reshape(n, 4 * floats.shape[1]), None,
                         np.full(n, 4 * floats.shape[1], dtype=np.int64)))
        else:
            encoded, keep = _varints(arrays[name])
            size = (np.full(n, encoded.shape[1], dtype=np.int64) if keep is None
                    else keep.sum(axis=1, dtype=np.int64))
            data.append((encoded, keep, size))

    # The lengths of the nested messages, inside out, as [N, 7] columns.
    packed = np.stack([size for _, _, size in data], axis=1)
    nonempty = tuple(encoded.shape[1] > 0 for encoded, _, _ in data)
    # An Int64List or FloatList: its packed field, which an empty list leaves out.
    value_list = np.where(nonempty, 1 + _varint_size(packed) + packed, 0)
    feature = 1 + _varint_size(value_list) + value_list
    entry = 2 + _KEY_SIZES + 1 + _varint_size(feature) + feature
    features = (1 + _varint_size(entry) + entry).sum(axis=1)
    record_size = 1 + _varint_size(features) + features
    lengths = [features[:, None]]
    for i in range(len(_FEATURES)):
        lengths += [entry[:, i:i + 1], feature[:, i:i + 1], value_list[:, i:i + 1]]
        if nonempty[i]:
            lengths.append(packed[:, i:i + 1])
    length_bytes, length_keep = _varints(np.concatenate(lengths, axis=1))

    # Every row is the same sequence of pieces; only the varints' lengths differ. Lay the
    # pieces out at their widest, then keep the bytes that are there.
    layout = _layout(tuple(encoded.shape[1] for encoded, _, _ in data),
                     length_bytes.shape[1] // len(lengths))
    out = np.empty((n, layout.template.size), dtype=np.uint8)
    keep = np.empty((n, layout.template.size), dtype=bool)
    out[...] = layout.template
    keep[...] = layout.keep
    out[:, layout.length_columns] = length_bytes
    keep[:, layout.length_columns] = True if length_keep is None else length_keep
    for (start, stop), (encoded, kept, _) in zip(layout.data, data):
        out[:, start:stop] = encoded
        if kept is not None:
            keep[:, start:stop] = kept
    return _split(out[keep], record_size)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where the pieces of a record go in a row of `serialize_examples`'s [N, width] bytes."""
    template: np.ndarray        # [width] uint8: the constant bytes, zeros elsewhere.
    keep: np.ndarray            # [width] bool: False where a length varint's bytes go.
    length_columns: np.ndarray  # The columns of the length varints' bytes, in order.
    data: tuple[tuple[int, int], ...]  # Each feature's data columns [start, stop).


@functools.lru_cache(maxsize=64)
def _layout(data_widths: tuple[int, ...], length_width: int) -> _Layout:
    template: list[int] = []
    keep: list[bool] = []
    length_columns: list[int] = []
    data = []

    def constant(raw: bytes) -> None:
        template.extend(raw)
        keep.extend([True] * len(raw))

    def length() -> None:
        length_columns.extend(range(len(template), len(template) + length_width))
        template.extend([0] * length_width)
        keep.extend([False] * length_width)

    constant(b"\x0a")
    length()
    for (name, tag), width in zip(_FEATURES, data_widths):
        constant(b"\x0a")
        length()
        constant(b"\x0a" + bytes([len(name)]) + name.encode() + b"\x12")
        length()
        constant(bytes([tag]))
        length()
        if width:
            constant(b"\x0a")
            length()
        data.append((len(template), len(template) + width))
        template.extend([0] * width)
        keep.extend([True] * width)
    return _Layout(np.array(template, dtype=np.uint8), np.array(keep),
                   np.array(length_columns, dtype=np.intp), tuple(data))


_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 5)], dtype=np.int64)


def _varint_size(values: np.ndarray) -> np.ndarray:
    """Bytes of the varints of non-negative `values` below 2**35 (message lengths)."""
    return 1 + np.searchsorted(_VARINT_LIMITS, values, side="right")


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The protobuf varints of [N, k] integers as ([N, k * B] bytes, [N, k * B] which to keep),
    B the byte count of the longest; the kept bytes, row by row, are the varints. `keep` is None
    when every varint is one byte (the bytes are then the values)."""
    n, k = values.shape
    if values.size == 0:
        return np.zeros((n, 0), dtype=np.uint8), None
    if values.dtype.kind == "i" and values.min() < 0:
        # Negative int64s are varints of their two's complement: ten bytes.
        words, size = values.astype(np.int64).view(np.uint64), 10
    else:
        largest = int(values.max())
        size = max(1, (largest.bit_length() + 6) // 7)
        if size == 1:
            return values.astype(np.uint8), None
        words = values.astype(np.uint32 if largest < 1 << 32 else np.uint64)
    encoded = np.empty((n, k, size), dtype=np.uint8)
    keep = np.empty((n, k, size), dtype=bool)
    keep[..., 0] = True
    shift = words.dtype.type(7)
    rest = words
    for b in range(size):
        more = rest > 127  # Another byte follows: the continuation bit.
        # The low 8 bits of `rest`, whose top bit is the continuation bit or becomes it.
        encoded[..., b] = rest.astype(np.uint8) | (more.view(np.uint8) << 7)
        if b + 1 < size:
            keep[..., b + 1] = more
            rest = rest >> shift
    return encoded.reshape(n, k * size), keep.reshape(n, k * size)


def _split(flat: np.ndarray, sizes: np.ndarray) -> list[bytes]:
    blob = flat.tobytes()
    ends = np.cumsum(sizes).tolist()
    starts = [0] + ends[:-1]
    return [blob[a:b] for a, b in zip(starts, ends)]


def parse_examples(serialized: "tf.Tensor", max_seq_length: int,
                   max_predictions_per_seq: int) -> dict[str, "tf.Tensor"]:
    """Parses a batch of serialized examples into int32/float32 tensors (TPUs and the model want
    int32; the file format is int64). `next_sentence_labels` becomes shape [batch]."""
    import tensorflow as tf  # only the reader parses; the writers (data workers) never import it

    parsed = tf.io.parse_example(serialized, feature_spec(max_seq_length, max_predictions_per_seq))
    batch = {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in parsed.items()}
    batch["next_sentence_labels"] = tf.squeeze(batch["next_sentence_labels"], -1)
    return batch
