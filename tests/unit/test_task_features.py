"""Tests for turning task examples into model inputs (`input_pipeline/tasks/features.py`,
`tagging_features.py`, `truncation.py`).

References: `transformers.BertTokenizerFast` (the Rust `tokenizers` library) for single
sentences, pairs and their `longest_first` truncation, on the standard library's docstrings with
the real MiniLM uncased vocab; BERT's own `_truncate_seq_pair`, executed from the `bert-tensorflow`
package's `run_classifier.py` (Google's code as published); `run_ner.py`'s
`tokenize_and_align_labels` (word ids of the fast tokenizer, -100 on all but a word's first
sub-token); and `sentencepiece` itself for SentencePiece models.
"""

from __future__ import annotations

import ast
import itertools
import os
import random

import numpy as np
import pytest
from conftest import stdlib_docstring_lines

from input_pipeline.tasks.features import text_features
from input_pipeline.tasks.formats import FORMATS
from input_pipeline.tasks.labels import LabelList
from input_pipeline.tasks.records import Location, TaggedSentence, TaskDataError, TextExample
from input_pipeline.tasks.tagging_features import scored_tags, tagging_features, word_tags
from input_pipeline.tasks.truncation import TruncationReport, truncate_pair
from input_pipeline.tokenizers.loading import load_tokenizer

LOCATION = Location("test.tsv", 1)


@pytest.fixture(scope="module")
def tokenizers(uncased_vocab_path):
    from transformers import BertTokenizerFast

    return load_tokenizer(uncased_vocab_path), BertTokenizerFast(uncased_vocab_path, do_lower_case=True)


def _pairs(n: int) -> list[tuple[str, str]]:
    lines = stdlib_docstring_lines(2 * n)
    return list(zip(lines[0::2], lines[1::2]))


def _examples(pairs, single: bool = False) -> list[TextExample]:
    return [TextExample(a, None if single else b, None, LOCATION) for a, b in pairs]


def _hf_arrays(hf, pairs, length: int, single: bool = False) -> dict[str, np.ndarray]:
    firsts = [a for a, _ in pairs]
    seconds = None if single else [b for _, b in pairs]
    encoded = hf(firsts, seconds, truncation="longest_first", max_length=length, padding="max_length")
    return {key: np.array(value) for key, value in encoded.items()}


@pytest.mark.parametrize("length", [8, 16, 32, 128])
def test_single_sentences_equal_transformers(tokenizers, length):
    ours, hf = tokenizers
    pairs = _pairs(600)
    report = TruncationReport(length)
    features = text_features(_examples(pairs, single=True), ours, length, None, report=report,
                             require_labels=False)
    expected = _hf_arrays(hf, pairs, length, single=True)
    np.testing.assert_array_equal(features.input_ids, expected["input_ids"])
    np.testing.assert_array_equal(features.segment_ids, expected["token_type_ids"])
    np.testing.assert_array_equal(features.input_mask, expected["attention_mask"])
    assert features.input_ids.dtype == np.int32 and features.input_ids.shape == (600, length)
    # Every cut is counted: the tokens lost are those beyond length - 2.
    full = [len(hf(a)["input_ids"]) - 2 for a, _ in pairs]
    cut = [max(0, n - (length - 2)) for n in full]
    assert (report.examples, report.truncated_examples, report.tokens_cut) == (
        600, sum(c > 0 for c in cut), sum(cut))
    assert np.isnan(features.label).all()


@pytest.mark.parametrize("length", [16, 24, 33, 64])
def test_pairs_equal_transformers_longest_first(tokenizers, length):
    ours, hf = tokenizers
    pairs = _pairs(600)
    report = TruncationReport(length)
    features = text_features(_examples(pairs), ours, length, None, report=report,
                             pair_truncation="huggingface", require_labels=False)
    expected = _hf_arrays(hf, pairs, length)
    np.testing.assert_array_equal(features.input_ids, expected["input_ids"])
    np.testing.assert_array_equal(features.segment_ids, expected["token_type_ids"])
    np.testing.assert_array_equal(features.input_mask, expected["attention_mask"])
    assert report.truncated_examples > 0


def _google_truncate_seq_pair():
    """`_truncate_seq_pair` from the bert-tensorflow package's run_classifier.py, executed from
    its source (the module itself imports TF1's tf.contrib, which TensorFlow 2 lacks)."""
    import bert

    path = os.path.join(os.path.dirname(bert.__file__), "run_classifier.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    [node] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_truncate_seq_pair"]
    namespace: dict = {}
    exec(compile(ast.Module([node], []), path, "exec"), namespace)  # noqa: S102 (Google's own code is the reference)
    return namespace["_truncate_seq_pair"]


