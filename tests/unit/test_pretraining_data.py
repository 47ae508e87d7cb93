"""End to end: raw text in BERT's format to TFRecord shards (`create_pretraining_data`), read back
with Google's original parsing schema (`tests/support/original_records.py`: written out literally,
not imported), on a small real corpus (standard-library docstrings) and the real uncased vocab.
The comparison with Google's own script is in tests/integration/test_pretraining_data_google.py.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import os
import re

import numpy as np
import pytest
from conftest import stdlib_docstring_lines

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

from input_pipeline.creation.create_pretraining_data import BlockProcessor, CreationConfig, create_pretraining_data  # noqa: E402
from input_pipeline.reading.reader import ReaderConfig, numpy_batches  # noqa: E402
from input_pipeline.shards.features import serialize_example  # noqa: E402
from input_pipeline.shards.tfrecord import check_file, write_atomically  # noqa: E402
from input_pipeline.text.stdlib_corpus import stdlib_dir, write_stdlib_corpus  # noqa: E402
from input_pipeline.tokenizers.wordpiece import BertTokenizer  # noqa: E402
from tests.support.original_records import (  # noqa: E402
    MAX_PREDICTIONS,
    MAX_SEQ_LENGTH,
    parse_records,
    raw_records,
)

NUM_SHARDS = 3
CONFIG = CreationConfig(max_seq_length=MAX_SEQ_LENGTH, max_predictions_per_seq=MAX_PREDICTIONS,
                        dupe_factor=2, num_shards=NUM_SHARDS, seed=7)
SHARD_NAMES = ["train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
               "train-00002-of-00003.tfrecord"]
CLS, SEP, MASK, PAD = 101, 102, 103, 0  # in the uncased BERT vocab
SIGMAS = 4.0


def original_tokens(record: dict) -> np.ndarray:
    """The input ids before masking: the labels put back at the masked positions."""
    k = int(record["masked_lm_weights"].sum())
    ids = record["input_ids"].copy()
    ids[record["masked_lm_positions"][:k]] = record["masked_lm_ids"][:k]
    return ids


def segments(record: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    ids = original_tokens(record)
    n = int(record["input_mask"].sum())
    first_sep = int(np.flatnonzero(ids[:n] == SEP)[0])
    return tuple(ids[1:first_sep].tolist()), tuple(ids[first_sep + 1:n - 1].tolist())


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab_path) -> BertTokenizer:
    return BertTokenizer.from_vocab_file(uncased_vocab_path)


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory) -> list[str]:
    """Two files of real text: the docstrings of the `email` and `asyncio` packages."""
    directory = tmp_path_factory.mktemp("corpus")
    paths = []
    for package in ("email", "asyncio"):
        train, held_out = directory / f"{package}.txt", directory / f"{package}-held-out.txt"
        write_stdlib_corpus(train, held_out, root=stdlib_dir() / package)
        paths.append(str(train))
    assert sorted(os.listdir(directory)) == sorted(
        ["email.txt", "email-held-out.txt", "asyncio.txt", "asyncio-held-out.txt"])
    return paths


@pytest.fixture(scope="module")
def created(corpus_files, uncased_vocab_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    manifest = create_pretraining_data(corpus_files, uncased_vocab_path, out, CONFIG)
    return out, manifest


@pytest.fixture(scope="module")
def records(created) -> list[dict]:
    out, _ = created
    return [r for name in SHARD_NAMES for r in parse_records(out / name)]


def test_shards_and_manifest(created, records, corpus_files, uncased_vocab_path):
    out, manifest = created
    # The shards under their names and the manifest, and no temporary file left behind.
    assert sorted(os.listdir(out)) == sorted(SHARD_NAMES + ["input_report.json", "manifest.json"])
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert [s["file"] for s in manifest["shards"]] == SHARD_NAMES
    for shard in manifest["shards"]:
        assert shard["num_instances"] == len(raw_records(out / shard["file"]))
    assert manifest["num_instances"] == len(records)
    assert manifest["num_instances"] == sum(s["num_instances"] for s in manifest["shards"])
    counts = [s["num_instances"] for s in manifest["shards"]]
    assert max(counts) - min(counts) <= 1  # round-robin
    with open(uncased_vocab_path, "rb") as f:
        assert manifest["vocab_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert manifest["vocab_size"] == 30_522
    assert manifest["max_seq_length"] == MAX_SEQ_LENGTH
    assert manifest["max_predictions_per_seq"] == MAX_PREDICTIONS
    num_documents = sum(len([d for d in open(p).read().split("\n\n") if d.strip()])
                        for p in corpus_files)
    assert manifest["num_documents"] == num_documents
    labels = [int(r["next_sentence_labels"][0]) for r in records]
    assert manifest["statistics"]["random_next_fraction"] == pytest.approx(sum(labels) / len(labels))
    assert 0.45 < sum(labels) / len(labels) < 0.65


def test_every_record_is_well_formed(records):
    assert len(records) > 1_000
    for r in records:
        ids, mask, seg = r["input_ids"], r["input_mask"], r["segment_ids"]
        n = int(mask.sum())
        assert 5 <= n <= MAX_SEQ_LENGTH
        assert (mask[:n] == 1).all() and (mask[n:] == 0).all()
        assert (ids[n:] == PAD).all() and (seg[n:] == 0).all()
        assert PAD not in ids[:n]
        assert ids[0] == CLS and CLS not in ids[1:]
        seps = np.flatnonzero(ids == SEP).tolist()
        assert len(seps) == 2 and seps[1] == n - 1 and 2 <= seps[0] <= n - 3, seps
        assert (seg[:seps[0] + 1] == 0).all() and (seg[seps[0] + 1:n] == 1).all()

        weights = r["masked_lm_weights"]
        k = int(weights.sum())
        assert weights.dtype == np.float32
        assert (weights[:k] == 1.0).all() and (weights[k:] == 0.0).all()
        assert k == min(MAX_PREDICTIONS, max(1, round(0.15 * (n - 3))))
        positions, labels = r["masked_lm_positions"][:k], r["masked_lm_ids"][:k]
        assert (np.diff(positions) > 0).all()
        assert all(1 <= p <= n - 2 and p != seps[0] for p in positions)
        assert (r["masked_lm_positions"][k:] == 0).all() and (r["masked_lm_ids"][k:] == 0).all()
        assert not set(labels.tolist()) & {CLS, SEP, PAD, MASK}
        # [MASK] appears only where a prediction is asked for.
        assert set(np.flatnonzero(ids == MASK).tolist()) <= set(positions.tolist())
        assert r["next_sentence_labels"].tolist() in ([0], [1])


def test_masked_positions_are_80_10_10(records):
    n_mask = n_keep = total = 0
    for r in records:
        k = int(r["masked_lm_weights"].sum())
        at_positions = r["input_ids"][r["masked_lm_positions"][:k]]
        n_mask += int((at_positions == MASK).sum())
        n_keep += int((at_positions == r["masked_lm_ids"][:k]).sum())
        total += k
    for count, p, what in ((n_mask, 0.8, "[MASK]"), (n_keep, 0.1, "unchanged"),
                           (total - n_mask - n_keep, 0.1, "random token")):
        sigma = math.sqrt(p * (1 - p) / total)
        assert abs(count / total - p) < SIGMAS * sigma + 1e-4, (what, count / total)


def document_texts(paths, tokenizer) -> list[str]:
    """Each document's token ids as " 1 2 3 ", for substring search."""
    texts = []
    for path in paths:
        for doc in open(path, encoding="utf-8").read().split("\n\n"):
            ids = [t for line in doc.split("\n") if line.strip() for t in tokenizer.encode(line)]
            if ids:
                texts.append(" " + " ".join(map(str, ids)) + " ")
    return texts


