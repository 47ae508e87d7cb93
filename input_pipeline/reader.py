"""tf.data reader of pretraining shards: the per-process stream of numpy batches the trainer eats.

* Every process reads a disjoint set of files (`process_index::process_count`), and training
  streams never end, so all processes yield the same number of batches; a finite (eval) pass is
  padded with weight-0 examples to the longest process's number of batches.
* The order is a pure function of the seed: files are permuted per epoch with a stateless
  shuffle, examples pass a seeded shuffle buffer, and every parallel stage is deterministic.
* The iterator's position is saved in checkpoints (`DataIterator.save`/`restore`, tf.data's own
  iterator checkpointing, which records the shuffle buffer too), so a resumed run sees exactly
  the examples an uninterrupted run would have seen, without re-reading what came before.
* Dynamic masking (RoBERTa): shards written unmasked (`create-data --masking dynamic`) are masked
  here, afresh every epoch, from counter-based random numbers of (seed, epoch, example), so an
  example's mask does not depend on its batch, its position or the number of processes.

TensorFlow only reads files here; it is kept off accelerators so that it never takes memory from
JAX.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from input_pipeline import remote_files
from input_pipeline.features import parse_examples
from input_pipeline.manifest import MANIFEST_NAME, file_sha256, read_manifest
from input_pipeline.masking import MaskingConfig, mask_batch_hashed


def _hide_accelerators_from_tensorflow() -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow's devices were already initialized by someone else.
        pass


_hide_accelerators_from_tensorflow()

# With dynamic masking every example carries a key: (epoch << 48) + (file index << 32) + record
# index, so that its mask is a function of (seed, epoch, example) only.
_RECORD_BITS = 32
_EPOCH_SHIFT = 48


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    file_patterns: tuple[str, ...]
    batch_size: int                 # Per process: the global batch over the number of processes.
    max_seq_length: int
    max_predictions_per_seq: int
    seed: int = 0
    shuffle_buffer: int = 10_000
    repeat: bool = True
    # Files read at once by each process; more mixes better and reads faster.
    cycle_length: int = 8
    # Set for shards written with `masking="dynamic"`: how to mask them.
    dynamic_masking: MaskingConfig | None = dataclasses.field(default=None, compare=False)


def list_shards(file_patterns: Sequence[str]) -> list[str]:
    """The shard files matching the patterns (a directory means all its `*.tfrecord` files)."""
    files: list[str] = []
    for pattern in file_patterns:
        if remote_files.isdir(pattern):
            pattern = os.path.join(pattern, "*.tfrecord")
        matched = remote_files.glob(pattern)
        if not matched:
            raise FileNotFoundError(f"no shard files match {pattern!r}; create them with "
                                    "`bert-jax create-data` or pass the right path.")
        files.extend(matched)
    return files


def _shard_directories(file_patterns: Sequence[str]) -> list[str]:
    return sorted({p if remote_files.isdir(p) else os.path.dirname(p) for p in file_patterns})


def check_shards_match(file_patterns: Sequence[str], *, max_seq_length: int,
                       max_predictions_per_seq: int, vocab_size: int,
                       vocab_file: str | None = None, dynamic_masking: bool = False) -> None:
    """Refuses shards whose manifest disagrees with the trainer's config, before anything is
    compiled: a wrong length would fail deep inside TensorFlow, token ids beyond the embedding
    table would be silently clamped by the gather, and unmasked shards read without dynamic
    masking would train nothing."""
    vocab_hash = file_sha256(vocab_file) if vocab_file and remote_files.isfile(vocab_file) else None
    for directory in _shard_directories(file_patterns):
        manifest = read_manifest(directory)
        if manifest is None:
            continue
        where = os.path.join(directory, MANIFEST_NAME)
        errors = []
        for field, expected in (("max_seq_length", max_seq_length),
                                ("max_predictions_per_seq", max_predictions_per_seq)):
            if manifest[field] != expected:
                errors.append(f"{field} is {manifest[field]} in {where} but {expected} in the config "
                              f"(data.{field})")
        if manifest["vocab_size"] > vocab_size:
            errors.append(f"the shards' vocab has {manifest['vocab_size']} tokens but "
                          f"model.vocab_size={vocab_size}")
        if vocab_hash is not None and manifest["vocab_sha256"] != vocab_hash:
            errors.append(f"the shards were made with another vocab than data.vocab_file={vocab_file} "
                          "(SHA-256 differs)")
        masking = manifest.get("masking", "static")
        if (masking == "dynamic") != dynamic_masking:
            errors.append(f"the shards in {directory} were written with masking={masking!r} but "
                          f"data.dynamic_masking={dynamic_masking}; set data.dynamic_masking="
                          f"{masking == 'dynamic'}")
        if errors:
            raise ValueError("shards do not match the config: " + "; ".join(errors) + ".")


def _host_files(config: ReaderConfig, process_index: int, process_count: int) -> tuple[list[str], list[int]]:
    files = list_shards(config.file_patterns)
    if len(files) < process_count:
        raise ValueError(f"{len(files)} shard files for {process_count} processes: every process "
                         "needs at least one file; write more shards (`--num-shards`).")
    indices = list(range(process_index, len(files), process_count))
    if len(files) > 1 << (_EPOCH_SHIFT - _RECORD_BITS):
        raise ValueError(f"{len(files)} shard files: at most {1 << (_EPOCH_SHIFT - _RECORD_BITS)} "
                         "are supported; write fewer, larger shards.")
    return [files[i] for i in indices], indices


def make_dataset(config: ReaderConfig, process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
    """This process's batches of parsed examples (with dynamic masking, each example's key too).

    With `repeat`, the stream is endless: epoch e reads this process's files in an order drawn
    statelessly from (seed, e), examples are mixed by a seeded shuffle buffer across epoch
    boundaries, and batches are full. Without, one pass in file order, unshuffled.
    """
    files, file_ids = _host_files(config, process_index, process_count)
    num_files = len(files)
    files_t = tf.constant(files)
    ids_t = tf.constant(file_ids, tf.int64)
    keyed = config.dynamic_masking is not None

    def pick_file(position):
        epoch = position // num_files
        index = position % num_files
        if config.repeat:
            index = tf.random.experimental.index_shuffle(
                index, seed=tf.stack([tf.constant(config.seed, tf.int64), epoch]), max_index=num_files - 1)
        return files_t[index], ids_t[index], epoch

    def read_file(path, file_id, epoch):
        records = tf.data.TFRecordDataset(path)
        if not keyed:
            return records
        # Keys are computed a chunk at a time: a map per record would cost more than parsing.
        chunk = 256

        def add_keys(index, records):
            first = epoch * (1 << _EPOCH_SHIFT) + file_id * (1 << _RECORD_BITS) + index * chunk
            return records, first + tf.range(tf.size(records, out_type=tf.int64))

        return records.batch(chunk).enumerate().map(add_keys).unbatch()

    positions = tf.data.Dataset.counter() if config.repeat else tf.data.Dataset.range(num_files)
    ds = positions.map(pick_file)
    ds = ds.interleave(read_file, cycle_length=min(num_files, config.cycle_length), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if config.repeat:
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=False)
    ds = ds.batch(config.batch_size, drop_remainder=config.repeat)

    def parse(records, keys=None):
        batch = parse_examples(records, config.max_seq_length, config.max_predictions_per_seq)
        return batch if keys is None else batch | {"example_key": keys}

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def count_examples(files: Sequence[str]) -> int:
    """The number of records in `files`, from the manifests where they list them, else counted."""
    known: dict[str, int] = {}
    for directory in _shard_directories(files):
        manifest = read_manifest(directory) or {}
        for shard in manifest.get("shards", []):
            known[os.path.join(directory, shard["file"])] = shard["num_instances"]
    total = 0
    for path in files:
        if path in known:
            total += known[path]
        else:
            total += int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda n, _: n + 1))
    return total


class DataIterator:
    """Numpy batches with the original feature names, for one process; checkpointable.

    A finite pass (`repeat=False`) yields the same number of batches on every process (that of
    the process with the most examples), padded with examples of weight 0 in `example_weights`.
    """

    def __init__(self, config: ReaderConfig, process_index: int = 0, process_count: int = 1):
        self.config = config
        self._dataset = make_dataset(config, process_index, process_count)
        self._iterator = iter(self._dataset)
        self._num_batches = None
        if not config.repeat:
            counts = [count_examples(_host_files(config, i, process_count)[0])
                      for i in range(process_count)]
            self._num_batches = math.ceil(max(counts) / config.batch_size)
            self._yielded = 0

    def __iter__(self) -> "DataIterator":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._num_batches is not None:
            if self._yielded >= self._num_batches:
                raise StopIteration
            self._yielded += 1
        try:
            batch = {k: v.numpy() for k, v in next(self._iterator).items()}
        except StopIteration:
            if self._num_batches is None:
                raise
            batch = None
        return self._finish(batch)

    def _finish(self, batch: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        config = self.config
        if batch is None:  # This process ran out before the others: an all-padding batch.
            batch = {k: np.zeros((0, *spec.shape[1:]), spec.dtype.as_numpy_dtype)
                     for k, spec in self._dataset.element_spec.items()}
        keys = batch.pop("example_key", None)
        if keys is not None and len(keys):
            batch |= _mask_dynamically(batch, keys, config)
        if self._num_batches is not None:
            n = len(batch["input_ids"])
            weights = np.zeros(config.batch_size, np.float32)
            weights[:n] = 1.0
            if n < config.batch_size:
                batch = {k: np.concatenate([v, np.zeros((config.batch_size - n, *v.shape[1:]), v.dtype)])
                         for k, v in batch.items()}
            batch["example_weights"] = weights
        return batch

    def save(self, path: str) -> None:
        """Writes the iterator's position (and buffered examples) under the prefix `path`."""
        tf.train.Checkpoint(iterator=self._iterator).write(path)

    def restore(self, path: str) -> None:
        """Continues from a position written by `save` with the same config and files."""
        tf.train.Checkpoint(iterator=self._iterator).read(path).assert_consumed()