def test_google_truncation_equals_bert_run_classifier():
    reference = _google_truncate_seq_pair()
    for n_a, n_b, budget in itertools.product(range(13), range(13), range(1, 27)):
        a, b = list(range(n_a)), list(range(100, 100 + n_b))
        ref_a, ref_b = list(a), list(b)
        reference(ref_a, ref_b, budget)
        cut = truncate_pair(a, b, budget, "google")
        assert (a, b) == (ref_a, ref_b), (n_a, n_b, budget)
        assert cut == n_a + n_b - len(a) - len(b)


def _first_text_lengths(features_or_arrays) -> np.ndarray:
    segments, mask = features_or_arrays
    return ((segments == 0) & (mask == 1)).sum(axis=1) - 2


def test_google_pairs_differ_from_transformers_only_on_the_odd_token(tokenizers):
    ours, hf = tokenizers
    pairs = _pairs(600)
    length = 18  # A budget of 15 tokens for the two texts.
    google = text_features(_examples(pairs), ours, length, None, require_labels=False)
    expected = _hf_arrays(hf, pairs, length)
    ours_a = _first_text_lengths((google.segment_ids, google.input_mask))
    hf_a = _first_text_lengths((expected["token_type_ids"], expected["attention_mask"]))
    differ = np.flatnonzero((google.input_ids != expected["input_ids"]).any(axis=1))
    assert len(differ) > 0  # Real text meets the case.
    for row in differ:
        n_a, n_b = len(ours.encode(pairs[row][0])), len(ours.encode(pairs[row][1]))
        # Both texts cut to about half: BERT gives the first text the odd token, tokenizers the
        # second (when the first is not the longer).
        assert 7 < n_a <= n_b and (ours_a[row], hf_a[row]) == (8, 7), (n_a, n_b)
    a, b = list(range(10)), list(range(10))
    assert truncate_pair(a, b, 15, "google") == 5 and (len(a), len(b)) == (8, 7)
    a, b = list(range(10)), list(range(10))
    assert truncate_pair(a, b, 15, "huggingface") == 5 and (len(a), len(b)) == (7, 8)


def test_labels_and_errors(tokenizers):
    ours, _ = tokenizers
    labels = LabelList(("entailment", "neutral", "contradiction"))
    examples = [TextExample("A man plays.", "A person plays.", "contradiction", LOCATION),
                TextExample("A dog.", "A cat.", "entailment", Location("test.tsv", 2))]
    features = text_features(examples, ours, 16, labels)
    assert features.label.tolist() == [2, 0] and features.label.dtype == np.int32
    scores = [TextExample("a", "b", 3.8, LOCATION)]
    regression = text_features(scores, ours, 16, None)
    assert regression.label.dtype == np.float32 and regression.label[0] == np.float32(3.8)
    with pytest.raises(TaskDataError, match=r"test.tsv:2: field 'label': unknown label 'maybe'; "
                                            r"the model knows \['entailment', 'neutral', 'contradiction'\]"):
        text_features([*examples[:1], TextExample("a", "b", "maybe", Location("test.tsv", 2))], ours, 16, labels)
    with pytest.raises(TaskDataError, match=r"test.tsv:1: field 'label': no label"):
        text_features([TextExample("a", "b", None, LOCATION)], ours, 16, labels)
    assert text_features([TextExample("a", "b", None, LOCATION)], ours, 16, labels,
                         require_labels=False).label.tolist() == [-1]


def test_sentencepiece_model(tmp_path):
    import sentencepiece as spm

    from input_pipeline.vocabulary.sentencepiece import train_sentencepiece

    tokenizer = train_sentencepiece(stdlib_docstring_lines(3000), tmp_path / "sp.model", 600)
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    a, b = stdlib_docstring_lines(3000)[10:12]
    features = text_features([TextExample(a, b, None, LOCATION)], tokenizer, 24, None, require_labels=False)
    pieces_a, pieces_b = processor.encode(a), processor.encode(b)
    reference = _google_truncate_seq_pair()
    reference(pieces_a, pieces_b, 21)
    cls, sep = processor.piece_to_id("[CLS]"), processor.piece_to_id("[SEP]")
    expected = [cls, *pieces_a, sep, *pieces_b, sep]
    assert features.input_ids[0, :len(expected)].tolist() == expected
    assert features.segment_ids[0].tolist() == [0] * (len(pieces_a) + 2) + [1] * (len(pieces_b) + 1) + \
        [0] * (24 - len(expected))