def test_segments_are_text_from_the_corpus(records, corpus_files, tokenizer):
    """With the masks undone, A and B are contiguous spans of the corpus; for "is next" they are
    in one document with A before B, for "random next" B is in another document than A."""
    docs = document_texts(corpus_files, tokenizer)

    def key(tokens):
        return " " + " ".join(map(str, tokens)) + " "

    for r in records:
        a, b = map(key, segments(r))
        docs_a = [d for d, text in enumerate(docs) if a in text]
        docs_b = [d for d, text in enumerate(docs) if b in text]
        assert docs_a and docs_b, "a segment is not a contiguous span of any document"
        if r["next_sentence_labels"][0] == 0:
            assert any(docs[d].find(b, docs[d].find(a) + len(a) - 1) >= 0
                       for d in set(docs_a) & set(docs_b)), "an is-next B does not follow its A"
        else:
            assert any(da != db for da in docs_a for db in docs_b)


def test_dupe_factor(created, corpus_files, uncased_vocab_path, tmp_path):
    """dupe_factor=2 is about twice the instances of dupe_factor=1, and the second pass draws its
    pairs and masks anew: it hardly ever repeats a record of the first."""
    manifest = create_pretraining_data(corpus_files, uncased_vocab_path, tmp_path,
                                       dataclasses.replace(CONFIG, dupe_factor=1))
    single = [raw for name in SHARD_NAMES for raw in raw_records(tmp_path / name)]
    out, _ = created
    double = [raw for name in SHARD_NAMES for raw in raw_records(out / name)]
    assert manifest["num_instances"] == len(single)
    assert 1.8 < len(double) / len(single) < 2.2
    repeated = collections.Counter(double)
    assert sum(n - 1 for n in repeated.values()) < 0.02 * len(single), "a pass repeats another"


