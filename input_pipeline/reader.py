"""tf.data reader of pretraining shards: per-process file sharding, shuffling, batching, numpy out.

TensorFlow only reads files here; it is kept off accelerators so that it never takes memory from
JAX.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from input_pipeline.create_pretraining_data import MANIFEST_NAME, file_sha256
from input_pipeline.features import parse_examples


def _hide_accelerators_from_tensorflow() -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow's devices were already initialized by someone else.
        pass


_hide_accelerators_from_tensorflow()


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    file_patterns: tuple[str, ...]
    batch_size: int                 # Per process: the global batch over the number of processes.
    max_seq_length: int
    max_predictions_per_seq: int
    seed: int = 0
    shuffle_buffer: int = 10_000
    repeat: bool = True


def list_shards(file_patterns: Sequence[str]) -> list[str]:
    """The shard files matching the patterns (a directory means all its `*.tfrecord` files)."""
    files: list[str] = []
    for pattern in file_patterns:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*.tfrecord")
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"no shard files match {pattern!r}; create them with "
                                    "`bert-jax create-data` or pass the right path.")
        files.extend(matched)
    return files


def read_manifest(shard_dir: str | os.PathLike) -> dict | None:
    """The manifest written beside the shards by `create-data`, if there is one."""
    path = Path(shard_dir) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def check_shards_match(file_patterns: Sequence[str], *, max_seq_length: int,
                       max_predictions_per_seq: int, vocab_size: int,
                       vocab_file: str | None = None) -> None:
    """Refuses shards whose manifest disagrees with the trainer's config, before anything is
    compiled: a wrong length would fail deep inside TensorFlow, and token ids beyond the
    embedding table would be silently clamped by the gather."""
    directories = {p if os.path.isdir(p) else os.path.dirname(p) for p in file_patterns}
    vocab_hash = file_sha256(vocab_file) if vocab_file and os.path.isfile(vocab_file) else None
    for directory in sorted(directories):
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
        if errors:
            raise ValueError("shards do not match the config: " + "; ".join(errors) + ".")


def make_dataset(config: ReaderConfig, process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
    """Batches of parsed examples for this process, in a deterministic order for a given seed.

    Every process reads a disjoint subset of files (files `process_index::process_count`), so a
    pod reads each shard once per epoch; there must be at least as many files as processes.
    """
    files = list_shards(config.file_patterns)
    if len(files) < process_count:
        raise ValueError(f"{len(files)} shard files for {process_count} processes: every process "
                         "needs at least one file; write more shards (`--num-shards`).")
    files = files[process_index::process_count]
    ds = tf.data.Dataset.from_tensor_slices(files)
    if config.repeat:
        ds = ds.shuffle(len(files), seed=config.seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if config.repeat:
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed + 1, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size, drop_remainder=config.repeat)
    ds = ds.map(lambda s: parse_examples(s, config.max_seq_length, config.max_predictions_per_seq),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def numpy_batches(config: ReaderConfig, process_index: int = 0, process_count: int = 1,
                  skip_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches as dicts of numpy arrays with the original feature names.

    `skip_batches` resumes the stream where a run of that many steps left it: the order depends
    only on the seed, so skipping reproduces it exactly.
    """
    ds = make_dataset(config, process_index, process_count)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return ds.as_numpy_iterator()