# --- Tagging. -------------------------------------------------------------------------------------

def _run_ner_labels(hf, sentences, label_to_id, length):
    """run_ner.py's tokenize_and_align_labels with label_all_tokens=False: the word's label on the
    first sub-token of each word, -100 elsewhere."""
    encoded = hf([list(s.words) for s in sentences], truncation=True, max_length=length,
                 is_split_into_words=True, padding="max_length")
    all_labels = []
    for i, sentence in enumerate(sentences):
        previous, labels = None, []
        for word in encoded.word_ids(batch_index=i):
            if word is None:
                labels.append(-100)
            elif word != previous:
                labels.append(label_to_id[sentence.tags[word]])
            else:
                labels.append(-100)
            previous = word
        all_labels.append(labels)
    return np.array(encoded["input_ids"]), np.array(all_labels)


def _tagged_sentences(n: int) -> list[TaggedSentence]:
    tags = FORMATS["conll2003"].label_names
    rng = random.Random(0)
    lines = stdlib_docstring_lines(n)
    sentences = [TaggedSentence(tuple(line.split()), tuple(rng.choice(tags) for _ in line.split()),
                                Location("train.txt", i + 1)) for i, line in enumerate(lines)]
    # KLUE-NER's characters as words, spaces included.
    chars = "특히 영동고속도로 강릉 방향"
    klue = TaggedSentence(tuple(chars), tuple("O" if c == " " else "B-LOC" for c in chars),
                          Location("klue.tsv", 6))
    return [*sentences, klue]


@pytest.mark.parametrize("length", [8, 16, 64])
def test_tagging_equals_run_ner_tokenize_and_align_labels(tokenizers, length):
    ours, hf = tokenizers
    sentences = _tagged_sentences(400)
    labels = LabelList(FORMATS["conll2003"].label_names + ("I-LOC-UNUSED",))
    label_to_id = {name: i for i, name in enumerate(labels.names)}
    report = TruncationReport(length)
    features = tagging_features(sentences, ours, length, labels, report=report)
    input_ids, expected = _run_ner_labels(hf, sentences, label_to_id, length)
    np.testing.assert_array_equal(features.input_ids, input_ids)
    ours_labels = np.where(features.label_weights == 1, features.label_ids, -100)
    np.testing.assert_array_equal(ours_labels, expected)
    assert set(np.unique(features.label_weights)) <= {0.0, 1.0}
    # Words without a first sub-token: the spaces of the KLUE sentence, and those cut off.
    spaces = sentences[-1].words.count(" ")
    predicted = sum(int((s >= 0).sum()) for s in features.word_starts)
    assert predicted == int(features.label_weights.sum())
    assert report.words == sum(len(s.words) for s in sentences)
    assert report.words_without_tokens >= spaces
    assert report.words == predicted + report.words_cut + report.words_without_tokens
    if length < 64:
        assert report.words_cut > 0 and report.truncated_examples > 0


def test_predictions_back_to_word_tags(tokenizers):
    ours, _ = tokenizers
    sentences = [TaggedSentence(("EU", "rejects", "German", "call", "to", "boycott", "British", "lamb"),
                                ("B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O"), LOCATION),
                 TaggedSentence(("Peter", "\x00", "Blackburn"), ("B-PER", "O", "I-PER"), LOCATION)]
    labels = LabelList(FORMATS["conll2003"].label_names)
    report = TruncationReport(8)
    features = tagging_features(sentences, ours, 8, labels, report=report)
    # A perfect prediction, read back per word: the words past the limit and the control
    # character (no sub-token) have no prediction.
    tags = word_tags(features.label_ids, features, labels, missing="-")
    assert tags == [["B-ORG", "O", "B-MISC", "O", "O", "O", "-", "-"], ["B-PER", "-", "I-PER"]]
    gold, predicted = scored_tags(sentences, features.label_ids, features, labels)
    assert gold == predicted == [["B-ORG", "O", "B-MISC", "O", "O", "O"], ["B-PER", "I-PER"]]
    assert (report.words_cut, report.words_without_tokens, report.truncated_examples) == (2, 1, 1)
    assert "2 of 11 words cut off, 1 without any token" in report.summary()
    with pytest.raises(TaskDataError, match=r"test.tsv:1: field 'tags': unknown label 'B-FOO'"):
        tagging_features([TaggedSentence(("a",), ("B-FOO",), LOCATION)], ours, 8, labels)