def test_dupe_passes_mask_the_same_text_differently(uncased_vocab_path, tokenizer):
    """Documents of two 10-word sentences give the same "is next" pair in every pass that draws
    "is next" for them; each pass masks it anew."""
    words = [t for t in list(tokenizer.vocab)[2000:12000] if t.isalpha()]
    documents = [[" ".join(words[20 * d:20 * d + 10]), " ".join(words[20 * d + 10:20 * d + 20])]
                 for d in range(200)]
    config = dataclasses.replace(CONFIG, dupe_factor=4, num_shards=1)
    _, framed = BlockProcessor(uncased_vocab_path, config)(0, documents)
    records = _parse_framed(b"".join(record for _, record in framed))
    masks = collections.defaultdict(list)
    for r in records:
        if not r["next_sentence_labels"][0]:
            k = int(r["masked_lm_weights"].sum())
            masks[tuple(original_tokens(r).tolist())].append(tuple(r["masked_lm_positions"][:k].tolist()))
    repeated = [m for m in masks.values() if len(m) > 1]
    assert len(repeated) > 100
    # 3 of 20 tokens: two passes choose the same ones by chance once in 1,140.
    assert sum(len(set(m)) == len(m) for m in repeated) > 0.95 * len(repeated)


def _parse_framed(data: bytes, max_seq_length=MAX_SEQ_LENGTH, max_predictions=MAX_PREDICTIONS) -> list[dict]:
    """Records of a block's part (TFRecord frames in memory), parsed with the original schema."""
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as f:
        f.write(data)
        f.flush()
        return parse_records(f.name, max_seq_length, max_predictions)


def test_reruns_are_byte_identical_and_seeds_differ(created, corpus_files, uncased_vocab_path,
                                                    tmp_path):
    out, manifest = created
    again = create_pretraining_data(corpus_files, uncased_vocab_path, tmp_path / "again", CONFIG)
    assert again == manifest
    for name in SHARD_NAMES:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    other = dataclasses.replace(CONFIG, seed=8)
    create_pretraining_data(corpus_files, uncased_vocab_path, tmp_path / "other", other)
    for name in SHARD_NAMES:
        assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes()
    # Not just another order: other pairs and masks.
    ours = collections.Counter(raw for name in SHARD_NAMES for raw in raw_records(out / name))
    theirs = collections.Counter(raw for name in SHARD_NAMES
                                 for raw in raw_records(tmp_path / "other" / name))
    assert sum((ours & theirs).values()) < 0.02 * sum(ours.values())
    assert sorted(os.listdir(tmp_path / "other")) == sorted(SHARD_NAMES + ["input_report.json",
                                                                          "manifest.json"])


def test_failed_write_leaves_no_temporary_files_and_keeps_old_shards(tmp_path):
    path = tmp_path / "train-00000-of-00001.tfrecord"
    write_atomically(path, [b"old shard"])

    def failing():
        yield b"new records"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, failing())
    assert os.listdir(tmp_path) == [path.name] and path.read_bytes() == b"old shard"


