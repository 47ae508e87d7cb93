"""Creation at scale: blocks, worker processes, Apache Beam, bounded memory, input formats and
dynamic-masking shards. The algorithm's statistics are tested in test_pretraining_data.py."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import sys
import textwrap

import pytest

from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data, iter_blocks
from input_pipeline.text.stdlib_corpus import write_stdlib_corpus

CONFIG = CreationConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, num_shards=3,
                        seed=11, block_chars=60_000)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """About 240 KB of docstrings in the original format: several blocks of CONFIG."""
    directory = tmp_path_factory.mktemp("corpus")
    train, held_out = directory / "train.txt", directory / "held_out.txt"
    write_stdlib_corpus(train, held_out, max_bytes=240_000)
    return str(train)


def shard_bytes(directory) -> dict[str, bytes]:
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory)) if name.endswith(".tfrecord")}


@pytest.fixture(scope="module")
def one_worker(corpus, uncased_vocab_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_worker")
    return out, create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG)


def test_blocks_cover_the_corpus_in_order(corpus):
    blocks = list(iter_blocks([corpus], CONFIG))
    assert len(blocks) >= 3
    pieces = [d for block in blocks for d in block.documents]
    starts = [start for block in blocks for start in block.starts]
    ends = [end for block in blocks for end in block.ends]
    # The pieces put together again are the documents; a document longer than half a block (this
    # corpus has one of 35 KB) is cut into pieces of at most half a block, between lines.
    documents = []
    for piece, start in zip(pieces, starts):
        assert sum(map(len, piece)) <= CONFIG.block_chars // 2 or len(piece) == 1
        if start:
            documents.append(list(piece))
        else:
            documents[-1].extend(piece)
    # A document ends where the next one starts, and one of this corpus is cut.
    assert starts[0] and ends[-1] and starts[1:] == ends[:-1] and not all(starts)
    text = open(corpus, encoding="utf-8").read()
    assert documents == [d.splitlines() for d in text.split("\n\n") if d.strip()]
    # Each piece's origin is the file and the number of its first line.
    lines = text.split("\n")
    assert [lines[line - 1] for block in blocks for _, line in block.origins] == [p[0] for p in pieces]
    assert {source for block in blocks for source, _ in block.origins} == {corpus}
    sizes = [sum(len(line) for d in block.documents for line in d) for block in blocks]
    # Every block but the last reaches the target, and the last is not a small remainder; each
    # holds at least two pieces, and at most half a block more than the target.
    assert all(size >= CONFIG.block_chars for size in sizes[:-1])
    assert sizes[-1] >= CONFIG.block_chars // 2
    assert all(len(block.documents) >= 2 for block in blocks)
    assert max(sizes) < CONFIG.block_chars * 1.5 + max(map(len, lines))


def test_manifest_counts_match_the_shards(one_worker):
    out, manifest = one_worker
    assert manifest["num_blocks"] >= 3
    import tensorflow as tf
    for shard in manifest["shards"]:
        assert sum(1 for _ in tf.data.TFRecordDataset(str(out / shard["file"]))) == shard["num_instances"]
    assert not [n for n in os.listdir(out) if n.startswith(".") or ".tmp" in n]  # no leftovers


def test_shards_are_byte_identical_whatever_the_number_of_workers(one_worker, corpus,
                                                                  uncased_vocab_path, tmp_path):
    out, manifest = one_worker
    again = create_pretraining_data([corpus], uncased_vocab_path, tmp_path, CONFIG, num_workers=2)
    assert again == manifest
    assert shard_bytes(tmp_path) == shard_bytes(out)


def test_shards_mix_blocks(one_worker):
    """Each shard holds instances of every block, not one block after another in corpus order:
    the first instances of two shards come from different blocks' parts."""
    out, manifest = one_worker
    import tensorflow as tf
    firsts = [next(iter(tf.data.TFRecordDataset(str(out / s["file"])))).numpy()
              for s in manifest["shards"]]
    assert len(set(firsts)) == len(firsts)


def test_beam_direct_runner_writes_the_same_shards(one_worker, corpus, uncased_vocab_path, tmp_path):
    pytest.importorskip("apache_beam")
    from input_pipeline.creation.beam_pipeline import run_beam_pipeline

    out, manifest = one_worker
    beam_manifest = run_beam_pipeline([corpus], uncased_vocab_path, str(tmp_path), CONFIG,
                                      pipeline_args=["--runner=DirectRunner"])
    assert beam_manifest == manifest
    assert shard_bytes(tmp_path) == shard_bytes(out)


