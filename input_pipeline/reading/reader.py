"""tf.data reader of pretraining shards: the per-process stream of numpy batches the trainer eats.

* The files of a shard directory are those its manifest lists (`shards.directory.shard_files`):
  shards another run left beside them are named in a warning and never read, and a directory
  that create-data is writing is refused.
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
* Damaged shards are reported by file: when TensorFlow fails on a record (bad CRC, truncated
  file, wrong feature shapes), or a batch holds token ids outside the model's vocab, this
  process's files are scanned (`check_shard`) and the error raised is a `CorruptShardError` that
  names the file, the record and what is wrong, instead of TensorFlow's "corrupted record at 795"
  from somewhere inside the interleave.

TensorFlow only reads files here; it is kept off accelerators so that it never takes memory from
JAX.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError

from input_pipeline import remote_files
from input_pipeline.instances.masking import MaskingConfig, mask_batch_hashed
from input_pipeline.shards import tfrecord
from input_pipeline.shards.directory import listed_only, shard_files
from input_pipeline.shards.features import feature_spec, parse_examples
from input_pipeline.shards.manifest import MANIFEST_NAME, file_sha256, read_manifest
from input_pipeline.shards.tfrecord import CorruptShardError

__all__ = ["CorruptShardError", "DataIterator", "ReaderConfig", "check_shard", "check_shards_match",
           "count_examples", "list_shards", "make_dataset", "numpy_batches"]

logger = logging.getLogger(__name__)


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
    # The model's vocab size (model.vocab_size): every batch's input_ids and masked_lm_ids are
    # checked to lie in [0, vocab_size), since an accelerator's gather clamps ids beyond the
    # embedding table and would train on garbage without a word. 0: unchecked.
    vocab_size: int = 0


def list_shards(file_patterns: Sequence[str]) -> list[str]:
    """The shard files the patterns name: a directory means the files its manifest lists (all
    its `*.tfrecord` files if it has none), a glob its matches, but in a directory with a manifest
    only those the manifest lists. Files left out (another run's shards) are named in a warning.

    Raises:
      FileNotFoundError: a pattern names no shard file, or a manifest lists a missing one.
      ValueError: a directory is being written by create-data (`shards.directory.shard_files`).
    """
    files: list[str] = []
    for pattern in file_patterns:
        if remote_files.isdir(pattern):
            found, left_out = shard_files(pattern)
        else:
            found, left_out = listed_only(remote_files.glob(pattern))
        if left_out:
            logger.warning("%s: reading only the %d shard files listed by %s, not %d other "
                           "*.tfrecord file(s) beside them (left by another create-data run?): %s",
                           pattern, len(found), MANIFEST_NAME, len(left_out),
                           _describe_files(left_out, most=10))
        if not found:
            what = (f"; the {len(left_out)} it matches are not listed by their directory's "
                    f"{MANIFEST_NAME}" if left_out else "")
            raise FileNotFoundError(f"no shard files match {pattern!r}{what}; create them with "
                                    "`bert-jax create-data` or pass the right path.")
        files.extend(found)
    return files


def _shard_directories(file_patterns: Sequence[str]) -> list[str]:
    return sorted({p if remote_files.isdir(p) else os.path.dirname(p) for p in file_patterns})


def check_shards_match(file_patterns: Sequence[str], *, max_seq_length: int,
                       max_predictions_per_seq: int, vocab_size: int,
                       vocab_file: str | None = None, dynamic_masking: bool = False,
                       do_lower_case: bool | None = None, config_prefix: str = "data.") -> None:
    """Refuses shards whose manifest disagrees with the trainer's config, before anything is
    compiled: a wrong length would fail deep inside TensorFlow, token ids beyond the embedding
    table would be silently clamped by the gather, and unmasked shards read without dynamic
    masking would train nothing.

    Checked per shard directory: `max_seq_length`, `max_predictions_per_seq`, `vocab_size` (at
    most the model's), `vocab_sha256` (that of `vocab_file`, when given), `masking` and, when
    given, `do_lower_case` (cased shards under an uncased config would export a tokenizer that
    lower-cases what the model learned cased). The
    `ValueError` names every directory and field that differs. `config_prefix` is how the config
    names the lengths (`data.phase2_` for phase-2 shards).

    Shards without a manifest (e.g. made by Google's script) are still accepted, with a warning;
    the first record of their first file is checked against the lengths instead.
    """
    vocab_hash = file_sha256(vocab_file) if vocab_file and remote_files.isfile(vocab_file) else None
    mismatches = []
    for directory in _shard_directories(file_patterns):
        manifest = read_manifest(directory)
        if manifest is None:
            mismatches += _check_first_record(directory, file_patterns, max_seq_length,
                                              max_predictions_per_seq, config_prefix)
            continue
        where = os.path.join(directory, MANIFEST_NAME)
        errors = []
        for field, expected in (("max_seq_length", max_seq_length),
                                ("max_predictions_per_seq", max_predictions_per_seq)):
            found = manifest.get(field)
            if found is not None and found != expected:
                errors.append(f"{field} is {found} in {where} but {expected} in the config "
                              f"({config_prefix}{field})")
        found = manifest.get("vocab_size")
        if found is not None and found > vocab_size:
            errors.append(f"vocab_size is {found} in {where}: the shards' vocab has {found} tokens "
                          f"but model.vocab_size={vocab_size}, and ids beyond the embedding table "
                          "would be clamped silently")
        found = manifest.get("vocab_sha256")
        if vocab_hash is not None and found is not None and found != vocab_hash:
            made_with = manifest.get("vocab_file", "another file")
            errors.append(f"vocab_sha256 is {found[:12]}... in {where} but {vocab_hash[:12]}... "
                          f"for data.vocab_file={vocab_file}: the shards were made with another "
                          f"vocab ({made_with}) than data.vocab_file")
        masking = manifest.get("masking", "static")
        if (masking == "dynamic") != dynamic_masking:
            errors.append(f"masking is {masking!r} in {where} but data.dynamic_masking="
                          f"{dynamic_masking}; set data.dynamic_masking={masking == 'dynamic'}")
        found = manifest.get("config", {}).get("do_lower_case")
        if do_lower_case is not None and found is not None and found != do_lower_case:
            errors.append(f"do_lower_case is {found} in {where} but data.do_lower_case="
                          f"{do_lower_case} in the config")
        if errors:
            mismatches.append(f"shards in {directory} do not match the config: "
                              + "; ".join(errors))
    if mismatches:
        raise ValueError(". ".join(mismatches) + ". Make the shards again with the config's "
                         "values (`bert-jax create-data`), or change the config to theirs.")


def _check_first_record(directory: str, file_patterns: Sequence[str], max_seq_length: int,
                        max_predictions_per_seq: int, config_prefix: str) -> list[str]:
    """For a shard directory without a manifest: a warning, and the mismatch (if any) of the
    first record of its first file with the lengths, which costs one read."""
    logger.warning("%s has no %s (shards made by another tool?): their vocab cannot be checked "
                   "against the config, only the lengths of their first record.", directory,
                   MANIFEST_NAME)
    patterns = [p for p in file_patterns if directory in _shard_directories([p])]
    try:
        first = list_shards(patterns)[0]
    except FileNotFoundError:  # Reported by the reader, when (and if) it reads them.
        return []
    try:
        _, data = next(tfrecord.read_frames(first), (None, None))
    except CorruptShardError as error:
        return [str(error).rstrip(".")]
    if data is None:
        return []
    problem = _example_problem(data, _expected_features(max_seq_length, max_predictions_per_seq,
                                                        config_prefix))
    if problem is None:
        return []
    return [f"shards in {directory} do not match the config: record 0 of {first}: {problem}"]


def _host_files(files: Sequence[str], process_index: int, process_count: int) -> tuple[list[str], list[int]]:
    """The files of process `process_index` among all the listed `files`, and their indices."""
    if len(files) < process_count:
        raise ValueError(f"{len(files)} shard files for {process_count} processes: every process "
                         "needs at least one file; write more shards (`--num-shards`).")
    indices = list(range(process_index, len(files), process_count))
    if len(files) % process_count and process_index == 0:
        # Every process still yields batches forever, but the ones with fewer files start their
        # next epoch sooner: their examples are seen more often than the others'.
        logger.warning("%d shard files over %d processes: some read %d files, others %d, so their "
                       "examples are repeated more often; a multiple of %d files keeps every "
                       "example equally frequent.", len(files), process_count,
                       len(files) // process_count + 1, len(files) // process_count, process_count)
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
    return _dataset(config, *_host_files(list_shards(config.file_patterns), process_index, process_count))


def _dataset(config: ReaderConfig, files: list[str], file_ids: list[int]) -> tf.data.Dataset:
    """`make_dataset` of this process's listed `files` (and their indices among all files)."""
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


def _manifest_counts(files: Sequence[str]) -> dict[str, int]:
    """The number of records of each of `files` that a manifest lists."""
    known: dict[str, int] = {}
    for directory in _shard_directories(files):
        manifest = read_manifest(directory) or {}
        for shard in manifest.get("shards", []):
            known[os.path.join(directory, shard["file"])] = shard["num_instances"]
    return known


def count_examples(files: Sequence[str]) -> int:
    """The number of records in `files`, from the manifests where they list them, else counted."""
    known = _manifest_counts(files)
    total = 0
    for path in files:
        if path in known:
            total += known[path]
        else:
            total += _count_records(path)
    return total


def _count_records(path: str) -> int:
    try:
        return int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda n, _: n + 1))
    except tf.errors.DataLossError as error:
        try:
            tfrecord.check_file(path)
        except CorruptShardError as found:
            raise found from None
        raise ValueError(f"TensorFlow cannot read the shard {path}: {_tf_message(error)}; "
                         f"{tfrecord.RECREATE_ADVICE}.") from error


# Records parsed at once when a shard is scanned: TensorFlow's parser is fast over many records,
# and slow per call.
_SCAN_CHUNK = 1024
_SHAPE_ADVICE = ("if all the shards are like this, they were made with other lengths: set "
                 "data.max_seq_length and data.max_predictions_per_seq to theirs; else "
                 + tfrecord.RECREATE_ADVICE)
_VOCAB_ADVICE = ("the shards were made with a larger vocab than the model's (make them with the "
                 "model's vocab, or set model.vocab_size to their vocab's size), or the shard is "
                 "damaged: " + tfrecord.RECREATE_ADVICE)


def _expected_features(max_seq_length: int, max_predictions_per_seq: int,
                       config_prefix: str = "data.") -> dict[str, tuple[str, int, str]]:
    """Feature name -> (protobuf list kind, number of values, where the number comes from)."""
    out = {}
    for name, spec in feature_spec(max_seq_length, max_predictions_per_seq).items():
        count = spec.shape[0]
        # Which config field sets the width (the two lengths may be equal: go by name).
        source = ("a label" if name == "next_sentence_labels" else
                  f"{config_prefix}max_predictions_per_seq" if name.startswith("masked_lm")
                  else f"{config_prefix}max_seq_length")
        out[name] = ("float_list" if spec.dtype == tf.float32 else "int64_list", count, source)
    return out


def _example_problem(data: bytes, expected: dict[str, tuple[str, int, str]]) -> str | None:
    """What makes the serialized record `data` unparseable with the expected features, if
    anything: not a tf.train.Example, a feature missing, of the wrong type or length."""

    try:
        features = tf.train.Example.FromString(data).features.feature
    except DecodeError:
        return f"not a tf.train.Example ({len(data)} bytes that protobuf cannot parse)"
    if not any(name in features for name in expected):
        return ("holds none of the pretraining features (" + ", ".join(expected) + "): not a "
                "BERT pretraining example")
    for name, (kind, count, source) in expected.items():
        if name not in features:
            return f"feature {name} is missing"
        has = features[name].WhichOneof("kind")
        if has != kind:
            return f"feature {name} holds a {has or 'empty value'}, expected a {kind}"
        found = len(getattr(features[name], has).value)
        if found != count:
            return f"feature {name} has {found} values, expected {count} ({source})"
    return None


def _advice_for(problem: str) -> str:
    """What to do about a record with `problem` (from `_example_problem`)."""
    return _SHAPE_ADVICE if " values, expected " in problem else tfrecord.RECREATE_ADVICE


def _tf_message(error: tf.errors.OpError) -> str:
    """TensorFlow's message without its graph-node prefix and op suffix."""
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", error.message.strip())
    return re.sub(r"\s*\[Op:\w+\].*$", "", message.splitlines()[0] if message else "")


def _error_text(error: Exception) -> str:
    return _tf_message(error) if isinstance(error, tf.errors.OpError) else str(error)


def _check_chunk(path: str, first_index: int, chunk: list[tuple[int, bytes]],
                 spec: dict, expected: dict[str, tuple[str, int, str]], vocab_size: int) -> None:
    """Raises `CorruptShardError` for the first record of `chunk` (records `first_index`, ... of
    `path`, with their byte offsets) that does not parse with `spec` or has ids outside the
    vocab (unchecked if 0)."""
    try:
        parsed = tf.io.parse_example(tf.constant([data for _, data in chunk]), spec)
    except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as chunk_error:
        # Which record, and what is wrong with it: protobuf tells the feature and its length.
        # (TensorFlow raises UnicodeDecodeError when its message quotes a record's raw bytes.)
        for i, (offset, data) in enumerate(chunk):
            problem = _example_problem(data, expected)
            if problem is None:  # Protobuf reads it; let TensorFlow say what it dislikes.
                try:
                    tf.io.parse_example(tf.constant([data]), spec)
                except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as error:
                    problem = f"TensorFlow cannot parse it: {_error_text(error)}"
            if problem is not None:
                raise CorruptShardError(path, problem, record=first_index + i, offset=offset,
                                        advice=_advice_for(problem)) from None
        # Unreachable unless TensorFlow fails on records that it parses one at a time.
        raise CorruptShardError(path, f"TensorFlow cannot parse records {first_index} to "
                                f"{first_index + len(chunk) - 1}: {_error_text(chunk_error)}"
                                ) from None
    if not vocab_size:
        return
    ids = {name: parsed[name].numpy() for name in ("input_ids", "masked_lm_ids")}
    bad = {name: (v < 0) | (v >= vocab_size) for name, v in ids.items()}
    rows = np.flatnonzero(np.logical_or(*(b.any(axis=1) for b in bad.values())))
    if not len(rows):
        return
    row = int(rows[0])
    name = next(n for n in ids if bad[n][row].any())
    column = int(np.argmax(bad[name][row]))
    raise CorruptShardError(
        path, f"{name}[{column}] is {ids[name][row, column]}, outside the model's vocab of "
        f"{vocab_size} tokens (model.vocab_size)", record=first_index + row,
        offset=chunk[row][0], advice=_VOCAB_ADVICE)


def check_shard(path: str, *, max_seq_length: int, max_predictions_per_seq: int,
                vocab_size: int = 0) -> int:
    """Reads every record of the shard file `path` and returns their number; raises
    `CorruptShardError` (file, record index, byte offset, what is wrong) at the first record
    whose framing is damaged (CRCs, truncation), that is not a pretraining example of these
    lengths, or whose `input_ids` or `masked_lm_ids` leave [0, vocab_size) (unchecked if 0)."""
    spec = feature_spec(max_seq_length, max_predictions_per_seq)
    expected = _expected_features(max_seq_length, max_predictions_per_seq)
    chunk: list[tuple[int, bytes]] = []
    count = 0
    for frame in tfrecord.read_frames(path):
        chunk.append(frame)
        if len(chunk) == _SCAN_CHUNK:
            _check_chunk(path, count, chunk, spec, expected, vocab_size)
            count, chunk = count + len(chunk), []
    if chunk:
        _check_chunk(path, count, chunk, spec, expected, vocab_size)
    return count + len(chunk)


def _find_bad_shard(files: Sequence[str], config: ReaderConfig, why: str,
                    hint: str = "") -> CorruptShardError | None:
    """The error of the first bad record in `files` (those named in `hint`, TensorFlow's message,
    first), or None if every record reads, parses and is in the vocab. `why` says, in the log,
    why the files are being read."""
    # Python stable sort: the files named in the hint first, the rest in their order.
    ordered = sorted(files, key=lambda f: f not in hint)
    logger.warning("%s; checking this process's %d shard files to find the bad record.", why,
                   len(ordered))
    for path in ordered:
        try:
            check_shard(path, max_seq_length=config.max_seq_length,
                        max_predictions_per_seq=config.max_predictions_per_seq,
                        vocab_size=config.vocab_size)
        except CorruptShardError as error:
            return error
    return None


def _out_of_vocab(batch: dict[str, np.ndarray], vocab_size: int) -> str | None:
    """Which of the batch's id features leaves [0, vocab_size), if any. A few microseconds a
    batch: one max per feature, negative ids included by reading the int32s as unsigned."""
    for name in ("input_ids", "masked_lm_ids"):
        ids = batch[name]
        if ids.size and int(ids.view(np.dtype(f"u{ids.dtype.itemsize}")).max()) >= vocab_size:
            return name
    return None


class DataIterator:
    """Numpy batches with the original feature names, for one process; checkpointable.

    A finite pass (`repeat=False`) yields the same number of batches on every process (that of
    the process with the most examples), padded with examples of weight 0 in `example_weights`.

    A shard that cannot be read (damaged or truncated records, wrong feature shapes) or that
    holds token ids outside [0, config.vocab_size) raises `CorruptShardError`, naming the file
    and the record, from `__next__`.
    """

    def __init__(self, config: ReaderConfig, process_index: int = 0, process_count: int = 1):
        self.config = config
        every_file = list_shards(config.file_patterns)  # listed once: on a bucket, a request
        # This process's files are kept to find a bad record in: the error TensorFlow raises
        # does not name the file.
        self._files, file_ids = _host_files(every_file, process_index, process_count)
        if config.repeat:
            _check_not_all_empty(self._files, every_file, process_index, process_count)
        self._dataset = _dataset(config, self._files, file_ids)
        self._iterator = iter(self._dataset)
        self._num_batches = None
        if not config.repeat:
            counts = [count_examples(_host_files(every_file, i, process_count)[0])
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
            batch = self._next_batch()
        except StopIteration:
            if self._num_batches is None:
                raise
            batch = None
        return self._finish(batch)

    def _next_batch(self) -> dict[str, np.ndarray]:
        """The next batch as read from the shards, or `CorruptShardError` naming the bad one."""
        config = self.config
        try:
            element = next(self._iterator)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
                UnicodeDecodeError) as error:
            # A bad CRC, a truncated file or a record of other shapes; TensorFlow's message
            # ("corrupted record at 795", "Key: input_ids, Index: 3") names no file. (A record
            # that is not an Example fails with a UnicodeDecodeError instead when TensorFlow
            # quotes its bytes in the message and cannot decode them.)
            message = _error_text(error)
            hint = error.message if isinstance(error, tf.errors.OpError) else ""
            found = _find_bad_shard(self._files, config, f"TensorFlow failed: {message}", hint)
            if found is not None:
                raise found from None
            raise ValueError(f"TensorFlow failed reading this process's {len(self._files)} "
                             f"shard files ({_describe_files(self._files)}): {message}; no bad "
                             "record was found in them when checked again (were they changed "
                             "while being read?).") from error
        batch = {k: v.numpy() for k, v in element.items()}
        if config.vocab_size and (name := _out_of_vocab(batch, config.vocab_size)):
            found = _find_bad_shard(self._files, config, f"a batch holds {name} outside the "
                                    f"model's vocab of {config.vocab_size} tokens")
            if found is not None:
                raise found
            raise ValueError(f"a batch holds {name} outside the model's vocab of "
                             f"{config.vocab_size} tokens (model.vocab_size), but no record of "
                             f"this process's shards ({_describe_files(self._files)}) does when "
                             "checked again (were they changed while being read?).")
        return batch

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


def _check_not_all_empty(files: Sequence[str], every_file: Sequence[str], process_index: int,
                         process_count: int) -> None:
    """Raises a ValueError if the manifests say that this process's files hold no example: an
    endless stream of them would wait forever for its first batch."""
    known = _manifest_counts(every_file)
    if all(path in known for path in files) and not any(known[path] for path in files):
        raise ValueError(
            f"process {process_index} of {process_count} reads {len(files)} shard file(s) that "
            f"hold no example ({_describe_files(files)}, by their manifest): it would wait forever "
            f"for its first batch. The {len(every_file)} files hold "
            f"{sum(known.get(path, 0) for path in every_file):,} "
            "examples in all; make the shards again with fewer --num-shards (or more text), or "
            "run fewer processes.")


def _describe_files(files: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(files[:most])
    return shown + (f" and {len(files) - most} more" if len(files) > most else "")


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