def test_input_errors_name_the_file(tmp_path, uncased_vocab_path, corpus_files):
    # Bad input is skipped and counted by default (tests/test_bad_input.py); these are the errors
    # that remain: no input at all, a problem in strict mode, too little text.
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        create_pretraining_data([missing], uncased_vocab_path, tmp_path / "o1", CONFIG)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A good line.\nAnother one.\nCaf\xe9 in Latin-1.\n\nMore text.\n")
    with pytest.raises(ValueError, match=re.escape(f"{bad}:3") + ".*UTF-8"):
        create_pretraining_data([bad], uncased_vocab_path, tmp_path / "o2",
                                dataclasses.replace(CONFIG, strict=True))
    single = tmp_path / "single.txt"
    single.write_text("One document.\nWith two sentences.\n\n\n")
    with pytest.raises(ValueError, match="1 non-empty document"):
        create_pretraining_data([single], uncased_vocab_path, tmp_path / "o3", CONFIG)
    # Nothing was written for the failed runs.
    assert not any((tmp_path / o).exists() and os.listdir(tmp_path / o) for o in ("o1", "o2", "o3"))


def test_special_tokens_written_in_the_text_are_plain_text(tmp_path, uncased_vocab_path, tokenizer):
    """A corpus about BERT itself mentions "[SEP]" and "[MASK]": they must stay text, as with the
    original's tokenizer, or records get a third [SEP], a [PAD] inside the sequence, or a [MASK]
    that is not a prediction."""
    text = ("BERT puts [CLS] first and a [SEP] after each segment.\n"
            "Padding uses [PAD] and unknown words [UNK].\n"
            "The model predicts [MASK] tokens.\n\n"
            "Another document follows here.\nIt has [SEP] too.\nAnd plain words.\n")
    path = tmp_path / "bert.txt"
    path.write_text(text)
    documents, _ = BlockProcessor(uncased_vocab_path, CreationConfig()).tokenize(
        [text.split("\n\n")[1].splitlines()])
    assert documents[0][1] == tokenizer.convert_tokens_to_ids(["it", "has", "[", "sep", "]", "too", "."])
    config = CreationConfig(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=20, num_shards=1)
    create_pretraining_data([path], uncased_vocab_path, tmp_path / "out", config)
    records = parse_records(tmp_path / "out" / "train-00000-of-00001.tfrecord", 32, 5)
    assert len(records) > 20
    for r in records:
        ids, n = r["input_ids"], int(r["input_mask"].sum())
        k = int(r["masked_lm_weights"].sum())
        seps = np.flatnonzero(ids == SEP).tolist()
        assert len(seps) == 2 and seps[1] == n - 1
        assert ids[0] == CLS and CLS not in ids[1:] and PAD not in ids[:n]
        assert set(np.flatnonzero(ids == MASK).tolist()) <= set(r["masked_lm_positions"][:k].tolist())


@pytest.mark.parametrize("limit, expect_unk", [(100, True), (200, False)])
def test_long_words_follow_max_input_chars_per_word(limit, expect_unk, tmp_path, uncased_vocab_path, tokenizer):
    """A 150-letter word is [UNK] at the `transformers` limit (100), spelled out in pieces at
    Google's (200)."""
    long_word = "ab" * 75
    path = tmp_path / "long.txt"
    path.write_text(f"A sentence with {long_word} inside.\nA second sentence.\n\nOther document.\nMore.\n")
    # Long enough that the 75 pieces of the word are never truncated away.
    config = CreationConfig(max_seq_length=256, max_predictions_per_seq=40, dupe_factor=1,
                            num_shards=1, max_input_chars_per_word=limit)
    manifest = create_pretraining_data([path], uncased_vocab_path, tmp_path / "out", config)
    assert manifest["config"]["max_input_chars_per_word"] == limit
    records = parse_records(tmp_path / "out" / "train-00000-of-00001.tfrecord", 256, 40)
    tokens = np.concatenate([original_tokens(r) for r in records])
    pieces = BertTokenizer.from_vocab_file(uncased_vocab_path, max_input_chars_per_word=200).encode(long_word)
    assert (tokenizer.vocab["[UNK]"] in tokens) is expect_unk
    assert (set(pieces) <= set(tokens.tolist())) is not expect_unk


# ---------------------------------------------------------------------------------------------
# Interchangeability with Google's original files.


