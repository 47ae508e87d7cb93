"""Damaged shards are reported by file and record (`input_pipeline.reading.reader`, `.tfrecord`).

Real shards are made with the project's own `create_pretraining_data` (a small vocab and corpus
written here), copied, and damaged the ways disks, copies and other tools damage them: a flipped
byte in a record's data or in its length field, a file cut short inside a record, a record of
other shapes, token ids beyond the vocab. Reading them through `DataIterator` must raise a
`CorruptShardError` that names the file and the record, never a bare `tf.errors.*`. Shards whose
manifest disagrees with the config are refused before reading, naming the differing fields.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import struct
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from input_pipeline.reading.reader import CorruptShardError, DataIterator, ReaderConfig, check_shard, check_shards_match  # noqa: E402
from input_pipeline.shards.features import feature_spec, serialize_examples  # noqa: E402
from input_pipeline.shards.manifest import MANIFEST_NAME, read_manifest  # noqa: E402
from input_pipeline.shards.tfrecord import check_file, frame, iter_records  # noqa: E402

MAX_SEQ_LENGTH, MAX_PREDICTIONS = 32, 5
NUM_SHARDS = 3
BAD_SHARD, BAD_RECORD = 1, 4  # The record damaged in each test.
WORDS = [f"{a}{b}" for a in "bcdfghjklm" for b in ("at", "en", "ip", "og", "us", "ark", "ill",
                                                     "ond", "ust", "ent")]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_SIZE = len(SPECIALS) + len(WORDS) + 1  # and "."


@pytest.fixture(scope="module")
def created(tmp_path_factory) -> dict:
    """Shards (and manifest) of a small synthetic corpus, made by `create_pretraining_data`."""
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data

    root = tmp_path_factory.mktemp("corrupt")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS + ["."]) + "\n", encoding="utf-8")
    rng = random.Random(0)
    documents = ["\n".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 12))) + " ."
                           for _ in range(rng.randint(3, 8)))
                 for _ in range(60)]
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    config = CreationConfig(max_seq_length=MAX_SEQ_LENGTH, max_predictions_per_seq=MAX_PREDICTIONS,
                            dupe_factor=2, num_shards=NUM_SHARDS)
    manifest = create_pretraining_data([str(corpus)], vocab, root / "shards", config)
    assert manifest["vocab_size"] == VOCAB_SIZE
    assert min(s["num_instances"] for s in manifest["shards"]) > 2 * BAD_RECORD
    return {"dir": root / "shards", "vocab": vocab, "manifest": manifest}


@pytest.fixture
def shards(created, tmp_path) -> Path:
    """A fresh copy of the shards to damage."""
    return Path(shutil.copytree(created["dir"], tmp_path / "shards"))


def shard_path(directory: Path, shard: int = BAD_SHARD) -> Path:
    return sorted(directory.glob("*.tfrecord"))[shard]


def frame_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, data length) of every record, read here from the framing without any CRC check
    (independently of the code under test)."""
    blob = path.read_bytes()
    out, offset = [], 0
    while offset < len(blob):
        (length,) = struct.unpack_from("<Q", blob, offset)
        out.append((offset, length))
        offset += length + 16
    assert offset == len(blob)
    return out


def flip_byte(path: Path, position: int) -> None:
    blob = bytearray(path.read_bytes())
    blob[position] ^= 0x5A
    path.write_bytes(bytes(blob))


def reader_config(directory: Path, **kwargs) -> ReaderConfig:
    defaults = dict(file_patterns=(str(directory),), batch_size=8, max_seq_length=MAX_SEQ_LENGTH,
                    max_predictions_per_seq=MAX_PREDICTIONS, seed=0, shuffle_buffer=64,
                    repeat=False, vocab_size=VOCAB_SIZE)
    return ReaderConfig(**{**defaults, **kwargs})