def test_beam_reads_and_writes_remote_paths(one_worker, corpus, uncased_vocab_path):
    """Vocab, inputs (a file, gzipped, and a glob) and output on a remote file system (TensorFlow's
    in-process `ram://`, through the same tf.io.gfile calls as gs://) are used as they are, not
    made local (`os.path.abspath("gs://b/v.txt")` is "/cwd/gs:/b/v.txt"): the same shards as the
    local run."""
    pytest.importorskip("apache_beam")
    tf = pytest.importorskip("tensorflow")
    from input_pipeline.creation.beam_pipeline import resolve_path, run_beam_pipeline

    assert resolve_path("gs://bucket/vocab.txt") == "gs://bucket/vocab.txt"
    assert resolve_path("vocab.txt") == os.path.join(os.getcwd(), "vocab.txt")
    out, manifest = one_worker
    root = "ram://beam-remote"
    tf.io.gfile.makedirs(f"{root}/text")
    tf.io.gfile.copy(uncased_vocab_path, f"{root}/vocab.txt", overwrite=True)
    # The corpus split in two at a document boundary: the first half gzipped, the second half
    # plain, reached by a glob, so that every way of naming and reading a remote input is used.
    text = open(corpus, encoding="utf-8").read()
    cut = text.index("\n\n", len(text) // 2) + 2
    with tf.io.gfile.GFile(f"{root}/text/a.txt.gz", "wb") as f:
        f.write(gzip.compress(text[:cut].encode("utf-8")))
    with tf.io.gfile.GFile(f"{root}/text/b.txt", "w") as f:
        f.write(text[cut:])
    inputs = [f"{root}/text/a.txt.gz", f"{root}/text/b*.txt"]
    beam_manifest = run_beam_pipeline(inputs, f"{root}/vocab.txt", f"{root}/out", CONFIG,
                                      pipeline_args=["--runner=DirectRunner"])
    assert beam_manifest["inputs"] == [f"{root}/text/a.txt.gz", f"{root}/text/b.txt"]
    assert {**beam_manifest, "inputs": manifest["inputs"]} == manifest
    remote_shards = {name: tf.io.gfile.GFile(f"{root}/out/{name}", "rb").read()
                     for name in sorted(tf.io.gfile.listdir(f"{root}/out")) if name.endswith(".tfrecord")}
    assert remote_shards == shard_bytes(out)
    assert tf.io.gfile.exists(f"{root}/out/input_report.json")
    # The output directory is checked before the pipeline runs, and replaced as locally.
    with pytest.raises(FileExistsError, match="earlier create-data run.*pass --overwrite"):
        run_beam_pipeline(inputs, f"{root}/vocab.txt", f"{root}/out", CONFIG,
                          pipeline_args=["--runner=DirectRunner"])
    two = dataclasses.replace(CONFIG, num_shards=2)
    run_beam_pipeline(inputs, f"{root}/vocab.txt", f"{root}/out", two, overwrite=True,
                      pipeline_args=["--runner=DirectRunner"])
    assert sorted(tf.io.gfile.listdir(f"{root}/out")) == [
        "input_report.json", "manifest.json", "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord"]


# One creation run, in a fresh process so that runs do not share a heap; it writes the corpus's
# characters and blocks to argv[5].
_CREATION_SCRIPT = textwrap.dedent("""
    import json, sys
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data
    config = CreationConfig(max_seq_length=128, max_predictions_per_seq=20, dupe_factor=10,
                            num_shards=4, block_chars=int(sys.argv[4]))
    manifest = create_pretraining_data([sys.argv[1]], sys.argv[2], sys.argv[3], config)
    with open(sys.argv[5], "w") as f:
        json.dump({"chars": manifest["input_characters"], "blocks": manifest["num_blocks"]}, f)
""")

# The most a creation run's peak RSS may grow from 1x to 4x the text at a fixed block size.
# Measured (Python 3.11, 1.2 MB 1x corpus, 100 KB blocks, dupe factor 10): bounded runs grow by
# about 0 MB (the peak is set by the heaviest block, not the corpus), while runs that hold the
# whole corpus as one block grow by about 60 MB. 25 MB sits well clear of both.
MAX_RSS_GROWTH_MB = 25.0


def _peak_rss(corpus: str, vocab_path: str, output_dir: str, block_chars: int) -> dict:
    """The peak RSS, characters and blocks of a creation run over `corpus` in a subprocess.

    The run is started by a small launcher process (`benchmarks/google_original.run_timed`),
    which reads its peak with wait4: Linux carries a process's peak RSS over fork and exec, so a
    direct child of this test process would report at least pytest's own peak (TensorFlow and
    JAX loaded: over 1 GB)."""
    from benchmarks.google_original import run_timed

    counts = output_dir + ".counts.json"
    usage = run_timed([sys.executable, "-c", _CREATION_SCRIPT, corpus, vocab_path, output_dir,
                       str(block_chars), counts], output_dir + ".log")
    with open(counts) as f:
        return {"rss_mb": usage["peak_rss_mb"], **json.load(f)}


def test_memory_stays_bounded_as_the_corpus_grows(uncased_vocab_path, tmp_path):
    """Peak RSS of a creation run over 1x and 4x the text, with the same small block size, grows
    by less than MAX_RSS_GROWTH_MB; and the bound discriminates: the same runs with the whole
    corpus as one block (everything in memory, as Google's script holds it) grow by more."""
    train, held_out = tmp_path / "train.txt", tmp_path / "held_out.txt"
    write_stdlib_corpus(train, held_out, max_bytes=1_200_000)
    # Four copies make the 4x corpus: repeated documents cost a block as much as new ones, and
    # the stdlib holds too little text for 4x of a corpus large enough to measure.
    text = train.read_text()
    four = tmp_path / "four.txt"
    four.write_text(text * 4)
    small, whole = 100_000, 10 * len(text) * 4  # `whole`: more than the corpus, so one block.
    results = {name: _peak_rss(str(path), uncased_vocab_path, str(tmp_path / f"out-{name}"), block)
               for name, path, block in (("1x", train, small), ("4x", four, small),
                                         ("1x-one-block", train, whole),
                                         ("4x-one-block", four, whole))}
    print(results)
    assert results["4x"]["chars"] > 3.5 * results["1x"]["chars"] > 3.5 * 1_000_000, results
    assert results["4x"]["blocks"] > 3.5 * results["1x"]["blocks"], results
    assert results["4x-one-block"]["blocks"] == results["1x-one-block"]["blocks"] == 1, results
    growth = results["4x"]["rss_mb"] - results["1x"]["rss_mb"]
    assert growth < MAX_RSS_GROWTH_MB, results
    unbounded_growth = results["4x-one-block"]["rss_mb"] - results["1x-one-block"]["rss_mb"]
    assert unbounded_growth > MAX_RSS_GROWTH_MB, (
        f"holding the whole corpus in memory grew peak RSS by only {unbounded_growth:.1f} MB, "
        f"within the bound: the test could not tell bounded from unbounded memory. {results}")


def test_input_formats_give_the_same_shards(corpus, uncased_vocab_path, tmp_path, one_worker):
    """The corpus as .gz and as JSONL (one record per document) gives the very same shards."""
    out, _ = one_worker
    text = open(corpus, encoding="utf-8").read()
    with gzip.open(tmp_path / "corpus.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    with open(tmp_path / "corpus.jsonl", "w", encoding="utf-8") as f:
        for document in text.split("\n\n"):
            if document.strip():
                f.write(json.dumps({"text": document}) + "\n")
    for name in ("corpus.txt.gz", "corpus.jsonl"):
        create_pretraining_data([str(tmp_path / name)], uncased_vocab_path, tmp_path / name[:-3], CONFIG)
        assert shard_bytes(tmp_path / name[:-3]) == shard_bytes(out), name


def test_paragraph_input_is_split_into_sentences(uncased_vocab_path, tmp_path):
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("\n\n".join(
        f"Document {d} starts here. It has a second sentence! Does it have a third? Yes, it does."
        for d in range(40)) + "\n")
    lines = tmp_path / "lines.txt"
    lines.write_text("\n\n".join(
        f"Document {d} starts here.\nIt has a second sentence!\nDoes it have a third?\nYes, it does."
        for d in range(40)) + "\n")
    config = dataclasses.replace(CONFIG, num_shards=1)
    a = create_pretraining_data([str(paragraphs)], uncased_vocab_path, tmp_path / "a",
                                dataclasses.replace(config, text_format="paragraphs"))
    b = create_pretraining_data([str(lines)], uncased_vocab_path, tmp_path / "b", config)
    assert a["num_sentences"] == b["num_sentences"] == 160
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")


def test_dynamic_masking_shards_are_unmasked_and_one_per_pass(corpus, uncased_vocab_path, tmp_path,
                                                               one_worker):
    import tensorflow as tf

    from input_pipeline.shards.features import parse_examples
    _, static = one_worker
    manifest = create_pretraining_data([corpus], uncased_vocab_path, tmp_path,
                                       dataclasses.replace(CONFIG, masking="dynamic"))
    assert manifest["masking"] == "dynamic" and manifest["statistics"]["mean_predictions"] == 0
    # The same pairs as static masking: only the masking differs.
    assert manifest["num_instances"] == static["num_instances"]
    records = tf.data.TFRecordDataset(sorted(str(tmp_path / s["file"]) for s in manifest["shards"]))
    batch = next(iter(records.batch(10_000).map(lambda r: parse_examples(r, 64, 10))))
    ids = batch["input_ids"].numpy()
    assert not (ids == 103).any()  # no [MASK]
    assert not batch["masked_lm_weights"].numpy().any()


def test_sentencepiece_model_with_whole_word_masking(corpus, tmp_path):
    """A SentencePiece model works wherever a vocab.txt does: whole-word masking groups a word's
    pieces by the model's own word starts ("▁")."""
    import tensorflow as tf

    from input_pipeline.shards.features import parse_examples
    from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
    from input_pipeline.vocabulary.sentencepiece import train_sentencepiece

    lines = [line for line in open(corpus, encoding="utf-8") if line.strip()]
    model = tmp_path / "sp.model"
    train_sentencepiece(lines, model, 2000, model_type="unigram")
    tokenizer = SentencePieceTokenizer(str(model))
    config = dataclasses.replace(CONFIG, whole_word_masking=True, num_shards=1, dupe_factor=1)
    manifest = create_pretraining_data([corpus], model, tmp_path / "out", config)
    assert manifest["vocab_size"] == tokenizer.vocab_size == 2000
    records = tf.data.TFRecordDataset(str(tmp_path / "out" / manifest["shards"][0]["file"]))
    batch = next(iter(records.batch(100_000).map(lambda r: parse_examples(r, 64, 10))))
    weights = batch["masked_lm_weights"].numpy()
    assert weights.sum() > 1000
    continuation = tokenizer.is_continuation
    split_words = 0
    for ids, positions, labels, w in zip(batch["input_ids"].numpy(), batch["masked_lm_positions"].numpy(),
                                         batch["masked_lm_ids"].numpy(), weights):
        original = ids.copy()
        k = int(w.sum())
        original[positions[:k]] = labels[:k]
        chosen = set(positions[:k].tolist())
        for p in chosen:
            # The word's neighbouring pieces are chosen with it. (A segment truncated at its
            # front may start inside a word: after [CLS] or [SEP] a piece starts a word.)
            starts_segment = original[p - 1] in tokenizer.special_ids
            if continuation[original[p]] and p - 1 not in chosen and not starts_segment:
                split_words += 1
            if p + 1 < len(original) and continuation[original[p + 1]] and p + 1 not in chosen:
                split_words += 1
    assert split_words == 0


def test_korean_paragraphs_from_tfds(tmp_path):
    """Korean prose end to end: wiki40b/ko-shaped examples (real Korean text of the konlpy
    package, served offline by tfds.testing.mock_data) -> a cased vocab with the KS X 1001
    syllables -> shards whose tokens are whole Hangul pieces, few [UNK]."""
    import importlib.util
    from pathlib import Path

    import tensorflow as tf
    import tensorflow_datasets as tfds

    from input_pipeline.shards.features import parse_examples
    from input_pipeline.tokenizers.wordpiece import BertTokenizer
    from input_pipeline.vocabulary.wordpiece import named_initial_alphabet, train_vocab_from_files

    spec = importlib.util.find_spec("konlpy")
    if spec is None:
        pytest.skip("konlpy (the Korean test text) is not installed")
    root = Path(spec.submodule_search_locations[0]) / "data" / "corpus"
    files = sorted((root / "kobill").glob("*.txt")) + [root / "kolaw" / "constitution.txt"]
    # The texts are hard-wrapped: each becomes one paragraph, split into sentences by us.
    articles = [f"\n_START_ARTICLE_\n{path.stem}\n_START_PARAGRAPH_\n"
                f"{' '.join(path.read_text(encoding='utf-8').split())}\n" for path in files]
    vocab = tmp_path / "vocab.txt"
    train_vocab_from_files([str(f) for f in files], str(vocab), 8000, do_lower_case=False,
                           initial_alphabet=named_initial_alphabet("ksx1001-hangul"))

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"text": articles, "wikidata_id": ["Q"] * len(articles),
                                                   "version_id": ["0"] * len(articles)})

    config = dataclasses.replace(CONFIG, text_format="paragraphs", do_lower_case=False, num_shards=1)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        manifest = create_pretraining_data(["tfds:wiki40b/ko"], vocab, tmp_path / "out", config)
    assert manifest["num_documents"] == len(files)
    assert manifest["num_sentences"] > 30 * len(files)
    tokenizer = BertTokenizer.from_vocab_file(vocab, do_lower_case=False)
    records = tf.data.TFRecordDataset(str(tmp_path / "out" / manifest["shards"][0]["file"]))
    batch = next(iter(records.batch(100_000).map(lambda r: parse_examples(r, 64, 10))))
    ids = batch["input_ids"].numpy()[batch["input_mask"].numpy() == 1]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    # Syllables, never jamo (U+1100-11FF) from an NFD split; almost no [UNK].
    assert not any("\u1100" <= c <= "\u11ff" for t in tokens for c in t)
    assert sum("\uac00" <= c <= "\ud7a3" for t in tokens for c in t) > 10_000
    assert tokens.count("[UNK]") < 0.005 * len(tokens)