def google_example(input_ids, segment_ids, masked_lm_positions, masked_lm_ids, is_random_next,
                   max_seq_length, max_predictions_per_seq) -> tf.train.Example:
    """A record built as `write_instance_to_example_files` of Google's script builds it."""
    input_mask = [1] * len(input_ids)
    input_ids, segment_ids = list(input_ids), list(segment_ids)
    while len(input_ids) < max_seq_length:
        input_ids.append(0)
        input_mask.append(0)
        segment_ids.append(0)
    masked_lm_positions, masked_lm_ids = list(masked_lm_positions), list(masked_lm_ids)
    masked_lm_weights = [1.0] * len(masked_lm_ids)
    while len(masked_lm_positions) < max_predictions_per_seq:
        masked_lm_positions.append(0)
        masked_lm_ids.append(0)
        masked_lm_weights.append(0.0)

    def create_int_feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    def create_float_feature(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))

    features = collections.OrderedDict()
    features["input_ids"] = create_int_feature(input_ids)
    features["input_mask"] = create_int_feature(input_mask)
    features["segment_ids"] = create_int_feature(segment_ids)
    features["masked_lm_positions"] = create_int_feature(masked_lm_positions)
    features["masked_lm_ids"] = create_int_feature(masked_lm_ids)
    features["masked_lm_weights"] = create_float_feature(masked_lm_weights)
    features["next_sentence_labels"] = create_int_feature([1 if is_random_next else 0])
    return tf.train.Example(features=tf.train.Features(feature=features))


# [CLS] the [MASK] sat [SEP] on mat [SEP], and a random-next pair of three predictions.
GOOGLE_INSTANCES = [
    dict(input_ids=[101, 1996, 103, 2938, 102, 2006, 13523, 102], segment_ids=[0] * 5 + [1] * 3,
         masked_lm_positions=[2], masked_lm_ids=[4937], is_random_next=False),
    dict(input_ids=[101, 103, 2003, 102, 7592, 103, 2088, 1010, 102],
         segment_ids=[0] * 4 + [1] * 5, masked_lm_positions=[1, 5, 7],
         masked_lm_ids=[2023, 2017, 999], is_random_next=True),
]