def read_everything(config: ReaderConfig) -> int:
    """Iterates the reader through all of the shards (two epochs if it repeats)."""
    iterator = DataIterator(config)
    if not config.repeat:
        return sum(1 for _ in iterator)
    for n in range(2 * 400 // config.batch_size):
        next(iterator)
    return n


def assert_names_the_record(error: pytest.ExceptionInfo, path: Path, record: int | None,
                            *phrases: str) -> None:
    """The error is ours, not TensorFlow's, and says which file and record and what is wrong."""
    assert error.type is CorruptShardError and not isinstance(error.value, tf.errors.OpError)
    assert isinstance(error.value, ValueError)
    message = str(error.value)
    assert error.value.path == str(path) and path.name in message
    if record is not None:
        assert error.value.record == record and f"record {record}" in message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    assert "bert-jax create-data" in message  # and what to do about it


def rewrite_record(path: Path, index: int, **changes) -> None:
    """Replaces record `index` of `path` by the same example with `changes` (feature -> function
    of its [1, width] array), serialized by the project's own `serialize_examples`."""
    records = [r for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]
    parsed = tf.io.parse_example(records[index:index + 1],
                                 feature_spec(MAX_SEQ_LENGTH, MAX_PREDICTIONS))
    arrays = {name: value.numpy() for name, value in parsed.items()}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    records[index] = serialize_examples(**arrays)[0]
    path.write_bytes(b"".join(frame(r) for r in records))


def test_undamaged_shards_read_and_check_clean(created):
    """The checks raise nothing on good shards: every record passes `check_shard` and
    `check_file`, and a vocab-checked pass and a repeating stream read without error."""
    paths = sorted(created["dir"].glob("*.tfrecord"))
    for path, entry in zip(paths, created["manifest"]["shards"]):
        assert check_file(path) == entry["num_instances"]
        assert check_shard(str(path), max_seq_length=MAX_SEQ_LENGTH,
                           max_predictions_per_seq=MAX_PREDICTIONS,
                           vocab_size=VOCAB_SIZE) == entry["num_instances"]
        tf_records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
        assert list(iter_records(path)) == tf_records
    total = created["manifest"]["num_instances"]
    assert read_everything(reader_config(created["dir"])) == -(-total // 8)
    read_everything(reader_config(created["dir"], repeat=True))
    check_shards_match([str(created["dir"])], max_seq_length=MAX_SEQ_LENGTH,
                       max_predictions_per_seq=MAX_PREDICTIONS, vocab_size=VOCAB_SIZE,
                       vocab_file=str(created["vocab"]))


@pytest.mark.parametrize("repeat", [False, True])
def test_bad_data_crc_names_the_file_and_record(shards, repeat):
    path = shard_path(shards)
    offset, length = frame_offsets(path)[BAD_RECORD]
    flip_byte(path, offset + 12 + length // 2)
    with pytest.raises(CorruptShardError) as error:
        read_everything(reader_config(shards, repeat=repeat))
    assert_names_the_record(error, path, BAD_RECORD, "bad data CRC", f"byte offset {offset}")


def test_bad_length_crc_names_the_file_and_record(shards):
    path = shard_path(shards)
    offset, _ = frame_offsets(path)[BAD_RECORD]
    flip_byte(path, offset + 1)  # The second byte of the little-endian length.
    with pytest.raises(CorruptShardError) as error:
        read_everything(reader_config(shards))
    assert_names_the_record(error, path, BAD_RECORD, "bad length CRC", f"byte offset {offset}")


@pytest.mark.parametrize("into", ["data", "crc"])
def test_file_truncated_inside_a_record_names_the_file_and_record(shards, into):
    path = shard_path(shards)
    offset, length = frame_offsets(path)[BAD_RECORD]
    cut = offset + 12 + (length // 3 if into == "data" else length + 2)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(CorruptShardError) as error:
        read_everything(reader_config(shards))
    assert_names_the_record(error, path, BAD_RECORD, "truncated record")


def test_truncation_inside_a_header_is_found_by_check_file(shards):
    """TensorFlow takes a file that ends inside a record's 12-byte header for complete and drops
    the record; `check_file` reports it."""
    path = shard_path(shards)
    offset, _ = frame_offsets(path)[BAD_RECORD]
    path.write_bytes(path.read_bytes()[:offset + 5])
    assert sum(1 for _ in tf.data.TFRecordDataset(str(path))) == BAD_RECORD
    with pytest.raises(CorruptShardError) as error:
        check_file(path)
    assert_names_the_record(error, path, BAD_RECORD, "truncated record", "header")


def test_record_of_other_shapes_names_the_file_record_and_feature(shards):
    path = shard_path(shards)
    rewrite_record(path, BAD_RECORD, input_ids=lambda a: a[:, :20])
    with pytest.raises(CorruptShardError) as error:
        read_everything(reader_config(shards))
    assert_names_the_record(error, path, BAD_RECORD,
                            f"input_ids has 20 values, expected {MAX_SEQ_LENGTH}",
                            "data.max_seq_length")


def test_record_that_is_not_an_example_names_the_file_and_record(shards):
    path = shard_path(shards)
    records = list(iter_records(path))
    records[BAD_RECORD] = b"\xff\xff\xff not a tf.train.Example"
    path.write_bytes(b"".join(frame(r) for r in records))
    with pytest.raises(CorruptShardError) as error:
        read_everything(reader_config(shards))
    assert_names_the_record(error, path, BAD_RECORD, "not a tf.train.Example")


def test_shards_of_another_length_without_manifest_are_refused_up_front(shards):
    """Shards made elsewhere (no manifest) are read with a warning; if their first record has
    other lengths than the config's, `check_shards_match` refuses them before training."""
    (shards / MANIFEST_NAME).unlink()
    kwargs = dict(max_predictions_per_seq=MAX_PREDICTIONS, vocab_size=VOCAB_SIZE)
    check_shards_match([str(shards)], max_seq_length=MAX_SEQ_LENGTH, **kwargs)
    with pytest.raises(ValueError) as error:
        check_shards_match([str(shards)], max_seq_length=64, **kwargs)
    message = str(error.value)
    assert str(shards) in message and shard_path(shards, 0).name in message
    assert f"input_ids has {MAX_SEQ_LENGTH} values, expected 64 (data.max_seq_length)" in message


@pytest.mark.parametrize("feature,value", [("input_ids", VOCAB_SIZE), ("input_ids", 30522),
                                           ("masked_lm_ids", VOCAB_SIZE + 7), ("input_ids", -3)])
def test_ids_outside_the_vocab_name_the_file_and_record(shards, feature, value):
    path = shard_path(shards)

    def put(a):
        a = a.copy()
        a[0, 2] = value
        return a

    rewrite_record(path, BAD_RECORD, **{feature: put})
    with pytest.raises(CorruptShardError) as error:
        read_everything(reader_config(shards))
    assert_names_the_record(error, path, BAD_RECORD, f"{feature}[2] is {value}",
                            f"vocab of {VOCAB_SIZE} tokens")
    # Unchecked without a vocab size (the default), as before.
    read_everything(reader_config(shards, vocab_size=0))


def test_counting_a_damaged_shard_without_manifest_names_it(shards):
    """A finite pass counts the records of shards without a manifest; a damaged one is named."""
    (shards / MANIFEST_NAME).unlink()
    path = shard_path(shards)
    offset, length = frame_offsets(path)[BAD_RECORD]
    flip_byte(path, offset + 12 + length - 1)
    with pytest.raises(CorruptShardError) as error:
        DataIterator(reader_config(shards))
    assert_names_the_record(error, path, BAD_RECORD, "bad data CRC")


def test_mismatched_manifest_is_refused_naming_directory_and_fields(created, tmp_path):
    directory = str(created["dir"])
    other_vocab = tmp_path / "other_vocab.txt"
    other_vocab.write_text(created["vocab"].read_text(encoding="utf-8") + "extra\n",
                           encoding="utf-8")
    with pytest.raises(ValueError) as error:
        check_shards_match([directory], max_seq_length=128, max_predictions_per_seq=20,
                           vocab_size=VOCAB_SIZE - 1, vocab_file=str(other_vocab),
                           dynamic_masking=True, do_lower_case=False)
    message = str(error.value)
    assert f"shards in {directory} do not match the config" in message
    assert os.path.join(directory, MANIFEST_NAME) in message
    assert f"max_seq_length is {MAX_SEQ_LENGTH} in" in message
    assert "but 128 in the config" in message
    assert f"max_predictions_per_seq is {MAX_PREDICTIONS} in" in message
    assert f"vocab_size is {VOCAB_SIZE} in" in message
    assert f"vocab has {VOCAB_SIZE} tokens but model.vocab_size={VOCAB_SIZE - 1}" in message
    assert "do_lower_case is True in" in message and "data.do_lower_case=False" in message
    assert "vocab_sha256" in message and "made with another vocab" in message
    assert "masking is 'static'" in message and "data.dynamic_masking=False" in message

    # One field at a time, and the phase-2 names of the lengths.
    with pytest.raises(ValueError, match=r"\(data\.phase2_max_predictions_per_seq\)") as error:
        check_shards_match([directory], max_seq_length=MAX_SEQ_LENGTH, max_predictions_per_seq=6,
                           vocab_size=VOCAB_SIZE, config_prefix="data.phase2_")
    assert "max_seq_length" not in str(error.value) and "vocab" not in str(error.value)
    with pytest.raises(ValueError, match="vocab_sha256") as error:
        check_shards_match([f"{directory}/*.tfrecord"], max_seq_length=MAX_SEQ_LENGTH,
                           max_predictions_per_seq=MAX_PREDICTIONS, vocab_size=VOCAB_SIZE + 100,
                           vocab_file=str(other_vocab))
    assert directory in str(error.value)
    # A larger model vocab than the shards' is fine (e.g. padded to a multiple of 128).
    check_shards_match([directory], max_seq_length=MAX_SEQ_LENGTH,
                       max_predictions_per_seq=MAX_PREDICTIONS, vocab_size=VOCAB_SIZE + 100,
                       vocab_file=str(created["vocab"]))


def test_shards_without_manifest_are_read_with_a_warning(shards, caplog):
    (shards / MANIFEST_NAME).unlink()
    assert read_manifest(shards) is None
    with caplog.at_level(logging.WARNING, logger="input_pipeline.reading.reader"):
        check_shards_match([str(shards)], max_seq_length=MAX_SEQ_LENGTH,
                           max_predictions_per_seq=MAX_PREDICTIONS, vocab_size=VOCAB_SIZE,
                           vocab_file="/nonexistent/vocab.txt")
    assert any(MANIFEST_NAME in r.getMessage() and str(shards) in r.getMessage()
               for r in caplog.records)
    batches = list(DataIterator(reader_config(shards)))
    assert sum(int(b["example_weights"].sum()) for b in batches) == sum(
        check_file(p) for p in shards.glob("*.tfrecord"))


def test_corrupt_shard_error_survives_pickling():
    """Errors cross process boundaries (multiprocessing, Beam) with their fields."""
    import pickle

    error = CorruptShardError("a/b.tfrecord", "bad data CRC", record=3, offset=99)
    again = pickle.loads(pickle.dumps(error))
    assert (again.path, again.record, again.offset) == ("a/b.tfrecord", 3, 99)
    assert again.problem == "bad data CRC" and str(again) == str(error)
