"""Work directories, vocabs and shards on remote file systems (gs:// on a pod). Tested through
TensorFlow's in-memory `ram://` file system, which goes through the same `tf.io.gfile` calls."""

from __future__ import annotations

import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from input_pipeline import remote_files  # noqa: E402


def copy_tree(local: str, remote: str) -> None:
    tf.io.gfile.makedirs(remote)
    for name in os.listdir(local):
        tf.io.gfile.copy(os.path.join(local, name), f"{remote}/{name}", overwrite=True)


def test_shards_vocab_and_manifest_read_from_a_remote_directory(tiny_corpus):
    from input_pipeline.reading.reader import DataIterator, ReaderConfig, check_shards_match, list_shards
    from input_pipeline.shards.manifest import file_sha256, read_manifest
    from input_pipeline.tokenizers.loading import load_tokenizer

    remote = "ram://bucket/shards"
    copy_tree(str(tiny_corpus["train"]), remote)
    tf.io.gfile.copy(str(tiny_corpus["vocab"]), "ram://bucket/vocab.txt", overwrite=True)

    assert [os.path.basename(f) for f in list_shards([remote])] == sorted(
        n for n in os.listdir(tiny_corpus["train"]) if n.endswith(".tfrecord"))
    assert read_manifest(remote) == read_manifest(str(tiny_corpus["train"]))
    assert file_sha256("ram://bucket/vocab.txt") == file_sha256(tiny_corpus["vocab"])
    assert load_tokenizer("ram://bucket/vocab.txt").vocab == load_tokenizer(tiny_corpus["vocab"]).vocab
    manifest = read_manifest(remote)
    check_shards_match([remote], max_seq_length=64, max_predictions_per_seq=10,
                       vocab_size=manifest["vocab_size"], vocab_file="ram://bucket/vocab.txt")
    with pytest.raises(ValueError, match="another vocab"):
        tf.io.gfile.GFile("ram://bucket/other.txt", "w").write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx\n")
        check_shards_match([remote], max_seq_length=64, max_predictions_per_seq=10,
                           vocab_size=manifest["vocab_size"], vocab_file="ram://bucket/other.txt")

    config = ReaderConfig((remote,), batch_size=8, max_seq_length=64, max_predictions_per_seq=10,
                          repeat=False)
    local = ReaderConfig((str(tiny_corpus["train"]),), batch_size=8, max_seq_length=64,
                         max_predictions_per_seq=10, repeat=False)
    for a, b in zip(DataIterator(config), DataIterator(local)):
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])


def test_atomic_writes_and_checkpoint_directory_on_remote_paths():
    from bert_jax.state.checkpointer import checkpoint_directory
    from input_pipeline.shards.tfrecord import write_atomically

    write_atomically("ram://bucket/run/config.json", [b"{}", b"\n"])
    assert tf.io.gfile.listdir("ram://bucket/run") == ["config.json"]  # no temporary left
    with remote_files.open_file("ram://bucket/run/config.json") as f:
        assert f.read() == "{}\n"
    # A gs:// work dir is not turned into a local path (os.path.abspath would make "./gs:/...").
    assert checkpoint_directory("gs://bucket/run") == "gs://bucket/run/checkpoints"
    assert checkpoint_directory("run") == os.path.join(os.getcwd(), "run", "checkpoints")
