"""The tf.data reader of pretraining shards (`input_pipeline.reading.reader`).

The shards are synthetic: four files of 20 to 30 examples in the original format, each example
carrying its own serial number k (input_ids[1] = masked_lm_ids[0] = 1000 + k), so which examples
a reader returned, and in what order, can be checked exactly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from input_pipeline.reading.reader import ReaderConfig, numpy_batches  # noqa: E402
from input_pipeline.shards.features import serialize_example  # noqa: E402

MAX_SEQ_LENGTH, MAX_PREDICTIONS = 16, 4
FILE_SIZES = [25, 30, 20, 27]
TOTAL = sum(FILE_SIZES)  # 102
BATCH = 8


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """`part-{i}.tfrecord` for i in 0..3; example k is in the file that FILE_SIZES puts it in."""
    directory = tmp_path_factory.mktemp("shards")
    k = 0
    for i, size in enumerate(FILE_SIZES):
        with tf.io.TFRecordWriter(str(directory / f"part-{i}.tfrecord")) as writer:
            for _ in range(size):
                writer.write(serialize_example(
                    [101, 1000 + k, 102, 7, 8, 102], [0, 0, 0, 1, 1, 1], [1], [1000 + k],
                    k % 2, MAX_SEQ_LENGTH, MAX_PREDICTIONS))
                k += 1
    (directory / "notes.txt").write_text("not a shard")
    return directory


def file_of(k: int) -> int:
    return int(np.searchsorted(np.cumsum(FILE_SIZES), k, side="right"))


def config(shard_dir, **kwargs) -> ReaderConfig:
    defaults = dict(file_patterns=(str(shard_dir),), batch_size=BATCH, max_seq_length=MAX_SEQ_LENGTH,
                    max_predictions_per_seq=MAX_PREDICTIONS, seed=0, shuffle_buffer=50, repeat=True)
    return ReaderConfig(**{**defaults, **kwargs})


def take(iterator, n: int) -> list[dict]:
    return [next(iterator) for _ in range(n)]


def serials(batches) -> list[int]:
    """The serial numbers of the real examples (padding of a finite pass has weight 0)."""
    return [int(k) - 1000 for b in batches
            for k, w in zip(b["input_ids"][:, 1], b.get("example_weights", np.ones(len(b["input_ids"]))))
            if w]


def test_batch_shapes_dtypes_and_values(shard_dir):
    batches = take(numpy_batches(config(shard_dir)), 30)  # more than two epochs
    for b in batches:
        assert set(b) == {"input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                          "masked_lm_ids", "masked_lm_weights", "next_sentence_labels"}
        for name in ("input_ids", "input_mask", "segment_ids"):
            assert b[name].shape == (BATCH, MAX_SEQ_LENGTH) and b[name].dtype == np.int32
        for name in ("masked_lm_positions", "masked_lm_ids"):
            assert b[name].shape == (BATCH, MAX_PREDICTIONS) and b[name].dtype == np.int32
        assert b["masked_lm_weights"].shape == (BATCH, MAX_PREDICTIONS)
        assert b["masked_lm_weights"].dtype == np.float32
        assert b["next_sentence_labels"].shape == (BATCH,)
        assert b["next_sentence_labels"].dtype == np.int32
        k = b["input_ids"][:, 1] - 1000
        np.testing.assert_array_equal(b["masked_lm_ids"][:, 0], b["input_ids"][:, 1])
        np.testing.assert_array_equal(b["next_sentence_labels"], k % 2)
        np.testing.assert_array_equal(b["input_mask"].sum(1), 6)
        np.testing.assert_array_equal(b["masked_lm_weights"], [[1, 0, 0, 0]] * BATCH)
    # Repeated and shuffled: every example comes back, in no fixed order.
    ks = serials(batches)
    assert set(ks) == set(range(TOTAL))
    # Examples are shuffled, not only files: within a file they come out of order.
    for f in range(len(FILE_SIZES)):
        from_file = [k for k in ks[:TOTAL] if file_of(k) == f]
        assert from_file != sorted(from_file)


def test_one_epoch_reads_every_example_once(shard_dir):
    batches = list(numpy_batches(config(shard_dir, repeat=False)))
    assert sorted(serials(batches)) == list(range(TOTAL))
    # Full batches; the last one padded with zeros of weight 0.
    assert [len(b["input_ids"]) for b in batches] == [BATCH] * -(-TOTAL // BATCH)
    weights = np.concatenate([b["example_weights"] for b in batches])
    assert weights.sum() == TOTAL and not weights[TOTAL:].any()
    assert not batches[-1]["input_ids"][TOTAL % BATCH:].any()


@pytest.mark.parametrize("process_count", [2, 4])
def test_processes_read_disjoint_files_covering_everything(shard_dir, process_count):
    seen = []
    num_batches = set()
    for index in range(process_count):
        batches = list(numpy_batches(config(shard_dir, repeat=False), index, process_count))
        # Every process yields as many batches as the one with the most examples.
        num_batches.add(len(batches))
        ks = serials(batches)
        assert len(ks) == len(set(ks))
        # Whole files: those at index, index + process_count, ... of the sorted file list.
        assert {file_of(k) for k in ks} == set(range(index, len(FILE_SIZES), process_count))
        assert len(ks) == sum(FILE_SIZES[index::process_count])
        seen.append(set(ks))
    assert set().union(*seen) == set(range(TOTAL))
    assert sum(map(len, seen)) == TOTAL  # pairwise disjoint
    most = max(sum(FILE_SIZES[i::process_count]) for i in range(process_count))
    assert num_batches == {-(-most // BATCH)}


def test_files_that_do_not_divide_among_processes_are_reported(shard_dir, caplog):
    """With 4 files over 3 processes one process reads 2 files and repeats its examples half as
    often as the others theirs: said once (by process 0), with the cure."""
    assert len(FILE_SIZES) == 4
    with caplog.at_level(logging.WARNING, logger="input_pipeline.reading.reader"):
        for index in range(3):
            next(iter(numpy_batches(config(shard_dir), index, 3)))
    warnings = [r.getMessage() for r in caplog.records if "shard files over" in r.getMessage()]
    assert warnings == ["4 shard files over 3 processes: some read 2 files, others 1, so their "
                        "examples are repeated more often; a multiple of 3 files keeps every "
                        "example equally frequent."]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="input_pipeline.reading.reader"):
        next(iter(numpy_batches(config(shard_dir), 0, 2)))
    assert not [r for r in caplog.records if "shard files over" in r.getMessage()]


def test_repeating_processes_stay_on_their_files(shard_dir):
    for index in range(2):
        ks = serials(take(numpy_batches(config(shard_dir, seed=index), index, 2), 25))
        assert {file_of(k) for k in ks} == {index, index + 2}


def test_same_seed_same_batches_other_seed_other_order(shard_dir):
    first = take(numpy_batches(config(shard_dir, seed=3)), 30)
    again = take(numpy_batches(config(shard_dir, seed=3)), 30)
    for a, b in zip(first, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    other = serials(take(numpy_batches(config(shard_dir, seed=4)), 30))
    assert other != serials(first)
    assert other[:BATCH * 4] != serials(first)[:BATCH * 4]


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_restored_iterator_continues_the_same_stream(shard_dir, tmp_path, process_count):
    """An iterator saved after n batches and restored into a fresh reader yields exactly what the
    uninterrupted reader yields next: at ten break points, across epoch boundaries (an epoch of a
    process is 3 to 13 batches here), for every process of 1, 2 and 4."""
    for index in range(process_count):
        reference = serials(take(numpy_batches(config(shard_dir, seed=5), index, process_count), 40))
        reader = numpy_batches(config(shard_dir, seed=5), index, process_count)
        consumed = []
        for n in (1, 2, 3, 5, 8, 12, 13, 17, 26, 31):
            consumed += serials(take(reader, n - len(consumed) // BATCH))
            reader.save(str(tmp_path / f"{process_count}-{index}-{n}" / "iterator"))
            resumed = numpy_batches(config(shard_dir, seed=5), index, process_count)
            resumed.restore(str(tmp_path / f"{process_count}-{index}-{n}" / "iterator"))
            assert serials(take(resumed, 9)) == reference[n * BATCH:(n + 9) * BATCH], (index, n)
        assert consumed == reference[:31 * BATCH]


def test_restoring_into_another_config_fails(shard_dir, tmp_path):
    reader = numpy_batches(config(shard_dir, seed=5))
    take(reader, 3)
    reader.save(str(tmp_path / "iterator"))
    other = numpy_batches(config(shard_dir, seed=5, file_patterns=(str(shard_dir / "part-1.tfrecord"),)))
    with pytest.raises(Exception):
        other.restore(str(tmp_path / "iterator"))


def test_file_patterns(shard_dir):
    one = config(shard_dir, file_patterns=(str(shard_dir / "part-[02].tfrecord"),
                                           str(shard_dir / "part-3.tfrecord")), repeat=False)
    assert {file_of(k) for k in serials(numpy_batches(one))} == {0, 2, 3}


def test_errors(shard_dir, tmp_path):
    with pytest.raises(ValueError, match="4 shard files for 5 processes"):
        numpy_batches(config(shard_dir), 0, 5)
    pattern = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError, match=re.escape(repr(pattern))):
        numpy_batches(config(shard_dir, file_patterns=(str(shard_dir), pattern)))
    with pytest.raises(FileNotFoundError, match="no shard files"):
        numpy_batches(config(tmp_path))  # a directory without shards


@pytest.fixture
def manifest_dir(shard_dir, tmp_path):
    """The four files, and a manifest that lists two of them: the other two stand for shards an
    earlier create-data run left in the directory."""
    for i in range(4):
        shutil.copy(shard_dir / f"part-{i}.tfrecord", tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [
        {"file": f"part-{i}.tfrecord", "num_instances": FILE_SIZES[i]} for i in (1, 3)]}))
    return tmp_path


@pytest.mark.parametrize("pattern", ["", "*.tfrecord", "part-[0-2].tfrecord"])
def test_only_the_files_a_manifest_lists_are_read_and_the_rest_named(manifest_dir, pattern, caplog):
    files = (str(manifest_dir / pattern) if pattern else str(manifest_dir),)
    with caplog.at_level(logging.WARNING, logger="input_pipeline.reading.reader"):
        read = serials(numpy_batches(config(manifest_dir, file_patterns=files, repeat=False)))
    listed = (1, 3) if pattern != "part-[0-2].tfrecord" else (1,)
    assert sorted(read) == [k for k in range(TOTAL) if file_of(k) in listed]
    [warning] = [r.getMessage() for r in caplog.records if "not listed" in r.getMessage()
                 or "other *.tfrecord" in r.getMessage()]
    assert "part-0.tfrecord" in warning and "part-2.tfrecord" in warning
    assert "part-1.tfrecord" not in warning


def test_a_directory_being_written_or_missing_a_listed_file_is_refused(manifest_dir):
    (manifest_dir / ".create-data-somehost-123").mkdir()
    assert len(serials(numpy_batches(config(manifest_dir, repeat=False)))) == 57  # manifest: read
    os.remove(manifest_dir / "part-3.tfrecord")
    with pytest.raises(FileNotFoundError, match=r"manifest.json lists 1 shard file\(s\) that are not "
                                                r"in .* \(part-3.tfrecord\): the directory is incomplete"):
        numpy_batches(config(manifest_dir))
    os.remove(manifest_dir / "manifest.json")  # No manifest and a staging directory: being written.
    with pytest.raises(ValueError, match="is being written by create-data"):
        numpy_batches(config(manifest_dir))


def test_a_process_whose_shards_are_all_empty_is_refused_not_left_waiting(shard_dir, tmp_path):
    """More shards than instances (create-data warns) leave empty files; an endless stream of a
    process that reads only those waited forever for its first batch."""
    shutil.copy(shard_dir / "part-1.tfrecord", tmp_path)
    (tmp_path / "part-4.tfrecord").write_bytes(b"")
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [
        {"file": "part-1.tfrecord", "num_instances": 30}, {"file": "part-4.tfrecord", "num_instances": 0}]}))
    assert len(take(numpy_batches(config(tmp_path), 0, 2), 5)) == 5
    with pytest.raises(ValueError, match=r"process 1 of 2 reads 1 shard file\(s\) that hold no example "
                                         r"\(.*part-4.tfrecord, by their manifest\): it would wait "
                                         r"forever .* The 2 files hold 30 examples"):
        numpy_batches(config(tmp_path), 1, 2)
    # A finite pass is padded to the other process's batches instead.
    assert not serials(numpy_batches(config(tmp_path, repeat=False), 1, 2))