def _mask_dynamically(batch: dict[str, np.ndarray], keys: np.ndarray,
                      config: ReaderConfig) -> dict[str, np.ndarray]:
    """Masks every row from counter-based uniforms of (seed, epoch, example), both in its key."""
    epochs = keys >> _EPOCH_SHIFT
    examples = (keys & ((1 << _EPOCH_SHIFT) - 1)).astype(np.uint64)
    out = {name: np.zeros((len(keys), config.max_predictions_per_seq), dtype)
           for name, dtype in (("masked_lm_positions", np.int32), ("masked_lm_ids", np.int32),
                               ("masked_lm_weights", np.float32))}
    out["input_ids"] = batch["input_ids"].copy()
    for epoch in np.unique(epochs):  # A batch straddles at most a few epochs.
        rows = epochs == epoch
        masked = mask_batch_hashed(batch["input_ids"][rows], config.dynamic_masking, config.seed,
                                   int(epoch), examples[rows],
                                   input_mask=batch["input_mask"][rows])
        for name in out:
            out[name][rows] = getattr(masked, name)
    return out


def numpy_batches(config: ReaderConfig, process_index: int = 0, process_count: int = 1) -> DataIterator:
    """This process's batches as dicts of numpy arrays (see `DataIterator`)."""
    return DataIterator(config, process_index, process_count)
