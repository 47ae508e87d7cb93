"""Sequence packing: several pretraining examples in one row of `max_seq_length` tokens.

BERT's instances are often shorter than the row they are padded to: a document's last segment,
the 10% of short targets, whole corpora of short documents. At sequence length 512 on Wikipedia
about half of every batch is padding (Krell et al., 2021, "Efficient Sequence Packing without
Cross-contamination"), and every padding token costs as much as a real one. Packing puts examples
side by side in one row instead, without changing what the model computes for any of them:

* `input_mask` numbers the sequences of a row (1, 2, ...; 0 is padding), and attention stays
  within a sequence (`bert_jax.model.bert.packed_attention_mask`);
* `position_ids` restart at 0 with every sequence;
* `cls_positions` [rows, max_sequences_per_pack] point at each sequence's `[CLS]`, where the
  pooler and the next-sentence head read it; `next_sentence_labels` and `next_sentence_weights`
  have the same shape (weight 0 for an empty slot);
* `masked_lm_positions`/`_ids`/`_weights` hold the predictions of all of a row's sequences,
  positions shifted to where the sequence sits in the row.

`pack_examples` packs a window of examples by first-fit decreasing (each example, longest first,
goes into the first row with room for its tokens, its predictions and one more sequence), which
comes within a few percent of the fewest rows. `PackedBatches` packs the reader's stream a
window at a time, and keeps the rows left over between batches in the data iterator's
checkpoint, so that a resumed run sees the same rows.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from input_pipeline import remote_files


@dataclasses.dataclass(frozen=True)
class PackingConfig:
    max_sequences_per_pack: int = 4
    # Masked-LM predictions per row, over all of its sequences.
    max_predictions_per_pack: int = 24


def pack_examples(examples: dict[str, np.ndarray], max_seq_length: int,
                  config: PackingConfig) -> dict[str, np.ndarray]:
    """Packs the rows of a batch of examples (the original features, numpy) into fewer rows.

    Every example goes whole into exactly one row; rows come out in the order they were opened.
    Raises ValueError for an example that cannot go anywhere (more tokens or predictions than a
    row holds).
    """
    lengths = np.count_nonzero(examples["input_mask"], axis=1)
    predictions = np.count_nonzero(examples["masked_lm_weights"], axis=1)
    too_long = np.flatnonzero((lengths > max_seq_length) | (predictions > config.max_predictions_per_pack))
    if too_long.size:
        i = too_long[0]
        raise ValueError(f"example {i} of the window has {lengths[i]} tokens and {predictions[i]} "
                         f"predictions, but a packed row holds {max_seq_length} tokens and "
                         f"{config.max_predictions_per_pack} predictions: pack shards written for "
                         "this sequence length and number of predictions.")
    row, slot, token_offset, prediction_offset, num_rows = _first_fit_decreasing(
        lengths, predictions, max_seq_length, config)

    # The real tokens (and predictions) of every example are a prefix of its row, so boolean
    # indexing lists them example by example, in the order np.repeat lists their destinations.
    def destinations(counts, offsets):
        starts = np.cumsum(counts) - counts
        within = np.arange(counts.sum()) - np.repeat(starts, counts)
        return np.repeat(row, counts), np.repeat(offsets, counts) + within, within

    k = config.max_sequences_per_pack
    out = {name: np.zeros((num_rows, max_seq_length), np.int32)
           for name in ("input_ids", "input_mask", "segment_ids", "position_ids")}
    rows, columns, within = destinations(lengths, token_offset)
    real = examples["input_mask"] > 0
    out["input_ids"][rows, columns] = examples["input_ids"][real]
    out["segment_ids"][rows, columns] = examples["segment_ids"][real]
    out["input_mask"][rows, columns] = np.repeat(slot + 1, lengths)
    out["position_ids"][rows, columns] = within

    p = config.max_predictions_per_pack
    out["masked_lm_positions"] = np.zeros((num_rows, p), np.int32)
    out["masked_lm_ids"] = np.zeros((num_rows, p), np.int32)
    out["masked_lm_weights"] = np.zeros((num_rows, p), np.float32)
    rows, columns, _ = destinations(predictions, prediction_offset)
    predicted = examples["masked_lm_weights"] > 0
    out["masked_lm_positions"][rows, columns] = (examples["masked_lm_positions"][predicted]
                                                 + np.repeat(token_offset, predictions))
    out["masked_lm_ids"][rows, columns] = examples["masked_lm_ids"][predicted]
    out["masked_lm_weights"][rows, columns] = examples["masked_lm_weights"][predicted]

    out["cls_positions"] = np.zeros((num_rows, k), np.int32)
    out["next_sentence_labels"] = np.zeros((num_rows, k), np.int32)
    out["next_sentence_weights"] = np.zeros((num_rows, k), np.float32)
    out["cls_positions"][row, slot] = token_offset
    out["next_sentence_labels"][row, slot] = examples["next_sentence_labels"].reshape(-1)
    out["next_sentence_weights"][row, slot] = 1.0
    return out


def _first_fit_decreasing(lengths: np.ndarray, predictions: np.ndarray, max_seq_length: int,
                          config: PackingConfig):
    """Row, slot in the row, token offset and prediction offset of every example, and the number
    of rows, by first-fit decreasing over three capacities."""
    n = len(lengths)
    free_tokens = np.empty(n, np.int64)
    free_predictions = np.empty(n, np.int64)
    used_slots = np.empty(n, np.int64)
    row, slot = np.empty(n, np.int64), np.empty(n, np.int64)
    token_offset, prediction_offset = np.empty(n, np.int64), np.empty(n, np.int64)
    num_rows = 0
    for i in np.argsort(-lengths, kind="stable"):
        length, count = lengths[i], predictions[i]
        fits = np.flatnonzero((free_tokens[:num_rows] >= length)
                              & (free_predictions[:num_rows] >= count)
                              & (used_slots[:num_rows] < config.max_sequences_per_pack))
        if fits.size:
            r = fits[0]
        else:
            r = num_rows
            num_rows += 1
            free_tokens[r], free_predictions[r], used_slots[r] = (
                max_seq_length, config.max_predictions_per_pack, 0)
        row[i], slot[i] = r, used_slots[r]
        token_offset[i] = max_seq_length - free_tokens[r]
        prediction_offset[i] = config.max_predictions_per_pack - free_predictions[r]
        free_tokens[r] -= length
        free_predictions[r] -= count
        used_slots[r] += 1
    return row, slot, token_offset, prediction_offset, num_rows


class PackedBatches:
    """Batches of `batch_size` packed rows from an iterator of example windows (a reader's
    `DataIterator` whose batch size is the window), checkpointable like it.

    Each window is packed, its rows put in an order drawn from (seed, window number), and
    appended to the rows not yet served; a batch takes the oldest. `save` and `restore` keep the
    unserved rows and the window count beside the window iterator's own position.
    """

    def __init__(self, windows, batch_size: int, max_seq_length: int, config: PackingConfig,
                 seed: int = 0):
        self._windows = windows
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.config = config
        self.seed = seed
        self._rows: dict[str, np.ndarray] | None = None
        self._windows_read = 0

    def __iter__(self) -> "PackedBatches":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        while self._rows is None or len(self._rows["input_ids"]) < self.batch_size:
            packed = pack_examples(next(self._windows), self.max_seq_length, self.config)
            order = np.random.default_rng([self.seed, self._windows_read]).permutation(
                len(packed["input_ids"]))
            self._windows_read += 1
            packed = {name: value[order] for name, value in packed.items()}
            self._rows = packed if self._rows is None else {
                name: np.concatenate([self._rows[name], value]) for name, value in packed.items()}
        batch = {name: value[:self.batch_size] for name, value in self._rows.items()}
        self._rows = {name: value[self.batch_size:] for name, value in self._rows.items()}
        return batch

    def save(self, path: str) -> None:
        """Writes the window iterator's position and the unserved rows under the prefix `path`."""
        self._windows.save(path)
        buffer = io.BytesIO()
        np.savez(buffer, windows_read=self._windows_read, **(self._rows or {}))
        with remote_files.open_file(path + ".packed_rows.npz", "wb") as f:
            f.write(buffer.getvalue())

    def restore(self, path: str) -> None:
        """Continues from a position written by `save` with the same configs and files."""
        self._windows.restore(path)
        with remote_files.open_file(path + ".packed_rows.npz", "rb") as f:
            saved = dict(np.load(io.BytesIO(f.read())))
        self._windows_read = int(saved.pop("windows_read"))
        self._rows = saved or None