def test_google_records_are_read_by_our_reader(tmp_path):
    max_seq_length, max_predictions = 12, 4
    path = tmp_path / "google.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inst in GOOGLE_INSTANCES:
            writer.write(google_example(**inst, max_seq_length=max_seq_length,
                                        max_predictions_per_seq=max_predictions).SerializeToString())
    config = ReaderConfig(file_patterns=(str(path),), batch_size=2, max_seq_length=max_seq_length,
                          max_predictions_per_seq=max_predictions, repeat=False)
    (batch,) = list(numpy_batches(config))
    assert batch["input_ids"].dtype == np.int32 and batch["masked_lm_weights"].dtype == np.float32
    np.testing.assert_array_equal(batch["input_ids"], [
        [101, 1996, 103, 2938, 102, 2006, 13523, 102, 0, 0, 0, 0],
        [101, 103, 2003, 102, 7592, 103, 2088, 1010, 102, 0, 0, 0]])
    np.testing.assert_array_equal(batch["input_mask"], [[1] * 8 + [0] * 4, [1] * 9 + [0] * 3])
    np.testing.assert_array_equal(batch["segment_ids"], [[0] * 5 + [1] * 3 + [0] * 4,
                                                         [0] * 4 + [1] * 5 + [0] * 3])
    np.testing.assert_array_equal(batch["masked_lm_positions"], [[2, 0, 0, 0], [1, 5, 7, 0]])
    np.testing.assert_array_equal(batch["masked_lm_ids"], [[4937, 0, 0, 0], [2023, 2017, 999, 0]])
    np.testing.assert_array_equal(batch["masked_lm_weights"], [[1, 0, 0, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(batch["next_sentence_labels"], [0, 1])
    assert batch["next_sentence_labels"].shape == (2,)


def test_our_records_are_the_originals_examples():
    """`serialize_example` writes the very `tf.train.Example` the original script writes."""
    for inst in GOOGLE_INSTANCES:
        ours = serialize_example(inst["input_ids"], inst["segment_ids"], inst["masked_lm_positions"],
                                 inst["masked_lm_ids"], int(inst["is_random_next"]), 12, 4)
        assert tf.train.Example.FromString(ours) == google_example(**inst, max_seq_length=12,
                                                                   max_predictions_per_seq=4)


# --- Long documents and degenerate inputs: shards that are made, with true messages. -------------

def _books(path, sizes: tuple[int, ...]) -> list[list[str]]:
    """Documents of real text of about `sizes` characters each (a book per document), written to
    `path` in the original format."""
    lines = iter(stdlib_docstring_lines(4_000))
    documents = []
    for size in sizes:
        document = []
        while sum(map(len, document)) < size:
            document.append(next(lines))
        documents.append(document)
    path.write_text("".join("\n".join(d) + "\n\n" for d in documents))
    return documents


def test_documents_longer_than_a_block_are_cut_into_pieces(tmp_path, uncased_vocab_path, caplog):
    """Three books of 13,000 characters with blocks of 10,000 (the red team's three 1.3 MB books at
    --block-mb 1, scaled down) once stopped the run with "the input holds 1 non-empty document":
    each book was a block of its own. Cut into pieces of half a block, every block has two."""
    books = _books(tmp_path / "books.txt", (13_000, 13_000, 13_000))
    config = dataclasses.replace(CONFIG, block_chars=10_000, dupe_factor=1)
    with caplog.at_level(logging.WARNING, logger="input_pipeline.creation.create_pretraining_data"):
        manifest = create_pretraining_data([tmp_path / "books.txt"], uncased_vocab_path,
                                           tmp_path / "out", config)
    assert manifest["num_documents"] == 3 and manifest["num_cut_documents"] == 3
    assert manifest["num_blocks"] == 3 and manifest["num_unpaired_documents"] == 0
    assert manifest["input_characters"] == sum(len(line) for book in books for line in book)
    longest = max(sum(map(len, book)) for book in books)
    [warning] = [r.getMessage() for r in caplog.records if "half a block" in r.getMessage()]
    assert warning.startswith(f"3 document(s) hold more than half a block of text (--block-mb 0.01: "
                              f"10,000 characters), the longest {longest:,} characters")
    needed = math.ceil(2 * longest / 1e6 * 1e3) / 1e3  # MB, for twice the longest: 0.027
    assert "pieces of at most 5,000 characters" in warning and f"--block-mb to {needed:g} " in warning
    records = sum(check_file(tmp_path / "out" / s["file"]) for s in manifest["shards"])
    assert records == manifest["num_instances"] > 3 * 13_000 / (6 * MAX_SEQ_LENGTH)


def test_a_vocab_of_special_tokens_only_is_refused(tmp_path, corpus_files):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(ValueError, match=re.escape(f"{vocab} holds only the 5 special tokens: every "
                                                   "word would be [UNK]") + ".*bert-jax vocab"):
        create_pretraining_data(corpus_files, vocab, tmp_path / "out", CONFIG)
    assert not (tmp_path / "out").exists()


def test_shards_that_are_hardly_what_was_meant_are_reported_with_the_numbers(
        tmp_path, uncased_vocab_path, caplog):
    """A sequence length shorter than two sentences makes every next segment random, more
    shards than instances leave some empty, a vocab of another language makes [UNK]: made, but
    each said, with the numbers."""
    books = _books(tmp_path / "text.txt", (2_000,) * 6)
    config = CreationConfig(max_seq_length=8, max_predictions_per_seq=2, dupe_factor=1,
                            num_shards=1)
    with caplog.at_level(logging.WARNING, logger="input_pipeline.creation.create_pretraining_data"):
        manifest = create_pretraining_data([tmp_path / "text.txt"], uncased_vocab_path,
                                           tmp_path / "short", config)
    fraction = manifest["statistics"]["random_next_fraction"]
    assert fraction > 0.9
    [warning] = [r.getMessage() for r in caplog.records if "random next" in r.getMessage()]
    assert re.match(rf"{round(fraction * manifest['num_instances'])} of the "
                    rf"{manifest['num_instances']} pairs \({100 * fraction:.0f}%\) take a random "
                    r"next segment.*a pair holds 5 tokens \(--max-seq-length 8 .*and a sentence "
                    r"\d+\.\d on average.*raise --max-seq-length", warning), warning
    caplog.clear()
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\na\n")
    few = dataclasses.replace(CONFIG, num_shards=500, dupe_factor=1)
    with caplog.at_level(logging.WARNING, logger="input_pipeline.creation.create_pretraining_data"):
        manifest = create_pretraining_data([tmp_path / "text.txt"], tmp_path / "vocab.txt",
                                           tmp_path / "few", few)
    messages = [r.getMessage() for r in caplog.records]
    empty = sum(not shard["num_instances"] for shard in manifest["shards"])
    assert 0 < empty < 500 and any(m.startswith(f"{empty} of the 500 shards hold no instance")
                                   and f"made {manifest['num_instances']} instances" in m
                                   for m in messages)
    assert any(re.match(r"\d+\.\d% of the tokens are \[UNK\]: the vocab \(vocab.txt\) does not "
                        "cover this text", m) for m in messages)
    assert sum(len(b) for b in books) > 0
